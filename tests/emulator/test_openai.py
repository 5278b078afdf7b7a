"""The OpenAI chat-completions endpoint (Ylokh and OpenAI-compatible clients)."""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, List

import pytest
import requests

from llmproviders.testing import (
    DIALECTS,
    REFUSAL_TEXT,
    TOOL_REPLY_FORMAT,
    YLOKH_PATH,
    Emulator,
    arguments_for,
    pieces_for,
    reply_for,
    thinking_for,
)

from .clients import TIMEOUT, MESSAGES, SINGLE, chat, deltas_of, exchange, joined, openai_chunks, sse_events


def test_ylokh_without_stream(emu: Emulator, session: requests.Session) -> None:
    body = {"messages": MESSAGES, "model": "gpt-3.5-turbo"}
    response = session.post(emu.url(YLOKH_PATH), json={**body, "stream": False}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.content))
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-")
    assert completion["model"] == "gpt-3.5-turbo"
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": reply_for(MESSAGES)}
    assert completion["choices"][0]["finish_reason"] == "stop"
    words = sum(len(m["content"].split()) for m in MESSAGES)
    assert completion["usage"] == {
        "prompt_tokens": words,
        "completion_tokens": len(reply_for(MESSAGES).split()),
        "total_tokens": words + len(reply_for(MESSAGES).split()),
    }
    again = session.post(emu.url(YLOKH_PATH), json=body, timeout=TIMEOUT)  # stream defaults to false
    assert again.json()["choices"][0]["message"]["content"] == reply_for(MESSAGES)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "stream": True},
        {"messages": [], "model": "m", "stream": True},
        {"messages": [{"role": "user"}], "model": "m", "stream": True},
        {"messages": "hi", "model": "m", "stream": True},
        {"messages": MESSAGES, "stream": True},
        {"messages": MESSAGES, "model": "m", "stream": "yes"},
        ["not", "an", "object"],
    ],
)
def test_ylokh_rejects_bad_body(emu: Emulator, session: requests.Session, body: Any) -> None:
    response = session.post(emu.url(YLOKH_PATH), json=body, timeout=TIMEOUT)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] is None and error["message"]


def test_ylokh_accepts_extra_keys(emu: Emulator, session: requests.Session) -> None:
    body = {"messages": SINGLE, "model": "m", "stream": False, "allow_fallback": True, "top_p": 1, "foo": "bar"}
    assert session.post(emu.url(YLOKH_PATH), json=body, timeout=TIMEOUT).status_code == 200


# -- what modern clients send ----------------------------------------------------------

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
CONVERSATION: List[Dict[str, Any]] = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "system", "content": [{"type": "text", "text": "You are helpful."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            {"type": "text", "text": "And the weather in Paris?"},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "The user wants the weather.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
]
MODERN_FIELDS: Dict[str, Any] = {
    "tools": [WEATHER],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning_effort": "low",
    "logprobs": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
    "stop": ["\n\n", "END"],
    "max_tokens": 100,
    "max_completion_tokens": 100,
    "seed": 7,
    "temperature": 0.2,
    "user": "u-1",
    "chat_template_kwargs": {"enable_thinking": False},
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.1,
    "cache_prompt": True,
}


@pytest.mark.parametrize("stream", [True, False])
def test_accepts_what_modern_clients_send(emu: Emulator, session: requests.Session, stream: bool) -> None:
    response = chat(session, emu, {"messages": CONVERSATION, "stream": stream, **MODERN_FIELDS})
    assert response.status_code == 200, response.text
    expected = TOOL_REPLY_FORMAT.format(result='{"temp": 21}')
    assert reply_for(CONVERSATION) == expected
    if stream:
        assert joined(deltas_of(openai_chunks(response.content)), "content") == expected
    else:
        assert response.json()["choices"][0]["message"] == {"role": "assistant", "content": expected}
    assert emu.requests[-1].question == "What is in this image?\nAnd the weather in Paris?"


def test_accepts_http_image_urls_and_legacy_function_messages(emu: Emulator, session: requests.Session) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    messages = [
        {"role": "user", "content": [image, {"type": "text", "text": "A cat?"}], "name": "ann"},
        {"role": "assistant", "content": "", "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "ok"},
        {"role": "user", "content": "Thanks"},
    ]
    assert chat(session, emu, {"messages": messages}).json()["choices"][0]["message"]["content"] == reply_for("Thanks")


def bad(**change: Any) -> Dict[str, Any]:
    return {"model": "m", "messages": SINGLE, **change}


def user(content: Any) -> Dict[str, Any]:
    return bad(messages=[{"role": "user", "content": content}])


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    "body, fragment",
    [
        (bad(messages=[]), "non-empty list"),
        (bad(messages=[{"role": "robot", "content": "hi"}]), "role must be one of"),
        (bad(messages=[{"content": "hi"}]), "role must be one of"),
        (bad(messages=["hi"]), "must be an object"),
        (user(None), "content is required"),
        (user(42), "a str or a list of content parts"),
        (user([{"type": "video", "video": {}}]), "content part of type"),
        (user([{"type": "text"}]), "text must be a str"),
        (user([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]), "not valid base64"),
        (user([{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]), "http(s) URL or a base64 data URL"),
        (user([{"type": "image_url", "image_url": "https://x/y.png"}]), "image_url must be"),
        (bad(messages=[{"role": "assistant"}]), "content is required"),
        (bad(messages=[{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}]), "arguments, both str"),
        (bad(messages=[{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]), "tool_calls[0] must be"),
        (bad(messages=[{"role": "tool", "content": "21"}]), "needs tool_call_id"),
        (bad(messages=[{"role": "tool", "tool_call_id": "call_1", "content": "21"}]), "preceding message with 'tool_calls'"),
        (bad(messages=[{"role": "assistant", "content": None, "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": "call_2", "content": "x"}]), "no call has the id 'call_2'"),
        (bad(messages=[{"role": "function", "content": "x"}]), "function's name"),
        (bad(model=""), "model must be"),
        (bad(top_logprobs=2), "top_logprobs needs logprobs"),
        (bad(logprobs=True, top_logprobs=21), "from 0 to 20"),
        (bad(logprobs="yes"), "logprobs must be a bool"),
        (bad(n=0), "n must be"),
        (bad(n="2"), "n must be"),
        (bad(tools={"name": "f"}), "tools must be a list"),
        (bad(tools=[{"type": "function", "function": {"parameters": {}}}]), "function.name"),
        (bad(tools=[{"name": "f"}]), "tools[0] must be"),
        (bad(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}), "not in tools"),
        (bad(tool_choice="required"), "needs tools"),
        (bad(tools=[WEATHER], tool_choice="sometimes"), "tool_choice must be"),
        (bad(response_format={"type": "yaml"}), "response_format.type"),
        (bad(response_format={"type": "json_schema", "json_schema": {"schema": {}}}), "with a name"),
        (bad(stop=["a", "b", "c", "d", "e"]), "up to 4"),
        (bad(temperature="hot"), "temperature must be a number"),
        (bad(max_tokens=0), "max_tokens must be"),
        (bad(seed=1.5), "seed must be an int"),
        (bad(parallel_tool_calls="no"), "parallel_tool_calls must be a bool"),
        (bad(reasoning_effort=3), "reasoning_effort must be a str"),
        (bad(model="m@reasoning=telepathy"), "reasoning must be one of"),
        (bad(model="m@ollama,usage=sometimes"), "usage must be one of"),
    ],
)
def test_rejects_what_real_servers_reject(emu: Emulator, session: requests.Session, body: Dict[str, Any], fragment: str) -> None:
    response = session.post(emu.url(YLOKH_PATH), json=body, timeout=TIMEOUT)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and fragment in error["message"], error


# -- reasoning -----------------------------------------------------------------------

QUESTION = [{"role": "user", "content": "Сколько будет 2+2?"}]
THINKING = thinking_for(QUESTION)
ANSWER = reply_for(QUESTION)


def stream_of(session: requests.Session, emu: Emulator, **fields: Any) -> List[Dict[str, Any]]:
    response = chat(session, emu, {"messages": QUESTION, "stream": True, **fields})
    assert response.status_code == 200, response.text
    return openai_chunks(response.content)


def completion_of(session: requests.Session, emu: Emulator, **fields: Any) -> Dict[str, Any]:
    response = chat(session, emu, {"messages": QUESTION, "stream": False, **fields})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_reasoning_content(emu: Emulator, session: requests.Session) -> None:
    emu.plan(reasoning="reasoning_content", times=2)
    deltas = deltas_of(stream_of(session, emu))
    pieces = pieces_for(THINKING)
    assert deltas[0] == {"role": "assistant", "content": None, "reasoning_content": pieces[0]}
    assert deltas[1 : len(pieces)] == [{"reasoning_content": piece} for piece in pieces[1:]]
    assert deltas[len(pieces) : -1] == [{"content": piece} for piece in pieces_for(ANSWER)]
    assert deltas[-1] == {}
    assert (joined(deltas, "reasoning_content"), joined(deltas, "content")) == (THINKING, ANSWER)
    message = completion_of(session, emu)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": ANSWER, "reasoning_content": THINKING}


def test_reasoning_with_ollamas_empty_content(emu: Emulator, session: requests.Session) -> None:
    emu.plan(reasoning="reasoning", thinking="We think.", times=2)
    deltas = deltas_of(stream_of(session, emu))
    pieces = pieces_for("We think.")
    assert deltas[0] == {"role": "assistant", "content": "", "reasoning": pieces[0]}
    assert deltas[1 : len(pieces)] == [{"content": "", "reasoning": piece} for piece in pieces[1:]]
    assert joined(deltas, "reasoning") == "We think." and joined(deltas, "content") == ANSWER
    message = completion_of(session, emu)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": ANSWER, "reasoning": "We think."}


def test_think_tags_split_across_chunks(emu: Emulator, session: requests.Session) -> None:
    emu.plan(reasoning="think", times=2)
    deltas = deltas_of(stream_of(session, emu))
    contents = [delta["content"] for delta in deltas if "content" in delta]
    assert contents[:3] == ["", "<th", "ink>"]  # the opening role chunk, then the tag in two pieces
    assert "</th" in contents and contents[contents.index("</th") + 1] == "ink>\n\n"
    expected = f"<think>{THINKING}</think>\n\n{ANSWER}"
    assert "".join(contents) == expected and all("reasoning_content" not in d for d in deltas)
    assert completion_of(session, emu)["choices"][0]["message"] == {"role": "assistant", "content": expected}


@pytest.mark.parametrize("reasoning", ["think", "reasoning_content"])
def test_a_reply_that_ends_inside_its_reasoning(emu: Emulator, session: requests.Session, reasoning: str) -> None:
    emu.plan(reasoning=reasoning, unfinished_reasoning=True, times=2)
    chunks = stream_of(session, emu)
    deltas = deltas_of(chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    completion = completion_of(session, emu)["choices"][0]
    assert completion["finish_reason"] == "length"
    if reasoning == "think":
        assert joined(deltas, "content") == "<think>" + THINKING and "</think>" not in joined(deltas, "content")
        assert completion["message"]["content"] == "<think>" + THINKING
    else:
        assert joined(deltas, "reasoning_content") == THINKING and joined(deltas, "content") == ""
        assert completion["message"] == {"role": "assistant", "content": None, "reasoning_content": THINKING}


# -- tool calls ----------------------------------------------------------------------

TOOL_QUESTION = [{"role": "user", "content": "Погода в Париже?"}]


def test_tool_loop_without_a_plan(emu: Emulator, session: requests.Session) -> None:
    first = chat(session, emu, {"messages": TOOL_QUESTION, "tools": [WEATHER, CLOCK], "stream": True})
    chunks = openai_chunks(first.content)
    deltas = deltas_of(chunks)
    assert deltas[0]["role"] == "assistant" and deltas[0]["content"] is None
    head = deltas[0]["tool_calls"][0]
    assert head["index"] == 0 and head["type"] == "function" and head["function"] == {"name": "get_weather", "arguments": ""}
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1])
    assert json.loads(arguments) == {"city": "Погода в Париже?", "unit": "C"}
    assert json.loads(arguments) == arguments_for(WEATHER["function"]["parameters"], "Погода в Париже?")
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert joined(deltas, "content") == ""

    call = {"id": head["id"], "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    history = TOOL_QUESTION + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": head["id"], "content": "21 °C, ясно"},
    ]
    second = chat(session, emu, {"messages": history, "tools": [WEATHER, CLOCK], "stream": True})
    final = openai_chunks(second.content)
    assert joined(deltas_of(final), "content") == "Инструмент ответил: «21 °C, ясно». Here is the answer ✓ 🚀"
    assert final[-1]["choices"][0]["finish_reason"] == "stop"


def test_tool_loop_without_a_plan_not_streamed(emu: Emulator, session: requests.Session) -> None:
    completion = chat(session, emu, {"messages": TOOL_QUESTION, "tools": [WEATHER]}).json()
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and set(message) == {"role", "content", "tool_calls"}
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Погода в Париже?", "unit": "C"}
    history = TOOL_QUESTION + [message, {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    answer = chat(session, emu, {"messages": history, "tools": [WEATHER]}).json()["choices"][0]
    assert answer["message"] == {"role": "assistant", "content": reply_for(history)}


def test_tool_choice(emu: Emulator, session: requests.Session) -> None:
    def reply(**fields: Any) -> Dict[str, Any]:
        return dict(chat(session, emu, {"messages": TOOL_QUESTION, "tools": [WEATHER, CLOCK], **fields}).json())

    assert reply(tool_choice="none")["choices"][0]["message"]["content"] == reply_for(TOOL_QUESTION)
    named = reply(tool_choice={"type": "function", "function": {"name": "get_time"}})["choices"][0]["message"]
    assert named["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}
    first = reply(tool_choice="required")["choices"][0]["message"]
    history = TOOL_QUESTION + [first, {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "x"}]
    again = chat(session, emu, {"messages": history, "tools": [WEATHER], "tool_choice": "required"}).json()
    assert again["choices"][0]["message"]["tool_calls"][0]["id"] != first["tool_calls"][0]["id"]


def test_arguments_for_a_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "q": {"type": "string"},
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array"},
            "maybe": {"type": ["null", "integer"]},
            "mode": {"enum": ["fast", "slow"]},
            "fixed": {"const": 3},
            "level": {"type": "string", "default": "high"},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
            "free": {},
            "optional": {"type": "string"},
        },
        "required": ["q", "n", "x", "flag", "tags", "maybe", "mode", "fixed", "level", "where", "free", "undeclared"],
    }
    assert arguments_for(schema, "Q?") == {
        "q": "Q?",
        "n": 1,
        "x": 1,
        "flag": True,
        "tags": [],
        "maybe": 1,
        "mode": "fast",
        "fixed": 3,
        "level": "high",
        "where": {"lat": 1},
        "free": "Q?",
        "undeclared": "Q?",
    }
    assert arguments_for({}, "Q") == {} and arguments_for(None, "Q") == {}


PLANNED = [
    {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_A"},
    {"name": "get_time", "arguments": '{"tz": "CET"}', "id": "call_B"},
]
A_PIECES = pieces_for('{"city": "Paris"}', 3)
B_PIECES = pieces_for('{"tz": "CET"}', 3)


def fragment(index: Any, call_id: Any = None, name: Any = None, arguments: str = "") -> Dict[str, Any]:
    frag: Dict[str, Any] = {} if index is None else {"index": index}
    if call_id is not None:
        frag.update(id=call_id, type="function", function={"name": name, "arguments": arguments})
    else:
        frag["function"] = {"arguments": arguments}
    return frag


def standard(index_a: Any, index_b: Any) -> List[Dict[str, Any]]:
    return (
        [fragment(index_a, "call_A", "get_weather")]
        + [fragment(index_a, arguments=piece) for piece in A_PIECES]
        + [fragment(index_b, "call_B", "get_time")]
        + [fragment(index_b, arguments=piece) for piece in B_PIECES]
    )


EXPECTED_FRAGMENTS = {
    "standard": standard(0, 1),
    "no_index": standard(None, None),
    "reused_index": standard(0, 0),
    "index_from_1": standard(1, 2),
    "whole": [
        fragment(0, "call_A", "get_weather", '{"city": "Paris"}'),
        fragment(1, "call_B", "get_time", '{"tz": "CET"}'),
    ],
    "interleaved": [
        fragment(0, "call_A", "get_weather"),
        fragment(1, "call_B", "get_time"),
        *(frag for pair in zip(A_PIECES, B_PIECES) for frag in (fragment(0, arguments=pair[0]), fragment(1, arguments=pair[1]))),
    ],
    "object_arguments": [
        {"index": 0, "id": "call_A", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"index": 1, "id": "call_B", "type": "function", "function": {"name": "get_time", "arguments": {"tz": "CET"}}},
    ],
    "repeated": [fragment(0, "call_A", "get_weather", piece) for piece in A_PIECES]
    + [fragment(1, "call_B", "get_time", piece) for piece in B_PIECES],
}


@pytest.mark.parametrize("style", list(EXPECTED_FRAGMENTS))
def test_tool_call_styles(emu: Emulator, session: requests.Session, style: str) -> None:
    emu.plan(tool_calls=PLANNED, tool_call_style=style, times=2)
    chunks = stream_of(session, emu)
    deltas = deltas_of(chunks)[:-1]
    assert deltas[0]["role"] == "assistant" and deltas[0]["content"] is None
    assert all(len(delta["tool_calls"]) == 1 for delta in deltas)
    assert [delta["tool_calls"][0] for delta in deltas] == EXPECTED_FRAGMENTS[style]
    if style == "repeated":
        assert [delta["function_call"] for delta in deltas] == [
            {"name": frag["function"]["name"], "arguments": frag["function"]["arguments"]} for frag in EXPECTED_FRAGMENTS[style]
        ]
    else:
        assert all("function_call" not in delta for delta in deltas)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}

    message = completion_of(session, emu)["choices"][0]["message"]
    arguments: List[Any] = ['{"city": "Paris"}', '{"tz": "CET"}']
    if style == "object_arguments":
        arguments = [{"city": "Paris"}, {"tz": "CET"}]
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_A", "type": "function", "function": {"name": "get_weather", "arguments": arguments[0]}},
            {"id": "call_B", "type": "function", "function": {"name": "get_time", "arguments": arguments[1]}},
        ],
    }


def test_stop_although_calls_were_made_and_text_before_calls(emu: Emulator, session: requests.Session) -> None:
    emu.plan(tool_calls=PLANNED[:1], finish_reason="stop", reply="Сейчас посмотрю.", times=2)
    chunks = stream_of(session, emu)
    deltas = deltas_of(chunks)
    assert joined(deltas, "content") == "Сейчас посмотрю." and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert [d["tool_calls"][0]["function"]["arguments"] for d in deltas if "tool_calls" in d] == [""] + A_PIECES
    choice = completion_of(session, emu)["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "Сейчас посмотрю."
    assert choice["message"]["tool_calls"][0]["id"] == "call_A"


# -- usage, refusal, logprobs, choices ---------------------------------------------------


def test_usage_only_final_chunk_with_llama_cpp_timings(emu: Emulator, session: requests.Session) -> None:
    emu.plan(usage="final", timings=True, times=2)
    chunks = stream_of(session, emu)
    *rest, last = chunks
    assert last["choices"] == [] and all("usage" not in c and "timings" not in c for c in rest)
    usage = completion_of(session, emu)["usage"]
    prompt = len(QUESTION[0]["content"].split())
    assert last["usage"] == usage == {"prompt_tokens": prompt, "completion_tokens": len(ANSWER.split()), "total_tokens": prompt + len(ANSWER.split())}
    timings = last["timings"]
    assert (timings["prompt_n"], timings["predicted_n"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert timings["predicted_per_second"] == round(1000 * timings["predicted_n"] / timings["predicted_ms"], 3)


def test_usage_on_every_chunk_with_running_totals(emu: Emulator, session: requests.Session) -> None:
    emu.plan(usage="every", reasoning="reasoning_content", times=2)
    chunks = stream_of(session, emu)
    totals = [chunk["usage"]["completion_tokens"] for chunk in chunks]
    assert all(chunk["choices"] for chunk in chunks)  # no usage-only chunk
    assert totals == sorted(totals) and totals[0] == 1 and len(set(totals)) > 5
    final = completion_of(session, emu)["usage"]
    assert chunks[-1]["usage"] == final
    assert final["completion_tokens"] == len(THINKING.split()) + len(ANSWER.split())


def test_include_usage_still_as_openai_sends_it_and_usage_none(emu: Emulator, session: requests.Session) -> None:
    chunks = stream_of(session, emu, stream_options={"include_usage": True})
    assert all(chunk["usage"] is None for chunk in chunks[:-1]) and chunks[-1]["choices"] == []
    emu.plan(usage="none", times=2)
    assert all("usage" not in chunk for chunk in stream_of(session, emu, stream_options={"include_usage": True}))
    assert "usage" not in completion_of(session, emu)


def test_refusal(emu: Emulator, session: requests.Session) -> None:
    emu.plan(refusal=True, times=2)
    chunks = stream_of(session, emu)
    deltas = deltas_of(chunks)
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": pieces_for(REFUSAL_TEXT)[0]}
    assert joined(deltas, "refusal") == REFUSAL_TEXT and joined(deltas, "content") == ""
    assert len([d for d in deltas if "refusal" in d]) > 1  # fragments
    message = completion_of(session, emu)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "refusal": REFUSAL_TEXT}
    emu.plan(refusal="Нет.")
    assert completion_of(session, emu)["choices"][0]["message"]["refusal"] == "Нет."


@pytest.mark.parametrize("top", [0, 3])
def test_logprobs(emu: Emulator, session: requests.Session, top: int) -> None:
    chunks = stream_of(session, emu, logprobs=True, top_logprobs=top)
    content = [c["choices"][0] for c in chunks if c["choices"][0]["delta"].get("content")]
    entries = [entry for choice in content for entry in choice["logprobs"]["content"]]
    assert [entry["token"] for entry in entries] == pieces_for(ANSWER)
    for entry in entries:
        assert entry["bytes"] == list(entry["token"].encode()) and entry["logprob"] < 0
        assert len(entry["top_logprobs"]) == top
        if top:
            assert entry["top_logprobs"][0] == {"token": entry["token"], "logprob": entry["logprob"], "bytes": entry["bytes"]}
            assert [alt["logprob"] for alt in entry["top_logprobs"]] == sorted((alt["logprob"] for alt in entry["top_logprobs"]), reverse=True)
    whole = completion_of(session, emu, logprobs=True, top_logprobs=top)["choices"][0]["logprobs"]["content"]
    assert whole == entries
    assert "logprobs" not in completion_of(session, emu)["choices"][0]


def test_several_choices(emu: Emulator, session: requests.Session) -> None:
    chunks = stream_of(session, emu, n=3)
    assert {choice["index"] for chunk in chunks for choice in chunk["choices"]} == {0, 1, 2}
    for index in range(3):
        deltas = deltas_of(chunks, index)
        assert deltas[0] == {"role": "assistant", "content": ""} and joined(deltas, "content") == ANSWER
    assert [c["index"] for c in completion_of(session, emu, n=3)["choices"]] == [0, 1, 2]
    emu.plan(choices=2)  # even when the request asked for one
    assert [c["index"] for c in completion_of(session, emu)["choices"]] == [0, 1]


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("stream", [True, False])
def test_llama_cpp_context_overflow(emu: Emulator, session: requests.Session, status: int, stream: bool) -> None:
    emu.plan(context_overflow="llama.cpp", status=status)
    response = chat(session, emu, {"messages": QUESTION, "stream": stream})
    assert response.status_code == status and response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "error": {
            "code": status,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 4097,
            "n_ctx": 4096,
        }
    }


def test_openai_context_length_exceeded(emu: Emulator, session: requests.Session) -> None:
    emu.plan(context_overflow="openai", context_window=8192)
    error = chat(session, emu, {"messages": QUESTION}).json()["error"]
    assert error["code"] == "context_length_exceeded" and error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert error["message"].startswith("This model's maximum context length is 8192 tokens. However, your messages resulted in 8193 tokens.")
    emu.plan(context_overflow="openai", context_window=2)  # the prompt is longer than the window: its own count
    assert "resulted in 3 tokens" in chat(session, emu, {"messages": QUESTION}).json()["error"]["message"]


@pytest.mark.parametrize("event", [False, True])
def test_error_inside_the_stream(emu: Emulator, session: requests.Session, event: bool) -> None:
    emu.plan(stream_error="Что-то сломалось", stream_error_event=event)
    response = chat(session, emu, {"messages": QUESTION, "stream": True})
    events = sse_events(response.content)
    assert len(events) == 3 and events[-1][0] == ("error" if event else None)
    assert json.loads(events[1][1])["choices"][0]["delta"] == {"content": pieces_for(ANSWER)[0]}
    assert json.loads(events[-1][1]) == {"error": {"message": "Что-то сломалось", "type": "server_error"}}
    if event:
        assert b"\n\nevent: error\ndata: {" in response.content
    emu.plan(stream_error_event=True)  # the event alone: a standard server error
    events = sse_events(chat(session, emu, {"messages": QUESTION, "stream": True}).content)
    assert events[-1][0] == "error" and json.loads(events[-1][1])["error"]["type"] == "server_error"


def test_deepseek_wants_reasoning_content_back(emu: Emulator, session: requests.Session) -> None:
    with Emulator(dialect="deepseek") as deepseek:
        first = chat(session, deepseek, {"messages": TOOL_QUESTION, "tools": [WEATHER]}).json()["choices"][0]["message"]
        assert first["reasoning_content"] == thinking_for(TOOL_QUESTION)
        result = {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "rain"}
        kept = chat(session, deepseek, {"messages": TOOL_QUESTION + [first, result], "tools": [WEATHER]})
        assert kept.status_code == 200
        dropped = {key: value for key, value in first.items() if key != "reasoning_content"}
        refused = chat(session, deepseek, {"messages": TOOL_QUESTION + [dropped, result], "tools": [WEATHER]})
        assert refused.status_code == 400
        assert "Missing `reasoning_content` field in the assistant message at message index 1" in refused.text


# -- SSE edge cases -------------------------------------------------------------------------


def raw_stream(emu: Emulator, **plan: Any) -> bytes:
    emu.plan(**plan)
    body = json.dumps({"model": "m", "messages": QUESTION, "stream": True}).encode()
    with requests.post(emu.url(YLOKH_PATH), data=body, stream=True, timeout=TIMEOUT) as response:
        return b"".join(response.iter_content(None))


def test_invalid_utf8_inside_an_event(emu: Emulator) -> None:
    body = raw_stream(emu, invalid_utf8=True)
    with pytest.raises(UnicodeDecodeError):
        body.decode()
    line = next(line for line in body.split(b"\n") if b"\xff" in line)
    first = pieces_for(ANSWER)[0].encode()
    assert line.startswith(b"data: {") and first + b"\xff" + b'"}' in line
    decoded = body.decode("utf-8", "replace")  # what a client that follows the SSE standard reads
    chunks = openai_chunks(decoded.encode())
    assert joined(deltas_of(chunks), "content") == pieces_for(ANSWER)[0] + "\ufffd" + "".join(pieces_for(ANSWER)[1:])


def test_a_line_starting_with_a_utf16_bom(emu: Emulator) -> None:
    body = raw_stream(emu, utf16_bom_line=True)
    events = body.split(b"\n\n")
    assert events[2].startswith(b"\xfe\xffdata: {")  # after the role chunk and the first piece
    assert b"\xfe\xff" not in body.replace(events[2], b"")
    rest = body.replace(events[2] + b"\n\n", b"")
    assert joined(deltas_of(openai_chunks(rest)), "content") == ANSWER


@pytest.mark.parametrize("ending, tail", [("newline", b"data: [DONE]\n"), ("none", b"data: [DONE]"), ("blank_line", b"data: [DONE]\n\n")])
def test_the_body_ends_right_after_done(emu: Emulator, ending: str, tail: bytes) -> None:
    body = raw_stream(emu, done_ending=ending)
    assert body.endswith(b'"finish_reason": "stop"}]}\n\n' + tail)


def test_a_leading_utf8_bom(emu: Emulator) -> None:
    body = raw_stream(emu, leading_bom=True)
    assert body.startswith(b"\xef\xbb\xbfdata: {") and body.count(b"\xef\xbb\xbf") == 1
    assert joined(deltas_of(openai_chunks(body[3:])), "content") == ANSWER


# -- where dialect options come from -------------------------------------------------------


def test_presets_and_option_strings_from_the_constructor(session: requests.Session) -> None:
    with Emulator(dialect="llama.cpp") as emu:
        chunks = stream_of(session, emu)
        assert joined(deltas_of(chunks), "reasoning_content") == THINKING
        assert chunks[-1]["choices"] == [] and "timings" in chunks[-1]
    with Emulator(dialect="ollama,usage=none,thinking=Hmm") as emu:
        assert emu.dialect == {**DIALECTS["ollama"], "usage": "none", "thinking": "Hmm"}
        deltas = deltas_of(stream_of(session, emu, tools=[WEATHER]))
        assert joined(deltas, "reasoning") == "Hmm" and len([d for d in deltas if "tool_calls" in d]) == 1
    with Emulator(dialect={"reasoning": "think", "leading_bom": True}) as emu:
        assert raw_stream(emu).startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize(
    "dialect",
    ["telepathy", "reasoning=telepathy", "usage", {"reasoning": 1}, {"no_such": True}, {"tool_calls": []}, 42],
)
def test_bad_dialects_are_refused_at_construction(dialect: Any) -> None:
    with pytest.raises(ValueError):
        Emulator(dialect=dialect)


def test_model_name_options_and_precedence(session: requests.Session) -> None:
    with Emulator(dialect="reasoning=reasoning_content,thinking=A") as emu:
        assert joined(deltas_of(stream_of(session, emu)), "reasoning_content") == "A"
        by_model = deltas_of(stream_of(session, emu, model="qwen3@thinking=B,refusal=true"))
        assert joined(by_model, "reasoning_content") == "B" and joined(by_model, "refusal") == REFUSAL_TEXT
        emu.plan(thinking="C", refusal=False)  # a plan wins, and False turns a flag off
        by_plan = deltas_of(stream_of(session, emu, model="qwen3@thinking=B,refusal=true"))
        assert joined(by_plan, "reasoning_content") == "C" and joined(by_plan, "content") == ANSWER
        completion = completion_of(session, emu, model="m@gemini")
        assert completion["model"] == "m@gemini"  # echoed as sent
        for name in ("@cf/meta/llama-3-8b", "user@example", "m@ollama,typo"):  # not a dialect: part of the name
            plain = completion_of(session, emu, model=name)
            assert plain["model"] == name and plain["choices"][0]["message"]["reasoning_content"] == "A"


def test_a_plan_with_dialect_options_applies_to_the_openai_endpoint_only(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(reasoning="think")
    assert plan.path == YLOKH_PATH
    answer = exchange(emu, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 200 and plan.remaining == 1
    assert joined(deltas_of(stream_of(session, emu)), "content").startswith("<think>")


@pytest.mark.parametrize(
    "options",
    [
        {"reasoning": "telepathy"},
        {"tool_call_style": "weird"},
        {"usage": "sometimes"},
        {"choices": 0},
        {"tool_calls": [{"arguments": {}}]},
        {"tool_calls": [{"name": "f", "arguments": 3}]},
        {"context_overflow": "vllm"},
        {"context_overflow": "openai", "body": "x"},
        {"done_ending": "\n"},
        {"refusal": 3},
    ],
)
def test_plan_rejects_bad_dialect_options(emu: Emulator, options: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        emu.plan(**options)


def test_every_standard_shape_parses_as_openai_python(emu: Emulator, session: requests.Session) -> None:
    from openai.types import chat as types  # the test extra installs openai

    for preset in ("openai", "llama.cpp", "deepseek", "vllm", "ollama", "lmstudio"):
        for fields in ({}, {"tools": [WEATHER]}, {"logprobs": True, "top_logprobs": 2}):
            for chunk in stream_of(session, emu, model=f"m@{preset}", **fields):
                types.ChatCompletionChunk.model_validate(chunk)
            types.ChatCompletion.model_validate(completion_of(session, emu, model=f"m@{preset}", **fields))
    emu.plan(refusal=True, times=2)
    parsed = [types.ChatCompletionChunk.model_validate(chunk) for chunk in stream_of(session, emu)]
    assert "".join(chunk.choices[0].delta.refusal or "" for chunk in parsed) == REFUSAL_TEXT
    assert types.ChatCompletion.model_validate(completion_of(session, emu)).choices[0].message.refusal == REFUSAL_TEXT
