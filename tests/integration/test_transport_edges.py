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
def raw_server(head: bytes, steps, hold: float = 0.0, requests: int = 1):
    """Serve one connection: read a request, send ``head`` then each step (bytes, or
    a float to sleep), ``requests`` times over; keep the connection open ``hold``
    seconds, then close it. (A client that opens a second connection gets no answer.)"""
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
            try:
                for _ in range(requests):
                    data = b""
                    while b"\r\n\r\n" not in data:
                        received = conn.recv(65536)
                        if not received:
                            return  # the client closed the connection
                        data += received
                    headers, _, body = data.partition(b"\r\n\r\n")
                    length = int(next((l.split(b":")[1] for l in headers.split(b"\r\n") if l.lower().startswith(b"content-length")), b"0"))
                    while len(body) < length:
                        received = conn.recv(65536)
                        if not received:
                            return
                        body += received
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


# -- our chunked-body reader (llmproviders._http.chunked) ------------------------------------

TEXT_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"


def gpro(base, **kwargs):
    return GPROChat.create_completion(None, MESSAGES, base_url=base, timeout=5, max_retries=0, **kwargs)


def test_chunk_extensions_bare_lf_hex_case_and_trailers_are_read():
    steps = [b"3;name=value\r\nabc\r\n", b"00A\nd\xc3\xa9fghijkl\n", b"0\r\nX-Trailer: 1\r\n\r\n"]
    with raw_server(TEXT_CHUNKED, steps, hold=1.0) as base:
        assert "".join(gpro(base)) == "abcdéfghijkl"


def test_a_body_that_closes_after_its_last_chunk_without_the_final_crlf_is_complete():
    with raw_server(TEXT_CHUNKED, [b"2\r\nok\r\n0\r\n"]) as base:
        assert "".join(gpro(base)) == "ok"


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b"zz\r\n", "a malformed chunk-size line"),
        (b"0x5\r\n", "a malformed chunk-size line"),  # int(..., 16) alone would take these three
        (b"-5\r\n", "a malformed chunk-size line"),
        (b"1_0\r\n", "a malformed chunk-size line"),
        (b"\r\n", "a malformed chunk-size line"),
        (b"1" * 5000 + b"\r\n", "a chunk-size line too long"),
        (b"2\r\nokXX", "a chunk not followed by CRLF"),
    ],
)
def test_broken_chunk_framing_is_an_interruption_that_keeps_the_text(bad, reason):
    with raw_server(TEXT_CHUNKED, [b"5\r\nHello\r\n", bad], hold=0.2) as base:
        stream = gpro(base)
        with pytest.raises(StreamInterruptedError) as info:
            list(stream)
    assert info.value.partial == "Hello"
    assert "connection broke" in str(info.value) and reason in str(info.value)


@pytest.mark.parametrize("cut", [b"5\r\nHel", b"5\r\nHello", b"5\r\nHello\r\n", b"5"])
def test_a_chunked_body_cut_anywhere_is_an_interruption(cut):
    with raw_server(TEXT_CHUNKED, [b"3\r\nabc\r\n", cut]) as base:
        with pytest.raises(StreamInterruptedError, match="connection broke") as info:
            list(gpro(base))
    assert info.value.partial in ("abc", "abcHel", "abcHello")


def test_a_big_chunk_comes_out_as_it_arrives_not_when_it_is_complete():
    """One chunk holding two pieces of text, the second sent 1 s after the first: the
    first is a delta at once (urllib3's read_chunked would wait for the whole chunk)."""
    with raw_server(TEXT_CHUNKED, [b"a\r\nfirst", 1.0, b"-part\r\n0\r\n\r\n"]) as base:
        stream = gpro(base)
        started = time.monotonic()
        assert next(stream) == "first"
        assert time.monotonic() - started < 0.8
        assert list(stream) == ["-part"]


def test_a_chunk_larger_than_one_read_comes_out_whole():
    from llmproviders._http import READ_SIZE

    data = ("ж" * (READ_SIZE + 1000)).encode()  # split mid-character between reads too
    with raw_server(TEXT_CHUNKED, [b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)]) as base:
        assert "".join(gpro(base)) == data.decode()


def test_a_gzip_chunked_body_is_left_to_urllib3_and_decoded():
    import gzip

    data = gzip.compress("сжатый ответ".encode())
    head = TEXT_CHUNKED.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    with raw_server(head, [b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)]) as base:
        assert "".join(gpro(base)) == "сжатый ответ"


def test_a_read_timeout_inside_a_chunked_body_says_read_timeout():
    with raw_server(TEXT_CHUNKED, [b"2\r\nhi\r\n"], hold=3.0) as base:
        stream = GPROChat.create_completion(None, MESSAGES, base_url=base, timeout=(5, 0.3), max_retries=0)
        with pytest.raises(StreamInterruptedError, match="read timeout") as info:
            list(stream)
    assert info.value.partial == "hi"


def test_a_trailer_section_without_end_is_refused():
    steps = [b"2\r\nok\r\n0\r\n"] + [b"X-Flood: " + b"z" * 100 + b"\r\n"] * 100  # 10 KB, no blank line
    with raw_server(TEXT_CHUNKED, steps, hold=1.0) as base:
        with pytest.raises(StreamInterruptedError, match="trailer section too long") as info:
            list(gpro(base))
    assert info.value.partial == "ok"


@pytest.mark.parametrize(
    "drip",
    [
        [b"3\r\nabc\r\n0\r\n"] + [0.2, b"X-Drip: 1\r\n"] * 20 + [b"\r\n"],  # trailer lines
        [b"3\r\nabc\r\n"] + [0.2, b"0"] * 20 + [b"1\r\nx\r\n0\r\n\r\n"],  # one chunk-size line
    ],
    ids=["trailers", "size-line"],
)
def test_a_server_dripping_bytes_cannot_stretch_the_deadline(drip):
    with raw_server(TEXT_CHUNKED, drip) as base:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError, match="deadline") as info:
            list(gpro(base, deadline=0.6))
    assert info.value.partial == "abc"
    assert time.monotonic() - started < 1.5  # every socket read got only the time left


def test_a_trailer_line_split_when_drained_does_not_release_the_connection():
    """In the non-blocking drain, readline() returns what is there: "X-T: 1\\r" then
    "\\n" must not be taken for the blank line that ends the trailers."""
    import io

    from llmproviders._http.chunked import chunks as _chunks

    class Scripted(io.RawIOBase):  # each read returns the next piece; None: nothing yet (EAGAIN)
        def __init__(self, pieces):
            self.pieces = list(pieces)

        def readable(self):
            return True

        def readinto(self, buffer):
            piece = self.pieces.pop(0) if self.pieces else None
            if piece is None:
                return None
            buffer[: len(piece)] = piece
            return len(piece)

    class Response:
        released = closed = False

        def release_conn(self):
            self.released = True

        def close(self):
            self.closed = True

    reader = io.BufferedReader(Scripted([b"3\r\nabc\r\n0\r\nX-T: 1\r", None, b"\n", None, b"\r\n"]))
    response = Response()
    assert list(_chunks(response, response, reader.readline, reader.read1)) == [b"abc"]
    assert not response.released and not response.closed


def test_the_drain_reuses_connections_with_descriptors_numbered_over_1024():
    """select() fails for a descriptor >= 1024; the drain waits with poll."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2048 if hard == resource.RLIM_INFINITY else min(hard, 2048)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        done = chunk(b"data: [DONE]\n\n")
        # the final chunk comes a moment after [DONE]: the drain has to wait for it
        with raw_server(CHUNKED, [chunk(sse("a")), done, 0.02, b"0\r\n\r\n"], requests=3) as base:
            from llmproviders import _http

            _http.close_sessions()
            replies = ["".join(Ylokh.create_completion(None, MESSAGES, base_url=base, timeout=2, max_retries=0)) for _ in range(3)]
        assert replies == ["a"] * 3  # one connection served all three: the server accepts only one
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
