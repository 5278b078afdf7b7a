"""``ChatCompletion``: the original framework's top-level entry point, and how a
provider is chosen (:func:`resolve_provider`) for it and for :class:`~llmproviders.Client`.

Example usage::

    from llmproviders import ChatCompletion, FlowGpt

    text = ChatCompletion.create(model="gpt-3.5-turbo", messages=messages, provider=FlowGpt)
    for delta in ChatCompletion.create(model="gpt-4", messages=messages, provider="Chatgpt4Online", stream=True):
        print(delta, end="")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, Dict, List, Literal, Optional, Tuple, Type, Union, overload

from ._exceptions import InvalidArgumentError, ModelNotSupportedError, ProviderNotFoundError, UnsupportedOptionError
from ._fallback import RetryProvider
from ._messages import Messages
from ._provider import Provider, get_provider, list_providers
from ._stream import Stream

if TYPE_CHECKING:  # pragma: no cover
    from ._async import AsyncStream

__all__ = ["ChatCompletion", "resolve_provider", "check_provider", "AnyProvider", "ProviderArg"]


AnyProvider = Union[Type[Provider], RetryProvider]
#: What ``provider=`` takes: a provider class, its registered name, a
#: :class:`RetryProvider`, or None (choose by model).
ProviderArg = Union[None, str, AnyProvider]


def check_provider(provider: Any) -> Optional[AnyProvider]:
    """``provider`` as a provider: a registered name becomes its class, a provider class
    or a :class:`RetryProvider` is returned as is, None stays None. Anything else is an
    :class:`InvalidArgumentError` naming what was passed; an unknown name is a
    :class:`ProviderNotFoundError`. No I/O."""
    if provider is None or isinstance(provider, RetryProvider):
        return provider
    if isinstance(provider, str):
        return get_provider(provider)
    if isinstance(provider, type) and issubclass(provider, Provider) and provider is not Provider:
        return provider
    if provider is Provider:
        what = "the base class Provider itself"
    elif isinstance(provider, type):
        what = f"the class {provider.__module__}.{provider.__qualname__}, which is not a Provider subclass"
    else:
        shown = repr(provider)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        what = f"{type(provider).__name__} {shown}"
    raise InvalidArgumentError(
        f"provider must be a provider class (such as FlowGpt), its registered name (such as 'FlowGpt') "
        f"or a RetryProvider, not {what}"
    )


def resolve_provider(
    provider: Union[None, str, AnyProvider],
    model: Optional[str],
    *,
    stream: bool = False,
    ignored: Optional[Collection[str]] = None,
    ignore_working: bool = True,
    ignore_stream: bool = False,
) -> AnyProvider:
    """The provider a call goes to, without any I/O.

    ``provider`` is checked with :func:`check_provider`. None chooses the first
    registered provider whose static ``models``, ``model_aliases`` or ``default_model``
    has ``model``, skipping the providers named in ``ignored``, those with
    ``working = False`` unless ``ignore_working``, and, for ``stream=True``, those with
    ``supports_stream = False`` unless ``ignore_stream``. A :class:`RetryProvider`
    keeps only its providers that pass the same filters. A provider passed explicitly is
    used even if ``ignored`` names it (as in g4f), but must pass the other two checks.
    """
    ignore = _ignored_names(ignored)
    for flag, value in (("ignore_working", ignore_working), ("ignore_stream", ignore_stream)):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{flag} must be True or False, not {value!r}")
    chosen = check_provider(provider)
    if isinstance(chosen, RetryProvider):
        return _filter_retry(chosen, stream, ignore, ignore_working, ignore_stream)
    if chosen is not None:
        problem = _unusable(chosen, stream, ignore_working, ignore_stream)
        if problem:
            raise InvalidArgumentError(f"{chosen.__name__} {problem[0]}: {problem[1]}", provider=chosen.__name__)
        return chosen
    names = [p.__name__ for p in list_providers()]
    if model is None or model == "":
        raise ProviderNotFoundError(
            f"no provider can be chosen without a model: pass model=... or provider=... (one of: {', '.join(names)})",
            known=names,
        )
    if not isinstance(model, str):
        raise ModelNotSupportedError(f"model must be a string (or None with provider=...), not {type(model).__name__}")
    skipped: List[str] = []
    for candidate in list_providers():
        if not _serves(candidate, model):  # static lists only: get_models() may ask the network
            continue
        if candidate.__name__.lower() in ignore:
            skipped.append(f"{candidate.__name__} is in ignored")
            continue
        problem = _unusable(candidate, stream, ignore_working, ignore_stream)
        if problem:
            skipped.append(f"{candidate.__name__} {problem[0]}")
            continue
        return candidate
    found = (
        f"no provider that lists model {model!r} can take this call ({'; '.join(skipped)})"
        if skipped
        else f"no provider lists model {model!r}"
    )
    raise ProviderNotFoundError(f"{found}; pass provider=... (one of: {', '.join(names)})", known=names)


def _serves(provider: Type[Provider], model: str) -> bool:
    return model in provider.models or model in provider.model_aliases or model == provider.default_model


def _unusable(
    provider: Type[Provider], stream: bool, ignore_working: bool, ignore_stream: bool
) -> Optional[Tuple[str, str]]:
    """Why ``provider`` cannot take this call and what to do, or None if it can."""
    if not ignore_working and not provider.working:
        return (
            "is not working (working = False: its site is offline)",
            "pass ignore_working=True (the default) to call it anyway, e.g. against the emulator or a mirror "
            "through base_url=",
        )
    if stream and not provider.supports_stream and not ignore_stream:
        return (
            "does not stream (supports_stream = False)",
            "pass stream=False, or ignore_stream=True to call it anyway",
        )
    return None


def _filter_retry(
    provider: RetryProvider, stream: bool, ignore: Collection[str], ignore_working: bool, ignore_stream: bool
) -> RetryProvider:
    kept = [
        p
        for p in provider.providers
        if p.__name__.lower() not in ignore and not _unusable(p, stream, ignore_working, ignore_stream)
    ]
    if len(kept) == len(provider.providers):
        return provider
    if not kept:
        names = ", ".join(p.__name__ for p in provider.providers)
        raise InvalidArgumentError(
            f"every provider of the RetryProvider ({names}) is ignored, not working (ignore_working=False) "
            "or cannot stream (ignore_stream=False)"
        )
    return RetryProvider(kept, shuffle=provider.shuffle)


def _ignored_names(ignored: Any) -> Collection[str]:
    if ignored is None:
        return ()
    if isinstance(ignored, str) or not isinstance(ignored, (list, tuple, set, frozenset)):
        hint = f" (did you mean ignored=[{ignored!r}]?)" if isinstance(ignored, str) else ""
        raise InvalidArgumentError(f"ignored must be a list of provider names, not {type(ignored).__name__}{hint}")
    for name in ignored:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"ignored must hold provider names (strings), not {type(name).__name__}")
    return {name.lower() for name in ignored}


def _with_auth(provider: AnyProvider, auth: Any, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """g4f's ``auth=``: the key, passed as ``api_key=`` to providers that take one."""
    if auth is None:
        return kwargs
    if not isinstance(auth, str) or not auth:
        raise InvalidArgumentError(f"auth must be a non-empty string (the key), not {type(auth).__name__}")
    providers = provider.providers if isinstance(provider, RetryProvider) else [provider]
    keyless = [p.__name__ for p in providers if "api_key" not in p.options]
    if keyless:
        raise UnsupportedOptionError(
            f"{', '.join(keyless)} take{'s' if len(keyless) == 1 else ''} no key: auth= is passed as api_key= "
            "to providers that accept one (OpenAICompatible, Ylokh); drop auth= for this provider",
            provider=keyless[0],
        )
    if kwargs.get("api_key") not in (None, auth):
        raise InvalidArgumentError("auth= and api_key= are two different keys: pass the key once")
    return {**kwargs, "api_key": auth}


def _check_stream(stream: Any) -> bool:
    if not isinstance(stream, bool):
        raise InvalidArgumentError(f"stream must be True or False, not {stream!r}")
    return stream


class ChatCompletion:
    """g4f-style entry point: pick a provider, return a string or a stream.

    Besides the provider's own arguments (``base_url``, ``timeout``, options, ...), it
    takes g4f's: ``ignored`` (provider names to skip when choosing by model, and to drop
    from a :class:`RetryProvider`), ``ignore_working`` (g4f refuses providers marked
    ``working = False`` unless it is True; every seed provider here is marked so, because
    the sites are offline, and is used against the emulator or a mirror, so the default
    here is True: they are allowed, as before; pass False for g4f's check),
    ``ignore_stream`` (allow ``stream=True`` with a provider whose ``supports_stream`` is
    False; by default that is refused) and ``auth`` (the key: passed as ``api_key`` to
    providers that take one, such as :class:`OpenAICompatible`; for a provider that takes
    no key it is an :class:`UnsupportedOptionError`, never silently dropped).
    """

    @overload
    @staticmethod
    def create(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        stream: Literal[False] = False,
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> str: ...

    @overload
    @staticmethod
    def create(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        *,
        stream: Literal[True],
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> Stream: ...

    @overload
    @staticmethod
    def create(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg,
        stream: Literal[True],
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> Stream: ...

    @overload
    @staticmethod
    def create(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        stream: bool = False,
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> Union[str, Stream]: ...

    @staticmethod
    def create(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        stream: bool = False,
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> Union[str, Stream]:
        """With ``stream=True`` a :class:`Stream` of deltas, otherwise the whole text.

        ``provider`` is a provider class, its registered name, a :class:`RetryProvider`,
        or None for the first provider that lists ``model`` (see :func:`resolve_provider`);
        g4f's ``auth``, ``ignored``, ``ignore_working`` and ``ignore_stream`` are described
        on the class. Everything is checked before any network I/O.
        """
        streaming = _check_stream(stream)
        cls = resolve_provider(
            provider, model, stream=streaming, ignored=ignored, ignore_working=ignore_working, ignore_stream=ignore_stream
        )
        kwargs = _with_auth(cls, auth, kwargs)
        if streaming:
            return cls.create_completion(model, messages, stream=True, **kwargs)
        return cls.create(model, messages, stream=False, **kwargs)

    @overload
    @staticmethod
    async def create_async(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        stream: Literal[False] = False,
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> str: ...

    @overload
    @staticmethod
    async def create_async(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        *,
        stream: Literal[True],
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> AsyncStream: ...

    @overload
    @staticmethod
    async def create_async(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg,
        stream: Literal[True],
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> AsyncStream: ...

    @overload
    @staticmethod
    async def create_async(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        stream: bool = False,
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> Union[str, AsyncStream]: ...

    @staticmethod
    async def create_async(
        model: Optional[str],
        messages: Messages,
        provider: ProviderArg = None,
        stream: bool = False,
        *,
        auth: Optional[str] = None,
        ignored: Optional[Collection[str]] = None,
        ignore_working: bool = True,
        ignore_stream: bool = False,
        **kwargs: Any,
    ) -> Union[str, "AsyncStream"]:
        """The async form of :meth:`create`: the whole text, or with ``stream=True`` an
        :class:`AsyncStream` of deltas. Takes the same arguments."""
        streaming = _check_stream(stream)
        cls = resolve_provider(
            provider, model, stream=streaming, ignored=ignored, ignore_working=ignore_working, ignore_stream=ignore_stream
        )
        kwargs = _with_auth(cls, auth, kwargs)
        if streaming:
            return cls.create_async_generator(model, messages, stream=True, **kwargs)
        return await cls.create_async(model, messages, stream=False, **kwargs)
