"""The OpenAI-style facade with ``responses``: chunks, completions, and their agreement
with openai-python's own types."""

import asyncio
import json

import openai.types.chat as openai_chat
import pytest
import responses

import llmproviders
from llmproviders import Client, FlowGpt, OpenAICompatible, UnsupportedOptionError, Ylokh
from llmproviders._client import AsyncChatCompletionStream, ChatCompletionStream
from llmproviders.types import ChatCompletionChunk, ChatCompletionObject, CompletionUsage
from tests.helpers import MESSAGES_RU, body

FLOWGPT_URL = "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous"
YLOKH_URL = "https://chatapi.ylokh.xyz/v1/chat/completions"
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def ndjson(*texts) -> bytes:
    return b"".join(json.dumps({"event": "text", "data": t}, ensure_ascii=False).encode() + b"\n" for t in texts)


def sse(*payloads) -> bytes:
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p, ensure_ascii=False)).encode() + b"\n\n" for p in payloads
    )


def chunk(content=None, finish_reason=None, **extra):
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 42, "model": "gpt-3.5-turbo-0613",
            "choices": [choice], **extra}


def ylokh_stream():
    fingerprint = {"system_fingerprint": "fp_9"}
    final = {**chunk(None, **fingerprint), "choices": [], "usage": USAGE}
    return sse(chunk("При", **fingerprint), chunk("вет", **fingerprint), chunk(None, "length", **fingerprint), final, "[DONE]")


def as_openai(obj):
    """``obj`` parsed by openai-python's own model of the same object."""
    model = openai_chat.ChatCompletionChunk if isinstance(obj, ChatCompletionChunk) else openai_chat.ChatCompletion
    return model.model_validate(obj.to_dict())


def assert_same_as_openai(obj):
    data = obj.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    parsed = as_openai(obj)
    assert parsed.model_dump(exclude_unset=True) == data  # every field understood, same value


@responses.activate
def test_stream_of_chunks_from_a_provider_without_metadata():
    responses.post(FLOWGPT_URL, body=body(ndjson("Hel"), ndjson("lo")))
    with Client(provider=FlowGpt).chat.completions.create(model="gemini", messages=MESSAGES_RU, stream=True) as chunks:
        received = list(chunks)
    assert [c.choices[0].delta.role for c in received] == ["assistant", None, None, None]
    assert [c.choices[0].delta.content for c in received] == ["", "Hel", "lo", None]
    assert [c.choices[0].finish_reason for c in received] == [None, None, None, "stop"]
    assert len({c.id for c in received}) == 1 and received[0].id.startswith("chatcmpl-")
    assert len(received[0].id) > len("chatcmpl-") + 20
    assert all(c.model == "google-gemini" and isinstance(c.created, int) for c in received)
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in received)
    for c in received:
        assert_same_as_openai(c)


@responses.activate
def test_stream_of_chunks_carries_the_upstreams_facts():
    responses.post(YLOKH_URL, body=ylokh_stream(), content_type="text/event-stream")
    received = list(Client(provider="Ylokh").chat.completions.create(messages=MESSAGES_RU, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in received) == "Привет"
    assert {(c.id, c.created, c.model, c.system_fingerprint) for c in received[1:]} == {
        ("chatcmpl-up", 42, "gpt-3.5-turbo-0613", "fp_9")
    }
    assert received[0].id == "chatcmpl-up"  # the role chunk waits for the upstream's id
    last = received[-1]
    assert last.choices[0].finish_reason == "length" and last.usage == CompletionUsage(3, 2, 5)
    assert all(c.usage is None for c in received[:-1])
    assert last.to_dict()["usage"] == USAGE
    for c in received:
        assert_same_as_openai(c)


@responses.activate
def test_whole_completion():
    responses.post(YLOKH_URL, json={
        "id": "chatcmpl-w", "object": "chat.completion", "created": 7, "model": "m-1", "usage": USAGE,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Целиком"}, "finish_reason": "stop"}],
    })
    completion = Client(provider=Ylokh).chat.completions.create(model="m", messages=MESSAGES_RU)
    assert isinstance(completion, ChatCompletionObject)
    assert json.loads(responses.calls[0].request.body)["stream"] is False
    assert completion.choices[0].message.content == "Целиком" and completion.choices[0].message.role == "assistant"
    assert (completion.id, completion.created, completion.model) == ("chatcmpl-w", 7, "m-1")
    assert completion.object == "chat.completion" and completion.usage == CompletionUsage(3, 2, 5)
    assert_same_as_openai(completion)
    responses.post(FLOWGPT_URL, body=ndjson("a", "b"))
    joined = Client(provider=FlowGpt).chat.completions.create(model=None, messages=MESSAGES_RU, stream=False)
    assert joined.choices[0].message.content == "ab" and joined.usage is None
    assert joined.choices[0].finish_reason == "stop" and joined.model == "gpt-3.5-turbo"
    assert_same_as_openai(joined)


def test_usage_from_partial_or_unusable_upstream_reports():
    assert CompletionUsage.from_dict({"total_tokens": 4}) == CompletionUsage(0, 0, 4)
    assert CompletionUsage.from_dict({"prompt_tokens": 1, "completion_tokens": 2, "extra": {}}) == CompletionUsage(1, 2, 3)
    assert CompletionUsage.from_dict(None) is None
    assert CompletionUsage.from_dict({"prompt_tokens": "3"}) is None
    assert CompletionUsage.from_dict({"prompt_tokens": True}) is None


@responses.activate
def test_client_options_reach_the_provider_and_the_key_stays_private():
    responses.post("http://127.0.0.1:9/v1/chat/completions", body=sse(chunk("ok", "stop")), content_type="text/event-stream")
    client = Client(provider=OpenAICompatible, base_url="http://127.0.0.1:9/v1", api_key="sk-secret-42", timeout=5)
    completion = client.chat.completions.create(model="m", messages=MESSAGES_RU, stream=True, temperature=0.3)
    assert [c.choices[0].delta.content for c in completion][1] == "ok"
    request = responses.calls[0].request
    assert request.headers["Authorization"] == "Bearer sk-secret-42"
    assert json.loads(request.body)["temperature"] == 0.3
    assert "sk-secret-42" not in repr(client) and "OpenAICompatible" in repr(client)
    with pytest.raises(UnsupportedOptionError, match="api_key"):  # a call's own key, to a provider without one
        Client(provider=FlowGpt).chat.completions.create(model=None, messages=MESSAGES_RU, api_key="k")
    # the client's key goes only to providers that take one (as the Client docstring says)
    responses.post(FLOWGPT_URL, body=ndjson("x"))
    assert Client(provider=FlowGpt, api_key="k-123").chat.completions.create(messages=MESSAGES_RU).choices[0].message.content == "x"
    assert "k-123" not in str(responses.calls[-1].request.headers) and b"k-123" not in responses.calls[-1].request.body
    with pytest.raises(llmproviders.InvalidArgumentError, match="base_url"):
        Client(provider="OpenAICompatible").chat.completions.create(model="m", messages=MESSAGES_RU, stream=True)


@responses.activate
def test_provider_picked_by_model_when_not_given():
    responses.post(FLOWGPT_URL, body=ndjson("x"))
    completion = Client().chat.completions.create(model="claude-v2", messages=MESSAGES_RU)
    assert completion.choices[0].message.content == "x"
    with pytest.raises(llmproviders.ProviderNotFoundError):
        Client().chat.completions.create(model="no-such-model", messages=MESSAGES_RU)


@responses.activate
def test_closing_the_chunk_stream_closes_the_provider_stream():
    responses.post(FLOWGPT_URL, body=body(ndjson("a"), ndjson("b")))
    chunks = Client(provider=FlowGpt).chat.completions.create(messages=MESSAGES_RU, stream=True)
    assert isinstance(chunks, ChatCompletionStream)
    assert next(chunks).choices[0].delta.role == "assistant"
    chunks.close()
    assert chunks.stream.closed
    assert list(chunks) == []
    chunks.close()  # again: harmless
    unused = Client(provider=FlowGpt).chat.completions.create(messages=MESSAGES_RU, stream=True)
    with unused:
        pass
    assert unused.stream.closed and len(responses.calls) == 1  # never started: nothing sent


@responses.activate
def test_async_forms():
    responses.post(YLOKH_URL, body=ylokh_stream(), content_type="text/event-stream")
    client = Client(provider=Ylokh)

    async def main():
        chunks = await client.chat.completions.create_async(messages=MESSAGES_RU, stream=True)
        assert isinstance(chunks, AsyncChatCompletionStream)
        async with chunks:
            streamed = [c async for c in chunks]
        whole = await client.chat.completions.create_async(messages=MESSAGES_RU)
        return streamed, whole

    streamed, whole = asyncio.run(main())
    assert [c.choices[0].delta.content for c in streamed] == ["", "При", "вет", None]
    assert streamed[-1].usage == CompletionUsage(3, 2, 5) and streamed[-1].choices[0].finish_reason == "length"
    assert whole.choices[0].message.content == "Привет" and whole.usage == CompletionUsage(3, 2, 5)
