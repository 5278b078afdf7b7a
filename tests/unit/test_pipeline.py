"""The pipeline every call runs: one reply per attempt, typed options checked before
any I/O, the registry, and streams built from plain iterators."""

import json

import pytest
import responses

from llmproviders import (
    Chatgpt4Online,
    Client,
    FlowGpt,
    GPROChat,
    InvalidArgumentError,
    OpenAICompatible,
    Provider,
    ReasoningDelta,
    Stream,
    StreamInterruptedError,
    TextDelta,
    Ylokh,
    register_provider,
)
from llmproviders._provider import Request
from llmproviders.events import Finish, ToolCall, Usage
from tests.helpers import MESSAGES_RU, body

BASE = "http://127.0.0.1:9/v1"
CHAT_URL = BASE + "/chat/completions"


def sse(*payloads) -> bytes:
    return b"".join(b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\n\n" for p in payloads)


def chunk(id, delta=None, finish_reason=None, **extra):
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish_reason}
    return {"id": id, "object": "chat.completion.chunk", "created": 100 if id == "first" else 200, "model": f"model-{id}", "choices": [choice], **extra}


@responses.activate
def test_a_retried_attempt_leaves_nothing_behind():
    """The first attempt reports an id, a model, a usage, the start of a tool call and
    a finish, but no text, reasoning or completed call, then breaks: a retry. Nothing of it
    may show in the stream, in its metadata, or in the Client's chunks."""
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    failed = sse(chunk("first", {"role": "assistant"}, usage=usage))
    responses.post(CHAT_URL, body=body(failed, error=ConnectionResetError(104, "reset")), content_type="text/event-stream")
    responses.post(
        CHAT_URL,
        body=sse(chunk("second", {"role": "assistant", "content": "ok"}), chunk("second", {}, "stop"), "[DONE]"),
        content_type="text/event-stream",
    )
    stream = OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE)
    assert list(stream.events()) == [TextDelta("ok"), Finish("stop")]
    assert len(responses.calls) == 2
    assert stream.metadata == {"id": "second", "created": 200, "model": "model-second", "finish_reason": "stop"}
    assert stream.usage is None and stream.reasoning == "" and stream.tool_calls == []

    responses.reset()
    client = Client(OpenAICompatible, base_url=BASE)
    responses.post(CHAT_URL, body=body(failed, error=ConnectionResetError(104, "reset")), content_type="text/event-stream")
    responses.post(CHAT_URL, body=sse(chunk("second", {"content": "ok"}, "stop"), "[DONE]"), content_type="text/event-stream")
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES_RU, stream=True))
    assert {c.id for c in chunks} == {"second"} and {c.created for c in chunks} == {200}
    assert all(c.usage is None for c in chunks)


@responses.activate
def test_metadata_held_before_the_stream_starts_is_filled_in():
    responses.post(CHAT_URL, body=sse(chunk("second", {"content": "ok"}, "stop"), "[DONE]"), content_type="text/event-stream")
    stream = OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE)
    metadata = stream.metadata
    assert metadata == {}
    assert "".join(stream) == "ok"
    assert metadata["id"] == "second" and metadata is stream.metadata


@pytest.mark.parametrize(
    ("provider", "options", "fragment"),
    [
        (FlowGpt, {"temperature": "hot"}, "'temperature' must be a number from 0 to 2, not 'hot'"),
        (FlowGpt, {"temperature": 7}, "from 0 to 2, not 7"),
        (FlowGpt, {"temperature": float("nan")}, "'temperature' must be a number"),
        (FlowGpt, {"temperature": True}, "'temperature' must be a number"),
        (OpenAICompatible, {"max_tokens": "100"}, "'max_tokens' must be a whole number >= 1, not '100'"),
        (OpenAICompatible, {"max_tokens": 0}, "'max_tokens' must be a whole number >= 1"),
        (OpenAICompatible, {"stop": 5}, "'stop' must be a non-empty string or a list of non-empty strings, not 5"),
        (OpenAICompatible, {"top_p": 1.5}, "'top_p' must be a number from 0 to 1"),
        (OpenAICompatible, {"seed": 1.5}, "'seed' must be a whole number"),
        (OpenAICompatible, {"logit_bias": {"50256": "x"}}, "'logit_bias' must be a dict of str keys"),
        (OpenAICompatible, {"response_format": "json"}, "'response_format' must be a dict"),
        (OpenAICompatible, {"tool_choice": "sometimes"}, "'tool_choice' must be one of 'none', 'auto', 'required' or a dict"),
        (OpenAICompatible, {"tools": [{"type": "function", "function": {}}]}, "'tools' must be a list of tools"),
        (OpenAICompatible, {"parallel_tool_calls": "yes"}, "'parallel_tool_calls' must be True or False"),
        (OpenAICompatible, {"top_logprobs": 50}, "'top_logprobs' must be a whole number from 0 to 20"),
        (OpenAICompatible, {"extra_body": ["top_k", 5]}, "'extra_body' must be a dict"),
        (OpenAICompatible, {"think_tags": "no"}, "'think_tags' must be True or False"),
        (OpenAICompatible, {"api_key": "sk secret"}, "'api_key' must be a non-empty string"),
        (OpenAICompatible, {"extra_headers": {"X-Key": "line\r\nbreak"}}, "line break"),
        (OpenAICompatible, {"extra_headers": {"Bad Name": "v"}}, "not a valid HTTP field name"),
        (OpenAICompatible, {"extra_headers": {"X-Key": "ключ"}}, "outside Latin-1"),
        (Ylokh, {"allow_fallback": "yes"}, "'allow_fallback' must be True or False"),
        (GPROChat, {"stream": "no"}, "'stream' must be True or False, not 'no'"),
        (Chatgpt4Online, {"stream": 1}, "'stream' must be True or False"),
    ],
)
@responses.activate  # any network access would fail the test with ConnectionError
def test_option_values_are_checked_before_any_io(provider, options, fragment):
    with pytest.raises(InvalidArgumentError) as info:
        provider.create_completion(None if provider is not OpenAICompatible else "m", MESSAGES_RU, base_url=BASE, **options)
    assert fragment in str(info.value) and provider.__name__ in str(info.value)
    assert len(responses.calls) == 0


def test_secret_option_values_never_show_in_the_error():
    with pytest.raises(InvalidArgumentError) as info:
        OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, api_key="sk-very secret")
    assert "secret" not in str(info.value)
    with pytest.raises(InvalidArgumentError) as info:
        OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, extra_headers={"X-Key": "sk-\nleak"})
    assert "leak" not in str(info.value)


@responses.activate
def test_extra_body_is_merged_last_and_call_options_stay_out_of_the_body():
    responses.post(CHAT_URL, body=sse(chunk("x", {"content": "ok"}, "stop"), "[DONE]"), content_type="text/event-stream")
    OpenAICompatible.create(
        "m",
        MESSAGES_RU,
        base_url=BASE,
        temperature=0.2,
        api_key="sk-k",
        extra_headers={"X-Trace": "1"},
        extra_body={"chat_template_kwargs": {"enable_thinking": False}, "top_k": 5, "temperature": 0.3},
        think_tags=False,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="auto",
        reasoning_effort="low",
    )
    sent = json.loads(responses.calls[0].request.body)
    assert sent["temperature"] == 0.3 and sent["top_k"] == 5 and sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert sent["tool_choice"] == "auto" and sent["reasoning_effort"] == "low" and sent["tools"][0]["function"]["name"] == "f"
    assert not {"api_key", "extra_headers", "extra_body", "think_tags"} & set(sent)
    assert responses.calls[0].request.headers["X-Trace"] == "1"


def test_registering_a_second_class_under_a_taken_name_is_refused():
    class FlowGpt(Provider):  # noqa: F811  (the point: the same name as the real one)
        pass

    with pytest.raises(InvalidArgumentError, match="already registered"):
        register_provider(FlowGpt)
    from llmproviders import FlowGpt as real

    assert register_provider(real) is real  # registering the same class again is fine


def test_a_stream_over_a_plain_iterator_records_text_and_events():
    stream = Stream(iter(["a", ReasoningDelta("r"), "b", Usage(1, 2, 3), Finish("stop")]), provider="p", model="m")
    assert list(stream) == ["a", "b"]
    assert stream.text == "ab" and stream.reasoning == "r" and stream.usage == Usage(1, 2, 3) and stream.finish_reason == "stop"
    stream = Stream(iter(["a", ReasoningDelta("r"), "b"]), provider="p", model="m", metadata={"k": 1})
    assert list(stream.events()) == [TextDelta("a"), ReasoningDelta("r"), TextDelta("b")]
    assert stream.metadata == {"k": 1}


def test_text_and_event_iteration_advance_the_same_stream():
    stream = Stream(iter(["a", ReasoningDelta("r"), "b", "c", Finish("stop")]), provider="p", model="m")
    assert next(stream) == "a"
    events = stream.events()
    assert next(events) == ReasoningDelta("r")
    assert next(stream) == "b"
    assert list(events) == [TextDelta("c"), Finish("stop")]
    assert stream.text == "abc" and list(stream) == []


def test_tool_call_events_from_a_plain_iterator_complete_at_the_finish():
    from llmproviders.events import ToolCallDelta

    stream = Stream(
        iter([ToolCallDelta(0, "c1", "f", '{"a":'), ToolCallDelta(0, None, None, "1}"), Finish("tool_calls")]),
        provider="p",
        model="m",
    )
    events = list(stream.events())
    assert events[-2:] == [ToolCall(0, "c1", "f", '{"a":1}'), Finish("tool_calls")]
    assert stream.message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
    }


def test_outcome_and_done_callbacks():
    seen = []
    stream = Stream(iter(["a", "b"]), provider="p", model="m")
    stream.add_done_callback(lambda outcome, error: seen.append((outcome, error)))
    assert stream.outcome is None and list(stream) == ["a", "b"]
    assert stream.outcome == "complete" and seen == [("complete", None)]
    stream.add_done_callback(lambda outcome, error: seen.append(outcome))  # already ended: at once
    assert seen[-1] == "complete"

    stream = Stream(iter(["a", "b"]), provider="p", model="m")
    stream.add_done_callback(lambda outcome, error: seen.append(outcome))
    next(stream)
    stream.close()
    assert stream.outcome == "closed" and seen[-1] == "closed"

    stream = Stream(iter(["a"]), provider="p", model="m")
    stream.close()  # never started
    assert stream.outcome == "closed"

    def broken():
        yield "a"
        raise StreamInterruptedError("p: broke", provider="p")

    stream = Stream(broken(), provider="p", model="m")
    stream.add_done_callback(lambda outcome, error: seen.append((outcome, type(error).__name__, error.partial)))
    with pytest.raises(StreamInterruptedError):
        list(stream)
    assert stream.outcome == "failed" and seen[-1] == ("failed", "StreamInterruptedError", "a")


@responses.activate
def test_stream_false_text_then_events_repeats_and_loses_nothing():
    """(review) With stream=False, reading the text and then events() must not give the
    text twice, nor drop the Finish and Usage."""
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    whole = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": usage,
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
    responses.post(CHAT_URL, json=whole)
    stream = OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, stream=False)
    assert next(stream) == "ok"
    assert list(stream.events()) == [Finish("stop"), Usage(1, 1, 2, usage)]
    assert list(stream) == [] and stream.text == "ok"


def test_reading_text_from_another_thread_while_the_stream_spills_is_safe(monkeypatch):
    """(review) stream.text read from another thread (a UI showing progress) while the
    stream moves text to its temporary file must neither corrupt it nor see it twice."""
    import threading

    from llmproviders import _provider, _reply

    monkeypatch.setattr(_reply, "SPILL_AFTER", 1000)
    monkeypatch.setattr(_provider, "JOIN_EVERY", 4)
    deltas = [f"<{i:06d}>" for i in range(60_000)]
    want = "".join(deltas)
    stream = Stream(iter(deltas), provider="p", model="m")
    stop, seen = threading.Event(), []

    def watcher():
        while not stop.is_set():
            text = stream.text
            seen.append(want.startswith(text))

    thread = threading.Thread(target=watcher)
    thread.start()
    try:
        delivered = "".join(stream)
    finally:
        stop.set()
        thread.join(10)
    assert delivered == want and stream.text == want
    assert seen and all(seen)  # every snapshot was a prefix of the reply


def test_done_callbacks_never_replace_the_stream_error_and_late_ones_get_it():
    def broken():
        yield "a"
        raise StreamInterruptedError("p: cut", provider="p")

    calls = []

    def bad(outcome, error):
        calls.append("bad")
        raise RuntimeError("a bug in a callback")

    stream = Stream(broken(), provider="p", model="m")
    stream.add_done_callback(bad)
    stream.add_done_callback(lambda outcome, error: calls.append((outcome, type(error).__name__)))
    with pytest.raises(StreamInterruptedError):  # not the callback's RuntimeError
        list(stream)
    assert calls == ["bad", ("failed", "StreamInterruptedError")]
    late = []
    stream.add_done_callback(lambda outcome, error: late.append((outcome, error)))
    assert late[0][0] == "failed" and isinstance(late[0][1], StreamInterruptedError)


class _OwnSSE(Provider):
    """A user's provider on the default framing, reading each event as sseclient-py gives it."""

    default_model = "m"

    @classmethod
    def build_request(cls, call, model, messages, options, *, stream):
        return Request(call.url("http://own.test/chat"), {}, json={"messages": messages})

    @classmethod
    def parse(cls, frame, reply):
        return f"{frame.event}:{frame.data};"


class _OwnDialect(OpenAICompatible):
    """A subclass of OpenAICompatible that reads frames itself (a server's own dialect)."""

    @classmethod
    def parse(cls, frame, reply):
        if frame.data == "[DONE]":
            reply.done = True
            return None
        return frame.event + ":" + json.loads(frame.data)["t"]


@responses.activate
def test_a_parse_written_for_events_gets_events_whatever_the_event_looks_like():
    """Review: the one-data-line short way handed every provider a str for the usual event,
    and a user's parse reading frame.data raised a bare AttributeError. A str goes only to
    a parse whose class says it takes one (OpenAICompatible's, Chatgpt4Online's)."""
    from llmproviders._provider import _takes_data_frames

    responses.post("http://own.test/chat", body="data: hello\n\nevent: x\ndata: world\n\n", content_type="text/event-stream")
    assert _OwnSSE.create(None, MESSAGES_RU, base_url="http://own.test", max_retries=0) == "message:hello;x:world;"

    responses.post(CHAT_URL, body='data: {"t": "a"}\n\nevent: e\ndata: {"t": "b"}\n\ndata: [DONE]\n\n', content_type="text/event-stream")
    assert _OwnDialect.create("m", MESSAGES_RU, base_url=BASE, max_retries=0) == "message:ae:b"

    assert _takes_data_frames(OpenAICompatible) and _takes_data_frames(Ylokh) and _takes_data_frames(Chatgpt4Online)
    assert not _takes_data_frames(_OwnSSE) and not _takes_data_frames(_OwnDialect)
