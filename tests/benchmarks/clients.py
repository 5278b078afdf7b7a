"""The contenders: one function per client, each reading one reply and handing every
text delta to ``on_delta``, so every workload drives them the same way.

``consume(name, base, kind, on_delta)`` reads the reply at ``base`` (a server URL with
the reply's spec as path prefix, see ``server.py``) whose wire format is ``kind``.

- ``floor``: requests + ``iter_content(chunk_size=None)`` + split + ``json.loads``
  (raw text: ``iter_content(None)`` + incremental UTF-8 decode). The baseline. Its
  buffer is split only when a chunk completes a frame, so one long event (the 1 MB
  ``end`` event of Chatgpt4Online) costs linear, not quadratic, time.
- ``iter_lines``: requests' ``iter_lines()`` + ``json.loads`` (NDJSON only).
- ``sseclient-py``: ``SSEClient(response.iter_content(None))`` + ``json.loads``.
- ``ours``: the provider for ``kind`` through its public API with ``base_url=``,
  decoding frames with the standard library's ``json.loads`` (the default install);
- ``ours+orjson``: the same with the ``speedups`` extra's orjson;
- ``ours events()``: the same as ``ours``, iterating ``stream.events()`` (typed events)
  instead of the text.
- ``openai-python``: ``OpenAI(base_url=.../v1).chat.completions.create(stream=True)``.
- ``httpx``: ``iter_lines()`` (NDJSON), ``iter_text()`` (text), httpx-sse (SSE).
- ``aiohttp``: the original g4f providers' loop, ``async for line in response.content``
  (raw text: ``iter_any()`` + incremental decode); a new session per reply.

Each client library is imported on first use, so a child process measuring memory
holds only the libraries of its own contender.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from functools import lru_cache
from typing import Any, Callable, Dict, Optional


OnDelta = Callable[[str], None]
MESSAGES = [{"role": "user", "content": "benchmark"}]
MODEL = "gpt-3.5-turbo"
TIMEOUT = (10.0, 60.0)
PROVIDERS = {"ndjson": "FlowGpt", "text": "GPROChat", "openai": "Ylokh", "mwai": "Chatgpt4Online"}
SEPARATORS = {"ndjson": b"\n", "openai": b"\n\n", "mwai": b"\n\n"}
DONE = {b"[DONE]", "[DONE]"}


def pick(kind: str, payload: Any) -> Optional[str]:
    """The text delta in one frame's JSON payload (None for frames without text)."""
    if payload in DONE:
        return None
    value = json.loads(payload)
    if kind == "ndjson":
        return value["data"]
    if kind == "openai":
        return value["choices"][0]["delta"].get("content") if value["choices"] else None
    return value["data"] if value["type"] == "live" else None


def _emit(kind: str, payload: Any, on_delta: OnDelta) -> None:
    delta = pick(kind, payload)
    if delta:
        on_delta(delta)


@lru_cache(maxsize=None)
def _session() -> Any:
    import requests

    return requests.Session()


def floor(base: str, kind: str, on_delta: OnDelta) -> None:
    with _session().post(base + "/reply", data=b"{}", stream=True, timeout=TIMEOUT) as response:
        response.raise_for_status()
        if kind == "text":
            decode = codecs.getincrementaldecoder("utf-8")().decode
            for chunk in response.iter_content(chunk_size=None):
                text = decode(chunk)
                if text:
                    on_delta(text)
            return
        separator, strip = SEPARATORS[kind], 0 if kind == "ndjson" else len(b"data: ")
        buffer = bytearray()  # appended to, and split only when a frame ended: linear in the body
        for chunk in response.iter_content(chunk_size=None):
            scan_from = max(0, len(buffer) - len(separator) + 1)
            buffer += chunk
            if buffer.find(separator, scan_from) < 0:
                continue
            frames = bytes(buffer).split(separator)
            buffer = bytearray(frames.pop())
            for data in frames:
                if data:
                    _emit(kind, data[strip:], on_delta)


def iter_lines(base: str, kind: str, on_delta: OnDelta) -> None:
    with _session().post(base + "/reply", data=b"{}", stream=True, timeout=TIMEOUT) as response:
        for line in response.iter_lines():
            if line:
                _emit(kind, line, on_delta)


def sseclient(base: str, kind: str, on_delta: OnDelta) -> None:
    from sseclient import SSEClient

    with _session().post(base + "/reply", data=b"{}", stream=True, timeout=TIMEOUT) as response:
        for event in SSEClient(response.iter_content(chunk_size=None)).events():
            _emit(kind, event.data, on_delta)


def _decoder(name: str) -> None:
    """Make the providers decode frames with ``name`` (``json`` or ``orjson``) from now on."""
    from llmproviders import _framing

    if name == "orjson":
        import orjson

        _framing.loads = orjson.loads
    else:
        _framing.loads = json.loads


def ours(base: str, kind: str, on_delta: OnDelta) -> None:
    from llmproviders import get_provider

    _decoder("json")
    with get_provider(PROVIDERS[kind]).create_completion(None, MESSAGES, base_url=base, timeout=TIMEOUT) as stream:
        for delta in stream:
            on_delta(delta)


def ours_orjson(base: str, kind: str, on_delta: OnDelta) -> None:
    from llmproviders import get_provider

    _decoder("orjson")
    with get_provider(PROVIDERS[kind]).create_completion(None, MESSAGES, base_url=base, timeout=TIMEOUT) as stream:
        for delta in stream:
            on_delta(delta)


def ours_events(base: str, kind: str, on_delta: OnDelta) -> None:
    from llmproviders import TextDelta, get_provider

    _decoder("json")
    with get_provider(PROVIDERS[kind]).create_completion(None, MESSAGES, base_url=base, timeout=TIMEOUT) as stream:
        for event in stream.events():
            if type(event) is TextDelta:
                on_delta(event.text)


@lru_cache(maxsize=None)
def _openai_client(base: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)


def openai_python(base: str, kind: str, on_delta: OnDelta) -> None:
    for chunk in _openai_client(base).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            on_delta(chunk.choices[0].delta.content)


@lru_cache(maxsize=None)
def _httpx_client() -> Any:
    import httpx

    return httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))


def httpx_client(base: str, kind: str, on_delta: OnDelta) -> None:
    url, client = base + "/reply", _httpx_client()
    if kind in ("openai", "mwai"):
        from httpx_sse import connect_sse

        with connect_sse(client, "POST", url, content=b"{}") as source:
            for event in source.iter_sse():
                _emit(kind, event.data, on_delta)
        return
    with client.stream("POST", url, content=b"{}") as response:
        if kind == "text":
            for text in response.iter_text():
                on_delta(text)
            return
        for line in response.iter_lines():
            if line:
                _emit(kind, line, on_delta)


async def aiohttp_stream(session: Any, base: str, kind: str, on_delta: OnDelta) -> None:
    """One reply through an aiohttp session, read as the original g4f providers did."""
    async with session.post(base + "/reply", data=b"{}") as response:
        response.raise_for_status()
        if kind == "text":
            decode = codecs.getincrementaldecoder("utf-8")().decode
            async for chunk in response.content.iter_any():
                text = decode(chunk)
                if text:
                    on_delta(text)
            return
        async for line in response.content:
            line = line.strip()
            if kind != "ndjson":
                if not line.startswith(b"data: "):
                    continue
                line = line[6:]
            if line:
                _emit(kind, line, on_delta)


def aiohttp_client(base: str, kind: str, on_delta: OnDelta) -> None:
    import aiohttp

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(connect=10, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await aiohttp_stream(session, base, kind, on_delta)

    asyncio.run(main())


async def async_openai_stream(client: Any, on_delta: OnDelta) -> None:
    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            on_delta(chunk.choices[0].delta.content)


async def async_ours_stream(provider: Any, base: str, on_delta: OnDelta) -> None:
    async with provider.create_async_generator(None, MESSAGES, base_url=base, timeout=TIMEOUT) as stream:
        async for delta in stream:
            on_delta(delta)


CONSUMERS: Dict[str, Callable[[str, str, OnDelta], None]] = {
    "floor": floor,
    "iter_lines": iter_lines,
    "sseclient-py": sseclient,
    "ours": ours,
    "ours+orjson": ours_orjson,
    "ours events()": ours_events,
    "openai-python": openai_python,
    "httpx": httpx_client,
    "aiohttp": aiohttp_client,
}


def consume(name: str, base: str, kind: str, on_delta: OnDelta) -> None:
    CONSUMERS[name](base, kind, on_delta)


def label(name: str, kind: str) -> str:
    """How a contender is shown in tables."""
    if name == "ours":
        return PROVIDERS[kind]
    if name.startswith("ours"):
        return PROVIDERS[kind] + name[len("ours"):].replace("+", " + ")
    if name == "floor":
        return "floor: requests iter_content(None)" + (" + decode" if kind == "text" else " + split + json.loads")
    if name == "httpx" and kind in ("openai", "mwai"):
        return "httpx + httpx-sse"
    return name
