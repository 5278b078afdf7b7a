"""The server itself: framing, HTTP versions, request bodies, keep-alive, life cycle, ``serve()``."""

from __future__ import annotations

import _thread
import errno
import gc
import io
import socket
import threading
import time
import warnings
from typing import Any, Dict

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

from .clients import TIMEOUT, MESSAGES, encode, build, post, Raw, raw


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
