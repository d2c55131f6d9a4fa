"""`benchbox predict` on new pairs and on 3D NIfTI cases with tiny trained runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from benchbox import config as cfg
from benchbox import get_fusion, get_segmenter
from benchbox.cli import main
from benchbox.data.synthetic import generate
from benchbox.engine import runner
from benchbox.records import rundir
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings()
#: A non-trivial scan geometry (SimpleITK order x, y, z): anisotropic, shifted, flipped.
SPACING, ORIGIN = (0.9, 0.8, 2.5), (12.0, -30.0, 5.0)
DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def _run(out: Path, **overrides) -> Path:
    return runner.run(cfg.resolve(None, None, {**TINY, "out": str(out), **overrides})).run_dir


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("pair-run"))


@pytest.fixture(scope="module")
def phantom_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    args = ["synthetic", str(out), "--image-size", "32", "--n-train", "2", "--n-val", "1"]
    assert main([*args, "--n-test", "3", "--format", "png"]) == 0
    return out / "png"


def _write(array: np.ndarray, path: Path, spacing=SPACING) -> None:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(ORIGIN)
    img.SetDirection(DIRECTION)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


@pytest.fixture(scope="module")
def nnunet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An nnU-Net dataset of 3D phantom cases (6 slices of 40x36), 5 labelled, 2 not."""
    root = tmp_path_factory.mktemp("nnunet") / "Dataset001_Phantom"
    ct, mr, mask = generate(42, 40, seed=3)
    for i in range(7):
        sl = slice(6 * i, 6 * i + 6)
        folder, case = ("imagesTr", f"case{i:02d}") if i < 5 else ("imagesTs", f"new{i:02d}")
        _write((ct[sl, :, 2:38] * 1000).astype(np.float32), root / folder / f"{case}_0000.nii.gz")
        _write(mr[sl, :, 2:38].astype(np.float32), root / folder / f"{case}_0001.nii.gz")
        if i < 5:
            _write(mask[sl, :, 2:38], root / "labelsTr" / f"{case}.nii.gz")
    meta = {
        "channel_names": {"0": "CT", "1": "MRI"},
        "labels": {"background": 0, "lesion": 1},
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def nifti_run(nnunet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _nifti_run(tmp_path_factory.mktemp("nifti-run"), nnunet)


def _nifti_run(out: Path, nnunet: Path, **overrides) -> Path:
    """A tiny run on the nnU-Net phantom that saves its test predictions."""
    nifti = {"val_fraction": 0.2, "test_fraction": 0.2}
    return _run(
        out, dataset=f"nifti:{nnunet}", save_predictions=True, data_opts={"nifti": nifti},
        **overrides,
    )  # fmt: skip


def _predict_all_as_saved(run_dir: Path, nnunet: Path, out: Path) -> None:
    """``benchbox predict --split all`` writes each of the run's test cases as the run
    saved it."""
    args = ["predict", str(run_dir), "-d", f"nifti:{nnunet}", "--split", "all", "-o", str(out)]
    assert main(args) == 0
    saved = list((run_dir / "predictions").iterdir())
    assert saved
    for path in saved:
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentations" / path.name)))
        assert np.array_equal(ours, sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


def _eager(run_dir: Path, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fused image and labels from the checkpoint's models, rebuilt by hand."""
    state = rundir.load_checkpoint(run_dir / "checkpoint.pt")
    fusion = get_fusion("dual", width=4, depth=2)
    segmenter = get_segmenter("attunet", 1, 2, width=4, depth=2)
    fusion.load_state_dict(state["fusion"])
    segmenter.load_state_dict(state["segmenter"])
    with torch.no_grad():
        fused = fusion.eval()(torch.from_numpy(a), torch.from_numpy(b))
        labels = segmenter.eval()(fused).argmax(1)
    return fused[:, 0].numpy(), labels.numpy()


def _png(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.integration
def test_predict_pairs_writes_pngs_named_like_inputs_equal_to_eager(
    pair_run, phantom_png, tmp_path, capsys
):
    out = tmp_path / "pred"
    args = ["predict", str(pair_run), "--dataset", f"pairs:{phantom_png}", "--out", str(out)]
    assert main(args) == 0
    assert "img/s" in capsys.readouterr().out
    inputs = sorted(p.name for p in (phantom_png / "test" / "CT").iterdir())
    assert sorted(p.name for p in (out / "fused").iterdir()) == inputs
    assert sorted(p.name for p in (out / "segmentations").iterdir()) == inputs
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left

    a = np.stack([_png(phantom_png / "test" / "CT" / n)[None] / 255.0 for n in inputs])
    b = np.stack([_png(phantom_png / "test" / "MRI" / n)[None] / 255.0 for n in inputs])
    fused, labels = _eager(pair_run, a.astype(np.float32), b.astype(np.float32))
    for i, name in enumerate(inputs):
        expected = np.round(np.clip(fused[i], 0, 1) * 255).astype(np.uint8)
        assert np.abs(_png(out / "fused" / name).astype(int) - expected).max() <= 1
        assert np.array_equal(_png(out / "segmentations" / name), labels[i].astype(np.uint8) * 255)


@pytest.mark.integration
def test_predict_a_folder_of_new_unlabelled_pairs_and_all_splits(pair_run, phantom_png, tmp_path):
    new = tmp_path / "new"
    for mod in ("CT", "MRI"):
        shutil.copytree(phantom_png / "test" / mod, new / mod)
    assert main(["predict", str(pair_run), "-d", f"pairs:{new}", "-o", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a" / "fused").iterdir())) == 3
    args = ["predict", str(pair_run), "-d", f"pairs:{phantom_png}", "--split", "all"]
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    assert len(list((tmp_path / "b" / "fused").iterdir())) == 2 + 1 + 3


@pytest.mark.integration
def test_fusion_only_run_predicts_fused_images_only(phantom_png, tmp_path):
    run_dir = _run(tmp_path / "run", seg="none")
    out = tmp_path / "pred"
    assert main(["predict", str(run_dir), "-d", f"pairs:{phantom_png}", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fused"]


@pytest.mark.integration
def test_predict_nifti_cases_keeps_the_scans_geometry_and_matches_evaluation(
    nifti_run, nnunet, tmp_path
):
    out = tmp_path / "pred"
    assert main(["predict", str(nifti_run), "-d", f"nifti:{nnunet}", "-o", str(out)]) == 0
    for case in ("new05", "new06"):
        source = sitk.ReadImage(str(nnunet / "imagesTs" / f"{case}_0000.nii.gz"))
        for kind in ("fused", "segmentations"):
            written = sitk.ReadImage(str(out / kind / f"{case}.nii.gz"))
            assert written.GetSize() == source.GetSize()
            assert np.allclose(written.GetSpacing(), source.GetSpacing())
            assert np.allclose(written.GetOrigin(), source.GetOrigin())
            assert np.allclose(written.GetDirection(), source.GetDirection())

    # The run's own test case, predicted here, equals what evaluation saved for it.
    _predict_all_as_saved(nifti_run, nnunet, tmp_path / "all")


def _fails(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return " ".join(err.split())


@pytest.mark.integration
def test_a_corrupt_run_record_is_one_line_naming_the_file(pair_run, phantom_png, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(pair_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "tta": "rotate"}))
    out = tmp_path / "out"
    err = _fails(["predict", str(run_dir), "-d", f"pairs:{phantom_png}", "-o", str(out)], capsys)
    assert err == (
        f"error: {run_dir / 'config.json'}: --tta must be one of none, flip, not 'rotate'"
    )
    assert not out.exists()


def _malicious(path: Path) -> None:
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"fusion": Evil()}, path)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("empty", "checkpoint.pt: an empty file (0 bytes), not a checkpoint"),
        (
            "truncated",
            "checkpoint.pt: not a readable checkpoint, truncated or not written by benchbox "
            "run (RuntimeError: PytorchStreamReader failed reading zip archive: failed "
            "finding central directory)",
        ),
        (
            "malicious",
            "checkpoint.pt: refused, loading it would call posix.system, which is not "
            "weights (benchbox never runs code from a checkpoint; this file was not written "
            "by benchbox run, or was altered)",
        ),
        (
            "missing",
            ": checkpoint.pt missing, though status.json says the run completed (moved or "
            "deleted since?)",
        ),
    ],
)
def test_a_bad_checkpoint_is_one_line_that_keeps_the_safety_on(
    pair_run, phantom_png, tmp_path, capsys, damage, expected
):
    # Before: 6-8 lines of torch's text advising weights_only=False, "cannot be read ()"
    # for an empty file, and "not a finished run ... (the run is completed)".
    run_dir = tmp_path / "run"
    shutil.copytree(pair_run, run_dir)
    checkpoint = run_dir / "checkpoint.pt"
    if damage == "empty":
        checkpoint.write_bytes(b"")
    elif damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:3000])
    elif damage == "malicious":
        _malicious(checkpoint)
    else:
        checkpoint.unlink()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["predict", str(run_dir), "-d", f"pairs:{phantom_png}", "-o", str(out)])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    where = str(run_dir / "checkpoint.pt") if damage != "missing" else str(run_dir)
    assert err == f"error: {where}{expected.removeprefix('checkpoint.pt')}"
    assert "weights_only" not in err
    assert not out.exists()


@pytest.mark.integration
def test_bad_inputs_fail_with_one_line_and_write_nothing(
    pair_run, nifti_run, phantom_png, nnunet, tmp_path, capsys
):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    err = _fails(["predict", str(tmp_path / "empty"), "-d", f"pairs:{phantom_png}", "-o",
                  str(out)], capsys)  # fmt: skip
    assert "not a finished run" in err

    one = tmp_path / "one"
    shutil.copytree(phantom_png / "test" / "CT", one / "CT")
    err = _fails(["predict", str(pair_run), "-d", f"pairs:{one}", "-o", str(out)], capsys)
    assert "needs the folders CT/ and MRI/" in err

    bad = tmp_path / "bad"
    shutil.copytree(nnunet, bad)
    (bad / "imagesTs" / "new06_0001.nii.gz").unlink()
    err = _fails(["predict", str(nifti_run), "-d", f"nifti:{bad}", "-o", str(out)], capsys)
    assert "new06" in err and "missing modality file" in err

    shutil.copytree(nnunet, bad, dirs_exist_ok=True)
    mri = sitk.ReadImage(str(bad / "imagesTs" / "new06_0001.nii.gz"))
    _write(sitk.GetArrayFromImage(mri), bad / "imagesTs" / "new06_0001.nii.gz", (1.0, 1.0, 3.0))
    err = _fails(["predict", str(nifti_run), "-d", f"nifti:{bad}", "-o", str(out)], capsys)
    assert "does not match" in err and "--resample" in err
    assert not out.exists() or not any(out.rglob("*.*"))
    ok = tmp_path / "resampled"
    assert main(["predict", str(nifti_run), "-d", f"nifti:{bad}", "--resample", "-o",
                 str(ok)]) == 0  # fmt: skip
    assert len(list((ok / "segmentations").iterdir())) == 2


@pytest.mark.integration
def test_post_processed_run_scores_saves_and_predicts_the_largest_component(
    nifti_run, nnunet, tmp_path
):
    from benchbox.engine.postprocess import keep_largest
    from benchbox.records import leaderboard

    # Same data, seed and training as nifti_run; only the post-processing differs.
    run_dir = _nifti_run(tmp_path / "run", nnunet, postprocess="largest")
    raw = sorted((nifti_run / "predictions").iterdir())
    for path in raw:
        plain = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        kept = sitk.GetArrayFromImage(sitk.ReadImage(str(run_dir / "predictions" / path.name)))
        assert np.array_equal(kept, keep_largest(plain))
    record = json.loads((run_dir / "metrics.json").read_text())["postprocess"]
    assert (record["requested"], record["applied"]) == ("largest", "largest")
    board = leaderboard.read(json.loads((run_dir / "status.json").read_text())["leaderboard"])
    assert list(board["postprocess"]) == ["largest"]

    # benchbox predict applies the run's post-processing: its test case comes out as saved.
    _predict_all_as_saved(run_dir, nnunet, tmp_path / "all")


@pytest.mark.integration
def test_predict_applies_the_runs_tta_as_its_test_split_was_scored(nnunet, tmp_path, request):
    run_dir = _nifti_run(tmp_path / "run", nnunet, tta="flip")
    assert json.loads((run_dir / "metrics.json").read_text())["tta"] == "flip"
    modes = request.getfixturevalue("tta_modes")  # spying from here on: predict only
    _predict_all_as_saved(run_dir, nnunet, tmp_path / "all")
    assert modes and set(modes) == {"flip"}


class _Islands(torch.nn.Module):
    """A 'segmenter' whose foreground is a central block plus a grid of small islands."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        fg = torch.zeros(h, w)
        fg[2::8, 2::8] = fg[3::8, 3::8] = 1.0  # 2 px islands, 8 px apart
        fg[h // 4 : h // 2, w // 4 : w // 2] = 1.0
        fg = fg.expand(x.shape[0], 1, h, w)
        return torch.cat([0.5 - fg, fg - 0.5], dim=1)


def test_score_split_post_processes_the_restored_labels_before_scoring(nnunet, tmp_path):
    from benchbox.data.nifti import open_nifti
    from benchbox.engine.device import resolve_amp
    from benchbox.engine.inference import Predictor, predict_split, score_split
    from benchbox.engine.postprocess import keep_largest
    from benchbox.metrics.suite import score_segmentation_case

    ds = open_nifti(str(nnunet), image_size=32, val_fraction=0.2, test_fraction=0.4)
    cpu = torch.device("cpu")
    predictor = Predictor(None, _Islands(), cpu, resolve_amp("off", cpu))
    raw_cases = list(predict_split(ds, predictor, "test"))
    raw = score_split(ds, predictor, split="test")
    kept = score_split(ds, predictor, split="test", postprocess=keep_largest,
                       save_predictions=tmp_path)  # fmt: skip
    changed = 0
    for case, (_, row) in zip(raw_cases, kept.per_case.iterrows(), strict=True):
        expected = keep_largest(case.restored)
        changed += int(not np.array_equal(expected, case.restored))
        saved = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{case.case_id}.nii.gz")))
        assert np.array_equal(saved, expected)
        scores = score_segmentation_case(
            expected, case.reference, case.reference_spacing, ds.eval_regions()
        )
        assert row["dice_lesion"] == pytest.approx(scores["dice_lesion"])
    assert changed == len(raw_cases)  # every case had islands to remove
    assert kept.summary["dice_lesion"] != pytest.approx(raw.summary["dice_lesion"])


class _FolderPhantom:
    """A third-party dataset plugin: the phantom, read from a folder given as its root
    (its ``seed.txt`` holds the phantom's seed), so new data is a new folder."""

    @staticmethod
    def open(root: str, image_size: int = 32, seed: int = 0):
        from benchbox.data import SyntheticDataset

        seed = int((Path(root) / "seed.txt").read_text())
        return SyntheticDataset(image_size=image_size, n_train=8, n_val=2, n_test=3, seed=seed)

    @staticmethod
    @__import__("benchbox").hookimpl
    def register_datasets(register):
        register("folder-phantom", _FolderPhantom.open)


@pytest.mark.integration
def test_a_run_on_a_third_party_dataset_can_be_predicted_on_new_data(tmp_path):
    """No plugin answers the open_inputs hook for this dataset, so predict rebuilds it
    with the run's recorded parameters and the new root and predicts its test split;
    the files equal the models applied by hand."""
    from benchbox.hooks.manager import create_registry, use_registry

    train, new = tmp_path / "train", tmp_path / "new"
    for folder, seed in ((train, 0), (new, 7)):
        folder.mkdir()
        (folder / "seed.txt").write_text(str(seed))
    with use_registry(create_registry([_FolderPhantom])):
        settings = {**TINY, "data_opts": {}, "dataset": f"folder-phantom:{train}"}
        run_dir = _run(tmp_path / "out", **settings)
        assert main(["predict", str(run_dir), "--dataset", f"folder-phantom:{new}",
                     "--out", str(tmp_path / "pred")]) == 0  # fmt: skip
        expected = _FolderPhantom.open(str(new)).split("test")
    fused = sorted((tmp_path / "pred" / "fused").glob("*.png"))
    labels = sorted((tmp_path / "pred" / "segmentations").glob("*.png"))
    assert [p.stem for p in fused] == [p.stem for p in labels] == [s["case_id"] for s in expected]
    a = torch.stack([s["a"] for s in expected]).numpy()
    b = torch.stack([s["b"] for s in expected]).numpy()
    eager_fused, eager_labels = _eager(run_dir, a, b)
    for i, path in enumerate(fused):
        got = _png(path).astype(np.float64) / 255
        assert np.abs(got - eager_fused[i]).max() <= 0.5 / 255 + 1e-6
        assert np.array_equal(_png(labels[i]) > 0, eager_labels[i] > 0)
