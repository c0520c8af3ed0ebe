"""The user's cache folder: what a command found out once on this machine (a task's data, a model's stack
speeds), kept for the next command. Losing it costs only the time to find it out again, so a file that
can't be written is no error, and each is written whole (a temporary file, then renamed): two commands
at once each leave a whole file, never a mix."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

_log = logging.getLogger(__name__)


def cache_folder(part: str) -> Path:
    """`$XDG_CACHE_HOME/lrsearch/<part>`, else `~/.cache/lrsearch/<part>` (the XDG base directory
    convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lrsearch" / part


def write_whole(path: Path, content: bytes) -> bool:
    """Put `content` at `path`, whole or not at all; False (logged at debug level) when it can't."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError as error:
        _log.debug("cache %s not written: %s", path, error)
        return False
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except OSError as error:
        _log.debug("cache %s not written: %s", path, error)
        Path(temporary).unlink(missing_ok=True)
        return False
    return True
