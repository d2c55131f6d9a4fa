"""The name -> factory tables: lookups, suggestions, globs, parameters."""

from __future__ import annotations

import pytest

from benchbox import errors
from benchbox.hooks.registry import KINDS, Provider, Registry, check_kind

P1 = Provider("one:fusion", "pkg-one", "1.0")
P2 = Provider("two:fusion", "pkg-two", "2.0")


def make_model(width: int = 16, depth: int = 3, *, norm: str = "batch"):
    """A model factory with defaults."""
    return {"width": width, "depth": depth, "norm": norm}


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    for name in ("dual", "dual-large", "mean", "smp-unet", "smp-fpn"):
        reg.add("fusion", name, make_model, P1)
    return reg


def test_lookup_builds_with_parameters(registry):
    entry = registry.get("fusion", "dual")
    assert entry.build(width=8) == {"width": 8, "depth": 3, "norm": "batch"}
    assert entry.description == "A model factory with defaults."
    assert [str(p) for p in entry.parameters] == ["width=16", "depth=3", "norm='batch'"]


def test_unknown_name_suggests_close_matches(registry):
    with pytest.raises(errors.UnknownFusionError) as info:
        registry.get("fusion", "duall")
    assert info.value.suggestions[0] == "dual"
    assert "did you mean 'dual'" in str(info.value)
    with pytest.raises(errors.UnknownFusionError, match="smp-fpn"):
        registry.get("fusion", "smp")  # prefix matches are suggested too
    with pytest.raises(errors.UnknownFusionError, match="benchbox plugins --kind fusion"):
        registry.get("fusion", "zzzzzz")


def test_each_kind_has_its_unknown_error():
    reg = Registry()
    expected = {
        "fusion": errors.UnknownFusionError,
        "segmenter": errors.UnknownSegmenterError,
        "loss": errors.UnknownLossError,
        "dataset": errors.UnknownDatasetError,
        "metric": errors.UnknownMetricError,
        "executor": errors.UnknownExecutorError,
        "tracker": errors.UnknownTrackerError,
        "transform": errors.UnknownTransformError,
        "region": errors.UnknownRegionError,
        "distiller": errors.UnknownDistillerError,
    }
    assert set(expected) == set(KINDS)
    for kind, exc in expected.items():
        with pytest.raises(exc, match=f"unknown {kind} 'x' \\(no {kind} is registered\\)"):
            reg.get(kind, "x")


def test_glob_listing(registry):
    assert [e.name for e in registry.list("fusion", "smp-*")] == ["smp-fpn", "smp-unet"]
    assert [e.name for e in registry.list("fusion", "dual*")] == ["dual", "dual-large"]
    assert registry.list("fusion", "nothing*") == []
    assert [e.name for e in registry.list("fusion")] == sorted(e.name for e in registry)


def test_duplicate_name_is_listed_and_fails_only_its_lookup(registry):
    registry.add("fusion", "dual", make_model, P2)
    assert [e.provider for e in registry.list("fusion", "dual")] == [P1, P2]
    assert [[e.provider for e in d] for d in registry.duplicates()] == [[P1, P2]]
    with pytest.raises(errors.DuplicatePluginError) as info:
        registry.get("fusion", "dual")
    assert "pkg-one 1.0 (one:fusion)" in str(info.value)
    assert "pkg-two 2.0 (two:fusion)" in str(info.value)
    assert "(NAME: one:fusion or two:fusion)" in str(info.value)
    assert registry.get("fusion", "mean").provider == P1  # other names still work
    registry.add("segmenter", "dual", make_model, P2)  # another kind: no clash
    with pytest.raises(errors.PluginError, match="registered fusion 'mean' twice"):
        registry.add("fusion", "mean", make_model, P1)


def test_unknown_parameter_is_a_config_error_with_suggestion(registry):
    with pytest.raises(
        errors.ConfigError, match="fusion 'dual' has no parameter 'widht'; did you mean width"
    ):
        registry.get("fusion", "dual").build(widht=3)
    with pytest.raises(errors.ConfigError, match="parameters: width, depth, norm"):
        registry.get("fusion", "dual").build(colour=3)


def test_value_of_the_wrong_kind_is_named_before_the_factory_runs():
    def model(depth: int = 3, scale: float = 1, gain=0.5, bias: bool = False, name="x"):
        return depth, scale, gain, bias, name

    reg = Registry()
    reg.add("fusion", "typed", model, P1)
    entry = reg.get("fusion", "typed")
    with pytest.raises(errors.ConfigError, match=r"'depth' takes int \(default 3\), got 'abc'"):
        entry.build(depth="abc")
    for bad in ({"depth": 2.5}, {"depth": True}, {"gain": "high"}, {"bias": 1}):
        with pytest.raises(errors.ConfigError, match=f"parameter '{next(iter(bad))}' takes"):
            entry.build(**bad)
    # an int where a float is meant, a float where an int default is annotated float
    assert entry.build(depth=2, scale=1.5, gain=1, bias=True, name=7) == (2, 1.5, 1, True, 7)


def test_factory_value_errors_become_config_errors():
    def picky(size: int = 1):
        raise ValueError("size must be even")

    reg = Registry()
    reg.add("fusion", "picky", picky, P1)
    with pytest.raises(errors.ConfigError, match="fusion 'picky': size must be even"):
        reg.get("fusion", "picky").build(size=3)


def test_unknown_kind_suggests():
    with pytest.raises(errors.UnknownKindError, match="did you mean 'segmenter'"):
        check_kind("segmenters")
    with pytest.raises(
        errors.UnknownKindError, match="kinds: fusion, segmenter, loss, dataset, metric"
    ):
        check_kind("blah")


def test_an_unknown_info_key_is_the_plugins_load_error():
    """A typo in ``info`` (``headlin=1``) would silently drop a metric from every table:
    the plugin fails to load, named, with the key it meant."""
    from benchbox import hookimpl
    from benchbox.hooks.manager import create_registry

    class Typo:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            register("sharp", lambda f, a, b: 0.0, task="fusion", higher_is_better=True, headlin=1)

    registry = create_registry([Typo], entry_points=False)
    (error,) = registry.load_errors
    assert str(error.provider) == "Typo"
    assert "unknown info key 'headlin'; did you mean 'headline'?" in error.error
    assert ("metric", "sharp") not in registry


def test_plugins_are_isolated_without_writing_pluggys_hook_implementations():
    """Each registered hook implementation is the function pluggy read from the object
    registered (a stand-in holding guarded copies): pluggy's ``HookImpl.function``,
    declared ``Final``, is never reassigned."""
    from benchbox.hooks.manager import create_registry

    pm = create_registry().plugin_manager
    impls = [impl for caller in vars(pm.hook).values() if hasattr(caller, "get_hookimpls")
             for impl in caller.get_hookimpls()]  # fmt: skip
    assert impls
    for impl in impls:
        attr = getattr(impl.function, "__name__", "")
        assert getattr(impl.plugin, attr) is impl.function, impl.plugin_name
        assert pm.original(impl.plugin) is not impl.plugin  # what the user registered
