"""SIGTERM handled like Ctrl-C (benchbox.engine.interrupts)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from benchbox.engine import interrupts

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises before this ends


def test_sigterm_raises_a_keyboard_interrupt_once_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = False
    with (
        pytest.raises(interrupts.Terminated) as info,
        interrupts.sigterm_as_interrupt() as received,
    ):
        try:
            _sigterm_self()
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGTERM)  # a second one: ignored
            time.sleep(0.1)
            cleaned = True
            raise
    assert cleaned and received.signum == signal.SIGTERM
    assert isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before
    assert interrupts.describe(info.value) == "terminated by SIGTERM"
    assert interrupts.exit_code(info.value) == 143
    assert interrupts.exit_code(KeyboardInterrupt()) == 130


@pytest.mark.parametrize("foreground", [True, False])
def test_ctrl_c_is_named_only_where_a_keyboard_can_send_it(monkeypatch, foreground):
    # Before: every SIGINT was "Ctrl-C", also the one a sweep driver sends its worker
    # when the driver itself got SIGTERM.
    monkeypatch.setattr(interrupts, "_in_terminal_foreground", lambda: foreground)
    assert interrupts.describe(KeyboardInterrupt()) == (
        "interrupted by the user (Ctrl-C)"
        if foreground
        else "interrupted by SIGINT from another process (e.g. a sweep stopping its runs)"
    )


@pytest.mark.integration
def test_a_sigterm_another_handler_caught_still_reaches_the_command_line(monkeypatch, capsys):
    """torch's launcher (benchbox run --nproc) catches SIGTERM with its own handler and
    benchbox re-raises it as Terminated, which Typer turns into exit 130: the command
    line must still say SIGTERM and exit 143 (before: "interrupted", 130)."""
    from benchbox.bench import measure
    from benchbox.cli import main

    def launcher_saw_sigterm(*_args, **_kwargs):
        raise interrupts.Terminated(signal.SIGTERM)

    monkeypatch.setattr(measure, "build", launcher_saw_sigterm)
    assert main(["bench", "--fusion", "mean", "--seg", "none"]) == 143
    assert capsys.readouterr().err.strip() == "terminated (SIGTERM)"


def test_nested_blocks_share_one_handler():
    with interrupts.sigterm_as_interrupt() as outer:
        handler = signal.getsignal(signal.SIGTERM)
        with (
            pytest.raises(interrupts.Terminated),
            interrupts.sigterm_as_interrupt() as inner,
        ):
            assert inner is outer and signal.getsignal(signal.SIGTERM) is handler
            _sigterm_self()
        assert signal.getsignal(signal.SIGTERM) is handler  # the inner block restored nothing
    assert outer.signum == signal.SIGTERM
