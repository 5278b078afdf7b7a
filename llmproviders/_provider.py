"""The provider base class and the provider registry.

A provider is a class: its metadata are class attributes (as in the original
framework), and its calls are class methods. A subclass describes its protocol in
one method, :meth:`Provider._generate`, a generator of text deltas; validation,
model resolution, transport, errors and the :class:`Stream` wrapper live here once.

Example usage::

    from llmproviders import FlowGpt

    for delta in FlowGpt.create_completion(model="gpt-3.5-turbo", messages=messages):
        print(delta, end="", flush=True)
    text = FlowGpt.create(model="gemini", messages=messages)
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Dict, FrozenSet, Iterator, List, Optional, Tuple, Type, TypeVar

from ._async import AsyncStream, collect
from ._exceptions import InvalidArgumentError, ModelNotSupportedError, ProviderNotFoundError, UnsupportedOptionError
from ._framing import MAX_FRAME
from ._http import DEFAULT_TIMEOUT, Call, TimeoutArg
from ._messages import Messages, validate_messages
from ._retry import RetryPolicy, resolve_retries, with_retries
from ._stream import Stream

__all__ = ["Provider", "register_provider", "get_provider", "list_providers"]

P = TypeVar("P", bound=Type["Provider"])
#: Environment variable that points every provider at another host (e.g. the emulator).
BASE_URL_ENV = "LLMPROVIDERS_BASE_URL"


class Provider:
    """Base class of every provider. Subclasses set the metadata and implement
    :meth:`_generate`; callers use :meth:`create_completion` and :meth:`create`."""

    #: The service's home page.
    url: ClassVar[str] = ""
    #: Does the service work today? (The seed providers are offline: False.)
    working: ClassVar[bool] = False
    supports_stream: ClassVar[bool] = True
    supports_message_history: ClassVar[bool] = False
    supports_system_message: ClassVar[bool] = False
    supports_gpt_35_turbo: ClassVar[bool] = False
    default_model: ClassVar[Optional[str]] = None
    #: The models the service accepts; empty means any name is accepted.
    models: ClassVar[List[str]] = []
    model_aliases: ClassVar[Dict[str, str]] = {}

    #: Send to this host instead of the real one, for every call that passes no
    #: ``base_url`` (falls back to the ``LLMPROVIDERS_BASE_URL`` environment variable).
    base_url: ClassVar[Optional[str]] = None
    #: Keyword options this provider understands (anything else is refused, not sent).
    options: ClassVar[FrozenSet[str]] = frozenset()
    #: ``(connect, read)`` seconds when the caller gives no ``timeout``.
    default_timeout: ClassVar[Tuple[float, float]] = DEFAULT_TIMEOUT
    #: The most bytes one frame (an NDJSON line, an SSE event) may have.
    max_frame_size: ClassVar[int] = MAX_FRAME
    #: Retries before the first delta (``max_retries=`` overrides it per call).
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy()

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is used through its class methods; do not instantiate it")

    @classmethod
    def get_models(cls) -> List[str]:
        """The models this provider accepts (empty: any name)."""
        return list(cls.models)

    @classmethod
    def get_model(cls, model: Optional[str]) -> str:
        """Resolve ``model``: empty -> the default, an alias -> its target, and an
        unknown name -> :class:`ModelNotSupportedError` listing the valid ones."""
        if model is not None and not isinstance(model, str):
            raise ModelNotSupportedError(
                f"model must be a string (or None for {cls.__name__}'s default), not {type(model).__name__}",
                provider=cls.__name__,
            )
        if not model:
            if cls.default_model is None:
                raise ModelNotSupportedError(f"{cls.__name__} has no default model: pass model=...", provider=cls.__name__)
            return cls.default_model
        if model in cls.model_aliases:
            return cls.model_aliases[model]
        models = list(cls.models)  # the static list: get_models() may ask the network
        if models and model not in models:
            aliases = f" (aliases: {', '.join(sorted(cls.model_aliases))})" if cls.model_aliases else ""
            raise ModelNotSupportedError(
                f"{cls.__name__} does not support model {model!r}; valid models: {', '.join(models)}{aliases}",
                provider=cls.__name__,
                model=model,
                models=models,
            )
        return model

    @classmethod
    def create_completion(
        cls,
        model: Optional[str],
        messages: Messages,
        *,
        stream: bool = True,
        proxy: Optional[str] = None,
        timeout: TimeoutArg = None,
        base_url: Optional[str] = None,
        max_retries: Optional[int] = None,
        deadline: Optional[float] = None,
        **options: Any,
    ) -> Stream:
        """Start a chat completion; return a :class:`Stream` of text deltas.

        Everything is checked before any network I/O: ``messages``, the model and the
        options. The request is sent when iteration starts.

        - ``stream=False`` asks the upstream for the whole reply where the protocol
          has that mode; either way the reply is yielded once (so an error's
          ``partial`` holds the text received before it, as nothing was yielded yet).
        - ``base_url`` points the provider at another host (a mirror, the emulator, a
          local OpenAI-compatible server), keeping the protocol's paths; see
          :meth:`resolve_base_url` for what applies without it.
        - ``timeout`` is seconds, or ``(connect, read)`` where read is the longest
          silence allowed between two pieces of the body; ``deadline`` caps the whole
          call in seconds (retries included), however the server paces it.
        - A call that fails before its first delta (connection error, timeout, 429,
          5xx, a break, an empty reply) is retried up to ``max_retries`` times
          (default: :attr:`retry_policy`, 2 retries) with backoff; after the first
          delta an error is final, so text is never repeated.
        """
        checked = validate_messages(messages)
        resolved = cls.get_model(model)
        unknown = sorted(set(options) - cls.options)
        if unknown:
            accepted = ", ".join(sorted(cls.options)) or "none"
            raise UnsupportedOptionError(
                f"{cls.__name__} does not accept option(s) {', '.join(unknown)}; accepted options: {accepted}",
                provider=cls.__name__,
            )
        base_url = cls.resolve_base_url(base_url)
        _check_json_able(cls.__name__, checked, options)
        policy = resolve_retries(max_retries, cls.retry_policy)
        call = Call(
            cls, base_url=base_url, proxy=proxy, timeout=timeout, default_timeout=cls.default_timeout, deadline=deadline
        )
        call.max_frame = cls.max_frame_size
        deltas = with_retries(
            lambda: cls._generate(call, resolved, checked, stream=stream, **options),
            call,
            policy,
            allow_empty=lambda: call.metadata.get("finish_reason") is not None,
        )
        if not stream and not cls._has_whole_reply_mode():
            deltas = _whole(deltas)
        return Stream(deltas, provider=cls.__name__, model=resolved, abort=call.abort, metadata=call.metadata)

    @classmethod
    def resolve_base_url(cls, base_url: Optional[str] = None) -> Optional[str]:
        """The host a call goes to: ``base_url`` if given, else the class attribute
        :attr:`base_url`, else ``LLMPROVIDERS_BASE_URL``; None means the real service."""
        return base_url or cls.base_url or os.environ.get(BASE_URL_ENV) or None

    @classmethod
    def create(cls, model: Optional[str], messages: Messages, **kwargs: Any) -> str:
        """Run a completion to the end and return its whole text."""
        with cls.create_completion(model, messages, **kwargs) as stream:
            return "".join(stream)

    @classmethod
    def create_async_generator(cls, model: Optional[str], messages: Messages, **kwargs: Any) -> AsyncStream:
        """The async form of :meth:`create_completion` (the seeds' call shape): an async
        iterator of text deltas, streamed by a worker thread. Takes the same arguments.

        Example usage::

            async for message in FlowGpt.create_async_generator(model=model, messages=messages):
                print(message, end="")
        """
        return AsyncStream(cls.create_completion(model, messages, **kwargs))

    @classmethod
    async def create_async(cls, model: Optional[str], messages: Messages, **kwargs: Any) -> str:
        """The async form of :meth:`create`: the whole reply text."""
        return await collect(cls.create_async_generator(model, messages, **kwargs))

    @classmethod
    def _generate(
        cls, call: Call, model: str, messages: List[Dict[str, Any]], *, stream: bool, **options: Any
    ) -> Iterator[str]:
        """Subclasses implement the protocol here: a generator of non-empty text deltas.

        ``call`` is the transport (open responses with ``call.open``, read them with the
        framing readers over ``call.iter_bytes``); ``model`` is resolved, ``messages``
        validated, ``options`` limited to :attr:`options`. Raise the library's errors.
        Facts about the reply that are not text (``finish_reason``, ``usage``, ``id``,
        ``created``, ``model``) go into ``call.metadata``; callers see them as
        ``Stream.metadata``. A reply without text is an :class:`EmptyResponseError`
        unless the generator recorded a ``finish_reason`` (an explicit, empty finish).
        The generator may be started again (a retry) until it yields its first delta.
        """
        raise NotImplementedError
        yield  # pragma: no cover  (makes this a generator function)

    @classmethod
    def _has_whole_reply_mode(cls) -> bool:
        """Subclass hook: True if ``_generate(stream=False)`` asks the upstream for a
        whole reply itself; otherwise the base joins the streamed deltas."""
        return False

    @classmethod
    def params(cls) -> str:
        """One line describing the provider, as the original framework printed it."""
        flags = [name for name in dir(cls) if name.startswith("supports_") and getattr(cls, name)]
        return f"{cls.__name__}: default_model={cls.default_model!r}, {', '.join(flags)}"


def _check_json_able(provider: str, messages: List[Dict[str, Any]], options: Dict[str, Any]) -> None:
    """Refuse, before any I/O, what could not be sent as JSON (NaN, objects, ...)."""
    try:
        json.dumps([messages, options], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{provider}: messages and options must be plain JSON values: {exc}") from exc


def _whole(deltas: Iterator[str]) -> Iterator[str]:
    """Join a stream into one delta (``stream=False`` for stream-only protocols)."""
    parts: List[str] = []
    try:
        for delta in deltas:
            parts.append(delta)
    except Exception as exc:
        if hasattr(exc, "partial"):
            exc.partial = "".join(parts) + exc.partial  # nothing was yielded; keep what arrived
        raise
    finally:
        deltas.close()  # type: ignore[attr-defined]
    text = "".join(parts)
    if text:
        yield text


_registry: Dict[str, Type[Provider]] = {}


def register_provider(cls: P) -> P:
    """Class decorator: make a provider findable by :func:`get_provider`."""
    _registry[cls.__name__] = cls
    return cls


def get_provider(name: str) -> Type[Provider]:
    """The provider class registered as ``name`` (exact, else case-insensitive)."""
    if name in _registry:
        return _registry[name]
    for key, cls in _registry.items():
        if key.lower() == str(name).lower():
            return cls
    known = sorted(_registry)
    raise ProviderNotFoundError(f"no provider named {name!r}; known providers: {', '.join(known)}", known=known)


def list_providers() -> List[Type[Provider]]:
    """Every registered provider class, in registration order."""
    return list(_registry.values())
