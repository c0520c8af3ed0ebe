"""Stopping a search cleanly: a stop signal that crosses processes, and Ctrl-C turned into it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StopSignal:
    """Set to make trials stop after their running epoch; worker processes see it through a file."""

    def __init__(self, path: Path | None = None) -> None:
        self._event = threading.Event()
        self.path = path

    def set(self) -> None:
        self._event.set()
        if self.path is not None:
            self.path.touch()

    def is_set(self) -> bool:
        return self._event.is_set() or (self.path is not None and self.path.exists())


@contextmanager
def stop_on_interrupt(stop: StopSignal) -> Iterator[StopSignal]:
    """Turn the first Ctrl-C into `stop.set()`; a second one interrupts at once.

    A KeyboardInterrupt raised in the middle of a storage write can leave an SQLite study locked, and
    the trial then can't even be marked failed. So the first Ctrl-C only sets the signal, and the
    objective stops at the next epoch boundary, between writes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread; nothing to install
        return

    def request_stop(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
