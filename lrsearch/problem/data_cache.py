"""A built-in task's arrays, made once per machine and loaded after that.

Making them needs scikit-learn, and importing it takes about 0.9 s of a command's start-up on a 2-core
CPU: more than generating, splitting and scaling a few thousand rows. The arrays depend only on the
task's settings, the seed and the versions of the libraries that make them, so the first command that
needs them stores them in the user's cache folder (`$XDG_CACHE_HOME/lrsearch`, else
`~/.cache/lrsearch`), and later ones load them from there. A file that can't be written is not an error
(the next command makes the arrays again); one that can't be read is made again. Files are written
whole (a temporary file, then renamed), read without pickle, and hold numbers only.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from lrsearch.base.user_cache import cache_folder as user_cache_folder
from lrsearch.base.user_cache import write_whole
from lrsearch.problem.spec import DataSpec

FORMAT = 1  # bump when what `make` returns changes meaning: older files are then never read
_log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


def cache_folder() -> Path:
    """Where the arrays are kept (the XDG base directory convention)."""
    return user_cache_folder("data")


def cached_arrays(spec: DataSpec, seed: int, make: Callable[[], Arrays]) -> Arrays:
    """The arrays `make()` returns for the task `spec` at `seed`, from the cache when it holds them."""
    path = cache_folder() / f"{_key(spec, seed)}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        _log.debug("data cache %s unreadable (%s): made again", path, error)
    arrays = make()
    _store(path, arrays)
    return arrays


def _key(spec: DataSpec, seed: int) -> str:
    made_by = {name: metadata.version(name) for name in ("scikit-learn", "numpy")}
    text = json.dumps(
        {"format": FORMAT, "spec": spec.model_dump(mode="json"), "seed": seed, "versions": made_by}, sort_keys=True
    )
    return f"{spec.task}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _store(path: Path, arrays: Arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_whole(path, buffer.getvalue())  # two commands at once each write a whole file
