"""Soak: 500 streams against the emulator with random early breaks and faults, sync and
async; afterwards open file descriptors and threads are back at their baseline."""

import asyncio
import gc
import os
import random
import threading
import time

import pytest

from llmproviders import LLMProvidersError, _http, list_providers
from llmproviders.testing import Emulator, reply_for

from .conftest import PROVIDERS

FAULTS = [
    {},
    {},
    {"disconnect_after_events": 1},
    {"malformed": True},
    {"html_error": 503},
    {"status": 500, "body": {"error": "x"}},
    {"split_utf8": True},
    {"framing": "close"},
    {"retry_after": 0},
]


def open_fds() -> int:
    """Open descriptors of this process (Linux's /proc; elsewhere -1: not counted, the
    threads are still checked)."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


def settle(predicate, timeout=5.0):
    """Wait for ``predicate``, collecting garbage as threads finish: a worker or launcher
    thread that ends after the test's own collection can leave a cycle (an error's
    traceback refers to the stream that raised it) that only the next collection frees.
    Only what stays reachable counts as a leak."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
        gc.collect()


@pytest.mark.timeout(180)
def test_soak_500_streams_leaves_no_descriptor_or_thread_behind():
    rng = random.Random(20261121)
    _http.close_sessions()
    gc.collect()
    fds, threads = open_fds(), threading.active_count()
    outcomes = {"complete": 0, "broke off": 0, "error": 0}
    providers = [(p.values[0], p.values[2]) for p in PROVIDERS]

    with Emulator() as emulator:

        def one(index):
            """Script a random fault for stream ``index``; pick its provider and when to stop."""
            provider, path = providers[index % 4]
            emulator.plan(path=path, **rng.choice(FAULTS))
            messages = [{"role": "user", "content": f"soak {index}"}]
            return provider, messages, rng.choice([None, None, 0, 1, 3])

        def run_sync(index):
            provider, messages, stop_after = one(index)
            stream = provider.create_completion(None, messages, base_url=emulator.base_url, timeout=(5, 5), max_retries=rng.choice([0, 1]))
            try:
                for count, _ in enumerate(stream):
                    if stop_after is not None and count >= stop_after:
                        outcomes["broke off"] += 1
                        break
                else:
                    outcomes["complete"] += 1
            except LLMProvidersError:
                outcomes["error"] += 1
            finally:
                if rng.random() < 0.5:
                    stream.close()  # otherwise dropped: the garbage collector closes it

        async def run_async(index):
            provider, messages, stop_after = one(index)
            try:
                count = 0
                async for _ in provider.create_async_generator(None, messages, base_url=emulator.base_url, timeout=(5, 5)):
                    count += 1
                    if stop_after is not None and count > stop_after:
                        outcomes["broke off"] += 1
                        break
                else:
                    outcomes["complete"] += 1
            except LLMProvidersError:
                outcomes["error"] += 1

        for index in range(400):
            run_sync(index)

        async def batch():
            for start in range(400, 500, 20):  # plans are FIFO: one batch at a time
                await asyncio.gather(*(run_async(i) for i in range(start, start + 20)))

        asyncio.run(batch())
        gc.collect()
        emulator.reset()
        # sanity: after all that, the pooled sessions still work
        assert list_providers()[0].create(None, [{"role": "user", "content": "ok?"}], base_url=emulator.base_url) == reply_for(
            [{"role": "user", "content": "ok?"}]
        )

    assert sum(outcomes.values()) == 500
    assert min(outcomes.values()) > 20, outcomes  # every path was exercised
    _http.close_sessions()
    gc.collect()
    settle(lambda: threading.active_count() <= threads and open_fds() <= fds)
    assert threading.active_count() == threads, [t.name for t in threading.enumerate()]
    assert open_fds() <= fds
