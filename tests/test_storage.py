from __future__ import annotations

import sqlite3

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from typer.testing import CliRunner

from lrsearch.cli import app
from lrsearch.errors import ConfigError
from lrsearch.storage import admission_lock, has_heartbeat, open_storage


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
    assert isinstance(open_storage(str(tmp_path / "search.log")), JournalStorage)
    assert isinstance(open_storage(f"sqlite:///{tmp_path}/search.db"), RDBStorage)
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
