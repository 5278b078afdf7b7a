"""Workload 5, many streams (issue 16, target 4): 1,000 concurrent streams of 30 events,
each event 60-105 ms after the one before, every stream on its own random schedule
(the server paces each connection separately, ``jitter`` seeded by the stream's id).
Each stream's text is ``<id.0><id.1>...``, so every text is checked.

Each contender runs in a fresh child process per round, so its CPU time
(``time.process_time()``: every thread of the process) and its peak RSS are its own:

- async facade: 1,000 ``Ylokh.create_async_generator`` with
  ``llmproviders.set_async_limit(1000)``, created 50 per loop iteration (creating a
  stream is the caller's own synchronous work, ~50 µs; 1,000 in one callback would
  measure that), and a heartbeat task that sleeps 5 ms at a time: its longest gap
  between ticks is how long the event loop stood still;
- threads: 1,000 ``threading.Thread`` each iterating ``Ylokh.create_completion``, and
  a heartbeat thread ticking the same way (for comparison).

Each child first reads two short replies, so imports and lazy set-up are not counted.
The garbage collector's pauses are recorded too: a collection holds the GIL, so the
loop cannot tick while one runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from .harness import (
    Check, GCPauses, Heartbeat, Section, ThreadHeartbeat, interleaved, median, peak_rss, ratio, rss, run_child, table,
)
from .server import paced_text

STREAMS, EVENTS, PACE, JITTER = 1000, 30, 0.060, 0.045
ROUNDS = 4  # two full cycles of the balanced orders of two contenders
TICK = 0.005
BATCH = 50  # async streams created per loop iteration
CONTENDERS = ["async facade", "threads"]
GAP_TARGET = 0.050  # the event loop's longest heartbeat gap, median over rounds
CPU_TARGET = 1.15  # async facade CPU per delta vs plain threads
MESSAGES = [{"role": "user", "content": "benchmark"}]
TIMEOUT = (30.0, 60.0)


def _url(root: str, index: int, events: int = EVENTS, pace: float = PACE, jitter: float = JITTER) -> str:
    return f"{root}/s/kind=openai,n={events},pace={pace},jitter={jitter},id={index}"


def expected(index: int, events: int = EVENTS) -> str:
    return "".join(paced_text(str(index), i) for i in range(events))


def _threads(root: str, count: int, urls: List[str], texts: List[Optional[str]]) -> None:
    from llmproviders import Ylokh

    def one(index: int) -> None:
        with Ylokh.create_completion(None, MESSAGES, base_url=urls[index], timeout=TIMEOUT) as stream:
            texts[index] = "".join(stream)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


async def _async(count: int, urls: List[str], texts: List[Optional[str]]) -> None:
    from llmproviders import Ylokh

    async def one(index: int) -> None:
        out = []
        async with Ylokh.create_async_generator(None, MESSAGES, base_url=urls[index], timeout=TIMEOUT) as stream:
            async for delta in stream:
                out.append(delta)
        texts[index] = "".join(out)

    tasks = []
    for index in range(count):
        tasks.append(asyncio.ensure_future(one(index)))
        if len(tasks) % BATCH == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)


def child(name: str, root: str) -> Dict[str, Any]:
    """In the child process: warm up, then measure one run of the workload."""
    import llmproviders

    llmproviders.set_async_limit(STREAMS)
    warm = [_url(root, 10_000 + i, events=3, pace=0.01, jitter=0) for i in range(2)]
    if name == "threads":
        _threads(root, 2, warm, [None, None])
    else:
        asyncio.run(_async(2, warm, [None, None]))
    urls = [_url(root, index) for index in range(STREAMS)]
    texts: List[Optional[str]] = [None] * STREAMS
    before = rss()
    with GCPauses() as pauses:
        cpu, started = time.process_time(), time.perf_counter()
        if name == "threads":
            heartbeat = ThreadHeartbeat(TICK)
            heartbeat.start()
            _threads(root, STREAMS, urls, texts)
            gap = heartbeat.stop()
        else:

            async def main() -> float:
                beat = Heartbeat(TICK)
                beat.start()
                await asyncio.wait_for(_async(STREAMS, urls, texts), 120)
                return await beat.stop()

            gap = asyncio.run(main())
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    correct = sum(text == expected(index) for index, text in enumerate(texts))
    return {
        "wall": wall, "cpu": cpu, "cpu_per_delta": cpu / (STREAMS * EVENTS), "gap_ms": gap * 1e3,
        "correct": correct, "gc_max_ms": pauses.longest * 1e3, "gc_full": pauses.full,
        "rss_per_stream_kb": (peak_rss() - before) / STREAMS / 1024, "peak_rss_mb": peak_rss() / 1e6,
    }


def run(root: str, rounds: int = ROUNDS) -> Section:
    results = interleaved(
        CONTENDERS, lambda name: run_child("tests.benchmarks.bench_many", [name, root], timeout=300), rounds
    )
    stats = {name: {key: median([r[key] for r in runs]) for key in runs[0]} for name, runs in results.items()}
    cpu = {name: [r["cpu_per_delta"] for r in runs] for name, runs in results.items()}
    ratios = {name: ratio(cpu[name], cpu["threads"]) for name in cpu}
    rows = []
    for name, s in stats.items():
        gaps = [r["gap_ms"] for r in results[name]]
        rows.append([
            name, f"{s['wall']:.2f}", f"{s['cpu_per_delta'] * 1e6:.1f}", f"{ratios[name]:.2f}",
            f"{s['gap_ms']:.0f}", f"{min(gaps):.0f}-{max(gaps):.0f}", f"{s['gc_max_ms']:.0f}", f"{s['gc_full']:.0f}",
            f"{s['rss_per_stream_kb']:.0f}", f"{s['peak_rss_mb']:.0f}",
            f"{min(r['correct'] for r in results[name])} of {STREAMS}",
        ])
    text = (
        f"{STREAMS} concurrent streams x {EVENTS} events, {PACE * 1e3:.0f}-{(PACE + JITTER) * 1e3:.0f} ms apart "
        f"(Ylokh's SSE, each stream on its own random schedule), each contender in a fresh process; medians of "
        f"{rounds} interleaved rounds; the CPU ratio is the median of each round's ratio to that round's threads "
        f"run. The heartbeat sleeps {TICK * 1e3:.0f} ms at a time (a task on the event loop; for threads, a "
        f"thread); its gap is each round's longest. The async facade runs with "
        f"`llmproviders.set_async_limit({STREAMS})`.\n\n"
        + table(["contender", "wall s", "CPU µs per delta", "CPU vs threads (same round)", "longest heartbeat gap ms",
                 "(min-max)", "longest GC pause ms", "full GCs", "peak RSS per stream KB", "peak RSS MB",
                 "texts correct (worst round)"], rows)
    )
    print(text + "\n", flush=True)
    facade = results["async facade"]
    gap = stats["async facade"]["gap_ms"]
    checks = [
        Check(f"{STREAMS} async streams: every text correct",
              f"{min(r['correct'] for r in facade)} of {STREAMS} (worst round)",
              all(r["correct"] == STREAMS for r in facade)),
        Check(f"{STREAMS} async streams: event loop's longest heartbeat gap under {GAP_TARGET * 1e3:.0f} ms",
              f"{gap:.0f} ms (median of rounds)", gap < GAP_TARGET * 1e3),
        Check(f"{STREAMS} async streams: CPU per delta within {CPU_TARGET:.2f}x of {STREAMS} plain threads",
              f"{ratios['async facade']:.2f}x", ratios["async facade"] <= CPU_TARGET),
    ]
    return Section("Many streams", text, checks)


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], sys.argv[2])))
