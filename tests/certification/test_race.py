"""Certification as a race: who stops, when, and what the certificate says about it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY
from scipy import stats

import lrsearch
from lrsearch.base.stats import paired_difference
from lrsearch.certification.certify import certify
from lrsearch.certification.race import FIRST_SEEDS, holm, race
from lrsearch.engines.lone import train
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import load_data
from lrsearch.problem.spec import DataSpec, RunSpec

SEEDS = list(range(100, 110))


def _race(means: dict[str, float], noise: float = 0.01, unfinished=frozenset()):
    """Race candidates whose loss at a seed is their mean plus that seed's shared noise and their own; a
    label starting with `s` is a searched candidate, any other a control."""
    rng = np.random.default_rng(0)
    shared = {seed: rng.normal(0, 0.05) for seed in SEEDS}  # what a seed does to every run (its batches)
    own = {(label, seed): rng.normal(0, noise) for label in means for seed in SEEDS}
    trained: dict = {}

    def train_runs(runs):
        for key, spec in runs.items():
            assert spec.seed == key[1]  # every run trains at its own seed
            trained[key] = None if key in unfinished else means[key[0]] + shared[key[1]] + own[key]

    run = RunSpec(data=DataSpec(**TINY["data"]), epochs=2)
    kinds = {label: "searched" if label.startswith("s") else "control" for label in means}
    entrants = race(dict.fromkeys(means, run), kinds, SEEDS, train_runs, trained.__getitem__)
    return entrants, trained


def test_holm_adjusts_as_its_step_down_rule_says():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})  # 3 x 0.01, 2 x 0.03, then monotone
    assert holm({"a": 0.6, "b": 0.7}) == pytest.approx({"a": 1.0, "b": 1.0})


def test_a_clearly_worse_candidate_stops_at_the_first_test_and_the_decision_ends_the_race():
    entrants, trained = _race({"control": 0.30, "c2": 0.31, "searched": 0.60, "s2": 0.70})
    assert entrants["s2"].seeds == SEEDS[:FIRST_SEEDS]
    assert entrants["s2"].stopped.startswith(f"worse than control after {FIRST_SEEDS} seeds (paired t-test")
    # The leaders of the two kinds are the finalists, decided by the interval the verdict reads.
    assert entrants["control"].stopped == entrants["searched"].stopped == f"decided after {FIRST_SEEDS} seeds"
    assert len(trained) == 4 * FIRST_SEEDS  # nothing trained past the decision


@pytest.mark.parametrize("gap", [0.002, 0.004, 0.006, 0.008])
def test_the_race_ends_on_the_interval_the_verdict_reads(gap):
    # One searched schedule a little better than alike controls: a one-sided 5% test can stop the
    # controls' leader before the verdict's 95% interval excludes zero. The leaders of the two kinds are
    # never stopped as worse; "decided" means their paired interval excludes zero, as the verdict reads it.
    means = {"searched": 0.300, "control": 0.300 + gap, "c2": 0.300 + gap, "c3": 0.300 + gap}
    entrants, trained = _race(means, noise=0.004)
    finalists = [e for e in entrants.values() if not e.stopped.startswith(("worse", "within noise"))]
    assert sorted(e.label.startswith("s") for e in finalists) == [False, True]  # a control and a searched one
    first, second = ([trained[e.label, s] for s in e.seeds] for e in finalists)
    decided = paired_difference(first, second).excludes_zero()
    assert all(e.stopped.startswith("decided" if decided else "in the race to the cap") for e in finalists)


def test_the_race_is_paired_by_seed():
    # The shared noise is 10x the own: unpaired, the seeds it took could not tell 0.30 from 0.32; paired, the
    # race decides before the cap.
    entrants, trained = _race({"searched": 0.30, "control": 0.32}, noise=0.005)
    seeds = entrants["control"].seeds
    assert entrants["control"].stopped.startswith("decided after") and len(seeds) < len(SEEDS)
    unpaired = [[trained[label, s] for s in seeds] for label in ("searched", "control")]
    assert stats.ttest_ind(*unpaired).pvalue > 0.05


def test_seeds_double_up_to_the_cap_and_each_stop_as_worse_is_paired_p_below_5_percent():
    entrants, trained = _race({"s1": 0.30, "s2": 0.31, "c1": 0.32, "c2": 0.45, "c3": 0.30}, noise=0.01)
    for entrant in entrants.values():
        count = len(entrant.seeds)
        assert entrant.seeds == SEEDS[:count]
        assert count in (FIRST_SEEDS, 2 * FIRST_SEEDS, len(SEEDS))  # 3, 6, the cap: tests only where they doubled
        if entrant.stopped.startswith("worse than"):
            leader = entrant.stopped.split()[2]
            mine = [trained[entrant.label, s] for s in entrant.seeds]
            theirs = [trained[leader, s] for s in entrant.seeds]
            assert stats.ttest_rel(mine, theirs, alternative="greater").pvalue < 0.05
    assert entrants["c2"].seeds == SEEDS[:FIRST_SEEDS]


def test_a_run_that_does_not_finish_stops_its_candidate_at_once_and_the_others_go_on():
    entrants, _ = _race({"searched": 0.30, "b": 0.30, "c": 0.30}, noise=0.0, unfinished={("b", SEEDS[1])})
    assert entrants["b"].stopped == f"its run at seed {SEEDS[1]} did not finish"
    assert entrants["searched"].seeds == entrants["c"].seeds == SEEDS  # c is the controls' finalist now


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
            assert candidate.raced.startswith(("worse than", "within noise of", "decided after"))
    beaten = next((c for c in certificate.candidates if c.beaten), certificate.candidates[0])
    last_seed = certificate.seeds[beaten.seeds - 1]
    alone = train(beaten.run.model_copy(update={"seed": last_seed}), data, evaluate_test=True)
    assert alone.final.val_loss == pytest.approx(beaten.val_loss[-1], abs=1e-5)
    # Those left in the race come first, whatever the means of those it stopped over fewer seeds.
    ranked = certificate.ranked
    assert [c.beaten for c in ranked] == sorted(c.beaten for c in ranked)
    assert certificate.recommended_candidate is not None and not certificate.recommended_candidate.beaten
    assert max(c.seeds for c in certificate.candidates) == certificate.recommended_candidate.seeds


def test_the_summary_and_the_export_say_how_many_seeds_each_candidate_raced(raced):
    _, _, certificate = raced
    counts = {c.seeds for c in certificate.candidates}
    expected = f"{min(counts)} to {max(counts)} fresh seeds" if len(counts) > 1 else f"{max(counts)} fresh seeds"
    assert certificate.seeds_text == expected
    exported = certificate.summary()["candidates"]
    assert all(row["raced"] == c.raced for row, c in zip(exported.values(), certificate.candidates, strict=True))
