from __future__ import annotations

import os
from pathlib import Path

import pytest

from lrsearch.base.errors import ConfigError
from lrsearch.base.paths import check_writable, file_part, is_plain_name
from lrsearch.store.storage import admission_lock


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("default", True),
        ("run-2.b_c", True),
        ("../../etc/x", False),
        ("a/b", False),
        (".hidden", False),
        ("..", False),
        ("with space", False),
        ("x" * 101, False),
    ],
    ids=["word", "dots dashes underscores", "climbs out", "folder", "hidden", "parent", "space", "too long"],
)
def test_plain_names(name, plain):
    assert is_plain_name(name) is plain
    assert (file_part(name) == name) is plain
    assert is_plain_name(file_part(name))


def test_lock_files_stay_in_one_folder_beside_the_study_file_whatever_the_name(tmp_path):
    lock = admission_lock(f"sqlite:///{tmp_path}/studies.db", "../../x/y")
    assert Path(lock.lock_file).parent == tmp_path / "studies.db.locks"
    plain = admission_lock(f"sqlite:///{tmp_path}/studies.db", "plain")
    assert plain.lock_file == f"{tmp_path}/studies.db.locks/plain.lock"


UNWRITABLE = {
    "a folder": ("{tmp}", "--export: {tmp} is a folder; give the path of a file to write"),
    "under a file": (
        "{tmp}/file.txt/out.yaml",
        "--export: cannot write {tmp}/file.txt/out.yaml: {tmp}/file.txt is a file",
    ),
    "deep under a file": ("{tmp}/file.txt/a/b/out.yaml", "out.yaml: {tmp}/file.txt is a file, not a folder"),
    "a file system that takes no files": (
        "/proc/x/y.yaml",
        "--export: cannot write /proc/x/y.yaml: /proc takes no new",
    ),
    # Written beside and moved over, these would be replaced (the link, not its target; the device node),
    # and a FIFO opened to check it would block until something read it.
    "a symbolic link": ("{tmp}/link.yaml", "--export: {tmp}/link.yaml is a symbolic link; give the path of a regular"),
    "a dangling link": ("{tmp}/dangling.yaml", "--export: {tmp}/dangling.yaml is a symbolic link"),
    "a character device": ("/dev/null", "--export: /dev/null is a character device; give the path of a regular file"),
    "a FIFO": ("{tmp}/fifo", "--export: {tmp}/fifo is a FIFO (named pipe); give the path of a regular file"),
}


@pytest.mark.parametrize(("path", "message"), UNWRITABLE.values(), ids=UNWRITABLE)
def test_unwritable_outputs_are_refused_and_nothing_is_written(tmp_path, path, message):
    (tmp_path / "file.txt").write_text("kept")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "file.txt")
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    os.mkfifo(tmp_path / "fifo")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError) as raised:
        check_writable(Path(path.format(tmp=tmp_path)), "--export")
    assert message.format(tmp=tmp_path) in str(raised.value)
    assert sorted(tmp_path.rglob("*")) == before and (tmp_path / "file.txt").read_text() == "kept"
    assert (tmp_path / "link.yaml").is_symlink() and Path("/dev/null").is_char_device()


def test_a_run_is_not_saved_over_a_link_or_a_device(tmp_path):
    from lrsearch.problem.spec import RunSpec

    (tmp_path / "link.yaml").symlink_to(tmp_path / "target.yaml")
    for path in (tmp_path / "link.yaml", Path("/dev/null")):
        with pytest.raises(ConfigError, match="export: .* give the path of a regular file or a new one"):
            RunSpec().save(path)  # what the Python API's result.export() writes with
    assert (tmp_path / "link.yaml").is_symlink() and not (tmp_path / "target.yaml").exists()
    RunSpec().save(tmp_path / "best.yaml")
    assert (tmp_path / "best.yaml").is_file()


def test_writable_outputs_pass_and_nothing_is_written(tmp_path):
    (tmp_path / "old.yaml").write_text("kept")
    for path in ("old.yaml", "new.yaml", "new/deeper/out.yaml"):
        check_writable(tmp_path / path, "--output")
    assert [p.name for p in tmp_path.iterdir()] == ["old.yaml"] and (tmp_path / "old.yaml").read_text() == "kept"
