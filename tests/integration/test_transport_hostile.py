"""Byte-exact hostile servers and proxies against the transport (regressions from an
adversarial review): responses framed two ways, conflicting lengths, a proxy or a TLS
handshake that drips or stalls, a Location that is not UTF-8, error bodies cut by a
deadline, secrets in exception chains, TLS connection reuse."""

import gc
import json
import socket
import ssl
import threading
import time
import traceback
import warnings
from contextlib import contextmanager

import pytest

from llmproviders import (
    InvalidArgumentError,
    LLMProvidersError,
    OpenAICompatible,
    ProtocolError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    ResponseStatusError,
    StreamInterruptedError,
)

MESSAGES = [{"role": "user", "content": "hi"}]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(text: str) -> bytes:
    content = json.dumps({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
    finish = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return f"data: {content}\n\ndata: {finish}\n\ndata: [DONE]\n\n".encode()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def reply(text: str) -> bytes:
    return HEAD + chunk(sse(text)) + b"0\r\n\r\n"


def read_request(conn, buf=b""):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            break
        rest += data
    return head, rest[:length], rest[length:]


@contextmanager
def server(handler, *, wrap=None):
    """A raw server: ``handler(conn, number)`` per connection, in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    connections, threads = [], []

    def serve():
        number = 0
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            number += 1
            connections.append(conn)

            def run(conn=conn, number=number):
                wrapped = None
                try:
                    wrapped = wrap(conn) if wrap else conn
                    handler(wrapped, number)
                except (OSError, ssl.SSLError):
                    pass
                finally:
                    if wrapped is not None:
                        wrapped.close()
                    conn.close()

            thread = threading.Thread(target=run, daemon=True)
            threads.append(thread)
            thread.start()

    accept = threading.Thread(target=serve, daemon=True)
    accept.start()
    try:
        yield listener.getsockname()[1], connections
    finally:
        stop.set()
        listener.close()
        accept.join(5)
        for conn in connections:
            try:
                conn.close()
            except OSError:
                pass
        for thread in threads:
            thread.join(5)


def ask(port, text, scheme="http", **kwargs):
    kwargs.setdefault("timeout", 3)
    kwargs.setdefault("max_retries", 0)
    stream = OpenAICompatible.create_completion(
        "m", [{"role": "user", "content": text}], base_url=f"{scheme}://127.0.0.1:{port}/v1", **kwargs
    )
    return "".join(stream)


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_a_response_framed_two_ways_is_never_pooled(version):
    """Transfer-Encoding: chunked and a Content-Length (or HTTP/1.0 with a
    Transfer-Encoding): the rest that the Content-Length announces came to the next caller
    on the same connection as its reply, and every later caller got the one before."""
    tails = {}

    def handler(conn, number):
        buf = b""
        while True:
            request = read_request(conn, buf)
            if request is None:
                return
            head, body, buf = request
            text = json.loads(body)["messages"][-1]["content"]
            if text == "first":
                chunked = chunk(sse("reply-first")) + b"0\r\n\r\n"
                tail = reply("first-tail")
                conn.sendall(
                    version + b" 200 OK\r\nConnection: keep-alive\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n" % (len(chunked) + len(tail)) + chunked
                )
                tails[number] = tail  # the rest, once the next request is in (as a slow upstream would)
            else:
                if number in tails:
                    conn.sendall(tails.pop(number))
                conn.sendall(reply(text))

    with server(handler) as (port, connections):
        assert [ask(port, text) for text in ("first", "second", "third")] == ["reply-first", "second", "third"]
        assert len(connections) == 2  # the two-way response cost its connection; the rest reused one


def test_conflicting_content_lengths_are_a_protocol_error_that_leaks_no_socket():
    def handler(conn, number):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 5, 6\r\n\r\nhello")
        time.sleep(1)

    with server(handler) as (port, _):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ProtocolError, match="malformed response.*conflicting Content-Length"):
                ask(port, "x")
            gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_proxy_that_drips_its_connect_answer_is_cut_by_the_deadline_and_by_abort():
    def slow_proxy(conn, number):
        read_request(conn)  # CONNECT api.example.invalid:443
        for byte in b"HTTP/1.1 200 Connection established\r\nX-Pad: " + b"x" * 60 + b"\r\n\r\n":
            conn.sendall(bytes([byte]))
            time.sleep(0.08)  # about 8 s in all, never a second of silence

    with server(slow_proxy) as (port, _):
        proxy = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError, match="deadline"):
            list(OpenAICompatible.create_completion(
                "m", MESSAGES, base_url="https://api.example.invalid/v1", proxy=proxy, timeout=2, deadline=1, max_retries=0
            ))
        assert time.monotonic() - started < 2.5
        stream = OpenAICompatible.create_completion(
            "m", MESSAGES, base_url="https://api.example.invalid/v1", proxy=proxy, timeout=2, max_retries=0
        )
        threading.Timer(0.5, stream.abort).start()
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError, match="aborted"):
            list(stream)
        assert time.monotonic() - started < 1.5


def test_a_tls_handshake_that_is_never_answered_is_cut_by_the_deadline_and_by_abort():
    def silent(conn, number):
        time.sleep(6)  # accepts TCP, never answers the ClientHello

    with server(silent) as (port, _):
        started = time.monotonic()
        with pytest.raises(LLMProvidersError, match="deadline"):
            ask(port, "x", scheme="https", timeout=10, deadline=1)
        assert time.monotonic() - started < 2.0
        stream = OpenAICompatible.create_completion(
            "m", MESSAGES, base_url=f"https://127.0.0.1:{port}/v1", timeout=(6, 6), max_retries=0
        )
        threading.Timer(0.5, stream.abort).start()
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError, match="aborted"):
            list(stream)
        assert time.monotonic() - started < 1.5


def test_a_location_that_is_not_utf8_is_a_typed_error_that_leaks_no_socket():
    def handler(conn, number):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /caf\xe9\r\nContent-Length: 0\r\n\r\n")
        time.sleep(1)

    with server(handler) as (port, _):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(RedirectError):
                ask(port, "x")
            with pytest.raises(RedirectError):
                OpenAICompatible.get_models(base_url=f"http://127.0.0.1:{port}/v1", timeout=2)
            gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("stop", ["deadline", "abort"])
def test_an_error_body_cut_short_says_why(stop):
    def handler(conn, number):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n")
        for _ in range(50):
            conn.sendall(b"busy ")
            time.sleep(0.1)

    with server(handler) as (port, _):
        stream = OpenAICompatible.create_completion(
            "m", MESSAGES, base_url=f"http://127.0.0.1:{port}/v1", timeout=5, max_retries=0,
            deadline=1 if stop == "deadline" else None,
        )
        if stop == "abort":
            threading.Timer(0.5, stream.abort).start()
        with pytest.raises(LLMProvidersError) as info:
            list(stream)
    if stop == "deadline":
        assert isinstance(info.value, RequestTimeoutError) and "deadline" in str(info.value)
    else:
        assert isinstance(info.value, StreamInterruptedError) and "aborted" in str(info.value)


def test_abort_during_a_backoff_gives_an_error_that_does_not_list_itself():
    def handler(conn, number):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n")

    with server(handler) as (port, _):
        stream = OpenAICompatible.create_completion(
            "m", MESSAGES, base_url=f"http://127.0.0.1:{port}/v1", timeout=5, max_retries=2
        )
        from llmproviders import Provider, RetryPolicy

        OpenAICompatible.retry_policy = RetryPolicy(max_retry_after=10)  # (the suite's is fast)
        try:
            threading.Timer(0.5, stream.abort).start()
            started = time.monotonic()
            with pytest.raises(RateLimitError) as info:
                list(stream)
        finally:
            del OpenAICompatible.retry_policy
        assert time.monotonic() - started < 2 and Provider.retry_policy is not None
    error = info.value
    assert all(attempt is not error for attempt in error.attempts)
    assert "429" in str(error) and "".join(traceback.format_exception(type(error), error, error.__traceback__))


def test_a_query_secret_never_shows_in_the_exception_chain():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there
    # Assembled, so that the source lines a traceback quotes (Python 3.13 quotes every line
    # of a statement) do not hold the secret themselves.
    secret = "-".join(["QSECRET", "12345"])
    base_url = f"http://127.0.0.1:{port}/v1?key={secret}"
    with pytest.raises(LLMProvidersError) as info:
        list(OpenAICompatible.create_completion("m", MESSAGES, base_url=base_url, timeout=2, max_retries=0))
    error = info.value
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert secret not in printed and secret not in str(error.__cause__) and error.__context__ is None
    assert "QSECRET" not in printed


def test_a_header_value_with_leading_unicode_whitespace_is_refused_before_io():
    with pytest.raises(InvalidArgumentError, match="whitespace"):
        OpenAICompatible.create_completion("m", MESSAGES, base_url="http://127.0.0.1:9/v1", extra_headers={"X-Key": "\xa0token"})
    with pytest.raises(InvalidArgumentError, match="whitespace"):
        OpenAICompatible.create_completion("m", MESSAGES, base_url="http://127.0.0.1:9/v1", extra_headers={"X-Key": "\x85token"})


@pytest.mark.parametrize("name", ["Transfer-Encoding", "content-length", "Host", "Connection"])
def test_extra_headers_cannot_set_the_request_framing(name):
    with pytest.raises(InvalidArgumentError, match="frames the request"):
        OpenAICompatible.create_completion("m", MESSAGES, base_url="http://127.0.0.1:9/v1", extra_headers={name: "chunked"})


def test_a_proxy_answering_itself_is_not_blamed_on_the_upstream():
    def proxy(conn, number):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nupstream unreachable!")

    with server(proxy) as (port, _):
        with pytest.raises(ResponseStatusError, match=r"through the proxy\) answered HTTP 502"):
            list(OpenAICompatible.create_completion(
                "m", MESSAGES, base_url="http://api.example.invalid:8080/v1", proxy=f"http://127.0.0.1:{port}",
                timeout=3, max_retries=0,
            ))


def test_tls_connections_are_reused_after_a_late_last_chunk(monkeypatch, tmp_path):
    """Over TLS the drain gave up at once (a non-blocking TLS socket says "want read",
    not "no data"), so nearly every HTTPS call paid a new connection and handshake."""
    import trustme  # the test extra installs it: missing, this fails rather than skips
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    def handler(conn, number):
        buf = b""
        while True:
            request = read_request(conn, buf)
            if request is None:
                return
            _, body, buf = request
            text = json.loads(body)["messages"][-1]["content"]
            conn.sendall(HEAD + chunk(sse("reply-" + text)))
            time.sleep(0.02)  # the terminating chunk comes a little later
            conn.sendall(b"0\r\n\r\n")

    with server(handler, wrap=lambda conn: context.wrap_socket(conn, server_side=True)) as (port, connections):
        assert [ask(port, str(i), scheme="https", timeout=5) for i in range(5)] == [f"reply-{i}" for i in range(5)]
        assert len(connections) == 1


# -- issue 11, item 8: decompressed bytes count against the frame caps ------------------------


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_a_small_gzip_body_cannot_become_a_frame_over_the_cap(framing):
    """A 9 MiB NDJSON line gzips to a few KiB; the cap (8 MiB a line) applies to what it
    decodes to, so the reply is a ProtocolError, not a 9 MiB buffer."""
    import gzip

    from llmproviders import FlowGpt

    from .rawhttp import ScriptedServer

    body = gzip.compress(b'{"event": "text", "data": "' + b"x" * (9 * 1024 * 1024) + b'"}\n')
    assert len(body) < 64 * 1024
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\n"
    if framing == "chunked":
        answer = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(body) + b"0\r\n\r\n"
    else:
        answer = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    with ScriptedServer([[answer]]) as server:
        with pytest.raises(ProtocolError, match="larger than"):
            FlowGpt.create(None, MESSAGES, base_url=server.base_url, max_retries=0, timeout=5)
