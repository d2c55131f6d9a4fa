"""Dataset options (benchbox.data.options): one declaration of names, defaults, parsing."""

from __future__ import annotations

import inspect

import pytest

from benchbox.data.cases import open_cases
from benchbox.data.nifti import open_nifti
from benchbox.data.options import DEFAULTS, OPTIONS, resolve_options
from benchbox.data.pairs import open_pairs
from benchbox.data.volumes import VolumeDataset
from benchbox.errors import ConfigError


def test_readers_take_their_defaults_from_the_declaration():
    checked = 0
    for reader in (open_nifti, open_pairs, VolumeDataset.__init__):
        for name, param in inspect.signature(reader).parameters.items():
            if name in OPTIONS and not (reader is open_pairs and name == "image_size"):
                assert param.default == DEFAULTS[name], (reader, name)
                checked += 1
    assert checked >= len(OPTIONS) + 3
    # The case-folder reader leaves them unset: its config file comes between.
    params = inspect.signature(open_cases).parameters
    assert all(params[n].default is None for n in OPTIONS if n in params)
    assert DEFAULTS["val_fraction"] == DEFAULTS["test_fraction"] == 0.2


def test_resolve_options_layers_and_parses():
    out = resolve_options(
        {"val_fraction": "0.3", "ct_window": "-100,200", "target": "none", "crop": "no"},
        {"val_fraction": 0.1, "test_fraction": 0.25, "slices_per_case": 4},
    )
    assert out["val_fraction"] == 0.3  # given beats the reader's default
    assert out["test_fraction"] == 0.25 and out["slices_per_case"] == 4
    assert out["ct_window"] == (-100.0, 200.0) and out["target"] is None
    assert out["crop"] is False and out["image_size"] == DEFAULTS["image_size"]
    assert set(out) == set(OPTIONS)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"val_fraction": 0.95}, r"val_fraction=0\.95 must be within \[0\.0, 0\.9\]"),
        ({"image_size": 8}, "image_size=8 must be an integer >= 16"),
        ({"percentiles": "99,1"}, "needs low < high"),
        ({"lesion_fraction": "lots"}, "lesion_fraction='lots' must be a number"),
        ({"crop": "maybe"}, "crop='maybe' must be true or false"),
    ],
)
def test_bad_options_name_the_option(given, message):
    with pytest.raises(ConfigError, match=message):
        resolve_options(given)
