"""The ``benchbox`` command. Each command group lives in its own module and stays thin.

Nothing here imports torch: ``benchbox --help`` must stay fast. Commands import the
library inside their function bodies.
"""

from __future__ import annotations

import sys

import click
import typer

from benchbox.cli import evaluate, plugins, run
from benchbox.cli._common import console_err, fail

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
) -> None:
    """Benchmark medical image fusion and segmentation models, plugged in by entry point."""


app.command("plugins")(plugins.plugins)
app.command("run")(run.run)
app.add_typer(evaluate.app, name="evaluate")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: one clear line and a non-zero exit on errors."""
    from benchbox.errors import BenchboxError

    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="benchbox", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        fail(f"{where}{exc.format_message()}", code=exc.exit_code)
    except click.ClickException as exc:
        fail(exc.format_message(), code=exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        console_err.print("[yellow]interrupted[/]")
        return 130
    except BenchboxError as exc:
        fail(str(exc))
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
