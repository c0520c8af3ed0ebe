"""What the fresh-seed runs say about the answer.

What is recommended:
- the winner is the searched candidate the race kept longest with the lowest mean val loss over the fresh
  seeds (test loss never chooses anything), and the best control the control likewise;
- the winner is recommended only when it beats the best control on validation loss, paired by seed, with
  a 95% interval that excludes zero. When the difference is within noise the best control is recommended:
  a well-known schedule at a tuned LR is as good, simpler to explain, and found without a search;
- the sentence reports the paired difference on test loss, the figure on data nobody chose anything by
  (val loss, for a task of one's own without a test split).
"""

from __future__ import annotations

from typing import Any

from lrsearch.base.stats import Interval, paired_difference
from lrsearch.store.certificate import Candidate


def judge(candidates: list[Candidate]) -> dict[str, Any]:
    """The winner, the best control, what is recommended and the sentence that says why (module docstring).

    Returns:
        Certificate fields: winner, best_control, recommended, verdict, sentence, val_difference,
        test_difference.
    """
    trained = [c for c in candidates if c.judged_val_loss is not None]
    # In the race's order: its finalists first, whatever the means of others over fewer seeds.
    searched = sorted((c for c in trained if c.kind == "searched"), key=lambda c: c.rank_key)
    controls = sorted((c for c in trained if c.kind == "control"), key=lambda c: c.rank_key)
    winner = searched[0] if searched else None
    control = controls[0] if controls else None
    fields: dict[str, Any] = {"winner": winner and winner.label, "best_control": control and control.label}

    if winner is None or control is None:
        chosen = winner or control
        what = "no searched schedule" if winner is None else "no control"
        return fields | {
            "recommended": chosen and chosen.label,
            "verdict": "no searched candidate" if winner is None else "beats",
            "sentence": f"{what} trained to the end at every fresh seed"
            + ("" if chosen is None else f": {chosen.label} is recommended"),
        }
    # Paired by seed, at the seeds both trained at (the race's first ones: one may have stopped earlier).
    seeds = min(winner.seeds, control.seeds)
    seeds_text = f"95%, {seeds} seed{'s' if seeds > 1 else ''}"
    val_difference = paired_difference(control.judged_val_loss[:seeds], winner.judged_val_loss[:seeds])
    fields["val_difference"] = val_difference
    # The sentence's figure: test loss, on data nobody chose by; val loss for a task without a test split.
    shown, loss = val_difference, "val loss"
    if winner.judged_test_loss is not None and control.judged_test_loss is not None:
        shown = paired_difference(control.judged_test_loss[:seeds], winner.judged_test_loss[:seeds])
        loss = "test loss"
        fields["test_difference"] = shown
    size, direction = _difference(shown), "lower" if shown.mean > 0 else "higher"
    if val_difference.excludes_zero() and val_difference.mean > 0:
        if shown.excludes_zero() and shown.mean > 0:
            sentence = f"{winner.label} beats the best control ({control.label}) by {size} {loss} ({seeds_text})"
        elif shown.excludes_zero():  # val says better, test says worse beyond noise: both are said
            sentence = (
                f"{winner.label} beats the best control ({control.label}) on validation loss, but its {loss} is "
                f"{size} higher ({seeds_text})"
            )
        else:
            sentence = (
                f"{winner.label} beats the best control ({control.label}) on validation loss, but its {loss}, "
                f"{size} {direction} ({seeds_text}), is within noise of the control's"
            )
        return fields | {"recommended": winner.label, "verdict": "beats", "sentence": sentence}
    if val_difference.excludes_zero():
        sentence = (
            f"the best control ({control.label}) beats {winner.label} by {size} {loss} ({seeds_text}): "
            "the control is recommended"
        )
        return fields | {"recommended": control.label, "verdict": "control beats", "sentence": sentence}
    unlikely = "; more seeds were unlikely to show it better" if winner.settled else ""
    sentence = (
        f"{winner.label} is not distinguishable from the best control ({control.label}): its {loss} is "
        f"{size} {direction} ({seeds_text}{unlikely}); "
        "the simpler schedule is recommended"
    )
    return fields | {"recommended": control.label, "verdict": "within noise", "sentence": sentence}


def _difference(interval: Interval) -> str:
    """`0.012 ± 0.006`: the size of a difference and its interval's half width."""
    return f"{abs(interval.mean):.3g}" + ("" if interval.half_width is None else f" ± {interval.half_width:.2g}")
