"""Plugin loading: entry points of real distributions, load errors, check_pending, env filter."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import benchbox
from benchbox import errors, hookimpl
from benchbox.hooks.manager import DISABLE_ENV, ENV_VAR, create_registry, use_registry

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"
BUILTIN_FUSIONS = {"dual"}
BUILTIN_SEGMENTERS = {"attunet", "unet"}
BUILTIN_LOSSES = {"dice", "focal", "hybrid", "ssim", "fusion"}


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch):
    """Put the demo plugin's folder (package + real .dist-info) on sys.path."""

    def add(name: str) -> Path:
        folder = FIXTURES / name
        monkeypatch.syspath_prepend(str(folder))
        return folder

    return add


def test_builtins_are_loaded_through_the_entry_point_group():
    registry = create_registry(strict=True)
    assert {e.name for e in registry.list("fusion")} >= BUILTIN_FUSIONS
    assert {e.name for e in registry.list("segmenter")} >= BUILTIN_SEGMENTERS
    assert {e.name for e in registry.list("loss")} >= BUILTIN_LOSSES
    assert "synthetic" in {e.name for e in registry.list("dataset")}
    dual = registry.get("fusion", "dual")
    assert dual.provider.distribution == "benchbox"
    assert dual.provider.version == benchbox.__version__
    assert dual.provider.plugin == "benchbox:fusion"
    assert {"width", "depth"} <= {p.name for p in dual.parameters}
    assert dual.description


def test_third_party_package_is_discovered_and_built(third_party):
    third_party("good")
    registry = create_registry(strict=True)
    fusion = registry.get("fusion", "demo-average")
    assert fusion.provider.distribution == "benchbox-demo-plugin"
    assert fusion.provider.version == "0.3.1"
    assert fusion.description == "Learned convex combination of the two sources."
    assert [str(p) for p in fusion.parameters] == ["init=0.5"]
    loss = registry.get("loss", "demo-l1")
    assert loss.info["task"] == "fusion"

    import torch

    with use_registry(registry):
        model = benchbox.get_fusion("demo-average", init=0.25)
        a, b = torch.ones(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
        assert torch.allclose(model(a, b), torch.full((1, 1, 8, 8), 0.25))
        loss_value = benchbox.get_loss("demo-l1")(model(a, b), a, b).detach()
        assert float(loss_value) == pytest.approx(0.5)


def test_plugin_that_fails_to_import_is_listed_and_others_work(third_party):
    third_party("good")
    third_party("broken")
    registry = create_registry()
    [error] = registry.load_errors
    assert error.provider.distribution == "benchbox-broken-plugin"
    assert "ModuleNotFoundError" in error.error
    assert "benchbox_dependency_that_is_not_installed" in error.error
    assert ("fusion", "demo-average") in registry
    assert ("fusion", "dual") in registry
    with pytest.raises(errors.PluginError, match="benchbox-broken-plugin"):
        create_registry(strict=True)


def test_duplicate_name_is_kept_and_fails_only_when_used(third_party):
    third_party("dup")
    registry = create_registry()
    [entries] = registry.duplicates()
    assert [e.provider.distribution for e in entries] == ["benchbox", "benchbox-dup-plugin"]
    assert [e.name for e in registry.list("fusion", "dual")] == ["dual", "dual"]
    with pytest.raises(errors.DuplicatePluginError) as info:
        registry.get("fusion", "dual")
    message = str(info.value)
    assert "fusion 'dual' is registered twice" in message
    assert "benchbox-dup-plugin 1.0" in message and "benchbox 0.1.0" in message
    assert "--disable" in message and "benchbox-dup-plugin:dup" in message
    assert registry.get("fusion", "mean").provider.distribution == "benchbox"
    with pytest.raises(errors.PluginError, match="registered twice"):
        create_registry(strict=True)


@pytest.mark.parametrize(
    "name", ["benchbox-dup-plugin", "Benchbox_Dup_Plugin", "benchbox-dup-plugin:dup"]
)
def test_disabling_a_plugin_resolves_the_duplicate(third_party, monkeypatch, name):
    third_party("dup")
    monkeypatch.setenv(DISABLE_ENV, f"unrelated-but-fine, {name}")
    with pytest.warns(errors.PluginWarning, match="BENCHBOX_DISABLE names 'unrelated-but-fine'"):
        registry = create_registry()
    assert not registry.duplicates()
    assert registry.get("fusion", "dual").provider.distribution == "benchbox"
    assert [p.distribution for p in registry.disabled] == ["benchbox-dup-plugin"]
    # the argument wins over the environment; in-process plugins are disabled by name
    registry = create_registry([_plugin("mine")], disable=["mine", "benchbox:fusion"])
    assert registry.get("fusion", "dual").provider.distribution == "benchbox-dup-plugin"
    assert [p.plugin for p in registry.disabled] == ["benchbox:fusion", "mine"]


def test_misspelled_name_in_benchbox_plugins_is_one_warning(third_party, monkeypatch):
    third_party("good")
    monkeypatch.setenv(ENV_VAR, "benchbox,benchbox-demo-plugn")
    with pytest.warns(errors.PluginWarning) as caught:
        registry = create_registry()
    [warning] = caught
    assert str(warning.message) == (
        "BENCHBOX_PLUGINS names 'benchbox-demo-plugn', which is no installed benchbox "
        "plugin; did you mean 'benchbox-demo-plugin'? installed: benchbox, "
        "benchbox-demo-plugin"
    )
    assert registry.warnings == [str(warning.message)]
    assert ("fusion", "dual") in registry and ("fusion", "demo-average") not in registry
    with pytest.raises(errors.PluginError, match="benchbox-demo-plugn"):
        create_registry(strict=True)


def test_environment_variable_limits_loaded_plugins(third_party, monkeypatch):
    third_party("good")
    third_party("broken")
    monkeypatch.setenv(ENV_VAR, "benchbox")
    registry = create_registry()
    assert not registry.load_errors
    assert ("fusion", "dual") in registry and ("fusion", "demo-average") not in registry
    monkeypatch.setenv(ENV_VAR, "benchbox_demo_plugin, benchbox:losses")  # names normalise
    registry = create_registry()
    assert ("fusion", "demo-average") in registry
    assert ("loss", "dice") in registry and ("fusion", "dual") not in registry
    monkeypatch.setenv(ENV_VAR, "")
    assert not list(create_registry())


def _plugin(name: str, **hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__=name, **hooks)


def test_misspelled_hook_is_a_load_error_with_a_suggestion():
    @hookimpl
    def register_fusion(register):  # missing the final s
        register("never", object)

    registry = create_registry(
        [_plugin("typo", register_fusion=register_fusion)], entry_points=False
    )
    [error] = registry.load_errors
    assert error.provider.plugin == "typo"
    assert "'register_fusion'" in error.error and "register_fusions" in error.error
    assert ("fusion", "never") not in registry


def test_hook_with_wrong_arguments_is_a_load_error():
    @hookimpl
    def register_losses(reg):
        pass

    registry = create_registry(
        [_plugin("badargs", register_losses=register_losses)], entry_points=False
    )
    assert [e.provider.plugin for e in registry.load_errors] == ["badargs"]


def test_hook_that_raises_is_a_load_error_and_others_work():
    @hookimpl
    def register_fusions(register):
        raise RuntimeError("boom")

    @hookimpl
    def register_losses(register):
        register("ok-loss", lambda: None, task="fusion")

    registry = create_registry(
        [
            _plugin("raises", register_fusions=register_fusions),
            _plugin("fine", register_losses=register_losses),
        ],
        entry_points=False,
    )
    assert [(e.provider.plugin, e.error.split(" (")[0]) for e in registry.load_errors] == [
        ("raises", "RuntimeError: boom")
    ]
    assert ("loss", "ok-loss") in registry


def test_registration_is_validated():
    def bad(name, factory, **info):
        @hookimpl
        def register_losses(register):
            register(name, factory, **info)

        return create_registry([_plugin("p", register_losses=register_losses)], entry_points=False)

    assert "must be registered with task" in bad("x", object).load_errors[0].error
    assert "invalid loss name" in bad("Bad Name", object, task="fusion").load_errors[0].error
    assert "task='other'" in bad("x", object, task="other").load_errors[0].error
    assert "not callable" in bad("x", 3, task="fusion").load_errors[0].error
