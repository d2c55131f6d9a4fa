"""The one local-weights loader: formats, key checks, and refusal to unpickle objects."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from benchbox.errors import WeightsError
from benchbox.records.weights import apply_state_dict, load_weights, read_state_dict


def _model(seed: int = 0) -> nn.Module:
    """The source model (seed 0); targets use another seed so a no-op load is caught."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    model[1].running_mean.uniform_()  # a buffer too must travel
    return model


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth", ".bin", ""])
def test_round_trip_every_format(tmp_path: Path, suffix: str) -> None:
    source = _model()
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    target = _model(seed=1)
    assert not _same(source, target)
    assert load_weights(target, path) is target
    assert _same(source, target)


def test_safetensors_content_is_recognised_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "model.weights"
    save_file(_model().state_dict(), str(path))
    assert set(read_state_dict(path)) == set(_model().state_dict())


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model"])
def test_checkpoint_nesting_the_state_dict(tmp_path: Path, wrapper: str) -> None:
    source = _model()
    path = tmp_path / "ckpt.pt"
    torch.save({wrapper: source.state_dict(), "epoch": 3, "lr": 0.1, "names": ["x"]}, path)
    assert _same(source, load_weights(_model(seed=1), path))


def test_half_precision_file_fills_a_float_model(tmp_path: Path) -> None:
    source = _model().half()
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    target = load_weights(_model(seed=1), path)
    assert target[0].weight.dtype == torch.float32
    assert torch.equal(target[0].weight, source[0].weight.float())


def test_missing_unexpected_and_shape_mismatch_are_named(tmp_path: Path) -> None:
    state = _model().state_dict()
    del state["2.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(4, 3, 3, 3)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        load_weights(_model(), path)
    msg = str(info.value)
    assert str(path) in msg and "Sequential" in msg
    assert "1 missing from the file: 2.bias" in msg
    assert "1 unexpected by the model: extra.weight" in msg
    assert "0.weight (file (4, 3, 3, 3), model (4, 1, 3, 3))" in msg


def test_many_mismatched_keys_are_counted_not_all_listed(tmp_path: Path) -> None:
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(10)])
    path = tmp_path / "w.safetensors"
    save_file({"other.weight": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsError, match=r"20 missing from the file: 0\.weight, .*\(15 more\)"):
        load_weights(model, path)


def test_non_strict_tolerates_absent_keys_but_not_shapes_or_no_overlap(tmp_path: Path) -> None:
    source = _model()
    state = {k: v for k, v in source.state_dict().items() if k.startswith("0.")}
    state["head.weight"] = torch.zeros(3)
    path = tmp_path / "part.pt"
    torch.save(state, path)
    target = load_weights(_model(seed=1), path, strict=False)
    assert torch.equal(target[0].weight, source[0].weight)

    torch.save({"x.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="none of its 1 keys is in the model"):
        load_weights(_model(), path, strict=False)
    torch.save({"0.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match="another shape"):
        load_weights(_model(), path, strict=False)


def test_allow_unexpected_still_requires_every_model_key() -> None:
    source = _model()
    state = dict(source.state_dict(), **{"fc.weight": torch.zeros(3)})
    target = apply_state_dict(_model(seed=1), state, allow_unexpected=True)
    assert _same(source, target)
    del state["0.bias"]
    with pytest.raises(WeightsError, match=r"missing from the file: 0\.bias"):
        apply_state_dict(_model(), state, allow_unexpected=True)


def test_prefix_selects_and_strips_and_is_suggested(tmp_path: Path) -> None:
    source = _model()
    path = tmp_path / "dp.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    with pytest.raises(WeightsError, match=r"under 'module\.': pass prefix='module\.'"):
        load_weights(_model(), path)
    assert _same(source, load_weights(_model(seed=1), path, prefix="module."))
    with pytest.raises(WeightsError, match=r"no key starts with prefix 'encoder\.'.*module\."):
        load_weights(_model(), path, prefix="encoder.")


def test_missing_file_says_nothing_is_downloaded(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist; benchbox never downloads"):
        load_weights(_model(), tmp_path / "imagenet")


@pytest.mark.parametrize(
    "content",
    [b"hello, I am a text file\n", b"", b"PK\x03\x04 truncated zip", b"\x00" * 64],
    ids=["text", "empty", "broken-zip", "zeros"],
)
def test_files_that_are_not_tensor_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=r"w\.pth is not a tensor file"):
        load_weights(_model(), path)


def test_broken_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        load_weights(_model(), path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("via", ["pickle", "torch.save"])
def test_a_malicious_pickle_is_refused_and_never_executed(
    tmp_path: Path, via: str, pickle_trap: Any
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"0.weight": torch.zeros(4, 1, 3, 3), "trap": pickle_trap(marker)}
    if via == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    # The payload really is live: a plain unpickle runs it.
    pickle.loads(pickle.dumps(pickle_trap(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    with pytest.raises(WeightsError, match="not a tensor file"):
        load_weights(_model(), path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        (torch.zeros(3), "holds a Tensor, not a state dict"),
        ([torch.zeros(3)], "holds a list, not a state dict"),
        ({"epoch": 3, "lr": 0.1}, r"not a state dict: its keys \('epoch', 'lr'\)"),
        ({}, "empty dict"),
    ],
)
def test_tensor_files_that_hold_no_state_dict(tmp_path: Path, obj: object, match: str) -> None:
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    with pytest.raises(WeightsError, match=match):
        read_state_dict(path)


def test_a_whole_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(_model(), path)
    with pytest.raises(WeightsError, match="not a tensor file"):
        read_state_dict(os.fspath(path))


def test_nested_state_dicts_are_flattened_and_selected_by_prefix(tmp_path: Path) -> None:
    # benchbox's own checkpoints: {"fusion": state_dict, "segmenter": state_dict}
    fusion, segmenter = _model(seed=5), _model(seed=6)
    path = tmp_path / "checkpoint.pt"
    torch.save({"fusion": fusion.state_dict(), "segmenter": segmenter.state_dict()}, path)
    assert "segmenter.0.weight" in read_state_dict(path)
    assert _same(segmenter, load_weights(_model(seed=1), path, prefix="segmenter."))
    assert _same(fusion, load_weights(_model(seed=1), path, prefix="fusion."))
    with pytest.raises(WeightsError, match=r"pass prefix='fusion\.' or prefix='segmenter\.'"):
        load_weights(_model(seed=1), path)
