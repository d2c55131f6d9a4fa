"""Run configuration: presets, files, overrides, validation, hashing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchbox import config as cfg
from benchbox.config import settings
from benchbox.config.files import read_toml
from benchbox.config.presets import preset_path
from benchbox.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_presets_ship_in_configs_and_resolve():
    for name in ("quick", "standard"):
        assert (REPO / "configs" / f"{name}.toml").is_file()
        assert preset_path(name).resolve() == (REPO / "configs" / f"{name}.toml").resolve()
    quick = cfg.resolve()
    assert quick.preset == "quick"
    file_values = read_toml(REPO / "configs" / "quick.toml")
    assert quick.image_size == file_values["image_size"]
    assert quick.epochs == file_values["epochs"]
    standard = cfg.resolve("standard")
    assert standard.image_size > quick.image_size and standard.epochs > quick.epochs


def test_precedence_defaults_preset_file_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        "epochs = 3\nseed = 7\n[seg_opts]\nwidth = 8\n[data_opts.synthetic]\nn_train = 10\n"
    )
    c = cfg.resolve(None, path, {"seed": 9, "seg_opts": {"depth": 3}})
    assert (c.epochs, c.seed) == (3, 9)
    assert c.seg_opts == {"width": 8, "depth": 3}
    assert c.dataset_params()["n_train"] == 10
    assert c.config_file == str(path)


def test_dataset_params_apply_only_to_their_dataset():
    c = cfg.resolve(
        None, None, {"data_opts": {"synthetic": {"n_train": 5}, "misregistration": 1.0}}
    )
    assert c.dataset_params() == {
        **cfg.resolve().dataset_params(),
        "n_train": 5,
        "misregistration": 1.0,
    }
    c.dataset = "pairs:/data/x"
    assert c.dataset_params() == {"misregistration": 1.0}
    assert (c.dataset_name, c.dataset_root) == ("pairs", "/data/x")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"image_size": 50}, "image_size must be a multiple of 32"),
        ({"amp": "fp8"}, "--amp must be one of off, auto, fp16, bf16"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"lr": float("inf")}, "lr must be a finite number > 0, got inf"),
        ({"fusion_lr": float("nan")}, "fusion_lr must be a finite number > 0, got nan"),
        ({"fusion_weight": float("nan")}, "fusion_weight must be a finite number >= 0"),
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0"),
        ({"fusion": "none", "seg": "none"}, "leave nothing to run"),
        ({"epochs": "ten"}, "epochs must be int"),
        ({"epocs": 3}, "unknown setting 'epocs'; did you mean 'epochs'"),
    ],
)
def test_invalid_values_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        cfg.resolve(None, None, overrides)


def test_bad_files_and_presets(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        cfg.resolve(None, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    with pytest.raises(ConfigError, match="invalid TOML"):
        cfg.resolve(None, bad)
    with pytest.raises(ConfigError, match="unknown preset 'quik'; did you mean 'quick'"):
        cfg.resolve("quik")


def test_option_parsing():
    assert settings.parse_options(
        ["width=8", "norm=instance", "p=0.5", "flag=true", "l=[1, 2]"], "--x"
    ) == {"width": 8, "norm": "instance", "p": 0.5, "flag": True, "l": [1, 2]}
    with pytest.raises(ConfigError, match=r"--seg-opt expects key=value or name\.key=value"):
        settings.parse_options(["width"], "--seg-opt")


def test_option_for_one_component_only():
    opts = settings.parse_options(["dual.width=8", "depth=2"], "--fusion-opt")
    assert opts == {"dual": {"width": 8}, "depth": 2}
    config = cfg.resolve(None, None, {"fusion": "dual", "fusion_opts": opts})
    assert config.params("fusion_opts") == {"width": 8, "depth": 2}
    config = cfg.resolve(None, None, {"fusion": "mean", "fusion_opts": opts})
    assert "width" not in config.params("fusion_opts")
    with pytest.raises(ConfigError, match=r"expects key=value or name\.key=value"):
        settings.parse_options(["a.b.c=1"], "--fusion-opt")


def test_hash_ignores_where_and_how_fast_but_not_what():
    a = cfg.resolve()
    b = cfg.resolve(None, None, {"out": "/elsewhere", "device": "cpu", "num_workers": 2})
    c = cfg.resolve(None, None, {"seed": 1})
    assert a.hash() == b.hash() != c.hash()


def test_settings_added_later_keep_earlier_hashes_at_their_default():
    # Hashes of the quick default as computed before --postprocess and --tta existed (benchbox at
    # 1e21172); the reference leaderboards record hashes like these.
    assert cfg.resolve().hash() == "d789cdcd2270"
    assert cfg.resolve().hash("off") == "b0a14e64456a"
    assert cfg.resolve(None, None, {"seg": "unet", "seed": 2}).hash("off") == "73a8dc0544cc"
    # A value other than the default is part of what the run computes.
    changed = {
        cfg.resolve(None, None, overrides).hash()
        for overrides in ({"postprocess": "largest"}, {"postprocess": "auto"}, {"tta": "flip"})
    }
    assert len(changed) == 3 and cfg.resolve().hash() not in changed


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"postprocess": "biggest"}, "--postprocess must be one of none, largest, auto"),
        ({"postprocess": "largest", "seg": "none"}, "this run has none"),
        ({"tta": "rotate"}, "--tta must be one of none, flip, not 'rotate'"),
        ({"tta": "flip", "seg": "none"}, "--tta flip augments a segmenter's predictions"),
    ],
)
def test_postprocess_and_tta_values_are_checked(overrides, match):
    with pytest.raises(ConfigError, match=match):
        cfg.resolve(None, None, overrides).validate()


def test_component_tables_apply_only_to_their_component():
    c = cfg.resolve(
        None,
        None,
        {
            "seg_opts": {"attunet": {"width": 8}, "depth": 3},
            "fusion_opts": {"timm-dual": {"backbone": "resnet18"}},
        },
    )
    assert c.params("seg_opts") == {**cfg.resolve().params("seg_opts"), "width": 8, "depth": 3}
    assert "backbone" not in c.params("fusion_opts")
    c.seg, c.fusion = "unet", "timm-dual"
    assert "width" not in c.params("seg_opts") and c.params("seg_opts")["depth"] == 3
    assert c.params("fusion_opts")["backbone"] == "resnet18"


def test_run_and_evaluate_share_the_nsd_tolerance():
    from benchbox.metrics.segmentation import DEFAULT_NSD_TOLERANCE

    assert cfg.RunConfig().nsd_tolerance == DEFAULT_NSD_TOLERANCE


def test_the_real_pairs_recipe_resolves_and_builds():
    from benchbox.hooks.manager import create_registry

    c = cfg.resolve(None, REPO / "configs" / "aanlib.toml", {"dataset": "pairs:/data"})
    assert (c.fusion, c.seg, c.fusion_loss, c.select) == ("dual", "none", "maxgrad", "qabf")
    assert c.image_size == 256
    registry = create_registry()
    fusion = registry.get("fusion", c.fusion).build(**c.params("fusion_opts"))
    assert fusion.base == "max"
    loss = registry.get("loss", c.fusion_loss).build(**c.params("fusion_loss_opts"))
    assert (loss.intensity_weight, loss.grad_weight, loss.target) == (1.0, 10.0, "max")
    # the component-scoped table does not reach a model without that parameter
    other = cfg.resolve(None, REPO / "configs" / "aanlib.toml", {"fusion": "timm-dual"})
    assert "base" not in other.params("fusion_opts")


@pytest.mark.integration
def test_shipped_configs_are_found_from_a_built_wheel(tmp_path, shared_data):
    """The wheel installs configs/ as the resource package benchbox.configs: presets and
    cases:brats2015 resolve there, not in a source checkout (they once did only there)."""
    import subprocess
    import sys

    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("benchbox-*.whl")
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    data = shared_data("brats2015").parent
    script = (
        "import benchbox, benchbox.configs\n"
        "from benchbox.config.presets import preset_path\n"
        "from benchbox import get_dataset\n"
        "print(benchbox.__file__)\n"
        "print(preset_path('quick'))\n"
        "ds = get_dataset('cases', root='brats2015', image_size=32, seed=0)\n"
        "print(ds.name, len(ds.volumes('test')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "BENCHBOX_DATA": str(data)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    module, preset, dataset = done.stdout.strip().splitlines()[-3:]
    assert Path(module).is_relative_to(target) and Path(preset).is_relative_to(target)
    assert dataset == "brats2015 1"


def test_distillation_settings_hash_only_when_used(tmp_path):
    """Runs without a teacher keep their hashes; a teacher counts by its own config hash
    (not by where its folder lies), the distillers by name, options and weight."""
    import json

    assert cfg.resolve().hash() == "d789cdcd2270"  # with teacher, distill... at defaults
    teachers = []
    for name, recorded in (("t1", "aaaa"), ("t2", "aaaa"), ("t3", "bbbb")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"config_hash": recorded}))
        teachers.append(str(tmp_path / name))

    def taught(teacher: str, **overrides: object) -> str:
        values = {"teacher": teacher, "distill": ["logits"], **overrides}
        return cfg.resolve(None, None, values).hash()

    assert taught(teachers[0]) == taught(teachers[1]) != taught(teachers[2])
    variants = {
        taught(teachers[0]),
        taught(teachers[0], distill=["cwd"]),
        taught(teachers[0], distill=["logits", "cwd"]),
        taught(teachers[0], distill_weight=0.5),
        taught(teachers[0], distill_opts={"logits": {"temperature": 2}}),
        cfg.resolve().hash(),
    }
    assert len(variants) == 6
    # A grid writes "no teacher" as "none" (TOML has no null): the default run again.
    assert cfg.resolve(None, None, {"teacher": "none", "distill": "none"}).hash() == (
        "d789cdcd2270"
    )
    with pytest.raises(ConfigError, match=r"--teacher .*t4: no readable config.json"):
        taught(str(tmp_path / "t4"))


@pytest.mark.parametrize(
    ("preset", "seg"),
    [
        ("quick", None),
        ("standard", None),
        ("quick3d", None),
        ("quick3d", "monai-segresnet"),
        ("brats3d", None),
        ("brats3d", "monai-dynunet"),
    ],
)
def test_every_shipped_preset_passes_the_pre_flight_check(preset, seg):
    # Every option and value a preset sets, for the models its header names (the
    # dataset is left out: brats3d's scans are not in a clone).
    from benchbox.engine.models import check
    from benchbox.hooks.manager import get_registry

    config = cfg.resolve(preset, None, {"seg": seg} if seg else {})
    assert config.preset == preset
    entries = check(config, get_registry(), data=False)
    assert entries["segmenter"].name == (seg or config.seg)
    if preset == "brats3d":
        assert config.is_3d and config.patch == (32, 32, 32) and config.dataset == "cases:brats2015"
