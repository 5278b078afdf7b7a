"""The asyncio facade: a synchronous :class:`Stream` run in a worker thread.

The core stays synchronous; :class:`AsyncStream` gives asyncio code an async iterator
over it. Each stream has one worker thread that iterates the synchronous stream and
appends deltas to a bounded buffer; the event loop is woken only when the consumer is
actually waiting, so a fast stream costs about what it costs in a plain thread (a
thread hop per delta through an executor costs ~20x more). A full buffer makes the
worker wait: a slow consumer applies back-pressure instead of growing memory.

When the consumer stops early (``break``, ``aclose()``, ``async with`` exit, task
cancellation or timeout, or the stream being garbage-collected), the worker is told
to stop and the socket is shut down, which wakes a read blocked in the worker; the
worker then closes the synchronous stream itself, so the HTTP response is closed
promptly and no thread outlives its stream.

Nothing here blocks the event loop: ``Thread.start()`` waits until the new thread
runs, which takes milliseconds once many threads compete for the GIL (1,000 streams
started on the loop froze it for seconds), so worker threads are started by a
launcher thread and the loop only queues them (:class:`_Launcher`). Streams are
closed in their worker (or the launcher), never on the loop, and the loop takes a
lock only for a few instructions, never one held across I/O or a GIL switch.

At most :func:`get_async_limit` streams (default 64) run at once in the process;
further streams wait for a slot without holding a thread. Change it with
:func:`set_async_limit`.

Example usage::

    async for message in FlowGpt.create_async_generator(model=model, messages=messages):
        print(message, end="")
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import itertools
import logging
import os
import threading
import weakref
from types import TracebackType
from typing import Any, AsyncIterator, Callable, Deque, Dict, List, Optional, Set, Tuple, Type

from ._exceptions import StreamInterruptedError
from ._stream import Stream
from .events import Event, TextDelta, ToolCall, Usage

__all__ = ["AsyncStream", "set_async_limit", "get_async_limit", "DEFAULT_ASYNC_LIMIT"]

DEFAULT_ASYNC_LIMIT = 64
BUFFER_SIZE = 1024  # deltas buffered ahead of a slow consumer
LAUNCHER_IDLE = 0.5  # seconds the launcher thread waits for more work before it exits
_names = itertools.count(1)
log = logging.getLogger(__name__)


class _Limiter:
    """A process-wide cap on running streams that works across event loops: a waiter
    is a future of its own loop, woken thread-safely when a slot frees."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._lock = threading.Lock()
        self._waiters: Deque["asyncio.Future[None]"] = collections.deque()
        self._granted: Set["asyncio.Future[None]"] = set()  # handed a slot, not yet resumed

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.running < self.limit and not self._waiters:
                self.running += 1
                return
            waiter: "asyncio.Future[None]" = loop.create_future()
            self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                granted = waiter in self._granted
                self._granted.discard(waiter)
            if granted:  # the slot was handed over just as we were cancelled: pass it on
                self.release()
            raise
        with self._lock:
            self._granted.discard(waiter)

    def release(self) -> None:
        """Give the slot to the next waiter that can still take it, or free it.
        The wake-up (a write to the waiter's loop) happens outside the lock, so the
        loop never waits for this lock while a worker is in a system call."""
        while True:
            with self._lock:
                if not self._waiters:  # the usual case, without a call under the lock
                    self.running -= 1
                    return
                waiter = self._next_waiter()
                if waiter is None:
                    self.running -= 1
                    return
                self._granted.add(waiter)  # the slot goes to the waiter; running stays the same
            if _wake(waiter):
                return
            with self._lock:  # its loop is closed, it will never take the slot: try the next
                self._granted.discard(waiter)

    def _next_waiter(self) -> Optional["asyncio.Future[None]"]:
        """The first waiter still waiting (call with the lock held). A cancelled one is
        skipped: its ``acquire`` removes nothing and passes nothing on."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def reset(self) -> None:
        """Forget every slot and waiter (in a forked child: they were the parent's)."""
        self._lock = threading.Lock()
        self.running = 0
        self._waiters.clear()
        self._granted.clear()

    def set_limit(self, limit: int) -> None:
        with self._lock:
            self.limit = limit
            grant = []
            while self.running < self.limit:
                waiter = self._next_waiter()
                if waiter is None:
                    break
                self.running += 1
                self._granted.add(waiter)
                grant.append(waiter)
        for waiter in grant:
            if not _wake(waiter):  # its loop is closed: give the slot back
                with self._lock:
                    self._granted.discard(waiter)
                self.release()


def _wake(future: "asyncio.Future[None]") -> bool:
    """Resolve ``future`` from any thread (unless it is done by then); False if its
    loop is closed, so that it will never run."""
    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    try:
        future.get_loop().call_soon_threadsafe(resolve)
    except RuntimeError:  # the loop is closed
        return False
    return True


_limiter = _Limiter(DEFAULT_ASYNC_LIMIT)


class _Batch(Deque["asyncio.Future[None]"]):
    """Futures waiting for one scheduled ``_resolve`` (deques are weakly referable)."""

    __slots__ = ()


def _no_batch() -> Optional[_Batch]:
    return None


class _LoopWaker:
    """Resolves futures of one event loop from worker threads, coalescing wake-ups:
    while one is pending, the futures of other streams join it instead of each
    writing to the loop's self-pipe (with many streams at once, most deltas then cost
    no system call and no extra loop iteration).

    It takes no lock: a lock here was held by worker threads that the GIL could
    switch away from, and the loop's ``_resolve`` then waited for them. A future
    appended to a batch is either seen by that batch's ``_resolve`` (which retires
    the batch before it drains it) or, if the batch was retired meanwhile, goes out
    in a new batch; resolving twice is harmless.

    Only the scheduled callback holds its batch of futures (the waker keeps a weak
    reference): if a loop drops the callback (closed or discarded without running
    again), the batch and the loop go with it, and the next wake-up schedules anew.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # a dict keyed weakly by the loop holds this
        self._batch: Callable[[], Optional[_Batch]] = _no_batch  # the scheduled one, weakly

    def wake(self, future: "asyncio.Future[None]") -> None:
        batch = self._batch()
        if batch is not None:
            batch.append(future)
            if self._batch() is batch:  # not retired yet: its _resolve will see the future
                return
        batch = _Batch((future,))
        self._batch = weakref.ref(batch)
        loop = self._loop()
        if loop is None:
            return  # the loop is gone: nobody is waiting any more
        try:
            loop.call_soon_threadsafe(self._resolve, batch)
        except RuntimeError:  # the loop is closed: likewise
            pass

    def _resolve(self, batch: _Batch) -> None:
        if self._batch() is batch:
            self._batch = _no_batch  # retired: later wake-ups start a new batch
        while batch:
            future = batch.popleft()
            if not future.done():
                future.set_result(None)


_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaker]" = weakref.WeakKeyDictionary()
_wakers_lock = threading.Lock()


def _waker_for(loop: asyncio.AbstractEventLoop) -> _LoopWaker:
    with _wakers_lock:
        waker = _wakers.get(loop)
        if waker is None:
            waker = _wakers[loop] = _LoopWaker(loop)
        return waker


def set_async_limit(limit: int) -> None:
    """Set how many async streams may run at once in this process (default 64)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"the async stream limit must be a positive integer, not {limit!r}")
    _limiter.set_limit(limit)


def get_async_limit() -> int:
    """How many async streams may run at once in this process."""
    return _limiter.limit


class _Launcher:
    """Starts worker threads off the event loop, one launcher thread for the process.

    ``Thread.start()`` returns only once the new thread runs, and with many threads
    competing for the GIL that takes milliseconds: on the event loop, 1,000 starts
    froze it for seconds. So the loop only queues a worker (:meth:`submit` never
    blocks: an atomic append and non-blocking lock operations, so it is also safe
    from a finalizer) and the launcher thread starts it, or finishes it at once if
    it was stopped before it ran. The launcher exits after :data:`LAUNCHER_IDLE`
    seconds without work; the next submission spawns it again through
    ``_thread.start_new_thread``, which, unlike ``Thread.start()``, does not wait.
    """

    def __init__(self) -> None:
        self._jobs: Deque["_Worker"] = collections.deque()
        self._active = threading.Lock()  # held on behalf of the running launcher
        self._signal = threading.Lock()  # unlocked: a job may have arrived (a binary semaphore)

    def submit(self, worker: "_Worker") -> None:
        """Queue ``worker`` to be launched; from any thread, without blocking."""
        self._jobs.append(worker)
        if self._active.acquire(blocking=False):  # no launcher is running: spawn one
            try:
                _thread.start_new_thread(self._spawn, ())
            except RuntimeError:  # no thread to be had (at exit, or out of threads)
                self._active.release()
                self._drain()  # here, then: Thread.start() fails alike and hands its error over
            return
        try:
            self._signal.release()  # wake the launcher if it is waiting
        except RuntimeError:  # already signalled
            pass

    def _spawn(self) -> None:
        """In a bare ``_thread`` thread: start the launcher as a named daemon thread
        (visible in ``threading.enumerate()``), or be it if that fails."""
        try:
            threading.Thread(target=self._run, name="llmproviders-launcher", daemon=True).start()
        except Exception:  # e.g. RuntimeError: can't start new thread
            self._run()

    def _run(self) -> None:
        jobs = self._jobs
        while True:
            try:
                worker = jobs.popleft()
            except IndexError:
                if self._signal.acquire(timeout=LAUNCHER_IDLE):
                    continue  # signalled: look again
                self._active.release()
                # A job queued after the look but before the release found the launcher
                # still active and only signalled: take it over, unless a new launcher has.
                if jobs and self._active.acquire(blocking=False):
                    continue
                return
            try:
                worker.launch()
            except Exception:  # its stream's close() failed; its consumers were woken anyway
                log.exception("llmproviders: closing an async stream failed")
            del worker  # idle, the launcher holds no stream (nor what an error of it refers to)

    def _drain(self) -> None:
        while True:
            try:
                worker = self._jobs.popleft()
            except IndexError:
                return
            worker.launch()


_launcher = _Launcher()


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: the launcher's lock and the
    limiter's slots they held would never come back."""
    global _launcher
    _launcher = _Launcher()
    _limiter.reset()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Worker:
    """The state a worker thread shares with its consumer. The thread holds only this,
    never the :class:`AsyncStream`, so dropping the facade can stop the worker."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.buffer: Deque[Any] = collections.deque()  # text (str) and the other events
        #: Guards ``waiters`` and ``finished``. Held only for a few instructions without
        #: calls, so the GIL never switches away from a thread holding it and the loop
        #: never waits for it behind other threads. (Python code that ``Condition``
        #: runs while holding its lock gave the GIL up: a convoy.)
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)  # the worker waits here for room in the buffer
        #: Consumers parked until something happens, each with the waker of its loop.
        self.waiters: List[Tuple["asyncio.Future[None]", _LoopWaker]] = []
        self.waker: Optional[_LoopWaker] = None  # the waker of the loop that parked last
        self.submitted = False  # handed to the launcher (to run, or only to close)
        self.slot = False  # holds a slot of the limiter, freed when it finishes
        self.finished = False
        self.stopping = False
        self.blocked = False  # the worker waits for room in a full buffer
        self.error: Optional[BaseException] = None
        self.thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Have the launcher start the worker thread (it holds a slot of the limiter)."""
        self.submitted = self.slot = True
        _launcher.submit(self)

    def discard(self) -> None:
        """Close a stream that never ran, off the calling thread (closing a stream can
        wait on its socket); it finishes like a worker, waking parked consumers."""
        if self.submitted:
            return
        self.submitted = self.stopping = True
        _launcher.submit(self)

    def launch(self) -> None:
        """In the launcher thread: start the worker thread, unless the consumer has
        stopped already (then no thread: just close the stream)."""
        if self.stopping:
            self.finish()
            return
        self.thread = threading.Thread(target=self.run, name=f"llmproviders-stream-{next(_names)}", daemon=True)
        try:
            self.thread.start()
        except BaseException as exc:  # e.g. RuntimeError: can't start new thread
            self.thread = None
            with self.lock:
                if not self.stopping:
                    self.error = exc  # the consumer raises it
            self.finish()

    def run(self) -> None:
        """Move deltas into the buffer. The lock is taken only to wait for room or to
        wake a parked consumer; ``deque.append`` itself is atomic. A consumer that
        parks re-checks the buffer afterwards, so an append it raced with is not lost."""
        buffer = self.buffer
        try:
            if self.stopping:  # stopped while the thread was starting: send nothing
                return
            for delta in self.stream._items():  # text (str) and the other events
                if len(buffer) >= BUFFER_SIZE:
                    with self.room:
                        while len(buffer) >= BUFFER_SIZE and not self.stopping:
                            self.blocked = True
                            self.room.wait(0.5)  # woken by the consumer; the timeout is a safety net
                        self.blocked = False
                buffer.append(delta)  # before the stop check: the stream recorded it as yielded
                if self.stopping:
                    break
                if self.waiters:
                    self.wake()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            with self.lock:
                if not self.stopping:
                    self.error = exc
        finally:
            self.finish()

    def finish(self) -> None:
        """Close the stream (in this thread: its generator is not running here now),
        then free the slot and wake every parked consumer."""
        try:
            self.stream.close()
        finally:
            if self.slot:  # before the consumer wakes: a stream that has ended holds no slot
                _limiter.release()
            fresh: List[Tuple["asyncio.Future[None]", _LoopWaker]] = []
            with self.lock:  # nothing allocated under it: no garbage collection, no finalizer
                self.finished = True
                waiters, self.waiters = self.waiters, fresh
            for waiter, waker in waiters:
                if not waiter.done():  # not cancelled: after a mass cancellation, no wake-ups
                    waker.wake(waiter)

    def wake(self) -> None:
        """Resolve the futures of parked consumers (any thread)."""
        fresh: List[Tuple["asyncio.Future[None]", _LoopWaker]] = []
        with self.lock:  # nothing allocated under it: no garbage collection, no finalizer
            waiters, self.waiters = self.waiters, fresh
        for waiter, waker in waiters:
            if not waiter.done():
                waker.wake(waiter)

    def park(self) -> "asyncio.Future[None]":
        """A future the worker resolves at its next delta or when it finishes.
        Call with ``lock`` held, after checking there is nothing to take."""
        loop = asyncio.get_running_loop()
        waker = self.waker
        if waker is None or waker._loop() is not loop:
            waker = self.waker = _waker_for(loop)
        waiter = loop.create_future()
        self.waiters.append((waiter, waker))
        return waiter

    def stop(self) -> None:
        """Ask the worker to stop now, from any thread; wakes a blocked read."""
        with self.lock:  # the worker checks ``stopping`` under it before it waits for room
            self.stopping = True
            finished, blocked = self.finished, self.blocked
        if finished:
            return
        if blocked:
            with self.room:
                self.room.notify_all()
        self.stream.abort()


class AsyncStream(AsyncIterator[str]):
    """An async iterator of text deltas over a synchronous :class:`Stream`.

    Also an async context manager; ``aclose()`` stops the stream and waits for its
    worker thread to finish. Errors are the synchronous stream's, with the same
    ``partial``: the worker hands an error over only after every delta before it.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._worker = _Worker(stream)
        self._started = False  # holds a slot; its worker is launched
        self._closed = False
        self._cancelled = False  # a wait for a delta was cancelled: the worker was stopped

    @property
    def provider(self) -> str:
        return self._stream.provider

    @property
    def model(self) -> str:
        return self._stream.model

    @property
    def metadata(self) -> Dict[str, Any]:
        """What the upstream reported besides text (see :attr:`Stream.metadata`)."""
        return self._stream.metadata

    # What the reply adds up to, as on Stream (what has arrived so far; read from the loop
    # while the worker thread records it).

    @property
    def text(self) -> str:
        return self._stream.text

    @property
    def reasoning(self) -> str:
        return self._stream.reasoning

    @property
    def refusal(self) -> Optional[str]:
        return self._stream.refusal

    @property
    def tool_calls(self) -> List[ToolCall]:
        return self._stream.tool_calls

    @property
    def usage(self) -> Optional[Usage]:
        return self._stream.usage

    @property
    def finish_reason(self) -> Optional[str]:
        return self._stream.finish_reason

    @property
    def logprobs(self) -> List[Any]:
        return self._stream.logprobs

    @property
    def message(self) -> Dict[str, Any]:
        return self._stream.message

    @property
    def outcome(self) -> Optional[str]:
        return self._stream.outcome

    async def display(self) -> "AsyncStream":
        """``await stream.display()``: the reply as live Markdown in Jupyter (see
        :meth:`Stream.display`); returns the stream, consumed."""
        from ._display import display_async

        return await display_async(self)

    async def json(self) -> Any:
        """Read the stream to its end and return the reply's JSON (see :meth:`Stream.json`)."""
        from ._stream import parse_json_reply

        async with self:
            async for _ in self:
                pass
        return parse_json_reply(self.text, provider=self.provider)

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> str:
        return await self._next(True)  # type: ignore[no-any-return]

    def events(self) -> "AsyncIterator[Event]":
        """The reply as typed events (``async for``), in wire order, text as
        :class:`~llmproviders.TextDelta`; shares the stream's position with text iteration."""
        return _Events(self)

    async def _next(self, text_only: bool) -> Any:
        """The next text delta (``text_only``), or the next event."""
        if self._cancelled:
            raise await self._interrupted()
        if self._closed:
            raise StopAsyncIteration
        worker = self._worker
        if not self._started:
            await _limiter.acquire()  # cancelled here: nothing has started, nothing to stop
            if self._closed:  # closed while we waited for the slot
                _limiter.release()
                raise StopAsyncIteration
            self._started = True
            worker.start()  # queued for the launcher; we park below until it delivers
        buffer = worker.buffer
        while True:
            try:
                delta = buffer.popleft()  # atomic: no lock on the usual path
            except IndexError:
                pass
            else:
                if worker.blocked:  # the worker waits for room: give it some
                    with worker.room:
                        worker.room.notify()
                if type(delta) is str:
                    return delta if text_only else TextDelta(delta)
                if text_only:
                    continue  # another event: recorded on the stream, skipped by text iteration
                return delta
            with worker.lock:
                if buffer:
                    continue
                if worker.finished:
                    error, worker.error = worker.error, None
                    self._closed = True
                    if error is not None:
                        raise error
                    raise StopAsyncIteration
                waiter = worker.park()
            if buffer:  # appended just before we parked: the worker saw no waiter yet
                continue
            try:
                await waiter
            except BaseException:  # cancelled or timed out: stop, and never end "normally"
                self._cancelled = True
                worker.stop()
                raise
            if self._closed:  # aclose() ran while we waited
                raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the stream, close its HTTP response and wait for its worker thread."""
        self._closed = True
        if self._started:
            self._worker.stop()
        else:
            self._worker.discard()
        await self._finished(clear=True)

    async def _finished(self, *, clear: bool) -> None:
        """Wait until the worker has closed the stream (it wakes parked consumers)."""
        worker = self._worker
        while True:
            with worker.lock:
                if clear:
                    worker.buffer.clear()
                if worker.finished:
                    return
                waiter = worker.park()
            await waiter

    async def _interrupted(self) -> StreamInterruptedError:
        """The error for reading on after a wait for a delta was cancelled: the stream
        was stopped then, so it must not look complete. ``partial`` is exactly what was
        delivered (the stream's record minus what was still buffered)."""
        await self._finished(clear=False)
        worker = self._worker
        received = self._stream.text
        pending = sum(len(delta) for delta in worker.buffer if type(delta) is str)
        worker.buffer.clear()
        self._closed = True
        return StreamInterruptedError(
            f"{self.provider}: the stream was stopped when a wait for its next delta was cancelled",
            provider=self.provider,
            partial=received[: len(received) - pending],
        )

    async def __aenter__(self) -> "AsyncStream":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped without aclose() (e.g. ``break`` out of ``async for``): stop the worker.
        try:
            if self._started:
                self._worker.stop()
            else:
                self._worker.discard()
        except Exception:  # never raise from a finalizer  # pragma: no cover
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AsyncStream provider={self.provider} model={self.model!r} {state}>"


class _Events(AsyncIterator["Event"]):
    """``AsyncStream.events()``: the same stream, read as events."""

    __slots__ = ("_stream",)

    def __init__(self, stream: AsyncStream) -> None:
        self._stream = stream

    def __aiter__(self) -> "_Events":
        return self

    async def __anext__(self) -> "Event":
        return await self._stream._next(False)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._stream.aclose()


async def collect(stream: AsyncStream) -> str:
    """Run ``stream`` to the end and return its text; always closes it."""
    async with stream:
        return "".join([delta async for delta in stream])
