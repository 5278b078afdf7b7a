"""``ChatCompletion``: the original framework's top-level entry point.

Example usage::

    from llmproviders import ChatCompletion, FlowGpt

    text = ChatCompletion.create(model="gpt-3.5-turbo", messages=messages, provider=FlowGpt)
    for delta in ChatCompletion.create(model="gpt-4", messages=messages, provider="Chatgpt4Online", stream=True):
        print(delta, end="")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Type, Union

from ._exceptions import ProviderNotFoundError
from ._fallback import RetryProvider
from ._messages import Messages
from ._provider import Provider, get_provider, list_providers
from ._stream import Stream

if TYPE_CHECKING:  # pragma: no cover
    from ._async import AsyncStream

__all__ = ["ChatCompletion", "resolve_provider"]


AnyProvider = Union[Type[Provider], RetryProvider]


def resolve_provider(provider: Union[None, str, AnyProvider], model: Optional[str]) -> AnyProvider:
    """A provider from a provider (class or :class:`RetryProvider`), a registered name,
    or (None) the first provider that lists ``model`` among its models or aliases."""
    if isinstance(provider, str):
        return get_provider(provider)
    if provider is not None:
        return provider
    for candidate in list_providers():
        if model and (model in candidate.models or model in candidate.model_aliases):  # static: no I/O
            return candidate
    names = ", ".join(p.__name__ for p in list_providers())
    raise ProviderNotFoundError(
        f"no provider lists model {model!r}; pass provider=... (one of: {names})",
        known=[p.__name__ for p in list_providers()],
    )


class ChatCompletion:
    """g4f-style entry point: pick a provider, return a string or a stream."""

    @staticmethod
    def create(
        model: Optional[str],
        messages: Messages,
        provider: Union[None, str, AnyProvider] = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> Union[str, Stream]:
        """With ``stream=True`` a :class:`Stream` of deltas, otherwise the whole text."""
        cls = resolve_provider(provider, model)
        if stream:
            return cls.create_completion(model, messages, stream=True, **kwargs)
        return cls.create(model, messages, stream=False, **kwargs)

    @staticmethod
    async def create_async(
        model: Optional[str],
        messages: Messages,
        provider: Union[None, str, AnyProvider] = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> Union[str, "AsyncStream"]:
        """The async form of :meth:`create`: the whole text, or with ``stream=True`` an
        :class:`AsyncStream` of deltas."""
        cls = resolve_provider(provider, model)
        if stream:
            return cls.create_async_generator(model, messages, stream=True, **kwargs)
        return await cls.create_async(model, messages, stream=False, **kwargs)
