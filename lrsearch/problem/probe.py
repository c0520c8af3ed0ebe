"""The one stand-in trial that walks the search space without training: what `lrsearch schedulers` lists,
the check of `search.fixed`, and the controls that are points of the space all come from one walk of the
real suggest functions, so none of them can drift from what a search samples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lrsearch.base.errors import ConfigError

Kind = Literal["float", "int", "categorical"]
# Top-level choices and the config fields that list them, for the messages.
_CHOICE_FIELDS = {"optimizer": "search.optimizers", "schedule": "search.schedules"}


@dataclass(frozen=True)
class ParamRange:
    """One suggest call: a searched parameter, its kind and its range (or choices), as `lrsearch
    schedulers` shows it."""

    name: str
    kind: Kind
    low: Any = None
    high: Any = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def __str__(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        scale = ", log" if self.log else ""
        return f"{self.name} in [{_short(self.low)}, {_short(self.high)}{scale}]"


def _short(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


class Probe:
    """A stand-in trial walking one branch of the space: it records every suggest call (`ranges`, in
    order); a value `fixed` pins is checked against the distribution asked for and returned; an unpinned
    number is its low end; an unpinned categorical takes `path`'s next choice (the first past its end),
    and how many choices each offered is recorded, so that `branches` can name the others."""

    def __init__(self, fixed: Mapping[str, Any] | None = None, path: tuple[int, ...] = ()) -> None:
        self.fixed, self.path = dict(fixed or {}), path
        self.ranges: list[ParamRange] = []
        self.taken: list[int] = []  # the choice taken at each unpinned categorical
        self.widths: list[int] = []  # how many choices it offered

    @property
    def sampled(self) -> set[str]:
        """The names suggested on this walk."""
        return {searched.name for searched in self.ranges}

    def branches(self) -> list[tuple[int, ...]]:
        """The paths of the branches this walk passed by: past the given path it took each unpinned
        categorical's first choice."""
        return [
            (*self.taken[:depth], choice)
            for depth in range(len(self.path), len(self.widths))
            for choice in range(1, self.widths[depth])
        ]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.ranges.append(ParamRange(name, "float", low, high, log))
        return self._number(name, low, high, integer=False)

    def suggest_int(self, name: str, low: int, high: int) -> int:
        self.ranges.append(ParamRange(name, "int", low, high))
        return self._number(name, low, high, integer=True)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.ranges.append(ParamRange(name, "categorical", choices=tuple(choices)))
        if name in self.fixed:
            value = self.fixed[name]
            if value not in choices:
                where = _CHOICE_FIELDS.get(name, "its choices")
                raise ConfigError(
                    f"search.fixed: {name}={value!r} is not one of {where} ({', '.join(map(str, choices))})"
                )
            return value
        depth = len(self.taken)
        self.taken.append(self.path[depth] if depth < len(self.path) else 0)
        self.widths.append(len(choices))
        return choices[self.taken[-1]]

    def _number(self, name: str, low: Any, high: Any, integer: bool) -> Any:
        if name not in self.fixed:
            return low
        value = self.fixed[name]
        kind = int if integer else int | float
        if isinstance(value, bool) or not isinstance(value, kind):
            what = "an integer" if integer else "a number"
            raise ConfigError(f"search.fixed: {name}={value!r} must be {what} in [{low:.6g}, {high:.6g}]")
        if not low <= value <= high:  # nan fails too
            raise ConfigError(f"search.fixed: {name}={value!r} is outside its searched range [{low:.6g}, {high:.6g}]")
        return value
