"""Chatgpt4Online: a WordPress AI-engine chat. A nonce handshake, then Server-Sent Events."""

from __future__ import annotations

from json import loads
from typing import Any, Dict, Iterator, List

from .._exceptions import ProtocolError, ReplyMismatchError, ResponseError, StreamInterruptedError
from .._framing import iter_sse, loads_frame
from .._http import Call, excerpt
from .._messages import format_prompt
from .._provider import Provider, register_provider
from ._browser import CHROME_126, browser_headers

SESSION_PATH = "/wp-json/mwai/v1/start_session"


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
    #: The ``end`` event repeats the whole reply, so it may be as large as the reply.
    max_frame_size = 256 * 1024 * 1024

    @classmethod  # narrows **options to this provider's own (checked by the base first)
    def _generate(cls, call: Call, model: str, messages: List[Dict[str, Any]], *, stream: bool) -> Iterator[str]:  # type: ignore[override]
        name = cls.__name__
        headers = browser_headers(cls.url, user_agent=CHROME_126)
        with call.open(call.url(cls.url + SESSION_PATH), headers=headers) as response:
            session = call.read_json(response)
            cookies = response.cookies
        nonce = session.get("restNonce") if isinstance(session, dict) else None
        if not isinstance(nonce, str) or not nonce:
            raise ProtocolError(
                f"{name}: start_session returned no restNonce: {excerpt(str(session))!r}",
                provider=name,
                frame=excerpt(str(session)),
            )
        headers = browser_headers(cls.url, user_agent=CHROME_126, accept="text/event-stream")
        headers["x-wp-nonce"] = nonce
        body = {"botId": "default", "newMessage": format_prompt(messages), "stream": True}
        streamed: List[str] = []  # kept to reconcile with the final reply
        with call.open(call.url(cls.url + cls.api_endpoint), headers=headers, json_body=body, cookies=cookies) as response:
            for data in iter_sse(call.body(response), provider=name, max_frame=call.max_frame, reading=call.reading()):
                try:
                    event = loads(data)
                except ValueError:
                    event = loads_frame(data, provider=name)  # raises a ProtocolError showing it
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "live":
                    piece = event.get("data")
                    if not isinstance(piece, str):
                        raise ProtocolError(f"{name}: a live event without text: {excerpt(data)!r}", provider=name, frame=excerpt(data))
                    if piece:
                        streamed.append(piece)
                        yield piece
                elif kind == "end":
                    rest = _reconcile(name, "".join(streamed), _final_reply(name, event.get("data")))
                    call.metadata["finish_reason"] = "stop"
                    if rest:
                        yield rest
                    return
                elif kind == "error":
                    message = event.get("data")
                    raise ResponseError(f"{name}: the upstream reported an error: {excerpt(str(message))}", provider=name, error=message)
        raise StreamInterruptedError(f"{name}: the stream ended without its 'end' event", provider=name)


def _final_reply(name: str, data: Any) -> str:
    """The ``reply`` inside an ``end`` event, whose ``data`` is itself a JSON string."""
    final = loads_frame(data, provider=name) if isinstance(data, str) else data
    reply = final.get("reply") if isinstance(final, dict) else None
    if not isinstance(reply, str):
        raise ProtocolError(f"{name}: an end event without a reply: {excerpt(str(data))!r}", provider=name, frame=excerpt(str(data)))
    return reply


def _reconcile(name: str, streamed: str, reply: str) -> str:
    """What to yield after the stream so the caller ends with ``reply``, if that is possible."""
    if reply.startswith(streamed):
        return reply[len(streamed) :]
    raise ReplyMismatchError(
        f"{name}: the final reply contradicts the streamed text ({len(streamed)} characters were "
        f"streamed; the final reply has {len(reply)}); the final reply is in .reply",
        provider=name,
        reply=reply,
    )
