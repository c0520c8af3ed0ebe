"""Names and paths a user gives that end up as files: study names inside file names, and output paths
checked before the work whose result they will hold (a search must not train for an hour, then fail to
write its export)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from lrsearch.base.errors import ConfigError

PLAIN_NAME = "letters, digits, '.', '_' and '-', at most 100 characters, not starting with '.'"
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def is_plain_name(name: str) -> bool:
    """Whether `name` can be put into a file name as it is: no folder separator, no `..`, not hidden."""
    return _PLAIN.fullmatch(name) is not None


def file_part(name: str) -> str:
    """`name` itself when it is a plain file name, else a short digest of it: for files users never see
    (lock files), so any stored study name works and none escapes its folder."""
    return name if is_plain_name(name) else "sha256-" + hashlib.sha256(name.encode()).hexdigest()[:16]


def check_replaceable(path: Path, flag: str) -> None:
    """Refuse to write over anything but a regular file: the output is written beside and moved over its
    path, which would replace a symbolic link (not its target) or a device such as /dev/null, and a FIFO
    opened to check it would block until something reads it.

    Raises:
        ConfigError: naming `flag`: the path is a symbolic link, or exists and is not a regular file.
    """
    if path.is_symlink():
        raise ConfigError(f"{flag}: {path} is a symbolic link; give the path of a regular file or a new one")
    if path.exists() and not path.is_file():
        kind = next((name for test, name in _KINDS if getattr(path, test)()), "not a regular file")
        raise ConfigError(f"{flag}: {path} is {kind}; give the path of a regular file or a new one")


_KINDS = (
    ("is_char_device", "a character device"),
    ("is_block_device", "a block device"),
    ("is_fifo", "a FIFO (named pipe)"),
    ("is_socket", "a socket"),
)


def check_writable(path: Path, flag: str) -> None:
    """Refuse an output path that will not take a file, before the work that ends by writing it.

    Nothing is left behind: an existing file is opened for appending and closed unchanged; for a new one,
    an anonymous temporary file is made in the nearest existing folder (os.access alone lets root pass
    where the file system itself refuses, such as under /proc).

    Raises:
        ConfigError: naming `flag`: the path is a folder, a symbolic link or anything else but a regular
            file, a parent is a file, or the place can't be written.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise ConfigError(f"{flag}: {path} is a folder; give the path of a file to write")
    check_replaceable(path, flag)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{flag}: cannot write {path}: {folder} is a file, not a folder")
    try:
        if path.exists():
            with path.open("ab"):
                pass
            return
    except OSError as error:
        raise ConfigError(f"{flag}: cannot write {path}: {error.strerror or error}") from None
    try:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(f"{flag}: cannot write {path}: {folder} takes no new files ({error.strerror})") from None
