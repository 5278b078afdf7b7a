"""Workload 8, batch (issue 16, target 3): 2,000 completions of 20 deltas each (Ylokh's
OpenAI SSE), 32 at a time.

- floor: a hand-written ``ThreadPoolExecutor(32)`` whose threads each keep a
  ``requests.Session`` and read each reply with ``iter_content(None)`` + split +
  ``json.loads``; results collected in input order;
- ``batch()``: ``llmproviders.batch(Ylokh, prompts, workers=32, progress=False)``,
  without a store, and with an SQLite store (a new file each round, so every item is
  sent);
- openai-python: the same thread pool calling one shared ``OpenAI`` client.

Every text of every contender is checked.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List

from .clients import MODEL, TIMEOUT, _openai_client, pick
from .harness import Check, Section, interleaved, median, ratio, table
from .server import piece

ITEMS, DELTAS, WORKERS = 2000, 20, 32
ROUNDS = 4
TARGETS = {"batch()": 1.15, "batch() + SQLite store": 1.25}
ONLY_FIRST = {"openai-python": 2}
EXPECTED = piece(0, 6) * DELTAS  # a bulk reply repeats its one-frame block (server.py)


def _prompts() -> List[str]:
    return [f"prompt number {i}" for i in range(ITEMS)]


def _floor(url: str) -> List[str]:
    local = threading.local()

    def one(prompt: str) -> str:
        session = getattr(local, "session", None)
        if session is None:
            import requests

            session = local.session = requests.Session()
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
        text: List[str] = []
        with session.post(url, json=body, stream=True, timeout=TIMEOUT) as response:
            response.raise_for_status()
            buffer = b""
            for chunk in response.iter_content(chunk_size=None):
                buffer += chunk
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    delta = pick("openai", frame[6:]) if frame else None
                    if delta:
                        text.append(delta)
        return "".join(text)

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, _prompts()))


def _batch(url: str, store: bool = False) -> List[str]:
    from llmproviders import Ylokh, batch

    if not store:
        return batch(Ylokh, _prompts(), workers=WORKERS, progress=False, base_url=url, timeout=TIMEOUT).texts  # type: ignore[return-value]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "batch.sqlite")
        return batch(Ylokh, _prompts(), workers=WORKERS, progress=False, store=path, base_url=url,  # type: ignore[return-value]
                     timeout=TIMEOUT).texts


def _openai_python(url: str) -> List[str]:
    client = _openai_client(url)

    def one(prompt: str) -> str:
        text = []
        for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True):  # type: ignore[arg-type]
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
        return "".join(text)

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, _prompts()))


CONTENDERS: Dict[str, Callable[[str], List[str]]] = {
    "floor": _floor,
    "batch()": _batch,
    "batch() + SQLite store": lambda url: _batch(url, store=True),
    "openai-python": _openai_python,
}


def _run(name: str, url: str) -> float:
    gc.collect()
    started = time.perf_counter()
    texts = CONTENDERS[name](url)
    elapsed = time.perf_counter() - started
    wrong = [i for i, text in enumerate(texts) if text != EXPECTED]
    if len(texts) != ITEMS or wrong:
        raise AssertionError(f"{name}: {len(texts)} texts, {len(wrong)} wrong (first: {wrong[:3]})")
    return elapsed


def run(root: str, rounds: int = ROUNDS) -> Section:
    url = f"{root}/s/kind=openai,n={DELTAS},size=6"
    names = list(CONTENDERS)
    for name in names:  # warm-up: imports, connections
        _run(name, url)
    samples = interleaved(names, lambda name: _run(name, url), rounds, only_first=ONLY_FIRST)
    relative = {name: ratio(samples[name], samples["floor"]) for name in names}
    shown = {"floor": "floor: ThreadPoolExecutor(32) + requests"}
    rows = [[shown.get(name, name), f"{median(samples[name]):.2f}", f"{ITEMS / median(samples[name]):.0f}",
             f"{relative[name]:.2f}"] for name in names]
    text = (
        f"{ITEMS:,} completions of {DELTAS} deltas each (OpenAI SSE, Ylokh), {WORKERS} workers; medians of "
        f"{rounds} interleaved rounds (openai-python: the first {ONLY_FIRST['openai-python']}); ratio = median "
        "over the rounds of the contender's time / the floor's in the same round. The SQLite store is a new "
        "file each round.\n\n"
        + table(["contender", "median s", "completions/s", "ratio vs floor"], rows)
    )
    print(text + "\n", flush=True)
    checks = [Check(f"{name} ({ITEMS:,} x {DELTAS} deltas, {WORKERS} workers) within {target:.2f}x of the floor",
                    f"{relative[name]:.2f}x", relative[name] <= target) for name, target in TARGETS.items()]
    data: Dict[str, Any] = {"ratios": relative}
    return Section("Batch", text, checks, data)
