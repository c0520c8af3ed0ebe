"""Which asked trials tune a control schedule's LR, at which LR, and how they share the budget.

Certification compares the search's answer with control schedules, each at its own tuned LR; tuning
them there, from scratch, cost as much as the search (issue 23). So the search tunes them: a control is a
point of the search space (`problem.space.control_trial_params`), and a control trial is an ordinary trial
of the study whose schedule parameters and LR are pinned (Optuna's `enqueue_trial`).

The share: the sampler explores alone until `STARTUP` trials have finished (TPE's random start-up, where
an LR is a guess over the whole range) and a searched trial has completed (its LR is where a walk starts),
then every other trial is a control trial (several in a row where a stack's refills asked many trials
before then), the controls taken in turn, until each has had its `search.control_trials` or its LR is
settled. The end of the budget is kept for the walks still open: a searched trial that the pruner
ends at its 5th epoch would otherwise spend it while a walk's trial trains for 20 (`_owed`).

The LR: a control's shape is fixed, so its tuning is a walk over one number (`problem.lr_walk`), the
same walk certification goes on with. Its first trials, at once, are the base LR that gives it the best
searched trial's mean LR (`controls.matched_lr`: the search has found the problem's LR scale by then),
half and twice that (the centre is stored with them); a searched trial whose run is the control's (a
constant LR, say) is a point of its walk, never trained again; after them one trial at a time, each
waiting for the last to finish, a step further out while the best LR is at an edge, halfway to a
neighbour more than a step away. Left to the sampler, a control's four LRs were four guesses (0.0001 to
0.9 on the default study), and certification walked on from them for four more rounds. A control whose
walk has ended gets no more trials: its share goes back to the searched schedules. A control trial is
never pruned (`loop`): its walk reads its val loss at the end, where a low LR, slow at first, is often
best. The plan is made from the trials already in the study, under the admission lock, so workers on
several machines share one plan.
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
from lrsearch.store.records import CONTROL_ATTR, CONTROL_CENTRE_ATTR, searched_best_first
from lrsearch.trials.pruners import first_pruning_epoch

STARTUP = 10  # TPE's n_startup_trials, of finished trials: its LRs until then are guesses over the range
FIRST_LRS = (1.0, 1 / 2, 2.0)  # a control's first trials, asked without waiting: times its matched LR
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class ControlTrial(NamedTuple):
    """A planned control trial: the control it tunes, its LR (None: the sampler's), and the LR its walk
    started around (stored with it, so that every worker reads the same first LRs)."""

    control: str
    lr: float | None
    centre: float | None = None


@dataclass
class _Walk:
    """One control's walk so far: LR -> val loss of its runs finished (None: pruned or failed, worse than
    any that finished), the LRs of its trials still running (None: not sampled yet), and where it started.
    A searched trial whose run is the control's (a constant LR, say) is a point of its walk too."""

    losses: dict[float, float | None] = field(default_factory=dict)
    running: list[float | None] = field(default_factory=list)
    centre: float | None = None
    made: int = 0  # its control trials, whatever their LR (a fixed LR gives them all the same)

    def add(self, lr: float | None, state: TrialState, value: float | None) -> None:
        self.made += 1
        if state not in FINISHED:
            self.running.append(lr)
        elif lr is not None:
            self.found(lr, value if state == TrialState.COMPLETE else None)

    def found(self, lr: float, value: float | None) -> None:
        self.losses[lr] = value if value is not None else self.losses.get(lr)


class ControlTrials:
    """The plan of control trials for one search's config."""

    def __init__(self, config: SearchConfig, steps_per_epoch: int) -> None:
        quota = config.search.control_trials
        self.config = config
        self.params = control_trial_params(config, steps_per_epoch) if quota else {}
        self.quota = quota
        self.pins_lr = "lr" not in config.search.fixed  # a fixed LR is the user's: the walk leaves it

    def plan(
        self,
        trials: Sequence[FrozenTrial],
        room: int,
        *,
        left: int | None = None,
        training: bool = False,
        spare: int = 0,
    ) -> list[ControlTrial | None]:
        """For each of the next `room` trials, the control trial it is, or None for a searched trial; then,
        in up to `spare` slots more, control trials that open a walk (its first LRs), while there are.

        Fewer than `room` where the rest of the budget (`left` trials, None: no limit) is owed to open
        walks (`_owed`) that wait for a trial of theirs to finish, so long as the asking worker is
        `training` trials (or plans a control trial now): it will ask again when one ends. A worker with
        nothing to train asks searched trials as before, so no worker waits for one that died.

        The spare slots: the walks can start only once a searched trial has completed, and at that moment
        a stack had 9 of 10 slots free for the controls' 12 first LRs; the last ones then waited for a
        round of 20 epochs, and their walks' next steps after them, the search's longest chain of runs."""
        if not self.params:
            return [None] * room
        walks = self._walks(trials)
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        # The budget's size: the trials held and those it has left (queued retries are in both).
        total = len(trials) + (left or 0) - sum(t.state == TrialState.WAITING for t in trials)
        planned: list[ControlTrial | None] = []
        for slot in range(room + spare):
            number = len(trials) + slot
            done = sum(walk.made for walk in walks.values())
            opening = slot >= room  # a spare slot holds only a walk's first LR
            chosen = None
            if finished >= STARTUP and done <= (number - STARTUP) // 2:
                chosen = next(
                    (
                        trial
                        for name in sorted(walks, key=lambda n: walks[n].made)  # the controls in turn
                        if walks[name].made < self.quota
                        and (trial := self._next(name, walks[name], trials, opening=opening))
                    ),
                    None,
                )
            if opening and chosen is None:
                break
            if chosen is not None:
                walks[chosen.control].add(chosen.lr, TrialState.RUNNING, None)
                walks[chosen.control].centre = walks[chosen.control].centre or chosen.centre
                training = True
            elif training and left is not None and left - slot - 1 < self._owed(walks, trials, total, finished):
                break
            planned.append(chosen)
        return planned

    def _owed(self, walks: dict[str, _Walk], trials: Sequence[FrozenTrial], total: int, finished: int) -> int:
        """The control trials the open walks may still take of a budget of `total` trials: what each walk
        that has started, or can start now, and has not ended has left of its quota, within the controls'
        share (every other trial after `STARTUP`). Held back for them, a searched trial that the
        pruner ends at its 5th epoch cannot spend the budget while a walk's trial trains for 20 (the walks
        then had 8 trials of their 16 on the default study, and certification walked on for them, a round
        of 20 epochs a step). A walk that cannot start yet is owed nothing while `finished` is short of
        `STARTUP`, or while no searched trial has completed nor passed the pruner's first judgement, or
        where the share cannot hold its first LRs: on a small budget (`--trials 11`) a slot kept for one sat
        idle until a searched trial completed, then trained a walk of one LR alone. Once a searched trial
        has passed that judgement, one will complete (the best trial of an epoch is never pruned), and the
        walks start from it: under the quartile pruner a search of 30 trials had asked them all by then, and
        certification tuned every control from scratch (780 to 800 run-epochs on classification)."""
        made = sum(walk.made for walk in walks.values())
        share = max(0, (total - 1 - STARTUP) // 2 + 1 - made)
        coming = share >= len(FIRST_LRS) and self._match_coming(trials)

        def open_walk(name: str, walk: _Walk) -> bool:
            if walk.made >= self.quota:
                return False
            if walk.running:  # its next LR waits for these
                return True
            if finished < STARTUP and walk.made == 0:
                return False
            # Not started: it can start now (its first LR known) or soon. Started: not ended.
            return self._next(name, walk, trials) is not None or (walk.made == 0 and coming)

        open_quota = sum(self.quota - walk.made for name, walk in walks.items() if open_walk(name, walk))
        return min(open_quota, share)

    def ask(self, study: optuna.Study, planned: ControlTrial | None) -> optuna.Trial:
        """Ask for the next trial: a control trial with its schedule (and LR) pinned, or a searched one."""
        if planned is not None:
            params = dict(self.params[planned.control])
            if planned.lr is not None:
                params["lr"] = planned.lr
            attrs = {CONTROL_ATTR: planned.control, CONTROL_CENTRE_ATTR: planned.centre}
            study.enqueue_trial(params, user_attrs=attrs)
        return study.ask()

    def _walks(self, trials: Sequence[FrozenTrial]) -> dict[str, _Walk]:
        walks = {name: _Walk() for name in self.params}
        for trial in trials:
            name = trial.user_attrs.get(CONTROL_ATTR)
            if name in walks:
                walks[name].add(trial.params.get("lr"), trial.state, trial.value)
                walks[name].centre = walks[name].centre or trial.user_attrs.get(CONTROL_CENTRE_ATTR)
            elif name is None and trial.state == TrialState.COMPLETE and "lr" in trial.params:
                for control, pinned in self.params.items():  # a searched trial that ran the control's run
                    if all(trial.params.get(key) == value for key, value in pinned.items()):
                        walks[control].found(trial.params["lr"], trial.value)
        return walks

    def _next(
        self, name: str, walk: _Walk, trials: Sequence[FrozenTrial], opening: bool = False
    ) -> ControlTrial | None:
        """The control's next trial, or None when it has none now: a trial it waits for is running (or
        not sampled yet), or its walk has ended; with `opening`, only one of the first LRs its walk opens
        on (a control whose LR is fixed has no walk to open)."""
        if not self.pins_lr:
            return None if opening else ControlTrial(name, None)
        low, high = self.config.search.lr.low, self.config.search.lr.high
        centre = walk.centre or self._matched(name, trials)
        if centre is None:  # no searched trial completed yet to match: it waits for one
            return None
        in_range = (min(high, max(low, centre * factor)) for factor in FIRST_LRS)
        first = list(dict.fromkeys(in_range))  # each once
        if None in walk.running:  # a trial another worker asked and has not sampled yet: its LR is unknown
            return None
        untried = [lr for lr in first if lr not in walk.losses and lr not in walk.running]
        if walk.made < len(first) and untried:
            return ControlTrial(name, untried[0], centre)
        if opening:
            return None
        step = None if walk.running else walk_step(walk.losses, low, high)
        return None if step is None else ControlTrial(name, step, centre)

    def _match_coming(self, trials: Sequence[FrozenTrial]) -> bool:
        """Whether the walks wait for a searched trial to complete that has passed the pruner's first
        judgement (none has completed yet): their first LRs will be matched to it."""
        if next(searched_best_first(trials), None) is not None:
            return False
        judged = first_pruning_epoch(self.config.study.pruner, self.config.train.epochs)
        return any(
            trial.state == TrialState.RUNNING
            and CONTROL_ATTR not in trial.user_attrs
            and len(trial.intermediate_values) >= judged
            for trial in trials
        )

    def _matched(self, name: str, trials: Sequence[FrozenTrial]) -> float | None:
        """The base LR that gives the control the best searched trial's mean LR; None before one completed."""
        record = next(searched_best_first(trials), None)
        if record is None:
            return None
        epochs = self.config.train.epochs
        return matched_lr(record.spec, controls_for(epochs)[name](epochs), epochs)
