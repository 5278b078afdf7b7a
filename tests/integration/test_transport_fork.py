"""After ``os.fork()`` a child never uses a connection its parent opened (issue 11, item 1).

The parent makes a call first, so a keep-alive connection sits in its pool; then
children (plain ``os.fork()``, and a ``fork`` process pool as Celery, gunicorn and
``ProcessPoolExecutor`` on Linux use) ask distinct questions at the same time, each
checking it got the reply to its own question. Sharing the parent's socket swapped or
cut the replies. The emulator paces its replies so that the calls overlap.
"""

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from llmproviders import Ylokh
from llmproviders import _http
from llmproviders.testing import Emulator, reply_for

pytestmark = [
    # The defect is sharing a pooled socket across os.fork(); Windows has no fork, so there is
    # nothing to test there. On Linux (CI) and macOS these tests always run.
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (absent on Windows)"),
    # Python 3.12+ warns that forking a process with threads (the emulator's) may deadlock.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.timeout(60),
]

CHILDREN = 6


def ask(base_url: str, number: int) -> str:
    """One call with a question of its own; returns "" if the reply was its own, else why not."""
    messages = [{"role": "user", "content": f"question number {number}: {'x' * number}"}]
    try:
        got = Ylokh.create(None, messages, base_url=base_url, timeout=10, max_retries=0)
    except Exception as exc:  # noqa: BLE001  (reported to the parent)
        return f"job {number}: {type(exc).__name__}: {exc}"
    return "" if got == reply_for(messages) else f"job {number}: got {got!r}"


@pytest.fixture
def paced_emulator():
    _http.close_sessions()
    with Emulator(pace=0.02) as emulator:  # ~20 pieces: each reply takes a few hundred ms
        yield emulator
    _http.close_sessions()


def test_forked_children_do_not_share_the_parents_pooled_connection(paced_emulator):
    base = paced_emulator.base_url
    assert ask(base, 0) == ""  # the parent's keep-alive connection is now pooled
    children = []
    for number in range(1, CHILDREN + 1):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            code = 1
            try:
                signal.alarm(30)  # a hung child must not outlive the test
                os.close(read_end)
                outcome = ask(base, number)
                os.write(write_end, outcome.encode() or b"ok")
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    problems = [ask(base, 100)]  # the parent, at the same time as its children
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as pipe:
            outcome = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        problems.append("" if outcome == "ok" and status == 0 else outcome or f"child exited with {status}")
    assert [p for p in problems if p] == []
    assert ask(base, 200) == ""  # and the parent's pool still works


def test_a_fork_process_pool_gets_every_reply_right(paced_emulator):
    base = paced_emulator.base_url
    assert ask(base, 0) == ""  # pooled before the workers are forked
    context = multiprocessing.get_context("fork")
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        outcomes = list(pool.map(ask, [base] * 16, range(1, 17)))
    assert [o for o in outcomes if o] == []
    assert time.monotonic() - started < 30
    assert ask(base, 300) == ""
