"""``python -m benchbox`` and the ``benchbox`` console script: the command line
(``torchrun ... -m benchbox run`` starts it this way).

Kept light on purpose: ``benchbox sweep`` forks its spare forkserver here, before the
command line's own imports (typer, rich and every command's module, about 0.3 s on a
small machine), so that the spare's imports, which the first runs wait for, start
that much sooner (:mod:`benchbox.sweep.spare`). The command line itself parses the
options: a sweep that turns out not to want the spare (``--dry-run``, another executor,
a usage error) ends it, and it dies with this process in any case.
"""

import gc
import sys
from typing import NoReturn

__all__ = ["console"]


def console() -> NoReturn:
    """Run the ``benchbox`` command (:func:`benchbox.cli.main`) and exit.

    The objects alive at the end are frozen first (``gc.freeze``), so the interpreter's
    last garbage collections skip them: with torch loaded those take about a second of
    every command and free nothing that the end of the process would not. ``atexit``
    handlers, and the finalizers of objects freed when their modules are cleared, run as
    usual. (In-process callers, such as the tests, call :func:`benchbox.cli.main` and
    keep their collector.)
    """
    if early_spare(sys.argv[1:]):
        from benchbox.sweep.spare import fork_spare

        fork_spare()
    try:
        from benchbox.cli import main
    except KeyboardInterrupt:  # Ctrl-C before the command line can say it
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    try:
        code = main()
    finally:
        gc.freeze()
    sys.exit(code)


def early_spare(args: list[str]) -> bool:
    """Whether these command-line arguments start a sweep's runs, by a plain look: the
    first is ``sweep``, and no help or dry run is asked for. A wrong guess costs a fork."""
    return args[:1] == ["sweep"] and not {"-h", "--help", "--dry-run"} & set(args[1:])


# Guarded: ``benchbox run --nproc N`` spawns processes that import this module again.
if __name__ == "__main__":
    console()
