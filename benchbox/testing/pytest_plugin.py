"""benchbox's pytest plugin: the contract checks as tests in a plugin author's suite.

``pytest --benchbox-contracts DIST`` adds one test per component of the installed
distribution ``DIST`` (repeat the option for more), named ``<kind>[<name>]``, running
the checks of ``benchbox plugins --check DIST``. A component registered with
``slow=True`` is marked ``slow`` (``-m "not slow"`` leaves it out), a component that
cannot be checked here (it needs data or a library) is skipped with the reason.

The plugin is loaded through a ``pytest11`` entry point in every pytest session of
anyone who installs benchbox: without the option it adds nothing, and importing it
imports neither torch nor any benchbox plugin.

:func:`contract_params` and :func:`assert_contract` run the same checks from a test
module, over any entries::

    from benchbox.hooks.manager import create_registry
    from benchbox.testing.pytest_plugin import assert_contract, contract_params

    @pytest.mark.parametrize("entry", contract_params(create_registry()))
    def test_contract(entry):
        assert_contract(entry)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from benchbox import Entry
    from benchbox.testing.result import CheckResult
    from benchbox.testing.runner import Check

__all__ = [
    "ContractItem",
    "assert_contract",
    "contract_params",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
]

_DEST = "benchbox_contracts"
_PLANNED = pytest.StashKey[list[tuple[str, "list[Check]"]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchbox", "benchbox plugin contracts")
    group.addoption(
        "--benchbox-contracts",
        action="append",
        default=[],
        metavar="DIST",
        dest=_DEST,
        help="add a test per component of the installed distribution DIST: benchbox's "
        "contract checks (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    distributions = config.getoption(_DEST, default=None)
    if not distributions:
        return
    from benchbox.errors import BenchboxError
    from benchbox.testing.runner import plan

    config.addinivalue_line("markers", "slow: a component registered with slow=True")
    planned = []
    for distribution in distributions:
        try:
            checks = plan(distribution)
        except BenchboxError as exc:
            raise pytest.UsageError(f"--benchbox-contracts: {exc}") from None
        if not checks:
            raise pytest.UsageError(
                f"--benchbox-contracts: {distribution} registers no benchbox component"
            )
        planned.append((distribution, checks))
    config.stash[_PLANNED] = planned


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    for distribution, checks in config.stash.get(_PLANNED, []):
        for check in checks:
            name = f"{check.kind}[{check.name}]"
            items.append(
                ContractItem.from_parent(
                    session,
                    name=name,
                    nodeid=f"benchbox-contracts[{distribution}]::{name}",
                    check=check,
                )
            )


class ContractItem(pytest.Item):
    """The contract check of one component (or a plugin that failed to load)."""

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        if check.slow:
            self.add_marker(pytest.mark.slow)

    def runtest(self) -> None:
        _report(self.check.run())

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"benchbox contract: {self.name}"


def _report(result: CheckResult) -> None:
    if result.status == "skip":
        pytest.skip(result.reason)
    if result.failed:
        pytest.fail(result.reason, pytrace=False)


def contract_params(entries: Iterable[Entry]) -> list[Any]:
    """One ``pytest.param`` per entry, with the id ``<kind>-<name>``, marked ``slow`` if
    the component is registered with ``slow=True`` (register that marker in your suite)."""
    return [
        pytest.param(
            entry,
            id=f"{entry.kind}-{entry.name}",
            marks=[pytest.mark.slow] if entry.info.get("slow") else [],
        )
        for entry in entries
    ]


def assert_contract(entry: Entry) -> CheckResult:
    """Check ``entry``: fail the test with the one-line reason if it broke its contract,
    skip it if it cannot be checked here; return the result otherwise."""
    from benchbox.testing.runner import check_entry

    result = check_entry(entry)
    _report(result)
    return result
