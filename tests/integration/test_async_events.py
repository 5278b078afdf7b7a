"""AsyncStream reads the reply as the synchronous Stream does: events(), the accumulated
properties, json(), and the async Client's chunks carry reasoning and tool calls."""

import asyncio

import pytest

from llmproviders import (
    Client,
    Finish,
    OpenAICompatible,
    ReasoningDelta,
    TextDelta,
    ToolCall,
)
from llmproviders.testing import YLOKH_PATH, reply_for, thinking_for

MESSAGES = [{"role": "user", "content": "Сколько будет 2+2?"}]
CALLS = [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_a"}]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_events_and_properties(emulator):
    emulator.plan(path=YLOKH_PATH, reasoning="reasoning_content", usage="final")

    async def main():
        stream = OpenAICompatible.create_async_generator("m", MESSAGES, base_url=emulator.base_url + "/v1", timeout=5)
        async with stream:
            events = [event async for event in stream.events()]
        return stream, events

    stream, events = run(main())
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == thinking_for(MESSAGES) == stream.reasoning
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == reply_for(MESSAGES) == stream.text
    assert Finish("stop") in events and stream.usage is not None and stream.finish_reason == "stop"
    assert stream.message["reasoning_content"] == stream.reasoning and stream.outcome == "complete"


def test_text_iteration_skips_other_events_and_mixes_with_events(emulator):
    emulator.plan(path=YLOKH_PATH, reasoning="reasoning", tool_calls=CALLS, reply="Looking.")

    async def main():
        stream = OpenAICompatible.create_async_generator("m", MESSAGES, base_url=emulator.base_url + "/v1", timeout=5)
        async with stream:
            first = await stream.__anext__()  # text only: the reasoning before it is skipped
            rest = [event async for event in stream.events()]
        return stream, first, rest

    stream, first, rest = run(main())
    assert first + "".join(e.text for e in rest if isinstance(e, TextDelta)) == "Looking."
    assert [e for e in rest if isinstance(e, ToolCall)] == stream.tool_calls and stream.tool_calls[0].name == "get_weather"
    assert stream.reasoning == thinking_for(MESSAGES)


def test_the_async_client_chunks_carry_reasoning_and_tool_calls_like_the_sync_ones(emulator):
    client = Client(provider=OpenAICompatible, base_url=emulator.base_url + "/v1", timeout=5)

    def summary(chunks):
        return {
            "reasoning": "".join(c.choices[0].delta.reasoning_content or "" for c in chunks),
            "text": "".join(c.choices[0].delta.content or "" for c in chunks),
            "tool_fragments": sum(len(c.choices[0].delta.tool_calls or []) for c in chunks),
            "finish": chunks[-1].choices[0].finish_reason,
        }

    async def async_chunks():
        chunks = await client.chat.completions.create_async(model="m", messages=MESSAGES, stream=True)
        async with chunks:
            return [c async for c in chunks]

    for plan in ({"reasoning": "reasoning_content"}, {"tool_calls": CALLS}):
        emulator.plan(path=YLOKH_PATH, **plan)
        sync = summary(list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True)))
        emulator.plan(path=YLOKH_PATH, **plan)
        assert summary(run(async_chunks())) == sync
        assert sync["reasoning"] or sync["tool_fragments"]


def test_json_on_an_async_stream(emulator):
    emulator.plan(path=YLOKH_PATH, reply='```json\n{"answer": 4}\n```')

    async def main():
        return await OpenAICompatible.create_async_generator("m", MESSAGES, base_url=emulator.base_url + "/v1").json()

    assert run(main()) == {"answer": 4}


def test_a_cancelled_wait_keeps_partial_exact_with_events_in_the_buffer(emulator):
    """Usage events between the text deltas sit in the worker's buffer too: partial counts
    only the text that reached the consumer."""
    from llmproviders import StreamInterruptedError

    plan = emulator.plan(path=YLOKH_PATH, usage="every", step=True)

    async def main():
        stream = OpenAICompatible.create_async_generator("m", MESSAGES, base_url=emulator.base_url + "/v1", timeout=5)
        plan.advance(2)  # three pieces go out, then the server holds the rest
        received = [await stream.__anext__()]
        with pytest.raises(asyncio.TimeoutError):
            while True:
                received.append(await asyncio.wait_for(stream.__anext__(), 0.5))
        with pytest.raises(StreamInterruptedError) as info:
            await stream.__anext__()
        return "".join(received), info.value

    received, error = run(main())
    assert received and reply_for(MESSAGES).startswith(received)
    assert error.partial == received
