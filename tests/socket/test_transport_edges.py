"""Byte-exact misbehaviour from a raw socket server (regressions from review)."""

import asyncio
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from llmproviders import GPROChat, StreamInterruptedError, Ylokh
from llmproviders.testing import reply_for

MESSAGES = [{"role": "user", "content": "hi"}]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(content: str) -> bytes:
    return b'data: {"choices": [{"index": 0, "delta": {"content": "%s"}, "finish_reason": null}]}\n\n' % content.encode()


@contextmanager
def raw_server(head: bytes, steps, hold: float = 0.0):
    """Serve one connection: read the request, send ``head`` then each step (bytes, or
    a float to sleep), keep the connection open ``hold`` seconds, then close it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    stop = threading.Event()

    def run():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            headers, _, body = data.partition(b"\r\n\r\n")
            length = int(next((l.split(b":")[1] for l in headers.split(b"\r\n") if l.lower().startswith(b"content-length")), b"0"))
            while len(body) < length:
                body += conn.recv(65536)
            try:
                conn.sendall(head)
                for step in steps:
                    if isinstance(step, float):
                        if stop.wait(step):
                            return
                    else:
                        conn.sendall(step)
                stop.wait(hold)
            except OSError:
                pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(10)


CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_bad_chunk_size_line_is_an_interruption_not_a_type_error():
    with raw_server(CHUNKED, [chunk(sse("Hel")), chunk(sse("lo")), b"zz\r\n"]) as base:
        stream = Ylokh.create_completion(None, MESSAGES, base_url=base, timeout=5, max_retries=0)
        with pytest.raises(StreamInterruptedError) as info:
            list(stream)
    assert info.value.partial == "Hello" and "connection broke" in str(info.value)


def test_a_body_shorter_than_its_content_length_is_an_interruption():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 500\r\n\r\n"
    with raw_server(head, [b"only this"]) as base:
        with pytest.raises(StreamInterruptedError) as info:
            list(GPROChat.create_completion(None, MESSAGES, base_url=base, timeout=5, max_retries=0))
    assert info.value.partial == "only this"


@pytest.mark.parametrize("after_done", [[], [0.03, chunk(b": drip\n\n")] * 40, [chunk(b"x" * 10)[:6]] + [0.03, b"x"] * 40])
def test_the_end_of_a_stream_is_not_held_up_by_what_follows_done(after_done):
    """The post-[DONE] drain never waits more than briefly, however the server behaves."""
    steps = [chunk(sse("Hi")), chunk(b"data: [DONE]\n\n"), *after_done]
    with raw_server(CHUNKED, steps, hold=3.0) as base:
        stream = Ylokh.create_completion(None, MESSAGES, base_url=base, timeout=5)
        started = time.monotonic()
        assert list(stream) == ["Hi"]
        assert time.monotonic() - started < 0.5


def test_an_abort_on_a_chunked_body_says_aborted():
    with raw_server(CHUNKED, [chunk(sse("a"))], hold=3.0) as base:
        stream = Ylokh.create_completion(None, MESSAGES, base_url=base, timeout=5, max_retries=0)
        assert next(stream) == "a"
        threading.Timer(0.1, stream.abort).start()
        with pytest.raises(StreamInterruptedError, match="aborted") as info:
            next(stream)
    assert info.value.partial == "a"


def test_reading_on_after_a_cancelled_wait_raises_instead_of_ending(emulator):
    """Review: a per-delta timeout stopped the stream, which then ended 'normally'."""
    pieces = ["Один ", "два ", "три"]
    plan = emulator.plan(path="/v1/chat/completions", pieces=pieces, step=True)

    async def main():
        stream = Ylokh.create_async_generator(None, MESSAGES, base_url=emulator.base_url, timeout=5)
        received = [await stream.__anext__()]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 0.2)  # the server holds the next piece
        with pytest.raises(StreamInterruptedError, match="cancelled") as info:
            async for delta in stream:
                received.append(delta)
        return received, info.value.partial

    received, partial = asyncio.run(main())
    assert received == pieces[:1] and partial == pieces[0]
    plan.advance(10)
    assert reply_for(MESSAGES)  # the emulator is still fine
