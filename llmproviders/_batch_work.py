"""What a batch ships to a worker, and what the worker does with it: one attempt.

A worker may be a thread, a process of a ``ProcessPoolExecutor`` (``fork`` or
``spawn``) or a node of a Dask cluster, so everything here is picklable and imports
nothing heavier than the providers: :class:`Task` names the provider class by
``module:qualname`` and carries the model, the checked messages and the options;
:func:`run_attempt` makes exactly one attempt (``max_retries=0``: the batch's scheduler
decides about retries, so that each one passes the rate limit and the shared pause)
and returns an :class:`Outcome`, never raising for a failed call. Workers never touch
the store.

In a thread of the calling process a task also carries a :class:`Flight`, through
which the scheduler can abort the stream on Ctrl-C.
"""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Type

from .events import Usage

if TYPE_CHECKING:  # pragma: no cover
    from ._provider import Provider
    from ._stream import Stream

__all__ = ["Task", "Outcome", "Flight", "run_attempt", "provider_ref", "resolve_provider"]


def provider_ref(provider: "Type[Provider]") -> str:
    """``module:qualname`` of a provider class: how a task names it."""
    return f"{provider.__module__}:{provider.__qualname__}"


def resolve_provider(ref: str) -> "Type[Provider]":
    """The provider class a task names (imported where needed; else by registered name)."""
    from ._provider import Provider, get_provider

    module_name, _, qualname = ref.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        found = None
    if isinstance(found, type) and issubclass(found, Provider):
        return found
    return get_provider(qualname.rpartition(".")[2])


class Flight:
    """The stream of an attempt running in a thread of this process, so that the
    scheduler can abort it (Ctrl-C). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: Optional["Stream"] = None
        self._aborted = False

    def attach(self, stream: "Stream") -> bool:
        """Register the attempt's stream; False if the batch was interrupted already."""
        with self._lock:
            if self._aborted:
                return False
            self._stream = stream
            return True

    def detach(self) -> None:
        with self._lock:
            self._stream = None

    def abort(self) -> None:
        """Stop the attempt: now if its stream is reading, else as soon as it starts."""
        with self._lock:
            self._aborted = True
            stream = self._stream
        if stream is not None:
            stream.abort()


@dataclass(frozen=True)
class Task:
    """One attempt at one item. ``number`` (1 for the first attempt) and ``job`` make
    each task distinct, so an executor that caches by arguments (Dask's pure tasks)
    never hands back an earlier attempt's outcome."""

    job: str
    index: int
    number: int
    provider: str
    model: Optional[str]
    messages: List[Dict[str, Any]]
    options: Dict[str, Any]
    flight: Optional[Flight] = None

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["flight"] = None  # a lock does not travel; another process cannot be aborted from here
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass
class Outcome:
    """What one attempt came to. ``delivered``: output had reached the stream before
    the error (so a retry would repeat it, and the error is final). ``started`` is the
    Unix time the attempt started, ``seconds`` how long it took in the worker."""

    text: Optional[str]
    usage: Optional[Usage]
    finish_reason: Optional[str]
    error: Optional[BaseException]
    delivered: bool
    started: float
    seconds: float


def run_attempt(task: Task) -> Outcome:
    """Make one attempt (no retries) at the task's completion, reading it to its end."""
    started, clock = time.time(), time.perf_counter()
    delivered = False
    stream: Optional["Stream"] = None
    flight = task.flight
    try:
        provider = resolve_provider(task.provider)
        stream = provider.create_completion(task.model, task.messages, **task.options)
        with stream:
            if flight is not None and not flight.attach(stream):
                return _failed(task, stream, _interrupted(provider.__name__), False, started, clock)
            for event in stream.events():
                if not delivered and type(event) is not Usage:
                    delivered = True  # as in run_attempts: output commits the attempt
        return Outcome(stream.text, stream.usage, stream.finish_reason, None, True, started, time.perf_counter() - clock)
    except Exception as error:  # any failure is this item's, never the batch's
        if flight is None:  # it goes back to another process
            _portable(error)
        return _failed(task, stream, error, delivered, started, clock)
    finally:
        if flight is not None:
            flight.detach()


def _failed(task: Task, stream: Optional["Stream"], error: BaseException, delivered: bool, started: float, clock: float) -> Outcome:
    usage = stream.usage if stream is not None else None
    return Outcome(None, usage, None, error, delivered, started, time.perf_counter() - clock)


def _portable(error: BaseException) -> None:
    """Make ``error`` travel back the same way under any pickler: without tracebacks, and
    without causes from outside this library (a ``requests`` error may hold a connection).
    The library's errors drop those when pickled; but ``distributed`` installs tblib's
    reducers for every exception class, which would send them along."""
    from ._exceptions import LLMProvidersError

    error.__traceback__ = None
    error.__context__ = None
    cause = error.__cause__
    if isinstance(cause, LLMProvidersError):
        _portable(cause)
    elif cause is not None:
        error.__cause__ = None
    for earlier in getattr(error, "attempts", None) or ():
        if isinstance(earlier, BaseException):
            _portable(earlier)


def _interrupted(provider: str) -> BaseException:
    from ._exceptions import StreamInterruptedError

    return StreamInterruptedError(f"{provider}: the batch was interrupted before this request started", provider=provider)

