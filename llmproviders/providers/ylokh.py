"""Ylokh: the OpenAI chat-completions protocol, streamed (SSE) or whole (JSON)."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

from .._exceptions import ProtocolError, ResponseError, StreamInterruptedError
from .._framing import iter_sse, loads_frame
from .._http import Call, excerpt
from .._provider import Provider, register_provider

API_URL = "https://chatapi.ylokh.xyz/v1/chat/completions"


@register_provider
class Ylokh(Provider):
    """chat.ylokh.xyz (offline), an OpenAI-compatible chat-completions API.

    Any OpenAI-compatible server can stand in for it: pass ``base_url`` (its root, or
    its ``/v1`` root). Sampling options are sent as given; others are refused.
    """

    url = "https://chat.ylokh.xyz"
    working = False
    supports_message_history = True
    supports_gpt_35_turbo = True
    default_model = "gpt-3.5-turbo"
    options = frozenset(
        {"temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "stop", "seed", "user", "allow_fallback"}
    )

    @classmethod
    def _has_whole_reply_mode(cls) -> bool:
        return True

    @classmethod
    def _generate(cls, call: Call, model: str, messages: List[Dict[str, Any]], *, stream: bool, **options: Any) -> Iterator[str]:
        headers = {
            "Origin": "https://chat.ylokh.xyz",
            "Referer": "https://chat.ylokh.xyz/",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "Accept-Encoding": "identity",
        }
        body = {
            "messages": messages,
            "model": model,
            "temperature": 1,
            "presence_penalty": 0,
            "top_p": 1,
            "frequency_penalty": 0,
            "allow_fallback": True,
            "stream": stream,
            **options,
        }
        with call.open(call.url(API_URL), headers=headers, json_body=body) as response:
            if "json" in response.headers.get("Content-Type", "").lower():
                # A whole completion: asked for, or sent by a server that ignores "stream".
                completion = call.read_json(response)
                text = _message_content(cls.__name__, completion)
                _note(call.metadata, completion)
                call.metadata["finish_reason"] = completion["choices"][0].get("finish_reason")
                if text:
                    yield text
                return
            finished = False
            for data in iter_sse(call.iter_bytes(response), provider=cls.__name__):
                if data == "[DONE]":
                    return
                chunk = loads_frame(data, provider=cls.__name__)
                delta, finish_reason = _delta(cls.__name__, chunk, data)
                _note(call.metadata, chunk)
                if finish_reason is not None:
                    call.metadata["finish_reason"] = finish_reason
                    finished = True
                if delta:
                    yield delta
        if not finished:
            raise StreamInterruptedError(
                f"{cls.__name__}: the stream ended without a finish_reason or [DONE]", provider=cls.__name__
            )


def _raise_if_error(name: str, payload: Any) -> None:
    if isinstance(payload, dict) and payload.get("error") is not None:
        error = payload["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ResponseError(f"{name}: the upstream reported an error: {excerpt(str(message))}", provider=name, error=error)


def _delta(name: str, chunk: Any, frame: str) -> "tuple[str, Any]":
    """``(choices[0].delta.content or "", choices[0].finish_reason)`` of a stream chunk."""
    _raise_if_error(name, chunk)
    try:
        choice = chunk["choices"][0] if chunk["choices"] else {}
        content = (choice.get("delta") or {}).get("content") or ""
        finish_reason = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"{name}: not a chat.completion.chunk: {excerpt(frame)!r}", provider=name, frame=excerpt(frame)) from exc
    if not isinstance(content, str):
        raise ProtocolError(f"{name}: delta content is not text: {excerpt(frame)!r}", provider=name, frame=excerpt(frame))
    return content, finish_reason


def _message_content(name: str, completion: Any) -> str:
    """``choices[0].message.content`` of a whole chat.completion."""
    _raise_if_error(name, completion)
    try:
        content = completion["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as exc:
        shown = excerpt(str(completion))
        raise ProtocolError(f"{name}: not a chat.completion: {shown!r}", provider=name, frame=shown) from exc
    if not isinstance(content, str):
        raise ProtocolError(f"{name}: message content is not text", provider=name)
    return content


def _note(metadata: Dict[str, Any], payload: Dict[str, Any]) -> None:
    """Keep the completion's id, created, model and usage, as the upstream reports them."""
    for key in ("id", "created", "model", "usage"):
        value = payload.get(key)
        if value is not None:
            metadata[key] = value
