"""Which asked trials tune a control schedule's LR, at which LR, and how they share the budget.

Certification compares the search's answer with control schedules, each at its own tuned LR; tuning
them there, from scratch, cost as much as the search (issue 23). So the search tunes them: a control is a
point of the search space (`problem.space.control_trial_params`), and a control trial is an ordinary trial
of the study whose schedule parameters and LR are pinned (Optuna's `enqueue_trial`).

The share: the sampler explores alone until `STARTUP` trials have finished (TPE's random start-up, where
an LR is a guess over the whole range), then every other trial is a control trial (several in a row where
a stack's refills asked many trials before then), the controls taken in turn, until each has had its
`search.control_trials` or its LR is settled.

The LR: a control's shape is fixed, so its tuning is a walk over one number (`problem.lr_walk`), the same
walk certification goes on with. Its first trials, at once, are the base LR that gives it the best
searched trial's mean LR (`controls.matched_lr`: the search has found the problem's LR scale by then),
half and twice that; after them one trial at a time, each waiting for the last to finish, a step further
out while the best LR is at an edge, halfway to a neighbour more than a step away. Left to the sampler,
a control's four LRs were four guesses (0.0001 to 0.9 on the default study), and certification walked on
from them for four more rounds. A control whose walk has ended gets no more trials: its share goes back
to the searched schedules. A control trial is never pruned (`loop`): its walk reads its val loss at the
end, where a low LR, slow at first, is often best. The plan is made from the trials already in the
study, under the admission lock, so workers on several machines share one plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.problem.config import SearchConfig
from lrsearch.problem.controls import controls_for, matched_lr
from lrsearch.problem.lr_walk import walk_step
from lrsearch.problem.space import control_trial_params
from lrsearch.store.records import CONTROL_ATTR, TrialRecord

STARTUP = 10  # TPE's n_startup_trials, of finished trials: its LRs until then are guesses over the range
FIRST_LRS = (1.0, 1 / 2, 2.0)  # a control's first trials, asked without waiting: times its matched LR
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class ControlTrial(NamedTuple):
    """A planned control trial: the control it tunes, and its LR (None: the sampler's)."""

    control: str
    lr: float | None


@dataclass
class _Walk:
    """One control's trials so far: LR -> val loss of those finished (None: pruned or failed, worse than
    any that finished), and the LRs of those still running (None: not sampled yet)."""

    losses: dict[float, float | None] = field(default_factory=dict)
    running: list[float | None] = field(default_factory=list)
    first: float | None = None  # the LR of its first trial (sampled), where its first LRs are centred
    made: int = 0  # its trials, whatever their LR (a fixed LR gives them all the same)

    def add(self, lr: float | None, state: TrialState, value: float | None) -> None:
        if self.first is None and lr is not None:
            self.first = lr
        self.made += 1
        if state not in FINISHED:
            self.running.append(lr)
        elif lr is not None:
            finished = value if state == TrialState.COMPLETE else None
            self.losses[lr] = finished if finished is not None else self.losses.get(lr)


class ControlTrials:
    """The plan of control trials for one search's config."""

    def __init__(self, config: SearchConfig, steps_per_epoch: int) -> None:
        quota = config.search.control_trials
        self.config = config
        self.params = control_trial_params(config, steps_per_epoch) if quota else {}
        self.quota = quota
        self.pins_lr = "lr" not in config.search.fixed  # a fixed LR is the user's: the walk leaves it

    def plan(self, trials: Sequence[FrozenTrial], room: int) -> list[ControlTrial | None]:
        """For each of the next `room` trials, the control trial it is, or None for a searched trial."""
        if not self.params:
            return [None] * room
        walks = self._walks(trials)
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        planned: list[ControlTrial | None] = []
        for slot in range(room):
            number = len(trials) + slot
            done = sum(walk.made for walk in walks.values())
            chosen = None
            if finished >= STARTUP and done <= (number - STARTUP) // 2:
                chosen = next(
                    (
                        trial
                        for name in sorted(walks, key=lambda n: walks[n].made)  # the controls in turn
                        if walks[name].made < self.quota and (trial := self._next(name, walks[name], trials))
                    ),
                    None,
                )
            if chosen is not None:
                walks[chosen.control].add(chosen.lr, TrialState.RUNNING, None)
            planned.append(chosen)
        return planned

    def ask(self, study: optuna.Study, planned: ControlTrial | None) -> optuna.Trial:
        """Ask for the next trial: a control trial with its schedule (and LR) pinned, or a searched one."""
        if planned is not None:
            params = dict(self.params[planned.control])
            if planned.lr is not None:
                params["lr"] = planned.lr
            study.enqueue_trial(params, user_attrs={CONTROL_ATTR: planned.control})
        return study.ask()

    def _walks(self, trials: Sequence[FrozenTrial]) -> dict[str, _Walk]:
        walks = {name: _Walk() for name in self.params}
        for trial in trials:
            name = trial.user_attrs.get(CONTROL_ATTR)
            if name in walks:
                walks[name].add(trial.params.get("lr"), trial.state, trial.value)
        return walks

    def _next(self, name: str, walk: _Walk, trials: Sequence[FrozenTrial]) -> ControlTrial | None:
        """The control's next trial, or None when it has none now: a trial it waits for is running (or
        not sampled yet), or its walk has ended."""
        if not self.pins_lr:
            return ControlTrial(name, None)
        low, high = self.config.search.lr.low, self.config.search.lr.high
        centre = walk.first if walk.made else self._matched(name, trials)
        if centre is None:  # its first trial not sampled yet; or no searched trial to match: the sampler's
            return None if walk.made else ControlTrial(name, None)
        first = list(dict.fromkeys(min(high, max(low, centre * factor)) for factor in FIRST_LRS))  # in range, once
        if walk.made < len(first):
            return ControlTrial(name, first[walk.made])
        step = None if walk.running else walk_step(walk.losses, low, high)
        return None if step is None else ControlTrial(name, step)

    def _matched(self, name: str, trials: Sequence[FrozenTrial]) -> float | None:
        """The base LR that gives the control the best searched trial's mean LR; None before one completed."""
        searched = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and t.value is not None and CONTROL_ATTR not in t.user_attrs
        ]
        record = TrialRecord.of(min(searched, key=lambda t: t.value)) if searched else None
        if record is None:
            return None
        epochs = self.config.train.epochs
        return matched_lr(record.spec, controls_for(epochs)[name](epochs), epochs)
