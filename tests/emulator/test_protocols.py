"""The four upstream protocols as the emulator serves and enforces them."""

from __future__ import annotations

import time
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
    pieces_for,
    reply_for,
)

from .clients import (
    TIMEOUT,
    PROTOCOLS,
    MESSAGES,
    SINGLE,
    EXTRA_FRAMES,
    format_prompt,
    encode,
    flowgpt_headers,
    flowgpt_body,
    gprochat_body,
    post,
    read_reply,
)


@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_happy_path(emu: Emulator, session: requests.Session, protocol: str, framing: str) -> None:
    plan = emu.plan(framing=framing)
    with post(session, emu, protocol) as response:
        assert response.status_code == 200
        assert "Content-Length" not in response.headers
        chunks = list(response.iter_content(None))
    if framing == "chunked":
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert len(chunks) == len(pieces_for(reply_for(MESSAGES))) + EXTRA_FRAMES[protocol]
    else:
        assert "Transfer-Encoding" not in response.headers
        assert response.headers["Connection"] == "close"
    text, trailer = read_reply(protocol, b"".join(chunks))
    assert text == reply_for(MESSAGES)
    assert trailer
    assert plan.wait() == "complete"
    assert plan.requests[0].path == response.request.path_url


def test_content_types(emu: Emulator, session: requests.Session) -> None:
    expected = {
        "flowgpt": "application/x-ndjson",
        "gprochat": "text/plain; charset=utf-8",
        "chatgpt4online": "text/event-stream; charset=utf-8",
        "ylokh": "text/event-stream; charset=utf-8",
    }
    for protocol, content_type in expected.items():
        with post(session, emu, protocol) as response:
            assert response.headers["Content-Type"] == content_type
            assert "эмулятор".encode() in response.content  # raw UTF-8, not \\u escapes


@pytest.mark.parametrize("messages", [MESSAGES, SINGLE], ids=["conversation", "single"])
def test_reply_for_agrees_with_all_protocols(emu: Emulator, session: requests.Session, messages: Any) -> None:
    for protocol in PROTOCOLS:
        with post(session, emu, protocol, messages) as response:
            assert read_reply(protocol, response.content) == (reply_for(messages), True), protocol


@pytest.mark.parametrize(
    "override",
    [
        {"signature": "0" * 32},
        {"timestamp": str(int(time.time() * 1000))},  # milliseconds, not seconds
        {"timestamp": str(int(time.time()) - 3600)},
        {"nonce": "ABCDEF" + "0" * 26},
        {"nonce": "abc"},
        {"authorization": "Bearer token"},
        {"device": "f-short"},
        {"device": "x-" + "a" * 19},
    ],
)
def test_flowgpt_rejects_bad_headers(emu: Emulator, session: requests.Session, override: Dict[str, str]) -> None:
    headers = flowgpt_headers(**override)
    response = session.post(emu.url(FLOWGPT_PATH), headers=headers, data=encode(flowgpt_body(MESSAGES)), timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]


def test_flowgpt_rejects_missing_header(emu: Emulator, session: requests.Session) -> None:
    headers = flowgpt_headers()
    del headers["x-signature"]
    response = session.post(emu.url(FLOWGPT_PATH), headers=headers, data=encode(flowgpt_body(MESSAGES)), timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "missing header x-signature"}


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-5"},
        {"promptId": "model-gpt-4-turbo"},
        {"nsfw": True},
        {"question": None},
        {"history": []},
        {"history": [{"role": "user", "content": "hi"}]},
        {"temperature": "hot"},
        {"temperature": True},
        {"documentIds": None},
        {"generateImage": 0},
        {"system": 1},
    ],
)
def test_flowgpt_rejects_bad_body(emu: Emulator, session: requests.Session, change: Dict[str, Any]) -> None:
    body = {**flowgpt_body(MESSAGES), **change}
    response = session.post(emu.url(FLOWGPT_PATH), headers=flowgpt_headers(), data=encode(body), timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"]
    assert response.headers["Content-Length"]


def test_flowgpt_accepts_other_models(emu: Emulator, session: requests.Session) -> None:
    body = flowgpt_body(SINGLE, model="Mixtral-8x7B")
    with session.post(emu.url(FLOWGPT_PATH), headers=flowgpt_headers(), data=encode(body), timeout=5) as response:
        assert response.status_code == 200


def test_gprochat_enforcement(emu: Emulator, session: requests.Session) -> None:
    url, prompt = emu.url(GPROCHAT_PATH), format_prompt(MESSAGES)
    ok = {"Content-Type": "text/plain; charset=utf-8"}  # case and spaces don't matter

    def send(body: Any, headers: Dict[str, str] = ok) -> requests.Response:
        return session.post(url, headers=headers, data=encode(body), timeout=TIMEOUT)

    assert send(gprochat_body(prompt)).text == reply_for(MESSAGES)
    bad_sign = send(gprochat_body(prompt, sign="0" * 64))
    assert (bad_sign.status_code, bad_sign.text) == (401, "invalid sign")
    signed_other_prompt = {**gprochat_body("another prompt"), "messages": gprochat_body(prompt)["messages"]}
    assert send(signed_other_prompt).status_code == 401
    assert send(gprochat_body(prompt, at=int(time.time()))).status_code == 401  # seconds, not milliseconds
    assert send(gprochat_body(prompt), {"Content-Type": "application/json"}).status_code == 400
    assert send({k: v for k, v in gprochat_body(prompt).items() if k != "pass"}).status_code == 400
    assert send({**gprochat_body(prompt), "time": str(int(time.time() * 1000))}).status_code == 400
    assert send({**gprochat_body(prompt), "messages": [{"role": "user", "content": prompt}]}).status_code == 400
    rejected = send([1, 2])
    assert rejected.status_code == 400 and rejected.headers["Content-Type"].startswith("text/plain")


def test_chatgpt4online_enforcement(emu: Emulator, session: requests.Session) -> None:
    url = emu.url(CHATGPT4ONLINE_SUBMIT_PATH)
    body = {"botId": "default", "newMessage": "hi", "stream": True}
    start = session.post(emu.url(CHATGPT4ONLINE_SESSION_PATH), timeout=TIMEOUT)
    assert start.status_code == 200 and start.headers["Content-Length"]
    session_info = start.json()
    assert session_info["success"] is True and session_info["sessionId"]
    nonce = session_info["restNonce"]
    assert len(nonce) == 10 and int(nonce, 16) >= 0

    for headers in ({}, {"x-wp-nonce": "0123456789"}):
        refused = session.post(url, headers=headers, json=body, timeout=TIMEOUT)
        assert refused.status_code == 403
        assert refused.json() == {
            "code": "rest_cookie_invalid_nonce",
            "message": "Cookie check failed",
            "data": {"status": 403},
        }
    for change in ({"botId": "other"}, {"stream": False}, {"newMessage": None}):
        invalid = session.post(url, headers={"x-wp-nonce": nonce}, json={**body, **change}, timeout=TIMEOUT)
        assert invalid.status_code == 400
        assert invalid.json()["message"]
    accepted = session.post(url, headers={"X-WP-Nonce": nonce}, json=body, timeout=TIMEOUT)
    assert read_reply("chatgpt4online", accepted.content) == (reply_for("hi"), True)

    emu.revoke_nonces()
    assert session.post(url, headers={"x-wp-nonce": nonce}, json=body, timeout=TIMEOUT).status_code == 403


def test_unknown_path_and_wrong_method(emu: Emulator, session: requests.Session) -> None:
    missing = session.post(emu.url("/v2/nothing"), json={}, timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no such endpoint: POST /v2/nothing"}
    for path in (FLOWGPT_PATH, YLOKH_PATH, CHATGPT4ONLINE_SESSION_PATH):
        wrong = session.get(emu.url(path), timeout=TIMEOUT)
        assert wrong.status_code == 405
        assert wrong.headers["Allow"] == "POST"
        assert "method not allowed" in wrong.json()["error"]
