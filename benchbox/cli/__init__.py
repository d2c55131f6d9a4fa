"""The ``benchbox`` command. Each command group lives in its own module and stays thin.

Nothing here imports torch: ``benchbox --help`` must stay fast. Commands import the
library inside their function bodies.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from benchbox.cli import (
    bench,
    compare,
    evaluate,
    export,
    leaderboard,
    plugins,
    predict,
    report,
    run,
    runs,
    sweep,
    synthetic,
)
from benchbox.cli._common import console_err, fail, print_traceback, show_plugin_warnings
from benchbox.hooks.manager import DEBUG_ENV, DISABLE_ENV

__all__ = ["app", "main"]

app = typer.Typer(
    name="benchbox",
    help="Benchmark medical image fusion and segmentation models, plugged in by entry point.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"benchbox {version('benchbox')}")
        except PackageNotFoundError:
            from benchbox import __version__

            typer.echo(f"benchbox {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Show the version and exit.", callback=_version, is_eager=True
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Show tracebacks of errors and plugin failures, and trace plugin hook calls "
        f"(also {DEBUG_ENV}=1).",
    ),
    disable: list[str] | None = typer.Option(
        None,
        "--disable",
        metavar="PLUGIN",
        help="Do not load this plugin: a distribution or dist:entry-point name, as listed by "
        f"`benchbox plugins` (repeatable; adds to {DISABLE_ENV}).",
    ),
) -> None:
    """Benchmark medical image fusion and segmentation models, plugged in by entry point."""
    # The library reads these settings from the environment, the one place every
    # command (and any process it starts) sees.
    if debug:
        os.environ[DEBUG_ENV] = "1"
    if disable:
        given = [os.environ.get(DISABLE_ENV, ""), *disable]
        os.environ[DISABLE_ENV] = ",".join(part for part in given if part)


app.command("plugins")(plugins.plugins)
app.command("run")(run.run)
app.command("bench")(bench.bench)
app.command("sweep", context_settings={"help_option_names": ["-h", "--help"]})(sweep.sweep)
app.add_typer(evaluate.app, name="evaluate")
app.command("synthetic")(synthetic.synthetic)
app.command("leaderboard")(leaderboard.leaderboard)
app.command("compare")(compare.compare)
app.command("export")(export.export)
app.command("predict")(predict.predict)
app.command("report")(report.report)
app.command("runs")(runs.runs)


def _interrupted(exc: BaseException | None) -> int:
    """Say how the command was interrupted; the exit code is 130 (Ctrl-C) or 143 (SIGTERM)."""
    from benchbox.engine.interrupts import Terminated, exit_code

    if isinstance(exc, Terminated):
        console_err.print(f"[yellow]terminated ({exc})[/]")
        return exit_code(exc)
    console_err.print("[yellow]interrupted[/]")
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: one clear line and a non-zero exit on errors.

    A process of a distributed run that fails after joining its process group ends
    with ``os._exit`` once its line is printed and its records are written: after a
    peer died, a normal interpreter exit can wait forever on the group's threads.
    """
    try:
        code = _main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not code or not _joined_group():
            raise
    if code and _joined_group():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _joined_group() -> bool:
    """Whether this process joined a distributed run's process group (checked without
    importing torch when it did not)."""
    module = sys.modules.get("benchbox.engine.distributed")
    return bool(module is not None and module.joined())


def _main(argv: list[str] | None) -> int:
    from benchbox.engine.interrupts import Terminated, sigterm_as_interrupt
    from benchbox.errors import BenchboxError

    command = typer.main.get_command(app)
    show_plugin_warnings()
    try:
        with sigterm_as_interrupt() as received:
            result = command.main(args=argv, prog_name="benchbox", standalone_mode=False)
    except BenchboxError as exc:
        from benchbox.hooks.manager import debug_enabled

        if debug_enabled():
            print_traceback("".join(traceback.format_exception(exc)))
        fail(str(exc))
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:
        # Usage errors of click, or of the copy of click that newer Typer releases
        # vendor: matched by shape, not class, so both work.
        code = getattr(exc, "exit_code", None)
        if hasattr(exc, "format_message") and isinstance(code, int):
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            message = exc.format_message().replace("Value error, ", "")  # pydantic prefix
            if not message:  # no arguments: the help was shown, nothing more to say
                return code
            fail(f"{where}{message}", code=code)
        if type(exc).__name__ == "Exit":
            return int(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":  # click's wrapping of a KeyboardInterrupt
            return _interrupted(exc.__cause__ or exc.__context__)
        raise
    if result == 130:  # Typer turns a KeyboardInterrupt, SIGTERM's too, into exit 130
        return _interrupted(Terminated(received.signum) if received.signum else None)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
