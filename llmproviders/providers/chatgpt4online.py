"""Chatgpt4Online: a WordPress AI-engine chat. A nonce handshake, then Server-Sent Events.

Request: ``POST /wp-json/mwai/v1/start_session`` answers JSON with a ``restNonce``; then
``POST /wp-json/mwai-ui/v1/chats/submit`` with ``x-wp-nonce`` (and the first step's
cookies) and the conversation flattened into ``newMessage``. Reply: SSE events whose
data is JSON ``{"type": ..., "data": ...}``: ``live`` carries the next piece of text,
``end`` repeats the whole reply (its ``data`` is itself a JSON string with a ``reply``
field) and ends the stream, ``error`` reports a failure.

At ``end`` the streamed text and the final reply are reconciled: if the reply extends
what was streamed, the rest is delivered; if it contradicts it,
:class:`ReplyMismatchError` keeps both. A big ``end`` event is read piecewise, never
decoded whole, so a huge reply costs little more memory than its own bytes.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, List, Optional

from .._exceptions import ProtocolError, ReplyMismatchError, ResponseError, StreamInterruptedError
from .. import _framing
from .._framing import RawEvent, loads_frame, preview
from .._http import Call, header_problem
from .._messages import format_prompt
from .._provider import Provider, Request, register_provider
from .._reply import Reply
from ..events import Finish
from ._browser import CHROME_126, browser_headers

SESSION_PATH = "/wp-json/mwai/v1/start_session"
_COMPARE_BLOCK = 1 << 16  # characters compared at a time when reconciling a big reply
_UNREAD: Any = object()


@register_provider
class Chatgpt4Online(Provider):
    """chatgpt4online.org (offline).

    ``live`` events stream the reply; the closing ``end`` event repeats the full reply.
    At the end the two are reconciled: if the full reply extends what was streamed, the
    rest is yielded; if it contradicts it, :class:`ReplyMismatchError` is raised with the
    streamed text in ``partial`` and the final reply in ``reply``, so the caller never
    keeps wrong text unknowingly. A stream without an ``end`` event is incomplete
    (:class:`StreamInterruptedError`).
    """

    url = "https://chatgpt4online.org"
    api_endpoint = "/wp-json/mwai-ui/v1/chats/submit"
    working = False
    default_model = "gpt-4"
    models = ["gpt-4"]
    framing = "sse"
    text_only = True
    #: The ``end`` event repeats the whole reply, so it may be as large as the reply.
    max_frame_size = 256 * 1024 * 1024

    @classmethod
    def build_request(
        cls, call: Call, model: str, messages: List[Dict[str, Any]], options: Dict[str, Any], *, stream: bool
    ) -> Request:
        headers = browser_headers(cls.url, user_agent=CHROME_126)
        with call.open(call.url(cls.url + SESSION_PATH), headers=headers) as exchange:
            session = exchange.read_json()
            cookies = exchange.cookies
        nonce = session.get("restNonce") if isinstance(session, dict) else None
        if not isinstance(nonce, str) or not nonce or header_problem("x-wp-nonce", nonce) is not None:
            shown = preview(session, call._redact)
            raise ProtocolError(
                f"{cls.__name__}: start_session returned no restNonce usable as a header: {shown!r}", provider=cls.__name__, frame=shown
            )
        headers = browser_headers(cls.url, user_agent=CHROME_126, accept="text/event-stream")
        headers["x-wp-nonce"] = nonce
        body = {"botId": "default", "newMessage": format_prompt(messages), "stream": True}
        return Request(call.url(cls.url + cls.api_endpoint), headers, json=body, cookies=cookies)

    sse_data_frames = True  # parse() takes the usual event as its data (str)

    @classmethod
    def parse(cls, frame: Any, reply: Reply) -> Any:
        if type(frame) is RawEvent:
            return _big_event(cls.__name__, frame, reply)
        return _event(cls.__name__, frame if type(frame) is str else frame.data, reply)

    @classmethod
    def end(cls, reply: Reply, tail: bytes) -> Any:
        raise StreamInterruptedError(f"{cls.__name__}: the stream ended without its 'end' event", provider=cls.__name__)


def _event(name: str, data: str, reply: Reply) -> Any:
    """What one event's data means: a piece of text, the end, or an error."""
    try:
        event = _framing.loads(data)
    except (ValueError, RecursionError):
        event = _UNREAD
    if event is _UNREAD:  # (outside the except block: no context that keeps the frame)
        event = loads_frame(data, provider=name, redact=reply.redact)  # raises, showing it
    kind = event.get("type") if type(event) is dict else None
    if kind == "live":
        piece = event.get("data")
        if type(piece) is not str:
            shown = preview(data, reply.redact)
            raise ProtocolError(f"{name}: a live event without text: {shown!r}", provider=name, frame=shown)
        return piece or None
    if kind == "end":
        final = _final_reply(name, event.get("data"), reply)
        reply.done = True
        return _end(name, reply, iter((final,)), lambda: final)
    if kind == "error":
        message = reply.redact_value(event.get("data"))
        raise ResponseError(
            f"{name}: the upstream reported an error: {preview(message)}", provider=name, error=message
        )
    return None


def _final_reply(name: str, data: Any, reply: Reply) -> str:
    """The ``reply`` inside an ``end`` event, whose ``data`` is itself a JSON string."""
    final = loads_frame(data, provider=name, redact=reply.redact) if isinstance(data, str) else data
    text = final.get("reply") if isinstance(final, dict) else None
    if not isinstance(text, str):
        shown = preview(data, reply.redact)
        raise ProtocolError(f"{name}: an end event without a reply: {shown!r}", provider=name, frame=shown)
    return text


def _end(name: str, reply: Reply, final: Iterator[str], whole: Callable[[], str]) -> Iterator[Any]:
    """Reconcile the final reply (in pieces) with the streamed text: deliver the part
    that extends it, then :class:`Finish`; :class:`ReplyMismatchError` if it contradicts
    it (``whole()`` gives the final reply for the error). Neither text is held whole: both
    are compared block by block, and nothing is delivered before the streamed text has
    matched."""
    streamed: Optional[Iterator[str]] = _blocks(reply.record.pieces())
    pending = ""  # streamed text not matched yet
    for piece in final:
        while piece and (pending or streamed is not None):
            if not pending:
                pending = next(streamed, "") if streamed is not None else ""
                if not pending:
                    streamed = None  # the streamed text is used up: the rest is new
                    break
            size = min(len(pending), len(piece))
            if pending[:size] != piece[:size]:
                raise _mismatch(name, reply, whole)
            pending, piece = pending[size:], piece[size:]
        if piece:
            yield piece
    if pending or (streamed is not None and next(streamed, "")):
        raise _mismatch(name, reply, whole)  # the final reply is shorter than the streamed text
    yield Finish("stop")


def _blocks(pieces: Iterator[str]) -> Iterator[str]:
    for piece in pieces:
        for start in range(0, len(piece), _COMPARE_BLOCK):
            yield piece[start : start + _COMPARE_BLOCK]


def _mismatch(name: str, reply: Reply, whole: Callable[[], str]) -> ReplyMismatchError:
    text = whole()
    return ReplyMismatchError(
        f"{name}: the final reply contradicts the streamed text ({len(reply.record)} characters were "
        f"streamed; the final reply has {len(text)}); the final reply is in .reply",
        provider=name,
        reply=text,
    )


def _big_event(name: str, frame: RawEvent, reply: Reply) -> Any:
    """An event too big to decode whole (in this protocol, only an ``end`` event repeats
    a whole reply): its reply is decoded piecewise and reconciled with the streamed text."""
    from .._jsonstream import string_field, top_level_fields  # (only big events need it)

    fields: Dict[str, Any] = {}
    data = string_field(frame.pieces(), "data", fields)
    first = _checked(name, frame, reply, lambda: next(data, None))  # reading to the data tells the fields before it
    if "type" not in fields:  # the type comes after the data: one quick pass over the event finds it
        fields = _checked(name, frame, reply, lambda: top_level_fields(frame.pieces()))
    if fields.get("type") != "end":
        return _event(name, frame.data, reply)  # not an end event: the usual way
    reply.done = True
    pieces = _translated(name, frame, reply, string_field(_chain(first, data), "reply"))
    return _end(name, reply, pieces, lambda: _final_reply(name, json.loads(frame.data).get("data"), reply))


def _checked(name: str, frame: RawEvent, reply: Reply, step: Callable[[], Any]) -> Any:
    from .._jsonstream import JSONStreamError

    try:
        return step()
    except JSONStreamError as exc:
        raise _malformed(name, frame, reply, exc) from None


def _translated(name: str, frame: RawEvent, reply: Reply, pieces: Iterator[str]) -> Iterator[str]:
    """``pieces``, with a malformed event reported as a :class:`ProtocolError`."""
    while True:
        piece = _checked(name, frame, reply, lambda: next(pieces, None))
        if piece is None:
            return
        yield piece


def _malformed(name: str, frame: RawEvent, reply: Reply, exc: Exception) -> ProtocolError:
    shown = preview(b"".join(_head(frame.pieces(), 4096)), reply.redact)
    return ProtocolError(f"{name}: a malformed end event ({exc}): {shown!r}", provider=name, frame=shown)


def _chain(first: Any, rest: Iterator[str]) -> Iterator[str]:
    if first is not None:
        yield first
    yield from rest


def _head(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    for piece in pieces:
        yield piece[:size]
        size -= len(piece)
        if size <= 0:
            return
