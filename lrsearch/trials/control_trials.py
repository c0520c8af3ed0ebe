"""Which asked trials tune a control schedule's LR, and how the sampler shares the budget with them.

Certification compares the search's answer with control schedules, each at its own tuned LR; tuning
them there, from scratch, cost as much as the search (issue 23). So the search tunes them: a control is a
point of the search space (`problem.space.control_trial_params`), and a control trial is an ordinary trial
of the study whose schedule parameters are pinned (Optuna's `enqueue_trial`) while the sampler picks its
LR as it picks any trial's, from what the study has learned. The share: the sampler explores alone until
`STARTUP` trials have finished (TPE's random start-up, where an LR is a guess over the whole range), then
every other trial is a control trial (several in a row where a stack's refills asked many trials before
then), the controls taken in turn, until each has had its `search.control_trials`. The choice is made
from the trials already in the study, under the admission lock, so workers on several machines share
one plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.problem.config import SearchConfig
from lrsearch.problem.space import control_trial_params
from lrsearch.store.records import CONTROL_ATTR

STARTUP = 10  # TPE's n_startup_trials, of finished trials: its LRs until then are guesses over the range


class ControlTrials:
    """The plan of control trials for one search's config."""

    def __init__(self, config: SearchConfig, steps_per_epoch: int) -> None:
        quota = config.search.control_trials
        self.params = control_trial_params(config, steps_per_epoch) if quota else {}
        self.quota = quota

    def plan(self, trials: Sequence[FrozenTrial], room: int) -> list[str | None]:
        """For each of the next `room` trials, the control it tunes, or None for a searched trial."""
        if not self.params:
            return [None] * room
        made = Counter(t.user_attrs[CONTROL_ATTR] for t in trials if CONTROL_ATTR in t.user_attrs)
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        planned: list[str | None] = []
        for slot in range(room):
            number = len(trials) + slot
            done = sum(made[name] for name in self.params)
            due = finished >= STARTUP and done <= (number - STARTUP) // 2
            left = [name for name in self.params if made[name] < self.quota]
            if not due or not left:
                planned.append(None)
                continue
            name = min(left, key=lambda n: made[n])  # the controls in turn
            made[name] += 1
            planned.append(name)
        return planned

    def ask(self, study: optuna.Study, control: str | None) -> optuna.Trial:
        """Ask for the next trial: a control trial with its schedule pinned, or a searched one."""
        if control is not None:
            study.enqueue_trial(dict(self.params[control]), user_attrs={CONTROL_ATTR: control})
        return study.ask()
