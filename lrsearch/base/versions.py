"""Which releases of a library lrsearch reaches into privately, and the one line said when it meets another.

Optuna's storage, optuna-dashboard's stored formats and torch's private names each have a fast or own path
that runs only on the releases the test suite ran it on; elsewhere the public path serves, and says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("lrsearch")


def is_tested(version: str, tested: tuple[str, ...]) -> bool:
    """Whether `version`'s major.minor (a local tag such as `+cpu` dropped) is one of `tested` ("5.1")."""
    return ".".join(version.split("+")[0].split(".")[:2]) in tested


def say_untested_once(
    gate: Callable[..., Any], what: str, version: str | None, tested: tuple[str, ...], then: str
) -> None:
    """Log, once per `gate` (the function that decides), that `what` `version` was not tested and `then`."""
    if getattr(gate, "said", False):
        return
    gate.said = True  # type: ignore[attr-defined]
    _log.warning(
        "%s %s is not one lrsearch was tested with (%s): %s",
        what,
        version,
        ", ".join(f"{v}.x" for v in tested),
        then,
    )
