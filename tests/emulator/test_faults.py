"""Scripted faults: error pages, rate limits, delays, disconnects, malformed frames."""

from __future__ import annotations

import json
import time

import pytest
import requests

from llmproviders.testing import CHATGPT4ONLINE_SESSION_PATH, Emulator, pieces_for, reply_for

from .clients import TIMEOUT, PROTOCOLS, MESSAGES, EXTRA_FRAMES, MALFORMED, build, post, read_reply, raw


def test_html_error(emu: Emulator, session: requests.Session) -> None:
    emu.plan(html_error=502)
    with post(session, emu, "ylokh") as response:
        assert response.status_code == 502
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.text.startswith("<!DOCTYPE html>")
        assert "<title>502 Bad Gateway</title>" in response.text


def test_cloudflare_challenge(emu: Emulator, session: requests.Session) -> None:
    emu.plan(cloudflare=True)
    with post(session, emu, "flowgpt") as response:
        assert response.status_code == 403
        assert response.headers["Server"] == "cloudflare"
        assert response.headers["cf-mitigated"] == "challenge"
        assert response.headers["cf-ray"].endswith("-AMS")
        assert "<title>Just a moment...</title>" in response.text
        assert "challenge-platform" in response.text


def test_retry_after(emu: Emulator, session: requests.Session) -> None:
    emu.plan(retry_after=7)
    emu.plan(retry_after="Wed, 21 Oct 2015 07:28:00 GMT", status=503)
    with post(session, emu, "gprochat") as limited:
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
        assert "retry after 7" in limited.json()["error"]
    with post(session, emu, "gprochat") as unavailable:
        assert unavailable.status_code == 503
        assert unavailable.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"


def test_delay_headers(emu: Emulator, session: requests.Session) -> None:
    emu.plan(delay_headers=0.3)
    started = time.monotonic()
    with post(session, emu, "gprochat") as response:
        assert time.monotonic() - started >= 0.3
        assert response.text == reply_for(MESSAGES)
    with pytest.raises(requests.exceptions.ReadTimeout):
        emu.plan(delay_headers=1.0)
        path, headers, body = build(emu, "gprochat", MESSAGES)
        session.post(emu.url(path), headers=headers, data=body, timeout=0.2)


def test_start_session_html(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(start_session_html=True)
    assert plan.path == CHATGPT4ONLINE_SESSION_PATH
    refused = session.post(emu.url(CHATGPT4ONLINE_SESSION_PATH), timeout=TIMEOUT)
    assert refused.status_code == 403
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "403 Forbidden" in refused.text
    assert session.post(emu.url(CHATGPT4ONLINE_SESSION_PATH), timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_disconnect_after_bytes_mid_character(emu: Emulator, framing: str) -> None:
    full = reply_for(MESSAGES).encode()
    cut = 12  # "Вы " is 5 bytes, "спр" 6, then one byte of "о"
    plan = emu.plan(disconnect_after_bytes=cut, framing=framing)
    with raw(emu, "gprochat") as response:
        if framing == "chunked":
            chunks, terminated = response.chunks()
            assert not terminated
            received = b"".join(chunks)
        else:
            received = response.rest()
    assert received == full[:cut]
    with pytest.raises(UnicodeDecodeError):
        received.decode()
    assert plan.wait() == "fault-disconnect"


def test_disconnect_after_bytes_in_fixed_body(emu: Emulator) -> None:
    emu.plan(status=500, body="x" * 100, disconnect_after_bytes=10)
    with raw(emu, "ylokh") as response:
        assert response.headers["content-length"] == "100"
        assert response.rest() == b"x" * 10


def test_disconnect_after_bytes_seen_by_requests(emu: Emulator, session: requests.Session) -> None:
    emu.plan(disconnect_after_bytes=100)
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with post(session, emu, "flowgpt") as response:
            for chunk in response.iter_content(None):
                received += chunk
    assert len(received) == 100


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_disconnect_after_events(emu: Emulator, protocol: str) -> None:
    plan = emu.plan(disconnect_after_events=2)
    with raw(emu, protocol) as response:
        chunks, terminated = response.chunks()
    assert not terminated
    opening = {"flowgpt": 2, "ylokh": 1}.get(protocol, 0)
    assert len(chunks) == opening + 2
    text, trailer = read_reply(protocol, b"".join(chunks))
    assert text == "".join(pieces_for(reply_for(MESSAGES))[:2])
    assert plan.wait() == "fault-disconnect"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_malformed_frame(emu: Emulator, session: requests.Session, protocol: str) -> None:
    emu.plan(malformed=True)
    with post(session, emu, protocol) as response:
        chunks = list(response.iter_content(None))
    first_piece = {"flowgpt": 2, "ylokh": 1}.get(protocol, 0)
    assert chunks[first_piece + 1] == MALFORMED[protocol]
    del chunks[first_piece + 1]
    assert read_reply(protocol, b"".join(chunks)) == (reply_for(MESSAGES), True)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_split_utf8(emu: Emulator, session: requests.Session, protocol: str) -> None:
    emu.plan(split_utf8=True)
    with post(session, emu, protocol) as response:
        chunks = list(response.iter_content(None))
    assert len(chunks) > len(pieces_for(reply_for(MESSAGES))) + EXTRA_FRAMES[protocol]
    undecodable = 0
    for chunk in chunks:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable >= len(pieces_for(reply_for(MESSAGES)))
    assert read_reply(protocol, b"".join(chunks)) == (reply_for(MESSAGES), True)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_omit_trailer(emu: Emulator, session: requests.Session, protocol: str) -> None:
    plan = emu.plan(omit_trailer=True)
    with post(session, emu, protocol) as response:
        body = response.content  # ends cleanly: no ChunkedEncodingError
    text, trailer = read_reply(protocol, body)
    assert text == reply_for(MESSAGES)
    assert trailer == (protocol == "gprochat")  # GPROChat has no trailer to leave out
    if protocol == "ylokh":
        assert b"[DONE]" not in body and b'"stop"' not in body
    assert plan.wait() == "complete"


def test_end_mismatch(emu: Emulator, session: requests.Session) -> None:
    emu.plan(end_mismatch="Совсем другой ответ")
    with post(session, emu, "chatgpt4online") as response:
        events = [json.loads(block[6:]) for block in response.text.split("\n\n") if block]
    assert "".join(e["data"] for e in events if e["type"] == "live") == reply_for(MESSAGES)
    assert events[-1]["type"] == "end"
    assert json.loads(events[-1]["data"]) == {
        "success": True,
        "reply": "Совсем другой ответ",
        "images": None,
        "usage": None,
    }


def test_stream_error(emu: Emulator, session: requests.Session) -> None:
    error = {"message": "The server had an error", "type": "server_error", "code": None}
    emu.plan(stream_error=error)
    with post(session, emu, "ylokh") as response:
        blocks = [block for block in response.text.split("\n\n") if block]
    assert len(blocks) == 3
    assert json.loads(blocks[1][6:])["choices"][0]["delta"]["content"] == pieces_for(reply_for(MESSAGES))[0]
    assert json.loads(blocks[2][6:]) == {"error": error}
