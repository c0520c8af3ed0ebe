from __future__ import annotations

import gc
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TINY
from optuna.storages import JournalStorage, RDBStorage
from typer.testing import CliRunner

from lrsearch.base.errors import ConfigError
from lrsearch.cli import app
from lrsearch.store.storage import (
    admission_lock,
    exclusive_search,
    has_heartbeat,
    open_storage,
    scrubbed,
    shown_url,
    unencoded_hint,
)

LRSEARCH = Path(sys.executable).parent / "lrsearch"
PASSWORD = "S3cretPW"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://nobody@127.0.0.1:9/none", "--storage: cannot open 'postgresql://nobody@127.0.0.1:9/none'"),
        ("notadb://x", "--storage: cannot open 'notadb://x'"),
        ("sqlite:////proc/lrsearch/studies.db", "--storage: cannot create /proc/lrsearch"),
        ("studies/lrsearch.db", "--storage: studies/lrsearch.db looks like an SQLite file; write sqlite:///"),
    ],
)
def test_unusable_storage_is_a_config_error(url, message):
    with pytest.raises(ConfigError) as raised:
        open_storage(url)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_the_url_alone_picks_the_storage(tmp_path):
    from lrsearch.store.optuna_private import backend_of

    for url, made in [(str(tmp_path / "search.log"), JournalStorage), (f"sqlite:///{tmp_path}/search.db", RDBStorage)]:
        assert isinstance(open_storage(url, wrapped=False), made)  # as optuna-dashboard is given it
        assert isinstance(backend_of(optuna.create_study(storage=open_storage(url))), made)  # behind lrsearch's wrapper
    assert has_heartbeat(f"sqlite:///{tmp_path}/search.db") and not has_heartbeat(str(tmp_path / "search.log"))


def test_an_in_memory_search_runs_and_its_study_is_the_process_s(tiny_config_file):
    # The search's worker opens the storage again: it must find the study the command created.
    result = CliRunner().invoke(
        app, ["optimize", "--config", str(tiny_config_file), "--storage", "sqlite:///:memory:", "--trials", "2"]
    )
    assert result.exit_code == 0, result.output
    assert open_storage("sqlite:///:memory:") is open_storage("sqlite:///:memory:")
    assert len(optuna.load_study(study_name="default", storage=open_storage("sqlite:///:memory:")).trials) >= 2


def test_sqlite_is_in_wal_mode_for_concurrent_readers(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/search.db", heartbeat=5)
    study = optuna.create_study(storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    with sqlite3.connect(tmp_path / "search.db") as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reader.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2
    assert storage.get_heartbeat_interval() == 5


def test_a_journal_study_opens_again(tmp_path):
    path = str(tmp_path / "search.log")
    optuna.create_study(study_name="s", storage=open_storage(path)).optimize(lambda t: t.suggest_int("n", 0, 9), 3)
    assert len(optuna.load_study(study_name="s", storage=open_storage(path, must_exist=True)).trials) == 3
    with pytest.raises(ConfigError, match="no study file at"):
        open_storage(str(tmp_path / "missing.log"), must_exist=True)


def test_the_admission_lock_of_a_study_file_excludes_other_holders(tmp_path):
    url = f"sqlite:///{tmp_path}/search.db"
    first, second = admission_lock(url, "s"), admission_lock(url, "s")
    first.acquire()
    with pytest.raises(TimeoutError):
        second.acquire(timeout=0.1)
    first.release()
    second.acquire(timeout=0.1)
    second.release()
    assert admission_lock(url, "other").acquire(timeout=0.1)  # another study, another lock


def test_the_postgres_advisory_lock_excludes_other_holders(postgres_url):
    import threading

    first, second = admission_lock(postgres_url, "s"), admission_lock(postgres_url, "s")
    first.acquire()
    got_it = threading.Event()
    waiter = threading.Thread(target=lambda: (second.acquire(), got_it.set()))
    waiter.start()
    assert not got_it.wait(0.5)  # blocked while the first holds it
    first.release()
    assert got_it.wait(5)
    second.release()
    waiter.join()


@pytest.mark.parametrize(
    ("url", "shown", "password"),
    [
        ("postgresql://lrsearch:S3cretPW@db:5432/lrsearch", "postgresql://lrsearch:***@db:5432/lrsearch", "S3cretPW"),
        (
            "postgresql+psycopg://u:S3cret%40PW@db/x?sslmode=require",
            "postgresql+psycopg://u:***@db/x?sslmode=require",
            "S3cret@PW",
        ),
        ("postgresql://u:S3cret@PW@db/x", "postgresql://u:***@db/x", "S3cret@PW"),  # an unescaped @ in it
        (
            "postgresql://u:S3cretPW@db:noport/x",
            "postgresql://u:***@db:noport/x",
            "S3cretPW",
        ),  # SQLAlchemy can't parse it
        ("postgresql://lrsearch@db/lrsearch", "postgresql://lrsearch@db/lrsearch", None),
        ("sqlite:///studies/lrsearch.db", "sqlite:///studies/lrsearch.db", None),
        ("sqlite:///:memory:", "sqlite:///:memory:", None),
        ("studies/search.log", "studies/search.log", None),
    ],
)
def test_a_shown_url_has_its_password_masked(url, shown, password):
    assert shown_url(url) == shown
    error = f"cannot open {url}: password {password} rejected"
    assert scrubbed(error, url) == (f"cannot open {shown}: password *** rejected" if password else error)


def test_an_unreachable_storage_s_error_keeps_its_password():
    with pytest.raises(ConfigError) as raised:
        open_storage(f"postgresql://lrsearch:{PASSWORD}@127.0.0.1:9/none")
    assert str(raised.value).startswith("--storage: cannot open 'postgresql://lrsearch:***@127.0.0.1:9/none': ")
    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize(
    ("password", "hidden"),
    [("Sq7@Rt9", ["Sq7", "Rt9"]), ("Ab1@Cq2:Dz3", ["Ab1", "Cq2", "Dz3"]), ("Xw1@Yv2@Zu3", ["Xw1", "Yv2", "Zu3"])],
    ids=["one @", "@ then :", "two @"],
)
def test_a_password_with_an_unencoded_at_is_masked_whole_and_the_error_says_how_to_encode_it(password, hidden):
    """SQLAlchemy ends such a password at its first `@`: the driver then names the rest of it as the host."""
    url = f"postgresql://lrsearch:{password}@127.0.0.1:9/none"
    assert shown_url(url) == "postgresql://lrsearch:***@127.0.0.1:9/none"
    with pytest.raises(ConfigError) as raised:
        open_storage(url)
    message = str(raised.value)
    assert all(piece not in message for piece in hidden), message
    assert "'***@127.0.0.1" in message  # where the driver named the misread host (or port)
    assert "urllib.parse.quote(password, safe='') writes `@` as %40" in message
    assert "***@" in scrubbed(f"failed to resolve host '{password.split('@', 1)[1]}@127.0.0.1'", url)
    assert unencoded_hint(url.replace(password, "Sq7%40Rt9")) == "" and unencoded_hint(url) != ""


def test_a_percent_encoded_password_with_an_at_opens_a_real_server(postgres_url):
    from urllib.parse import quote

    unencoded = postgres_url.replace("postgresql://lrsearch@", "postgresql://lrsearch:Sq7@Rt9@")
    with pytest.raises(ConfigError, match="writes `@` as %40") as raised:
        open_storage(unencoded)
    assert "Sq7" not in str(raised.value) and "Rt9" not in str(raised.value)
    encoded = postgres_url.replace("postgresql://lrsearch@", f"postgresql://lrsearch:{quote('Sq7@Rt9', safe='')}@")
    assert isinstance(open_storage(encoded, wrapped=False), RDBStorage)  # the test server trusts every password


HELD_BY = {
    "optimize": "is busy: another `lrsearch optimize` is running it; wait for it to end, or add workers",
    "certify": "is busy: `lrsearch certify` is running on it; wait for it to end",
}


@pytest.mark.parametrize("storage", ["sqlite", "journal", "memory", "postgres"])
def test_a_study_s_holder_is_named_when_another_command_is_refused(storage, tmp_path, request):
    url = {
        "sqlite": f"sqlite:///{tmp_path}/s.db",
        "journal": f"{tmp_path}/s.log",
        "memory": "sqlite:///:memory:",
    }.get(storage) or request.getfixturevalue("postgres_url")
    for holder, said in HELD_BY.items():
        with exclusive_search(url, "s", holder=holder):
            for other in HELD_BY:
                with pytest.raises(ConfigError, match=re.escape(f"study 's' {said}")):
                    with exclusive_search(url, "s", holder=other):
                        pass
        with exclusive_search(url, "s", holder="certify"):  # it went with its holder
            pass
    if storage in {"sqlite", "journal"}:
        assert not list(tmp_path.rglob("*.holder"))  # nothing left beside the study
        with exclusive_search(url, "s", holder="certify"):
            next(tmp_path.rglob("*.holder")).unlink()  # a holder starting or ending: its role not yet written
            with pytest.raises(ConfigError, match=r"another lrsearch command \(optimize or certify\) is using it"):
                with exclusive_search(url, "s"):
                    pass


def _lrsearch(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LRSEARCH, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_no_command_prints_the_storage_password(postgres_url, tmp_path):
    """A search, a worker, the dashboard and failed connections, on a URL with a password (the test
    server trusts every password): the password appears in none of their output."""
    url = postgres_url.replace("postgresql://lrsearch@", f"postgresql://lrsearch:{PASSWORD}@")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(dict(TINY) | {"study": {"trials": 3, "figures": False}}))
    outputs = {}

    search = _lrsearch("optimize", "--config", config, "--storage", url, "--stack", 1, cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    assert (
        "in postgresql://lrsearch:***@127.0.0.1" in search.stdout
        and "--storage postgresql://lrsearch:***@" in search.stdout
    )
    outputs["optimize"] = search
    outputs["worker"] = _lrsearch("worker", "--storage", url, "--study-name", "default", cwd=tmp_path)
    assert outputs["worker"].returncode == 0, outputs["worker"].stderr
    outputs["report"] = _lrsearch("report", "--storage", url, "-o", tmp_path / "report.html", cwd=tmp_path)
    assert outputs["report"].returncode == 0, outputs["report"].stderr

    dashboard = subprocess.Popen(
        [LRSEARCH, "dashboard", "--storage", url, "--study-name", "default", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    banner = dashboard.stdout.readline()
    dashboard.send_signal(signal.SIGINT)
    stdout, stderr = dashboard.communicate(timeout=120)  # a loaded machine: it checks output, not speed
    assert re.match(r"optuna-dashboard on postgresql://lrsearch:\*\*\*@127\.0\.0\.1:\d+/\w+: http", banner), banner
    outputs["dashboard"] = subprocess.CompletedProcess([], dashboard.returncode, banner + stdout, stderr)

    wrong_port = re.sub(r":\d+/", ":9/", url)
    wrong_database = url.rsplit("/", 1)[0] + "/no_such_database"
    outputs["optimize on a closed port"] = _lrsearch(
        "optimize", "--config", config, "--storage", wrong_port, cwd=tmp_path
    )
    outputs["worker on a missing database"] = _lrsearch("worker", "--storage", wrong_database, cwd=tmp_path)
    outputs["dashboard on a missing study"] = _lrsearch(
        "dashboard", "--storage", url, "--study-name", "x", cwd=tmp_path
    )
    for failed in ("optimize on a closed port", "worker on a missing database", "dashboard on a missing study"):
        assert outputs[failed].returncode == 2 and outputs[failed].stderr.startswith("Error: --"), outputs[failed]
    assert "'postgresql://lrsearch:***@127.0.0.1:9/" in outputs["optimize on a closed port"].stderr

    for command, run in outputs.items():
        assert PASSWORD not in run.stdout + run.stderr, command


@pytest.mark.parametrize(
    ("text", "kind", "file", "heartbeat"),
    [
        ("sqlite:///:memory:", "memory", None, False),
        ("studies/search.log", "journal", "studies/search.log", False),
        ("sqlite:///studies/lrsearch.db", "sqlite", "studies/lrsearch.db", True),
        ("sqlite:////tmp/x.db", "sqlite", "/tmp/x.db", True),
        ("postgresql://u:p@127.0.0.1/db", "postgresql", None, True),
        ("postgresql+psycopg://u:p@h/db", "postgresql", None, True),
        ("mysql://u@h/db", "server", None, True),
    ],
)
def test_a_storage_url_is_read_in_one_place(text, kind, file, heartbeat):
    from lrsearch.base.storage_url import parse_storage_url
    from lrsearch.store.storage import artifact_folder, has_heartbeat

    parsed = parse_storage_url(text)
    assert (parsed.kind, parsed.file, parsed.has_heartbeat) == (kind, None if file is None else Path(file), heartbeat)
    assert has_heartbeat(text) is heartbeat
    if kind == "memory":
        assert artifact_folder(text) is None
    elif file is not None:
        assert artifact_folder(text) == Path(file).parent / "artifacts"


def test_a_forked_process_that_lets_go_of_a_storage_leaves_its_parent_s_session_open(postgres_url):
    # A storage is closed when it goes (`open_storage`); in a child forked from its process the connections
    # are the parent's, and closing one would end the parent's session on the server.
    storage = open_storage(postgres_url, wrapped=False)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "before")
    child = os.fork()
    if child == 0:
        code = 0
        try:
            del storage
            gc.collect()  # the storage goes, and its finalizer runs, in the child
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert storage.get_study_name_from_id(study_id) == "before"  # the parent's connection still works
