"""The provider base class, the pipeline every call runs, and the provider registry.

A provider is a class that describes its protocol declaratively: its metadata (class
attributes, as in the original framework), its options with their types and ranges,
how to build its request (:meth:`Provider.build_request`), its framing (NDJSON, raw
text, SSE), and how one frame turns into events (:meth:`Provider.parse`). The base
class owns everything else, once:

- checking the messages, the model and the options before any network I/O;
- one pipeline per attempt: transport bytes -> framing -> ``parse`` -> a fresh
  :class:`~llmproviders._reply.Reply`, whose events the :class:`Stream` records and
  yields (an attempt that is retried leaves nothing behind);
- retries, deadline, abort, and the :class:`Stream` wrapper.

Example usage::

    from llmproviders import FlowGpt

    for delta in FlowGpt.create_completion(model="gpt-3.5-turbo", messages=messages):
        print(delta, end="", flush=True)
    text = FlowGpt.create(model="gemini", messages=messages)
"""

from __future__ import annotations

import importlib
import json
import os
from types import GeneratorType
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterator, List, NamedTuple, Optional, Tuple, Type, TypeVar

from ._exceptions import (
    InvalidArgumentError,
    LLMProvidersError,
    ResponseStatusError,
    ModelNotSupportedError,
    ProviderNotFoundError,
    StreamInterruptedError,
)
from ._framing import FRAMINGS, MAX_FRAME, iter_sse_frames, preview
from ._http import DEFAULT_TIMEOUT, Call, TimeoutArg
from ._messages import Messages, text_messages, validate_messages
from ._options import Flag, OptionsDeclaration, check_options
from ._reply import JOIN_EVERY, Reply
from ._retry import RetryPolicy, resolve_retries, run_attempts
from ._secrets import Secrets
from ._stream import ReplyView, Stream

if TYPE_CHECKING:  # pragma: no cover
    from ._async import AsyncStream

__all__ = ["Provider", "Request", "register_provider", "get_provider", "list_providers", "BASE_URL_ENV"]

P = TypeVar("P", bound=Type["Provider"])
#: Environment variable that points every provider at another host (e.g. the emulator).
BASE_URL_ENV = "LLMPROVIDERS_BASE_URL"
_STREAM_FLAG = Flag()


class Request(NamedTuple):
    """One HTTP request a provider wants sent: the URL (``call.url(real_url)``), headers
    and a JSON (or raw) body."""

    url: str
    headers: Dict[str, str]
    json: Any = None
    data: Optional[bytes] = None
    cookies: Any = None
    method: str = "POST"


class Provider:
    """Base class of every provider. Subclasses set the metadata and describe their
    protocol (:meth:`build_request`, :attr:`framing`, :meth:`parse`, maybe :meth:`end`);
    callers use :meth:`create_completion` and :meth:`create`."""

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
    #: Keyword options this provider understands, with their checks (anything else is
    #: refused, not sent; a set of names accepts any JSON value for each).
    options: ClassVar[OptionsDeclaration] = {}
    #: How the reply's body is cut into frames: "sse", "ndjson", "text" or "json".
    framing: ClassVar[str] = "sse"
    #: Set True in the class whose :meth:`parse` accepts an SSE event of one ``data`` line
    #: (and no other field) as its data, a ``str`` (one object less per token; other
    #: events still come as ``sseclient.Event`` or :class:`~._framing.RawEvent`). Only
    #: the class that defines ``parse`` counts: a subclass that overrides ``parse`` gets
    #: events again unless it says so too.
    sse_data_frames: ClassVar[bool] = False
    #: The protocol carries text only: content parts are joined, images and tool
    #: messages refused before any I/O (:func:`~._messages.text_messages`).
    text_only: ClassVar[bool] = False
    #: ``(connect, read)`` seconds when the caller gives no ``timeout``.
    default_timeout: ClassVar[Tuple[float, float]] = DEFAULT_TIMEOUT
    #: The most bytes one frame (an NDJSON line, an SSE event) may have.
    max_frame_size: ClassVar[int] = MAX_FRAME
    #: Retries before the first delta (``max_retries=`` overrides it per call).
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy()

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is used through its class methods; do not instantiate it")

    # -- models -------------------------------------------------------------------------

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

    # -- calls --------------------------------------------------------------------------

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
        """Start a chat completion; return a :class:`Stream` of text deltas (and events).

        Everything is checked before any network I/O: ``messages``, the model, the
        options' names and values. The request is sent when iteration starts.

        - ``stream=False`` asks the upstream for the whole reply where the protocol
          has that mode; either way the reply is yielded once (so an error's
          ``partial`` holds the text received before it, as nothing was yielded yet).
        - ``base_url`` points the provider at another host (a mirror, the emulator, a
          local OpenAI-compatible server), keeping the protocol's paths; see
          :meth:`resolve_base_url` for what applies without it.
        - ``timeout`` is seconds, or ``(connect, read)``, per attempt: connecting, and
          the longest silence between two pieces of the body. ``deadline`` caps the
          whole call in seconds (retries and backoff included), however the server
          paces it.
        - A call that fails before its first delta (connection error, timeout, 429,
          5xx, a break, an empty reply) is retried up to ``max_retries`` times
          (default: :attr:`retry_policy`, 2 retries) with backoff; after the first
          delta an error is final, so text is never repeated.
        """
        run = cls._prepare(
            model,
            messages,
            stream=stream,
            proxy=proxy,
            timeout=timeout,
            base_url=base_url,
            max_retries=max_retries,
            deadline=deadline,
            options=options,
        )
        view = ReplyView()
        return Stream(run.items(view.commit), provider=cls.__name__, model=run.model, abort=run.abort, view=view, whole=not stream)

    @classmethod
    def _prepare(
        cls,
        model: Optional[str],
        messages: Messages,
        *,
        stream: bool,
        proxy: Optional[str],
        timeout: TimeoutArg,
        base_url: Optional[str],
        max_retries: Optional[int],
        deadline: Optional[float],
        options: Dict[str, Any],
    ) -> "_Run":
        """Check everything a call needs, before any I/O; return the call, ready to run."""
        checked = cls.prepare_messages(messages)
        resolved = cls.get_model(model)
        check_options(cls.__name__, cls.options, options)
        _STREAM_FLAG.check(cls.__name__, "stream", stream)
        target = cls.check_target(cls.resolve_base_url(base_url))
        _check_json_able(cls.__name__, checked, options)
        policy = resolve_retries(max_retries, cls.retry_policy)
        secrets = Secrets.of(options, target, proxy)
        call = Call(
            cls,
            base_url=target,
            proxy=proxy,
            timeout=timeout,
            default_timeout=cls.default_timeout,
            deadline=deadline,
            redact=secrets.redact if secrets else None,
            status_error=cls.status_error,
        )
        return _Run(cls, call, resolved, checked, dict(options), stream, policy, secrets)

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
    def create_async_generator(cls, model: Optional[str], messages: Messages, **kwargs: Any) -> "AsyncStream":
        """The async form of :meth:`create_completion` (the seeds' call shape): an async
        iterator of text deltas, streamed by a worker thread. Takes the same arguments.

        Example usage::

            async for message in FlowGpt.create_async_generator(model=model, messages=messages):
                print(message, end="")
        """
        from ._async import AsyncStream  # the asyncio facade is loaded when first used

        return AsyncStream(cls.create_completion(model, messages, **kwargs))

    @classmethod
    async def create_async(cls, model: Optional[str], messages: Messages, **kwargs: Any) -> str:
        """The async form of :meth:`create`: the whole reply text."""
        from ._async import collect

        return await collect(cls.create_async_generator(model, messages, **kwargs))

    # -- the protocol: what a subclass describes ------------------------------------------

    @classmethod
    def prepare_messages(cls, messages: Messages) -> List[Dict[str, Any]]:
        """Check ``messages`` (before any I/O) and return them as a list of dicts; for a
        :attr:`text_only` protocol, text parts joined and anything else refused."""
        checked = validate_messages(messages)
        return text_messages(checked, cls.__name__) if cls.text_only else checked

    @classmethod
    def check_target(cls, base_url: Optional[str]) -> Optional[str]:
        """Check where the call goes (``None``: the real service) before any I/O."""
        return base_url

    @classmethod
    def build_request(
        cls, call: Call, model: str, messages: List[Dict[str, Any]], options: Dict[str, Any], *, stream: bool
    ) -> Request:
        """The request of one attempt. ``model`` is resolved, ``messages`` and ``options``
        checked. ``call`` points the protocol's real URLs at the call's target
        (``call.url(real_url)``) and can send a preliminary request (``call.open``) where
        the protocol has a handshake."""
        raise NotImplementedError

    @classmethod
    def new_state(cls, options: Dict[str, Any], *, stream: bool) -> Any:
        """Per-attempt parsing state for :meth:`parse` (``reply.state``); None by default."""
        return None

    @classmethod
    def framing_for(cls, headers: Any, reply: Reply) -> str:
        """The framing of a response with these headers (default: :attr:`framing`)."""
        return cls.framing

    @classmethod
    def parse(cls, frame: Any, reply: Reply) -> Any:
        """One frame -> what it means: None (nothing), a ``str`` (text), an event
        (:mod:`llmproviders.events`), or a list of those. Facts that are not events
        (id, model, timings...) go into ``reply.metadata``; at the protocol's end
        marker set ``reply.done``. Raise the library's errors for bad frames."""
        raise NotImplementedError

    @classmethod
    def end(cls, reply: Reply, tail: bytes) -> Any:
        """The body ended (cleanly, as far as the transport can tell): raise if the reply
        is incomplete for this protocol, or return final items like :meth:`parse`.
        ``tail`` is an SSE event the body ended inside (not dispatched). By default,
        ending inside an event is an interruption and anything else a complete reply."""
        if tail:
            raise StreamInterruptedError(
                f"{cls.__name__}: the body ended in the middle of an event: {preview(tail, reply.redact)!r}",
                provider=cls.__name__,
            )
        return None

    @classmethod
    def status_error(cls, error: ResponseStatusError, payload: Any) -> Optional[LLMProvidersError]:
        """A more precise error than ``error`` (a non-2xx answer) where the decoded JSON
        body ``payload`` (None if it is not JSON) says more than the status; None keeps
        ``error``. Called by the transport as it takes the answer in."""
        return None

    @classmethod
    def params(cls) -> str:
        """One line describing the provider, as the original framework printed it."""
        flags = [name for name in dir(cls) if name.startswith("supports_") and getattr(cls, name)]
        return f"{cls.__name__}: default_model={cls.default_model!r}, {', '.join(flags)}"


class _Run:
    """One call, checked and ready: its transport, its request's ingredients, and the
    pipeline each attempt runs."""

    def __init__(
        self,
        provider: Type[Provider],
        call: Call,
        model: str,
        messages: List[Dict[str, Any]],
        options: Dict[str, Any],
        stream: bool,
        policy: RetryPolicy,
        secrets: Secrets,
    ) -> None:
        self.provider = provider
        self.call = call
        self.model = model
        self.messages = messages
        self.options = options
        self.stream = stream
        self.policy = policy
        self.secrets = secrets

    def items(self, commit: Any) -> Iterator[Any]:
        """Text and events of the first attempt that delivers (see :func:`run_attempts`)."""
        return run_attempts(self.attempt, self.new_reply, self.call, self.policy, commit)

    def abort(self) -> None:
        self.call.abort()

    def new_reply(self) -> Reply:
        return Reply(self.secrets, self.provider.new_state(self.options, stream=self.stream))

    def attempt(self, reply: Reply) -> Iterator[Any]:
        """One attempt: request, then bytes -> frames -> ``parse`` -> ``reply``."""
        provider = self.provider
        request = provider.build_request(self.call, self.model, self.messages, self.options, stream=self.stream)
        with self.call.open(
            request.url,
            headers=request.headers,
            json_body=request.json,
            data=request.data,
            cookies=request.cookies,
            method=request.method,
        ) as exchange:
            tail: List[bytes] = []
            framing = provider.framing_for(exchange.headers, reply)
            decode = iter_sse_frames if framing == "sse" and _takes_data_frames(provider) else FRAMINGS[framing]
            frames = decode(
                exchange.iter_bytes(),
                provider=provider.__name__,
                max_frame=provider.max_frame_size,
                tail=tail,
                redact=reply.redact,
            )
            parse = provider.parse
            record = reply.record
            parts = record.parts
            append = parts.append
            for frame in frames:  # the loop every delta goes through: keep it short
                out = parse(frame, reply)
                if type(out) is str:
                    append(out)
                    if len(parts) >= JOIN_EVERY:
                        record.join_parts()
                    yield out
                elif out is not None:
                    yield from _emit(out, reply)
                if reply.done:
                    break
            else:
                out = provider.end(reply, b"".join(tail))
                if out is not None:
                    yield from _emit(out, reply)
        yield from reply.complete_calls()  # tool calls the server never finished


def _takes_data_frames(provider: Type[Provider]) -> bool:
    """Whether ``provider.parse`` was written for ``str`` frames (see
    :attr:`Provider.sse_data_frames`): said by the class that defines it. (Once per
    attempt: a look at two or three class dictionaries.)"""
    owner = next(cls for cls in provider.__mro__ if "parse" in vars(cls))
    return bool(vars(owner).get("sse_data_frames", False))


def _emit(out: Any, reply: Reply) -> Iterator[Any]:
    """What ``parse`` returned, other than one text delta: events and text, in order."""
    items = out if isinstance(out, (list, tuple, GeneratorType)) else (out,)
    record = reply.record
    for item in items:
        if type(item) is str:
            if item:
                record.parts.append(item)
                if len(record.parts) >= JOIN_EVERY:
                    record.join_parts()
                yield item
        elif item is not None:
            emitted = reply.apply(item)
            if type(emitted) is list:
                yield from emitted
            else:
                yield emitted


def _check_json_able(provider: str, messages: List[Dict[str, Any]], options: Dict[str, Any]) -> None:
    """Refuse, before any I/O, what could not be sent as JSON (NaN, objects, ...)."""
    if not options and all(type(key) is str and type(value) is str for message in messages for key, value in message.items()):
        return  # the usual messages, strings only: JSON as they are
    try:
        json.dumps([messages, options], allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"{provider}: messages and options must be plain JSON values: {exc}") from None


_registry: Dict[str, Type[Provider]] = {}


_PROVIDERS = f"{__package__}.providers"


def _builtin_providers() -> None:
    """Load (and so register) the package's providers: ``import llmproviders`` leaves
    them until first used. Always through the import system, never by a look at
    ``sys.modules`` (their entry is there before they are registered): while another
    thread loads them, this waits for it; in the thread loading them (their own
    ``register_provider`` calls) it returns at once; once loaded, it costs a microsecond."""
    importlib.import_module(_PROVIDERS)


def register_provider(cls: P) -> P:
    """Class decorator: make a provider findable by :func:`get_provider`. A second,
    different class under a name already taken is refused (:class:`InvalidArgumentError`)."""
    _builtin_providers()  # they come first, and keep their names
    existing = _registry.get(cls.__name__)
    if existing is not None and existing is not cls:
        raise InvalidArgumentError(
            f"a provider named {cls.__name__!r} is already registered ({existing.__module__}.{existing.__qualname__}); "
            "give the new class another name"
        )
    _registry[cls.__name__] = cls
    return cls


def get_provider(name: str) -> Type[Provider]:
    """The provider class registered as ``name`` (exact, else case-insensitive)."""
    _builtin_providers()
    if name in _registry:
        return _registry[name]
    for key, cls in _registry.items():
        if key.lower() == str(name).lower():
            return cls
    known = sorted(_registry)
    raise ProviderNotFoundError(f"no provider named {name!r}; known providers: {', '.join(known)}", known=known)


def list_providers() -> List[Type[Provider]]:
    """Every registered provider class, in registration order."""
    _builtin_providers()
    return list(_registry.values())
