"""Storage URLs -> Optuna storages set up for several workers, and the lock that admits their trials.

The URL alone decides: `sqlite:///file.db` (the default; one machine, one or several processes),
a plain file path such as `studies/search.log` (Optuna's journal file), or `postgresql://...` (several
machines). These are the strings `optuna` and `optuna-dashboard` accept too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from optuna.storages import (
    BaseStorage,
    InMemoryStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from lrsearch.base.errors import ConfigError, fault_line
from lrsearch.base.paths import file_part
from lrsearch.base.storage_url import parse_storage_url
from lrsearch.store.optuna_private import fast_path_on, for_studies

# A trial whose worker died is retried at most this often; a trial that kills its worker each time
# (out of memory, say) must not loop forever.
MAX_RETRIES = 3
SQLITE_BUSY_TIMEOUT_S = 120  # how long a write waits for another process's write before failing
_log = logging.getLogger("lrsearch")
MASK = "***"  # what a password is shown as (SQLAlchemy's own mask)
# `scheme://user:PASSWORD@`, for text SQLAlchemy can't parse or splits wrongly: the password runs from the
# user's `:` to the last `@` of the word (the host's), whatever it holds (`:`, `/`, an unencoded `@`).
_CREDENTIALS = re.compile(r"(?P<user>[A-Za-z][\w+.-]*://[^\s:/]*):\S*@")
ENCODE_HINT = "a password holding `@` is written percent-encoded in the URL: urllib.parse.quote(password, safe='')"
ENCODE_HINT += " writes `@` as %40"


def shown_url(url: str) -> str:
    """The storage URL as it may be printed: its password masked (it would land in terminals, CI logs
    and bug reports). A journal file's path, an SQLite URL or a URL without a password come back as
    they are; one SQLAlchemy can't parse has any `//user:PASSWORD@` masked all the same."""
    if not parse_storage_url(url).is_url:
        return url
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # ArgumentError, or ValueError for a bad port: no URL, but maybe a password
        return _CREDENTIALS.sub(rf"\g<user>:{MASK}@", url)
    if parsed.query.get("password"):  # libpq also takes `?password=...`
        parsed = parsed.update_query_dict({"password": MASK})
    elif parsed.password is None:
        return url
    # The regex on top: an unescaped `@` in a password makes SQLAlchemy split it at the wrong `@`.
    return _CREDENTIALS.sub(rf"\g<user>:{MASK}@", parsed.render_as_string(hide_password=True))


def scrubbed(text: str, url: str) -> str:
    """`text` (an error from SQLAlchemy, a driver or Optuna about `url`) without `url`'s password,
    whether it quotes the URL or the password alone."""
    for secret in _passwords(url):
        text = text.replace(secret, MASK)
    for piece in _misread_as_host(url):
        text = text.replace(f"{piece}@", f"{MASK}@")
    return _CREDENTIALS.sub(rf"\g<user>:{MASK}@", text)


def unencoded_hint(url: str) -> str:
    """`ENCODE_HINT` in brackets when `url`'s password holds an unencoded `@`; else nothing."""
    return f" ({ENCODE_HINT})" if _misread_as_host(url) else ""


def _misread_as_host(url: str) -> list[str]:
    """What a driver takes for the start of the host (or port) when the password holds an unencoded `@`:
    SQLAlchemy ends the password `sec@ret` at its first `@`, and the driver cannot resolve `ret@127.0.0.1`."""
    pieces = set()
    for match in _CREDENTIALS.finditer(url):
        password = match.group(0)[len(match.group("user")) + 1 : -1]
        if "@" in password:
            after = password.index("@")
            pieces |= {password[cut + 1 :] for cut in range(after, len(password)) if password[cut] in "@:"}
    return sorted(pieces - {""}, key=len, reverse=True)


def _passwords(url: str) -> list[str]:
    """The password of `url` as written and as decoded, longest first so neither leaves a piece of the other."""
    from urllib.parse import unquote

    from sqlalchemy.engine import make_url

    found = {match.group(0)[len(match.group("user")) + 1 : -1] for match in _CREDENTIALS.finditer(url)}
    try:
        parsed = make_url(url)
        found |= {parsed.password or "", str(parsed.query.get("password") or "")}
    except Exception:  # unparseable: the regex found what there is
        pass
    found |= {unquote(secret) for secret in found}
    return sorted(found - {"", MASK}, key=len, reverse=True)


def open_storage(url: str, must_exist: bool = False, heartbeat: int | None = None, wrapped: bool = True) -> BaseStorage:
    """Open the storage a URL names; a file's folder is created unless `must_exist`.

    Args:
        url: `sqlite:///path`, another SQLAlchemy URL (`postgresql://...`), or a journal file's path.
        must_exist: refuse a storage file that isn't there yet (for commands that only read).
        heartbeat: seconds between a running trial's heartbeats (database storages only); a trial
            silent for three of them is failed and queued again, up to `MAX_RETRIES` times.
        wrapped: the storage as lrsearch's studies hold it (`optuna_private.for_studies`: Optuna's storage
            wrapped for lrsearch's fast path, where it runs); False: Optuna's storage itself (for
            optuna-dashboard, which knows Optuna's storage classes).

    Raises:
        ConfigError: the URL is malformed, its driver is missing, or the server or file can't be reached.
    """
    if parse_storage_url(url).kind == "memory":
        return _in_memory_for_studies() if wrapped and fast_path_on() else _in_memory()
    storage = _opened(url, must_exist, heartbeat)
    return for_studies(storage) if wrapped else storage


def _opened(url: str, must_exist: bool, heartbeat: int | None) -> BaseStorage:
    """The Optuna storage of `open_storage` (not the in-memory one)."""
    if url.strip() in {"", "sqlite://", "sqlite:///"}:
        raise ConfigError(
            f"--storage: {url!r} names no file; give sqlite:///FILE, a journal FILE such as studies/search.log, "
            "postgresql://..., or sqlite:///:memory: for a study kept in this process"
        )
    parsed = parse_storage_url(url)
    file = parsed.file
    if parsed.kind == "journal" and file.suffix in {".db", ".sqlite", ".sqlite3"}:
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
    if parsed.kind == "journal":
        return _open_journal(url)
    heartbeat_settings: dict[str, Any] = {}
    if heartbeat is not None:
        heartbeat_settings = {
            "heartbeat_interval": heartbeat,
            "grace_period": 3 * heartbeat,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
        }
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if parsed.kind == "sqlite" else {}
    try:
        storage = RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat_settings)
    except Exception as error:  # SQLAlchemy, driver and Optuna errors alike mean "can't use this URL"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"--storage: cannot open {shown_url(url)!r}: {scrubbed(first_line, url)}{unencoded_hint(url)}"
        ) from None
    if parsed.kind == "sqlite":
        _serialize_sqlite_writes(storage)
    # Closed when the storage goes, and at the latest when the process exits, whatever the garbage collector
    # does then (a command skips its last collection: `cli.main`): SQLite folds its write-ahead log back into
    # the study file, so the file alone holds the whole study; a server sees its sessions end.
    weakref.finalize(storage, _close, storage.engine, os.getpid())
    return storage


def _close(engine: Any, opened_by: int) -> None:
    """Close the engine's connections; in a process forked from the one that opened them, only forget
    them (SQLAlchemy's way): they are the parent's, and closing a server's would end its session."""
    engine.dispose(close=os.getpid() == opened_by)


def _open_journal(path: str) -> JournalStorage:
    """Optuna's journal file, read once now so that a file that is not a journal is one line here."""
    try:
        storage = JournalStorage(SafeJournalFile(path))
        storage.get_all_studies()  # replays the whole file (kept in the storage, not read twice)
    except IsADirectoryError:
        raise ConfigError(
            f"--storage: {path} is a folder; a journal storage is a file, such as studies/search.log"
        ) from None
    except OSError as error:
        raise ConfigError(f"--storage: cannot use journal file {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AssertionError):  # lines that are JSON, but not journal records
        raise ConfigError(
            f"--storage: {path} is not an Optuna journal file (a line of it is not a journal record)"
        ) from None
    return storage


class SafeJournalFile(JournalFileBackend):
    """Optuna's journal file, never left unreadable by a write.

    A write cut off (a killed process, a full disk) leaves a partial last line. Optuna reads past it,
    but appends the next record onto it, and from then on every reader fails. Here each append first
    drops such a partial line (it is a record that never finished, so no one ever read it) and, when
    the write itself fails, cuts the file back to where it began. Both happen under the journal's own
    lock, which every writer of the file takes.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._writers = JournalFileSymlinkLock(path)
        super().__init__(path, lock_obj=self._writers)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        self._writers.acquire()
        try:
            with open(self._path, "r+b", buffering=0) as file:
                start = _end_of_last_line(file)
                try:
                    written = 0
                    while written < len(data):
                        written += file.write(data[written:])
                    os.fsync(file.fileno())
                except OSError:
                    os.ftruncate(file.fileno(), start)
                    raise
        finally:
            self._writers.release()


def _end_of_last_line(file: Any) -> int:
    """The size of the file's complete lines; a partial line after them is cut off (and said)."""
    size = file.seek(0, os.SEEK_END)
    position = size
    while position > 0:
        chunk_start = max(0, position - 65536)
        file.seek(chunk_start)
        newline = file.read(position - chunk_start).rfind(b"\n")
        if newline >= 0:
            position = chunk_start + newline + 1
            break
        position = chunk_start
    if position != size:
        os.ftruncate(file.fileno(), position)
        _log.warning(
            "journal %s: dropped an unfinished last record (%d bytes) left by a write that was cut off",
            file.name,
            size - position,
        )
    file.seek(position)
    return position


@functools.cache
def _in_memory() -> InMemoryStorage:
    """This process's in-memory storage: every opening of `sqlite:///:memory:` in a process (the search,
    its worker, the report) must see the same studies. Nothing of it outlives the process."""
    return InMemoryStorage()


@functools.cache
def _in_memory_for_studies() -> BaseStorage:
    """This process's in-memory storage as lrsearch's studies hold it (one wrapper, as one storage)."""
    return for_studies(_in_memory())


def has_heartbeat(url: str) -> bool:
    """Whether a dead worker's trial is detected in this storage (Optuna's journal file has no heartbeat)."""
    return parse_storage_url(url).has_heartbeat


def artifact_folder(url: str, setting: Path | None = None) -> Path | None:
    """Where the trials' pictures (Optuna artifacts) are kept: `setting` when given, else `artifacts/`
    beside the study file, or `studies/artifacts` for a database server; None for an in-memory study.

    Workers on several machines need `setting` to name a folder they all share for the dashboard to
    show every trial's pictures; the study's own figures live in the study and need nothing.
    """
    if setting is not None:
        return setting
    parsed = parse_storage_url(url)
    if parsed.kind == "memory":
        return None
    return (parsed.file.parent if parsed.file is not None else Path("studies")) / "artifacts"


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


def admission_lock(url: str, study_name: str, role: str = "", holder: str = "") -> AdmissionLock:
    """A lock shared by every worker of the study: an advisory lock in PostgreSQL (any machine), a
    file lock beside a storage file (one machine), or a thread lock for an in-memory study.

    Args:
        role: what else of the study it guards ("search", "figures"); no study name gives the same lock.
        holder: the holding command's role, which a PostgreSQL lock's connection carries as its name.
    """
    import filelock

    name = f"{study_name}\0{role}" if role else study_name  # NUL: no study "a.search" meets study a's role
    parsed = parse_storage_url(url)
    if parsed.kind == "postgresql":
        return _PostgresAdvisoryLock(url, f"lrsearch:{name}", holder)
    file = parsed.file
    if file is not None:
        # In one folder beside the study file (its locks, one a study and role, stay there: removing a
        # lock file another process may be opening would let two processes hold "the same" lock); a name
        # that is not a plain file name (`../x`) must not lead elsewhere.
        folder = Path(f"{file}.locks")
        try:
            folder.mkdir(exist_ok=True)
        except OSError:  # a read-only folder: `exclusive_search` says so in one line
            pass
        return filelock.FileLock(str(folder / f"{file_part(name)}.lock"))
    if parsed.kind == "memory":
        return threading.Lock()
    digest = hashlib.sha256(f"{url}\n{name}".encode()).hexdigest()[:16]
    return filelock.FileLock(Path(tempfile.gettempdir()) / f"lrsearch-{digest}.lock")  # this machine only


_SEARCHES_IN_MEMORY: dict[str, str] = {}  # studies of sqlite:///:memory: that a command of this process holds: its role


@contextmanager
def exclusive_search(url: str, study_name: str, holder: str = "optimize") -> Iterator[None]:
    """Held by the command that sets a study's trial budget and runs it (`lrsearch optimize`,
    `lrsearch.search`), or certifies its best trial (`lrsearch certify`), for as long as it runs.

    A second such command on the same study would set the budget under the first one's feet (the first
    would stop early and say it finished), or change the best trial being certified; it is refused
    instead, and `lrsearch worker` is the way to add workers to a running search. Like the admission
    lock, it is released if the process dies. The holder's role is recorded beside it (a file beside a
    file lock, the lock connection's application name on PostgreSQL), so a refusal names it.

    Args:
        holder: the holding command's role: "optimize" (`lrsearch.search` too) or "certify".

    Raises:
        ConfigError: another command holds the study.
    """
    if parse_storage_url(url).kind == "memory":
        if study_name in _SEARCHES_IN_MEMORY:
            raise _busy(study_name, _SEARCHES_IN_MEMORY[study_name])
        _SEARCHES_IN_MEMORY[study_name] = holder
        try:
            yield
        finally:
            _SEARCHES_IN_MEMORY.pop(study_name, None)
        return
    lock: Any = admission_lock(url, study_name, role="search", holder=holder)
    if isinstance(lock, _PostgresAdvisoryLock):
        try:
            taken = lock.try_acquire()
            if not taken:
                raise _busy(study_name, lock.holder())
        except ConfigError:
            raise
        except Exception as error:  # noqa: BLE001 - the server went away since the storage was opened
            raise ConfigError(
                f"--storage: cannot open {shown_url(url)!r}: {scrubbed(fault_line(error), url)}{unencoded_hint(url)}"
            ) from None
        role_file = None
    else:
        import filelock

        folder = Path(lock.lock_file).parent
        if not os.access(folder, os.W_OK):  # filelock would wait for a lock it can never make, and say busy
            raise ConfigError(f"--storage: cannot write in {folder} (read-only?): a search writes its study there")
        role_file = Path(f"{lock.lock_file}.holder")  # not the lock file: filelock empties it on every try
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise _busy(study_name, _read_role(role_file)) from None
    try:
        if role_file is not None:
            role_file.write_text(holder, encoding="utf-8")
        yield
    finally:
        if role_file is not None:
            role_file.unlink(missing_ok=True)
        lock.release()


def _read_role(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.read(20)  # a role is a word: whatever else a file there holds is not read
    except OSError:  # its holder is starting or ending: no role to name
        return None


def _busy(study_name: str, holder: str | None) -> ConfigError:
    """The refusal, naming the command that holds the study when its role is known."""
    if holder == "optimize":
        return ConfigError(
            f"--study-name: study {study_name!r} is busy: another `lrsearch optimize` is running it; wait for it "
            f"to end, or add workers to it with `lrsearch worker --study-name {study_name}`"
        )
    if holder == "certify":
        return ConfigError(
            f"--study-name: study {study_name!r} is busy: `lrsearch certify` is running on it; wait for it to end"
        )
    return ConfigError(
        f"--study-name: study {study_name!r} is busy: another lrsearch command (optimize or certify) is using it; "
        "wait for it to end"
    )


_APPLICATION = "lrsearch "  # a lock connection's name: this, then its holder's role


class _PostgresAdvisoryLock:
    """`pg_advisory_lock` on its own connection: the server releases it if the worker dies."""

    def __init__(self, url: str, name: str, holder: str = "") -> None:
        import sqlalchemy

        # The holder's role as the connection's name: whoever finds the lock taken reads it from pg_stat_activity.
        named = {"connect_args": {"application_name": f"{_APPLICATION}{holder}"}} if holder else {}
        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **named)
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._connection: Any = None

    def holder(self) -> str | None:
        """The role of the session holding the lock, as its connection is named; None when unknown."""
        import sqlalchemy

        # A bigint advisory key is kept as two 32-bit halves: classid the high one, objid the low one.
        high, low = (self._key >> 32) & 0xFFFFFFFF, self._key & 0xFFFFFFFF
        query = sqlalchemy.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) LIMIT 1"
        )
        try:
            with self._engine.connect() as connection:
                name = connection.execute(query, {"high": high, "low": low}).scalar()
        except Exception:  # noqa: BLE001 - the refusal stands; only who holds it is unknown
            return None
        return name[len(_APPLICATION) :] if isinstance(name, str) and name.startswith(_APPLICATION) else None

    def acquire(self) -> None:
        import sqlalchemy

        connection = self._engine.connect()
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def try_acquire(self) -> bool:
        """Take the lock if no one holds it; False (and no connection kept) if someone does."""
        import sqlalchemy

        connection = self._engine.connect()
        try:
            taken = connection.execute(
                sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
        except BaseException:
            connection.close()
            raise
        if taken:
            self._connection = connection
        else:
            connection.close()
        return bool(taken)

    def release(self) -> None:
        """Unlock; when the server is gone, closing the connection is all there is to do (the server
        frees a session's advisory locks when the session ends), and the error that ended the command
        must not be replaced by this one."""
        import sqlalchemy

        connection, self._connection = self._connection, None
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except Exception as error:  # noqa: BLE001
            _log.warning("the study's lock was freed by closing its connection: %s", fault_line(error))
        finally:
            connection.close()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
