"""``Conversation`` against the emulator: the exact request body of every turn, for every
provider, through rollback, ``keep_partial``, undo, a tool loop and a save/load."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

from llmproviders import (
    Chatgpt4Online,
    Conversation,
    ConversationBusyError,
    FlowGpt,
    GPROChat,
    InvalidMessagesError,
    OpenAICompatible,
    StreamInterruptedError,
    Ylokh,
    format_prompt,
)
from llmproviders.testing import (
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_PATH,
    GPROCHAT_PATH,
    TOOL_REPLY_FORMAT,
    YLOKH_PATH,
    Emulator,
    pieces_for,
    reply_for,
    thinking_for,
)

SYSTEM = "Отвечай кратко."
GREETING = {"role": "assistant", "content": "Hello, how can I help you today?"}
CHAT_PATHS = {FlowGpt: FLOWGPT_PATH, GPROChat: GPROCHAT_PATH, Chatgpt4Online: CHATGPT4ONLINE_SUBMIT_PATH, Ylokh: YLOKH_PATH, OpenAICompatible: YLOKH_PATH}
PROVIDERS = [pytest.param(provider, id=provider.__name__) for provider in CHAT_PATHS]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def conversation(provider, emulator, **options) -> Conversation:
    base_url = emulator.base_url + "/v1" if provider is OpenAICompatible else emulator.base_url
    model = "local-model" if provider is OpenAICompatible else None
    return Conversation(provider, model, base_url=base_url, timeout=10, **options)


def chat_requests(emulator, provider):
    return [request for request in emulator.requests if request.path == CHAT_PATHS[provider]]


def assert_sent(provider, request, messages):
    """``request`` carries ``messages`` (role and content, as OpenAI's list) the way
    ``provider``'s protocol does."""
    body = request.json
    if provider is FlowGpt:
        assert body["question"] == messages[-1]["content"]
        assert body["history"] == [GREETING] + [m for m in messages[:-1] if m["role"] != "system"]
        systems = [m["content"] for m in messages if m["role"] == "system"]
        assert body["system"] == ("\n".join(systems) or "You are helpful assistant. Follow the user's instructions carefully.")
    elif provider is GPROChat:
        assert body["messages"] == [{"role": "user", "parts": [{"text": format_prompt(messages)}]}]
    elif provider is Chatgpt4Online:
        assert body["newMessage"] == format_prompt(messages)
    else:
        assert body["messages"] == messages


def read(stream) -> str:
    with stream:
        return "".join(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_turn_sends_the_whole_history_through_the_providers_protocol(provider, emulator):
    chat = conversation(provider, emulator, system=SYSTEM)
    expected = [{"role": "system", "content": SYSTEM}]
    for number, question in enumerate(["Привет!", "Как дела?", "Что такое поток?"], 1):
        expected.append({"role": "user", "content": question})
        stream = chat.send(question)
        assert chat.messages == expected  # the question joins the history when it is sent
        answer = read(stream)
        assert answer == reply_for(question)
        requests = chat_requests(emulator, provider)
        assert len(requests) == number
        assert_sent(provider, requests[-1], expected)
        expected.append({"role": "assistant", "content": answer})
        assert chat.messages == expected  # the answer joins it when the reply is complete


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_reply_that_fails_rolls_its_turn_back(provider, emulator):
    chat = conversation(provider, emulator)
    read(chat.send("Один"))
    before = chat.messages
    emulator.plan(disconnect_after_events=2)
    with pytest.raises(StreamInterruptedError) as info:
        read(chat.send("Два"))
    assert info.value.partial == "".join(pieces_for(reply_for("Два"))[:2])
    assert chat.messages == before
    read(chat.send("Три"))
    assert_sent(provider, chat_requests(emulator, provider)[-1], before + [{"role": "user", "content": "Три"}])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_keep_partial_keeps_the_question_and_what_arrived_marked_partial(provider, emulator):
    chat = conversation(provider, emulator, keep_partial=True)
    read(chat.send("Один"))
    emulator.plan(disconnect_after_events=2)
    with pytest.raises(StreamInterruptedError) as info:  # the error still propagates
        read(chat.send("Два"))
    partial = info.value.partial
    assert partial and partial != reply_for("Два")
    history = [
        {"role": "user", "content": "Один"},
        {"role": "assistant", "content": reply_for("Один")},
        {"role": "user", "content": "Два"},
        {"role": "assistant", "content": partial, "partial": True},
    ]
    assert chat.messages == history
    read(chat.send("Три"))
    sent = [{k: v for k, v in m.items() if k != "partial"} for m in history] + [{"role": "user", "content": "Три"}]
    assert_sent(provider, chat_requests(emulator, provider)[-1], sent)  # "partial" is never sent
    assert "partial" not in chat_requests(emulator, provider)[-1].body.decode()


def test_keep_partial_on_one_send_and_nothing_kept_when_nothing_arrived(emulator):
    chat = conversation(FlowGpt, emulator)
    emulator.plan(disconnect_after_events=1)
    with pytest.raises(StreamInterruptedError):
        read(chat.send("Раз", keep_partial=True))
    assert chat.messages[-1]["partial"] is True
    chat.reset()
    emulator.plan(status=500, times=3)  # every attempt fails before anything arrives
    with pytest.raises(Exception):
        read(chat.send("Два", keep_partial=True, max_retries=2))
    assert chat.messages == []  # no answer to keep: the question goes too


def test_a_reply_closed_early_or_dropped_unread_rolls_back(emulator):
    chat = conversation(Ylokh, emulator)
    read(chat.send("Один"))
    before = chat.messages
    stream = chat.send("Два")
    assert next(stream)
    stream.close()
    assert stream.outcome == "closed" and chat.messages == before
    chat.send("Три")  # dropped without being read: nothing was sent, nothing stays
    gc.collect()
    assert chat.messages == before
    assert [r.json["messages"][-1]["content"] for r in chat_requests(emulator, Ylokh)] == ["Один", "Два"]
    kept = conversation(Ylokh, emulator, keep_partial=True)
    stream = kept.send("Четыре")
    first = next(stream)
    stream.close()
    assert kept.messages == [
        {"role": "user", "content": "Четыре"},
        {"role": "assistant", "content": first, "partial": True},
    ]


def test_a_second_send_while_a_reply_streams_is_a_clear_error(emulator):
    chat = conversation(FlowGpt, emulator)
    stream = chat.send("Один")
    first = next(stream)
    for attempt in (lambda: chat.send("Два"), chat.undo, chat.reset, lambda: chat.send()):
        with pytest.raises(ConversationBusyError, match="still streaming"):
            attempt()
    assert isinstance(ConversationBusyError("x"), RuntimeError)
    assert first + read(stream) == reply_for("Один")
    assert chat.messages[-1] == {"role": "assistant", "content": reply_for("Один")}
    read(chat.send("Два"))  # the reply is done: the conversation is free again
    assert len(chat_requests(emulator, FlowGpt)) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_undo_removes_the_last_exchange_and_reset_keeps_the_system_message(provider, emulator):
    chat = conversation(provider, emulator, system=SYSTEM)
    read(chat.send("Один"))
    read(chat.send("Два"))
    assert chat.undo() == [{"role": "user", "content": "Два"}, {"role": "assistant", "content": reply_for("Два")}]
    read(chat.send("Три"))
    expected = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Один"},
        {"role": "assistant", "content": reply_for("Один")},
        {"role": "user", "content": "Три"},
    ]
    assert_sent(provider, chat_requests(emulator, provider)[-1], expected)
    chat.reset()
    assert chat.messages == [{"role": "system", "content": SYSTEM}] and chat.undo() == []
    read(chat.send("Четыре"))
    assert_sent(provider, chat_requests(emulator, provider)[-1], [expected[0], {"role": "user", "content": "Четыре"}])


def test_a_tool_loop_on_an_openai_compatible_server():
    # DeepSeek's rule: an assistant message with tool calls must come back with its
    # reasoning_content, or the server answers 400.
    with Emulator(dialect="deepseek,require_reasoning_content=true") as emulator:
        chat = conversation(OpenAICompatible, emulator, tools=[WEATHER])
        question = "Погода в Париже?"
        stream = chat.send(question)
        assert read(stream) == ""
        (call,) = stream.tool_calls
        assert call.name == "get_weather" and call.parsed_arguments() == {"city": question}
        chat.add_tool_result(call.id, {"temp": 21, "sky": "ясно"})
        answer = read(chat.send())  # no new user message: the model goes on
        assert answer == TOOL_REPLY_FORMAT.format(result='{"temp": 21, "sky": "ясно"}')
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [call.to_dict()],
            "reasoning_content": thinking_for([{"role": "user", "content": question}]),
        }
        tool = {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21, "sky": "ясно"}'}
        first, second = chat_requests(emulator, OpenAICompatible)
        assert first.json["messages"] == [{"role": "user", "content": question}]
        assert first.json["tools"] == [WEATHER] and second.json["tools"] == [WEATHER]
        assert second.json["messages"] == [{"role": "user", "content": question}, assistant, tool]
        assert second.status == 200
        assert chat.messages[-1]["content"] == answer and chat.messages[-1]["reasoning_content"]
        assert chat.undo()[0] == {"role": "user", "content": question}  # the whole loop is one exchange
        assert chat.messages == []


def test_seed_providers_get_role_and_content_only(emulator):
    chat = conversation(OpenAICompatible, emulator, keep_partial=True)
    emulator.plan(reasoning="reasoning_content", refusal=True)
    read(chat.send("Один"))
    saved = chat.to_dict()
    assert saved["messages"][1]["reasoning_content"] and saved["messages"][1]["refusal"]
    flow = Conversation.from_dict(saved, provider="FlowGpt", model="gpt-3.5-turbo", base_url=emulator.base_url)
    read(flow.send("Два"))
    body = chat_requests(emulator, FlowGpt)[-1].json
    assert body["history"] == [GREETING, {"role": "user", "content": "Один"}, {"role": "assistant", "content": ""}]


def test_a_tool_result_cannot_go_to_a_seed_provider_and_nothing_changes(emulator):
    chat = conversation(OpenAICompatible, emulator)
    stream = chat.send("Погода?", tools=[WEATHER])  # (an option of one call: FlowGpt takes no tools)
    read(stream)
    chat.add_tool_result(stream.tool_calls[0].id, "21")
    flow = Conversation.from_dict(chat.to_dict(), provider=FlowGpt, model="gpt-3.5-turbo", base_url=emulator.base_url)
    before = flow.messages
    with pytest.raises(InvalidMessagesError, match="FlowGpt"):
        flow.send("Дальше?")
    assert flow.messages == before and chat_requests(emulator, FlowGpt) == []


def test_a_saved_conversation_round_trips_through_json_without_secrets():
    key = "sk-conversation-5be3c0a1"
    with Emulator(api_key=key) as emulator:
        secret_url = emulator.base_url.replace("http://", "http://user:pa55word@") + "/v1?token=t0ken-value"
        chat = Conversation(
            OpenAICompatible, "m", system=SYSTEM, base_url=emulator.base_url + "/v1", api_key=key, timeout=(5, 10),
            temperature=0.5, extra_headers={"X-Secret": "h3ader-value"},
        )
        read(chat.send("Привет"))
        text = json.dumps(chat.to_dict(), ensure_ascii=False)
        for secret in (key, "h3ader-value"):
            assert secret not in text
        saved = json.loads(text)
        assert saved["options"] == {"base_url": emulator.base_url + "/v1", "timeout": [5, 10], "temperature": 0.5}
        assert saved["messages"] == chat.messages[1:] and saved["system"] == SYSTEM
        other = Conversation(OpenAICompatible, "m", base_url=secret_url, proxy="http://u:proxy-pa55@127.0.0.1:9")
        assert not {"base_url", "proxy"} & set(other.to_dict()["options"])
        assert "pa55" not in json.dumps(other.to_dict())

        restored = Conversation.from_dict(saved, api_key=key)  # the key is given again
        assert restored.messages == chat.messages
        read(restored.send("Ещё раз"))
        last = emulator.requests[-1]
        assert last.status == 200 and last.json["temperature"] == 0.5
        assert last.json["messages"] == chat.messages + [{"role": "user", "content": "Ещё раз"}]


def test_send_async_follows_the_same_rules(emulator):
    chat = conversation(GPROChat, emulator)

    async def talk():
        first = "".join([delta async for delta in chat.send_async("Один")])
        emulator.plan(disconnect_after_events=1)
        with pytest.raises(StreamInterruptedError):
            async with chat.send_async("Два") as stream:
                async for _ in stream:
                    pass
        second = "".join([delta async for delta in chat.send_async("Три")])
        return first, second

    first, second = asyncio.run(talk())
    assert (first, second) == (reply_for("Один"), reply_for("Три"))
    assert [m["content"] for m in chat.messages] == ["Один", first, "Три", second]
    assert_sent(GPROChat, chat_requests(emulator, GPROChat)[-1], chat.messages[:-1])
