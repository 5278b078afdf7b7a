"""``RetryProvider``: fall back across providers (the original framework's name).

Providers are tried in order (or shuffled). The next one is tried only when the
current one failed before yielding any text, after its own retries. Once text has
reached the caller, a failure is raised with that text in ``partial``: another
provider's answer is never spliced onto it. When every provider fails, one
:class:`RetryProviderError` lists each with a one-line reason and keeps the errors.

Example usage::

    from llmproviders import RetryProvider, FlowGpt, Ylokh

    provider = RetryProvider([FlowGpt, Ylokh], shuffle=False)
    for delta in provider.create_completion(None, messages):
        print(delta, end="")
"""

from __future__ import annotations

import random
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Type, Union

from ._async import AsyncStream, collect
from ._exceptions import InvalidArgumentError, LLMProvidersError, RetryProviderError
from ._messages import Messages, validate_messages
from ._provider import Provider, get_provider
from ._stream import Stream

__all__ = ["RetryProvider"]


class RetryProvider:
    """A provider made of providers: the first one that answers, answers.

    It has the providers' call methods (``create_completion``, ``create``,
    ``create_async_generator``, ``create_async``) with the same arguments; the model
    and options go to each provider as given (``model=None``: each one's default).
    """

    supports_stream = True

    def __init__(
        self,
        providers: Sequence[Union[str, Type[Provider]]],
        *,
        shuffle: bool = False,
    ) -> None:
        if isinstance(providers, (str, type)) or not providers:
            raise InvalidArgumentError("RetryProvider needs a non-empty list of providers")
        self.providers: List[Type[Provider]] = [get_provider(p) if isinstance(p, str) else p for p in providers]
        self.shuffle = shuffle
        self.__name__ = "RetryProvider"

    @property
    def working(self) -> bool:
        return any(provider.working for provider in self.providers)

    def __repr__(self) -> str:
        names = ", ".join(p.__name__ for p in self.providers)
        return f"RetryProvider([{names}], shuffle={self.shuffle})"

    def create_completion(self, model: Optional[str], messages: Messages, **kwargs: Any) -> Stream:
        """Like :meth:`Provider.create_completion`, across the providers."""
        checked = validate_messages(messages)
        order = list(self.providers)
        if self.shuffle:
            random.shuffle(order)
        run = _Fallback(order, model, checked, kwargs)
        return Stream(run.deltas(), provider="RetryProvider", model=model or "", abort=run.abort, metadata=run.metadata)

    def create(self, model: Optional[str], messages: Messages, **kwargs: Any) -> str:
        """The whole reply of the first provider that answers."""
        with self.create_completion(model, messages, **kwargs) as stream:
            return "".join(stream)

    def create_async_generator(self, model: Optional[str], messages: Messages, **kwargs: Any) -> AsyncStream:
        """The async form of :meth:`create_completion`."""
        return AsyncStream(self.create_completion(model, messages, **kwargs))

    async def create_async(self, model: Optional[str], messages: Messages, **kwargs: Any) -> str:
        """The async form of :meth:`create`."""
        return await collect(self.create_async_generator(model, messages, **kwargs))


class _Fallback:
    """One fallback run: which provider is streaming now, so it can be aborted."""

    def __init__(self, order: List[Type[Provider]], model: Optional[str], messages: Messages, kwargs: Dict[str, Any]) -> None:
        self.order = order
        self.model = model
        self.messages = messages
        self.kwargs = kwargs
        self.metadata: Dict[str, Any] = {}
        self.current: Optional[Stream] = None
        self.aborted = threading.Event()

    def abort(self) -> None:
        self.aborted.set()
        current = self.current
        if current is not None:
            current.abort()

    def deltas(self) -> Iterator[str]:
        errors: Dict[str, LLMProvidersError] = {}
        for provider in self.order:
            if self.aborted.is_set():
                break
            try:
                stream = provider.create_completion(self.model, self.messages, **self.kwargs)
            except LLMProvidersError as error:  # e.g. the model is not one of this provider's
                errors[provider.__name__] = error
                continue
            self.current = stream
            try:
                try:
                    first = next(stream)
                except StopIteration:
                    self.metadata["provider"] = provider.__name__
                    return  # an explicitly empty reply (the provider decided it is legitimate)
                except LLMProvidersError as error:
                    errors[provider.__name__] = error
                    continue
                self.metadata["provider"] = provider.__name__
                yield first
                yield from stream  # a failure from here on is final: nothing is spliced on
                return
            finally:
                stream.close()
                self.current = None
                if "provider" in self.metadata:  # the answering stream's facts, e.g. finish_reason
                    self.metadata.update(stream.metadata, provider=provider.__name__, model=stream.model)
        raise _all_failed(errors, aborted=self.aborted.is_set())


def _all_failed(errors: Dict[str, LLMProvidersError], *, aborted: bool) -> RetryProviderError:
    lines = [f"  {name}: {type(error).__name__}: {_reason(name, error)}" for name, error in errors.items()]
    head = "RetryProvider: aborted" if aborted else f"RetryProvider: all {len(errors)} providers failed"
    return RetryProviderError("\n".join([head + ":"] + lines), errors=errors)


def _reason(name: str, error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    if text.startswith(name + ": "):
        text = text[len(name) + 2 :]
    return text if len(text) <= limit else text[: limit - 1] + "…"
