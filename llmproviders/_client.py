"""An OpenAI-style client over any provider: ``client.chat.completions.create(...)``.

Code written for openai-python's ``OpenAI`` client runs against every provider of
this package with few changes: the chunks and the completion have openai-python's
fields (see :mod:`llmproviders.types`). The facade adds no I/O of its own: it calls
the provider's :meth:`~llmproviders.Provider.create_completion` and dresses its text
deltas and ``Stream.metadata`` (``id``, ``created``, ``model``, ``finish_reason``,
``usage``, where the upstream reported them) as chunks.

Example usage::

    from llmproviders import Client, FlowGpt

    client = Client(provider=FlowGpt)
    for chunk in client.chat.completions.create(model="gpt-3.5-turbo", messages=messages, stream=True):
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    completion = client.chat.completions.create(model="gpt-3.5-turbo", messages=messages)
    print(completion.choices[0].message.content, completion.usage)
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, AsyncIterator, Dict, Iterator, List, Literal, Optional, Type, Union, overload

from ._completion import AnyProvider, check_provider, resolve_provider
from ._fallback import RetryProvider
from ._provider import get_provider, list_providers
from ._exceptions import InvalidArgumentError
from ._http import DEFAULT_TIMEOUT, TimeoutArg, check_base_url, check_proxy, random_string, redact_url, resolve_timeout
from ._messages import Messages
from ._stream import Stream
from .events import ReasoningDelta, RefusalDelta, TextDelta, ToolCallDelta
from .types import (
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    ChatCompletionObject,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChoiceLogprobs,
    ChunkChoice,
    CompletionUsage,
    Function,
    Model,
    ModelList,
)

__all__ = ["Client", "ChatCompletionStream", "AsyncChatCompletionStream", "Models"]

ProviderArg = Union[None, str, AnyProvider]


class Client:
    """OpenAI-style access to one provider (a class, a registered name, or a
    :class:`RetryProvider`).

    ``base_url``, ``api_key``, ``proxy`` and ``timeout`` apply to every call (``api_key``
    only to providers that take one, such as :class:`OpenAICompatible`); a call's own
    keyword arguments win. ``provider=None`` picks, per call, the first provider that
    lists the model.

    The arguments are checked here, not at the first call: a provider name must be
    registered and a class must be a provider (:class:`InvalidArgumentError`,
    :class:`ProviderNotFoundError`); ``base_url``, ``proxy`` and ``timeout`` follow the
    rules of a call; ``api_key`` is a non-empty string. ``repr()`` shows ``base_url``
    without credentials or query.
    """

    def __init__(
        self,
        provider: ProviderArg = None,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        proxy: Optional[str] = None,
        timeout: TimeoutArg = None,
    ) -> None:
        check_provider(provider)
        if base_url is not None:
            check_base_url(base_url)
        if proxy is not None:
            check_proxy(proxy)
        if timeout is not None:
            resolve_timeout(timeout, DEFAULT_TIMEOUT)
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise InvalidArgumentError(f"api_key must be a non-empty string, not {type(api_key).__name__}")
        self.provider = provider
        self.base_url = base_url
        self.proxy = proxy
        self.timeout = timeout
        self._api_key = api_key  # kept out of repr()
        self.chat = Chat(self)
        self.models = Models(self)

    def _options(self, options: Dict[str, Any], provider: Any = None) -> Dict[str, Any]:
        """The call's keyword arguments: the client's settings, then the call's own. The
        client's ``api_key`` goes only to providers that take one (a RetryProvider hands it
        on to those of its providers that do)."""
        defaults = {"base_url": self.base_url, "proxy": self.proxy, "timeout": self.timeout}
        if self._api_key is not None and _takes_api_key(provider):
            defaults["api_key"] = self._api_key
        return {**{key: value for key, value in defaults.items() if value is not None}, **options}

    def __repr__(self) -> str:
        provider = self.provider
        name = provider if isinstance(provider, str) or provider is None else getattr(provider, "__name__", provider)
        base_url = redact_url(self.base_url) if self.base_url is not None else None
        return f"<Client provider={name!r} base_url={base_url!r}>"


class Chat:
    """``client.chat``: holds :class:`Completions`."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)


class Completions:
    """``client.chat.completions``: :meth:`create` and :meth:`create_async`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @overload
    def create(
        self, *, messages: Messages, model: Optional[str] = None, stream: Literal[True], **options: Any
    ) -> "ChatCompletionStream": ...

    @overload
    def create(
        self, *, messages: Messages, model: Optional[str] = None, stream: Literal[False] = False, **options: Any
    ) -> ChatCompletionObject: ...

    @overload
    def create(
        self, *, messages: Messages, model: Optional[str] = None, stream: bool = False, **options: Any
    ) -> Union["ChatCompletionStream", ChatCompletionObject]: ...

    def create(
        self, *, messages: Messages, model: Optional[str] = None, stream: bool = False, **options: Any
    ) -> Union["ChatCompletionStream", ChatCompletionObject]:
        """A completion: with ``stream=True`` a :class:`ChatCompletionStream` of
        :class:`~llmproviders.types.ChatCompletionChunk`, otherwise a
        :class:`~llmproviders.types.ChatCompletionObject`. ``model=None`` is the
        provider's default. ``options`` go to the provider (``temperature``,
        ``timeout``, ...); everything is checked before any network I/O, and a stream
        sends its request when iteration starts."""
        deltas = self._start(model, messages, stream, options)
        if stream:
            return ChatCompletionStream(deltas)
        with deltas:
            text = "".join(deltas)
        return _completion(deltas, text)

    async def create_async(
        self, *, messages: Messages, model: Optional[str] = None, stream: bool = False, **options: Any
    ) -> Union["AsyncChatCompletionStream", ChatCompletionObject]:
        """The async form of :meth:`create`: awaited, a completion, or with
        ``stream=True`` an :class:`AsyncChatCompletionStream` (``async for``)."""
        deltas = self._start(model, messages, stream, options)
        if stream:
            return AsyncChatCompletionStream(deltas)
        from ._async import AsyncStream

        async with AsyncStream(deltas) as pieces:
            text = "".join([piece async for piece in pieces])
        return _completion(deltas, text)

    def _start(self, model: Optional[str], messages: Messages, stream: bool, options: Dict[str, Any]) -> Stream:
        provider = resolve_provider(self._client.provider, model)
        return provider.create_completion(model, messages, stream=stream, **self._client._options(options, provider))


class Models:
    """``client.models``: :meth:`list`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> ModelList:
        """The models of the client's provider: an OpenAI-compatible server's
        ``GET {base_url}/models`` when one is configured, otherwise the provider's own
        list (its models, or its default model when it accepts any name). With no
        provider, every registered provider's; with a RetryProvider, each of its
        providers'."""
        provider = self._client.provider
        if provider is None:
            providers = list_providers()
        elif isinstance(provider, RetryProvider):
            providers = list(provider.providers)
        else:
            providers = [get_provider(provider) if isinstance(provider, str) else provider]
        models: List[Model] = []
        for item in providers:
            models += _models_of(item, self._client)
        return ModelList(models)


def _models_of(provider: Any, client: Client) -> List[Model]:
    from .providers.openai_compatible import OpenAICompatible

    owner = provider.__name__
    if isinstance(provider, type) and issubclass(provider, OpenAICompatible):
        target = provider.resolve_base_url(client.base_url)
        if target is not None:
            listing = provider.list_models(target, client._api_key, client.timeout)
            return [
                Model(
                    id=str(item["id"]),
                    created=_whole_number(item.get("created")),
                    owned_by=str(item.get("owned_by") or owner),
                )
                for item in listing
            ]
    names = list(provider.models) or ([provider.default_model] if provider.default_model else [])
    return [Model(id=name, owned_by=owner) for name in names]


def _whole_number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _takes_api_key(provider: Any) -> bool:
    if isinstance(provider, RetryProvider):
        return any(_takes_api_key(p) for p in provider.providers)
    return isinstance(provider, type) and "api_key" in getattr(provider, "options", ())


class _Chunks:
    """Turns one completion's events into chunks: a role chunk before the first piece,
    one chunk per piece of text, reasoning, refusal or tool call, and a final chunk with
    the finish reason (and usage).

    The role chunk waits for the first piece (or the end), so that the upstream's
    ``id``, ``created`` and ``model`` are known by then and every chunk carries them.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._started = time.time()
        self._head: Optional[Dict[str, Any]] = None
        self._logprobs_seen = 0

    def on_event(self, event: Any) -> List[ChatCompletionChunk]:
        kind = type(event)
        logprobs = None
        if kind is TextDelta:
            delta = ChoiceDelta(content=event.text)
            logprobs = self._new_logprobs()
        elif kind is ReasoningDelta:
            delta = ChoiceDelta(reasoning_content=event.text)
        elif kind is RefusalDelta:
            delta = ChoiceDelta(refusal=event.text)
        elif kind is ToolCallDelta:
            function = ChoiceDeltaToolCallFunction(arguments=event.arguments, name=event.name)
            call = ChoiceDeltaToolCall(event.index, event.id, function, "function" if event.id else None)
            delta = ChoiceDelta(tool_calls=[call])
        else:
            return []  # ToolCall, Usage, Finish: what they say comes with the last chunk
        chunks = self._open()
        chunks.append(self._chunk(delta, logprobs=logprobs))
        return chunks

    def on_end(self) -> List[ChatCompletionChunk]:
        chunks = self._open()
        stream = self._stream
        finish_reason = stream.finish_reason or ("tool_calls" if stream.tool_calls else "stop")
        chunks.append(self._chunk(ChoiceDelta(), finish_reason, _usage(stream), self._new_logprobs()))
        return chunks

    def _new_logprobs(self) -> Optional[ChoiceLogprobs]:
        """The log probabilities that came with the latest piece of text."""
        entries = _logprobs_of(self._stream)
        if len(entries) <= self._logprobs_seen:
            return None
        new, self._logprobs_seen = entries[self._logprobs_seen :], len(entries)
        return ChoiceLogprobs.from_entries(new)

    def _open(self) -> List[ChatCompletionChunk]:
        if self._head is not None:
            return []
        self._head = _head(self._stream, self._started)
        return [self._chunk(ChoiceDelta(role="assistant", content=""))]

    def _chunk(
        self,
        delta: ChoiceDelta,
        finish_reason: Optional[str] = None,
        usage: Optional[CompletionUsage] = None,
        logprobs: Optional[ChoiceLogprobs] = None,
    ) -> ChatCompletionChunk:
        assert self._head is not None
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish_reason, logprobs=logprobs)
        return ChatCompletionChunk(choices=[choice], usage=usage, **self._head)


def _logprobs_of(stream: Stream) -> List[Any]:
    reply = stream._view.reply
    return reply.logprobs if reply is not None else []


def _usage(stream: Stream) -> Optional[CompletionUsage]:
    usage = stream.usage
    return CompletionUsage.from_dict(usage.raw) if usage is not None else None


class ChatCompletionStream(Iterator[ChatCompletionChunk]):
    """An iterator of :class:`~llmproviders.types.ChatCompletionChunk` over a provider
    :class:`Stream`; a context manager whose exit (or :meth:`close`) closes the HTTP
    response. ``stream`` is the provider's stream (``text``, ``metadata``)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._chunks = self._run()

    def _run(self) -> Iterator[ChatCompletionChunk]:
        builder = _Chunks(self.stream)
        with self.stream:
            for event in self.stream.events():
                yield from builder.on_event(event)
        yield from builder.on_end()

    def __iter__(self) -> "ChatCompletionStream":
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def close(self) -> None:
        """Stop and release the connection. Safe to call more than once."""
        self._chunks.close()  # type: ignore[attr-defined]  # a generator
        self.stream.close()

    def __enter__(self) -> "ChatCompletionStream":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()


class AsyncChatCompletionStream(AsyncIterator[ChatCompletionChunk]):
    """The async form of :class:`ChatCompletionStream` (``async for``, ``async with``,
    ``aclose()``), streamed by a worker thread like :class:`AsyncStream`."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        from ._async import AsyncStream

        self._deltas = AsyncStream(stream)
        self._chunks = self._run()

    async def _run(self) -> AsyncIterator[ChatCompletionChunk]:
        builder = _Chunks(self.stream)
        async with self._deltas:
            async for event in self._deltas.events():
                for chunk in builder.on_event(event):
                    yield chunk
        for chunk in builder.on_end():
            yield chunk

    def __aiter__(self) -> "AsyncChatCompletionStream":
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        """Stop the stream, close its HTTP response and wait for its worker thread."""
        await self._chunks.aclose()  # type: ignore[attr-defined]  # an async generator
        await self._deltas.aclose()

    async def __aenter__(self) -> "AsyncChatCompletionStream":
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.aclose()


def _head(stream: Stream, started: float) -> Dict[str, Any]:
    """``id``, ``created``, ``model`` and ``system_fingerprint``: the upstream's where
    it reported them; otherwise a fresh id, the call's time and the resolved model."""
    metadata = stream.metadata
    upstream_id = metadata.get("id")
    created = metadata.get("created")
    model = metadata.get("model")
    fingerprint = metadata.get("system_fingerprint")
    return {
        "id": upstream_id if isinstance(upstream_id, str) and upstream_id else "chatcmpl-" + random_string(29),
        "created": created if isinstance(created, int) and not isinstance(created, bool) else int(started),
        "model": model if isinstance(model, str) and model else stream.model,
        "system_fingerprint": fingerprint if isinstance(fingerprint, str) else None,
    }


def _completion(stream: Stream, text: str) -> ChatCompletionObject:
    """The whole completion a finished stream adds up to."""
    calls = [
        ChatCompletionMessageToolCall(id=call.id or "", function=Function(name=call.name, arguments=call.arguments))
        for call in stream.tool_calls
    ]
    message = ChatCompletionMessage(
        content=text or (None if calls or stream.refusal else text),
        refusal=stream.refusal,
        tool_calls=calls or None,
        reasoning_content=stream.reasoning or None,
    )
    finish_reason = stream.finish_reason or ("tool_calls" if calls else "stop")
    choice = Choice(message=message, finish_reason=finish_reason, logprobs=ChoiceLogprobs.from_entries(_logprobs_of(stream)))
    return ChatCompletionObject(choices=[choice], usage=_usage(stream), **_head(stream, time.time()))
