"""The transport's own API (issue 12): ``Call.open`` yields an ``Exchange`` whose
``iter_bytes()`` translates its own errors and honours abort, for every body framing."""

import threading
import time

import pytest

from llmproviders import GPROChat, LLMProvidersError, ProtocolError, StreamInterruptedError
from llmproviders import _http
from llmproviders._http import Call, Exchange

from .rawhttp import ScriptedServer, text_reply
from .test_transport_edges import chunk

HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def _fresh_pool():
    _http.close_sessions()
    yield
    _http.close_sessions()


def test_an_exchange_describes_its_response_and_reads_its_body():
    reply = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: s=1; Path=/\r\nContent-Length: 11\r\n\r\n{"a": [1]} '
    with ScriptedServer([[reply]]) as server:
        call = Call(GPROChat, base_url=server.base_url, timeout=5)
        with call.open(server.base_url + "/x?token=S3CRET", headers=HEADERS) as exchange:
            assert isinstance(exchange, Exchange)
            assert exchange.status_code == 200 and exchange.headers["Content-Type"] == "application/json"
            assert exchange.cookies.get("s") == "1"
            assert exchange.url == server.base_url + "/x?token=[redacted]"
            assert exchange.read_json() == {"a": [1]}


def test_read_json_refuses_a_body_over_its_limit():
    with ScriptedServer([[text_reply('{"a": "' + "x" * 100 + '"}')]]) as server:
        with Call(GPROChat, base_url=server.base_url, timeout=5).open(server.base_url, headers=HEADERS) as exchange:
            with pytest.raises(ProtocolError, match="larger than 50 bytes"):
                exchange.read_json(limit=50)


CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
GZIP_CHUNKED = CHUNKED.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")


@pytest.mark.parametrize(
    "head, first",
    [(CHUNKED, chunk(b"first")), (LENGTH, b"first"), (GZIP_CHUNKED, chunk(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"))],
    ids=["chunked", "length", "gzip-chunked"],
)
def test_iter_bytes_translates_a_broken_body_inside_the_iterator(head, first):
    with ScriptedServer([[head, first, 0.05]], close_after=[0]) as server:
        call = Call(GPROChat, base_url=server.base_url, timeout=5)
        with call.open(server.base_url, headers=HEADERS) as exchange:
            with pytest.raises(LLMProvidersError) as info:
                for _ in exchange.iter_bytes():
                    pass
    assert isinstance(info.value, StreamInterruptedError)
    assert "connection broke" in str(info.value)


@pytest.mark.parametrize("head, first", [(CHUNKED, chunk(b"first")), (CLOSE, b"first"), (LENGTH, b"first")], ids=["chunked", "close", "length"])
def test_abort_wakes_a_blocked_read_whatever_the_framing(head, first):
    with ScriptedServer([[head, first, 5.0]]) as server:
        call = Call(GPROChat, base_url=server.base_url, timeout=10)
        with call.open(server.base_url, headers=HEADERS) as exchange:
            reads = exchange.iter_bytes()
            assert next(reads) == b"first"
            threading.Timer(0.1, call.abort).start()
            started = time.monotonic()
            with pytest.raises(StreamInterruptedError, match="aborted"):
                next(reads)
            assert time.monotonic() - started < 2


def test_abort_while_waiting_for_the_headers():
    with ScriptedServer([[5.0, text_reply("late")]]) as server:
        call = Call(GPROChat, base_url=server.base_url, timeout=10)
        threading.Timer(0.1, call.abort).start()
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError, match="aborted"):
            with call.open(server.base_url, headers=HEADERS):
                pass
        assert time.monotonic() - started < 2


def test_an_abort_after_the_exchange_leaves_the_pooled_connection_alone():
    """The connection went back to the pool, detached: aborting the old call must not
    shut it down under the next call that takes it."""
    with ScriptedServer([[text_reply("one")], [text_reply("two")]]) as server:
        first = Call(GPROChat, base_url=server.base_url, timeout=5)
        with first.open(server.base_url, headers=HEADERS) as exchange:
            assert b"".join(exchange.iter_bytes()) == b"one"
        first.abort()
        second = Call(GPROChat, base_url=server.base_url, timeout=5)
        with second.open(server.base_url, headers=HEADERS) as exchange:
            assert b"".join(exchange.iter_bytes()) == b"two"
    assert [seen.connection for seen in server.seen] == [0, 0]
