"""The kit for plugin authors: contract checks for every component kind, and a tiny run.

Each registered component is checked against its contract in :mod:`benchbox.hookspecs`
on tiny CPU inputs (shapes, dtypes, value ranges, gradients, determinism where the
contract asks for it, the info keys it requires). Three ways to run the checks::

    benchbox plugins --check my-benchbox-models      # one line per component
    pytest --benchbox-contracts my-benchbox-models   # one test per component

    from benchbox.testing import check
    result = check("segmenter", "my-segmenter")
    assert result.passed, result.reason

and :func:`tiny_run_settings` runs a plugin end to end in seconds::

    from benchbox import config
    from benchbox.engine import runner
    from benchbox.testing import tiny_run_settings

    settings = tiny_run_settings(out=str(tmp_path), seg="my-segmenter")
    result = runner.run(config.resolve(None, None, settings))

Importing this package does not import torch.
"""

from __future__ import annotations

from benchbox.testing.result import CheckResult, ContractError, Status, Unavailable
from benchbox.testing.runner import (
    Check,
    check,
    check_distribution,
    check_entry,
    find_distribution,
    installed_distributions,
    plan,
)
from benchbox.testing.tiny import tiny_run_settings

__all__ = [
    "Check",
    "CheckResult",
    "ContractError",
    "Status",
    "Unavailable",
    "check",
    "check_distribution",
    "check_entry",
    "find_distribution",
    "installed_distributions",
    "plan",
    "tiny_run_settings",
]
