"""A storage URL, parsed in one place: which storage it names and its study file. Every function of
`storage` reads these fields instead of testing the string again."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

IN_MEMORY = "sqlite:///:memory:"  # a study that lives as long as its process (tests, notebooks, benchmarks)

Kind = Literal["memory", "journal", "sqlite", "postgresql", "server"]


@dataclass(frozen=True)
class StorageURL:
    """What a `--storage` value names. `text` is as written: it may hold a password, so it is never
    printed as it is (`storage.shown_url`)."""

    text: str
    kind: Kind  # memory: sqlite:///:memory:; journal: a plain path; server: another SQLAlchemy URL
    file: Path | None  # the study file of a journal or an SQLite URL

    @property
    def has_heartbeat(self) -> bool:
        """Whether a dead worker's trial is detected (Optuna's journal file records no heartbeat)."""
        return self.kind in ("sqlite", "postgresql", "server")

    @property
    def is_url(self) -> bool:
        """A URL (scheme://...) rather than a journal file's path."""
        return self.kind != "journal"


@functools.lru_cache(maxsize=256)
def parse_storage_url(text: str) -> StorageURL:
    """The one reading of a storage URL (cached: the same string is parsed once per process)."""
    if text == IN_MEMORY:
        return StorageURL(text, "memory", None)
    if "://" not in text:
        return StorageURL(text, "journal", Path(text))
    scheme = text.split("://", 1)[0]
    if scheme.startswith("sqlite"):
        file = Path(text[len("sqlite:///") :]) if text.startswith("sqlite:///") else None
        return StorageURL(text, "sqlite", file)
    return StorageURL(text, "postgresql" if scheme.startswith("postgresql") else "server", None)
