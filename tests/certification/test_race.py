"""Certification as a race: who stops, when, and what the certificate says about it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import TINY
from scipy import stats

import lrsearch
from lrsearch.base.stats import paired_difference
from lrsearch.certification.certify import certify
from lrsearch.certification.controls import CLASSIC, robustness_rank
from lrsearch.certification.race import FIRST_SEEDS, _conditional_power, holm, race
from lrsearch.engines.lone import train
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.controls import controls_for
from lrsearch.problem.data import load_data
from lrsearch.problem.spec import DataSpec, RunSpec

SEEDS = list(range(100, 110))


def _race(means: dict[str, float], noise: float = 0.01, unfinished=frozenset(), preference=()):
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
    entrants = race(dict.fromkeys(means, run), kinds, SEEDS, train_runs, trained.__getitem__, preference=preference)
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
    # c is the controls' finalist now, and races on with the searched one (until equal runs settle it).
    assert entrants["searched"].seeds == entrants["c"].seeds == SEEDS[:FIRST_SEEDS]
    assert entrants["c"].stopped.startswith(f"settled after {FIRST_SEEDS} seeds: searched had a 0% chance")


def test_a_searched_finalist_that_cannot_be_shown_better_by_the_cap_settles_the_race_at_once():
    # Behind the control: only "the control is recommended" can come of more seeds, so none are trained.
    entrants, trained = _race({"searched": 0.31, "control": 0.30, "c2": 0.40}, noise=0.01)
    assert len(trained) == 3 * FIRST_SEEDS
    settled = entrants["control"].stopped
    assert settled == entrants["searched"].stopped
    assert re.match(rf"settled after {FIRST_SEEDS} seeds: searched had a \d% chance of being shown better", settled)
    # A little ahead, not yet shown better: worth the seeds, so the race goes on to decide it.
    entrants, _ = _race({"searched": 0.300, "control": 0.301}, noise=0.004)
    assert len(entrants["control"].seeds) > FIRST_SEEDS
    assert not entrants["control"].stopped.startswith("settled")


@pytest.mark.parametrize("first", [[-0.01, 0.0, -0.02], [0.005, -0.01, -0.004], [-0.002, 0.004, -0.008]])
def test_the_futility_chance_is_how_often_the_cap_s_t_interval_would_lie_below_zero(first):
    # The seeds to come drawn as the first ones went (their mean and spread), the cap's interval by scipy.
    chance = _conditional_power(first, 10)  # the searched finalist's val losses minus the control's
    rng, hits = np.random.default_rng(7), 0
    for _ in range(2000):
        every = first + list(rng.normal(np.mean(first), np.std(first, ddof=1), 7))
        hits += stats.ttest_1samp(every, 0).confidence_interval().high < 0
    assert chance == pytest.approx(hits / 2000, abs=0.03)


def test_among_controls_the_seeds_cannot_tell_apart_the_most_robust_is_the_finalist():
    # At each seed: c1 leads c2 by less than one standard error of their paired difference; c3, the most
    # preferred, is clearly worse; so is the searched one (so the race is settled at once).
    losses = {"s": [0.33, 0.30, 0.34], "c1": [0.300, 0.310, 0.290], "c2": [0.306, 0.305, 0.292]}
    losses["c3"] = [0.40, 0.41, 0.39]
    run = RunSpec(data=DataSpec(**TINY["data"]), epochs=2)
    kinds = {label: "searched" if label == "s" else "control" for label in losses}

    def raced(preference):
        judged = {(label, seed): losses[label][i] for label in losses for i, seed in enumerate(SEEDS[:3])}
        return race(dict.fromkeys(losses, run), kinds, SEEDS, lambda runs: None, judged.get, preference=preference)

    differences = np.subtract(losses["c2"], losses["c1"])
    assert 0 < differences.mean() <= stats.sem(differences)
    entrants = raced(["c3", "c2", "c1"])
    assert entrants["c2"].stopped == entrants["s"].stopped
    assert entrants["c2"].stopped.startswith(f"settled after {FIRST_SEEDS} seeds: s had a 0% chance")
    assert entrants["c1"].stopped.startswith("within noise of c2")
    assert entrants["c3"].stopped.startswith("worse than c1")  # not within one error: never the finalist
    # Without a preference, the lowest mean is the finalist, as before.
    assert raced(())["c1"].stopped == entrants["c2"].stopped.replace("than c2", "than c1")


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
            assert candidate.raced.startswith(("worse than", "within noise of", "decided after", "settled after"))
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


def test_the_controls_most_robust_first_put_a_stretched_step_beside_the_literal_one_and_the_classic_last():
    names = [*controls_for(100, search_epochs=20), CLASSIC]
    ordered = sorted(names, key=robustness_rank)
    assert ordered[0] == "linear decay to zero" and ordered[-1] == CLASSIC
    assert (
        ordered.index("StepLR(50, 0.1) (StepLR(10, 0.1) stretched to 100 epochs)")
        == ordered.index("StepLR(10, 0.1)") + 1
    )
    assert ordered[-2:] == ["constant", CLASSIC]


def test_certification_races_the_controls_most_robust_first(raced, monkeypatch):
    study, config, _ = raced
    seen = {}

    def spied(candidates, kinds, *args, preference=(), **kwargs):
        seen.update(kinds=kinds, preference=list(preference))
        return race(candidates, kinds, *args, preference=preference, **kwargs)

    monkeypatch.setattr("lrsearch.certification.certify.race", spied)
    certificate = certify(study, config, device=torch.device("cpu"), seeds=3, top=1)
    controls = [label for label, kind in seen["kinds"].items() if kind == "control"]
    assert sorted(seen["preference"]) == sorted(controls)  # every control in the race, the classic included

    def name(label):
        return label if label == CLASSIC else label.rsplit(", lr ", 1)[0]

    assert [name(label) for label in seen["preference"]] == sorted(map(name, controls), key=robustness_rank)
    assert certificate.best_control in controls
