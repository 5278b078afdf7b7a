"""Workload 3, concurrency: 100 streams x 200 events, 2 ms apart, all at once.

The server (its own process) paces the OpenAI SSE body (Ylokh's protocol) for every
stream from one thread. Each contender runs in a fresh child process, so its CPU time
(``time.process_time()``: every thread of the process) and peak RSS (``VmHWM``) are
its own:

- async facade: ``Ylokh.create_async_generator`` x 100 + ``asyncio.gather``, with
  ``llmproviders.set_async_limit(128)`` (the default limit, 64, would queue 36 streams);
- threads: 100 ``threading.Thread`` each iterating ``Ylokh.create_completion``;
- aiohttp: one ``ClientSession`` (connection limit 100), 100 tasks, the g4f line loop;
- AsyncOpenAI: ``chat.completions.create(stream=True)`` x 100 + ``asyncio.gather``.

Each child first reads one short reply, so imports and lazy set-up are not counted.
A heartbeat sleeps 5 ms at a time during the run (a task on the event loop; for
threads, a thread): its longest gap between ticks is how long the loop stood still
(issue 11: under 100 ms).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Callable, Dict, List

from .harness import Check, Heartbeat, Section, ThreadHeartbeat, interleaved, median, peak_rss, ratio, run_child, table

STREAMS, EVENTS, PACE = 100, 200, 0.002
ROUNDS = 8  # two full cycles of the balanced orders of four contenders
ASYNC_LIMIT = 128
CONTENDERS = ["async facade", "threads", "aiohttp", "AsyncOpenAI"]
CPU_TARGET = 1.15  # async facade CPU per delta vs threads
TICK = 0.005  # the heartbeat's period
GAP_TARGET = 0.100  # the event loop's longest heartbeat gap (issue 11), median over rounds


def _spec(events: int) -> str:
    return f"kind=openai,n={events},pace={PACE},size=6"


def _streams(name: str, root: str, count: int, events: int, on_delta: Callable[[str], None]) -> float:
    """Run ``count`` concurrent streams of ``events`` deltas with contender ``name``;
    return the heartbeat's longest gap in seconds."""
    from .clients import aiohttp_stream, async_ours_stream, async_openai_stream, ours

    base = f"{root}/s/{_spec(events)}"
    if name == "threads":
        beat = ThreadHeartbeat(TICK)
        beat.start()
        threads = [threading.Thread(target=ours, args=(base, "openai", on_delta)) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return beat.stop()

    async def gather() -> float:
        heartbeat = Heartbeat(TICK)
        heartbeat.start()
        await streams()
        return await heartbeat.stop()

    async def streams() -> None:
        if name == "async facade":
            from llmproviders import Ylokh, set_async_limit

            set_async_limit(ASYNC_LIMIT)
            await asyncio.gather(*(async_ours_stream(Ylokh, base, on_delta) for _ in range(count)))
        elif name == "aiohttp":
            import aiohttp

            connector = aiohttp.TCPConnector(limit=STREAMS)
            async with aiohttp.ClientSession(connector=connector) as session:
                await asyncio.gather(*(aiohttp_stream(session, base, "openai", on_delta) for _ in range(count)))
        else:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
            await asyncio.gather(*(async_openai_stream(client, on_delta) for _ in range(count)))
            await client.close()

    return asyncio.run(asyncio.wait_for(gather(), timeout=120))


def child(name: str, root: str) -> Dict[str, float]:
    """In the child process: warm up, then measure one run of the workload."""
    _streams(name, root, 2, 5, lambda delta: None)
    deltas: List[str] = []
    lock = threading.Lock()

    def on_delta(delta: str) -> None:
        with lock:  # threads call this concurrently; the others pay the same uncontended lock
            deltas.append(delta)

    cpu, started = time.process_time(), time.perf_counter()
    gap = _streams(name, root, STREAMS, EVENTS, on_delta)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    expected = STREAMS * EVENTS
    if len(deltas) != expected:
        raise AssertionError(f"{name}: {len(deltas)} deltas, expected {expected}")
    return {"wall": wall, "cpu": cpu, "cpu_per_delta": cpu / expected, "peak_rss_mb": peak_rss() / 1e6,
            "gap_ms": gap * 1e3}


def run(root: str, rounds: int = ROUNDS) -> Section:
    results = interleaved(
        CONTENDERS, lambda name: run_child("tests.benchmarks.bench_concurrency", [name, root], timeout=180), rounds
    )
    stats = {name: {key: median([r[key] for r in runs]) for key in runs[0]} for name, runs in results.items()}
    # CPU per delta swings with machine load (an overloaded client reads more events per
    # read), so each contender is compared with the threads run of the same round.
    cpu = {name: [r["cpu_per_delta"] for r in runs] for name, runs in results.items()}
    ratios = {name: ratio(cpu[name], cpu["threads"]) for name in cpu}
    rows = []
    for name, s in stats.items():
        per_delta = [r["cpu_per_delta"] * 1e6 for r in results[name]]
        gaps = [r["gap_ms"] for r in results[name]]
        rows.append([name, f"{s['wall']:.2f}", f"{s['cpu']:.2f}", f"{s['cpu_per_delta'] * 1e6:.1f}",
                     f"{min(per_delta):.1f}-{max(per_delta):.1f}", f"{ratios[name]:.2f}", f"{s['peak_rss_mb']:.0f}",
                     f"{s['gap_ms']:.0f}", f"{min(gaps):.0f}-{max(gaps):.0f}"])
    text = (
        f"{STREAMS} concurrent streams x {EVENTS} events, {PACE * 1e3:.0f} ms apart (OpenAI SSE, Ylokh's "
        f"protocol), each contender in a fresh process; medians of {rounds} interleaved rounds; the CPU ratio is "
        f"the median of each round's ratio to that round's threads run. The async "
        f"facade runs with `llmproviders.set_async_limit({ASYNC_LIMIT})` (default 64). The heartbeat sleeps "
        f"{TICK * 1e3:.0f} ms at a time (a task on the event loop; for threads, a thread); its gap is each "
        f"round's longest.\n\n"
        + table(["contender", "wall s", "CPU s", "CPU µs per delta", "(min-max)", "CPU vs threads (same round)",
                 "peak RSS MB", "longest heartbeat gap ms", "(min-max)"], rows)
    )
    print(text + "\n", flush=True)
    facade = stats["async facade"]["cpu_per_delta"]
    openai = stats["AsyncOpenAI"]["cpu_per_delta"]
    checks = [
        Check(f"async facade CPU per delta within {CPU_TARGET:.2f}x of plain threads",
              f"{ratios['async facade']:.2f}x", ratios["async facade"] <= CPU_TARGET),
        Check("async facade CPU per delta below AsyncOpenAI's",
              f"{facade * 1e6:.1f} vs {openai * 1e6:.1f} µs", facade < openai),
        Check(f"async facade: event loop's longest heartbeat gap under {GAP_TARGET * 1e3:.0f} ms (issue 11)",
              f"{stats['async facade']['gap_ms']:.0f} ms (median of rounds)",
              stats["async facade"]["gap_ms"] < GAP_TARGET * 1e3),
    ]
    return Section("Concurrency", text, checks)


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], sys.argv[2])))
