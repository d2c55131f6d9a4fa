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
    assert interrupts.describe(KeyboardInterrupt()) == "interrupted by the user (Ctrl-C)"
    assert interrupts.exit_code(KeyboardInterrupt()) == 130


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
