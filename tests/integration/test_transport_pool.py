"""Pooled connections never carry one caller's response to another (issue 11, item 2).

Interim ``1xx`` responses are skipped (RFC 9110), and a connection on which bytes of an
unfinished response may remain is never reused: after an interim-response flood, a
``101``, an error body larger than what is read, an early stop, a drain that gives up.
Each test makes two sequential calls to a scripted raw server that answers each
request, on whatever connection, with the next answer; each call must get its own.
"""

import pytest

from llmproviders import GPROChat, ProtocolError, ResponseStatusError, Ylokh
from llmproviders import _http

from .rawhttp import ScriptedServer, text_reply

MESSAGES = [{"role": "user", "content": "hi"}]
FIRST, SECOND = "первый ответ", "second reply"


@pytest.fixture(autouse=True)
def _fresh_pool():
    _http.close_sessions()  # no connection from another test's server
    yield
    _http.close_sessions()


def gpro(server, **kwargs):
    return GPROChat.create(None, MESSAGES, base_url=server.base_url, timeout=5, max_retries=0, **kwargs)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(content: str) -> bytes:
    return b'data: {"choices": [{"index": 0, "delta": {"content": "%s"}, "finish_reason": null}]}\n\n' % content.encode()


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"


def test_a_clean_keep_alive_connection_serves_both_calls():
    with ScriptedServer([[text_reply(FIRST)], [text_reply(SECOND)]]) as server:
        assert gpro(server) == FIRST
        assert gpro(server) == SECOND
    assert [seen.connection for seen in server.seen] == [0, 0]  # reused: the pool works


@pytest.mark.parametrize(
    "interim",
    [
        [EARLY_HINTS],
        [EARLY_HINTS, 0.2],  # the final response comes later: the old code pooled the connection meanwhile
        [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 102 Processing\r\n\r\n", EARLY_HINTS, 0.1, EARLY_HINTS],
        [b"HTTP/1.1 103 Early Hints\n" + b"Link: </a.js>; rel=preload\n" * 50 + b"\n"],  # bare LF, many fields
    ],
    ids=["103", "103-then-pause", "100-102-103-103", "103-bare-lf"],
)
def test_interim_responses_are_skipped_and_each_call_gets_its_own_reply(interim):
    with ScriptedServer([[*interim, text_reply(FIRST)], [text_reply(SECOND)]]) as server:
        assert gpro(server) == FIRST
        assert gpro(server) == SECOND
    assert [seen.connection for seen in server.seen] == [0, 0]  # and the connection stays usable


def test_an_interim_response_flood_is_refused_and_the_connection_dropped():
    flood = [EARLY_HINTS * 40, text_reply("never read")]
    with ScriptedServer([flood, [text_reply(SECOND)]]) as server:
        with pytest.raises(ProtocolError, match="more than 32 interim") as info:  # a malformed response
            gpro(server)
        assert gpro(server) == SECOND
    assert "HTTP 103" not in str(info.value)
    assert [seen.connection for seen in server.seen] == [0, 1]


def test_interim_responses_with_huge_headers_are_refused():
    hint = b"HTTP/1.1 103 Early Hints\r\n" + b"Link: </x.css>; rel=preload\r\n" * 3000 + b"\r\n"  # 90 KB
    with ScriptedServer([[hint, text_reply("never read")], [text_reply(SECOND)]]) as server:
        with pytest.raises(ProtocolError, match="interim"):
            gpro(server)
        assert gpro(server) == SECOND
    assert [seen.connection for seen in server.seen] == [0, 1]


def test_a_101_is_final_and_its_connection_is_not_reused():
    switched = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    with ScriptedServer([[switched, b"\x81\x05hello" * 10], [text_reply(SECOND)]]) as server:
        with pytest.raises(ResponseStatusError) as info:
            gpro(server)
        assert gpro(server) == SECOND
    assert info.value.status_code == 101
    assert [seen.connection for seen in server.seen] == [0, 1]


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_error_body_larger_than_what_is_read_costs_the_connection(framing):
    body = b'{"error": "overloaded"}' + b" " * 200_000
    if framing == "length":
        error = b"HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    else:
        error = b"HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        error += chunk(body) + b"0\r\n\r\n"
    with ScriptedServer([[error], [text_reply(SECOND)]]) as server:
        with pytest.raises(ResponseStatusError, match="overloaded"):
            gpro(server)
        assert gpro(server) == SECOND
    assert [seen.connection for seen in server.seen] == [0, 1]


def test_a_small_error_body_read_to_its_end_keeps_the_connection():
    error = b'HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n{"error": "overloaded"}'
    with ScriptedServer([[error], [text_reply(SECOND)]]) as server:
        with pytest.raises(ResponseStatusError, match="overloaded"):
            gpro(server)
        assert gpro(server) == SECOND
    assert [seen.connection for seen in server.seen] == [0, 0]


def test_a_stream_stopped_early_costs_its_connection():
    text_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
    steps = [text_head, chunk(b"first "), 0.1, chunk(b"more "), chunk(b"and more"), b"0\r\n\r\n"]
    with ScriptedServer([steps, [text_reply(SECOND)]]) as server:
        with GPROChat.create_completion(None, MESSAGES, base_url=server.base_url, timeout=5) as stream:
            assert next(stream) == "first "
        assert gpro(server) == SECOND
    assert [seen.connection for seen in server.seen] == [0, 1]


def ylokh(server):
    return Ylokh.create(None, MESSAGES, base_url=server.base_url, timeout=5, max_retries=0)


WHOLE_SSE = SSE_HEAD + chunk(sse("Second") + b"data: [DONE]\n\n") + b"0\r\n\r\n"


def test_a_drain_that_gives_up_costs_the_connection():
    """The body's last chunk comes after the drain stopped waiting (50 ms): the
    connection is dropped, so the next call does not read that chunk as its reply."""
    steps = [SSE_HEAD, chunk(sse("Hi")), chunk(b"data: [DONE]\n\n"), 0.3, b"0\r\n\r\n"]
    with ScriptedServer([steps, [WHOLE_SSE]]) as server:
        assert ylokh(server) == "Hi"
        assert ylokh(server) == "Second"
    assert [seen.connection for seen in server.seen] == [0, 1]


def test_a_drain_that_finishes_the_body_keeps_the_connection():
    steps = [SSE_HEAD, chunk(sse("Hi")), chunk(b"data: [DONE]\n\n"), 0.01, b"0\r\n\r\n"]
    with ScriptedServer([steps, [WHOLE_SSE]]) as server:
        assert ylokh(server) == "Hi"
        assert ylokh(server) == "Second"
    assert [seen.connection for seen in server.seen] == [0, 0]


def test_the_pool_refuses_a_connection_handed_back_with_its_response_unfinished():
    """Whoever hands a connection back too early (here by hand), the pool closes it
    rather than let the next request read the rest of the old response."""
    rest = b"y" * 1000
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (10 + len(rest))
    with ScriptedServer([[head + b"x" * 10, 0.3, rest], [text_reply(SECOND)]]) as server:
        session = _http.session_for(GPROChat)
        response = session.get(server.base_url, stream=True, timeout=5)
        assert response.raw.read(10) == b"x" * 10
        response.raw.release_conn()  # too early: 1000 bytes of this response are still to come
        assert session.get(server.base_url, timeout=5).text == SECOND
        response.close()
    assert [seen.connection for seen in server.seen] == [0, 1]
