"""Workload 2, delivery latency: how long a delta takes from the server's write to the
caller's loop.

The server (its own process) writes 20 events 50 ms apart, one event per write, each
stamped with ``time.monotonic()`` just before the write; the client subtracts that from
``time.monotonic()`` when the delta is yielded (CLOCK_MONOTONIC is system-wide on
Linux). Both body delimitations: chunked, and close-delimited (no length; the server
closes at the end). For contrast, plain requests ``iter_content(None)`` and
``iter_lines()``, httpx and aiohttp read the NDJSON body.
"""

from __future__ import annotations

import re
import time
from typing import Dict, List, Tuple

from .clients import consume, label
from .harness import Check, Section, interleaved, median, table

EVENTS = 20
PACE = 0.05  # seconds between two events
ROUNDS = 3
DELIVERIES = {"chunked": "0", "close-delimited": "1"}
PROVIDER_KINDS = ["ndjson", "text", "openai", "mwai"]
CONTRAST = [("floor", "iter_content(None)"), ("iter_lines", "iter_lines()"), ("httpx", "httpx"), ("aiohttp", "aiohttp")]
MEDIAN_TARGET, MAX_TARGET = 0.001, 0.005
_STAMP = re.compile(r"<(\d+\.\d+)>")


def contenders() -> List[Tuple[str, str, str]]:
    """(label, consumer, kind) of every contender."""
    ours = [(label("ours", kind), "ours", kind) for kind in PROVIDER_KINDS]
    return ours + [(f"{shown} (NDJSON, contrast)", name, "ndjson") for name, shown in CONTRAST]


def delays(root: str, name: str, kind: str, close: str) -> List[float]:
    """Seconds from send to yield of every event of one paced reply."""
    found: List[float] = []

    def on_delta(delta: str) -> None:
        now = time.monotonic()
        found.extend(now - float(stamp) for stamp in _STAMP.findall(delta))

    consume(name, f"{root}/s/kind={kind},n={EVENTS},pace={PACE},close={close}", kind, on_delta)
    if len(found) != EVENTS:
        raise AssertionError(f"{name} on {kind}: {len(found)} events, expected {EVENTS}")
    return found


def run(root: str, rounds: int = ROUNDS) -> Section:
    cells = {
        f"{shown} / {delivery}": (name, kind, close)
        for shown, name, kind in contenders()
        for delivery, close in DELIVERIES.items()
    }
    runs = interleaved(list(cells), lambda cell: delays(root, *cells[cell]), rounds)
    samples: Dict[str, List[float]] = {cell: [d for one in runs[cell] for d in one] for cell in cells}

    rows, checks = [], []
    providers = {label("ours", kind) for kind in PROVIDER_KINDS}
    baseline_label = contenders()[len(PROVIDER_KINDS)][0]  # iter_content(None) on the chunked body
    baseline = median(samples[f"{baseline_label} / chunked"])
    for shown, _, _ in contenders():
        row, ratios = [shown], []
        for delivery in DELIVERIES:
            values = samples[f"{shown} / {delivery}"]
            low, high = median(values), max(values)
            row += [f"{low * 1e3:.2f}", f"{high * 1e3:.2f}"]
            ratios.append(f"{low / baseline:.2f}")
            if shown in providers:
                met = low < MEDIAN_TARGET and high < MAX_TARGET
                checks.append(Check(f"{shown} latency, {delivery}: median < 1 ms, max < 5 ms",
                                    f"median {low * 1e3:.2f} ms, max {high * 1e3:.2f} ms", met))
        rows.append(row + [" / ".join(ratios)])
    headers = ["contender"] + [f"{d} {stat} ms" for d in DELIVERIES for stat in ("median", "max")]
    headers.append("median vs baseline (chunked / close)")
    text = (
        f"{EVENTS} events {PACE * 1e3:.0f} ms apart, one event per write; delay from the server's write to "
        f"the delta reaching the caller, {rounds} interleaved rounds ({EVENTS * rounds} events per cell). "
        f"Baseline: the median of `iter_content(None)` on the chunked body.\n\n"
        + table(headers, rows)
    )
    print(text + "\n", flush=True)
    return Section("Delivery latency", text, checks)
