"""Optuna's log output as lrsearch wants it: failures only, and no traceback for a Ctrl-C."""

from __future__ import annotations

import logging
import warnings

from lrsearch.errors import Interrupted


def _drop_interrupt_traceback(record: logging.LogRecord) -> bool:
    if record.exc_info and record.exc_info[0] and issubclass(record.exc_info[0], KeyboardInterrupt | Interrupted):
        record.exc_info, record.exc_text = None, None  # Ctrl-C is no crash: its one-line notice will do
    return True


def quiet_optuna() -> None:
    """Per-trial chatter off (the progress bar says it); warnings and failed trials still show."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:
        if _drop_interrupt_traceback not in handler.filters:
            handler.addFilter(_drop_interrupt_traceback)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
