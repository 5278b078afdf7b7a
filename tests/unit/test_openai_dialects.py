"""The OpenAI protocol as servers speak it (DIALECTS.md): reasoning, tool calls, usage,
refusal, logprobs, several choices, in-stream errors, structured output. Each reply is
served with ``responses``, streamed and whole, and read as events and as properties."""

import json

import pytest
import responses

from llmproviders import (
    ContextWindowExceededError,
    EmptyResponseError,
    Finish,
    OpenAICompatible,
    ProtocolError,
    ReasoningDelta,
    RefusalDelta,
    ResponseError,
    StreamInterruptedError,
    StructuredOutputError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from tests.helpers import MESSAGES_RU, body

BASE = "http://127.0.0.1:9/v1"
CHAT_URL = BASE + "/chat/completions"


def sse(*payloads) -> bytes:
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p, ensure_ascii=False)).encode() + b"\n\n"
        for p in payloads
    )


def chunk(delta=None, finish_reason=None, **extra):
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish_reason}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice], **extra}


def completion(message, finish_reason="stop", **extra):
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
    return {"id": "chatcmpl-2", "object": "chat.completion", "created": 2, "model": "m", "choices": [choice], **extra}


def stream_of(*payloads, **kwargs):
    responses.post(CHAT_URL, body=sse(*payloads, "[DONE]"), content_type="text/event-stream")
    return OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, max_retries=0, **kwargs)


def whole_of(payload, **kwargs):
    responses.post(CHAT_URL, json=payload)
    return OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, max_retries=0, stream=False, **kwargs)


def text_of(events):
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_of(events):
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


# -- reasoning ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@responses.activate
def test_reasoning_fields_become_reasoning_events_never_text(field):
    extra = {"content": ""} if field == "reasoning" else {"content": None}  # Ollama sends "" beside it
    stream = stream_of(
        chunk({"role": "assistant", field: "Let me think.", **extra}),
        chunk({field: " 2+2=4."}),
        chunk({"content": "4"}),
        chunk({}, "stop"),
    )
    events = list(stream.events())
    assert events == [ReasoningDelta("Let me think."), ReasoningDelta(" 2+2=4."), TextDelta("4"), Finish("stop")]
    assert stream.text == "4" and stream.reasoning == "Let me think. 2+2=4."
    assert stream.message == {"role": "assistant", "content": "4", "reasoning_content": "Let me think. 2+2=4."}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@responses.activate
def test_reasoning_fields_in_a_whole_reply(field):
    stream = whole_of(completion({"content": "4", field: "Let me think. 2+2=4."}))
    assert list(stream) == ["4"]
    assert stream.reasoning == "Let me think. 2+2=4." and stream.finish_reason == "stop"


THINK = ["<think>", "Let me think.", "</think>\n\n4"]


@responses.activate
def test_think_tags_at_the_start_of_the_content_are_reasoning():
    stream = stream_of(*[chunk({"content": piece}) for piece in THINK], chunk({}, "stop"))
    events = list(stream.events())
    assert text_of(events) == "4" == stream.text
    assert reasoning_of(events) == "Let me think." == stream.reasoning


@responses.activate
def test_think_tags_split_anywhere_across_chunks():
    whole = "<think>Let me think. <b>2+2</b>=4</think>\n\n4 <think>not reasoning</think>"
    for cut in range(1, len(whole)):
        for second in (cut + 1, cut + 5, len(whole)):
            pieces = [whole[:cut], whole[cut:second], whole[second:]]
            responses.reset()
            stream = stream_of(*[chunk({"content": p}) for p in pieces if p], chunk({}, "stop"))
            events = list(stream.events())
            assert reasoning_of(events) == "Let me think. <b>2+2</b>=4", pieces
            assert text_of(events) == "4 <think>not reasoning</think>", pieces


@responses.activate
def test_a_reply_that_ends_inside_the_think_block_is_all_reasoning():
    stream = stream_of(chunk({"content": "<th"}), chunk({"content": "ink>still thinking </thi"}), chunk({}, "length"))
    assert list(stream) == [] and stream.text == ""
    assert stream.reasoning == "still thinking </thi" and stream.finish_reason == "length"


@responses.activate
def test_think_tags_false_keeps_them_in_the_text():
    stream = stream_of(*[chunk({"content": piece}) for piece in THINK], chunk({}, "stop"), think_tags=False)
    assert "".join(stream) == "".join(THINK) and stream.reasoning == ""


@responses.activate
def test_think_tags_in_a_whole_reply():
    stream = whole_of(completion({"content": "<think>hmm</think>\n4"}))
    assert list(stream) == ["4"] and stream.reasoning == "hmm"


@responses.activate
def test_text_that_only_looks_like_a_tag_start_is_text():
    stream = stream_of(chunk({"content": "<"}), chunk({"content": "b>bold</b>"}), chunk({}, "stop"))
    assert "".join(stream) == "<b>bold</b>" and stream.reasoning == ""


# -- tool calls -------------------------------------------------------------------------------


def call_fragment(index=0, id=None, name=None, arguments=None, **extra):
    fragment = {"function": {}, **extra}
    if index is not None:
        fragment["index"] = index
    if id is not None:
        fragment["id"], fragment["type"] = id, "function"
    if name is not None:
        fragment["function"]["name"] = name
    if arguments is not None:
        fragment["function"]["arguments"] = arguments
    return fragment


def calls_chunk(*fragments, **delta):
    return chunk({"tool_calls": list(fragments), **delta})


WEATHER = ToolCall(0, "call_1", "get_weather", '{"city":"Paris"}')
TIME = ToolCall(1, "call_2", "get_time", '{"tz":"CET"}')

DEVIATIONS = {
    "normal": [
        calls_chunk(call_fragment(0, "call_1", "get_weather", ""), role="assistant", content=None),
        calls_chunk(call_fragment(0, arguments='{"city":')),
        calls_chunk(call_fragment(0, arguments='"Paris"}')),
    ],
    "no index (Gemini)": [
        calls_chunk(call_fragment(None, "call_1", "get_weather", '{"city":')),
        calls_chunk(call_fragment(None, arguments='"Paris"}')),
        calls_chunk(call_fragment(None, "call_2", "get_time", '{"tz":"CET"}')),
    ],
    "index 0 reused with a new id (vLLM)": [
        calls_chunk(call_fragment(0, "call_1", "get_weather", '{"city":"Paris"}')),
        calls_chunk(call_fragment(0, "call_2", "get_time", '{"tz":')),
        calls_chunk(call_fragment(0, arguments='"CET"}')),
    ],
    "first index is 1": [
        calls_chunk(call_fragment(1, "call_1", "get_weather", "")),
        calls_chunk(call_fragment(1, arguments='{"city":"Paris"}')),
        calls_chunk(call_fragment(2, "call_2", "get_time", '{"tz":"CET"}')),
    ],
    "whole call in one chunk (Ollama)": [
        calls_chunk(call_fragment(0, "call_1", "get_weather", '{"city":"Paris"}')),
    ],
    "interleaved": [
        calls_chunk(call_fragment(0, "call_1", "get_weather", "")),
        calls_chunk(call_fragment(1, "call_2", "get_time", "")),
        calls_chunk(call_fragment(0, arguments='{"city":')),
        calls_chunk(call_fragment(1, arguments='{"tz":')),
        calls_chunk(call_fragment(0, arguments='"Paris"}'), call_fragment(1, arguments='"CET"}')),
    ],
    "arguments as an object": [
        calls_chunk(call_fragment(0, "call_1", "get_weather", {"city": "Paris"})),
    ],
    "id and name on every fragment, beside function_call (llama-cpp-python)": [
        calls_chunk(call_fragment(0, "call_1", "get_weather", '{"ci'), function_call={"name": "get_weather", "arguments": '{"ci'}),
        calls_chunk(call_fragment(0, "call_1", "get_weather", 'ty":"Par'), function_call={"name": "get_weather", "arguments": 'ty":"Par'}),
        calls_chunk(call_fragment(0, "call_1", "get_weather", 'is"}'), function_call={"name": "get_weather", "arguments": 'is"}'}),
    ],
}
EXPECTED = {
    "normal": [WEATHER],
    "no index (Gemini)": [WEATHER, TIME],
    "index 0 reused with a new id (vLLM)": [WEATHER, TIME],
    "first index is 1": [WEATHER, TIME],
    "whole call in one chunk (Ollama)": [WEATHER],
    "interleaved": [WEATHER, TIME],
    "arguments as an object": [ToolCall(0, "call_1", "get_weather", '{"city": "Paris"}')],
    "id and name on every fragment, beside function_call (llama-cpp-python)": [WEATHER],
}


def fragments_on_the_wire(chunks):
    return sum(len(c["choices"][0]["delta"]["tool_calls"]) for c in chunks)


@pytest.mark.parametrize("finish", ["tool_calls", "stop"])  # Gemini says "stop" although it called
@pytest.mark.parametrize("dialect", list(DEVIATIONS))
@responses.activate
def test_tool_call_dialects(dialect, finish):
    chunks = DEVIATIONS[dialect]
    stream = stream_of(*chunks, chunk({}, finish))
    events = list(stream.events())
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) == fragments_on_the_wire(chunks)  # one per fragment on the wire
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls == EXPECTED[dialect] == stream.tool_calls
    assert events[-1] == Finish(finish) and events.index(calls[-1]) == len(events) - 2  # calls, then the finish
    names = [d.name for d in deltas if d.name]
    assert names == [c.name for c in calls]  # a repeated name is given once per call
    assert stream.text == "" and list(stream) == []
    assert stream.message == {"role": "assistant", "content": None, "tool_calls": [c.to_dict() for c in calls]}
    assert [c.parsed_arguments() for c in calls] == [json.loads(c.arguments) for c in EXPECTED[dialect]]


@responses.activate
def test_a_tool_call_only_reply_is_not_empty_and_is_not_retried():
    responses.post(
        CHAT_URL,
        body=sse(*DEVIATIONS["normal"], chunk({}, "tool_calls"), "[DONE]"),
        content_type="text/event-stream",
    )
    stream = OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE)
    assert list(stream) == [] and stream.tool_calls == [WEATHER] and stream.finish_reason == "tool_calls"
    assert len(responses.calls) == 1


@responses.activate
def test_tool_calls_in_a_whole_reply():
    message = {"content": None, "tool_calls": [WEATHER.to_dict(), TIME.to_dict()]}
    stream = whole_of(completion(message, "tool_calls"))
    events = list(stream.events())
    assert [e for e in events if isinstance(e, ToolCall)] == [WEATHER, TIME] == stream.tool_calls
    assert len([e for e in events if isinstance(e, ToolCallDelta)]) == 2
    assert stream.message["tool_calls"] == [WEATHER.to_dict(), TIME.to_dict()] and stream.message["content"] is None


@responses.activate
def test_tool_calls_the_server_never_finished_complete_at_the_end():
    responses.post(CHAT_URL, body=sse(*DEVIATIONS["normal"], "[DONE]"), content_type="text/event-stream")
    stream = OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE)
    assert [e for e in stream.events() if isinstance(e, ToolCall)] == [WEATHER]


def test_parsed_arguments_of_bad_json_is_a_protocol_error():
    with pytest.raises(ProtocolError) as info:
        ToolCall(0, "c", "f", '{"city": ').parsed_arguments()
    assert info.value.frame == '{"city": '
    assert ToolCall(0, "c", "f", "").parsed_arguments() == {}


# -- usage, refusal, logprobs, choices --------------------------------------------------------------


@responses.activate
def test_a_usage_only_final_chunk_with_timings_comes_after_the_finish():
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    timings = {"prompt_n": 12, "prompt_ms": 30.1, "predicted_n": 5, "predicted_ms": 41.7}
    final = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": usage, "timings": timings}
    stream = stream_of(chunk({"content": "4"}), chunk({}, "stop"), final)
    events = list(stream.events())
    assert events == [TextDelta("4"), Finish("stop"), Usage(12, 5, 17, usage)]
    assert stream.usage == Usage(12, 5, 17) and stream.usage.raw == usage
    assert stream.metadata["timings"] == timings and stream.metadata["usage"] == usage


@responses.activate
def test_usage_on_every_chunk_keeps_the_last():
    running = [{"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n} for n in (1, 2, 3)]
    stream = stream_of(
        chunk({"content": "a"}, usage=running[0]), chunk({"content": "b"}, usage=running[1]), chunk({}, "stop", usage=running[2])
    )
    assert "".join(stream) == "ab"
    assert stream.usage == Usage(3, 3, 6)


@responses.activate
def test_refusal_fragments_and_a_whole_refusal():
    stream = stream_of(chunk({"refusal": "I can't "}), chunk({"refusal": "help with that."}), chunk({}, "stop"))
    events = list(stream.events())
    assert events[:2] == [RefusalDelta("I can't "), RefusalDelta("help with that.")]
    assert stream.refusal == "I can't help with that." and stream.text == ""
    responses.reset()
    stream = whole_of(completion({"content": None, "refusal": "No."}))
    assert stream.refusal is None  # nothing read yet
    assert list(stream) == [] and stream.refusal == "No."


@responses.activate
def test_logprobs_entries_are_collected():
    entry = {"token": "4", "logprob": -0.01, "bytes": [52], "top_logprobs": [{"token": "4", "logprob": -0.01, "bytes": [52]}]}
    first = chunk({"content": "4"})
    first["choices"][0]["logprobs"] = {"content": [entry]}
    stream = stream_of(first, chunk({}, "stop"), logprobs=True, top_logprobs=1)
    assert "".join(stream) == "4" and stream.logprobs == [entry]
    assert json.loads(responses.calls[0].request.body)["logprobs"] is True


@responses.activate
def test_several_choices_are_a_clear_error():
    two = chunk({"content": "a"})
    two["choices"].append({"index": 1, "delta": {"content": "b"}, "finish_reason": None})
    stream = stream_of(two)
    with pytest.raises(ProtocolError, match="n=1"):
        list(stream)
    responses.reset()
    stream = stream_of(chunk({"content": "a"}), {**chunk({"content": "b"}), "choices": [{"index": 1, "delta": {"content": "b"}}]})
    with pytest.raises(ProtocolError, match="several choices") as info:
        list(stream)
    assert info.value.partial == "a"


# -- ends and errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"data: [DONE]\n", b"data: [DONE]", b"data: [DONE]\r\n"])
@responses.activate
def test_a_body_that_ends_right_after_done_is_a_clean_end_when_the_reply_finished(ending):
    data = sse(chunk({"content": "ok"}), chunk({}, "stop")) + ending
    responses.post(CHAT_URL, body=body(data), content_type="text/event-stream")
    assert OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE) == "ok"


@responses.activate
def test_a_body_that_ends_after_done_without_a_finish_is_interrupted():
    data = sse(chunk({"content": "ok"})) + b"data: [DONE]"
    responses.post(CHAT_URL, body=body(data), content_type="text/event-stream")
    with pytest.raises(StreamInterruptedError) as info:
        OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE, max_retries=0)
    assert info.value.partial == "ok"


@responses.activate
def test_an_error_event_line_is_a_response_error():
    data = sse(chunk({"content": "ok"})) + b'event: error\ndata: {"message": "overloaded", "type": "server_error"}\n\n'
    responses.post(CHAT_URL, body=body(data), content_type="text/event-stream")
    with pytest.raises(ResponseError, match="overloaded") as info:
        OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE, max_retries=0)
    assert info.value.partial == "ok" and info.value.error == {"message": "overloaded", "type": "server_error"}


@pytest.mark.parametrize(
    ("error", "n_prompt", "n_ctx"),
    [
        ({"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}, 5000, 4096),
        ({"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}, 9000, 8192),
    ],
)
@responses.activate
def test_a_context_overflow_inside_a_stream_is_never_retried(error, n_prompt, n_ctx):
    responses.post(CHAT_URL, body=sse({"error": error}), content_type="text/event-stream")
    with pytest.raises(ContextWindowExceededError) as info:
        OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE)
    assert (info.value.n_prompt_tokens, info.value.n_ctx) == (n_prompt, n_ctx)
    assert len(responses.calls) == 1


@responses.activate
def test_an_empty_reply_without_finish_is_still_empty():
    responses.post(CHAT_URL, body=sse(chunk({"role": "assistant"}), "[DONE]"), content_type="text/event-stream")
    with pytest.raises(EmptyResponseError):
        OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE, max_retries=0)


# -- structured output -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"a": [1, 2]}', '```json\n{"a": [1, 2]}\n```', '  ```\n{"a": [1, 2]}```  '])
@responses.activate
def test_json_reads_the_reply_and_tolerates_a_fence(text):
    stream = stream_of(chunk({"content": text}), chunk({}, "stop"))
    assert stream.json() == {"a": [1, 2]} and stream.closed


@responses.activate
def test_json_that_is_not_json_keeps_the_text():
    stream = stream_of(chunk({"content": "Sure! Here it is: {"}), chunk({}, "stop"))
    with pytest.raises(StructuredOutputError) as info:
        stream.json()
    assert info.value.text == "Sure! Here it is: {" and isinstance(info.value, ValueError)


@responses.activate
def test_a_second_choice_sent_in_chunks_of_its_own_is_an_error_not_merged_text():
    """(review) vLLM with n=2 sends one choice per chunk; the short path for plain text
    chunks must not append another choice's text to the answer."""
    def text(index, content):
        return {**chunk({"content": content}), "choices": [{"index": index, "delta": {"content": content}, "finish_reason": None}]}

    stream = stream_of(chunk({"role": "assistant", "content": ""}), text(0, "Paris "), text(1, "London "), text(0, "is "))
    with pytest.raises(ProtocolError, match="several choices") as info:
        list(stream)
    assert info.value.partial == "Paris "
