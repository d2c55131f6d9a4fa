"""Grids: axes, the cartesian product, exclusion rules and grid files."""

from __future__ import annotations

import pytest

from benchbox.errors import ConfigError
from benchbox.sweep.grid import Grid, merge_grids, read_grid, split_list


def test_product_in_table_order_first_axis_slowest():
    grid = Grid(axes={"fusion": ["mean", "dual"], "seed": [0, 1, 2]})
    combos = grid.combinations()
    assert len(combos) == 6
    assert combos[0] == {"fusion": "mean", "seed": 0}
    assert combos[2] == {"fusion": "mean", "seed": 2}
    assert combos[3] == {"fusion": "dual", "seed": 0}


def test_exclude_rule_needs_every_key_to_match_and_lists_match_any():
    grid = Grid(
        axes={"fusion": ["mean", "dual", "max"], "seg": ["attunet", "unet"]},
        exclude=[{"fusion": ["mean", "max"], "seg": ["unet"]}],
    )
    combos = grid.combinations()
    assert {"fusion": "mean", "seg": "unet"} not in combos
    assert {"fusion": "max", "seg": "unet"} not in combos
    assert {"fusion": "dual", "seg": "unet"} in combos
    assert {"fusion": "mean", "seg": "attunet"} in combos
    assert len(combos) == 4


def test_dotted_axes_become_nested_parameter_tables_over_the_base():
    grid = Grid(base={"epochs": 3, "seg_opts": {"depth": 2}}, axes={"seg_opts.width": [8]})
    assert grid.overrides({"seg_opts.width": 8}) == {
        "epochs": 3,
        "seg_opts": {"depth": 2, "width": 8},
    }
    grid = Grid(axes={"fusion_opts.dual.width": [8]})
    assert grid.overrides({"fusion_opts.dual.width": 8}) == {"fusion_opts": {"dual": {"width": 8}}}


def test_read_grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        """
[base]
epochs = 2

[axes]
fusion = ["mean", "dual"]
seed = [0, 1]
seg_opts.width = [8, 16]

[[exclude]]
fusion = "mean"
"seg_opts.width" = 16
"""
    )
    grid = read_grid(path)
    assert grid.base == {"epochs": 2}
    assert grid.axes == {"fusion": ["mean", "dual"], "seed": [0, 1], "seg_opts.width": [8, 16]}
    assert len(grid.combinations()) == 8 - 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[axes]\nfusoin = ['dual']\n", "unknown setting 'fusoin'; did you mean 'fusion'?"),
        ("[axes]\nfusion = []\n", "axis 'fusion' has no values"),
        ("[axes]\nseed = [1, 1]\n", "repeats a value"),
        ("[axes]\nseg_opts = [1]\n", "is a table: vary one parameter"),
        ("[axes]\n'epochs.x' = [1]\n", "only parameter tables"),
        ("[axes]\nseed = [1]\n[[exclude]]\nfusion = 'x'\n", "not an axis"),
        ("[axis]\nseed = [1]\n", "unknown section(s) axis"),
        ("[axes\n", "invalid TOML"),
    ],
)
def test_bad_grid_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_grid(path)


def test_command_line_axes_replace_the_file_axes():
    grid = Grid(axes={"fusion": ["mean"], "seed": [0]}, exclude=[{"fusion": ["mean"]}])
    merged = merge_grids(grid, {"seed": [3, 4]})
    assert merged.axes == {"fusion": ["mean"], "seed": [3, 4]}
    assert merged.combinations() == []  # the file's rule still applies


def test_split_list():
    assert split_list("mean, dual") == ["mean", "dual"]
    with pytest.raises(ConfigError, match="empty item"):
        split_list("mean,,dual")


def test_a_bad_value_from_the_grid_file_names_the_file(tmp_path):
    from benchbox.sweep.driver import plan_runs

    path = tmp_path / "grid.toml"
    path.write_text("[base]\nepochs = 'x'\n[axes]\nseed = [0]\n")
    with pytest.raises(ConfigError, match=r"run seed=0: grid file .*grid.toml: epochs must be int"):
        plan_runs(read_grid(path))
    path.write_text("[axes]\nepochs = ['x']\n")
    with pytest.raises(ConfigError, match=r"grid file .*grid\.toml: epochs must be int"):
        plan_runs(read_grid(path))
    # an axis the command line replaces is the command line's
    path.write_text("[axes]\nseed = [0]\nepochs = [1]\n")
    merged = merge_grids(read_grid(path), {"seed": [1]})
    assert merged.sources == {"epochs": f"grid file {path}"}


def test_component_keyed_tables_take_a_dotted_path_too():
    from benchbox.sweep.grid import check_axis_name

    check_axis_name("distill_opts.logits.temperature", "grid")
    check_axis_name("augment_opts.affine.degrees", "grid")
