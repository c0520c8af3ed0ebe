"""The Hugging Face adapter under a real `transformers.Trainer` on the CPU, with a tiny BERT built from a
config (no download): the LR at every optimizer step is the one lrsearch's own loop gives, for every
schedule of the registry (at parameters its search space samples), per epoch and per batch (with gradient
accumulation too) and with the evaluation loss."""

from __future__ import annotations

import io
import math
import sys

import pytest
import torch
from own_loop import MAY_STAND_STILL, exported_schedule, own_loop_first_group, own_loop_lrs, registry_schedule
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

import lrsearch
from lrsearch.adapters import huggingface as adapter
from lrsearch.problem.schedules import SCHEDULES

ROWS, BATCH = 40, 8  # 5 batches an epoch


class Tokens(Dataset):
    """Random token ids, labelled by whether the first token is in the upper half of the vocabulary."""

    def __init__(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 32, (ROWS, 6), generator=generator)

    def __len__(self) -> int:
        return ROWS

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": (self.ids[index, 0] >= 16).long()}


class Recorder(TrainerCallback):
    """The LR of every optimizer step, and the eval loss of every evaluation (what ReduceLROnPlateau gets)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.eval_losses: list[float] = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs) -> None:
        self.eval_losses.append(metrics["eval_loss"])


def _tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=8,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def _args(tmp_path, schedule: lrsearch.LoadedSchedule, accumulate: int = 1, **more) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=schedule.epochs,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=accumulate,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        **more,
    )


def _train(args: TrainingArguments, schedule: lrsearch.LoadedSchedule, steps_per_epoch: int) -> Recorder:
    model, recorder = _tiny_bert(), Recorder()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(0),
        eval_dataset=Tokens(1),
        optimizers=adapter.optimizers(schedule, model, steps_per_epoch, args=args),
        callbacks=[recorder],
    )
    trainer.train()
    return recorder


# Beside every schedule of the registry without accumulation (below): gradient accumulation.
CASES = {
    "WarmupDecay per epoch, accumulating 2": (
        "WarmupDecay",
        {"warmup_epochs": 1, "warmup_start_factor": 0.1, "decay": "cosine", "final_factor": 0.01},
        2,
    ),
    "OneCycleLR per batch, accumulating 2": (
        "OneCycleLR",
        {"pct_start": 0.3, "div_factor": 10.0, "final_div_factor": 100.0, "anneal_strategy": "cos"},
        2,
    ),
}


@pytest.mark.parametrize(("name", "params", "accumulate"), CASES.values(), ids=CASES.keys())
def test_the_trainer_steps_the_schedule_as_lrsearch_does(tmp_path, name, params, accumulate):
    schedule = exported_schedule(tmp_path, name, params, epochs=4)
    steps_per_epoch = math.ceil(math.ceil(ROWS / BATCH) / accumulate)  # the Trainer steps on an epoch's last batch
    recorded = _train(_args(tmp_path, schedule, accumulate), schedule, steps_per_epoch)

    expected = own_loop_first_group(schedule, steps_per_epoch)
    assert len(recorded.lrs) == 4 * steps_per_epoch
    assert recorded.lrs == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) > 1  # a schedule that moves, so a wrong step shows


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_of_the_registry_steps_as_lrsearch_does(tmp_path, name):
    steps_per_epoch = math.ceil(ROWS / BATCH)
    schedule = registry_schedule(tmp_path, name, epochs=4, steps_per_epoch=steps_per_epoch)
    # ReduceLROnPlateau steps with the eval loss, which the Trainer computes only when asked to.
    more = {"eval_strategy": "epoch", "metric_for_best_model": "loss"} if schedule.step_on == "metric" else {}
    recorded = _train(_args(tmp_path, schedule, **more), schedule, steps_per_epoch)

    expected = own_loop_first_group(schedule, steps_per_epoch, recorded.eval_losses or None)
    assert recorded.lrs == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) > 1 or name in MAY_STAND_STILL


def test_reduce_on_plateau_steps_with_the_eval_loss_after_every_epoch(tmp_path):
    # A threshold no epoch's improvement meets: the LR halves after every evaluation but the first.
    schedule = exported_schedule(
        tmp_path, "ReduceLROnPlateau", {"factor": 0.5, "patience": 0, "threshold": 0.9}, epochs=4
    )
    args = _args(tmp_path, schedule, eval_strategy="epoch", metric_for_best_model="loss")
    recorded = _train(args, schedule, steps_per_epoch=5)

    assert len(recorded.eval_losses) == 4
    expected = own_loop_first_group(schedule, 5, recorded.eval_losses)
    assert recorded.lrs == pytest.approx(expected, rel=1e-12)
    assert sorted(set(expected), reverse=True) == pytest.approx([0.1, 0.05, 0.025])


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({}, 'steps with the validation loss after every epoch, which the Trainer does only with args=.*"epoch"'),
        ({"eval_strategy": "epoch", "metric_for_best_model": "accuracy"}, "not metric_for_best_model='accuracy'"),
    ],
    ids=["no evaluation", "not a loss"],
)
def test_reduce_on_plateau_without_epoch_evaluations_is_refused(tmp_path, more, message):
    schedule = exported_schedule(
        tmp_path, "ReduceLROnPlateau", {"factor": 0.5, "patience": 0, "threshold": 0.9}, epochs=2
    )
    with pytest.raises(lrsearch.ConfigError, match=message):
        adapter.optimizers(schedule, _tiny_bert(), 5, args=_args(tmp_path, schedule, **more))
    with pytest.raises(lrsearch.ConfigError, match="ReduceLROnPlateau steps with the validation loss"):
        adapter.optimizers(schedule, _tiny_bert(), 5)


def _two_groups() -> list[dict]:
    """A backbone at a tenth of the head's LR."""
    torch.manual_seed(0)
    return [
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 1.0},
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.1},
    ]


def test_a_per_epoch_schedule_keeps_the_group_ratios_and_resumes_from_its_state(tmp_path):
    name, params, _ = CASES["WarmupDecay per epoch, accumulating 2"]
    schedule = exported_schedule(tmp_path, name, params, epochs=3)
    expected = own_loop_lrs(schedule, lrsearch.build_optimizer(schedule.spec, _two_groups()), steps_per_epoch=4)

    optimizer, scheduler = adapter.optimizers(schedule, _two_groups(), 4)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    seen = []
    for step in range(12):  # as the Trainer does: the optimizer, then the scheduler
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
        if step == 5:  # a checkpoint, saved and loaded as the Trainer does (torch.save, weights only)
            buffer = io.BytesIO()
            torch.save(scheduler.state_dict(), buffer)
            optimizer, scheduler = adapter.optimizers(schedule, _two_groups(), 4)
            scheduler.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
            for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True):
                group["lr"] = lr  # what loading the optimizer's own state restores
    assert seen == [pytest.approx(lrs, rel=1e-12) for lrs in expected]
    assert seen[0] == pytest.approx([0.01, 0.001]) and len({lrs[0] for lrs in seen}) == 3


def test_a_run_longer_than_the_schedule_gets_torch_s_own_lrs_after_it(tmp_path):
    schedule = exported_schedule(tmp_path, "StepLR", {"step_size": 2, "gamma": 0.5}, epochs=2)
    optimizer, scheduler = adapter.optimizers(schedule, _two_groups()[:1], 1)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_a_trainer_of_another_length_is_warned(tmp_path):
    schedule = exported_schedule(tmp_path, "StepLR", {"step_size": 1, "gamma": 0.5}, epochs=3)
    args = _args(tmp_path, schedule).set_training(num_epochs=5)
    with pytest.warns(UserWarning, match=r"num_train_epochs=5 and this schedule spans 3 epochs: .*stretch_to=5"):
        adapter.optimizers(schedule, _tiny_bert(), 5, args=args)


def test_without_transformers_the_import_names_the_extra(monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "transformers"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed: every import of it fails
    monkeypatch.delitem(sys.modules, "lrsearch.adapters.huggingface")
    with pytest.raises(ImportError, match=r"^this adapter needs transformers, .*: pip install 'lrsearch\[hf\]'$"):
        import lrsearch.adapters.huggingface  # noqa: F401
