"""The four upstream protocols as the emulator speaks them.

Each endpoint only says how to validate a request, where the question is, how
one piece of the reply is framed and what trailer ends the stream. The reply is
described as data (:class:`Fixed` or :class:`Stream`); writing it out, with its
framing, pacing and faults, is the server's job (``_emulator.py``).

Replies are deterministic: :func:`reply_for` gives the text for a conversation
and :func:`pieces_for` how it is cut into streamed pieces.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, NoReturn, Optional, Sequence, Set, Tuple, Union

from ._model import RecordedRequest

GPROCHAT_SECRET = "2BC120D4-BB36-1B60-26DE-DB630472A3D8"
"""The shared secret in GPROChat's request signature."""

FLOWGPT_PATH = "/v3/chat-anonymous"
GPROCHAT_PATH = "/api/generate"
CHATGPT4ONLINE_SESSION_PATH = "/wp-json/mwai/v1/start_session"
CHATGPT4ONLINE_SUBMIT_PATH = "/wp-json/mwai-ui/v1/chats/submit"
YLOKH_PATH = "/v1/chat/completions"
OPENAI_MODELS_PATH = "/v1/models"

OPENAI_MODELS = ("gpt-3.5-turbo", "gpt-4", "gpt-4o-mini")
"""The model ids ``GET /v1/models`` lists (chat completions accept any model name)."""
_MODELS_CREATED = 1_700_000_000

FLOWGPT_MODELS = (
    "gpt-3.5-turbo",
    "gpt-3.5-long",
    "gpt-4-turbo",
    "google-gemini",
    "claude-instant",
    "claude-v1",
    "claude-v2",
    "llama2-13b",
    "mythalion-13b",
    "pygmalion-13b",
    "chronos-hermes-13b",
    "Mixtral-8x7B",
    "Dolphin-2.6-8x7B",
)
FLOWGPT_GREETING = "Hello, how can I help you today?"
CLOCK_SKEW = 300
"""How far (seconds) a signed request's time may be from the emulator's clock."""

REPLY_FORMAT = "Вы спросили: «{q}». Here is the answer ✓ 🚀"
"""The reply to question ``q``: Cyrillic, guillemets, a BMP symbol and a non-BMP emoji."""

TOOL_REPLY_FORMAT = "Инструмент ответил: «{result}». Here is the answer ✓ 🚀"
"""The reply to a conversation that ends with tool results (see :func:`reply_for`)."""

_LONG_SAMPLE = "Длинный ответ, a long answer, 長い答え, ответ ✓ 🚀 — "
_LONG_PIECE = 64

# -- replies ---------------------------------------------------------------------

Conversation = Union[str, Sequence[Mapping[str, Any]]]

_ROLE_LINE = re.compile(r"(?:^|\n)(System|User|Assistant): ")
_PROMPT_END = "\nAssistant:"
_WORDS = re.compile(r"\s*\S+\s*|\s+")


def reply_for(conversation: Conversation) -> str:
    """The reply the emulator gives to a conversation.

    ``conversation`` is an OpenAI-style messages list (the question is the text of
    the last ``"user"`` message, or of the last message if none is from the user;
    see :func:`content_text` for content given as a list of parts) or the text an
    upstream received (see :func:`question_from_prompt`). The reply is exactly
    ``f"Вы спросили: «{q}». Here is the answer ✓ 🚀"``.

    A conversation that ends with ``"tool"`` messages (the results of tool calls,
    OpenAI endpoint only) gets ``f"Инструмент ответил: «{result}». Here is the answer ✓ 🚀"``,
    where ``result`` is the text of those trailing tool messages, joined with ``"; "``.

    For a conversation that ends with a user message, this is what all four
    protocols answer. (FlowGpt sends the *last* message as its question, whoever
    wrote it, so for other conversations FlowGpt's reply quotes that one.)
    """
    if isinstance(conversation, str):
        return REPLY_FORMAT.format(q=question_from_prompt(conversation))
    if conversation and conversation[-1].get("role") == "tool":
        results: List[str] = []
        for message in reversed(conversation):
            if message.get("role") != "tool":
                break
            results.insert(0, content_text(message.get("content")))
        return TOOL_REPLY_FORMAT.format(result="; ".join(results))
    return REPLY_FORMAT.format(q=question_for(conversation))


def question_from_prompt(text: str) -> str:
    """The question in a ``format_prompt`` text.

    A text ending with ``"\\nAssistant:"`` is read as ``"{Role}: {content}"`` lines
    (roles System, User, Assistant) and the question is picked as in
    :func:`reply_for`; any other text is the question itself.
    """
    if not text.endswith(_PROMPT_END):
        return text
    body = text[: -len(_PROMPT_END)]
    marks = list(_ROLE_LINE.finditer(body))
    if not marks or marks[0].start() != 0:
        return text
    ends = [mark.start() for mark in marks[1:]] + [len(body)]
    messages = [{"role": mark.group(1).lower(), "content": body[mark.end() : end]} for mark, end in zip(marks, ends)]
    return question_for(messages)


def question_for(messages: Sequence[Mapping[str, Any]]) -> str:
    """The question of a messages list: the text of the last ``"user"`` message, or
    of the last message if none is from the user (see :func:`content_text`)."""
    if not messages:
        raise ValueError("reply_for() needs at least one message")
    chosen = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
    return content_text(chosen.get("content"))


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a str as it is; a list of parts (OpenAI's
    ``[{"type": "text", "text": ...}, {"type": "image_url", ...}]``) gives its text
    parts joined with ``"\\n"`` (images and other parts have no text); ``None`` gives ``""``.

    Raises ``TypeError`` for anything else.
    """
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    raise TypeError(f"message content must be a str or a list of parts, not {type(content).__name__}")


def pieces_for(text: str, n: Optional[int] = None) -> List[str]:
    """How ``text`` is cut into streamed pieces; ``"".join(pieces) == text`` always.

    Without ``n``: one piece per word, each keeping the whitespace after it (a
    text of three or more characters with fewer than three words is cut into three
    near-equal parts instead). With ``n``: ``n`` near-equal parts by characters
    (fewer if the text is shorter than ``n``). An empty text has no pieces.
    """
    if n is None:
        pieces = _WORDS.findall(text)
        if len(pieces) >= 3 or len(text) < 3:
            return pieces
        n = 3
    if n < 1:
        raise ValueError("n must be >= 1")
    n = min(n, len(text))
    if n == 0:
        return []
    size, extra = divmod(len(text), n)
    pieces, start = [], 0
    for index in range(n):
        end = start + size + (index < extra)
        pieces.append(text[start:end])
        start = end
    return pieces


def long_text(length: int) -> str:
    """A multi-lingual text of exactly ``length`` characters (code points)."""
    return (_LONG_SAMPLE * (length // len(_LONG_SAMPLE) + 1))[:length]


def scripted_text(question: str, options: Mapping[str, Any]) -> Tuple[str, List[str]]:
    """The reply text and its pieces, after the plan options ``reply``, ``pieces``, ``long_reply``."""
    if "pieces" in options:
        pieces = list(options["pieces"])
        return "".join(pieces), pieces
    if "long_reply" in options:
        text = long_text(options["long_reply"])
        return text, pieces_for(text, max(1, math.ceil(len(text) / _LONG_PIECE)))
    text = options["reply"] if "reply" in options else REPLY_FORMAT.format(q=question)
    return text, pieces_for(text)


# -- what a reply looks like on the wire ---------------------------------------


class Frame(NamedTuple):
    """One write of a streamed body. ``kind`` is ``"open"`` (before the text),
    ``"piece"`` (carries a piece of the reply: pacing, step mode and
    ``disconnect_after_events`` count these), ``"malformed"``, ``"noise"`` (a line a
    client must ignore), ``"error"`` or ``"trailer"`` (after the reply; dropped by
    ``omit_trailer``)."""

    kind: str
    data: bytes


@dataclass
class Fixed:
    """A complete body sent with ``Content-Length``."""

    status: int
    body: bytes
    content_type: str
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """A body streamed frame by frame (chunked or close-delimited)."""

    content_type: str
    frames: List[Frame]
    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass
class Drop:
    """No answer at all: the connection is closed after the request was read."""

    status: None = None


Reply = Union[Fixed, Stream, Drop]

Gate = Callable[["Endpoint", RecordedRequest, str], Optional[Reply]]
"""Called with each chat request's question once it is validated; returns a fault to
answer instead (the emulator's flaky configuration), or ``None``."""


def dumps(value: Any) -> str:
    """JSON with non-ASCII characters as raw UTF-8, like the real services."""
    return json.dumps(value, ensure_ascii=False)


def json_reply(status: int, value: Any, headers: Optional[Dict[str, str]] = None) -> Fixed:
    """A JSON body with ``Content-Length``."""
    return Fixed(status, dumps(value).encode(), "application/json; charset=utf-8", dict(headers or {}))


def text_reply(status: int, text: str) -> Fixed:
    """A plain text body with ``Content-Length``."""
    return Fixed(status, text.encode(), "text/plain; charset=utf-8")


def html_reply(status: int, headers: Optional[Dict[str, str]] = None, *, title: str = "", body: str = "") -> Fixed:
    """A small generic HTML error page, like a proxy or web server sends."""
    phrase = status_phrase(status)
    title = title or f"{status} {phrase}"
    body = body or f"<center><h1>{status} {phrase}</h1></center>\n<hr><center>nginx</center>"
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )
    return Fixed(status, page.encode(), "text/html; charset=utf-8", dict(headers or {}))


def cloudflare_reply() -> Fixed:
    """A Cloudflare managed-challenge page ("Just a moment...") with its headers."""
    ray = secrets.token_hex(8)
    body = (
        '<div class="main-wrapper" role="main"><div class="main-content">'
        "<noscript>Enable JavaScript and cookies to continue</noscript></div></div>\n"
        f"<script>(function(){{window._cf_chl_opt={{cvId: '3', cType: 'managed', cRay: '{ray}'}};"
        "var a = document.createElement('script');"
        f"a.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray={ray}';"
        "document.getElementsByTagName('head')[0].appendChild(a);}());</script>"
    )
    headers = {
        "Server": "cloudflare",
        "cf-mitigated": "challenge",
        "cf-ray": f"{ray}-AMS",
        "Cache-Control": "private, max-age=0, no-store, no-cache, must-revalidate",
    }
    return html_reply(403, headers, title="Just a moment...", body=body)


def scripted_reply(options: Mapping[str, Any]) -> Optional[Fixed]:
    """The answer a plan imposes instead of the protocol, or ``None`` if it doesn't
    (also with ``context_overflow``, where ``status`` is the OpenAI endpoint's)."""
    if "context_overflow" in options:
        return None
    if options.get("cloudflare"):
        return cloudflare_reply()
    if "html_error" in options:
        return html_reply(options["html_error"])
    if not {"status", "body", "retry_after"} & options.keys():
        return None
    headers: Dict[str, str] = {}
    status = options.get("status", 429 if "retry_after" in options else 200)
    if "retry_after" in options:
        headers["Retry-After"] = str(options["retry_after"])
        default: Any = {"error": f"rate limited: retry after {options['retry_after']} s"}
    else:
        default = {"error": f"HTTP {status} {status_phrase(status)} (scripted by the emulator)"} if status >= 400 else b""
    body = options.get("body", default)
    if isinstance(body, (dict, list)):
        reply = json_reply(status, body, headers)
    elif isinstance(body, str):
        reply = Fixed(status, body.encode(), "text/plain; charset=utf-8", headers)
    else:
        reply = Fixed(status, bytes(body), "application/octet-stream", headers)
    reply.content_type = options.get("content_type", reply.content_type)
    return reply


def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status (``"Error"`` for an unknown code)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _is_message(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("role"), str) and isinstance(item.get("content"), str)


def _sse(value: Any) -> bytes:
    return f"data: {dumps(value)}\n\n".encode()


# -- endpoints -------------------------------------------------------------------


class Rejection(Exception):
    """Raised by an endpoint's validation; carries the error reply to send."""

    def __init__(self, reply: Fixed) -> None:
        super().__init__(reply.status)
        self.reply = reply


_MISSING: Any = object()


class Endpoint:
    """One upstream endpoint. Subclasses implement :meth:`respond`.

    ``main`` endpoints (the four chat endpoints) are the ones a plan without a
    ``path`` applies to. ``method`` is the one HTTP method the endpoint answers.
    """

    path: str = ""
    method: str = "POST"
    main: bool = True
    gate: Optional[Gate] = None

    def asked(self, request: RecordedRequest, question: str) -> Optional[Reply]:
        """Record the question of a validated chat request; return the fault the
        emulator injects for it instead of the reply (see ``gate``), or ``None``."""
        request.question = question
        return self.gate(self, request, question) if self.gate is not None else None

    def respond(self, request: RecordedRequest, options: Mapping[str, Any]) -> Reply:
        """The reply to a validated request (raise :class:`Rejection` otherwise)."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> Fixed:
        """An error reply in this service's shape. Override to change the shape."""
        return json_reply(status, {"error": message})

    def reject(self, status: int, message: str) -> NoReturn:
        """Refuse the request with :meth:`error`."""
        raise Rejection(self.error(status, message))

    def json_body(self, request: RecordedRequest) -> Dict[str, Any]:
        """The request body as a JSON object, or a 400 rejection."""
        if request.json_error is not None:
            self.reject(400, f"the body must be a JSON object: {request.json_error}")
        if not isinstance(request.json, dict):
            self.reject(400, f"the body must be a JSON object, got {request.body[:80]!r}")
        return request.json

    def field(self, body: Mapping[str, Any], key: str, kind: Union[type, Tuple[type, ...]], what: str) -> Any:
        """``body[key]`` if it is an instance of ``kind`` (bool never passes for int), else 400."""
        value = body.get(key, _MISSING)
        if value is _MISSING:
            self.reject(400, f"missing field {key!r} ({what})")
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            self.reject(400, f"field {key!r} must be {what}, got {value!r:.80}")
        return value


class StreamingEndpoint(Endpoint):
    """An endpoint that streams its reply. Subclasses describe the protocol:
    :meth:`accept` (validate, find the question), :meth:`encode` (frame one piece),
    and optionally :meth:`opening`, :meth:`closing` and ``malformed``."""

    content_type = "text/plain; charset=utf-8"
    malformed = b"data: {not json}\n\n"
    """The frame ``malformed=True`` slips in after the first piece."""

    def accept(self, request: RecordedRequest) -> Tuple[str, Dict[str, Any]]:
        """Validate ``request``; return the question and a context for the framing methods."""
        raise NotImplementedError

    def opening(self, context: Dict[str, Any]) -> List[bytes]:
        """Frames sent before the first piece."""
        return []

    def encode(self, piece: str, context: Dict[str, Any]) -> bytes:
        """One piece of text as one frame."""
        raise NotImplementedError

    def closing(self, text: str, context: Dict[str, Any], options: Mapping[str, Any]) -> List[bytes]:
        """Frames sent after the last piece (the trailer)."""
        return []

    def respond(self, request: RecordedRequest, options: Mapping[str, Any]) -> Reply:
        question, context = self.accept(request)
        return self.asked(request, question) or self.stream(question, context, options)

    def stream(self, question: str, context: Dict[str, Any], options: Mapping[str, Any]) -> Stream:
        """The streamed reply to ``question``, after the plan's reply options."""
        text, pieces = scripted_text(question, options)
        frames = [Frame("open", data) for data in self.opening(context)]
        for index, piece in enumerate(pieces):
            frames.append(Frame("piece", self.encode(piece, context)))
            if index == 0 and options.get("malformed"):
                frames.append(Frame("malformed", self.malformed))
        frames += [Frame("trailer", data) for data in self.closing(text, context, options)]
        return Stream(self.content_type, frames)


class FlowGpt(StreamingEndpoint):
    """FlowGpt: signed headers, newline-delimited JSON events."""

    path = FLOWGPT_PATH
    content_type = "application/x-ndjson"
    malformed = b'{"event": "text", "data": \n'
    _TIMESTAMP = re.compile(r"[0-9]{1,15}")
    _NONCE = re.compile(r"[0-9a-f]{32}")
    _DEVICE = re.compile(r"f-[a-z0-9]{19}")

    def accept(self, request: RecordedRequest) -> Tuple[str, Dict[str, Any]]:
        self._check_signature(request)
        body = self.json_body(request)
        model = self.field(body, "model", str, "a model name")
        if model not in FLOWGPT_MODELS:
            self.reject(400, f"unknown model {model!r}; models: {', '.join(FLOWGPT_MODELS)}")
        question = self.field(body, "question", str, "the last message's content")
        history = self.field(body, "history", list, "a list of {role, content}")
        for item in history:
            if not _is_message(item):
                self.reject(400, f"history items must be {{role, content}} objects, got {item!r:.80}")
        if not history or history[0] != {"role": "assistant", "content": FLOWGPT_GREETING}:
            self.reject(400, f"history must start with the assistant greeting {FLOWGPT_GREETING!r}")
        self.field(body, "system", str, "a str")
        self.field(body, "temperature", (int, float), "a number")
        if body.get("promptId") != f"model-{model}":
            self.reject(400, f"promptId must be 'model-{model}', got {body.get('promptId')!r}")
        if body.get("nsfw", _MISSING) is not False:
            self.reject(400, "field 'nsfw' must be false")
        for key in ("documentIds", "chatFileDocumentIds"):
            self.field(body, key, list, "a list")
        for key in ("generateImage", "generateAudio"):
            self.field(body, key, bool, "a bool")
        return question, {}

    def _check_signature(self, request: RecordedRequest) -> None:
        headers = request.headers
        for name in ("x-timestamp", "x-nonce", "authorization", "x-signature", "x-flow-device-id"):
            if name not in headers:
                self.reject(401, f"missing header {name}")
        timestamp = headers["x-timestamp"]
        if not self._TIMESTAMP.fullmatch(timestamp) or abs(int(timestamp) - time.time()) > CLOCK_SKEW:
            self.reject(
                401,
                f"x-timestamp must be Unix time in whole seconds within {CLOCK_SKEW} s of the server's clock, "
                f"got {timestamp!r}",
            )
        if not self._NONCE.fullmatch(headers["x-nonce"]):
            self.reject(401, "x-nonce must be 32 lowercase hex characters")
        if headers["authorization"] != "Bearer null":
            self.reject(401, "authorization must be 'Bearer null'")
        expected = hashlib.md5(f"{timestamp}-{headers['x-nonce']}-{headers['authorization']}".encode()).hexdigest()
        if headers["x-signature"] != expected:
            self.reject(401, "x-signature must be the hex MD5 of '{x-timestamp}-{x-nonce}-{authorization}'")
        if not self._DEVICE.fullmatch(headers["x-flow-device-id"]):
            self.reject(401, "x-flow-device-id must be 'f-' and 19 characters [a-z0-9]")

    def opening(self, context: Dict[str, Any]) -> List[bytes]:
        return [(dumps({"event": "status", "data": "thinking"}) + "\n").encode(), b"\n"]

    def encode(self, piece: str, context: Dict[str, Any]) -> bytes:
        return (dumps({"event": "text", "data": piece}) + "\n").encode()

    def closing(self, text: str, context: Dict[str, Any], options: Mapping[str, Any]) -> List[bytes]:
        return [(dumps({"event": "done"}) + "\n").encode()]


class GPROChat(StreamingEndpoint):
    """GPROChat: a SHA-256 signed JSON body (sent as text/plain), raw text back."""

    path = GPROCHAT_PATH
    malformed = b"\xff\xfe"

    def error(self, status: int, message: str) -> Fixed:
        return text_reply(status, message)

    def accept(self, request: RecordedRequest) -> Tuple[str, Dict[str, Any]]:
        content_type = request.headers.get("content-type", "")
        if content_type.replace(" ", "").lower() != "text/plain;charset=utf-8":
            self.reject(400, f"Content-Type must be 'text/plain;charset=UTF-8', got {content_type!r}")
        body = self.json_body(request)
        messages = self.field(body, "messages", list, "[{role: 'user', parts: [{text}]}]")
        try:
            prompt = messages[0]["parts"][0]["text"]
            if messages[0]["role"] != "user" or not isinstance(prompt, str):
                raise TypeError
        except (LookupError, TypeError):
            self.reject(400, "messages must be [{'role': 'user', 'parts': [{'text': prompt}]}]")
        sent_at = self.field(body, "time", int, "Unix time in milliseconds")
        if body.get("pass", _MISSING) is not None:
            self.reject(400, "field 'pass' must be null")
        sign = self.field(body, "sign", str, "the hex SHA-256 signature")
        if abs(sent_at - time.time() * 1000) > CLOCK_SKEW * 1000:
            self.reject(401, f"invalid time: must be Unix milliseconds within {CLOCK_SKEW} s, got {sent_at}")
        if sign != hashlib.sha256(f"{sent_at}:{prompt}:{GPROCHAT_SECRET}".encode()).hexdigest():
            self.reject(401, "invalid sign")
        return question_from_prompt(prompt), {}

    def encode(self, piece: str, context: Dict[str, Any]) -> bytes:
        return piece.encode()


class NonceBook:
    """The REST nonces Chatgpt4Online has issued (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nonces: Set[str] = set()

    def issue(self) -> str:
        nonce = secrets.token_hex(5)
        with self._lock:
            self._nonces.add(nonce)
        return nonce

    def valid(self, nonce: str) -> bool:
        with self._lock:
            return nonce in self._nonces

    def revoke_all(self) -> None:
        with self._lock:
            self._nonces.clear()


class Chatgpt4OnlineSession(Endpoint):
    """Chatgpt4Online step 1: hands out a REST nonce."""

    path = CHATGPT4ONLINE_SESSION_PATH
    main = False

    def __init__(self, nonces: NonceBook) -> None:
        self.nonces = nonces

    def respond(self, request: RecordedRequest, options: Mapping[str, Any]) -> Reply:
        if options.get("start_session_html"):
            return html_reply(403)
        return json_reply(200, {"success": True, "sessionId": secrets.token_hex(8), "restNonce": self.nonces.issue()})


class Chatgpt4Online(StreamingEndpoint):
    """Chatgpt4Online step 2: nonce-checked submit, SSE ``live`` events and an ``end`` event."""

    path = CHATGPT4ONLINE_SUBMIT_PATH
    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, nonces: NonceBook) -> None:
        self.nonces = nonces

    def error(self, status: int, message: str) -> Fixed:
        return json_reply(status, {"code": "rest_invalid_param", "message": message, "data": {"status": status}})

    def accept(self, request: RecordedRequest) -> Tuple[str, Dict[str, Any]]:
        if not self.nonces.valid(request.headers.get("x-wp-nonce", "")):
            refusal = {"code": "rest_cookie_invalid_nonce", "message": "Cookie check failed", "data": {"status": 403}}
            raise Rejection(json_reply(403, refusal))
        body = self.json_body(request)
        if body.get("botId") != "default":
            self.reject(400, f"botId must be 'default', got {body.get('botId')!r}")
        question = self.field(body, "newMessage", str, "the formatted prompt")
        if body.get("stream") is not True:
            self.reject(400, "stream must be true")
        return question_from_prompt(question), {}

    def encode(self, piece: str, context: Dict[str, Any]) -> bytes:
        return _sse({"type": "live", "data": piece})

    def closing(self, text: str, context: Dict[str, Any], options: Mapping[str, Any]) -> List[bytes]:
        reply = options.get("end_mismatch", text)
        end = {"success": True, "reply": reply, "images": None, "usage": None}
        return [_sse({"type": "end", "data": dumps(end)})]


ENDPOINTS = (
    ("FlowGpt", "POST", FLOWGPT_PATH),
    ("GPROChat", "POST", GPROCHAT_PATH),
    ("Chatgpt4Online (session)", "POST", CHATGPT4ONLINE_SESSION_PATH),
    ("Chatgpt4Online", "POST", CHATGPT4ONLINE_SUBMIT_PATH),
    ("Ylokh, OpenAI-compatible", "POST", YLOKH_PATH),
    ("OpenAI model list", "GET", OPENAI_MODELS_PATH),
)
"""(name, method, path) of every endpoint, in the order ``serve()`` prints them."""
