"""The contract checks of benchbox.testing on components broken in one way each: every
check fails (or skips) with one line naming the component and what broke."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from benchbox import errors, hookimpl
from benchbox.hooks.manager import create_registry
from benchbox.hooks.registry import Entry, Provider
from benchbox.testing import CheckResult, check, check_entry


def _entry(kind: str, factory: Any, **info: Any) -> Entry:
    return Entry(kind, "x", factory, "", Provider("test"), info)


class Fusion(nn.Module):
    """A convex blend of the sources; ``out`` post-processes the fused image."""

    def __init__(self, out: Any = None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.3))
        self.out = out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fused = torch.sigmoid(self.w) * a + (1 - torch.sigmoid(self.w)) * b
        return fused if self.out is None else self.out(fused)


class Segmenter(nn.Module):
    """A 1x1 convolution in 2D or 3D (by the input), or ``classes`` output channels."""

    def __init__(self, in_channels: int, num_classes: int, classes: int | None = None) -> None:
        super().__init__()
        k = num_classes if classes is None else classes
        self.conv2d = nn.Conv2d(in_channels, k, 1)
        self.conv3d = nn.Conv3d(in_channels, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3d(x) if x.dim() == 5 else self.conv2d(x)


def _boom(*args: Any) -> Any:
    raise RuntimeError("boom")


class _Loss(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


@pytest.mark.parametrize(
    ("kind", "factory", "info", "reason"),
    [
        ("fusion", lambda: Fusion(lambda f: 2 * f), {}, "returned values in [0"),
        ("fusion", lambda: Fusion(lambda f: f.double()), {}, "expected torch.float32"),
        ("fusion", lambda: Fusion(lambda f: f[..., :16]), {}, "shape (2, 1, 32, 16)"),
        ("fusion", lambda: Fusion(lambda f: f.detach()), {}, "detached from the trainable"),
        ("fusion", lambda: Fusion(_boom), {}, "sources raised RuntimeError: boom"),
        ("fusion", lambda: lambda a, b: a, {}, "is a function, not a torch.nn.Module"),
        ("fusion", Fusion, {"dims": (4,)}, "info dims=(4,)"),
        ("segmenter", lambda **kw: Segmenter(**kw, classes=1), {}, "expected (2, 2, 32, 64)"),
        ("segmenter", lambda in_channels, num_classes: nn.Identity(), {}, "no trainable"),
        ("loss", lambda: _Loss(lambda x, *_: x.mean(1)), {"task": "segmentation"}, "scalar"),
        ("loss", lambda: _Loss(lambda x, *_: x.sum() * 0 / 0), {"task": "fusion"}, "nan"),
        ("loss", lambda: _Loss(lambda x, *_: x.detach().sum()), {"task": "fusion"}, "not diff"),
        ("loss", lambda: _Loss(lambda x, t: x.sum() / t.sum()), {"task": "segmentation"}, "inf"),
    ],
)
def test_a_broken_model_or_loss_fails_naming_what_broke(kind, factory, info, reason):
    result = check_entry(_entry(kind, factory, **info))
    assert result.status == "fail", result
    assert result.reason.startswith(f"{kind} 'x': ") and reason in result.reason, result.reason
    assert "\n" not in result.reason


FUSION = {"task": "fusion", "higher_is_better": True}


def _fused_only(fused, a, b):
    return float(fused.mean())


def _nan_when_empty(pred, ref, spacing):
    return float(2 * (pred & ref).sum() / (pred.sum() + ref.sum()))


@pytest.mark.parametrize(
    ("factory", "info", "reason"),
    [
        (_fused_only, {**FUSION, "higher_is_better": "yes"}, "higher_is_better='yes'"),
        (_fused_only, {**FUSION, "headline": 0}, "headline=0; expected an int >= 1"),
        (_fused_only, {**FUSION, "unit": 3}, "unit=3"),
        (lambda f, a, b: 1, FUSION, "returned int 1; expected a float"),
        (lambda f, a, b: {"m": 1.0}, {**FUSION, "headline_key": "mean"}, "no key 'mean'"),
        (lambda f, a, b: float((f - a - b).mean()), FUSION, "raised ValueError: operands"),
        (_nan_when_empty, {"task": "segmentation", "higher_is_better": True}, "both empty"),
    ],
)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_a_broken_metric_fails_naming_what_broke(factory, info, reason):
    result = check_entry(_entry("metric", factory, **info))
    assert result.status == "fail" and reason in result.reason, result.reason


def test_a_fusion_only_metric_that_ignores_the_sources_passes():
    info = {"task": "fusion", "higher_is_better": True}
    assert check_entry(_entry("metric", _fused_only, **info)).passed


class _Dataset:
    modalities = ("A", "B")
    labels = None

    def __init__(self, root: str | None = None, change: Any = None) -> None:
        self.change = change

    def split(self, name: str) -> list[dict[str, Any]]:
        if name not in ("train", "val", "test"):
            raise errors.DataError(f"no split {name!r}")
        sample = {"a": torch.rand(1, 8, 8), "b": torch.rand(1, 8, 8), "case_id": f"{name}0"}
        sample["spacing"] = torch.ones(2, dtype=torch.float64)
        return [self.change(sample) if self.change else sample]


def _needs_root(root: str | None = None) -> Any:
    if root is None:
        raise errors.ConfigError("dataset 'x' needs a folder")
    return _Dataset()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: {**s, "a": s["a"].double()}, "['a'] returned torch.float64"),
        (lambda s: {**s, "b": s["b"] + 1}, "['b'] returned values in"),
        (lambda s: {**s, "spacing": (1.0, -1.0)}, "expected 2 positive mm values"),
        (lambda s: {**s, "mask": torch.zeros(8, 8)}, "['mask'] returned torch.float32"),
        (lambda s: {k: v for k, v in s.items() if k != "case_id"}, "has no 'case_id'"),
    ],
)
def test_a_broken_dataset_fails_naming_the_sample_and_key(change, reason):
    result = check_entry(_entry("dataset", lambda root=None: _Dataset(change=change)))
    assert result.status == "fail" and reason in result.reason, result.reason
    assert "split('train')[0]" in result.reason


def test_a_dataset_is_checked_or_skipped_when_it_needs_data():
    assert check_entry(_entry("dataset", _Dataset)).passed
    skipped = check_entry(_entry("dataset", _needs_root))
    assert skipped.status == "skip"
    assert skipped.reason == "dataset 'x': not checked: dataset 'x' needs a folder"

    class KeyErrorDataset(_Dataset):
        def split(self, name):
            return {"train": super().split("train")}[name]

    failed = check_entry(_entry("dataset", KeyErrorDataset))
    assert "split('val') raised KeyError" in failed.reason


def _transform(change: Any, family: str = "intensity") -> Entry:
    def factory(p: float = 0.5) -> Any:
        def transform(batch, generator):
            return change(dict(batch), generator)

        return transform

    return _entry("transform", factory, family=family)


def _shift(batch, g, *, per_source=True, per_sample=True, global_rng=False):
    for key in ("a", "b"):
        n = batch[key].shape[0] if per_sample else 1
        rand = torch.rand(n, 1, 1, 1) if global_rng else torch.rand(n, 1, 1, 1, generator=g)
        if key == "a" or per_source:
            draw = rand * 0.1
        batch[key] = (batch[key] + draw).clamp(0, 1)
    return batch


@pytest.mark.parametrize(
    ("change", "family", "reason"),
    [
        (_shift, "intensity", None),
        (lambda b, g: _shift(b, g, global_rng=True), "intensity", "same seed gave different"),
        (lambda b, g: _shift(b, g, per_source=False), "intensity", "draw per source"),
        (lambda b, g: _shift(b, g, per_sample=False), "intensity", "draw per sample"),
        (lambda b, g: {**_shift(b, g), "mask": b["mask"] * 0}, "intensity", "changed the mask"),
        (lambda b, g: {**b, "a": b["a"] + 0.5}, "intensity", "outside [0, 1]"),
        (lambda b, g: {**b, "a": b["a"].flip(-1)}, "geometric", "moved a and b differently"),
        (lambda b, g: {**b, "a": b["a"][..., :8]}, "geometric", "returned shape"),
        (lambda b, g: {k: v for k, v in b.items() if k != "case_id"}, "geometric", "keys"),
        (lambda b, g: b, "geometric", "at p=1 it changed nothing"),
    ],
)
def test_transforms(change, family, reason):
    result = check_entry(_transform(change, family))
    if reason is None:
        assert result.passed, result.reason
    else:
        assert result.status == "fail" and reason in result.reason, result.reason


class _Tracker:
    @hookimpl
    def run_started(self, run):
        pass


class _Undecorated:
    def run_finished(self, run, status, summary, record, files, error):
        pass


class _WrongArguments:
    @hookimpl
    def epoch_ended(self, run, stage, epoch, loss):
        pass


def _missing_library() -> Any:
    raise errors.ConfigError('tracker needs mlflow: pip install "benchbox[mlflow]"')


@pytest.mark.parametrize(
    ("factory", "status", "reason"),
    [
        (_Tracker, "pass", "its hooks are not called"),
        (_Undecorated, "fail", "method run_finished is not decorated with benchbox.hookimpl"),
        (_WrongArguments, "fail", "its hooks do not match benchbox's"),
        (object, "fail", "none of the hooks"),
        (_missing_library, "skip", 'not checked: tracker needs mlflow: pip install "benchbox'),
    ],
)
def test_trackers(factory, status, reason):
    result = check_entry(_entry("tracker", factory))
    assert result.status == status and reason in result.reason, result.reason


class _Executor:
    def __init__(self, slots: Any = 2) -> None:
        self.slots = slots

    def run(self, jobs, events, stop):
        pass


@pytest.mark.parametrize(
    ("factory", "reason"),
    [
        (lambda: _Executor(0), "slots=0; expected an int >= 1"),
        (lambda: _Executor(True), "slots=True"),
        (lambda: type("E", (), {"slots": 1})(), "no method run(jobs, events, stop)"),
        (lambda: type("E", (), {"slots": 1, "run": lambda self, jobs: 0})(), "cannot be called"),
    ],
)
def test_a_broken_executor_fails(factory, reason):
    assert check_entry(_entry("executor", _Executor)).passed
    result = check_entry(_entry("executor", factory))
    assert result.status == "fail" and reason in result.reason, result.reason


def test_regions():
    assert check_entry(_entry("region", lambda: {"lesion": (1, 2)})).passed
    result = check_entry(_entry("region", lambda: {"bad name": (1,)}))
    assert result.status == "fail" and "region name 'bad name'" in result.reason


def test_a_model_that_declares_3d_is_checked_in_2d_and_3d():
    assert check_entry(_entry("segmenter", Segmenter, dims=(2, 3))).passed

    class Only2D(Segmenter):
        def forward(self, x):
            return self.conv2d(x)

    result = check_entry(_entry("segmenter", Only2D, dims=(2, 3)))
    assert result.status == "fail" and "forward on (2, 1, 16, 16, 48)" in result.reason


def test_a_3d_segmenter_declaring_a_multiple_is_checked_on_sides_divisible_by_it():
    class Needs32(Segmenter):
        def forward(self, x):
            assert all(n % 32 == 0 for n in x.shape[2:]), tuple(x.shape)
            return super().forward(x)

    assert check_entry(_entry("segmenter", Needs32, dims=(2, 3), multiple=32)).passed
    result = check_entry(_entry("segmenter", Needs32, dims=(2, 3)))
    assert result.status == "fail" and "(2, 1, 16, 16, 48)" in result.reason
    result = check_entry(_entry("segmenter", Segmenter, dims=(3,), multiple=0))
    assert result.status == "fail" and "info multiple=0; expected an int >= 1" in result.reason


def test_a_factory_with_a_required_parameter_is_skipped():
    def factory(in_channels, num_classes, weights):
        return Segmenter(in_channels, num_classes)

    result = check_entry(_entry("segmenter", factory))
    assert result.status == "skip" and "requires weights" in result.reason


def test_results_are_one_line_and_checks_leave_torch_random_state_alone():
    state = torch.random.get_rng_state()
    result = check_entry(_entry("fusion", Fusion, slow=True))
    assert torch.equal(state, torch.random.get_rng_state())
    assert result.passed and result.slow
    assert result.line == f"pass fusion 'x' [slow] ({result.seconds:.2f} s)"
    failed = CheckResult("segmenter", "y", "fail", "segmenter 'y': forward raised X")
    assert failed.line == "fail segmenter 'y': forward raised X"


def test_check_by_kind_and_name():
    def register_segmenters(register):
        register("tiny-seg", Segmenter)

    plugin = type("P", (), {"register_segmenters": staticmethod(hookimpl(register_segmenters))})
    registry = create_registry([plugin], entry_points=False)
    assert check("segmenter", "tiny-seg", registry).passed
    with pytest.raises(errors.UnknownSegmenterError, match="did you mean 'tiny-seg'"):
        check("segmenter", "tiny-sg", registry)
