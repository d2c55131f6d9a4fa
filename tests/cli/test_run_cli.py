"""`benchbox run` from the command line: output, bad input, Ctrl-C."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from benchbox.cli import main
from benchbox.data.io import write_image

TINY = [
    "--image-size",
    "32",
    "--batch-size",
    "4",
    "--epochs",
    "1",
    "--fusion-epochs",
    "1",
    "--data-opt",
    "n_train=8",
    "--data-opt",
    "n_test=4",
    "--data-opt",
    "n_val=2",
    "--fusion-opt",
    "width=4",
    "--fusion-opt",
    "depth=2",
    "--seg-opt",
    "width=4",
    "--seg-opt",
    "depth=2",
]


def one_line_error(capsys, args: list[str], code: int = 1) -> str:
    with pytest.raises(SystemExit) as info:
        main(["run", *args])
    assert info.value.code == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


@pytest.mark.integration
@pytest.mark.parametrize(
    ("extra", "scored"),
    [
        ([], None),
        (
            ["--postprocess", "largest", "--tta", "flip"],
            "test labels post-processed (largest) and predicted with --tta flip "
            "(4 mirrored passes)",
        ),
    ],
)
def test_tiny_run_prints_summary_and_paths(tmp_path, capsys, extra, scored):
    assert main(["run", *TINY, *extra, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert (scored in flat) if scored else "test labels" not in flat
    for text in (
        "dice_lesion",
        "hd95_lesion",
        "ssim_mean",
        "inference images/s",
        "lesion: 4 cases",
        "leaderboard",
        "checkpoint",
        "fusion params",
    ):
        assert text in out
    # one finished bar per stage, each drawn once
    bars = [line.split()[0] for line in out.splitlines() if "img/s" in line]
    assert bars == ["fusion", "joint"]
    # one leaderboard, with its per-case companion beside it
    boards = sorted(p.name for p in (tmp_path / "leaderboards").glob("*.csv"))
    assert boards == ["synthetic.cases.csv", "synthetic.csv"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--amp", "fp8"], 2, "Invalid value for '--amp'"),
        (["--epochs", "-1"], 1, "epochs must be >= 0"),
        (["--lr", "inf"], 1, "lr must be a finite number > 0, got inf"),
        (["--lr", "nan"], 1, "lr must be a finite number > 0, got nan"),
        (["--lr", "-1e-3"], 1, "lr must be a finite number > 0, got -0.001"),
        (["--image-size", "50"], 1, "image_size must be a multiple of 32"),
        (["--device", "cuda:7"], 1, "--device cuda:7"),
        (["--seg-opt", "width"], 1, "--seg-opt expects key=value"),
        (["--seg-opt", "widht=4"], 1, "segmenter 'attunet' has no parameter 'widht'"),
        (["--config", "missing.toml"], 1, "config file missing.toml: no such file"),
        (["--fusion-weights", "nowhere.pt"], 1, "--fusion-weights nowhere.pt: no such file"),
        (["--loss", "fusion"], 1, "--loss 'fusion' is a fusion loss"),
        (["--dataset", "synthetic:/data"], 1, "dataset 'synthetic' takes no path"),
    ],
)
def test_invalid_options_are_one_line_before_training(tmp_path, capsys, args, code, message):
    err = one_line_error(capsys, [*TINY, "--out", str(tmp_path), *args], code)
    assert message in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.integration
def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = one_line_error(capsys, [*TINY, "--out", str(blocker / "out")])
    assert "output folder" in err and "is not writable" in err


@pytest.mark.integration
def test_dataset_without_labels_with_a_segmenter(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for mod in ("CT", "MRI"):
            for i in range(2):
                img = (rng.random((32, 32)) * 255).astype(np.uint8)
                write_image(img, tmp_path / "pairs" / split / mod / f"{i}.png")
    no_data_opts = [a for a in TINY if not a.startswith("n_") and a != "--data-opt"]
    err = one_line_error(
        capsys,
        [*no_data_opts, "--dataset", f"pairs:{tmp_path / 'pairs'}", "--out", str(tmp_path / "out")],
    )
    assert "has no labels" in err and "--seg none" in err
    assert not list((tmp_path / "out" / "runs").iterdir())


@pytest.mark.integration
def test_ctrl_c_marks_the_run_interrupted_and_writes_no_row(tmp_path, training_cli_run):
    proc, run_dir = training_cli_run([*TINY, "--epochs", "400"], tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    log = (tmp_path / "run.log").read_text()
    assert "interrupted" in log and "Traceback" not in log
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "leaderboards" / "synthetic.csv").exists()


# -- the options are generated from RunConfig ---------------------------------------------
def _echo_command(config_class):
    """A Typer app whose one command returns what `benchbox run` would pass to resolve()."""
    import inspect

    import typer

    from benchbox.cli.run import given_settings, settings_parameters

    seen = {}

    def command(**options):
        seen.update(given_settings(options, config_class))

    command.__signature__ = inspect.Signature(settings_parameters(config_class))
    app = typer.Typer()
    app.command()(command)
    return app, seen


def test_every_run_setting_is_an_option_with_help():
    import dataclasses

    from typer.testing import CliRunner

    from benchbox.cli import app
    from benchbox.config.run import RunConfig, setting_of

    text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for f in dataclasses.fields(RunConfig):
        spec = setting_of(f)
        assert spec.help and spec.cli, f.name
        flag = spec.flag or "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert spec.help.split()[0] in text
    for flag in ("--no-freeze-fusion", "-f", "-s", "-d", "-c", "-o", "off|auto|fp16|bf16"):
        assert flag in text


def test_only_given_options_reach_the_config_parsed_by_kind():
    from typer.testing import CliRunner

    from benchbox.config.run import RunConfig

    app, seen = _echo_command(RunConfig)
    args = ["--seg-opt", "width=4", "--seg-opt", "depth=2", "--amp", "BF16", "--no-resample"]
    result = CliRunner().invoke(app, [*args, "-f", "mean", "--lr", "0.5", "--config", "x.toml"])
    assert result.exit_code == 0, result.output
    assert seen == {
        "fusion": "mean",
        "seg_opts": {"width": 4, "depth": 2},
        "amp": "bf16",
        "resample": False,
        "lr": 0.5,
        "config_file": "x.toml",
    }


def test_list_settings_are_repeatable_options_and_not_tables():
    """--tracker and --augment repeat (or take a comma list); --augment-opt NAME.KEY=VALUE."""
    from typer.testing import CliRunner

    from benchbox import config as cfg
    from benchbox.config.run import RunConfig
    from benchbox.errors import ConfigError

    app, seen = _echo_command(RunConfig)
    args = ["--tracker", "tensorboard", "--tracker", "mlflow", "--augment", "flip,gamma"]
    args += ["--augment", "affine", "--augment-opt", "affine.degrees=15", "--select", "dice"]
    result = CliRunner().invoke(app, [*args, "--val-every", "2", "--patience", "3"])
    assert result.exit_code == 0, result.output
    assert seen == {
        "trackers": ["tensorboard", "mlflow"],
        "augment": ["flip,gamma", "affine"],
        "augment_opts": {"affine": {"degrees": 15}},
        "select": "dice",
        "val_every": 2,
        "patience": 3,
    }
    config = cfg.resolve(None, None, seen)
    assert config.trackers == ["tensorboard", "mlflow"]
    assert config.augment == ["flip", "gamma", "affine"]
    assert config.augment_opts == {"affine": {"degrees": 15}}
    assert cfg.resolve(None, None, {"augment": ["none"]}).augment == []
    # where a run is logged is not what it computes
    assert config.hash() == cfg.resolve(None, None, {**seen, "trackers": []}).hash()
    assert config.hash() != cfg.resolve(None, None, {**seen, "augment": ["flip"]}).hash()
    with pytest.raises(ConfigError, match=r"TRANSFORM\.OPTION=VALUE"):
        cfg.resolve(None, None, {"augment": ["affine"], "augment_opts": {"degrees": 15}})


def test_a_new_setting_is_one_field_with_its_help():
    from dataclasses import dataclass

    from typer.testing import CliRunner

    from benchbox.config.run import RunConfig, setting

    @dataclass
    class Extended(RunConfig):
        grad_clip: float = setting(1.0, "Clip gradients to this norm.")
        ema: bool = setting(False, "Keep an exponential moving average of the weights.")

    app, seen = _echo_command(Extended)
    text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "--grad-clip" in text and "Clip gradients to this norm." in text
    assert "--ema" in text and "--no-ema" in text
    assert CliRunner().invoke(app, ["--grad-clip", "0.5", "--ema"]).exit_code == 0
    assert seen == {"grad_clip": 0.5, "ema": True}
    bad = CliRunner().invoke(app, ["--grad-clip", "abc"], env={"COLUMNS": "200"})
    assert bad.exit_code == 2 and "Invalid value for '--grad-clip'" in bad.output
