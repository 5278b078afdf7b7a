"""Batch jobs on other executors: a ``ProcessPoolExecutor`` (fork and spawn) and a Dask
``LocalCluster`` of two worker processes. Workers get picklable tasks and send back
outcomes (errors pickled with their fields); only this process writes the store."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

import pytest

from llmproviders import BatchStore, FlowGpt, GPROChat, ResponseStatusError, batch
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


@pytest.mark.timeout(60)  # it takes about 5 s; a cluster starting on a busy machine gets room
def test_a_dask_cluster_runs_the_batch(tmp_path):
    from distributed import Client, LocalCluster, get_task_stream

    store = tmp_path / "results.db"
    threads = set(threading.enumerate())
    with Emulator(flaky=FLAKY) as emulator:
        with LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR
        ) as cluster, Client(cluster) as client:
            with get_task_stream(client) as tasks:
                result = batch(
                    FlowGpt, items(), base_url=emulator.base_url, executor=client.get_executor(), store=store,
                    timeout=TIMEOUT, progress=False,
                )
            workers = set(client.scheduler_info()["workers"])
        check(result, emulator, store)
    ran = [task for task in tasks.data if task["key"].startswith("run_attempt")]
    assert len(ran) == sum(item.attempts for item in result)  # every attempt ran on the cluster
    assert {task["worker"] for task in ran} <= workers and len(workers) == 2
    # Closed: nothing the cluster started is left but distributed's process-wide offload
    # thread (a module-level executor of distributed.utils, joined at interpreter exit).
    left = [thread.name for thread in set(threading.enumerate()) - threads if thread.is_alive()]
    assert all(name.startswith("Dask-Offload") for name in left), left


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
