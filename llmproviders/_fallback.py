"""``RetryProvider``: fall back across providers (the original framework's name).

Providers are tried in order (or shuffled). The next one is tried only when the
current one failed before delivering anything, after its own retries. Once something
has reached the caller, a failure is raised with that text in ``partial``: another
provider's answer is never spliced onto it. ``deadline=`` is one budget for the whole
call, across every provider. When every provider fails, one
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
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Type, Union

from ._exceptions import InvalidArgumentError, LLMProvidersError, RequestTimeoutError, RetryProviderError
from ._http import check_deadline
from ._messages import Messages, validate_messages
from ._provider import Provider, _Run, get_provider
from ._reply import Reply
from ._stream import ReplyView, Stream

if TYPE_CHECKING:  # pragma: no cover
    from ._async import AsyncStream

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
        resolved: List[Type[Provider]] = []
        for item in providers:
            provider = get_provider(item) if isinstance(item, str) else item
            if not (isinstance(provider, type) and issubclass(provider, Provider)):
                raise InvalidArgumentError(f"RetryProvider: {item!r} is not a provider (a Provider class or its name)")
            resolved.append(provider)
        self.providers = resolved
        self.shuffle = shuffle
        self.__name__ = "RetryProvider"

    @property
    def working(self) -> bool:
        return any(provider.working for provider in self.providers)

    def __repr__(self) -> str:
        names = ", ".join(p.__name__ for p in self.providers)
        return f"RetryProvider([{names}], shuffle={self.shuffle})"

    def create_completion(self, model: Optional[str], messages: Messages, *, stream: bool = True, **kwargs: Any) -> Stream:
        """Like :meth:`Provider.create_completion`, across the providers."""
        checked = validate_messages(messages)
        deadline = kwargs.pop("deadline", None)
        total = check_deadline(deadline)
        order = list(self.providers)
        if self.shuffle:
            random.shuffle(order)
        run = _Fallback(order, model, checked, stream, kwargs, total)
        view = ReplyView()
        return Stream(run.items(view), provider="RetryProvider", model=model or "", abort=run.abort, view=view, whole=not stream)

    def create(self, model: Optional[str], messages: Messages, **kwargs: Any) -> str:
        """The whole reply of the first provider that answers."""
        with self.create_completion(model, messages, **kwargs) as stream:
            return "".join(stream)

    def create_async_generator(self, model: Optional[str], messages: Messages, **kwargs: Any) -> "AsyncStream":
        """The async form of :meth:`create_completion`."""
        from ._async import AsyncStream

        return AsyncStream(self.create_completion(model, messages, **kwargs))

    async def create_async(self, model: Optional[str], messages: Messages, **kwargs: Any) -> str:
        """The async form of :meth:`create`."""
        from ._async import collect

        return await collect(self.create_async_generator(model, messages, **kwargs))


class _Fallback:
    """One fallback run: which provider is streaming now (so it can be aborted), and the
    deadline they share."""

    def __init__(
        self,
        order: List[Type[Provider]],
        model: Optional[str],
        messages: List[Dict[str, Any]],
        stream: bool,
        kwargs: Dict[str, Any],
        deadline: Optional[float],
    ) -> None:
        self.order = order
        self.model = model
        self.messages = messages
        self.stream = stream
        self.kwargs = kwargs
        self.deadline = deadline
        self.current: Optional[_Run] = None
        self.aborted = threading.Event()

    def abort(self) -> None:
        self.aborted.set()
        current = self.current
        if current is not None:
            current.abort()

    def items(self, view: ReplyView) -> Iterator[Any]:
        errors: Dict[str, LLMProvidersError] = {}
        started = time.monotonic()
        for provider in self.order:
            if self.aborted.is_set():
                break
            left = None if self.deadline is None else self.deadline - (time.monotonic() - started)
            if left is not None and left <= 0:
                errors[provider.__name__] = RequestTimeoutError(
                    f"{provider.__name__}: not tried: the call's deadline of {self.deadline:g} s had passed",
                    provider=provider.__name__,
                )
                continue
            try:
                run = provider._prepare(
                    self.model,
                    self.messages,
                    stream=self.stream,
                    proxy=self.kwargs.get("proxy"),
                    timeout=self.kwargs.get("timeout"),
                    base_url=self.kwargs.get("base_url"),
                    max_retries=self.kwargs.get("max_retries"),
                    deadline=left,
                    options=_options_for(provider, self.kwargs),
                )
            except LLMProvidersError as error:  # e.g. the model is not one of this provider's
                errors[provider.__name__] = error
                continue
            self.current = run

            def commit(reply: Reply, provider: Type[Provider] = provider, run: _Run = run) -> None:
                view.commit(reply)
                view.metadata["provider"] = provider.__name__
                view.metadata.setdefault("model", run.model)

            items = run.items(commit)
            try:
                try:
                    first = next(items)
                except StopIteration:
                    return
                except LLMProvidersError as error:
                    errors[provider.__name__] = error
                    continue
                yield first
                yield from items  # a failure from here on is final: nothing is spliced on
                return
            finally:
                items.close()  # type: ignore[attr-defined]
                self.current = None
        raise _all_failed(errors, aborted=self.aborted.is_set())


_CALL_ARGUMENTS = frozenset({"proxy", "timeout", "base_url", "max_retries"})


def _options_for(provider: Type[Provider], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The provider options among a call's keyword arguments; an ``api_key`` goes only
    to the providers that take one."""
    options = {k: v for k, v in kwargs.items() if k not in _CALL_ARGUMENTS}
    if "api_key" in options and "api_key" not in provider.options:
        del options["api_key"]
    return options


def _all_failed(errors: Dict[str, LLMProvidersError], *, aborted: bool) -> RetryProviderError:
    lines = [f"  {name}: {type(error).__name__}: {_reason(name, error)}" for name, error in errors.items()]
    head = "RetryProvider: aborted" if aborted else f"RetryProvider: all {len(errors)} providers failed"
    return RetryProviderError("\n".join([head + ":"] + lines), errors=errors)


def _reason(name: str, error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    if text.startswith(name + ": "):
        text = text[len(name) + 2 :]
    return text if len(text) <= limit else text[: limit - 1] + "…"
