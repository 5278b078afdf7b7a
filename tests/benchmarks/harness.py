"""What every workload shares: interleaved rounds, medians, child processes, RSS,
markdown tables and the description of the machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

ROOT = Path(__file__).resolve().parents[2]  # the repository (so `-m tests.benchmarks...` works)
T = TypeVar("T")
COMMAND = 'pip install -e ".[bench]" && python -m tests.benchmarks'


@dataclass
class Check:
    """One target: what it asks, what was measured, whether it is met."""

    target: str
    measured: str
    met: bool


@dataclass
class Section:
    """A workload's results: markdown for the report, target checks, raw numbers."""

    title: str
    markdown: str
    checks: List[Check] = field(default_factory=list)
    data: Dict[str, Any] = field(default_factory=dict)


def interleaved(
    names: Sequence[str], measure: Callable[[str], T], rounds: int, *, only_first: Optional[Dict[str, int]] = None
) -> Dict[str, List[T]]:
    """Measure every contender once per round, in orders that balance carry-over: over
    len(names) rounds (2x that for an odd count) each contender runs right after
    every other one equally often, so a contender that leaves the machine busy (or
    cold) slows all the others alike. (A plain rotation always put the same
    contender after AsyncOpenAI, which taxed it ~10% in the concurrency workload.)

    ``only_first`` limits slow contenders to the first rounds; their samples still
    pair with the other contenders' samples of the same rounds (see :func:`ratio`)."""
    samples: Dict[str, List[T]] = {name: [] for name in names}
    limits = only_first or {}
    for order in balanced_orders(len(names), rounds):
        for index in order:
            name = names[index]
            if len(samples[name]) < limits.get(name, rounds):
                samples[name].append(measure(name))
    return samples


def balanced_orders(count: int, rounds: int) -> List[List[int]]:
    """Williams' Latin square: orders of ``range(count)`` in which every ordered pair
    of neighbours occurs equally often over a full cycle of rows."""
    first, low, high = [0], 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    rows = [[(index + shift) % count for index in first] for shift in range(count)]
    if count % 2:
        rows += [row[::-1] for row in rows]
    return [rows[round_ % len(rows)] for round_ in range(rounds)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio(mine: Sequence[float], baseline: Sequence[float]) -> float:
    """The median of the per-round ratios: each round's measurement against the
    baseline's in the same round, seconds apart, so a burst of load elsewhere on the
    machine slows both sides of a ratio rather than one median. (A contender measured
    in the first rounds only pairs with those rounds.)"""
    return median([a / b for a, b in zip(mine, baseline)])


def run_child(module: str, args: Sequence[str], timeout: float) -> Dict[str, Any]:
    """Run ``python -m module *args`` in a fresh process; its last stdout line is JSON."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return json.loads(lines[-1])


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """This process's resident set size in bytes, now (Linux)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


def peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux ``VmHWM``). Not
    ``ru_maxrss``: Linux carries that over from the parent across fork and exec."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def yes(met: bool) -> str:
    return "yes" if met else "**NO**"


def machine() -> List[Tuple[str, str]]:
    """The facts that make numbers comparable: CPU, cores, Python, library versions."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import llmproviders

    versions = [f"llmproviders {llmproviders.__version__}"]
    for name in ("requests", "urllib3", "sseclient-py", "httpx", "httpx-sse", "aiohttp", "openai"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        ("llmproviders source", _source()),
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("libraries", ", ".join(versions)),
        ("command", f"`{COMMAND}`"),
        ("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
    ]


def _source() -> str:
    """The commit measured, and whether ``llmproviders/`` differed from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "llmproviders")
    return f"commit {commit}" + (" with uncommitted changes in llmproviders/" if dirty else "")


class Heartbeat:
    """A task that sleeps ``tick`` seconds at a time on the running event loop and
    keeps the longest gap between its ticks: how long the loop stood still."""

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.longest = 0.0
        self._task: Any = None

    async def _beat(self) -> None:
        import asyncio

        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.tick)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def start(self) -> None:
        import asyncio

        self._task = asyncio.ensure_future(self._beat())

    async def stop(self) -> float:
        import asyncio

        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        return self.longest


class ThreadHeartbeat:
    """The same from a thread that sleeps ``tick`` at a time (for plain threads)."""

    def __init__(self, tick: float) -> None:
        import threading

        self.tick = tick
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def _beat(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.tick):
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.longest


class GCPauses:
    """The garbage collector's pauses in this process (any thread): the longest, and
    how many full (generation 2) collections ran. A collection holds the GIL, so the
    event loop stands still for as long as it runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.full = 0
        self._started: Dict[int, float] = {}

    def _callback(self, phase: str, info: Dict[str, int]) -> None:
        import threading

        ident = threading.get_ident()
        if phase == "start":
            self._started[ident] = time.perf_counter()
            return
        self.longest = max(self.longest, time.perf_counter() - self._started.pop(ident, time.perf_counter()))
        self.full += info["generation"] == 2

    def __enter__(self) -> "GCPauses":
        import gc

        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: Any) -> None:
        import gc

        gc.callbacks.remove(self._callback)
