"""Stored text shown to a person: whoever can write to the storage can store a megabyte where a label
belongs, so a view draws at most a screen's worth of it."""

from __future__ import annotations

# A schedule's label, a control's name, a device: one line of a table or a figure's tick. Room for the
# longest label lrsearch writes: `StepLR(50, 0.1) (StepLR(10, 0.1) stretched to 100 epochs), lr 0.0472`.
LABEL = 80
LINE = 400  # a sentence, a reason a run diverged


def clipped(text: str, limit: int = LABEL) -> str:
    """`text` when it fits in `limit` characters, else its start and an ellipsis (`limit` in all)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
