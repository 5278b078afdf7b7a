"""OpenAI's chat-completions protocol, as the servers that speak it send it today.

Request: ``POST {base_url}/chat/completions`` with ``{"model", "messages", "stream",
...options}``. Reply, streamed: SSE events, each a ``chat.completion.chunk`` whose
``choices[0].delta`` carries a piece of the answer (``content``), of the reasoning
(``reasoning_content``, or ``reasoning``, or ``<think>…</think>`` at the start of the
content), of a refusal, or tool-call fragments; ``finish_reason`` ends the choice, a
chunk with empty ``choices`` may carry ``usage`` (and llama.cpp's ``timings``), and
``data: [DONE]`` ends the stream. Reply, whole (``stream=False``): one
``chat.completion`` whose ``choices[0].message`` carries the same fields. An
``{"error": ...}`` payload is an error, in the stream or as the body.

Servers deviate (see the tool-call notes in :class:`_ToolCalls`); each deviation that is
seen in the wild is read as the server meant it. Many servers speak the protocol:
llama.cpp's ``llama-server``, vLLM, Ollama's ``/v1``, LM Studio, OpenAI, DeepSeek.
:class:`OpenAICompatible` talks to any of them: ``base_url`` is the API root, as in
openai-python (``http://localhost:8080/v1``). A provider for one service subclasses it
and sets a default ``base_url``, or, like :class:`Ylokh`, an ``api_root``.

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
import re
from typing import Any, ClassVar, Dict, List, Optional

from .._exceptions import (
    ContextWindowExceededError,
    InvalidArgumentError,
    LLMProvidersError,
    ProtocolError,
    ResponseError,
    ResponseStatusError,
    StreamInterruptedError,
)
from .._framing import decoder, loads_frame, preview
from .._http import Call, TimeoutArg, excerpt, remembered
from .._options import AnyOf, Flag, Headers, Integer, ListOf, Number, Object, Option, Secret, Text, Tools
from .._provider import BASE_URL_ENV, Provider, Request
from .._reply import Reply
from .._secrets import Secrets
from ..events import Finish, ReasoningDelta, RefusalDelta, ToolCallDelta, Usage

__all__ = ["OpenAICompatible", "API_KEY_ENV", "SAMPLING_OPTIONS"]

#: Environment variable with the key for OpenAI-compatible servers (``api_key=`` wins).
API_KEY_ENV = "LLMPROVIDERS_API_KEY"

#: Request fields passed through when given, with their checks.
REQUEST_OPTIONS: Dict[str, Option] = {
    "temperature": Number(0, 2),
    "top_p": Number(0, 1),
    "max_tokens": Integer(1),
    "max_completion_tokens": Integer(1),
    "stop": AnyOf(Text(), ListOf(Text(), min_length=1)),
    "seed": Integer(),
    "presence_penalty": Number(-2, 2),
    "frequency_penalty": Number(-2, 2),
    "logit_bias": Object(Number(-100, 100)),
    "user": Text(),
    "response_format": Object(),
    "stream_options": Object(),
    "tools": Tools(),
    "tool_choice": AnyOf(Text(("none", "auto", "required")), Object()),
    "parallel_tool_calls": Flag(),
    "reasoning_effort": Text(),
    "logprobs": Flag(),
    "top_logprobs": Integer(0, 20),
    "n": Integer(1, 1, expected="1 (one stream holds one choice; make several calls for several answers)"),
}
#: The sampling fields (a name kept from earlier versions).
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
#: Options that shape the call but are not request fields.
CALL_OPTIONS: Dict[str, Option] = {
    "api_key": Secret(),
    "extra_headers": Headers(),
    "extra_body": Object(),
    "think_tags": Flag(),
}
_NOT_IN_BODY = frozenset(CALL_OPTIONS)
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_UNREAD: Any = object()


class OpenAICompatible(Provider):
    """Any server that speaks OpenAI's chat-completions protocol.

    Needs a ``base_url`` (the call's, the class's, or ``LLMPROVIDERS_BASE_URL``) and a
    ``model``. A ``base_url`` without a path gets ``/v1`` (so one
    ``LLMPROVIDERS_BASE_URL=http://host:port`` serves every provider). Options: the
    request fields of :data:`REQUEST_OPTIONS` (sampling, ``tools``, ``tool_choice``,
    ``reasoning_effort``, ``logprobs``, ``response_format``, ...), each checked and sent
    only when given; ``extra_body`` (a dict merged last into the JSON body, for
    server-specific fields such as ``chat_template_kwargs`` or ``top_k``); ``api_key``
    (else ``LLMPROVIDERS_API_KEY``); ``extra_headers``; ``think_tags=False`` to keep a
    leading ``<think>…</think>`` in the text instead of reading it as reasoning.
    """

    url = "https://platform.openai.com/docs/api-reference/chat"
    working = True
    supports_message_history = True
    supports_system_message = True
    options = {**REQUEST_OPTIONS, **CALL_OPTIONS}
    framing = "sse"

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

    # -- checking, before any I/O --------------------------------------------------------

    @classmethod
    def check_target(cls, base_url: Optional[str]) -> Optional[str]:
        if base_url is None and cls.api_root is None:
            raise InvalidArgumentError(
                f"{cls.__name__} needs the server's API root: pass base_url='http://host:port/v1' "
                f"(command line: --base-url), or set the {BASE_URL_ENV} environment variable"
            )
        return base_url

    @classmethod
    def _prepare(cls, model: Optional[str], messages: Any, **kwargs: Any) -> Any:
        options = kwargs["options"]
        if "api_key" not in options:
            key = cls._env_key()
            if key is not None:
                options = {**options, "api_key": key}  # checked, and kept secret, like a given one
        kwargs["options"] = options
        return super()._prepare(model, messages, **kwargs)

    @classmethod
    def _env_key(cls) -> Optional[str]:
        return (os.environ.get(cls.api_key_env) or None) if cls.api_key_env else None

    # -- the request --------------------------------------------------------------------

    @classmethod
    def build_request(
        cls, call: Call, model: str, messages: List[Dict[str, Any]], options: Dict[str, Any], *, stream: bool
    ) -> Request:
        fields = {name: value for name, value in options.items() if name not in _NOT_IN_BODY}
        body = {
            "messages": [_outgoing(m) for m in messages],
            "model": model,
            **cls.body_defaults,
            "stream": stream,
            **fields,
            **options.get("extra_body", {}),
        }
        headers = cls._headers(options.get("api_key"), options.get("extra_headers"), stream=stream)
        return Request(cls._endpoint(call, "chat/completions"), headers, json=body)

    @classmethod
    def _endpoint(cls, call: Call, path: str) -> str:
        """The URL of ``path`` (``"chat/completions"``, ``"models"``) for this call."""
        if cls.api_root is not None:
            return call.url(f"{cls.api_root}/{path}")
        return _under(call.base_url or "", path)

    @classmethod
    def _headers(cls, key: Optional[str], extra: Optional[Dict[str, str]], *, stream: bool) -> Dict[str, str]:
        headers = {
            **cls.default_headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            # Streamed replies must not sit behind a compressor: ask for the body as is.
            "Accept-Encoding": "identity",
        }
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(extra or {})
        return headers

    # -- the reply ----------------------------------------------------------------------

    @classmethod
    def new_state(cls, options: Dict[str, Any], *, stream: bool) -> "_State":
        return _State(options.get("think_tags", True))

    @classmethod
    def framing_for(cls, headers: Any, reply: Reply) -> str:
        if "json" in headers.get("Content-Type", "").lower():
            reply.state.whole = True  # a whole completion: asked for, or sent by a server that ignores "stream"
            return "json"
        return "sse"

    sse_data_frames = True  # parse() takes the usual event as its data (str)

    @classmethod
    def parse(cls, frame: Any, reply: Reply) -> Any:
        state: _State = reply.state
        if state.whole:
            return _completion_items(cls.__name__, frame, reply)
        data = frame if type(frame) is str else frame.data  # (the usual event is its data)
        if data == "[DONE]":  # (not JSON: said before a decoder fails on it)
            reply.done = True
            return state.flush(reply)
        chunk: Any = _UNREAD
        try:  # the usual chunk, a piece of text and nothing else, takes the short way
            chunk = state.loads(data)
            choices = chunk["choices"]
            choice = choices[0]
            delta = choice["delta"]
            content = delta["content"]
            if (
                type(content) is str
                and len(delta) == 1
                and state.plain
                and choice["finish_reason"] is None
                and len(choices) == 1
                and choice.get("index", 0) == state.choice  # (a second choice, one per chunk: the careful way)
                and chunk.get("usage") is None
                and choice.get("logprobs") is None
                and "error" not in chunk
            ):
                return content or None
        except Exception:  # noqa: BLE001  (any other shape, or not JSON: the careful way judges it)
            pass  # (judged outside this block, so no error raised there keeps the frame as context)
        named_error = type(frame) is not str and frame.event == "error"
        if chunk is _UNREAD:
            if named_error:
                _event_error(cls.__name__, data, reply)
            chunk = loads_frame(data, provider=cls.__name__, redact=reply.redact)
        if named_error:
            _event_error(cls.__name__, data, reply)
        return _chunk_items(cls.__name__, chunk, data, reply)

    @classmethod
    def end(cls, reply: Reply, tail: bytes) -> Any:
        """A stream is complete at ``[DONE]``, or when a ``finish_reason`` arrived and the
        body then ended (some servers end right after ``data: [DONE]`` with no blank line)."""
        if reply.state.whole:
            return None
        cut_done = tail.strip() in (b"data: [DONE]", b"data:[DONE]")
        if reply.finished and (not tail or cut_done):
            return reply.state.flush(reply)
        raise StreamInterruptedError(
            f"{cls.__name__}: the stream ended without a finish_reason or [DONE]", provider=cls.__name__
        )

    @classmethod
    def status_error(cls, error: ResponseStatusError, payload: Any) -> Optional[LLMProvidersError]:
        """The error for a non-2xx answer when it says more than its status: a context
        overflow (never retried), or a 404 from a generic server (a wrong ``base_url``)."""
        overflow = _overflow(cls.__name__, payload, error.status_code)
        if overflow is not None:
            return overflow
        if error.status_code == 404 and cls.api_root is None:
            return ResponseStatusError(
                f"{error.message} (base_url must be the API root that /chat/completions is under, usually ending in /v1)",
                provider=error.provider,
                status_code=error.status_code,
                body=error.body,
                headers=error.headers,
                url=error.url,
            )
        return None

    # -- models -------------------------------------------------------------------------

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
        return [str(item["id"]) for item in cls.list_models(target, api_key, timeout)]

    @classmethod
    def list_models(
        cls, base_url: Optional[str] = None, api_key: Optional[str] = None, timeout: TimeoutArg = None
    ) -> List[Dict[str, Any]]:
        """The server's model objects (``GET {base_url}/models``: ``id``, ``created``,
        ``owned_by``, ...), each with at least an ``id``."""
        target = cls.check_target(cls.resolve_base_url(base_url))
        key = api_key if api_key is not None else cls._env_key()
        if key is not None:
            CALL_OPTIONS["api_key"].check(cls.__name__, "api_key", key)
        secrets = Secrets.of({"api_key": key} if key else {}, target, None)
        call = Call(
            cls,
            base_url=target,
            timeout=timeout,
            default_timeout=cls.default_timeout,
            redact=secrets.redact if secrets else None,
            status_error=cls.status_error,
        )
        headers = cls._headers(key, None, stream=False)
        with call.open(cls._endpoint(call, "models"), headers=headers, method="GET") as exchange:
            listing = exchange.read_json()
        if isinstance(listing, dict) and listing.get("error") not in (None, False, "", {}):
            _raise_error(cls.__name__, secrets.redact_value(listing), None)
        items = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
            shown = preview(listing, secrets.redact)
            raise ProtocolError(f"{cls.__name__}: not a model list: {shown!r}", provider=cls.__name__, frame=shown)
        return items


@remembered
def _under(root: str, path: str) -> str:
    """``root`` (an API root, maybe with a query) joined with ``path``; a root without a
    path gets ``/v1``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(root)
    prefix = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, f"{prefix}/{path}", parts.query, ""))


def _outgoing(message: Dict[str, Any]) -> Dict[str, Any]:
    """A history message as it is sent (the library's own ``partial`` mark stays home)."""
    if "partial" in message:
        message = {k: v for k, v in message.items() if k != "partial"}
    return message


class _State:
    """One attempt's parsing state: think tags, tool-call numbering, choice index."""

    __slots__ = ("think_tags", "mode", "pending", "plain", "whole", "choice", "calls", "loads")

    def __init__(self, think_tags: bool) -> None:
        self.loads = decoder()
        self.think_tags = think_tags
        self.mode = "start" if think_tags else "text"  # start -> (think -> after ->) text
        self.pending = ""  # content held back: a tag may be split across chunks
        self.plain = False  # content can go straight to the caller (set after the first chunk)
        self.whole = False  # a whole completion, not a stream
        self.choice: Optional[int] = None  # the index of the one choice
        self.calls = _ToolCalls()

    def content(self, text: str) -> List[Any]:
        """Split ``text`` (the next piece of ``content``) into answer and reasoning."""
        if self.mode == "text":
            return [text] if text else []
        self.pending += text
        out: List[Any] = []
        if self.mode == "start":
            stripped = self.pending.lstrip()
            if stripped.startswith(_THINK_OPEN):
                self.mode, self.pending = "think", stripped[len(_THINK_OPEN) :]
            elif _THINK_OPEN.startswith(stripped):
                return out  # "", "  ", "<th": wait for more
            else:
                self.mode = "text"
                text, self.pending = self.pending, ""
                return [text]
        if self.mode == "think":
            end = self.pending.find(_THINK_CLOSE)
            if end < 0:
                keep = _partial_tag(self.pending, _THINK_CLOSE)
                thought = self.pending[: len(self.pending) - keep]
                self.pending = self.pending[len(self.pending) - keep :]
                if thought:
                    out.append(ReasoningDelta(thought))
                return out
            if end:
                out.append(ReasoningDelta(self.pending[:end]))
            self.mode, self.pending = "after", self.pending[end + len(_THINK_CLOSE) :]
        if self.mode == "after":  # the blank line between the thinking and the answer
            self.pending = self.pending.lstrip()
            if self.pending:
                self.mode = "text"
                out.append(self.pending)
                self.pending = ""
        return out

    def flush(self, reply: Reply) -> List[Any]:
        """The end of the reply: what a tag split held back."""
        held, self.pending = self.pending, ""
        if not held:
            return []
        if self.mode == "think":
            return [ReasoningDelta(held)]  # the reply ended inside the think block
        if self.mode == "start":
            return [held]
        return []


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class _ToolCalls:
    """Numbers tool-call fragments as the calls they belong to, whatever the server's
    dialect. The normal shape: the first fragment of a call has ``index``, ``id``, ``type``
    and ``function.name``; later ones ``index`` and pieces of ``function.arguments``.
    Deviations seen in the wild, all read as meant:

    - no ``index`` (Gemini): a fragment with a new ``id`` starts a call, one without
      continues the last call;
    - ``index: 0`` reused for a second call with a new ``id`` (vLLM, sglang);
    - the first index is 1; calls interleaved; a whole call in one fragment (Ollama);
    - ``arguments`` as a JSON object instead of a string (some proxies);
    - ``id`` and ``name`` repeated on every fragment (llama-cpp-python): the same ``id``
      continues the call and the name is not taken twice.

    Calls are numbered 0, 1, ... in the order they start.
    """

    __slots__ = ("by_wire", "ids", "names", "last")

    def __init__(self) -> None:
        self.by_wire: Dict[int, int] = {}  # the server's index -> ours
        self.ids: List[Optional[str]] = []  # per call (ours)
        self.names: List[Optional[str]] = []
        self.last: Optional[int] = None

    def fragment(self, name: str, item: Any, reply: Reply) -> ToolCallDelta:
        if not isinstance(item, dict):
            raise _bad(name, "a tool call that is not an object", item, reply)
        wire = item.get("index")
        if wire is not None and (not isinstance(wire, int) or isinstance(wire, bool)):
            raise _bad(name, "a tool call whose index is not a number", item, reply)
        call_id = item.get("id") or None
        if call_id is not None and not isinstance(call_id, str):
            raise _bad(name, "a tool call whose id is not a string", item, reply)
        function = item.get("function") or {}
        if not isinstance(function, dict):
            raise _bad(name, "a tool call whose function is not an object", item, reply)
        fn_name = function.get("name") or None
        if fn_name is not None and not isinstance(fn_name, str):
            raise _bad(name, "a tool call whose name is not a string", item, reply)
        arguments = function.get("arguments")
        if arguments is None:
            arguments = ""
        elif isinstance(arguments, (dict, list)):
            arguments = json.dumps(arguments, ensure_ascii=False)
        elif not isinstance(arguments, str):
            raise _bad(name, "tool-call arguments that are neither text nor an object", item, reply)
        index = self._which(wire, call_id)
        known_id, known_name = self.ids[index], self.names[index]
        if call_id is not None and known_id is None:
            self.ids[index] = call_id
        if fn_name is not None and known_name is None:
            self.names[index] = fn_name
        self.last = index
        return ToolCallDelta(
            index,
            call_id if known_id is None else None,
            fn_name if known_name is None else None,
            arguments,
        )

    def _which(self, wire: Optional[int], call_id: Optional[str]) -> int:
        if wire is None:
            last = self.last
            if last is None or (call_id is not None and self.ids[last] is not None and call_id != self.ids[last]):
                return self._new(None)
            return last
        current = self.by_wire.get(wire)
        if current is None or (call_id is not None and self.ids[current] is not None and call_id != self.ids[current]):
            return self._new(wire)
        return current

    def _new(self, wire: Optional[int]) -> int:
        index = len(self.ids)
        self.ids.append(None)
        self.names.append(None)
        if wire is not None:
            self.by_wire[wire] = index
        return index


def _chunk_items(name: str, chunk: Any, data: str, reply: Reply) -> List[Any]:
    """Everything one ``chat.completion.chunk`` says, as items (the careful way)."""
    if not isinstance(chunk, dict):
        raise _bad(name, "not a chat.completion.chunk", data, reply)
    _raise_if_error(name, chunk, reply)
    state: _State = reply.state
    _note(chunk, reply)
    items: List[Any] = []
    choices = chunk.get("choices")
    if choices is None:
        choices = []
    if not isinstance(choices, list):
        raise _bad(name, "not a chat.completion.chunk", data, reply)
    if choices:
        choice = _one_choice(name, choices, reply)
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        if not isinstance(delta, dict):
            raise _bad(name, "a delta that is not an object", data, reply)
        items += _message_items(name, delta, reply)
        _logprobs(choice, reply)
        state.plain = state.mode == "text"
        finish = choice.get("finish_reason")
        if finish is not None:
            items += state.flush(reply)
            items.append(Finish(finish if isinstance(finish, str) else str(finish)))
    usage = Usage.from_dict(chunk.get("usage"))
    if usage is not None:
        items.append(usage)
    return items


def _completion_items(name: str, completion: Any, reply: Reply) -> List[Any]:
    """Everything a whole ``chat.completion`` says, as items."""
    if not isinstance(completion, dict):
        raise _bad(name, "not a chat.completion", completion, reply)
    _raise_if_error(name, completion, reply)
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _bad(name, "not a chat.completion", completion, reply)
    _note(completion, reply)
    choice = _one_choice(name, choices, reply)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _bad(name, "a choice without a message", completion, reply)
    state: _State = reply.state
    items = _message_items(name, message, reply)
    items += state.flush(reply)
    _logprobs(choice, reply)
    finish = choice.get("finish_reason")
    items.append(Finish(finish if isinstance(finish, str) or finish is None else str(finish)))
    usage = Usage.from_dict(completion.get("usage"))
    if usage is not None:
        items.append(usage)
    reply.done = True
    return items


def _message_items(name: str, delta: Dict[str, Any], reply: Reply) -> List[Any]:
    """A delta's (or a whole message's) reasoning, content, refusal and tool calls."""
    state: _State = reply.state
    items: List[Any] = []
    reasoning = delta.get("reasoning_content")
    if not reasoning:
        reasoning = delta.get("reasoning")
    if reasoning:
        if not isinstance(reasoning, str):
            raise _bad(name, "reasoning that is not text", delta, reply)
        items.append(ReasoningDelta(reasoning))
    content = delta.get("content")
    if content:
        if not isinstance(content, str):
            raise _bad(name, "content that is not text", delta, reply)
        items += state.content(content)
    refusal = delta.get("refusal")
    if refusal:
        if not isinstance(refusal, str):
            raise _bad(name, "a refusal that is not text", delta, reply)
        items.append(RefusalDelta(refusal))
    calls = delta.get("tool_calls")
    if calls:
        if not isinstance(calls, list):
            raise _bad(name, "tool_calls that are not a list", delta, reply)
        items += [state.calls.fragment(name, item, reply) for item in calls]
    elif delta.get("function_call"):  # the legacy single-function shape, alone
        items.append(state.calls.fragment(name, {"index": 0, "function": delta["function_call"]}, reply))
    return items


def _one_choice(name: str, choices: List[Any], reply: Reply) -> Dict[str, Any]:
    """The one choice a stream may hold (several are an error: ask for ``n=1``)."""
    state: _State = reply.state
    if not all(isinstance(c, dict) and _index_of(c) is not None for c in choices):
        raise _bad(name, "a choice that is not an object with a whole-number index", choices, reply)
    indices = {_index_of(c) for c in choices}
    if state.choice is not None:
        indices.add(state.choice)
    if len(indices) > 1 or None in indices:
        raise ProtocolError(
            f"{name}: the server sent several choices (n > 1); one stream holds one choice: ask for n=1 "
            "and make several calls for several answers",
            provider=name,
        )
    choice: Dict[str, Any] = choices[0]
    state.choice = _index_of(choice)
    return choice


def _index_of(choice: Dict[str, Any]) -> Optional[int]:
    index = choice.get("index", 0)
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def _note(payload: Dict[str, Any], reply: Reply) -> None:
    """Keep the completion's id, created and model (as first reported), its
    system_fingerprint and llama.cpp's ``timings`` (the latest)."""
    metadata = reply.metadata
    for key in ("id", "created", "model"):
        value = payload.get(key)
        if value is not None and key not in metadata:
            metadata[key] = value
    for key in ("system_fingerprint", "timings"):
        value = payload.get(key)
        if value is not None:
            metadata[key] = value


def _logprobs(choice: Dict[str, Any], reply: Reply) -> None:
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        reply.logprobs.extend(logprobs["content"])


def _raise_if_error(name: str, payload: Dict[str, Any], reply: Reply) -> None:
    if payload.get("error") not in (None, False, "", {}):
        _raise_error(name, payload, reply)
    if payload.get("object") == "error":  # vLLM's older shape: the error object itself
        _raise_error(name, {"error": payload}, reply)


def _event_error(name: str, data: str, reply: Reply) -> None:
    """An ``event: error`` SSE event: its data is an error payload, an error object, or text."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        payload = _UNREAD
    if payload is _UNREAD:
        payload = {"message": data}
    if not (isinstance(payload, dict) and "error" in payload):
        payload = {"error": payload}
    _raise_error(name, payload, reply)


def _raise_error(name: str, payload: Dict[str, Any], reply: Optional[Reply]) -> None:
    """An ``{"error": ...}`` payload, in a stream or as the body: the matching error."""
    error = reply.redact_value(payload.get("error")) if reply is not None else payload.get("error")
    overflow = _overflow(name, {"error": error}, None)
    if overflow is not None:
        raise overflow
    message = error.get("message") if isinstance(error, dict) else error
    raise ResponseError(f"{name}: the upstream reported an error: {preview(message)}", provider=name, error=error)


# (compiled on first use: re caches them)
_MAX_CONTEXT = r"maximum context length is (\d+)"
_REQUESTED = r"(?:resulted in|requested|you requested|prompt (?:is|has)|messages have) (\d+) tokens"


def _overflow(name: str, payload: Any, status: Optional[int]) -> Optional[ContextWindowExceededError]:
    """A context-overflow error in llama.cpp's or OpenAI's shape, or None."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    kind, code = error.get("type"), error.get("code")
    text = error.get("message")
    message: str = text if isinstance(text, str) else ""
    if not (
        kind == "exceed_context_size_error"
        or code == "context_length_exceeded"
        or "maximum context length" in message
        or "exceeds the available context size" in message
    ):
        return None

    def number(value: Any) -> Optional[int]:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    n_prompt, n_ctx = number(error.get("n_prompt_tokens")), number(error.get("n_ctx"))
    found = re.search(_MAX_CONTEXT, message, re.I)
    if n_ctx is None and found:
        n_ctx = int(found.group(1))
    found = re.search(_REQUESTED, message, re.I)
    if n_prompt is None and found:
        n_prompt = int(found.group(1))
    sizes = f" ({n_prompt} prompt tokens, context of {n_ctx})" if n_prompt is not None and n_ctx is not None else ""
    return ContextWindowExceededError(
        f"{name}: the request does not fit the model's context window{sizes}: {excerpt(message)}; "
        "shorten the messages or use a model (or server setting) with a larger context",
        provider=name,
        n_prompt_tokens=n_prompt,
        n_ctx=n_ctx,
        status_code=status,
        error=error,
    )


def _bad(name: str, what: str, frame: Any, reply: Optional[Reply]) -> ProtocolError:
    shown = preview(frame, reply.redact if reply is not None else None)
    return ProtocolError(f"{name}: {what}: {shown!r}", provider=name, frame=shown)

