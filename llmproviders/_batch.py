"""Batch jobs: one provider, many prompts, on threads, processes or a Dask cluster.

:func:`batch` runs every input through one provider and returns a
:class:`~llmproviders.BatchResult` in input order, with a per-item error instead of one
failure stopping the run. The calling process schedules every request: it keeps at most
``workers`` in flight, spreads their starts under ``rate_limit``, pauses everything that
targets a provider while a 429's ``Retry-After`` runs, and runs the retries itself.
Workers (an executor's threads, processes or cluster nodes) make one attempt per task
(:mod:`llmproviders._batch_work`) and send back what came of it; only the calling
process writes the store (:class:`~llmproviders.BatchStore`), one commit per finished
item, so a run that is killed resumes where it stopped without sending a finished item
again.

Why retries are the scheduler's and not the call's own (``max_retries=0`` on each
attempt): that way every retry is a request start like any other, so it counts against
the rate limit and waits out a shared pause, on any executor. The retry decisions are
the call's own policy (the provider's ``retry_policy``, ``max_retries=``, ``deadline=``,
:func:`~llmproviders._retry.is_retryable`), applied exactly as a single call applies
them: only failures before the first output are retried, with the policy's backoff.

Example usage::

    import llmproviders

    prompts = [f"Summarise: {text}" for text in texts]
    result = llmproviders.batch("FlowGpt", prompts, workers=8, rate_limit="60/min", store="results.db")
    for item in result:
        print(item.index, item.text if item.ok else item.error)
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import signal
import threading
import time
import uuid
from collections import deque
from queue import Empty, SimpleQueue
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Type, Union

from ._batch_limits import Pauses, RateLimiter, parse_rate
from ._batch_progress import Progress, make_progress
from ._batch_result import BatchError, BatchInterrupted, BatchResult, ItemResult
from ._batch_store import BatchStore, PathArg
from ._batch_work import Flight, Outcome, Task, provider_ref, run_attempt
from ._exceptions import InvalidArgumentError, LLMProvidersError, RateLimitError
from ._http import redact_url
from ._options import Headers, Secret, specs_of
from ._provider import Provider, get_provider
from ._retry import RetryPolicy, is_retryable

__all__ = ["batch", "BatchResult", "ItemResult", "BatchStore", "BatchError", "BatchInterrupted"]

log = logging.getLogger(__name__)

#: The keywords of ``create_completion`` besides the provider's own options.
_CALL_KEYWORDS = ("stream", "proxy", "timeout", "base_url", "max_retries", "deadline")
#: Options that never change the reply, so they are not part of an item's key.
_NOT_IN_KEY = frozenset(("stream", "proxy", "timeout", "max_retries", "deadline"))
_ITEM_KEYS = frozenset(("id", "messages", "prompt", "options"))
_ABORT_WAIT = 10.0  # seconds Ctrl-C waits for aborted threads to let go of their streams

Input = Union[str, List[Dict[str, Any]], Mapping[str, Any]]


def batch(
    provider: Union[str, Type[Provider]],
    inputs: Iterable[Input],
    *,
    model: Optional[str] = None,
    workers: int = 8,
    store: Union[None, PathArg, BatchStore] = None,
    progress: bool = True,
    rate_limit: Union[None, str, float] = None,
    executor: Optional[Executor] = None,
    retry_failed: bool = False,
    **options: Any,
) -> BatchResult:
    """Run every input through ``provider`` and return the results in input order.

    ``inputs`` is an iterable of prompts (``str``), message lists, or dicts with
    ``messages`` (or ``prompt``), an optional ``id`` and optional ``options`` (keyword
    arguments for this item only). ``options`` are any keyword arguments that
    ``create_completion`` accepts (``base_url``, ``api_key``, ``proxy``, ``timeout``,
    ``deadline``, ``max_retries`` and the provider's own), applied to every item. All of
    it is checked before any request is sent (the error names the item).

    - ``workers``: the most items in flight at once (on ``executor``, at most as many
      as it can run). The default executor is a pool of ``workers`` threads;
      ``executor`` takes any ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``
      with ``fork`` or ``spawn``, ``distributed.Client(...).get_executor()``). It is
      not shut down: it is yours.
    - ``rate_limit``: ``"N/min"``, ``"N/s"`` or ``"N/h"``: request starts (retries
      included) across all workers, spread evenly, at most one second's worth at once.
    - A 429 with ``Retry-After`` pauses every request to that provider (and host) until
      the time has passed (up to the retry policy's ``max_retry_after``).
    - ``store``: a path or a :class:`BatchStore`. Each finished item is committed to
      it; an item it already has as done is not sent again (it comes back with
      ``from_store=True`` and counts as skipped), nor one it has as failed unless
      ``retry_failed=True``. An item is known by its ``id``, or else by a hash of the
      provider, host, model, messages and options (secrets, timeouts and retry
      settings left out).
    - ``progress``: a bar (tqdm, if installed) or a line on stderr; False for none.

    A failed item never stops the others: its ``error`` is the typed exception.
    Ctrl-C closes the in-flight streams (on this process's threads), keeps the store
    consistent and raises a ``KeyboardInterrupt`` (:class:`BatchInterrupted`) whose
    ``result`` holds what finished and ``pending`` counts the rest.
    """
    provider_class = _provider_class(provider)
    capacity = _check_workers(workers)
    limiter = RateLimiter(parse_rate(rate_limit)) if rate_limit is not None else None
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InvalidArgumentError(
            f"executor must be a concurrent.futures.Executor (or have its submit()), not {type(executor).__name__}"
        )
    if store is not None and not isinstance(store, (BatchStore, str)) and not hasattr(store, "__fspath__"):
        raise InvalidArgumentError(f"store must be a path or a BatchStore, not {type(store).__name__}")
    items = _items(provider_class, model, inputs, options)

    opened = store if store is None or isinstance(store, BatchStore) else BatchStore(store)
    try:
        job = _Job(provider_class, model, items, opened, limiter, executor, capacity, progress, retry_failed)
        return job.run()
    finally:
        if opened is not None and opened is not store:  # a store you pass stays open: it is yours
            opened.close()


# -- checking the arguments and the inputs -------------------------------------------------


def _provider_class(provider: Any) -> Type[Provider]:
    if isinstance(provider, str):
        return get_provider(provider)
    if isinstance(provider, type) and issubclass(provider, Provider):
        return provider
    raise InvalidArgumentError(
        f"batch() takes one provider class or its name (such as 'FlowGpt'), not {type(provider).__name__}"
    )


def _check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be a whole number >= 1, not {workers!r}")
    return workers


@dataclass
class _Item:
    """One input, checked, with its scheduling state."""

    index: int
    id: Any
    key: str
    model: str
    messages: List[Dict[str, Any]]
    options: Dict[str, Any]  # for create_completion, without max_retries and deadline
    target: Tuple[str, Optional[str]]  # what a 429's pause applies to: provider and host
    policy: RetryPolicy
    deadline: Optional[float]
    failures: List[LLMProvidersError] = field(default_factory=list)
    first_start: Optional[float] = None  # time.monotonic() of the first attempt's start
    started_at: Optional[float] = None  # and its Unix time

    @property
    def attempts(self) -> int:
        return len(self.failures) + 1


def _items(provider: Type[Provider], model: Optional[str], inputs: Iterable[Input], options: Dict[str, Any]) -> List[_Item]:
    if isinstance(inputs, (str, bytes, Mapping)):
        raise InvalidArgumentError(
            "inputs must be an iterable of items (prompts, message lists or dicts), "
            f"not one {type(inputs).__name__}: wrap a single item in a list"
        )
    try:
        iterator = iter(inputs)
    except TypeError:
        raise InvalidArgumentError(f"inputs must be an iterable of items, not {type(inputs).__name__}") from None
    items: List[_Item] = []
    ids: Dict[str, int] = {}
    hashes: Dict[str, int] = {}
    for index, raw in enumerate(iterator):
        try:
            item = _item(provider, model, index, raw, options)
        except LLMProvidersError as error:
            _name_item(error, index, raw)
            raise
        if item.id is not None:
            if item.key in ids:
                raise InvalidArgumentError(
                    f"batch items {ids[item.key]} and {index} have the same id {item.id!r}: ids must be unique"
                )
            ids[item.key] = index
        else:
            seen = hashes.get(item.key, 0) + 1
            hashes[item.key] = seen
            if seen > 1:  # the same request again: a key of its own, stable across runs
                item.key = f"{item.key}-{seen}"
        items.append(item)
    return items


def _item(provider: Type[Provider], model: Optional[str], index: int, raw: Any, options: Dict[str, Any]) -> _Item:
    item_id: Any = None
    item_options: Mapping[str, Any] = {}
    if isinstance(raw, str):
        messages: Any = [{"role": "user", "content": raw}]
    elif isinstance(raw, Mapping):
        unknown = sorted(str(key) for key in raw if key not in _ITEM_KEYS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown key(s) {', '.join(unknown)}: an item dict has messages (or prompt), and maybe id and options"
            )
        if ("messages" in raw) == ("prompt" in raw):
            raise InvalidArgumentError("an item dict needs exactly one of messages and prompt")
        if "prompt" in raw:
            if not isinstance(raw["prompt"], str):
                raise InvalidArgumentError(f"prompt must be a str, not {type(raw['prompt']).__name__}")
            messages = [{"role": "user", "content": raw["prompt"]}]
        else:
            messages = raw["messages"]
        item_id = raw.get("id")
        if item_id is not None and (isinstance(item_id, bool) or not isinstance(item_id, (str, int))):
            raise InvalidArgumentError(f"id must be a str or an int, not {type(item_id).__name__}")
        item_options = raw.get("options") or {}
        if not isinstance(item_options, Mapping):
            raise InvalidArgumentError(f"options must be a dict of keyword arguments, not {type(item_options).__name__}")
    else:
        messages = raw  # a message list, checked by the provider
    merged = {**options, **item_options}
    call = {name: merged.pop(name) for name in _CALL_KEYWORDS if name in merged}
    run = provider._prepare(
        model,
        messages,
        stream=call.get("stream", True),
        proxy=call.get("proxy"),
        timeout=call.get("timeout"),
        base_url=call.get("base_url"),
        max_retries=call.get("max_retries"),
        deadline=call.get("deadline"),
        options=merged,
    )
    host = redact_url(run.call.base_url) if run.call.base_url else None
    keyed = {name: value for name, value in run.options.items() if not _secret(provider, name)}
    key = str(item_id) if item_id is not None else _hash([provider.__name__, host, run.model, run.messages, keyed])
    passed = {name: value for name, value in {**options, **item_options}.items() if name not in ("max_retries", "deadline")}
    return _Item(
        index=index,
        id=item_id,
        key=key,
        model=run.model,
        messages=run.messages,
        options=passed,
        target=(provider.__name__, host),
        policy=run.policy,
        deadline=run.call.deadline,
    )


def _secret(provider: Type[Provider], name: str) -> bool:
    if name in _NOT_IN_KEY:
        return True
    spec = specs_of(provider.options).get(name)
    return isinstance(spec, (Secret, Headers))


def _hash(parts: List[Any]) -> str:
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _name_item(error: LLMProvidersError, index: int, raw: Any) -> None:
    """Say which item an input error is about (the error keeps its type)."""
    item_id = raw.get("id") if isinstance(raw, Mapping) else None
    name = f"batch item {index}" + (f" (id {item_id!r})" if isinstance(item_id, (str, int)) else "")
    error.message = f"{name}: {error.message}"
    error.args = (error.message,)


# -- running the job ---------------------------------------------------------------------


class _Interrupts:
    """Ctrl-C while the job updates its state (a commit to the store and the result it
    records) waits until the update is whole. Installed only over Python's default
    SIGINT handler, in the main thread; elsewhere Ctrl-C is left as it is."""

    def __init__(self) -> None:
        self._deferring = False
        self._pending = False
        self._previous: Any = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self._deferring:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._pending:
                self._pending = False
                raise KeyboardInterrupt


class _Job:
    """One run of :func:`batch`: the scheduler, in the calling thread."""

    def __init__(
        self,
        provider: Type[Provider],
        model: Optional[str],
        items: List[_Item],
        store: Optional[BatchStore],
        limiter: Optional[RateLimiter],
        executor: Optional[Executor],
        workers: int,
        progress: bool,
        retry_failed: bool,
    ) -> None:
        self.provider = provider
        self.provider_ref = provider_ref(provider)
        self.model = model
        self.items = items
        self.store = store
        self.limiter = limiter
        self.executor = executor
        self.local = executor is None or isinstance(executor, ThreadPoolExecutor)
        self.capacity = min(workers, _capacity(executor)) if executor is not None else workers
        self.progress: Progress = make_progress(bool(progress))
        self.retry_failed = retry_failed
        self.job = uuid.uuid4().hex[:12]
        self.results: List[Optional[ItemResult]] = [None] * len(items)
        self.pauses = Pauses()
        self.interrupts = _Interrupts()
        self.in_flight: Dict["Future[Outcome]", Tuple[_Item, Optional[Flight]]] = {}
        # Each attempt's future lands here as it finishes: waiting on one queue costs the
        # same however many attempts are in flight (concurrent.futures.wait would
        # install a waiter on each of them for every completion).
        self.finished: "SimpleQueue[Future[Outcome]]" = SimpleQueue()
        self.retries: List[Tuple[float, int, _Item]] = []  # (when, index, item): a heap
        self.fresh: Deque[_Item] = deque()
        self.done = self.failed = 0
        self.run_number = 0

    def run(self) -> BatchResult:
        started = time.monotonic()
        skipped, stored_failed = self._take_stored()
        if not self.fresh:
            return BatchResult([r for r in self.results if r is not None], seconds=time.monotonic() - started)
        if self.store is not None:
            self.run_number = self.store.begin_run(len(self.items), self.provider.__name__, self.model)
        own = self.executor is None
        executor = self.executor or ThreadPoolExecutor(self.capacity, thread_name_prefix="llmproviders-batch")
        status = "failed"
        self.interrupts.install()
        try:
            self.progress.start(len(self.items), skipped, stored_failed)
            try:
                self._schedule(executor)
            except KeyboardInterrupt:
                status = "interrupted"
                self.interrupts.uninstall()
                self._stop(executor, own)
                own = False
                raise self._interrupted() from None
            except BaseException:
                self.interrupts.uninstall()
                self._stop(executor, own)
                own = False
                raise
            status = "complete"
        finally:
            self.interrupts.uninstall()
            self.progress.close()
            if own:
                executor.shutdown(wait=True)
            if self.store is not None and not self.store.closed:
                try:
                    self.store.end_run(self.run_number, status)
                except LLMProvidersError as error:  # the items are committed; only the run's status is lost
                    log.debug("could not mark batch run %d %s: %s", self.run_number, status, error)
        return BatchResult([r for r in self.results if r is not None], seconds=time.monotonic() - started)

    def _take_stored(self) -> Tuple[int, int]:
        """Fill in the items the store has; queue the others. Returns the counts
        (done, failed) taken from the store."""
        stored = self.store.finished(item.key for item in self.items) if self.store is not None else {}
        skipped = failed = 0
        for item in self.items:
            found = stored.get(item.key)
            if found is not None and (found.ok or not self.retry_failed):
                self.results[item.index] = _reindexed(found, item)
                skipped += found.ok
                failed += not found.ok
            else:
                self.fresh.append(item)
        self.failed = failed
        return skipped, failed

    # -- the loop ------------------------------------------------------------------------

    def _schedule(self, executor: Executor) -> None:
        while self.fresh or self.retries or self.in_flight:
            wake = self._start_what_can_start(executor)
            timeout = None if wake is None else max(0.0, wake - time.monotonic())
            if self.in_flight:
                try:
                    future = self.finished.get(timeout=timeout)
                except Empty:
                    continue  # time to start what waited (a retry, the end of a pause)
                while True:  # this one, and every other that finished meanwhile
                    with self.interrupts.deferred():
                        self._finish(future)
                    try:
                        future = self.finished.get_nowait()
                    except Empty:
                        break
            elif timeout is not None:
                time.sleep(timeout)

    def _start_what_can_start(self, executor: Executor) -> Optional[float]:
        """Start attempts while a worker is free, nothing is paused and the rate limit
        allows; return when to look again (None: when an attempt ends)."""
        while len(self.in_flight) < self.capacity:
            now = time.monotonic()
            if self.retries and self.retries[0][0] <= now:
                item = self.retries[0][2]
            elif self.fresh:
                item = self.fresh[0]
            else:
                return self.retries[0][0] if self.retries else None
            paused = self.pauses.left(item.target, now)
            if paused > 0:
                return now + paused
            if self.limiter is not None:
                wait_for = self.limiter.take(now)
                if wait_for > 0:
                    return now + wait_for
            with self.interrupts.deferred():
                if self.retries and self.retries[0][2] is item:
                    heapq.heappop(self.retries)
                else:
                    self.fresh.popleft()
                self._submit(executor, item, now)
        return None

    def _submit(self, executor: Executor, item: _Item, now: float) -> None:
        if item.first_start is None:
            item.first_start, item.started_at = now, time.time()
        options = dict(item.options, max_retries=0)
        if item.deadline is not None:
            left = item.deadline - (now - item.first_start)
            if left <= 0:  # the pause or the rate limit held the retry past the deadline
                error = item.failures.pop()
                self._record_failure(item, error)
                return
            options["deadline"] = left
        flight = Flight() if self.local else None
        task = Task(self.job, item.index, item.attempts, self.provider_ref, item.model, item.messages, options, flight)
        future = executor.submit(run_attempt, task)  # an executor that refuses work stops the batch
        self.in_flight[future] = (item, flight)
        future.add_done_callback(self.finished.put)  # (at once, here, if it is done already)

    def _finish(self, future: "Future[Outcome]") -> None:
        item, _ = self.in_flight.pop(future)
        try:
            outcome = future.result()
        except (BrokenExecutor, CancelledError):
            raise
        except Exception as failure:  # the executor's own failure (a lost worker, an unpicklable result)
            outcome = Outcome(None, None, None, failure, False, time.time(), 0.0)
        if outcome.error is None:
            self._record(item, ok=True, text=outcome.text, error=None, outcome=outcome)
            return
        error = outcome.error
        now = time.monotonic()
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            self.pauses.pause(item.target, now + min(float(error.retry_after), item.policy.max_retry_after))
        delay = self._retry_delay(item, error, outcome.delivered, now)
        if delay is None:
            self._record_failure(item, error, outcome)
            return
        assert isinstance(error, LLMProvidersError)
        item.failures.append(error)
        log.debug("%s: batch item %d, attempt %d failed (%s); retrying in %.2f s", item.target[0], item.index, len(item.failures), error, delay)
        heapq.heappush(self.retries, (now + delay, item.index, item))

    def _retry_delay(self, item: _Item, error: BaseException, delivered: bool, now: float) -> Optional[float]:
        """The backoff before the next attempt, or None if the error is final: as
        :func:`~llmproviders._retry.run_attempts` decides for a single call."""
        if delivered or not isinstance(error, LLMProvidersError) or not is_retryable(error):
            return None
        retry = len(item.failures)
        if retry >= item.policy.max_retries:
            return None
        delay = item.policy.backoff(retry, error)
        if item.deadline is not None and item.first_start is not None:
            if delay >= item.deadline - (now - item.first_start):
                return None  # the deadline would pass while waiting
        return delay

    # -- recording -----------------------------------------------------------------------

    def _record_failure(self, item: _Item, error: BaseException, outcome: Optional[Outcome] = None) -> None:
        if isinstance(error, LLMProvidersError):
            error.attempts = list(item.failures)
        self._record(item, ok=False, text=None, error=error, outcome=outcome)

    def _record(self, item: _Item, *, ok: bool, text: Optional[str], error: Optional[BaseException], outcome: Optional[Outcome]) -> None:
        seconds = time.monotonic() - item.first_start if item.first_start is not None else 0.0
        result = ItemResult(
            index=item.index,
            id=item.id,
            key=item.key,
            ok=ok,
            text=text,
            error=error,
            usage=outcome.usage if outcome is not None else None,
            finish_reason=outcome.finish_reason if outcome is not None else None,
            attempts=item.attempts,
            seconds=seconds,
        )
        if self.store is not None:
            self.store.record(
                result,
                run=self.run_number,
                started_at=item.started_at or time.time(),
                provider=self.provider.__name__,
                model=item.model,
            )
        self.results[item.index] = result
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.progress.update(self.done, self.failed)

    # -- stopping ------------------------------------------------------------------------

    def _stop(self, executor: Executor, own: bool) -> None:
        """After Ctrl-C or a fatal error: cancel what has not started, abort the streams
        running in this process's threads, keep what finished meanwhile."""
        for future in self.in_flight:
            future.cancel()
        if self.local:
            for _, flight in self.in_flight.values():
                if flight is not None:
                    flight.abort()
            finished, _ = wait(list(self.in_flight), timeout=_ABORT_WAIT)
            for future in finished:
                item, _ = self.in_flight.pop(future)
                if not future.cancelled() and future.exception() is None:
                    outcome = future.result()
                    if outcome.error is None:  # it had finished before it was aborted
                        try:
                            self._record(item, ok=True, text=outcome.text, error=None, outcome=outcome)
                        except LLMProvidersError:  # the store failed (the reason we stop): keep what is kept
                            pass
        if own:
            executor.shutdown(wait=True, cancel_futures=True)

    def _interrupted(self) -> BatchInterrupted:
        finished = [result for result in self.results if result is not None]
        return BatchInterrupted(BatchResult(finished), len(self.items) - len(finished))


def _reindexed(found: ItemResult, item: _Item) -> ItemResult:
    """A stored item as this run's item ``item``."""
    return ItemResult(
        index=item.index,
        id=item.id,
        key=found.key,
        ok=found.ok,
        text=found.text,
        error=found.error,
        usage=found.usage,
        finish_reason=found.finish_reason,
        attempts=found.attempts,
        seconds=found.seconds,
        from_store=True,
    )


def _capacity(executor: Executor) -> int:
    """How many tasks ``executor`` runs at once, where it says (else no limit), so that
    no more are in flight than run: a queued task would start late, not when the rate
    limit let it."""
    size = getattr(executor, "_max_workers", None)  # ThreadPoolExecutor, ProcessPoolExecutor
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    client = getattr(executor, "_client", None)  # distributed's ClientExecutor
    nthreads = getattr(client, "nthreads", None)
    if callable(nthreads):
        try:
            total = sum(int(n) for n in nthreads().values())
        except Exception:  # a client that cannot say: no limit from here
            return 1 << 30
        if total > 0:
            return total
    return 1 << 30
