"""The server itself: framing, HTTP versions, request bodies, keep-alive, life cycle, ``serve()``."""

from __future__ import annotations

import _thread
import errno
import gc
import io
import socket
import subprocess
import sys
import threading
import time
import warnings
from typing import Any, Dict, List

import pytest
import requests

from llmproviders.testing import (
    CHATGPT4ONLINE_SESSION_PATH,
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_PATH,
    GPROCHAT_PATH,
    YLOKH_PATH,
    Emulator,
    reply_for,
    serve,
)

from .clients import TIMEOUT, MESSAGES, encode, build, exchange, post, Raw, raw


def test_framing_from_emulator_default_and_header(session: requests.Session) -> None:
    with Emulator(framing="close") as emu:
        with post(session, emu, "gprochat") as response:
            assert response.headers["Connection"] == "close"
            assert "Transfer-Encoding" not in response.headers
        with post(session, emu, "gprochat", headers={"X-Emulator-Framing": "chunked"}) as response:
            assert response.headers["Transfer-Encoding"] == "chunked"
            assert response.text == reply_for(MESSAGES)
        emu.plan(framing="close")  # a plan beats the header
        with post(session, emu, "gprochat", headers={"X-Emulator-Framing": "chunked"}) as response:
            assert response.headers["Connection"] == "close"


def test_http10_client_gets_close_delimited_body(emu: Emulator) -> None:
    path, headers, body = build(emu, "gprochat", MESSAGES)
    with Raw(emu, path, headers, body, version="HTTP/1.0") as response:
        assert response.status == 200
        assert "transfer-encoding" not in response.headers
        assert response.rest().decode() == reply_for(MESSAGES)


def test_chunked_request_body_is_read(emu: Emulator, session: requests.Session) -> None:
    body = encode({"messages": MESSAGES, "model": "m", "stream": False})
    response = session.post(emu.url(YLOKH_PATH), data=iter([body[:10], body[10:]]), timeout=TIMEOUT)
    assert emu.requests[-1].headers["transfer-encoding"] == "chunked"
    assert response.json()["choices"][0]["message"]["content"] == reply_for(MESSAGES)


def test_keep_alive_between_requests(emu: Emulator) -> None:
    path, headers, body = build(emu, "gprochat", MESSAGES)
    with Raw(emu, path, headers, body) as response:
        assert b"".join(response.chunks()[0]).decode() == reply_for(MESSAGES)
        response.sock.sendall("POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        assert b"404 Not Found" in response.sock.recv(4096)


def test_start_and_stop_leave_nothing_behind() -> None:
    baseline = threading.active_count()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emu = Emulator()
        started = time.monotonic()
        emu.start()
        assert time.monotonic() - started < 0.5
        assert emu.base_url == f"http://127.0.0.1:{emu.port}"
        with requests.Session() as session:
            with post(session, emu, "gprochat") as response:
                assert response.text == reply_for(MESSAGES)  # its connection stays in the pool
            stuck = emu.plan(step=True)
            with raw(emu, "ylokh") as streaming:
                streaming.chunk()
                idle = socket.create_connection(("127.0.0.1", emu.port), timeout=TIMEOUT)  # never sends
                assert threading.active_count() >= baseline + 3
                stopping = time.monotonic()
                emu.stop()
                assert time.monotonic() - stopping < 2
                assert streaming.rest() is not None  # the server closed it
                idle.close()
            assert stuck.wait() == "aborted"
            assert threading.active_count() == baseline
            emu.stop()  # idempotent
            assert not emu.running
            with pytest.raises(RuntimeError):
                print(emu.base_url)
        del emu, streaming, response
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_restart_and_fixture(llm_emulator: Emulator) -> None:
    assert llm_emulator.running
    llm_emulator.stop()
    llm_emulator.start()
    assert requests.post(llm_emulator.url("/nope"), timeout=TIMEOUT).status_code == 404


def test_serve_prints_urls_and_stops_on_ctrl_c() -> None:
    baseline = threading.active_count()
    printed = threading.Event()

    class Output(io.StringIO):
        def write(self, text: str) -> int:
            written = super().write(text)
            if YLOKH_PATH in self.getvalue():
                printed.set()
            return written

    def interrupt() -> None:
        if printed.wait(TIMEOUT):
            _thread.interrupt_main()

    out = Output()
    helper = threading.Thread(target=interrupt)
    helper.start()
    serve(port=0, file=out, framing="close")
    helper.join()
    lines = out.getvalue().splitlines()
    base_url = lines[0].split()[4]
    assert base_url.startswith("http://127.0.0.1:")
    for path in (FLOWGPT_PATH, GPROCHAT_PATH, CHATGPT4ONLINE_SESSION_PATH, CHATGPT4ONLINE_SUBMIT_PATH, YLOKH_PATH):
        assert any(line.endswith(base_url + path) for line in lines[1:]), path
    assert threading.active_count() == baseline


# -- binding ---------------------------------------------------------------------


def _port_in_use(listener: socket.socket) -> int:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return int(listener.getsockname()[1])


@pytest.mark.parametrize("where", ["port in use", "not a local address"])
def test_start_raises_the_bind_error_and_leaves_nothing_behind(where: str) -> None:
    baseline = threading.active_count()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listener = socket.socket()
        port = _port_in_use(listener)
        if where == "port in use":
            emu, expected = Emulator("127.0.0.1", port), errno.EADDRINUSE
        else:
            emu, expected = Emulator("192.0.2.1"), errno.EADDRNOTAVAIL  # TEST-NET-1: never this machine's
        with pytest.raises(OSError) as raised:
            emu.start()
        assert type(raised.value) is OSError and raised.value.errno == expected
        assert not emu.running and threading.active_count() == baseline
        with pytest.raises(RuntimeError):
            emu.base_url
        emu.stop()  # nothing to stop
        listener.close()
        if where == "port in use":  # the failed start left it startable
            with emu:
                assert emu.port == port
                assert requests.post(emu.url("/nope"), timeout=TIMEOUT).status_code == 404
        del emu, raised
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert threading.active_count() == baseline


def test_serve_raises_the_bind_error_before_printing() -> None:
    out = io.StringIO()
    with socket.socket() as listener:
        port = _port_in_use(listener)
        with pytest.raises(OSError) as raised:
            serve(port=port, file=out)
    assert raised.value.errno == errno.EADDRINUSE
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    "options",
    [{"port": -1}, {"port": 65536}, {"port": "80"}, {"pace": -1}, {"pace": float("nan")}, {"socket_timeout": 0}],
)
def test_constructor_rejects_bad_values(options: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Emulator(**options)


# -- request hygiene ---------------------------------------------------------------

OPENAI_BODY = encode({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def request_head(path: str = YLOKH_PATH, *headers: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode()


def test_a_body_over_the_limit_gets_413_without_being_read(emu: Emulator) -> None:
    started = time.monotonic()
    answer = exchange(emu, request_head(YLOKH_PATH, f"Content-Length: {16 * 1024 * 1024 + 1}"))
    assert time.monotonic() - started < 3  # answered at once, not after reading 16 MiB that never come
    assert answer.status == 413 and answer.closed
    assert answer.headers["connection"] == "close"
    assert "over the limit of 16777216 bytes" in answer.json()["error"]["message"]  # the OpenAI error shape
    assert emu.requests == []
    exact = exchange(emu, request_head(YLOKH_PATH, f"Content-Length: {len(OPENAI_BODY)}") + OPENAI_BODY)
    assert exact.status == 200 and not exact.closed


def test_max_body_size_and_the_client_still_reads_the_413(session: requests.Session) -> None:
    with Emulator(max_body_size=1024) as emu:
        big = b"x" * (8 * 1024 * 1024)  # more than the socket buffers hold: the server must drain it
        response = session.post(emu.url(GPROCHAT_PATH), data=big, timeout=TIMEOUT)
        assert response.status_code == 413 and "over the limit of 1024 bytes" in response.text
        chunked = session.post(emu.url(YLOKH_PATH), data=iter([b"y" * 1000, b"y" * 1000]), timeout=TIMEOUT)
        assert chunked.status_code == 413 and "limit of 1024 bytes" in chunked.json()["error"]["message"]
        fits = session.post(emu.url(YLOKH_PATH), data=OPENAI_BODY, timeout=TIMEOUT)
        assert fits.status_code == 200


@pytest.mark.parametrize(
    "length",
    [["-1"], ["-100"], ["abc"], ["+5"], ["1_0"], ["0x10"], ["5, 6"], ["99999999999999999999999"], ["5", "6"]],
    ids=lambda headers: "|".join(headers),
)
def test_an_invalid_content_length_gets_400(emu: Emulator, length: List[str]) -> None:
    head = request_head(YLOKH_PATH, *(f"Content-Length: {value}" for value in length))
    answer = exchange(emu, head + b"hello")
    assert answer.status == 400 and answer.closed
    assert "Content-Length" in answer.json()["error"]["message"]


def test_a_body_shorter_than_its_content_length_gets_400(emu: Emulator) -> None:
    answer = exchange(emu, request_head(YLOKH_PATH, "Content-Length: 100") + b"short", half_close=True)
    assert answer.status == 400 and "ended after 5 of 100 bytes" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        (b"-5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        (b"0x5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        (b"\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        (b"5\r\nhelloEXTRA\r\n0\r\n\r\n", "longer than its size"),
        (b"a\r\nhel", "ended inside a chunk"),
        (b"5\r\nhello\r\n", "ended before a chunk size"),
        (b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n", "ended before a trailer"),
        (b"1" * 9000 + b"\r\n", "over 8192 bytes"),
    ],
)
def test_a_malformed_chunked_body_gets_400(emu: Emulator, body: bytes, problem: str) -> None:
    answer = exchange(emu, request_head(YLOKH_PATH, "Transfer-Encoding: chunked") + body, half_close=True)
    assert answer.status == 400 and answer.closed
    message = answer.json()["error"]["message"]
    assert message.startswith("malformed chunked body") and problem in message


def test_a_well_formed_chunked_body_with_extensions_and_trailers(emu: Emulator) -> None:
    pieces = [OPENAI_BODY[:7], OPENAI_BODY[7:]]
    body = b"".join(b"%x;name=value\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\nX-T: 1\r\n\r\n"
    answer = exchange(emu, request_head(YLOKH_PATH, "Transfer-Encoding: chunked") + body)
    assert answer.status == 200 and emu.requests[-1].body == OPENAI_BODY


def test_transfer_codings_other_than_chunked(emu: Emulator) -> None:
    gzip = exchange(emu, request_head(YLOKH_PATH, "Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n")
    assert gzip.status == 501 and "'gzip' is not supported" in gzip.json()["error"]["message"]
    both = request_head(YLOKH_PATH, "Transfer-Encoding: chunked", "Content-Length: 3")
    answer = exchange(emu, both + b"%x\r\n%s\r\n0\r\n\r\n" % (len(OPENAI_BODY), OPENAI_BODY))
    assert answer.status == 200 and answer.closed  # chunked wins, and the connection is not trusted after
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize("path", [YLOKH_PATH, GPROCHAT_PATH])
def test_json_nested_too_deeply_gets_400_in_the_protocols_shape(emu: Emulator, path: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    headers = ["Content-Type: text/plain;charset=UTF-8", f"Content-Length: {len(deep)}"]
    answer = exchange(emu, request_head(path, *headers) + deep)
    assert answer.status == 400 and not answer.closed  # the request was well framed: keep-alive
    text = answer.json()["error"]["message"] if path == YLOKH_PATH else answer.body.decode()
    assert "nested too deeply" in text
    assert emu.requests[-1].json is None and emu.requests[-1].json_error == "the JSON is nested too deeply to parse"


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",  # HTTP/0.9
        b"GET /v1/models HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /v1/models HTTP/1.1\r\nHost: x\r\nnot a header line\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /v1/models HTTP/1.1\r\nHost : x\r\n\r\n",
        b"POST /v1/models HTTP/1.1\r\n Host: x\r\n\r\n",
        b"POST /v1/models HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40) + b"\r\n\r\n",  # TLS on a plain port
    ],
    ids=["no-version", "http-0.9", "http-9.9", "not-a-header", "space-before-colon", "first-line-folded", "folded", "tls"],
)
def test_malformed_requests_get_an_http_400(emu: Emulator, data: bytes) -> None:
    answer = exchange(emu, data)
    assert answer.status in (400, 505) and answer.closed
    assert answer.headers["content-type"].startswith("application/json") and answer.json()["error"]
    assert emu.requests == []


EMFILE_CHILD = r"""
import os, resource, sys, time, urllib.request
from llmproviders.testing import Emulator

emulator = Emulator().start()
urllib.request.urlopen(emulator.url("/v1/models"), timeout=5).close()  # the accept loop is running
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 128), hard))
filler = []
try:
    while True:
        filler.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
print(emulator.port, flush=True)
sys.stdin.readline()  # the parent's connection waits in the listen queue
time.sleep(0.2)
started = time.process_time()
time.sleep(1.0)
print(time.process_time() - started, flush=True)
for fd in filler:
    os.close(fd)
sys.stdin.readline()
emulator.stop()
"""


def test_out_of_file_descriptors_the_server_waits_instead_of_spinning() -> None:
    command = [sys.executable, "-c", EMFILE_CHILD]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdin is not None and child.stdout is not None
            port = int(child.stdout.readline())
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
                child.stdin.write("connected\n")
                child.stdin.flush()
                cpu = float(child.stdout.readline())
                assert cpu < 0.25, f"the accept loop used {cpu:.2f} s of CPU in 1 s"
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")  # served once descriptors are free
            child.stdin.write("done\n")
            child.stdin.flush()
            assert child.wait(timeout=30) == 0
        finally:
            child.kill()


def test_a_connection_that_gets_no_thread_is_closed_and_the_server_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    original = threading.Thread.start
    refused: List[threading.Thread] = []

    def start(thread: threading.Thread) -> None:
        if thread.name == "llmproviders-emulator-connection" and not refused:
            refused.append(thread)
            raise RuntimeError("can't start new thread")
        original(thread)

    baseline = threading.active_count()
    emu = Emulator().start()
    try:
        monkeypatch.setattr(threading.Thread, "start", start)
        with socket.create_connection(("127.0.0.1", emu.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100) == b""  # closed without an answer
        assert exchange(emu, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    finally:
        emu.stop()  # must not try to join the thread that never started
    assert refused and threading.active_count() == baseline
