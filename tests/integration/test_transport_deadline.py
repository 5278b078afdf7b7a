"""``deadline=`` holds however a server paces its bytes (issue 11, items 3 and 4).

Each socket read used to get a fresh timeout, so a server that drips the status line or
the headers byte by byte, or a compressed body whose bytes decode to nothing, ran far
past the deadline. A watchdog now shuts the call's connection down when its deadline
passes. And the drain after a stream's end never waits on a deadline already past.
"""

import threading
import time

import pytest

from llmproviders import GPROChat, RequestTimeoutError, StreamInterruptedError, Ylokh

from .test_transport_edges import chunk, raw_server, sse

MESSAGES = [{"role": "user", "content": "hi"}]
DEADLINE = 2.0
WITHIN = 3.5  # seconds: the deadline plus a generous margin for a loaded machine


def drip(data: bytes, every: float):
    """``data`` one byte at a time, ``every`` seconds apart."""
    steps = []
    for byte in data:
        steps += [bytes([byte]), every]
    return steps


def run_with_deadline(base, expected):
    started = time.monotonic()
    with pytest.raises(expected, match="deadline of 2 s") as info:
        GPROChat.create(None, MESSAGES, base_url=base, timeout=(5, 5), deadline=DEADLINE)
    elapsed = time.monotonic() - started
    assert elapsed < WITHIN, f"the call took {elapsed:.1f} s with deadline={DEADLINE}"
    return info.value


TEXT = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello"


def test_a_status_line_dripped_byte_by_byte_cannot_stretch_the_deadline():
    with raw_server(b"", drip(TEXT, 0.15)) as base:  # 13 s to send it all
        run_with_deadline(base, RequestTimeoutError)


def test_headers_dripped_byte_by_byte_cannot_stretch_the_deadline():
    status, headers = TEXT.split(b"\r\n", 1)
    with raw_server(status + b"\r\n", drip(b"X-Padding: " + b"z" * 60 + b"\r\n" + headers, 0.15)) as base:
        run_with_deadline(base, RequestTimeoutError)


EMPTY_DEFLATE_BLOCK = b"\x00\x00\x00\xff\xff"  # a sync flush: a valid block that decodes to nothing
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"


def test_a_gzip_header_dripped_slowly_cannot_stretch_the_deadline():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n"
    steps = drip(GZIP_HEADER, 0.4) + [EMPTY_DEFLATE_BLOCK, 0.2] * 40
    with raw_server(head, steps) as base:
        run_with_deadline(base, StreamInterruptedError)


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_deflate_blocks_that_decode_to_nothing_cannot_stretch_the_deadline(framing):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: deflate\r\n"
    if framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        steps = [chunk(b"x\x9c")] + [0.1, chunk(EMPTY_DEFLATE_BLOCK)] * 120
    else:
        head += b"Connection: close\r\n\r\n"
        steps = [b"x\x9c"] + [0.1, EMPTY_DEFLATE_BLOCK] * 120
    with raw_server(head, steps) as base:
        error = run_with_deadline(base, StreamInterruptedError)
    assert error.partial == ""


def test_the_watchdog_thread_exits_when_it_has_nothing_to_watch(emulator):
    assert GPROChat.create(None, MESSAGES, base_url=emulator.base_url, timeout=5, deadline=60) != ""
    started = time.monotonic()
    while any(t.name == "llmproviders-deadline-watchdog" for t in threading.enumerate()):
        assert time.monotonic() - started < 2, "the watchdog still runs with nothing to watch"
        time.sleep(0.01)


@pytest.mark.timeout(15)
def test_the_drain_after_a_past_deadline_does_not_wait():
    """The body's end marker was read in time, the consumer took its time, and the
    deadline passed before the drain: the drain must not wait (it once took a negative
    time left as "no timeout" and waited until the server closed)."""
    body = chunk(sse("Hi") + b"data: [DONE]\n\n")  # one chunk: the end marker is read with "Hi"
    with raw_server(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n", [body], hold=6.0) as base:
        stream = Ylokh.create_completion(None, MESSAGES, base_url=base, timeout=(5, 10), deadline=1.0)
        assert next(stream) == "Hi"
        time.sleep(1.3)  # past the deadline
        started = time.monotonic()
        assert list(stream) == []  # [DONE] was already read: the reply is complete
        assert time.monotonic() - started < 1.0
