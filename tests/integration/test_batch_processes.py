"""Batch jobs in a child process, as scripts run them: killed with ``kill -9`` midway and
run again on the same store; interrupted with Ctrl-C (SIGINT). The emulator runs here and
counts what each item cost."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

from llmproviders import BatchStore, FlowGpt, batch
from llmproviders.testing import FLOWGPT_PATH, Emulator, reply_for

ROOT = pathlib.Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
import llmproviders

base_url, store, count, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
items = [{"id": f"c{n}", "prompt": f"Вопрос {n}?"} for n in range(count)]
try:
    result = llmproviders.batch("FlowGpt", items, base_url=base_url, store=store, workers=workers,
                                timeout=20, progress=False)
except KeyboardInterrupt as interrupted:  # carries what finished
    finished = interrupted.result
    print(json.dumps({"type": type(interrupted).__name__, "message": str(interrupted), "pending": interrupted.pending, "done": finished.done,
                      "ids": [item.id for item in finished], "texts": [item.text for item in finished]}))
    sys.exit(130)
print(json.dumps({"done": result.done, "failed": result.failed, "skipped": result.skipped}))
"""


def question(n: int) -> str:
    return f"Вопрос {n}?"


def items(count: int):
    return [{"id": f"c{n}", "prompt": question(n)} for n in range(count)]


def start_child(base_url: str, store: pathlib.Path, count: int, workers: int) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROVIDERS_")}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, base_url, str(store), str(count), str(workers)],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def done_in(store_path: pathlib.Path) -> int:
    """Finished items, read while the child writes (the store is readable while it runs)."""
    if not store_path.exists():
        return 0
    with BatchStore(store_path) as store:
        return store.counts()["done"] or 0


def integrity(store_path: pathlib.Path):
    db = sqlite3.connect(store_path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0], db.execute("SELECT status FROM runs ORDER BY run").fetchall()
    finally:
        db.close()


def test_a_batch_killed_midway_resumes_without_sending_a_finished_item_twice(tmp_path):
    store_path, count, workers = tmp_path / "results.db", 40, 4
    with Emulator(pace=0.04) as emulator:  # each reply takes about 0.3 s: 3 s for the whole job
        child = start_child(emulator.base_url, store_path, count, workers)
        try:
            wait_for(lambda: done_in(store_path) >= 10, what="10 finished items in the store")
        finally:
            child.kill()  # SIGKILL: no cleanup of any kind
            child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        with BatchStore(store_path) as store:
            finished = {item.id for item in store.results()}
        assert 10 <= len(finished) < count
        result = batch(FlowGpt, items(count), base_url=emulator.base_url, store=store_path, timeout=20, progress=False)
        sent = {n: len(emulator.requests_for(question(n))) for n in range(count)}
    assert (result.done, result.failed, result.skipped) == (count - len(finished), 0, len(finished))
    assert [item.text for item in result] == [reply_for(question(n)) for n in range(count)]
    for n in range(count):
        if f"c{n}" in finished:
            assert sent[n] == 1, n  # finished before the kill: never sent again
        else:
            assert 1 <= sent[n] <= 2, n  # in flight at the kill (sent again), or not started
    assert sum(1 for n in range(count) if sent[n] == 2) <= workers
    assert integrity(store_path) == ("ok", [("running",), ("complete",)])  # the killed run never ended


def test_ctrl_c_closes_the_streams_keeps_the_store_and_says_what_finished(tmp_path):
    store_path, count, workers = tmp_path / "results.db", 12, 4
    with Emulator(step_timeout=25) as emulator:
        whole = emulator.plan(path=FLOWGPT_PATH, times=workers)  # the first four replies come whole
        held = emulator.plan(path=FLOWGPT_PATH, times=workers, step=True)  # the next four stop after one piece
        child = start_child(emulator.base_url, store_path, count, workers)
        try:
            wait_for(lambda: done_in(store_path) == workers and len(held.requests) == workers, what="4 done, 4 held")
            time.sleep(0.2)  # the held streams are read up to their first piece
            interrupted_at = time.monotonic()
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=15)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        took = time.monotonic() - interrupted_at
        outcomes = [request.wait(5) for request in held.requests]
        assert child.returncode == 130, err.decode()
        report = json.loads(out)
        assert outcomes == ["client-disconnected"] * workers  # the in-flight streams were closed
        assert took < 5, took  # promptly: the server would have held them for 25 s
        # the exception carries what finished: the items that got the whole replies
        numbers = sorted(int(request.question.split()[1][:-1]) for request in whole.requests)
        assert report["ids"] == [f"c{n}" for n in numbers] and report["done"] == workers
        assert report["texts"] == [reply_for(question(n)) for n in numbers]
        assert report["pending"] == count - workers and report["type"] == "BatchInterrupted"
        assert report["message"].startswith("batch interrupted: 4 of 12 items finished (4 done, 0 failed, 0 skipped)")
        assert "Traceback" not in err.decode()
        # the store is consistent: exactly the finished items, and the run is marked interrupted
        with BatchStore(store_path) as store:
            assert [item.id for item in store.results()] == report["ids"]
            assert all(item.ok for item in store.results())
        assert integrity(store_path) == ("ok", [("interrupted",)])
        # and the next run sends only what had not finished
        before = {n: len(emulator.requests_for(question(n))) for n in range(count)}
        result = batch(FlowGpt, items(count), base_url=emulator.base_url, store=store_path, timeout=20, progress=False)
        after = {n: len(emulator.requests_for(question(n))) for n in range(count)}
    assert (result.done, result.skipped) == (count - workers, workers)
    assert [after[n] - before[n] for n in range(count)] == [0 if n in numbers else 1 for n in range(count)]
