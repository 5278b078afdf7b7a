"""Clients for the emulator's tests: correct requests for each protocol, the text a correct
client reads from a reply, and :class:`Raw`, an HTTP client over one socket.

Every read has a timeout (requests ``timeout=5``, sockets ``settimeout``), so a broken
emulator fails a test instead of hanging it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import time
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import requests

from llmproviders.testing import (
    CHATGPT4ONLINE_SESSION_PATH,
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_PATH,
    GPROCHAT_PATH,
    GPROCHAT_SECRET,
    YLOKH_PATH,
    Emulator,
)


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


class Answer(NamedTuple):
    """What :func:`exchange` read: the status, headers (lower-cased names), body, and
    whether the server closed the connection after it."""

    status: int
    headers: Dict[str, str]
    body: bytes
    closed: bool

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(emu: Emulator, data: bytes, *, half_close: bool = False, wait: float = TIMEOUT) -> Answer:
    """Send ``data`` as is on a new connection and read one answer with a Content-Length body."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=wait) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            piece = sock.recv(65536)
            assert piece, f"the server closed the connection without an answer (got {buffer!r})"
            buffer += piece
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(rest) < length:
            piece = sock.recv(65536)
            assert piece, "the answer's body was cut"
            rest += piece
        body, extra = rest[:length], rest[length:]
        assert extra == b""
        sock.settimeout(1.0)  # a connection kept alive costs this wait
        try:
            closed = sock.recv(1) == b""
        except socket.timeout:
            closed = False
        except ConnectionResetError:
            closed = True
        return Answer(int(status_line.split()[1]), headers, body, closed)


# -- the OpenAI endpoint -------------------------------------------------------------


def chat(session: requests.Session, emu: Emulator, body: Dict[str, Any], **fields: Any) -> requests.Response:
    """POST an OpenAI chat request (``body`` plus ``fields``); the response is read whole."""
    request = {"model": "m", "messages": SINGLE, **body, **fields}
    return session.post(emu.url(YLOKH_PATH), json=request, timeout=TIMEOUT)


def sse_events(body: bytes) -> List[Tuple[Optional[str], str]]:
    """(event name, data) of each event of a well-formed SSE body (``\\n`` line endings)."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            else:
                assert field == "data", line
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def openai_chunks(body: bytes) -> List[Dict[str, Any]]:
    """The JSON chunks of a stream, checking it ends with exactly one ``[DONE]``."""
    datas = [data for _, data in sse_events(body)]
    assert datas[-1] == "[DONE]" and datas.count("[DONE]") == 1
    return [json.loads(data) for data in datas[:-1]]


def deltas_of(chunks: Sequence[Dict[str, Any]], index: int = 0) -> List[Dict[str, Any]]:
    """The deltas of choice ``index`` in order (chunks without that choice skipped)."""
    return [choice["delta"] for chunk in chunks for choice in chunk["choices"] if choice["index"] == index]


def joined(deltas: Sequence[Dict[str, Any]], key: str) -> str:
    """The ``key`` strings of ``deltas`` joined (``None`` and missing skipped)."""
    return "".join(delta[key] for delta in deltas if isinstance(delta.get(key), str))
