"""The package's own exceptions: `ConfigError` for every mistake a user can make (bad config, flag, file,
storage or name), `StorageFault` for a storage that fails under a running command (disk full, read-only,
server gone), and `Interrupted` for a search the user stopped."""

from __future__ import annotations

import difflib
import inspect
import sys
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(Exception):
    """Raised for input the user can fix; the CLI prints it as one line and exits with code 2."""


class StorageFault(Exception):
    """The storage (or a file being written) failed while a command ran; the CLI prints it as one line
    and exits with code 1. Raised by workers after they tried to end their running trials as FAIL."""


def fault_line(error: BaseException) -> str:
    """The root cause of a storage or file error, in one line: what SQLite, the driver or the OS said
    (`database or disk is full`, `[Errno 28] No space left on device: 'j.log'`), not the wrappers'
    explanations around it."""
    root = _causes(error)[-1]
    if isinstance(root, OSError) and root.strerror:
        where = f": {root.filename}" if root.filename else ""
        return f"{root.strerror}{where}"
    text = str(getattr(root, "orig", None) or root).strip()
    return text.splitlines()[0] if text else type(root).__name__


def is_fault(error: BaseException) -> bool:
    """An error of the machine, not of lrsearch: a file or the storage could not be written or read
    (disk full, read-only, a server gone), raised as it is or under another error (Optuna's own
    bookkeeping raises an AssertionError when its write of a trial's end fails)."""
    return any(_is_fault_itself(cause) for cause in _causes(error))


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and what it was raised from. An error raised while another was handled is not caused by
    it (user code catching FileNotFoundError, then raising ValueError), except Optuna's AssertionError,
    which it raises when the write that ends a trial fails."""
    chain = [error]
    while True:
        last = chain[-1]
        following = last.__cause__
        if following is None and isinstance(last, AssertionError) and not last.__suppress_context__:
            following = last.__context__
        if following is None or following in chain:
            return chain
        chain.append(following)


def _is_fault_itself(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return True
    if "sqlalchemy" in sys.modules:
        import sqlalchemy.exc

        if isinstance(error, sqlalchemy.exc.SQLAlchemyError):
            return True
    if "optuna" in sys.modules:
        import optuna.exceptions

        return isinstance(error, optuna.exceptions.StorageInternalError)
    return False


class Interrupted(Exception):
    """The user asked the search to stop (Ctrl-C); the running trial ends at an epoch boundary."""


def error_field(error: ValidationError) -> str:
    """The dotted path of the field pydantic complained about first (`_ordered`; without a type's tag:
    `study.stack`)."""
    errors = _ordered(error)
    return _dotted(_field_loc(errors[0]["loc"], _union_fields(errors)))


def has_unknown_field(error: ValidationError) -> bool:
    """Whether pydantic found a field the model does not take (named first: `_ordered`)."""
    return any(e["type"] == "extra_forbidden" for e in error.errors())


def _ordered(error: ValidationError) -> list[Any]:
    """Pydantic's errors, unknown fields first: a misspelt field (`hihg`) is the cause, the required one
    it leaves missing (`high`) its consequence."""
    return sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The field names the model takes at `loc` (a path of fields into nested models), or None where
    the path leaves the models (a mapping's key, say)."""
    for part in loc:
        if isinstance(part, int):  # an item of a list of models
            continue
        field = model.model_fields.get(part)
        inner = None if field is None else _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field's type holds (itself, or inside Optional or a list), if any."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in typing.get_args(annotation) if (m := _model_in(arg)) is not None), None)


def _unknown_field(loc: tuple, model: type[BaseModel] | None) -> str:
    """`unknown field`, with the nearest name the model takes there and every name it takes."""
    allowed = None if model is None else _fields_at(model, loc[:-1])
    if not allowed:
        return "unknown field"
    near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    guess = f", did you mean {near[0]!r}?" if near else ""
    where = _dotted(loc[:-1]) if loc[:-1] else "the top level"
    return f"unknown field{guess} ({where} takes: {', '.join(allowed)})"


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _union_fields(errors: list[Any]) -> set[tuple]:
    """Where the failed fields of several types are (an int or "auto", a number or a range): pydantic
    fails such a field once per type, each location ending with the type's tag, and at least one of its
    tags holds a "-" or "[", as no field's name does ("constrained-int", "literal['auto']",
    "function-after[...]")."""
    return {
        e["loc"][:-1]
        for e in errors
        if len(e["loc"]) >= 2 and isinstance(e["loc"][-1], str) and any(c in e["loc"][-1] for c in "[-")
    }


def _field_loc(loc: tuple, unions: set[tuple]) -> tuple:
    """An error's location without a type's tag (`_union_fields`): the field's own path. Inside a field
    of several types (`search.momentum.function-after[...].hihg`) the tags go too: no field's name holds
    a "[" or a "-"."""
    loc = loc[:-1] if len(loc) >= 2 and loc[:-1] in unions else loc
    return tuple(part for part in loc if not (isinstance(part, str) and any(c in part for c in "[-")))


def from_validation_error(
    error: ValidationError, source: str, name_field: bool = True, model: type[BaseModel] | None = None
) -> ConfigError:
    """Turn pydantic's report into one line that names the field and what is allowed.

    Args:
        error: what pydantic raised.
        source: where the values came from (a file path, or the flag that set the field), put first.
        name_field: say which field; off when `source` is a flag, which already names it.
        model: the model validated, for the names an unknown field could have meant.
    """
    errors = _ordered(error)
    first, unions = errors[0], _union_fields(errors)
    first_field = _field_loc(first["loc"], unions)
    # A field of several types fails once per type: one problem, with each way to mend it.
    alike = [e for e in errors if _field_loc(e["loc"], unions) == first_field]
    ways = dict.fromkeys(e["msg"].removeprefix("Value error, ") for e in alike)
    message = ", or ".join(way if i == 0 else way[:1].lower() + way[1:] for i, way in enumerate(ways))
    if first["type"] == "extra_forbidden":
        message = _unknown_field(first_field, model)
    elif "got" not in message and not isinstance(first.get("input"), dict | list) and first["type"] != "missing":
        message = f"{message} (got {first['input']!r})"
    more = len({_field_loc(e["loc"], unions) for e in errors}) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    field = f"{_dotted(first_field)}: " if name_field else ""
    return ConfigError(f"{source}: {field}{message}{suffix}")
