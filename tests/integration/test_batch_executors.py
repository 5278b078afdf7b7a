"""Batch jobs on other executors: a ``ProcessPoolExecutor`` (fork and spawn) and a Dask
``LocalCluster`` of two worker processes. Workers get picklable tasks and send back
outcomes (errors pickled with their fields); only this process writes the store."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from llmproviders import BatchResult, BatchStore, GPROChat, ItemResult, ResponseStatusError, batch
from llmproviders._batch_result import error_from_dict
from llmproviders.testing import Emulator, reply_for

from .test_batch import FLAKY, TIMEOUT, expected

QUESTIONS = [f"Процесс {n}: сколько будет {n} × 3?" for n in range(14)] + ["FAIL in a worker"]


def items():
    return [{"id": f"p{n}", "prompt": question} for n, question in enumerate(QUESTIONS)]


def check(result, emulator: Emulator, store_path) -> None:
    """Order, texts, typed errors from other processes, requests per item, and the store."""
    for question, item in zip(QUESTIONS, result):
        requests, ok = expected(FLAKY, question)
        assert (len(emulator.requests_for(question)), item.attempts, item.ok) == (requests, requests, ok), question
        if ok:
            assert item.text == reply_for(question)
        else:
            assert type(item.error) is ResponseStatusError and item.error.status_code == 500
            assert [type(e) for e in item.error.attempts] == [ResponseStatusError] * 2
    assert [item.id for item in result] == [f"p{n}" for n in range(len(QUESTIONS))]
    assert (result.done, result.failed) == (14, 1)
    with BatchStore(store_path) as store:
        assert store.counts() == {"total": 15, "done": 14, "failed": 1}
        assert [item.to_dict() for item in store.results()] == [item.to_dict() for item in result]


class CountingPool(ProcessPoolExecutor):
    """A process pool that counts the tasks given to it."""

    submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_process_pool_runs_the_batch(method, tmp_path):
    store = tmp_path / "results.db"
    with Emulator(flaky=FLAKY) as emulator:
        with CountingPool(2, mp_context=multiprocessing.get_context(method)) as pool:
            result = batch(GPROChat, items(), base_url=emulator.base_url, executor=pool, store=store, timeout=TIMEOUT, progress=False)
            workers = {process.pid for process in pool._processes.values()}
        check(result, emulator, store)
    assert pool.submitted == sum(item.attempts for item in result)  # every attempt ran in the pool
    assert len(workers) == 2 and os.getpid() not in workers


DASK_CHILD = """
import json, logging, sys

from distributed import Client, LocalCluster, get_task_stream

import llmproviders
from llmproviders import Provider, RetryPolicy

# the suite's fast backoff (tests/conftest.py), for this process: the scheduler's policy is the one used
Provider.retry_policy = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_retry_after=0.05)

if __name__ == "__main__":
    base_url, store, items = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        with get_task_stream(client) as tasks:
            result = llmproviders.batch("FlowGpt", items, base_url=base_url, executor=client.get_executor(),
                                        store=store, timeout=10, progress=False)
        workers = sorted(client.scheduler_info()["workers"])
    ran = [task["worker"] for task in tasks.data if task["key"].startswith("run_attempt")]
    print(json.dumps({"items": [item.to_dict() for item in result], "ran": ran, "workers": workers,
                      "errors": [type(item.error).__name__ for item in result.errors]}))
"""


@pytest.mark.timeout(90)  # it takes 5 to 10 s; a cluster starting on a busy machine gets room
def test_a_dask_cluster_runs_the_batch(tmp_path):
    """In a child process: importing distributed changes the process for good (tblib's
    pickling of every exception class, a process-wide offload thread), so the cluster
    and its client stay out of the test process. The emulator runs here."""
    script, store = tmp_path / "dask_batch.py", tmp_path / "results.db"
    script.write_text(DASK_CHILD, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROVIDERS_")}
    with Emulator(flaky=FLAKY) as emulator:
        child = subprocess.run(
            [sys.executable, str(script), emulator.base_url, str(store), json.dumps(items())],
            cwd=tmp_path, env=environment, capture_output=True, text=True, encoding="utf-8", timeout=80,
        )
        assert child.returncode == 0, child.stderr
        report = json.loads(child.stdout)
        result = [ItemResult(**{**data, "error": _error(data["error"]), "usage": None}) for data in report["items"]]
        check(BatchResult(result), emulator, store)
    assert report["errors"] == ["ResponseStatusError"]  # typed, through the cluster
    assert len(report["ran"]) == sum(item.attempts for item in result)  # every attempt ran on the cluster
    assert set(report["ran"]) <= set(report["workers"]) and len(report["workers"]) == 2


def _error(data):
    return error_from_dict(data) if data is not None else None


class Crashing(GPROChat):
    """GPROChat, except that a worker process asked about "crash" dies on the spot. It is
    not registered: workers find it by module and name, as they find any provider."""

    @classmethod
    def create_completion(cls, model, messages, **kwargs):
        if "crash" in messages[-1]["content"] and multiprocessing.parent_process() is not None:
            os._exit(3)
        return super().create_completion(model, messages, **kwargs)


def test_a_broken_pool_stops_the_batch_and_keeps_what_finished(tmp_path):
    from concurrent.futures.process import BrokenProcessPool

    store = tmp_path / "results.db"
    prompts = ["first", "second", "crash", "never"]
    with Emulator() as emulator:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            with pytest.raises(BrokenProcessPool):
                batch(Crashing, prompts, base_url=emulator.base_url, executor=pool, store=store, progress=False)
        asked = [request.question for request in emulator.requests]
    assert asked == ["first", "second"]  # one worker: one item after another, in order
    with BatchStore(store) as kept:
        assert [item.text for item in kept.results()] == [reply_for("first"), reply_for("second")]


def test_an_executor_that_refuses_work_stops_the_batch(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        batch(GPROChat, ["a"], base_url="http://127.0.0.1:9", executor=pool, store=tmp_path / "r.db", progress=False)
    with BatchStore(tmp_path / "r.db") as kept:
        assert len(kept) == 0 and kept.counts()["total"] == 1
