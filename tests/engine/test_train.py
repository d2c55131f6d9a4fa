"""Training utilities: seeding, devices, AMP plans, schedule, the stage loop."""

from __future__ import annotations

import pytest
import torch

from benchbox.engine import device, train
from benchbox.errors import ConfigError, DataError, TrainingDivergedError


def _loader(n: int = 8, batch: int = 4, seed: int = 0):
    data = [
        {"a": torch.rand(1, 4, 4), "b": torch.rand(1, 4, 4), "y": torch.rand(())} for _ in range(n)
    ]
    return train.make_loader(data, batch, shuffle=True, seed=seed)


def test_seed_everything_makes_torch_numpy_python_repeat():
    import random

    import numpy as np

    def draw():
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())

    device.seed_everything(5)
    first = draw()
    device.seed_everything(5)
    assert draw() == first
    device.seed_everything(6)
    assert draw() != first


def test_loader_order_depends_only_on_seed():
    def order(seed):
        torch.manual_seed(123)  # the global state must not matter
        data = list(range(20))
        return [b.tolist() for b in train.make_loader(data, 5, shuffle=True, seed=seed)]

    assert order(1) == order(1) != order(2)


def test_deterministic_flag_toggles_torch():
    device.seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    device.seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_devices():
    assert device.resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="is not a device"):
        device.resolve_device("gpu0")


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    import types

    mps = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setattr(torch.backends, "mps", mps, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        device.resolve_device("cuda")
    with pytest.raises(ConfigError, match="MPS is not available"):
        device.resolve_device("mps")
    mps.is_available = lambda: True
    assert device.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert device.resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError, match="only 1 CUDA device"):
        device.resolve_device("cuda:3")


def test_amp_plans_on_cpu_are_honest():
    cpu = torch.device("cpu")
    assert device.resolve_amp("off", cpu).mode == "off"
    auto = device.resolve_amp("auto", cpu)
    assert auto.mode == "off" and "float32 is faster" in auto.reason
    bf16 = device.resolve_amp("bf16", cpu)
    assert (bf16.mode, bf16.dtype, bf16.uses_scaler) == ("bf16", torch.bfloat16, False)
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        device.resolve_amp("fp16", cpu)
    model = torch.nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 1, 8, 8)
    assert device.observed_dtype(bf16, model, x) == "bfloat16"
    assert device.observed_dtype(auto, model, x) == "float32"


def test_cosine_schedule_with_warmup():
    f = train.cosine_with_warmup(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(1 / 11)
    assert f(9) == pytest.approx(10 / 11)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0, abs=1e-12)
    assert train.cosine_with_warmup(1, 10)(0) == pytest.approx(1.0)


class _Recorder:
    def __init__(self):
        self.events = []

    def start(self, stage, total):
        self.events.append(("start", stage, total))

    def step(self, loss, images, seconds):
        self.events.append(("step", images))

    def end(self):
        self.events.append(("end",))


def test_stage_trains_and_reports():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(()))
    loader = _loader(n=8, batch=4)
    rec = _Recorder()
    stats = train.train_stage(
        "fit",
        [w],
        lambda batch: (w - 3.0) ** 2,
        loader,
        epochs=20,
        lr=0.3,
        weight_decay=0.0,
        warmup_steps=0,
        amp=device.resolve_amp("off", torch.device("cpu")),
        progress=rec,
    )
    assert stats.steps == 40 and stats.images == 160 and len(stats.epoch_losses) == 20
    assert stats.epoch_losses[-1] < stats.epoch_losses[0] / 10
    assert rec.events[0] == ("start", "fit", 40) and rec.events[-1] == ("end",)
    assert sum(1 for e in rec.events if e[0] == "step") == 40
    assert stats.images_per_s > 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_a_clear_message(bad):
    w = torch.nn.Parameter(torch.zeros(()))
    rec = _Recorder()
    with pytest.raises(
        TrainingDivergedError, match=f"the joint loss became {bad} at epoch 1, step 1"
    ):
        train.train_stage(
            "joint",
            [w],
            lambda batch: w + bad,
            _loader(),
            epochs=1,
            lr=0.1,
            weight_decay=0.0,
            warmup_steps=0,
            amp=device.resolve_amp("off", torch.device("cpu")),
            progress=rec,
        )
    assert rec.events[-1] == ("end",)


def test_stage_without_trainable_parameters_does_nothing():
    frozen = torch.nn.Parameter(torch.zeros(()), requires_grad=False)
    stats = train.train_stage(
        "x",
        [frozen],
        lambda b: frozen,
        _loader(),
        epochs=3,
        lr=0.1,
        weight_decay=0.0,
        warmup_steps=0,
        amp=device.resolve_amp("off", torch.device("cpu")),
    )
    assert stats.steps == 0 and stats.images_per_s == 0.0


@pytest.mark.parametrize(
    ("labels", "classes", "match"),
    [(2, 2, "labels 0..2"), (-1, 1, "labels -1..0"), (3, 3, "labels 0..3")],
)
def test_labels_out_of_range_are_one_data_error(labels, classes, match):
    mask = torch.zeros(2, 4, 4, dtype=torch.int64)
    mask[1, 2, 2] = labels
    with pytest.raises(DataError, match=match):
        train.check_labels(mask, classes)
    train.check_labels(torch.ones(2, 4, 4, dtype=torch.int64), 1)  # sigmoid: 0 and 1


def test_labels_are_checked_during_the_first_pass_only():
    batches = [{"mask": torch.zeros(1, 2, 2, dtype=torch.int64)} for _ in range(2)]
    checked = train.LabelCheckedLoader(batches, 2)
    assert len(list(checked)) == 2 and len(checked) == 2
    batches[1]["mask"][0, 0, 0] = 5  # a second pass is not checked again
    assert len(list(checked)) == 2
    with pytest.raises(DataError, match=r"labels 0\.\.5"):
        list(train.LabelCheckedLoader(batches, 2))


def test_warm_up_steps_are_left_out_of_the_images_per_second(monkeypatch):
    """Analytic clock: every reading advances one second, so each step takes exactly 1 s
    and the timed steps give batch / 1 s images per second."""
    clock = iter(range(10_000))
    monkeypatch.setattr(train.time, "perf_counter", lambda: float(next(clock)))
    w = torch.nn.Parameter(torch.zeros(()))
    stats = train.train_stage(
        "fit",
        [w],
        lambda batch: (w - 1.0) ** 2,
        _loader(n=8, batch=4),
        epochs=10,
        lr=0.1,
        weight_decay=0.0,
        warmup_steps=0,
        amp=device.resolve_amp("off", torch.device("cpu")),
    )
    assert stats.steps == 20 and stats.excluded_steps == 5  # min(5, 20 // 4)
    assert stats.seconds == 20.0 and stats.timed_seconds == 15.0
    assert stats.timed_images == 60 and stats.images_per_s == 4.0
