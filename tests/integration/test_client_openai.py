"""The OpenAI-style facade against the emulator, compared with openai-python's own client
making the same request: the same chunks and completions, ids and timestamps aside."""

import asyncio

import openai
import openai.types.chat as openai_chat
import pytest

from llmproviders import Client, FlowGpt, OpenAICompatible, Ylokh
from llmproviders.testing import FLOWGPT_PATH, YLOKH_PATH, reply_for

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Привет, как дела? 👋"},
]
TIMEOUT = 5


def dumped(obj):
    """A chunk or completion as openai-python models it, without id and created."""
    model = openai_chat.ChatCompletionChunk if obj.object == "chat.completion.chunk" else openai_chat.ChatCompletion
    data = model.model_validate(obj.to_dict()).model_dump() if not hasattr(obj, "model_dump") else obj.model_dump()
    del data["id"], data["created"]
    return data


def openai_client(emulator):
    return openai.OpenAI(base_url=emulator.base_url + "/v1", api_key="x", max_retries=0, timeout=TIMEOUT)


@pytest.fixture(params=[OpenAICompatible, Ylokh], ids=lambda p: p.__name__)
def client(request, emulator):
    return Client(provider=request.param, base_url=emulator.base_url + "/v1", api_key="x", timeout=TIMEOUT)


def test_streamed_chunks_match_openai_python(emulator, client):
    with openai_client(emulator) as theirs:
        with theirs.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, stream=True) as stream:
            expected = [dumped(chunk) for chunk in stream]
    with client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, stream=True) as stream:
        ours = list(stream)
    assert [dumped(chunk) for chunk in ours] == expected
    assert "".join(c.choices[0].delta.content or "" for c in ours) == reply_for(MESSAGES)
    assert len({c.id for c in ours}) == 1 and ours[0].id.startswith("chatcmpl-")


def test_usage_chunk_matches_openai_python(emulator, client):
    options = {"include_usage": True}
    with openai_client(emulator) as theirs:
        with theirs.chat.completions.create(
            model="gpt-3.5-turbo", messages=MESSAGES, stream=True, stream_options=options
        ) as stream:
            expected = [dumped(chunk) for chunk in stream]
    ours = [dumped(c) for c in client.chat.completions.create(
        model="gpt-3.5-turbo", messages=MESSAGES, stream=True, stream_options=options
    )]
    # openai-python passes OpenAI's extra usage chunk (no choices) on; the facade puts
    # the usage on its final chunk, the one with the finish reason
    usage_chunk = expected.pop()
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] > 0
    assert ours[-1]["usage"] == usage_chunk["usage"]
    ours[-1]["usage"] = None
    assert ours == expected


def test_whole_completion_matches_openai_python(emulator, client):
    with openai_client(emulator) as theirs:
        expected = dumped(theirs.chat.completions.create(model="gpt-4", messages=MESSAGES))
    ours = client.chat.completions.create(model="gpt-4", messages=MESSAGES)
    assert dumped(ours) == expected
    assert ours.usage is not None and ours.choices[0].message.content == reply_for(MESSAGES)


def test_every_provider_through_the_facade(emulator):
    for provider in ("FlowGpt", "GPROChat", "Chatgpt4Online", "Ylokh"):
        client = Client(provider=provider, base_url=emulator.base_url, timeout=TIMEOUT)
        chunks = list(client.chat.completions.create(messages=MESSAGES, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply_for(MESSAGES), provider
        assert chunks[-1].choices[0].finish_reason == "stop"
        whole = client.chat.completions.create(messages=MESSAGES)
        assert whole.choices[0].message.content == reply_for(MESSAGES)


def test_closing_early_closes_the_connection(emulator):
    plan = emulator.plan(path=YLOKH_PATH, pieces=["a ", "b ", "c"], step=True)
    client = Client(provider=OpenAICompatible, base_url=emulator.base_url + "/v1", timeout=TIMEOUT)
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as chunks:
        assert next(chunks).choices[0].delta.role == "assistant"
        assert next(chunks).choices[0].delta.content == "a "
    assert chunks.stream.closed
    assert plan.wait(TIMEOUT) == "client-disconnected"


def test_async_stream_against_the_emulator(emulator):
    client = Client(provider=FlowGpt, base_url=emulator.base_url, timeout=TIMEOUT)

    async def main():
        chunks = await client.chat.completions.create_async(messages=MESSAGES, stream=True)
        async with chunks:
            return [c async for c in chunks]

    chunks = asyncio.run(main())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply_for(MESSAGES)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"


def test_a_retry_provider_behind_the_facade(emulator):
    from llmproviders import GPROChat, RetryProvider

    emulator.plan(path=FLOWGPT_PATH, status=401)  # FlowGpt fails (not retried); GPROChat answers
    client = Client(provider=RetryProvider([FlowGpt, GPROChat]), base_url=emulator.base_url, timeout=TIMEOUT)
    chunks = list(client.chat.completions.create(messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply_for(MESSAGES)
    assert [r.path for r in emulator.requests][-1] == "/api/generate"
    assert "RetryProvider" in repr(client)
