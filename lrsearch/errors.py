"""The package's own exceptions: `ConfigError` for every mistake a user can make (bad config, flag, file,
storage or name), and `Interrupted` for a search the user stopped."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """Raised for input the user can fix; the CLI prints it as one line and exits with code 2."""


class Interrupted(Exception):
    """The user asked the search to stop (Ctrl-C); the running trial ends at an epoch boundary."""


def error_field(error: ValidationError) -> str:
    """The dotted path of the first field pydantic complained about."""
    return ".".join(str(part) for part in error.errors()[0]["loc"]) or "(top level)"


def from_validation_error(error: ValidationError, source: str, name_field: bool = True) -> ConfigError:
    """Turn pydantic's report into one line that names the field and what is allowed.

    Args:
        error: what pydantic raised.
        source: where the values came from (a file path, or the flag that set the field), put first.
        name_field: say which field; off when `source` is a flag, which already names it.
    """
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif "got" not in message and not isinstance(first.get("input"), dict | list) and first["type"] != "missing":
        message = f"{message} (got {first['input']!r})"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    field = f"{error_field(error)}: " if name_field else ""
    return ConfigError(f"{source}: {field}{message}{suffix}")
