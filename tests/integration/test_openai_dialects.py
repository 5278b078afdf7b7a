"""Every OpenAI-compatible dialect and deviation, over real sockets against the emulator,
streamed and whole: reasoning, tool calls, usage, refusal, logprobs, choices, errors and
SSE edge cases; and a tool loop. Where openai-python reads a case, our result is compared
with its own."""

import json

import openai
import pytest

from llmproviders import (
    Client,
    ContextWindowExceededError,
    OpenAICompatible,
    ProtocolError,
    ReasoningDelta,
    ResponseError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from llmproviders.testing import (
    REFUSAL_TEXT,
    TOOL_REPLY_FORMAT,
    YLOKH_PATH,
    arguments_for,
    reply_for,
    thinking_for,
)

MESSAGES = [{"role": "user", "content": "Сколько будет 2+2? 🤔"}]
REPLY = reply_for(MESSAGES)
THINKING = thinking_for(MESSAGES)
TIMEOUT = 5
STREAMS = pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])


def call(emulator, *, stream=True, messages=MESSAGES, **options):
    """A finished stream from OpenAICompatible against the emulator."""
    s = OpenAICompatible.create_completion(
        "m", messages, base_url=emulator.base_url + "/v1", stream=stream, timeout=TIMEOUT, max_retries=0, **options
    )
    events = list(s.events())
    return s, events


@STREAMS
@pytest.mark.parametrize("dialect", ["reasoning_content", "reasoning", "think"])
def test_reasoning_in_every_dialect(emulator, dialect, stream):
    emulator.plan(path=YLOKH_PATH, reasoning=dialect)
    s, events = call(emulator, stream=stream)
    assert s.text == REPLY and s.reasoning == THINKING
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == THINKING
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY  # never leaks into the text
    assert s.message == {"role": "assistant", "content": REPLY, "reasoning_content": THINKING}


@STREAMS
def test_a_reply_that_ends_inside_its_reasoning(emulator, stream):
    emulator.plan(path=YLOKH_PATH, reasoning="think", unfinished_reasoning=True)
    s, _ = call(emulator, stream=stream)
    assert s.text == "" and s.reasoning.startswith(THINKING[:10]) and s.finish_reason == "length"


def test_think_tags_can_be_kept_as_text(emulator):
    emulator.plan(path=YLOKH_PATH, reasoning="think")
    s, _ = call(emulator, think_tags=False)
    assert s.text.startswith("<think>") and s.text.endswith(REPLY) and s.reasoning == ""


CALLS = [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_a"}, {"name": "get_time", "arguments": {"tz": "CET"}, "id": "call_b"}]


@STREAMS
@pytest.mark.parametrize(
    "style", ["standard", "no_index", "reused_index", "index_from_1", "whole", "interleaved", "object_arguments", "repeated"]
)
def test_tool_calls_in_every_style(emulator, style, stream):
    emulator.plan(path=YLOKH_PATH, tool_calls=CALLS, tool_call_style=style)
    s, events = call(emulator, stream=stream)
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls == s.tool_calls
    assert [(c.index, c.id, c.name, c.parsed_arguments()) for c in calls] == [
        (0, "call_a", "get_weather", {"city": "Paris"}),
        (1, "call_b", "get_time", {"tz": "CET"}),
    ]
    assert [e for e in events if isinstance(e, ToolCallDelta)]  # the fragments came through too
    assert s.text == "" and s.finish_reason == "tool_calls"
    assert s.message["content"] is None
    assert [c["function"]["name"] for c in s.message["tool_calls"]] == ["get_weather", "get_time"]


@STREAMS
def test_tool_calls_with_finish_reason_stop_gemini(emulator, stream):
    emulator.plan(path=YLOKH_PATH, tool_calls=CALLS[:1], finish_reason="stop", tool_call_style="no_index")
    s, _ = call(emulator, stream=stream)
    assert [c.name for c in s.tool_calls] == ["get_weather"] and s.finish_reason == "stop"


@STREAMS
def test_text_before_tool_calls(emulator, stream):
    emulator.plan(path=YLOKH_PATH, tool_calls=CALLS[:1], reply="Let me look that up.")
    s, _ = call(emulator, stream=stream)
    assert s.text == "Let me look that up." and [c.name for c in s.tool_calls] == ["get_weather"]


def test_the_tool_loop_with_reasoning_kept_for_deepseek(emulator):
    """A tool loop as a user writes it: ask with tools, run the tool, append the assistant
    message and the tool's result, ask again. DeepSeek's thinking mode answers 400 when the
    assistant message comes back without its reasoning_content; stream.message keeps it."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
    emulator.plan(path=YLOKH_PATH, times=2, reasoning="reasoning_content", require_reasoning_content=True)
    messages = list(MESSAGES)
    first, _ = call(emulator, messages=messages, tools=tools)
    (tool_call,) = first.tool_calls
    assert tool_call.name == "lookup" and tool_call.parsed_arguments() == arguments_for(tools[0]["function"]["parameters"], MESSAGES[0]["content"])
    messages += [first.message, {"role": "tool", "tool_call_id": tool_call.id, "content": "4"}]
    second, _ = call(emulator, messages=messages, tools=tools)
    assert second.text == TOOL_REPLY_FORMAT.format(result="4") == reply_for(messages)
    sent = emulator.requests[-1].json["messages"]
    assert sent[1]["reasoning_content"] == first.reasoning and sent[1]["tool_calls"][0]["id"] == tool_call.id


def test_a_usage_only_final_chunk_with_timings(emulator):
    emulator.plan(path=YLOKH_PATH, usage="final", timings=True)
    s, events = call(emulator)
    assert s.usage is not None and s.usage.total_tokens == s.usage.prompt_tokens + s.usage.completion_tokens
    assert "predicted_n" in s.metadata["timings"]
    kinds = [type(e).__name__ for e in events]
    assert kinds[-2:] == ["Finish", "Usage"]  # the usage-only chunk comes after the finish


@STREAMS
def test_usage_on_every_chunk_keeps_the_last(emulator, stream):
    emulator.plan(path=YLOKH_PATH, usage="every")
    s, events = call(emulator, stream=stream)
    usages = [e for e in events if type(e).__name__ == "Usage"]
    assert usages and s.usage == usages[-1] and s.text == REPLY


@STREAMS
def test_refusal(emulator, stream):
    emulator.plan(path=YLOKH_PATH, refusal=True)
    s, _ = call(emulator, stream=stream)
    assert s.refusal == REFUSAL_TEXT and s.text == ""


@STREAMS
def test_logprobs(emulator, stream):
    s, _ = call(emulator, stream=stream, logprobs=True, top_logprobs=2)
    assert s.text == REPLY and s.logprobs
    assert "".join(entry["token"] for entry in s.logprobs) == REPLY
    assert all(len(entry["top_logprobs"]) == 2 for entry in s.logprobs)


@STREAMS
def test_several_choices_are_a_clear_error(emulator, stream):
    emulator.plan(path=YLOKH_PATH, choices=2)
    with pytest.raises(ProtocolError, match="n=1"):
        call(emulator, stream=stream)


@pytest.mark.parametrize("kind", ["llama.cpp", "openai"])
@pytest.mark.parametrize("status", [400, 500])
def test_context_overflow_is_never_retried(emulator, kind, status):
    plan = emulator.plan(path=YLOKH_PATH, context_overflow=kind, status=status, context_window=2048, times=3)
    with pytest.raises(ContextWindowExceededError) as info:
        OpenAICompatible.create("m", MESSAGES, base_url=emulator.base_url + "/v1", timeout=TIMEOUT)
    assert info.value.n_ctx == 2048 and isinstance(info.value.n_prompt_tokens, int)
    assert info.value.status_code == status
    assert len(plan.requests) == 1  # not retried, even with 500


@pytest.mark.parametrize("as_event", [False, True])
def test_an_error_inside_the_stream(emulator, as_event):
    emulator.plan(path=YLOKH_PATH, stream_error={"message": "model overloaded", "type": "server_error"}, stream_error_event=as_event)
    with pytest.raises(ResponseError, match="model overloaded") as info:
        call(emulator)
    assert info.value.partial and REPLY.startswith(info.value.partial)


def test_invalid_utf8_inside_an_event_is_a_replacement_character(emulator):
    emulator.plan(path=YLOKH_PATH, invalid_utf8=True)
    s, _ = call(emulator)
    assert "\ufffd" in s.text and s.text.replace("\ufffd", "") == REPLY and s.finish_reason == "stop"


@pytest.mark.parametrize("edge", [{"utf16_bom_line": True}, {"leading_bom": True}, {"done_ending": "newline"}, {"done_ending": "none"}])
@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_sse_edge_cases_read_as_the_standard_says(emulator, edge, framing):
    emulator.plan(path=YLOKH_PATH, framing=framing, **edge)
    s, _ = call(emulator)
    assert s.text == REPLY and s.finish_reason == "stop"


# -- the same replies through openai-python ---------------------------------------------------------


def openai_client(emulator):
    return openai.OpenAI(base_url=emulator.base_url + "/v1", api_key="x", max_retries=0, timeout=TIMEOUT)


@pytest.mark.parametrize("style", ["standard", "whole", "interleaved"])
def test_streamed_tool_calls_add_up_as_in_openai_python(emulator, style):
    """openai-python's stream helper accumulates tool calls (it crashes on other
    dialects, index_from_1 and no_index among them, which is why those are compared with
    the expected calls above)."""
    emulator.plan(path=YLOKH_PATH, times=2, tool_calls=CALLS, tool_call_style=style)
    with openai_client(emulator) as theirs:
        with theirs.chat.completions.stream(model="m", messages=MESSAGES) as stream:
            for _ in stream:
                pass
            final = stream.get_final_completion()
    expected = [(c.id, c.function.name, c.function.arguments) for c in final.choices[0].message.tool_calls]
    client = Client(OpenAICompatible, base_url=emulator.base_url + "/v1", timeout=TIMEOUT)
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    calls = {}
    for chunk in chunks:
        for fragment in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(fragment.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = entry["id"] or fragment.id
            entry["name"] += fragment.function.name or ""
            entry["arguments"] += fragment.function.arguments or ""
    assert [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())] == expected
    assert chunks[-1].choices[0].finish_reason == final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("options", [{"tool_calls": CALLS}, {"reasoning": "reasoning_content"}, {"refusal": True}])
def test_whole_completions_equal_openai_pythons(emulator, options):
    emulator.plan(path=YLOKH_PATH, times=2, **options)
    with openai_client(emulator) as theirs:
        expected = theirs.chat.completions.create(model="m", messages=MESSAGES).model_dump()
    ours = Client(OpenAICompatible, base_url=emulator.base_url + "/v1", timeout=TIMEOUT).chat.completions.create(
        model="m", messages=MESSAGES
    )
    mine = openai.types.chat.ChatCompletion.model_validate(ours.to_dict()).model_dump()
    for data in (expected, mine):
        del data["id"], data["created"]
    assert mine == expected


def test_logprobs_in_chunks_equal_openai_pythons(emulator):
    emulator.plan(path=YLOKH_PATH, times=2)
    with openai_client(emulator) as theirs:
        with theirs.chat.completions.create(model="m", messages=MESSAGES, stream=True, logprobs=True, top_logprobs=1) as s:
            expected = [c.choices[0].logprobs.model_dump() for c in s if c.choices and c.choices[0].logprobs]
    client = Client(OpenAICompatible, base_url=emulator.base_url + "/v1", timeout=TIMEOUT)
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True, logprobs=True, top_logprobs=1))
    ours = [
        openai.types.chat.chat_completion_chunk.ChoiceLogprobs.model_validate(c.choices[0].logprobs.to_dict()).model_dump()
        for c in chunks
        if c.choices[0].logprobs
    ]
    assert ours == expected and json.dumps(ours)
