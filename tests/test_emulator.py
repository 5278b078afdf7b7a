"""Tests of ``llmproviders.testing``: the emulator seen from plain ``requests`` and raw sockets.

Every read has a timeout (requests ``timeout=5``, sockets ``settimeout``), so a
broken emulator fails a test instead of hanging it.
"""

from __future__ import annotations

import _thread
import gc
import hashlib
import io
import json
import random
import secrets
import socket
import threading
import time
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
import requests

import llmproviders.testing as testing
from llmproviders.testing import (
    CHATGPT4ONLINE_SESSION_PATH,
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_PATH,
    GPROCHAT_PATH,
    GPROCHAT_SECRET,
    YLOKH_PATH,
    Emulator,
    Plan,
    RecordedRequest,
    pieces_for,
    question_from_prompt,
    reply_for,
    serve,
)
from llmproviders.testing.pytest_plugin import llm_emulator  # noqa: F401  (the fixture under test)

TIMEOUT = 5
PROTOCOLS = ["flowgpt", "gprochat", "chatgpt4online", "ylokh"]
MESSAGES = [
    {"role": "system", "content": "Réponds brièvement."},
    {"role": "user", "content": "Привет! Как дела?"},
    {"role": "assistant", "content": "Хорошо 🙂"},
    {"role": "user", "content": "Что такое «эмулятор»? 🚀"},
]
SINGLE = [{"role": "user", "content": "日本語で答えて"}]
# frames around the pieces: FlowGpt status + blank + done, Chatgpt4Online end,
# Ylokh role chunk + finish chunk + [DONE]
EXTRA_FRAMES = {"flowgpt": 3, "gprochat": 0, "chatgpt4online": 1, "ylokh": 3}
MALFORMED = {
    "flowgpt": b'{"event": "text", "data": \n',
    "gprochat": b"\xff\xfe",
    "chatgpt4online": b"data: {not json}\n\n",
    "ylokh": b"data: {not json}\n\n",
}


# -- clients ---------------------------------------------------------------------


def format_prompt(messages: Sequence[Dict[str, str]]) -> str:
    if len(messages) == 1:
        return messages[0]["content"]
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def flowgpt_headers(**override: str) -> Dict[str, str]:
    timestamp = override.pop("timestamp", str(int(time.time())))
    nonce = override.pop("nonce", secrets.token_hex(16))
    authorization = override.pop("authorization", "Bearer null")
    signature = hashlib.md5(f"{timestamp}-{nonce}-{authorization}".encode()).hexdigest()
    headers = {
        "x-timestamp": timestamp,
        "x-nonce": nonce,
        "Authorization": authorization,
        "x-signature": override.pop("signature", signature),
        "x-flow-device-id": override.pop("device", "f-" + "a1b2c3d4e5f6g7h8i9j"),
        "Content-Type": "application/json",
    }
    assert not override
    return headers


def flowgpt_body(messages: Sequence[Dict[str, str]], model: str = "gpt-3.5-turbo") -> Dict[str, Any]:
    system = [m["content"] for m in messages if m["role"] == "system"]
    return {
        "model": model,
        "nsfw": False,
        "question": messages[-1]["content"],
        "history": [{"role": "assistant", "content": "Hello, how can I help you today?"}]
        + [m for m in messages[:-1] if m["role"] != "system"],
        "system": "\n".join(system) or "You are helpful assistant. Follow the user's instructions carefully.",
        "temperature": 0.7,
        "promptId": f"model-{model}",
        "documentIds": [],
        "chatFileDocumentIds": [],
        "generateImage": False,
        "generateAudio": False,
    }


def gprochat_body(prompt: str, at: Optional[int] = None, sign: Optional[str] = None) -> Dict[str, Any]:
    at = int(time.time() * 1000) if at is None else at
    signature = hashlib.sha256(f"{at}:{prompt}:{GPROCHAT_SECRET}".encode()).hexdigest()
    return {
        "messages": [{"role": "user", "parts": [{"text": prompt}]}],
        "time": at,
        "pass": None,
        "sign": signature if sign is None else sign,
    }


def c4o_nonce(emu: Emulator) -> str:
    response = requests.post(emu.url(CHATGPT4ONLINE_SESSION_PATH), timeout=TIMEOUT)
    assert response.status_code == 200
    return str(response.json()["restNonce"])


def build(emu: Emulator, protocol: str, messages: Sequence[Dict[str, str]]) -> Tuple[str, Dict[str, str], bytes]:
    """Path, headers and body of a correct request, as each provider sends it."""
    if protocol == "flowgpt":
        return FLOWGPT_PATH, flowgpt_headers(), encode(flowgpt_body(messages))
    if protocol == "gprochat":
        prompt = format_prompt(messages)
        return GPROCHAT_PATH, {"Content-Type": "text/plain;charset=UTF-8"}, encode(gprochat_body(prompt))
    if protocol == "chatgpt4online":
        body = {"botId": "default", "newMessage": format_prompt(messages), "stream": True}
        headers = {"x-wp-nonce": c4o_nonce(emu), "Content-Type": "application/json"}
        return CHATGPT4ONLINE_SUBMIT_PATH, headers, encode(body)
    body = {"messages": list(messages), "model": "gpt-3.5-turbo", "temperature": 1, "stream": True}
    return YLOKH_PATH, {"Content-Type": "application/json"}, encode(body)


def post(
    session: requests.Session,
    emu: Emulator,
    protocol: str,
    messages: Sequence[Dict[str, str]] = MESSAGES,
    headers: Optional[Dict[str, str]] = None,
) -> requests.Response:
    path, base_headers, body = build(emu, protocol, messages)
    return session.post(
        emu.url(path), headers={**base_headers, **(headers or {})}, data=body, stream=True, timeout=TIMEOUT
    )


def read_reply(protocol: str, body: bytes) -> Tuple[str, bool]:
    """The text a correct client extracts from a body, and whether the trailer was there."""
    text = body.decode("utf-8")
    if protocol == "gprochat":
        return text, True
    if protocol == "flowgpt":
        events = [json.loads(line) for line in text.split("\n") if line.strip()]
        pieces = [event["data"] for event in events if event.get("event") == "text"]
        return "".join(pieces), events[-1] == {"event": "done"}
    blocks = [block for block in text.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in blocks), blocks
    payloads = [block[len("data: ") :] for block in blocks]
    if protocol == "chatgpt4online":
        events = [json.loads(p) for p in payloads]
        live = "".join(e["data"] for e in events if e["type"] == "live")
        ended = events[-1]["type"] == "end" and json.loads(events[-1]["data"])["reply"] == live
        return live, ended
    chunks = [json.loads(p) for p in payloads if p != "[DONE]"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    finished = payloads[-1] == "[DONE]" and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    return content, finished


class Raw:
    """A hand-rolled HTTP client over one socket, to see chunks, pauses and EOF exactly."""

    def __init__(
        self,
        emu: Emulator,
        path: str,
        headers: Optional[Dict[str, str]] = None,
        body: bytes = b"",
        method: str = "POST",
        version: str = "HTTP/1.1",
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", emu.port), timeout=TIMEOUT)
        lines = [f"{method} {path} {version}", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.buffer = b""
        status_line, *header_lines = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buffer += data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_until(self, data: bytes) -> None:
        """Wait until ``data`` has arrived in the (unparsed) buffer."""
        while data not in self.buffer:
            self._fill()

    def chunk(self) -> Optional[bytes]:
        """The next HTTP chunk's payload; None for the terminating chunk; EOFError if cut."""
        size = int(self._until(b"\r\n"), 16)
        if size == 0:
            self._until(b"\r\n")
            return None
        while len(self.buffer) < size + 2:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return data

    def chunks(self) -> Tuple[List[bytes], bool]:
        """All remaining chunks, and whether the terminating chunk came."""
        chunks: List[bytes] = []
        try:
            while True:
                chunk = self.chunk()
                if chunk is None:
                    return chunks, True
                chunks.append(chunk)
        except EOFError:
            return chunks, False

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        try:
            while True:
                self._fill()
        except EOFError:
            return self.buffer

    def silent_for(self, seconds: float) -> bool:
        """True if nothing more arrives within ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        self.buffer += data
        return False


def raw(emu: Emulator, protocol: str, messages: Sequence[Dict[str, str]] = MESSAGES, **headers: str) -> Raw:
    path, base_headers, body = build(emu, protocol, messages)
    return Raw(emu, path, {**base_headers, **headers}, body)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def emu(llm_emulator: Emulator) -> Emulator:  # noqa: F811
    return llm_emulator


# -- public surface and replies --------------------------------------------------


def test_public_surface() -> None:
    for name in ["Emulator", "Plan", "RecordedRequest", "reply_for", "pieces_for", "GPROCHAT_SECRET", "serve"]:
        assert name in testing.__all__
    assert all(hasattr(testing, name) for name in testing.__all__)
    public = {name for name in vars(testing) if not name.startswith("_")} - {"pytest_plugin"}
    assert public == set(testing.__all__)
    assert GPROCHAT_SECRET == "2BC120D4-BB36-1B60-26DE-DB630472A3D8"


def test_reply_format() -> None:
    assert reply_for("hi") == "Вы спросили: «hi». Here is the answer ✓ 🚀"
    assert reply_for(MESSAGES) == "Вы спросили: «Что такое «эмулятор»? 🚀». Here is the answer ✓ 🚀"
    assert reply_for([{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]) == reply_for("A")
    assert reply_for([{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]) == reply_for("U")
    assert question_from_prompt(format_prompt(MESSAGES)) == MESSAGES[-1]["content"]
    assert question_from_prompt("User: multi\nline\nAssistant:") == "multi\nline"
    assert question_from_prompt("no prompt here") == "no prompt here"
    with pytest.raises(ValueError):
        reply_for([])


def test_pieces_for_examples() -> None:
    assert pieces_for("Вы спросили: «x»") == ["Вы ", "спросили: ", "«x»"]
    assert pieces_for("hello") == ["he", "ll", "o"]
    assert pieces_for("") == []
    assert pieces_for("abcdefg", 3) == ["abc", "de", "fg"]
    assert len(pieces_for(reply_for("hi"))) >= 3


_ALPHABET = "ab Z:\n\t\r\u00a0«»✓🚀Вы日本e\u0301"


def random_text(rng: random.Random, alphabet: str = _ALPHABET, longest: int = 40) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


def test_pieces_for_concatenate() -> None:
    rng = random.Random(1)
    for _ in range(500):
        text = random_text(rng)
        for n in (None, rng.randint(1, 40)):
            pieces = pieces_for(text, n)
            assert "".join(pieces) == text
            assert all(pieces)
            if n is not None:
                assert len(pieces) == min(n, len(text))
            elif len(text) >= 3:
                assert len(pieces) >= 3


def test_reply_for_prompt_matches_messages() -> None:
    rng = random.Random(2)
    roles = ["system", "user", "assistant"]
    for _ in range(500):  # without ":" no content can fake a "User: " line
        messages = [
            {"role": rng.choice(roles), "content": random_text(rng, _ALPHABET.replace(":", ""), 20)}
            for _ in range(rng.randint(1, 5))
        ]
        assert reply_for(format_prompt(messages)) == reply_for(messages), messages


# -- the four protocols ----------------------------------------------------------


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


# -- enforcement -----------------------------------------------------------------


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


def test_unknown_path_and_wrong_method(emu: Emulator, session: requests.Session) -> None:
    missing = session.post(emu.url("/v2/nothing"), json={}, timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no such endpoint: POST /v2/nothing"}
    for path in (FLOWGPT_PATH, YLOKH_PATH, CHATGPT4ONLINE_SESSION_PATH):
        wrong = session.get(emu.url(path), timeout=TIMEOUT)
        assert wrong.status_code == 405
        assert wrong.headers["Allow"] == "POST"
        assert "method not allowed" in wrong.json()["error"]


# -- step mode -------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_step_mode_holds_each_piece(emu: Emulator, protocol: str, framing: str) -> None:
    plan = emu.plan(step=True, framing=framing, pieces=["Привет", ", ", "мир 🚀"])
    frames = {
        "flowgpt": lambda p: encode({"event": "text", "data": p}),
        "gprochat": lambda p: p.encode(),
        "chatgpt4online": lambda p: encode({"type": "live", "data": p}),
        "ylokh": lambda p: encode({"content": p}),
    }[protocol]
    with raw(emu, protocol) as response:
        assert response.status == 200
        response.read_until(frames("Привет"))
        assert response.silent_for(0.2)  # the server holds piece 2 ...
        assert plan.requests[0].outcome is None
        plan.advance()
        response.read_until(frames(", "))  # ... until the test lets it go
        assert response.silent_for(0.1)
        plan.advance()
        response.read_until(frames("мир 🚀"))
        body = response.rest() if framing == "close" else b"".join(response.chunks()[0])
    assert plan.wait() == "complete"
    assert plan.requests[0].done.is_set()
    if framing == "close":
        assert read_reply(protocol, response.buffer)[1]
    elif protocol != "gprochat":
        assert body  # the trailer followed the last piece without waiting


def test_step_advance_may_run_ahead(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(step=True)
    plan.advance(100)
    with post(session, emu, "ylokh") as response:
        assert read_reply("ylokh", response.content) == (reply_for(MESSAGES), True)
    assert plan.wait() == "complete"


def test_step_timeout_cuts_the_connection() -> None:
    with Emulator(step_timeout=0.3) as emu:
        plan = emu.plan(step=True)
        with raw(emu, "gprochat") as response:
            first = response.chunk()
            chunks, terminated = response.chunks()
        assert (first, chunks, terminated) == (pieces_for(reply_for(MESSAGES))[0].encode(), [], False)
        assert plan.wait() == "fault-disconnect"


# -- scripted answers ------------------------------------------------------------


def test_scripted_status_and_body(emu: Emulator, session: requests.Session) -> None:
    emu.plan(status=500, body={"detail": "boom ✗"}, headers={"X-Request-Id": "abc"})
    emu.plan(status=418, body="short and stout")
    emu.plan(status=200, body=b"\x00\x01", content_type="application/x-thing")
    emu.plan(status=503)
    first = post(session, emu, "ylokh")
    assert (first.status_code, first.json(), first.headers["X-Request-Id"]) == (500, {"detail": "boom ✗"}, "abc")
    assert first.headers["Content-Length"] == str(len(first.content))
    second = post(session, emu, "flowgpt")
    assert (second.status_code, second.text, second.headers["Content-Type"]) == (
        418,
        "short and stout",
        "text/plain; charset=utf-8",
    )
    third = post(session, emu, "gprochat")
    assert (third.content, third.headers["Content-Type"]) == (b"\x00\x01", "application/x-thing")
    fourth = post(session, emu, "ylokh")
    assert fourth.status_code == 503 and "503" in fourth.json()["error"]
    for response in (first, second, third, fourth):
        response.close()


def test_headers_option_adds_to_protocol_reply(emu: Emulator, session: requests.Session) -> None:
    emu.plan(headers={"X-Upstream": "emulated", "Server": "nginx"})
    with post(session, emu, "flowgpt") as response:
        assert response.headers["X-Upstream"] == "emulated"
        assert response.headers["Server"] == "nginx"
        assert read_reply("flowgpt", response.content) == (reply_for(MESSAGES), True)


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


def test_plan_without_path_skips_start_session(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(malformed=True)
    with post(session, emu, "chatgpt4online") as response:  # start_session first, then submit
        chunks = list(response.iter_content(None))
    assert [r.path for r in plan.requests] == [CHATGPT4ONLINE_SUBMIT_PATH]
    assert MALFORMED["chatgpt4online"] in chunks


# -- faults ----------------------------------------------------------------------


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


def test_reply_pieces_and_long_reply(emu: Emulator, session: requests.Session) -> None:
    emu.plan(reply="Готово ✓")
    emu.plan(pieces=["a", "ü", "🚀", ""])
    emu.plan(long_reply=10_000)
    with post(session, emu, "flowgpt") as response:
        assert read_reply("flowgpt", response.content)[0] == "Готово ✓"
    with post(session, emu, "ylokh") as response:
        assert read_reply("ylokh", response.content)[0] == "aü🚀"
    with post(session, emu, "gprochat") as response:
        chunks = [chunk.decode() for chunk in response.iter_content(None)]
    assert len("".join(chunks)) == 10_000
    assert len(chunks) == 157 and all(len(chunk) in (63, 64) for chunk in chunks)
    assert len("".join(chunks).encode()) > 10_000  # multi-byte characters inside


def test_plans_match_by_path_fifo_and_times(emu: Emulator, session: requests.Session) -> None:
    ylokh_plan = emu.plan(path=YLOKH_PATH, times=2, reply="two")
    any_plan = emu.plan(reply="any")
    custom = emu.plan(path="/custom/health", status=200, body={"ok": True})
    with post(session, emu, "gprochat") as response:
        assert response.text == "any"
    for _ in range(3):
        with post(session, emu, "ylokh") as response:
            replies = read_reply("ylokh", response.content)[0]
    assert replies == reply_for(MESSAGES)  # the third one is unscripted
    assert [r.plan for r in emu.requests] == [any_plan, ylokh_plan, ylokh_plan, None]
    assert ylokh_plan.remaining == 0 and ylokh_plan.wait() == "complete"
    assert session.get(emu.url("/custom/health"), timeout=TIMEOUT).json() == {"ok": True}
    assert custom.requests[0].method == "GET"


def test_plan_rejects_bad_options(emu: Emulator) -> None:
    with pytest.raises(TypeError):
        emu.plan(no_such_option=True)  # type: ignore[call-arg]
    for bad in (
        {"framing": "gzip"},
        {"pace": -1},
        {"status": 99},
        {"reply": "a", "pieces": ["a"]},
        {"cloudflare": True, "html_error": 502},
        {"content_type": "text/plain"},
        {"disconnect_after_bytes": -1},
    ):
        with pytest.raises(ValueError):
            emu.plan(**bad)
    with pytest.raises(TypeError):
        emu.plan(pieces="abc")  # type: ignore[arg-type]
    assert emu.requests == [] and emu.plan(path="/x").remaining == 1


# -- recording and outcomes ------------------------------------------------------


def test_requests_are_recorded(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(path=FLOWGPT_PATH)
    path, headers, body = build(emu, "flowgpt", MESSAGES)
    with session.post(emu.url(path + "?trace=1&x=y"), headers=headers, data=body, timeout=TIMEOUT) as response:
        assert response.status_code == 200
    recorded = emu.requests[-1]
    assert isinstance(recorded, RecordedRequest) and isinstance(plan, Plan)
    assert (recorded.method, recorded.path, recorded.query) == ("POST", FLOWGPT_PATH, "trace=1&x=y")
    assert recorded.headers["x-signature"] == recorded.headers["X-Signature"] == headers["x-signature"]
    assert "AUTHORIZATION" in recorded.headers and recorded.headers.get("missing") is None
    with pytest.raises(KeyError):
        recorded.headers["missing"]
    assert recorded.body == body
    assert recorded.json == flowgpt_body(MESSAGES)
    assert recorded.plan is plan and plan.requests == [recorded]
    assert recorded.wait() == "complete" and recorded.status == 200

    session.post(emu.url(YLOKH_PATH), data=b"not json", timeout=TIMEOUT)
    assert emu.requests[-1].json is None and emu.requests[-1].status == 400
    emu.plan(reply="pending")
    emu.reset()
    assert emu.requests == []
    with post(session, emu, "gprochat") as response:
        assert response.text == reply_for(MESSAGES)  # the pending plan was forgotten


def test_client_disconnect_is_observed(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(long_reply=5000, pace=0.05)
    response = post(session, emu, "flowgpt")
    next(response.iter_content(None))
    response.close()
    assert plan.wait() == "client-disconnected"
    assert plan.requests[0].outcome == "client-disconnected"


def test_client_disconnect_during_step(emu: Emulator) -> None:
    plan = emu.plan(step=True)
    with raw(emu, "ylokh") as response:
        response.chunk()
        response.chunk()
    assert plan.wait() == "client-disconnected"


# -- life cycle ------------------------------------------------------------------


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


def test_restart_and_fixture(llm_emulator: Emulator) -> None:  # noqa: F811
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
