"""Every component in the live registry, of every kind, against its contract.

The components are read from :func:`benchbox.hooks.manager.create_registry` at
collection time, so whatever an installed plugin registers (built-in or third-party) is
checked by :mod:`benchbox.testing`, the kit plugin authors run with
``benchbox plugins --check DIST``, without a line added here. A component registered
with ``slow=True`` is marked ``slow`` (excluded by default).
"""

from __future__ import annotations

import pytest

from benchbox.hooks.manager import create_registry
from benchbox.hooks.registry import KINDS, Entry
from benchbox.testing.pytest_plugin import assert_contract, contract_params

REGISTRY = create_registry()


def test_every_installed_plugin_loads() -> None:
    # A plugin that fails to load drops out of the parametrisation below silently.
    assert REGISTRY.load_errors == [], [f"{e.provider}: {e.error}" for e in REGISTRY.load_errors]


def test_the_built_ins_of_every_kind_are_covered() -> None:
    for kind, names in {
        "fusion": {"dual", "concat", "mean"},
        "segmenter": {"attunet", "unet"},
        "loss": {"dice", "focal", "hybrid", "ssim", "fusion", "maxgrad"},
        "dataset": {"synthetic"},
        "metric": {"dice", "hd95", "ssim", "qabf"},
        "executor": {"local"},
        "tracker": {"tensorboard", "mlflow"},
        "transform": {"flip", "rot90", "affine", "intensity", "gamma", "noise"},
        "region": {"brats"},
        "distiller": {"logits", "cwd", "fused"},
    }.items():
        assert names <= {e.name for e in REGISTRY.list(kind)}, kind
    assert set(KINDS) == {e.kind for e in REGISTRY}


@pytest.mark.parametrize("entry", contract_params(REGISTRY))
def test_contract(entry: Entry) -> None:
    assert_contract(entry)
