"""Ctrl-C (a kernel interrupt is a SIGINT) during ``stream.display()``, against the
emulator: the connection closes at once, the partial reply stays, and the
``KeyboardInterrupt`` still propagates. (The real kernel: ``tests/jupyter``.)"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from llmproviders import FlowGpt
from llmproviders.testing import FLOWGPT_PATH, pieces_for, reply_for
from tests.unit.test_display import FakeIPython

MESSAGES = [{"role": "user", "content": "Прервите меня"}]
FIRST = pieces_for(reply_for(MESSAGES))[0]


@pytest.fixture
def ipython(monkeypatch):
    fake = FakeIPython()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def interrupt_when(condition, timeout: float = 20) -> threading.Thread:
    """Send this process a SIGINT (as Ctrl-C, or a kernel interrupt, does) once
    ``condition()`` holds."""

    def run():
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_an_interrupt_in_a_kernel_closes_the_connection_and_keeps_the_partial_text(emulator, ipython):
    plan = emulator.plan(path=FLOWGPT_PATH, step=True)  # one piece, then the server waits
    stream = FlowGpt.create_completion(None, MESSAGES, base_url=emulator.base_url, timeout=30)
    thread = interrupt_when(lambda: any(FIRST in shown for shown in ipython.shown))
    with pytest.raises(KeyboardInterrupt):
        stream.display()
    interrupted = time.monotonic()
    assert plan.wait(10) == "client-disconnected"
    assert time.monotonic() - interrupted < 5  # (within a second on an idle machine)
    thread.join(5)
    assert stream.text == FIRST and stream.closed
    assert ipython.shown[-1].startswith(FIRST + "\n\n*(interrupted)*\n\n<sub>FlowGpt · gpt-3.5-turbo")
    assert not [t for t in threading.enumerate() if t.name == "llmproviders-display"]


def test_an_interrupt_while_printing_closes_the_connection_too(emulator, monkeypatch, capfd):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    plan = emulator.plan(path=FLOWGPT_PATH, step=True)
    stream = FlowGpt.create_completion(None, MESSAGES, base_url=emulator.base_url, timeout=30)
    thread = interrupt_when(lambda: stream.text == FIRST)
    with pytest.raises(KeyboardInterrupt):
        stream.display()
    assert plan.wait(10) == "client-disconnected"
    thread.join(5)
    out, err = capfd.readouterr()
    assert out == FIRST + "\n" and err == "(interrupted)\n" and stream.text == FIRST
