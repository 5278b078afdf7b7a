"""Retries: run a provider call again when it failed before yielding any text.

Once a delta has reached the caller, a failure is final: a retry would repeat text.
Before that, connection failures, timeouts, 429, 5xx, a stream that broke before
its first delta and an empty reply are retried, with exponential backoff and jitter;
``Retry-After`` is honoured up to :attr:`RetryPolicy.max_retry_after`. Each attempt
has a reply of its own, so a retried attempt leaves nothing behind. The error of the
last attempt is raised, with ``attempts`` holding the earlier ones (its ``str()``
lists them).
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, ClassVar, Iterator, List, Optional, Protocol, Tuple

from ._exceptions import (
    CloudflareError,
    EmptyResponseError,
    InvalidArgumentError,
    LLMProvidersError,
    RateLimitError,
    ResponseStatusError,
    StreamInterruptedError,
    TransportError,
)
from ._reply import Reply
from .events import Usage

__all__ = ["RetryPolicy", "is_retryable", "run_attempts", "resolve_retries"]

log = logging.getLogger(__name__)


class RetryPolicy:
    """How a provider retries (immutable). ``max_retries`` is the number of retries
    after the first attempt (openai-python's default is 2, and so is ours);
    ``initial_backoff`` the seconds before the first retry, doubled each time up to
    ``max_backoff``; ``max_retry_after`` the longest ``Retry-After`` waited for."""

    __slots__ = ("max_retries", "initial_backoff", "max_backoff", "max_retry_after", "__weakref__")
    _fields: ClassVar[Tuple[str, ...]] = ("max_retries", "initial_backoff", "max_backoff", "max_retry_after")
    __match_args__ = ("max_retries", "initial_backoff", "max_backoff", "max_retry_after")
    max_retries: int
    initial_backoff: float
    max_backoff: float
    max_retry_after: float

    def __init__(
        self, max_retries: int = 2, initial_backoff: float = 0.5, max_backoff: float = 8.0, max_retry_after: float = 60.0
    ) -> None:
        for name, value in zip(self._fields, (max_retries, initial_backoff, max_backoff, max_retry_after)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a RetryPolicy cannot be changed: make another (field {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a RetryPolicy cannot be changed: make another (field {name!r})")

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if type(other) is type(self) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields) + ")"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), self._values())

    def __setstate__(self, state: Any) -> None:
        """Fields from a state dict: what pickles of the earlier dataclass hold."""
        if isinstance(state, tuple):
            state = {**(state[0] or {}), **(state[1] or {})}
        for name, value in (state or {}).items():
            object.__setattr__(self, name, value)

    def backoff(self, retry: int, error: BaseException) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            return min(float(error.retry_after), self.max_retry_after)
        delay = min(self.initial_backoff * 2.0**retry, self.max_backoff)
        return delay * random.uniform(0.75, 1.0)


def is_retryable(error: BaseException) -> bool:
    """Whether a failure before the first delta is worth another attempt."""
    if isinstance(error, CloudflareError):
        return False  # a challenge page does not go away by asking again
    if isinstance(error, ResponseStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, (TransportError, StreamInterruptedError, EmptyResponseError))


class Attempts(Protocol):
    """What :func:`run_attempts` needs of a call: its provider's name, the time left,
    a sleep that an abort cuts short, and whether it was aborted."""

    provider: str

    @property
    def aborted(self) -> bool: ...

    def remaining(self) -> Optional[float]: ...

    def sleep(self, seconds: float) -> bool: ...


def run_attempts(
    attempt: Callable[[Reply], Iterator[Any]],
    new_reply: Callable[[], Reply],
    call: Attempts,
    policy: RetryPolicy,
    commit: Callable[[Reply], None],
) -> Iterator[Any]:
    """Yield the items of the first attempt that gets one out.

    Each attempt runs ``attempt(reply)`` on a fresh ``new_reply()``; an attempt that
    fails before its first item of output (token counts alone are not output), or ends
    with none (an :class:`EmptyResponseError`), is
    dropped whole, reply and all, and tried again while the policy, the deadline and
    the error allow. The first item commits the attempt's reply (``commit``); from then
    on an error is final. The error raised is the last attempt's, with ``attempts``
    holding the earlier ones.
    """
    failures: List[LLMProvidersError] = []
    retry = 0
    while True:
        reply = new_reply()
        items = attempt(reply)
        held: List[Any] = []  # token counts before any output: they do not commit the attempt
        try:
            try:
                first = next(items)
                while type(first) is Usage:
                    held.append(first)
                    first = next(items)
            except StopIteration:
                raise EmptyResponseError(
                    f"{call.provider}: the reply ended without any text", provider=call.provider
                ) from None
        except LLMProvidersError as error:
            items.close()  # type: ignore[attr-defined]
            delay = policy.backoff(retry, error) if retry < policy.max_retries and is_retryable(error) else None
            left = call.remaining()
            if delay is not None and left is not None and delay >= left:
                delay = None  # the deadline would pass while waiting
            if delay is None or call.aborted:
                error.attempts = failures
                raise
            retry += 1
            log.debug("%s: attempt %d failed (%s); retrying in %.2f s", call.provider, retry, error, delay)
            if not call.sleep(delay):  # aborted during the backoff
                error.attempts = failures
                raise
            failures.append(error)
            continue
        commit(reply)
        try:
            yield from held
            yield first
            yield from items
        finally:
            items.close()  # type: ignore[attr-defined]  # also when the caller stops at `first`
        return


def resolve_retries(max_retries: Optional[int], policy: RetryPolicy) -> RetryPolicy:
    """The policy with a per-call ``max_retries`` applied."""
    if max_retries is None:
        return policy
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError(f"max_retries must be a whole number >= 0, not {max_retries!r}")
    return RetryPolicy(max_retries, policy.initial_backoff, policy.max_backoff, policy.max_retry_after)
