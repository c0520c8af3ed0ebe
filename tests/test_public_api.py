"""Every public name of `lrsearch`, called in one process after a full search and certification: a
sub-package or module imported on the way must never shadow a public function (`lrsearch.certify` is
the function, whatever `lrsearch.certification` loaded)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY

import lrsearch


@pytest.mark.slow
def test_every_public_name_works_after_a_search_and_its_certification(tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    config = copy.deepcopy(TINY) | {"study": {"certify_seeds": 2, "certify_top": 1, "figures": False}}
    result = lrsearch.search(config, trials=4, storage=storage, study_name="api", seed=0)
    assert isinstance(result, lrsearch.SearchResult) and isinstance(result.certificate, lrsearch.Certificate)

    certificate = lrsearch.certify("api", storage, fresh_seeds=2, top=1)  # the function, not a module
    assert isinstance(certificate, lrsearch.Certificate)
    assert lrsearch.search is lrsearch.api.search and callable(lrsearch.certify)

    exported = result.export(tmp_path / "best.yaml")
    assert lrsearch.load_run_spec(tmp_path / "best.yaml") == exported
    assert isinstance(exported, lrsearch.RunSpec)
    replayed = lrsearch.replay(tmp_path / "best.yaml", study_name="api", storage=storage)
    assert replayed.history is not None and replayed.history.test_loss is not None and len(replayed.runs) > 1
    assert result.study.user_attrs["lrsearch_replay"]["spec"] == exported.model_dump(mode="json")
    schedule = lrsearch.load_schedule(tmp_path / "best.yaml")
    assert isinstance(schedule, lrsearch.LoadedSchedule)
    model = torch.nn.Linear(2, 1)
    optimizer = lrsearch.build_optimizer(exported, model.parameters())
    scheduler = lrsearch.build_scheduler(exported, optimizer, steps_per_epoch=3)
    assert lrsearch.step_on(exported) in {"batch", "epoch", "metric"} and scheduler.optimizer is optimizer
    assert exported.schedule.name in lrsearch.SCHEDULES
    assert isinstance(lrsearch.SCHEDULES[exported.schedule.name], lrsearch.Schedule)
    assert lrsearch.Budget(epochs=4, steps_per_epoch=3).total_steps == 12
    assert lrsearch.SearchConfig.model_validate({}).train.epochs == 20
    assert lrsearch.Task(model=lambda: model, train=None, val=None, loss=torch.nn.functional.mse_loss).test is None
    with pytest.raises(lrsearch.ConfigError):
        lrsearch.search(copy.deepcopy(TINY), trials=0, storage=storage, study_name="api")
    for name in lrsearch.__all__:  # each still the public object, none a module that shadows it
        assert not isinstance(getattr(lrsearch, name), type(lrsearch)), name


@pytest.mark.slow
def test_a_notebook_s_torch_keeps_its_threads_after_a_search_its_certificate_and_a_replay(tmp_path):
    # The engines train on threads of their own choosing; a notebook's own torch work after them must not
    # find itself on one thread.
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    config = copy.deepcopy(TINY) | {"study": {"certify_seeds": 2, "certify_top": 1, "figures": False}}
    torch.set_num_threads(3)  # the notebook's own count, whatever the engines choose
    result = lrsearch.search(config, trials=4, storage=storage, study_name="threads", seed=0, progress=False)
    assert torch.get_num_threads() == 3
    result.export(tmp_path / "best.yaml")
    lrsearch.replay(tmp_path / "best.yaml")
    assert torch.get_num_threads() == 3
