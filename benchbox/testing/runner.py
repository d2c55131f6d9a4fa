"""Running the contract checks: one component, or every component of a distribution.

Nothing here imports torch until a check runs, so ``benchbox plugins --check`` and the
pytest plugin stay cheap to load.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from benchbox import Entry, errors
from benchbox.hooks.registry import KINDS, Registry, check_kind
from benchbox.testing.result import CheckResult, ContractError, Status, Unavailable

__all__ = [
    "Check",
    "check",
    "check_distribution",
    "check_entry",
    "find_distribution",
    "installed_distributions",
    "plan",
]


def check_entry(entry: Entry) -> CheckResult:
    """Run the contract check of ``entry``'s kind on it (tiny CPU inputs, seeded).

    Never raises for a broken component: the result says what broke, in one line that
    names the component. torch's global random state is left as it was.
    """
    from benchbox.testing.contracts import CHECKS

    label = f"{entry.kind} {entry.name!r}"
    status: Status = "pass"
    start = time.perf_counter()
    try:
        with _seeded():
            reason = CHECKS[entry.kind](entry)
    except ContractError as exc:
        status, reason = "fail", f"{label}: {exc}"
    except Unavailable as exc:
        status, reason = "skip", f"{label}: not checked: {exc}"
    except Exception as exc:  # the check itself met what it did not expect
        status, reason = "fail", f"{label}: {errors.describe(exc, entry.package)}"
    return CheckResult(
        entry.kind,
        entry.name,
        status,
        reason,
        slow=bool(entry.info.get("slow")),
        seconds=time.perf_counter() - start,
    )


def check(kind: str, name: str, registry: Registry | None = None) -> CheckResult:
    """Check the component registered as ``name`` of ``kind`` (in ``registry``, by
    default the process-wide one).

    Raises:
        UnknownComponentError: no plugin registered ``name``.
    """
    if registry is None:
        from benchbox.hooks.manager import get_registry

        registry = get_registry()
    return check_entry(registry.get(check_kind(kind), name))


@contextmanager
def _seeded() -> Iterator[None]:
    import torch

    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(0)
        yield


@dataclass(frozen=True)
class Check:
    """One check to run: a component, or a plugin of the distribution that could not
    be checked (failed to load, or disabled).

    Attributes:
        kind: the component kind, or ``plugin``.
        name: the component's or the plugin's name.
        slow: the component is registered with ``slow=True``.
        entry: the component (``None`` for a plugin).
        problem: why a plugin cannot be checked.
        status: what a plugin's problem makes of the check (``fail`` or ``skip``).
    """

    kind: str
    name: str
    slow: bool = False
    entry: Entry | None = None
    problem: str = ""
    status: Status = "fail"

    def run(self) -> CheckResult:
        if self.entry is not None:
            return check_entry(self.entry)
        return CheckResult(self.kind, self.name, self.status, self.problem)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions() -> list[str]:
    """The installed distributions that declare ``benchbox`` entry points, by name."""
    from benchbox.hooks.manager import iter_entry_points

    names = {p.distribution for _, p in iter_entry_points() if p.distribution}
    return sorted(names, key=str.lower)


def find_distribution(name: str) -> str:
    """The installed distribution called ``name`` (case, ``-``, ``_`` and ``.`` do not
    matter) that declares benchbox plugins, as it spells its name.

    Raises:
        ConfigError: there is none; the message lists those installed.
    """
    installed = installed_distributions()
    by_key = {_normalise(n): n for n in installed}
    key = _normalise(name)
    if key in by_key:
        return by_key[key]
    close = difflib.get_close_matches(key, list(by_key), n=1, cutoff=0.6)
    hint = f"; did you mean {by_key[close[0]]!r}?" if close else ""
    raise errors.ConfigError(
        f"no installed distribution {name!r} declares benchbox plugins{hint} "
        f"(installed: {', '.join(installed) or 'none'})"
    )


def plan(
    distribution: str,
    registry: Registry | None = None,
    *,
    kind: str | None = None,
    pattern: str = "*",
) -> list[Check]:
    """The checks of every component that the installed ``distribution`` registers.

    Args:
        distribution: a distribution name as installed (``benchbox``,
            ``my-benchbox-models``; case, ``-``, ``_`` and ``.`` do not matter).
        registry: where to find its components; by default its entry points alone are
            loaded, so another distribution's broken plugin cannot get in the way.
        kind: only components of this kind.
        pattern: only components whose name matches this glob.

    Raises:
        ConfigError: no installed distribution of that name declares benchbox plugins.
    """
    name = find_distribution(distribution)
    key = _normalise(name)
    if registry is None:
        from benchbox.hooks.manager import create_registry

        registry = create_registry(env=name)

    def ours(provider_distribution: str | None) -> bool:
        return provider_distribution is not None and _normalise(provider_distribution) == key

    checks = [
        Check("plugin", e.provider.plugin, problem=f"plugin {e.provider} failed to load: {e.error}")
        for e in registry.load_errors
        if ours(e.provider.distribution)
    ]
    checks += [
        Check("plugin", p.plugin, problem=f"plugin {p} is disabled", status="skip")
        for p in registry.disabled
        if ours(p.distribution)
    ]
    for k in [check_kind(kind)] if kind else KINDS:
        checks += [
            Check(k, e.name, bool(e.info.get("slow")), e)
            for e in registry.list(k, pattern)
            if ours(e.provider.distribution)
        ]
    return checks


def check_distribution(
    distribution: str,
    registry: Registry | None = None,
    *,
    kind: str | None = None,
    pattern: str = "*",
) -> list[CheckResult]:
    """Check every component of ``distribution`` (see :func:`plan`), in kind order."""
    return [c.run() for c in plan(distribution, registry, kind=kind, pattern=pattern)]
