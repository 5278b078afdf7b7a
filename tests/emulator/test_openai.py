"""The OpenAI chat-completions endpoint (Ylokh and OpenAI-compatible clients)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from llmproviders.testing import YLOKH_PATH, Emulator, reply_for

from .clients import TIMEOUT, MESSAGES, SINGLE


def test_ylokh_without_stream(emu: Emulator, session: requests.Session) -> None:
    body = {"messages": MESSAGES, "model": "gpt-3.5-turbo"}
    response = session.post(emu.url(YLOKH_PATH), json={**body, "stream": False}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.content))
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-")
    assert completion["model"] == "gpt-3.5-turbo"
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": reply_for(MESSAGES)}
    assert completion["choices"][0]["finish_reason"] == "stop"
    words = sum(len(m["content"].split()) for m in MESSAGES)
    assert completion["usage"] == {
        "prompt_tokens": words,
        "completion_tokens": len(reply_for(MESSAGES).split()),
        "total_tokens": words + len(reply_for(MESSAGES).split()),
    }
    again = session.post(emu.url(YLOKH_PATH), json=body, timeout=TIMEOUT)  # stream defaults to false
    assert again.json()["choices"][0]["message"]["content"] == reply_for(MESSAGES)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "stream": True},
        {"messages": [], "model": "m", "stream": True},
        {"messages": [{"role": "user"}], "model": "m", "stream": True},
        {"messages": "hi", "model": "m", "stream": True},
        {"messages": MESSAGES, "stream": True},
        {"messages": MESSAGES, "model": "m", "stream": "yes"},
        ["not", "an", "object"],
    ],
)
def test_ylokh_rejects_bad_body(emu: Emulator, session: requests.Session, body: Any) -> None:
    response = session.post(emu.url(YLOKH_PATH), json=body, timeout=TIMEOUT)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] is None and error["message"]


def test_ylokh_accepts_extra_keys(emu: Emulator, session: requests.Session) -> None:
    body = {"messages": SINGLE, "model": "m", "stream": False, "allow_fallback": True, "top_p": 1, "foo": "bar"}
    assert session.post(emu.url(YLOKH_PATH), json=body, timeout=TIMEOUT).status_code == 200
