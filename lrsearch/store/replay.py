"""The replay record: what `lrsearch train --study-name` measured (the replayed run beside its
baselines), kept in the study for `lrsearch report`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lrsearch.problem.spec import RunSpec

# A study attribute: what `lrsearch train --study-name` measured (the replayed run and the baselines),
# for `lrsearch report`.
REPLAY_ATTR = "lrsearch_replay"


class ReplayRun(BaseModel):
    """One run of a replay: its test and val figures, or why it diverged."""

    model_config = ConfigDict(frozen=True)

    test_loss: float | None = None
    test_score: float | None = None
    val_loss: float | None = None
    diverged: str | None = None  # the divergence message; the figures are None then


class Replay(BaseModel):
    """The replay record a study holds under `REPLAY_ATTR`. Whoever can write to the storage can write
    it, so the report reads it through this model: what does not fit is unreadable, not a crash."""

    model_config = ConfigDict(frozen=True)

    spec: dict[str, Any]  # the replayed RunSpec as JSON
    device: str
    seed: int
    when: str  # e.g. "2025-01-31 12:00 UTC"
    score: str | None = None  # what test_score is: "accuracy", "r2" or None
    runs: dict[str, ReplayRun] = Field(max_length=100)  # run label -> its figures (the run and 2 baselines)


def replay_record(spec: RunSpec, device: str, score: str | None, results: dict[str, Any]) -> dict[str, Any]:
    """What a replay stores in its study: per run label, its test and val figures or why it diverged.

    Args:
        results: run label -> a `History` with test figures, or the divergence message.
    """
    runs: dict[str, ReplayRun] = {}
    for label, result in results.items():
        if isinstance(result, str):
            runs[label] = ReplayRun(diverged=result)
        else:
            runs[label] = ReplayRun(
                test_loss=result.test_loss, test_score=result.test_score, val_loss=result.final.val_loss
            )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    replay = Replay(spec=spec.model_dump(mode="json"), device=device, seed=spec.seed, when=when, score=score, runs=runs)
    return replay.model_dump(mode="json")
