"""The asyncio facade against the emulator: seed compatibility, cancellation, cleanup,
concurrency and loops."""

import asyncio
import gc
import threading
import time

import pytest

import llmproviders
from llmproviders import ChatCompletion, FlowGpt, GPROChat, StreamInterruptedError, Ylokh
from llmproviders._async import BUFFER_SIZE
from llmproviders.testing import reply_for

from .conftest import PROVIDERS

MESSAGES = [{"role": "user", "content": "Привет, как дела?"}]


def workers():
    return [t for t in threading.enumerate() if t.name.startswith("llmproviders-stream-")]


def wait_for_no_workers(timeout=5.0):
    deadline = time.monotonic() + timeout
    while workers() and time.monotonic() < deadline:
        time.sleep(0.01)
    return workers()


@pytest.fixture
def routed(emulator, monkeypatch):
    """Every provider call without base_url goes to the emulator (as in the seeds)."""
    monkeypatch.setenv("LLMPROVIDERS_BASE_URL", emulator.base_url)
    return emulator


def test_seed_async_examples_verbatim_apart_from_the_import(routed, capsys):
    # --- seed 000 (FlowGpt), import line changed -------------------------------
    from llmproviders import FlowGpt
    from llmproviders import Messages

    async def main():
        model = "gpt-3.5-turbo"
        messages: Messages = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Как дела?"}
        ]

        async for message in FlowGpt.create_async_generator(model=model, messages=messages):
            print(message, end="")

    asyncio.run(main())
    assert capsys.readouterr().out == reply_for([{"role": "user", "content": "Как дела?"}])

    # --- seed 002 (GPROChat) -------------------------------------------------------
    from llmproviders import GPROChat

    async def main():
        messages: Messages = [{"role": "user", "content": "Привет, как дела?"}]
        model = "gemini-1.5-pro"

        async for response in GPROChat.create_async_generator(model=model, messages=messages):
            print(response, end="")

    asyncio.run(main())
    assert capsys.readouterr().out == reply_for(MESSAGES)

    # --- seed 003 (Chatgpt4Online): it printed each item on its own line -----------
    from llmproviders import Chatgpt4Online

    async def main():
        messages: Messages = [{"role": "user", "content": "Привет, как дела?"}]
        model = "gpt-4"

        async for response in Chatgpt4Online.create_async_generator(model=model, messages=messages):
            print(response)

    asyncio.run(main())
    lines = capsys.readouterr().out.splitlines()
    assert "".join(lines) == reply_for(MESSAGES) and len(lines) > 1  # streamed, no longer one blob

    # --- seed 004 (Ylokh) --------------------------------------------------------------
    from llmproviders import Ylokh

    async def main():
        messages = [
            {"role": "user", "content": "Привет, как дела?"}
        ]
        async for message in Ylokh.create_async_generator(model="gpt-3.5-turbo", messages=messages):
            print(message, end="")

    asyncio.run(main())
    assert capsys.readouterr().out == reply_for(MESSAGES)
    assert {r.path for r in routed.requests} >= {"/v3/chat-anonymous", "/api/generate", "/v1/chat/completions"}


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_async_deltas_are_incremental(provider, model, path, emulator):
    pieces = ["раз ", "два ", "три"]
    plan = emulator.plan(path=path, pieces=pieces, step=True)

    async def main():
        stream = provider.create_async_generator(model, MESSAGES, base_url=emulator.base_url, timeout=5)
        async with stream:
            for expected in pieces:
                assert await stream.__anext__() == expected
                plan.advance()
            assert [d async for d in stream] == []

    asyncio.run(main())
    assert plan.wait() == "complete"
    assert wait_for_no_workers() == []


@pytest.mark.parametrize("how", ["cancel", "wait_for", "break", "aclose"])
def test_stopping_early_closes_the_connection_and_the_thread(how, emulator):
    plan = emulator.plan(path="/api/generate", long_reply=1_000_000, pace=0.002)
    started = threading.Event()

    async def consume():
        stream = GPROChat.create_async_generator(None, MESSAGES, base_url=emulator.base_url, timeout=5)
        if how == "aclose":
            await stream.__anext__()
            await stream.aclose()
            return
        async for _ in stream:
            started.set()
            if how == "break":
                break

    async def main():
        if how in ("break", "aclose"):
            await consume()
        elif how == "cancel":
            task = asyncio.ensure_future(consume())
            while not started.is_set():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(consume(), 0.2)
        gc.collect()

    asyncio.run(main())
    before = time.monotonic()
    assert plan.wait(5) == "client-disconnected"
    assert time.monotonic() - before < 1.0  # the server sees the disconnect promptly
    assert wait_for_no_workers() == []


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_errors_keep_their_type_and_partial(provider, model, path, emulator):
    pieces = ["Один ", "два ", "три"]
    emulator.plan(path=path, framing="chunked", pieces=pieces, disconnect_after_events=2)
    received = []

    async def main():
        async for delta in provider.create_async_generator(model, MESSAGES, base_url=emulator.base_url, timeout=5, max_retries=0):
            received.append(delta)

    with pytest.raises(StreamInterruptedError) as info:
        asyncio.run(main())
    assert received == pieces[:2] and info.value.partial == "".join(pieces[:2])
    assert wait_for_no_workers() == []


def test_input_errors_are_raised_at_the_call(emulator):
    with pytest.raises(llmproviders.ModelNotSupportedError):
        FlowGpt.create_async_generator("nope", MESSAGES)
    with pytest.raises(llmproviders.InvalidMessagesError):
        asyncio.run(FlowGpt.create_async(None, []))
    assert workers() == []


def test_two_hundred_concurrent_streams(emulator):
    providers = llmproviders.list_providers()[:4]

    async def main():
        jobs = []
        for i in range(200):
            messages = [{"role": "user", "content": f"вопрос {i}"}]
            jobs.append(providers[i % 4].create_async(None, messages, base_url=emulator.base_url, timeout=10))
        return await asyncio.gather(*jobs)

    texts = asyncio.run(main())
    assert texts == [reply_for([{"role": "user", "content": f"вопрос {i}"}]) for i in range(200)]
    assert wait_for_no_workers() == []


def test_concurrency_limit_queues_streams_without_threads(emulator):
    from llmproviders._async import _limiter

    assert llmproviders.get_async_limit() == 64
    plan = emulator.plan(path="/v1/chat/completions", times=12, pieces=["a", "b"], step=True)
    first = []

    async def one(i):
        messages = [{"role": "user", "content": str(i)}]
        out = []
        async for delta in Ylokh.create_async_generator(None, messages, base_url=emulator.base_url, timeout=10):
            out.append(delta)
            first.append(i)
        return "".join(out)

    async def main():
        tasks = [asyncio.ensure_future(one(i)) for i in range(12)]
        while len(first) < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # would more streams start? they must not
        snapshot = (len(first), len(workers()), _limiter.running, len(_limiter._waiters))
        plan.advance(100)
        return snapshot, await asyncio.wait_for(asyncio.gather(*tasks), 20)

    llmproviders.set_async_limit(3)
    try:
        snapshot, texts = asyncio.run(main())
    finally:
        llmproviders.set_async_limit(64)
    assert snapshot == (3, 3, 3, 9)  # three streams run; nine wait, holding no thread
    assert texts == ["ab"] * 12
    with pytest.raises(ValueError):
        llmproviders.set_async_limit(0)


def test_several_event_loops_in_threads_at_once(emulator):
    results = {}

    def run_loop(index):
        async def main():
            return await ChatCompletion.create_async(
                model="gpt-3.5-turbo", messages=[{"role": "user", "content": f"loop {index}"}], provider=FlowGpt,
                base_url=emulator.base_url,
            )

        results[index] = asyncio.run(main())

    threads = [threading.Thread(target=run_loop, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == {i: reply_for([{"role": "user", "content": f"loop {i}"}]) for i in range(4)}


def test_chat_completion_async_stream(emulator):
    async def main():
        stream = await ChatCompletion.create_async(
            model="gpt-4", messages=MESSAGES, provider="Chatgpt4Online", stream=True, base_url=emulator.base_url
        )
        return [delta async for delta in stream]

    deltas = asyncio.run(main())
    assert "".join(deltas) == reply_for(MESSAGES) and len(deltas) > 1


def test_sync_api_works_inside_a_running_loop(emulator):
    async def main():
        # blocking, but correct: the synchronous API never touches asyncio
        return FlowGpt.create(None, MESSAGES, base_url=emulator.base_url)

    assert asyncio.run(main()) == reply_for(MESSAGES)


def test_slow_consumer_applies_back_pressure(emulator):
    plan = emulator.plan(path="/api/generate", pieces=[f"{i} " for i in range(BUFFER_SIZE * 3)])

    async def main():
        stream = GPROChat.create_async_generator(None, MESSAGES, base_url=emulator.base_url, timeout=5)
        async with stream:
            await stream.__anext__()
            await asyncio.sleep(0.5)  # the worker fills the buffer, then must wait
            assert len(stream._worker.buffer) <= BUFFER_SIZE
            rest = [d async for d in stream]
        return rest

    rest = asyncio.run(main())
    assert len(rest) >= BUFFER_SIZE * 3 - 1 - 10  # deltas may coalesce on the wire, never get lost
    assert plan.wait() == "complete"


def test_cancelled_while_waiting_for_a_slot_does_not_hang(emulator):
    """Review H1: a stream cancelled while queued for the limiter must close at once."""
    plan = emulator.plan(path="/v1/chat/completions", pieces=["a", "b"], step=True)

    async def main():
        holder = Ylokh.create_async_generator(None, MESSAGES, base_url=emulator.base_url, timeout=5)
        await holder.__anext__()  # holds the only slot; the server holds the rest
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(Ylokh.create_async(None, MESSAGES, base_url=emulator.base_url), 0.3)
        waited = time.monotonic() - started
        await holder.aclose()
        return waited

    llmproviders.set_async_limit(1)
    try:
        waited = asyncio.run(asyncio.wait_for(main(), 10))
    finally:
        llmproviders.set_async_limit(64)
    assert waited < 1.0
    plan.advance(10)
    assert wait_for_no_workers() == []


def test_aclose_from_another_task_wakes_a_pending_anext(emulator):
    """Review H2: one task waits in __anext__, another closes the stream."""
    emulator.plan(path="/v1/chat/completions", pieces=["a", "b"], step=True)

    async def main():
        stream = Ylokh.create_async_generator(None, MESSAGES, base_url=emulator.base_url, timeout=5)
        assert await stream.__anext__() == "a"
        pending = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.1)
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 2)
        with pytest.raises(StopAsyncIteration):  # review M11: closed means closed
            await stream.__anext__()

    asyncio.run(main())
    assert wait_for_no_workers() == []


def test_limiter_never_releases_a_slot_twice():
    """Review H3: a waiter cancelled just before the slot is released to it."""
    from llmproviders._async import _Limiter

    async def main():
        limiter = _Limiter(1)
        await limiter.acquire()
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        waiting.cancel()  # its future is done now, its except clause has not run yet
        limiter.release()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert limiter.running == 0
        await limiter.acquire()
        blocked = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.01)
        assert not blocked.done() and limiter.running == 1  # the cap still holds
        limiter.release()
        await asyncio.wait_for(blocked, 1)
        assert limiter.running == 1

    asyncio.run(main())


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_cancelling_while_waiting_for_headers_is_prompt(provider, model, path, emulator):
    """Review H4: the wait for response headers is aborted too, not sat out."""
    plan = emulator.plan(path=path, delay_headers=4.0)

    async def main():
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(provider.create_async(model, MESSAGES, base_url=emulator.base_url, timeout=10), 0.3)
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.0
    assert wait_for_no_workers(2.0) == []
    assert plan.requests  # the request did reach the server, which was still holding it


def test_async_stream_exposes_metadata(emulator):
    async def main():
        stream = Ylokh.create_async_generator(None, MESSAGES, base_url=emulator.base_url)
        text = "".join([d async for d in stream])
        return text, stream.metadata

    text, metadata = asyncio.run(main())
    assert text == reply_for(MESSAGES) and metadata["finish_reason"] == "stop"


def test_loop_waker_coalesces_wakeups_and_survives_a_closed_loop():
    """Worker threads resolve consumers' futures through one pending callback per loop."""
    from llmproviders._async import _waker_for

    loop = asyncio.new_event_loop()
    try:
        waker = _waker_for(loop)
        assert _waker_for(loop) is waker
        futures = [loop.create_future() for _ in range(3)]
        scheduled = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *args: scheduled.append(original(*args))  # type: ignore[method-assign]
        threads = [threading.Thread(target=waker.wake, args=(future,)) for future in futures]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(scheduled) == 1  # three wake-ups, one callback
        loop.run_until_complete(asyncio.wait_for(asyncio.gather(*futures), 5))
        later = loop.create_future()
        waker.wake(later)  # after the callback ran, a new wake-up schedules a new one
        loop.run_until_complete(asyncio.wait_for(later, 5))
        assert len(scheduled) == 2
    finally:
        loop.close()
    waker.wake(asyncio.Future(loop=loop))  # a closed loop: no error
    waker.wake(asyncio.Future(loop=loop))  # and no batch left waiting for a callback that never runs
    assert waker._batch() is None


def test_a_wake_up_the_loop_never_runs_does_not_keep_the_loop_alive():
    """Review: a callback dropped by a loop closed while it was pending kept the
    waker's futures, and through them the loop, in the module's dict forever."""
    import weakref

    from llmproviders._async import AsyncStream
    from llmproviders._stream import Stream

    release = threading.Event()

    def deltas():
        yield "a"
        release.wait(5)
        yield "b"  # the worker gets it after the consumer's wait timed out, and finishes

    loop = asyncio.new_event_loop()
    stream = AsyncStream(Stream(deltas(), provider="x", model="m"))

    async def consume():
        assert await stream.__anext__() == "a"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 0.2)

    loop.run_until_complete(consume())  # the loop stops with the consumer's future parked
    release.set()
    stream._worker.thread.join(5)  # its wake-up is scheduled on the stopped loop, never run
    loop.close()
    alive = weakref.ref(loop)
    del loop, stream, consume
    gc.collect()
    assert alive() is None


def test_partial_after_a_cancelled_wait_is_what_was_received():
    """Review: the worker dropped a delta it had taken from the stream when it saw the
    stop, so partial (the stream's record minus the buffer) counted it as received."""
    from llmproviders._async import AsyncStream
    from llmproviders._stream import Stream

    release = threading.Event()

    def deltas():
        yield "a"
        release.wait(5)
        yield "b"  # taken by the worker after the consumer's wait was cancelled

    async def main():
        stream = AsyncStream(Stream(deltas(), provider="x", model="m"))
        received = [await stream.__anext__()]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 0.2)
        release.set()
        with pytest.raises(StreamInterruptedError) as info:
            await asyncio.wait_for(stream.__anext__(), 5)
        return "".join(received), info.value.partial

    received, partial = asyncio.run(main())
    assert received == partial == "a"


def test_a_thread_that_cannot_start_is_the_consumers_error_and_frees_its_slot(emulator, monkeypatch):
    """The launcher starts worker threads; when the system has no thread to give, the
    consumer gets that error and the stream's slot of the limiter is freed."""
    from llmproviders._async import _limiter

    original = threading.Thread.start

    def start(thread):
        if thread.name.startswith("llmproviders-stream-"):
            raise RuntimeError("can't start new thread")
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)

    async def main():
        stream = Ylokh.create_async_generator(None, MESSAGES, base_url=emulator.base_url, timeout=5)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await asyncio.wait_for(stream.__anext__(), 5)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(stream.__anext__(), 5)

    asyncio.run(main())
    assert _limiter.running == 0
    assert emulator.requests == []  # nothing was sent


def test_closing_a_stream_that_never_ran_happens_off_the_loop():
    """Closing a stream can wait on its socket; aclose() of one that never ran closes
    it in the launcher thread, and waits for that without blocking the loop."""
    from llmproviders._async import AsyncStream
    from llmproviders._stream import Stream

    closed_in = []

    def deltas():
        try:
            yield "a"
        finally:
            closed_in.append(threading.current_thread().name)

    async def main():
        inner = Stream(deltas(), provider="x", model="m")
        next(inner)  # started outside the facade: closing it runs the generator's finally
        stream = AsyncStream(inner)
        await asyncio.wait_for(stream.aclose(), 5)
        return inner

    inner = asyncio.run(main())
    assert inner.closed and closed_in == ["llmproviders-launcher"]


def test_a_forked_child_can_stream_while_the_parents_launcher_is_alive(emulator):
    """The launcher lingers after its last start; a child forked meanwhile has no such
    thread, and must not wait for it (nor for the parent's slots of the limiter)."""
    import os

    async def one(index):
        messages = [{"role": "user", "content": f"fork {index}"}]
        return await asyncio.wait_for(Ylokh.create_async(None, messages, base_url=emulator.base_url, timeout=5), 10)

    assert asyncio.run(one(0)) == reply_for([{"role": "user", "content": "fork 0"}])
    assert any(t.name == "llmproviders-launcher" for t in threading.enumerate())
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if its own stream works
        code = 1
        try:
            code = 0 if asyncio.run(one(1)) == reply_for([{"role": "user", "content": "fork 1"}]) else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(status) == 0

