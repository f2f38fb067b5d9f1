"""Where a signal is raised: only between Py4J calls, once, and never after a run's commit point.

The real signals to real runs are test_kill's; these pin the rule the handler relies on, without a JVM.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from summary_pipeline import interrupts
from summary_pipeline.interrupts import Interrupted, _at_boundary, _watch


@pytest.fixture(autouse=True)
def fresh_watch() -> Iterator[None]:
    _watch.reset(None)
    yield
    _watch.reset(None)


def _signal_arrives(signum: int = signal.SIGINT) -> None:
    _watch.signum, _watch.pending = signum, True


def test_a_signal_between_calls_stops_the_next_call_before_it_is_sent() -> None:
    sent: list[str] = []

    def record(command: str, **kw: Any) -> str:
        sent.append(command)
        return "answer"

    send = _at_boundary(record)
    _signal_arrives(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught:
        send("c1")
    assert sent == [] and caught.value.exit_code == 143 and "SIGTERM" in str(caught.value)
    assert send("c2") == "answer" and sent == ["c2"]  # once: the undo that follows reaches the JVM


def test_a_signal_during_a_call_is_raised_after_its_answer_is_read() -> None:
    def send_answered_late(command: str, **kw: Any) -> str:
        _signal_arrives()  # the user presses Ctrl-C while the JVM works on this call
        return "answer"

    with pytest.raises(Interrupted) as caught:
        _at_boundary(send_answered_late)("c1")
    assert caught.value.exit_code == 130 and interrupts.received() == signal.SIGINT


def test_a_binary_call_keeps_its_connection_and_the_next_call_raises() -> None:
    def send_binary(command: str, **kw: Any) -> str:
        _signal_arrives()
        return "connection"

    send = _at_boundary(send_binary)
    assert send("c1", binary=True) == "connection"
    with pytest.raises(Interrupted):
        send("c2")


def test_past_the_commit_point_a_signal_lets_the_run_finish() -> None:
    send = _at_boundary(lambda command, **kw: "answer")
    with interrupts.committed():
        _signal_arrives()
        assert send("c1") == "answer"
    assert send("c2") == "answer"  # the run completed: the signal neither stops nor counts later


def test_before_a_session_sigterm_raises_like_ctrl_c() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        interrupts.raise_on_sigterm()
        with pytest.raises(Interrupted) as caught:
            signal.raise_signal(signal.SIGTERM)
        assert caught.value.exit_code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
