"""Storage URLs -> Optuna storages set up for several workers, and the lock that admits their trials.

The URL alone decides: `sqlite:///file.db` (the default; one machine, one or several processes),
a plain file path such as `studies/search.log` (Optuna's journal file), or `postgresql://...` (several
machines). These are the strings `optuna` and `optuna-dashboard` accept too.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

from optuna.storages import (
    BaseStorage,
    InMemoryStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend

from lrsearch.errors import ConfigError
from lrsearch.paths import file_part

# A trial whose worker died is retried at most this often; a trial that kills its worker each time
# (out of memory, say) must not loop forever.
MAX_RETRIES = 3
IN_MEMORY = "sqlite:///:memory:"  # a study that lives as long as its process (tests, notebooks, benchmarks)
SQLITE_BUSY_TIMEOUT_S = 120  # how long a write waits for another process's write before failing


def open_storage(url: str, must_exist: bool = False, heartbeat: int | None = None) -> BaseStorage:
    """Open the storage a URL names; a file's folder is created unless `must_exist`.

    Args:
        url: `sqlite:///path`, another SQLAlchemy URL (`postgresql://...`), or a journal file's path.
        must_exist: refuse a storage file that isn't there yet (for commands that only read).
        heartbeat: seconds between a running trial's heartbeats (database storages only); a trial
            silent for three of them is failed and queued again, up to `MAX_RETRIES` times.

    Raises:
        ConfigError: the URL is malformed, its driver is missing, or the server or file can't be reached.
    """
    if url == IN_MEMORY:
        return _in_memory()
    file = _storage_file(url)
    if "://" not in url and file.suffix in {".db", ".sqlite", ".sqlite3"}:
        raise ConfigError(
            f"--storage: {url} looks like an SQLite file; write sqlite:///{url} "
            "(a plain path is a journal file, such as studies/search.log)"
        )
    if file is not None:
        if must_exist and not file.exists():
            raise ConfigError(f"--storage: no study file at {file}; run `lrsearch optimize` first")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--storage: cannot create {file.parent}: {error.strerror}") from None
    if "://" not in url:
        return JournalStorage(JournalFileBackend(url))
    heartbeat_settings: dict[str, Any] = {}
    if heartbeat is not None:
        heartbeat_settings = {
            "heartbeat_interval": heartbeat,
            "grace_period": 3 * heartbeat,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
        }
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if url.startswith("sqlite") else {}
    try:
        storage = RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat_settings)
    except Exception as error:  # SQLAlchemy, driver and Optuna errors alike mean "can't use this URL"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--storage: cannot open {url!r}: {first_line}") from None
    if url.startswith("sqlite"):
        _serialize_sqlite_writes(storage)
    return storage


@functools.cache
def _in_memory() -> InMemoryStorage:
    """This process's in-memory storage: every opening of `sqlite:///:memory:` in a process (the search,
    its worker, the report) must see the same studies. Nothing of it outlives the process."""
    return InMemoryStorage()


def has_heartbeat(url: str) -> bool:
    """Whether a dead worker's trial is detected in this storage (Optuna's journal file has no heartbeat)."""
    return "://" in url and url != IN_MEMORY


def artifact_folder(url: str, setting: Path | None = None) -> Path | None:
    """Where the trials' pictures (Optuna artifacts) are kept: `setting` when given, else `artifacts/`
    beside the study file, or `studies/artifacts` for a database server; None for an in-memory study.

    Workers on several machines need `setting` to name a folder they all share for the dashboard to
    show every trial's pictures; the study's own figures live in the study and need nothing.
    """
    if setting is not None:
        return setting
    if url == "sqlite:///:memory:":
        return None
    file = _storage_file(url)
    return (file.parent if file is not None else Path("studies")) / "artifacts"


def _storage_file(url: str) -> Path | None:
    if "://" not in url:
        return Path(url)
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return None
    return Path(url[len(prefix) :])


def _serialize_sqlite_writes(storage: RDBStorage) -> None:
    """Make SQLite safe and cheap for several processes.

    WAL lets readers (the dashboard, a progress bar) read while a worker writes, and with
    `synchronous=NORMAL` a commit no longer waits for the disk; a crash of the process loses nothing,
    only a power cut can lose the last commits. `BEGIN IMMEDIATE` takes the write lock at the start of
    every transaction: without it, a transaction that read before another process wrote fails at once
    with "database is locked" instead of waiting its turn.
    """
    from sqlalchemy import event

    def on_connect(connection: Any, record: Any) -> None:
        connection.isolation_level = None  # we send BEGIN ourselves
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(storage.engine, "connect", on_connect)
    event.listen(storage.engine, "begin", on_begin)
    storage.engine.dispose()  # connections opened while Optuna set up the tables lack the settings


class AdmissionLock(Protocol):
    """Held by a worker while it decides whether the study needs another trial and asks for it, so
    that workers together start exactly the trials the budget allows."""

    def acquire(self) -> Any: ...

    def release(self) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


def admission_lock(url: str, study_name: str) -> AdmissionLock:
    """A lock shared by every worker of the study: an advisory lock in PostgreSQL (any machine), a
    file lock beside a storage file (one machine), or a thread lock for an in-memory study."""
    import filelock

    if url.startswith("postgresql"):
        return _PostgresAdvisoryLock(url, f"lrsearch:{study_name}")
    file = _storage_file(url)
    if file is not None:
        # Beside the study file; a name that is not a plain file name (`../x`) must not lead elsewhere.
        return filelock.FileLock(f"{file}.{file_part(study_name)}.lock")
    if url == "sqlite:///:memory:":
        return threading.Lock()
    digest = hashlib.sha256(f"{url}\n{study_name}".encode()).hexdigest()[:16]
    return filelock.FileLock(Path(tempfile.gettempdir()) / f"lrsearch-{digest}.lock")  # this machine only


class _PostgresAdvisoryLock:
    """`pg_advisory_lock` on its own connection: the server releases it if the worker dies."""

    def __init__(self, url: str, name: str) -> None:
        import sqlalchemy

        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._connection: Any = None

    def acquire(self) -> None:
        import sqlalchemy

        self._connection = self._engine.connect()
        self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})

    def release(self) -> None:
        import sqlalchemy

        self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        self._connection.close()
        self._connection = None

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
