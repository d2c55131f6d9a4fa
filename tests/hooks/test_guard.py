"""Hooks go through pluggy's hook caller: ordering, wrappers, tracing, per-plugin isolation."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator

import pluggy
import pytest

from benchbox import hookimpl
from benchbox.hooks.manager import PluginHost
from benchbox.hooks.registry import Provider, Registry


@pytest.fixture
def host() -> PluginHost:
    """A fresh plugin manager with no plugin at all (no entry points)."""
    return PluginHost(disable=())


@pytest.fixture
def plugin(host: PluginHost) -> Iterator[Callable[..., types.SimpleNamespace]]:
    """``plugin(name, hook=function, ...)`` registers a test plugin; unregistered after."""
    made: list[str] = []

    def make(name: str, **hooks: Callable[..., object]) -> types.SimpleNamespace:
        obj = types.SimpleNamespace(__name__=name, **hooks)
        host.register(obj, Provider(name, f"dist-{name}", "1.0"))
        made.append(name)
        return obj

    yield make
    for name in made:
        if host.pm.has_plugin(name):
            host.pm.unregister(name=name)


def fill(host: PluginHost) -> Registry:
    return host.fill(Registry())


def test_tryfirst_and_trylast_order_the_calls(host, plugin):
    calls: list[str] = []

    def impl(label: str, **opts: bool):
        @hookimpl(**opts)
        def register_losses(register):
            calls.append(label)
            register(f"loss-{label}", lambda: None, task="fusion")

        return register_losses

    plugin("last", register_losses=impl("last", trylast=True))
    plugin("plain", register_losses=impl("plain"))
    plugin("first", register_losses=impl("first", tryfirst=True))
    registry = fill(host)
    assert calls == ["first", "plain", "last"]
    assert registry.get("loss", "loss-first").provider.plugin == "first"


def test_new_style_wrapper_sees_the_call_and_the_others_registrations(host, plugin):
    seen: dict[str, object] = {}

    @hookimpl(wrapper=True)
    def register_fusions(register):
        seen["before"] = repr(register)
        register("from-wrapper", lambda: None)  # attributed to the wrapper's plugin
        result = yield
        seen["after"] = result
        return result

    @hookimpl
    def register_fusions_plain(register):
        register("plain", lambda: None)

    plugin("wrapping", register_fusions=register_fusions)
    plugin("plain", register_fusions=hookimpl(specname="register_fusions")(register_fusions_plain))
    registry = fill(host)
    assert seen == {"before": "<benchbox register fusion>", "after": []}
    assert registry.get("fusion", "from-wrapper").provider.plugin == "wrapping"
    assert registry.get("fusion", "plain").provider.plugin == "plain"


def test_old_style_hookwrapper_gets_the_outcome(host, plugin):
    outcomes: list[pluggy.Result[object]] = []

    @hookimpl(hookwrapper=True)
    def register_segmenters(register):
        outcome = yield
        outcomes.append(outcome)

    @hookimpl
    def register_segmenters_raising(register):
        register("half", lambda: None)
        raise RuntimeError("segmenter hook broke")

    plugin("old", register_segmenters=register_segmenters)
    plugin(
        "raising",
        register_segmenters=hookimpl(specname="register_segmenters")(register_segmenters_raising),
    )
    registry = fill(host)
    # The raising implementation is isolated: the wrapper sees a normal outcome.
    [outcome] = outcomes
    assert outcome.exception is None
    assert [e.provider.plugin for e in registry.load_errors] == ["raising"]


def test_hook_calls_can_be_traced(host, plugin):
    @hookimpl
    def register_datasets(register):
        pass

    plugin("traced", register_datasets=register_datasets)
    lines: list[str] = []
    host.pm.trace.root.setwriter(lines.append)
    undo = host.pm.enable_tracing()
    fill(host)
    undo()
    text = "".join(lines)
    for hook in ("register_fusions", "register_datasets", "register_metrics"):
        assert hook in text
    assert "<benchbox register dataset>" in text and "finish register_datasets" in text


def test_hookcall_monitoring_sees_each_implementation(host, plugin):
    @hookimpl
    def register_metrics(register):
        pass

    plugin("monitored", register_metrics=register_metrics)
    seen: list[tuple[str, list[str]]] = []
    host.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append((name, [i.plugin_name for i in impls])),
        lambda outcome, name, impls, kwargs: None,
    )
    fill(host)
    assert ("register_metrics", ["monitored"]) in seen


def test_a_plugin_that_raises_halfway_leaves_nothing_behind(host, plugin):
    @hookimpl
    def register_fusions(register):
        register("first-half", lambda: None)
        raise ValueError("second half broke")

    @hookimpl
    def register_losses(register):
        register("earlier-hook", lambda: None, task="fusion")

    @hookimpl
    def register_fusions_ok(register):
        register("survivor", lambda: None)

    plugin("half", register_fusions=register_fusions, register_losses=register_losses)
    plugin("ok", register_fusions=hookimpl(specname="register_fusions")(register_fusions_ok))
    registry = fill(host)
    assert ("fusion", "first-half") not in registry
    assert ("loss", "earlier-hook") not in registry  # the whole plugin is rolled back
    assert ("fusion", "survivor") in registry
    [error] = registry.load_errors
    assert error.provider.plugin == "half"
    assert error.error.startswith("ValueError: second half broke (")
    assert "Traceback" in error.details and "second half broke" in error.details


def test_invalid_registration_fails_only_its_plugin(host, plugin):
    @hookimpl
    def register_losses(register):
        register("good-loss", lambda: None, task="fusion")
        register("Bad Name", lambda: None, task="fusion")

    @hookimpl
    def register_losses_twice(register):
        register("twice", lambda: None, task="fusion")
        register("twice", lambda: None, task="fusion")

    plugin("invalid", register_losses=register_losses)
    plugin("twice", register_losses=hookimpl(specname="register_losses")(register_losses_twice))
    registry = fill(host)
    assert not list(registry)
    errors = {e.provider.plugin: e.error for e in registry.load_errors}
    assert "invalid loss name 'Bad Name'" in errors["invalid"]
    assert "registered loss 'twice' twice" in errors["twice"]


def test_a_failing_wrapper_is_isolated_too(host, plugin):
    @hookimpl(wrapper=True)
    def register_fusions(register):
        register("wrapper-made", lambda: None)
        yield
        raise RuntimeError("teardown broke")

    @hookimpl(wrapper=True)
    def register_fusions_no_yield(register):
        if False:
            yield

    @hookimpl
    def register_fusions_plain(register):
        register("plain", lambda: None)

    plugin("bad-teardown", register_fusions=register_fusions)
    plugin(
        "no-yield",
        register_fusions=hookimpl(wrapper=True, specname="register_fusions")(
            register_fusions_no_yield
        ),
    )
    plugin("plain", register_fusions=hookimpl(specname="register_fusions")(register_fusions_plain))
    registry = fill(host)
    assert [e.name for e in registry.list("fusion")] == ["plain"]
    errors = {e.provider.plugin: e.error for e in registry.load_errors}
    assert errors["bad-teardown"].startswith("RuntimeError: teardown broke")
    assert errors["no-yield"].startswith("RuntimeError: the hook wrapper did not yield")


def test_outside_a_filling_hooks_are_plain_pluggy_calls(host, plugin):
    """A plugin author calling the hook directly gets pluggy's own behaviour."""

    @hookimpl
    def register_fusions(register):
        register("x", None)
        raise RuntimeError("not isolated here")

    plugin("direct", register_fusions=register_fusions)
    got: list[str] = []
    with pytest.raises(RuntimeError, match="not isolated here"):
        host.pm.hook.register_fusions(register=lambda name, factory: got.append(name))
    assert got == ["x"]


def test_while_a_run_is_observed_only_lifecycle_failures_are_caught(host, plugin, tmp_path):
    """The observer guard covers run_started/epoch_ended/run_finished, nothing else."""
    from benchbox.hooks.lifecycle import Observers
    from benchbox.hookspecs import RunInfo

    @hookimpl
    def run_started(run):
        raise OSError("tracker server down")

    @hookimpl
    def register_fusions(register):
        raise RuntimeError("a registration bug")

    plugin("observer", run_started=run_started, register_fusions=register_fusions)
    warned: list[str] = []
    info = RunInfo("r1", tmp_path, {}, "abc")
    with Observers(host.pm, warn=warned.append) as observers:
        observers.call("run_started", run=info)
        observers.call("run_started", run=info)  # disabled: not called, not warned again
        with pytest.raises(RuntimeError, match="a registration bug"):
            host.pm.hook.register_fusions(register=lambda *a, **k: None)
    assert warned == [
        "observer 'observer' failed in run_started (OSError: tracker server down); it is "
        "disabled for the rest of this run, which goes on"
    ]
    assert host.pm.observers is None
    with pytest.raises(OSError, match="tracker server down"):  # outside a run: plain pluggy
        host.pm.hook.run_started(run=info)
