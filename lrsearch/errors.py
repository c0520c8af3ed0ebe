"""The package's own exceptions: `ConfigError` for every mistake a user can make (bad config, flag, file,
storage or name), and `Interrupted` for a search the user stopped."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """Raised for input the user can fix; the CLI prints it as one line and exits with code 2."""


class Interrupted(Exception):
    """The user asked the search to stop (Ctrl-C); the running trial ends at an epoch boundary."""


def from_validation_error(error: ValidationError, source: str) -> ConfigError:
    """Turn pydantic's report into one line that names the field and what is allowed.

    Args:
        error: what pydantic raised.
        source: where the values came from (a file path, or "flags"), put at the front of the message.
    """
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif "got" not in message and not isinstance(first.get("input"), dict | list) and first["type"] != "missing":
        message = f"{message} (got {first['input']!r})"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return ConfigError(f"{source}: {field}: {message}{suffix}")
