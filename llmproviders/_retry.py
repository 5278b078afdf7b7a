"""Retries: run a provider call again when it failed before yielding any text.

Once a delta has reached the caller, a failure is final: a retry would repeat text.
Before that, connection failures, timeouts, 429, 5xx, a stream that broke before
its first delta and an empty reply are retried, with exponential backoff and jitter;
``Retry-After`` is honoured up to :attr:`RetryPolicy.max_retry_after`. The error of
the last attempt is raised, with ``attempts`` holding the earlier ones and a message
that lists them.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

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
from ._http import Call

__all__ = ["RetryPolicy", "is_retryable", "with_retries", "resolve_retries"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How a provider retries. ``max_retries`` is the number of retries after the
    first attempt (openai-python's default is 2, and so is ours)."""

    max_retries: int = 2
    initial_backoff: float = 0.5  # seconds before the first retry, doubled each time
    max_backoff: float = 8.0
    max_retry_after: float = 60.0  # the longest Retry-After that is waited for

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


def with_retries(
    attempt: Callable[[], Iterator[str]], call: Call, policy: RetryPolicy, *, allow_empty: Callable[[], bool]
) -> Iterator[str]:
    """Yield the deltas of the first attempt that gets a delta out.

    ``attempt`` starts the protocol afresh; ``allow_empty`` says whether an attempt
    that ended without text finished explicitly (else it is an EmptyResponseError).
    """
    failures: List[LLMProvidersError] = []
    retry = 0
    while True:
        deltas = attempt()
        try:
            try:
                first = next(deltas)
            except StopIteration:
                if allow_empty():
                    return
                raise EmptyResponseError(
                    f"{call.provider}: the reply ended without any text", provider=call.provider
                ) from None
        except LLMProvidersError as error:
            deltas.close()  # type: ignore[attr-defined]
            delay = policy.backoff(retry, error) if retry < policy.max_retries and is_retryable(error) else None
            left = call.remaining()
            if delay is not None and left is not None and delay >= left:
                delay = None  # the deadline would pass while waiting
            if delay is None or call.aborted:
                _record(error, failures)
                raise
            failures.append(error)
            retry += 1
            log.debug("%s: attempt %d failed (%s); retrying in %.2f s", call.provider, retry, error, delay)
            if not call.sleep(delay):
                _record(error, failures)
                raise
            continue
        try:
            yield first
            yield from deltas
        finally:
            deltas.close()  # type: ignore[attr-defined]  # also when the caller stops at `first`
        return


def _record(error: LLMProvidersError, failures: List[LLMProvidersError]) -> None:
    """Give the final error the history of the call's earlier attempts."""
    if not failures:
        return
    error.attempts = list(failures)
    total = len(failures) + 1
    final = _one_line(error)
    if all(_one_line(e) == final for e in failures):
        error.message = f"{error.message} [{total} attempts, all failed the same way]"
        return
    reasons = "; ".join(f"{n}) {_one_line(e)}" for n, e in enumerate(failures, 1))
    error.message = f"{error.message} [{total} attempts; earlier: {reasons}]"


def _one_line(error: BaseException, limit: int = 120) -> str:
    text = " ".join(str(error).split())
    prefix = f"{getattr(error, 'provider', None)}: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resolve_retries(max_retries: Optional[int], policy: RetryPolicy) -> RetryPolicy:
    """The policy with a per-call ``max_retries`` applied."""
    if max_retries is None:
        return policy
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError(f"max_retries must be a whole number >= 0, not {max_retries!r}")
    return RetryPolicy(max_retries, policy.initial_backoff, policy.max_backoff, policy.max_retry_after)
