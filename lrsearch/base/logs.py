"""Log output as lrsearch wants it: Optuna's failures only, each in one line, and a background thread's
failed storage write in one line too."""

from __future__ import annotations

import logging
import os
import threading
import warnings

from lrsearch.base.errors import fault_line, is_fault

_log = logging.getLogger("lrsearch")


def _drop_traceback(record: logging.LogRecord) -> bool:
    # A failed trial's reason is in its one-line message and in its `fail_reason` attribute; a traceback
    # per failed trial would bury the progress bar (and a Ctrl-C is no crash at all). LRSEARCH_DEBUG=1
    # keeps them, to find where a model of your own raised.
    if not os.environ.get("LRSEARCH_DEBUG"):
        record.exc_info, record.exc_text = None, None
    return True


def one_line_thread_faults() -> None:
    """A heartbeat or figure thread whose storage write fails (disk full, server gone) logs one line
    instead of a traceback; the worker's own next write fails too and ends the command with the cause."""
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and is_fault(args.exc_value):
            _log.warning("a background write to the storage failed: %s", fault_line(args.exc_value))
        else:
            default(args)

    if not getattr(threading.excepthook, "one_line_faults", False):
        hook.one_line_faults = True  # type: ignore[attr-defined]
        threading.excepthook = hook


def quiet_optuna() -> None:
    """Per-trial chatter off (the progress bar says it); warnings and failed trials still show."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:
        if _drop_traceback not in handler.filters:
            handler.addFilter(_drop_traceback)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
