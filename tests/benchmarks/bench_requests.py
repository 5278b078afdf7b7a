"""Workload 7, per-request cost (issue 16, target 2): 2,000 sequential one-delta
replies over a warm keep-alive connection, for Ylokh (OpenAI SSE) and FlowGpt (NDJSON).

What one request costs us beyond the wire: checking the messages and options,
building and signing the request, the first-delta path, closing the response. The
floor is what a careful hand-written client does for the same reply: one
``requests.Session.post(json=..., stream=True)`` with the same body, the same parse
(split + ``json.loads``), and the response closed. openai-python does the same work
through ``chat.completions.create(stream=True)`` (reported).
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any, Callable, Dict, List

from .clients import MESSAGES, MODEL, TIMEOUT, _openai_client, _session, pick
from .harness import Check, Section, interleaved, median, ratio, table

REQUESTS = 2000
ROUNDS = 5
TARGET = 1.20
KINDS = {"openai": "Ylokh", "ndjson": "FlowGpt"}
SEPARATORS = {"openai": b"\n\n", "ndjson": b"\n"}
ONLY_FIRST = {"openai-python": 3}  # about 3x slower: three paired rounds show it


def _floor(url: str, kind: str) -> str:
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    separator, strip = SEPARATORS[kind], len(b"data: ") if kind == "openai" else 0
    text: List[str] = []
    with _session().post(url, json=body, stream=True, timeout=TIMEOUT) as response:
        response.raise_for_status()
        buffer = b""
        for chunk in response.iter_content(chunk_size=None):
            buffer += chunk
            *frames, buffer = buffer.split(separator)
            for frame in frames:
                if frame:
                    delta = pick(kind, frame[strip:])
                    if delta:
                        text.append(delta)
    return "".join(text)


def _ours(url: str, kind: str) -> str:
    from llmproviders import get_provider

    with get_provider(KINDS[kind]).create_completion(None, MESSAGES, base_url=url, timeout=TIMEOUT) as stream:
        return "".join(stream)


def _openai_python(url: str, kind: str) -> str:
    text = []
    for chunk in _openai_client(url).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):  # type: ignore[arg-type]
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
    return "".join(text)


CONTENDERS: Dict[str, Callable[[str, str], str]] = {"floor": _floor, "ours": _ours, "openai-python": _openai_python}


def _run(name: str, url: str, kind: str, count: int, expected: str) -> float:
    one = CONTENDERS[name]
    gc.collect()
    started = time.perf_counter()
    for _ in range(count):
        text = one(url, kind)
        if text != expected:
            raise AssertionError(f"{name} on {kind}: received {text!r}, expected {expected!r}")
    return time.perf_counter() - started


def run(root: str, rounds: int = ROUNDS) -> Section:
    parts = [
        f"{REQUESTS:,} sequential requests, each a one-delta reply over a warm keep-alive connection; "
        f"medians of {rounds} interleaved rounds (openai-python: the first {ONLY_FIRST['openai-python']}); "
        "ratio = median over the rounds of the contender's time / the floor's in the same round. "
        "Floor: `requests.Session.post(json=body, stream=True)` + split + `json.loads`, response closed."
    ]
    checks: List[Check] = []
    data: Dict[str, Any] = {}
    for kind, provider in KINDS.items():
        url = f"{root}/s/kind={kind},n=1,size=6"
        expected = "t0 t0 "
        names = ["floor", "ours"] + (["openai-python"] if kind == "openai" else [])
        for name in names:  # warm-up: imports, connections, lazy set-up
            _run(name, url, kind, 50, expected)
        samples = interleaved(names, lambda name: _run(name, url, kind, REQUESTS, expected), rounds,
                              only_first=ONLY_FIRST)
        relative = {name: ratio(samples[name], samples["floor"]) for name in names}
        shown = {"floor": "floor: requests.Session.post(stream=True)", "ours": provider, "openai-python": "openai-python"}
        rows = [[shown[name], f"{median(samples[name]):.3f}", f"{median(samples[name]) / REQUESTS * 1e6:.0f}",
                 f"{relative[name]:.2f}"] for name in names]
        parts.append(f"**{provider} ({'OpenAI SSE' if kind == 'openai' else 'NDJSON'})**\n\n"
                     + table(["contender", "median s", "µs per request", "ratio vs floor"], rows))
        print(parts[-1] + "\n", flush=True)
        checks.append(Check(f"{provider} per-request cost within {TARGET:.2f}x of the floor",
                            f"{relative['ours']:.2f}x", relative["ours"] <= TARGET))
        data[provider] = relative
    return Section("Per-request cost", "\n\n".join(parts), checks, data)


if __name__ == "__main__":  # pragma: no cover - a quick look: python -m tests.benchmarks.bench_requests
    from .server import serve

    with serve() as root:
        print(json.dumps([c.__dict__ for c in run(root, rounds=3).checks]))
