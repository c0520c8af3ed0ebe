"""Certification as a race: who stops, when, and what the certificate says about it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY
from scipy import stats

import lrsearch
from lrsearch.certification.certify import certify
from lrsearch.certification.race import FIRST_SEEDS, STEP, holm, race
from lrsearch.engines.lone import train
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import load_data
from lrsearch.problem.spec import DataSpec, RunSpec

SEEDS = list(range(100, 110))


def _race(means: dict[str, float], noise: float = 0.01, unfinished: set[tuple[str, int]] = frozenset()):
    """Race candidates whose loss at a seed is their mean plus that seed's shared noise and their own."""
    rng = np.random.default_rng(0)
    shared = {seed: rng.normal(0, 0.05) for seed in SEEDS}  # what a seed does to every run (its batches)
    own = {(label, seed): rng.normal(0, noise) for label in means for seed in SEEDS}
    trained: dict = {}

    def train_runs(runs):
        for key, spec in runs.items():
            assert spec.seed == key[1]  # every run trains at its own seed
            trained[key] = None if key in unfinished else means[key[0]] + shared[key[1]] + own[key]

    run = RunSpec(data=DataSpec(**TINY["data"]), epochs=2)
    entrants = race(dict.fromkeys(means, run), SEEDS, train_runs, trained.__getitem__)
    return entrants, trained


def test_holm_adjusts_as_its_step_down_rule_says():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})  # 3 x 0.01, 2 x 0.03, then monotone
    assert holm({"a": 0.6, "b": 0.7}) == pytest.approx({"a": 1.0, "b": 1.0})


def test_a_clearly_worse_candidate_stops_at_the_first_test_and_the_leader_ends_the_race():
    entrants, trained = _race({"good": 0.30, "bad": 0.60})
    assert entrants["bad"].seeds == SEEDS[:FIRST_SEEDS]
    assert entrants["bad"].stopped.startswith(f"worse than good after {FIRST_SEEDS} seeds (paired t-test, p = ")
    assert entrants["good"].stopped == f"the last one in the race, after {FIRST_SEEDS} seeds"
    assert len(trained) == 2 * FIRST_SEEDS  # nothing trained past the decision


def test_candidates_alike_race_to_the_cap_and_the_race_is_paired_by_seed():
    entrants, trained = _race({"a": 0.30, "b": 0.30, "c": 0.30}, noise=0.0)  # each seed gives all the same
    for entrant in entrants.values():
        assert entrant.seeds == SEEDS and entrant.stopped == "in the race to the cap of 10 seeds"
    # The shared noise is 5x the own: unpaired, no test could tell 0.30 from 0.31; paired, the race does.
    entrants, _ = _race({"a": 0.30, "b": 0.33}, noise=0.005)
    assert entrants["b"].stopped.startswith("worse than a") and len(entrants["b"].seeds) < len(SEEDS)


def test_seeds_are_added_in_steps_to_those_left_and_each_stop_is_paired_p_below_5_percent():
    entrants, trained = _race({"a": 0.30, "b": 0.31, "c": 0.32, "d": 0.45}, noise=0.01)
    for entrant in entrants.values():
        count = len(entrant.seeds)
        assert entrant.seeds == SEEDS[:count]
        assert count == FIRST_SEEDS or (count - FIRST_SEEDS) % STEP == 0 or count == len(SEEDS)
        if entrant.stopped.startswith("worse than"):
            leader = entrant.stopped.split()[2]
            mine = [trained[entrant.label, s] for s in entrant.seeds]
            theirs = [trained[leader, s] for s in entrant.seeds]
            assert stats.ttest_rel(mine, theirs, alternative="greater").pvalue < 0.05
    assert entrants["d"].seeds == SEEDS[:FIRST_SEEDS]


def test_a_run_that_does_not_finish_stops_its_candidate_at_once_and_the_others_go_on():
    entrants, _ = _race({"a": 0.30, "b": 0.30}, unfinished={("b", SEEDS[1])})
    assert entrants["b"].stopped == f"its run at seed {SEEDS[1]} did not finish"
    assert entrants["a"].stopped == f"the last one in the race, after {FIRST_SEEDS} seeds"


@pytest.fixture(scope="module")
def raced(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("raced")
    config = SearchConfig.model_validate(
        TINY | {"study": {"storage": f"sqlite:///{tmp_path}/c.db", "trials": 14, "certify": False, "figures": False}}
    )
    result = lrsearch.search(config)
    return result.study, config, certify(result.study, config, device=torch.device("cpu"), seeds=7, top=2)


def test_each_candidate_s_figures_are_its_runs_at_the_first_seeds_and_say_why_it_stopped(raced):
    study, config, certificate = raced
    assert len(certificate.seeds) == 7
    data = load_data(config.data, config.study.seed)
    for candidate in certificate.candidates:
        assert FIRST_SEEDS <= candidate.seeds <= 7 and candidate.raced
        assert len(candidate.test_loss) == candidate.seeds
        if candidate.seeds < 7:
            assert candidate.raced.startswith("worse than") or candidate.raced.startswith("the last one")
    beaten = next((c for c in certificate.candidates if c.beaten), certificate.candidates[0])
    last_seed = certificate.seeds[beaten.seeds - 1]
    alone = train(beaten.run.model_copy(update={"seed": last_seed}), data, evaluate_test=True)
    assert alone.final.val_loss == pytest.approx(beaten.val_loss[-1], abs=1e-5)
    # Those left in the race come first, whatever the means of those it stopped over fewer seeds.
    ranked = certificate.ranked
    assert [c.beaten for c in ranked] == sorted(c.beaten for c in ranked)
    assert certificate.recommended_candidate is not None and not certificate.recommended_candidate.beaten


def test_the_summary_and_the_export_say_how_many_seeds_each_candidate_raced(raced):
    _, _, certificate = raced
    counts = {c.seeds for c in certificate.candidates}
    expected = f"{min(counts)} to {max(counts)} fresh seeds" if len(counts) > 1 else f"{max(counts)} fresh seeds"
    assert certificate.seeds_text == expected
    exported = certificate.summary()["candidates"]
    assert all(row["raced"] == c.raced for row, c in zip(exported.values(), certificate.candidates, strict=True))
