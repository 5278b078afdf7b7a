"""OpenAI-compatible servers: the chat-completions protocol, streamed (SSE) or whole (JSON).

Many servers speak it today (llama.cpp's ``llama-server``, vLLM, Ollama's ``/v1``, LM
Studio, OpenAI itself). :class:`OpenAICompatible` talks to any of them: ``base_url`` is
the API root, as in openai-python (``http://localhost:8080/v1``), and the endpoints are
``{base_url}/chat/completions`` and ``{base_url}/models``. A provider for one service
subclasses it and sets a default ``base_url``, or, like :class:`Ylokh`, an ``api_root``.

The key comes from ``api_key=`` or the ``LLMPROVIDERS_API_KEY`` environment variable,
never from ``OPENAI_API_KEY``: a user's OpenAI key must not go to whatever server
``base_url`` names. It is sent as ``Authorization: Bearer <key>`` and never appears in
logs or error messages (an upstream that echoes it back has it masked).

Example usage::

    from llmproviders import OpenAICompatible

    for delta in OpenAICompatible.create_completion(
        "llama3", messages, base_url="http://localhost:11434/v1", temperature=0.2
    ):
        print(delta, end="", flush=True)
    OpenAICompatible.get_models(base_url="http://localhost:11434/v1")   # ['llama3', ...]
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, ClassVar, Dict, Iterator, List, Mapping, Optional, Tuple

import requests

from .._exceptions import (
    InvalidArgumentError,
    LLMProvidersError,
    ProtocolError,
    ResponseError,
    ResponseStatusError,
    StreamInterruptedError,
)
from .._framing import iter_sse, loads_frame
from .._http import Call, TimeoutArg, excerpt
from .._messages import Messages
from .._provider import BASE_URL_ENV, Provider
from .._stream import Stream

__all__ = ["OpenAICompatible", "API_KEY_ENV", "SAMPLING_OPTIONS"]

#: Environment variable with the key for OpenAI-compatible servers (``api_key=`` wins).
API_KEY_ENV = "LLMPROVIDERS_API_KEY"
#: Request fields passed through when given. ``n`` is not among them: several choices
#: cannot share one stream of deltas.
SAMPLING_OPTIONS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "response_format",
        "stream_options",
    }
)
MASK = "[redacted]"


class OpenAICompatible(Provider):
    """Any server that speaks OpenAI's chat-completions protocol.

    Needs a ``base_url`` (the call's, the class's, or ``LLMPROVIDERS_BASE_URL``) and a
    ``model``. Options: the sampling fields of :data:`SAMPLING_OPTIONS`, sent only when
    given; ``api_key`` (else ``LLMPROVIDERS_API_KEY``); ``extra_headers``, a dict of
    request headers. ``finish_reason``, ``usage``, ``id``, ``created``, ``model`` and
    ``system_fingerprint`` end up in ``Stream.metadata``.
    """

    url = "https://platform.openai.com/docs/api-reference/chat"
    working = True
    supports_message_history = True
    supports_system_message = True
    options = SAMPLING_OPTIONS | {"api_key", "extra_headers"}

    #: A service's own API root (``https://host/v1``), for a subclass that has one. With
    #: it, no ``base_url`` is needed, and a ``base_url`` is a mirror host whose paths are
    #: joined as for every provider (so a server root and its ``/v1`` both work). Without
    #: it, ``base_url`` is required and is the API root itself.
    api_root: ClassVar[Optional[str]] = None
    #: Where the key comes from when the call gives none (None: only ``api_key=``).
    api_key_env: ClassVar[Optional[str]] = API_KEY_ENV
    #: Request headers of the service (a subclass's ``Origin``, for example).
    default_headers: ClassVar[Dict[str, str]] = {}
    #: Request fields the service expects besides ``messages``, ``model`` and ``stream``.
    body_defaults: ClassVar[Dict[str, Any]] = {}

    @classmethod
    def create_completion(
        cls, model: Optional[str], messages: Messages, *, base_url: Optional[str] = None, **kwargs: Any
    ) -> Stream:
        """As :meth:`Provider.create_completion`; without a server to talk to, or with
        an unusable ``api_key``/``extra_headers``, raises :class:`InvalidArgumentError`
        before anything else happens."""
        cls._api_base(base_url)
        _check_credentials(kwargs.get("api_key"), kwargs.get("extra_headers"))
        return super().create_completion(model, messages, base_url=base_url, **kwargs)

    @classmethod
    def get_models(
        cls, base_url: Optional[str] = None, api_key: Optional[str] = None, timeout: TimeoutArg = None
    ) -> List[str]:
        """The ids of the models the server lists (``GET {base_url}/models``).

        Only a configured server is asked (``base_url``, the class attribute, or
        ``LLMPROVIDERS_BASE_URL``); without one this is the static :attr:`models`
        (empty: any name is accepted), so looking providers up never goes online.
        """
        target = cls.resolve_base_url(base_url)
        if target is None:
            return list(cls.models)
        _check_credentials(api_key, None)
        call = Call(cls, base_url=target, timeout=timeout, default_timeout=cls.default_timeout)
        key = cls._api_key(api_key)
        headers = cls._headers(key, None, accept="application/json")
        with _guarded(cls, key), call.open(cls._endpoint(call, "models"), headers=headers, method="GET") as response:
            listing = call.read_json(response)
        _raise_if_error(cls.__name__, listing)
        try:
            return [str(item["id"]) for item in listing["data"]]
        except (KeyError, TypeError) as exc:
            shown = excerpt(str(listing))
            raise ProtocolError(f"{cls.__name__}: not a model list: {shown!r}", provider=cls.__name__, frame=shown) from exc

    @classmethod
    def _has_whole_reply_mode(cls) -> bool:
        return True

    @classmethod
    def _generate(
        cls,
        call: Call,
        model: str,
        messages: List[Dict[str, Any]],
        *,
        stream: bool,
        api_key: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        **sampling: Any,
    ) -> Iterator[str]:
        key = cls._api_key(api_key)
        headers = cls._headers(key, extra_headers, accept="text/event-stream" if stream else "application/json")
        body = {"messages": messages, "model": model, **cls.body_defaults, "stream": stream, **sampling}
        with _guarded(cls, key), call.open(cls._endpoint(call, "chat/completions"), headers=headers, json_body=body) as response:
            if "json" in response.headers.get("Content-Type", "").lower():
                # A whole completion: asked for, or sent by a server that ignores "stream".
                yield from _read_completion(cls.__name__, call, response)
            else:
                yield from _read_chunks(cls.__name__, call, response)

    # -- hooks and helpers ---------------------------------------------------------

    @classmethod
    def _api_base(cls, base_url: Optional[str]) -> Optional[str]:
        """The base URL the call will use; :class:`InvalidArgumentError` if there is
        none and the class has no :attr:`api_root` of its own."""
        target = cls.resolve_base_url(base_url)
        if target is None and cls.api_root is None:
            raise InvalidArgumentError(
                f"{cls.__name__} needs the server's API root: pass base_url='http://host:port/v1' "
                f"(command line: --base-url), or set the {BASE_URL_ENV} environment variable"
            )
        return target

    @classmethod
    def _endpoint(cls, call: Call, path: str) -> str:
        """The URL of ``path`` (``"chat/completions"``, ``"models"``) for this call."""
        if cls.api_root is not None:
            return call.url(f"{cls.api_root}/{path}")
        return f"{call.base_url}/{path}"

    @classmethod
    def _api_key(cls, api_key: Optional[str]) -> Optional[str]:
        if api_key is not None:
            return api_key
        key = os.environ.get(cls.api_key_env) if cls.api_key_env else None
        if key:
            _check_credentials(key, None)
        return key or None

    @classmethod
    def _headers(cls, key: Optional[str], extra: Optional[Mapping[str, str]], *, accept: str) -> Dict[str, str]:
        headers = {
            **cls.default_headers,
            "Content-Type": "application/json",
            "Accept": accept,
            # Streamed replies must not sit behind a compressor: ask for the body as is.
            "Accept-Encoding": "identity",
        }
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(extra or {})
        return headers


def _check_credentials(api_key: Any, extra_headers: Any) -> None:
    """Refuse an unusable key or headers before any I/O (never showing the key)."""
    if api_key is not None and (
        not isinstance(api_key, str) or not api_key or not api_key.isprintable() or any(c.isspace() for c in api_key)
    ):
        raise InvalidArgumentError("api_key must be a non-empty string without spaces or control characters")
    if extra_headers is not None and (
        not isinstance(extra_headers, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra_headers.items())
    ):
        raise InvalidArgumentError("extra_headers must be a dict of str header names to str values")


@contextmanager
def _guarded(provider: type, key: Optional[str]) -> Iterator[None]:
    """Mask ``key`` in errors raised inside (an upstream may echo it), and say what
    ``base_url`` should be when a generic server answers 404."""
    try:
        yield
    except LLMProvidersError as exc:
        if key:
            for name in ("message", "body", "frame"):
                value = getattr(exc, name, None)
                if isinstance(value, str):
                    setattr(exc, name, value.replace(key, MASK))
        if isinstance(exc, ResponseStatusError) and exc.status_code == 404 and getattr(provider, "api_root", None) is None:
            exc.message += " (base_url must be the API root that /chat/completions is under, usually ending in /v1)"
        exc.args = (exc.message,)
        raise


def _read_completion(name: str, call: Call, response: requests.Response) -> Iterator[str]:
    """The text of a whole ``chat.completion``; its facts go into ``call.metadata``."""
    completion = call.read_json(response)
    _raise_if_error(name, completion)
    try:
        choice = completion["choices"][0]
        content = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as exc:
        shown = excerpt(str(completion))
        raise ProtocolError(f"{name}: not a chat.completion: {shown!r}", provider=name, frame=shown) from exc
    if not isinstance(content, str):
        raise ProtocolError(f"{name}: message content is not text", provider=name)
    _note(call.metadata, completion)
    call.metadata["finish_reason"] = choice.get("finish_reason")
    if content:
        yield content


def _read_chunks(name: str, call: Call, response: requests.Response) -> Iterator[str]:
    """The deltas of a ``chat.completion.chunk`` stream, up to ``[DONE]``.

    A stream that ends without ``[DONE]`` is complete only if a chunk gave a
    ``finish_reason``; otherwise it was cut short. The usual chunk (a text delta) takes
    a short path; any other shape goes through the careful one, :func:`_delta`.
    """
    finished = False
    metadata = call.metadata
    loads = json.loads
    for data in iter_sse(call.body(response), provider=name, max_frame=call.max_frame, reading=call.reading()):
        if data == "[DONE]":
            return
        try:
            chunk = loads(data)
            choice = chunk["choices"][0]
            content = choice["delta"]["content"]
            finish_reason = choice["finish_reason"]
            if type(content) is not str or chunk.get("error"):
                raise LookupError  # not the usual shape: let the careful path judge it
        except Exception:  # noqa: BLE001  (JSON errors too: loads_frame reports them)
            chunk = loads_frame(data, provider=name)
            content, finish_reason = _delta(name, chunk, data)
        if finish_reason is not None:
            metadata["finish_reason"] = finish_reason
            finished = True
            _note(metadata, chunk)
        elif not metadata or chunk.get("usage") is not None:
            _note(metadata, chunk)  # the first chunk's id, created, model; a usage report
        if content:
            yield content
    if not finished:
        raise StreamInterruptedError(f"{name}: the stream ended without a finish_reason or [DONE]", provider=name)


def _raise_if_error(name: str, payload: Any) -> None:
    """An ``{"error": ...}`` payload, in a stream or as a body, is a :class:`ResponseError`."""
    if isinstance(payload, dict) and payload.get("error") not in (None, False, "", {}):
        error = payload["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ResponseError(f"{name}: the upstream reported an error: {excerpt(str(message))}", provider=name, error=error)


def _delta(name: str, chunk: Any, frame: str) -> Tuple[str, Any]:
    """``(choices[0].delta.content or "", choices[0].finish_reason)`` of a stream chunk
    (a chunk without choices, such as the final usage chunk, gives ``("", None)``)."""
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


def _note(metadata: Dict[str, Any], payload: Dict[str, Any]) -> None:
    """Keep the completion's id, created, model, usage and system_fingerprint, as reported."""
    for key in ("id", "created", "model", "usage", "system_fingerprint"):
        value = payload.get(key)
        if value is not None:
            metadata[key] = value
