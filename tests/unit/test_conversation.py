"""``Conversation`` without a network: everything is checked before any I/O, the history
is a copy, and saved conversations are read with clear errors."""

from __future__ import annotations

import json

import pytest

from llmproviders import (
    Conversation,
    FlowGpt,
    InvalidArgumentError,
    InvalidMessagesError,
    ModelNotSupportedError,
    OpenAICompatible,
    ProviderNotFoundError,
    RetryProvider,
    UnsupportedOptionError,
    Ylokh,
)
from llmproviders._conversation import FORMAT

NOWHERE = "http://127.0.0.1:9"  # nothing listens there: a test that reached it would fail


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any request at all fails the test."""
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(requests.Session, "request", refuse)


def test_provider_model_and_options_are_checked_when_the_conversation_is_made():
    with pytest.raises(ProviderNotFoundError):
        Conversation("Bing")
    with pytest.raises(InvalidArgumentError, match="needs a provider"):
        Conversation(object())
    with pytest.raises(ModelNotSupportedError):
        Conversation(FlowGpt, "gpt-5")
    with pytest.raises(UnsupportedOptionError, match="tools"):
        Conversation(FlowGpt, tools=[])
    with pytest.raises(InvalidArgumentError, match="base_url"):
        Conversation(OpenAICompatible, "m")  # no server to talk to
    with pytest.raises(InvalidArgumentError, match="keep_partial"):
        Conversation(FlowGpt, keep_partial="yes")
    with pytest.raises(InvalidArgumentError, match="system"):
        Conversation(FlowGpt, system=["S"])
    with pytest.raises(InvalidArgumentError, match="holds the history"):
        Conversation(FlowGpt, messages=[])
    assert Conversation("flowgpt").provider is FlowGpt
    retry = RetryProvider([FlowGpt, Ylokh])
    assert Conversation(retry).provider is retry


def test_bad_content_changes_nothing():
    chat = Conversation(FlowGpt, system="S", base_url=NOWHERE)
    with pytest.raises(InvalidArgumentError, match="nothing to send"):
        chat.send()
    with pytest.raises(InvalidMessagesError, match="content must be"):
        chat.send(42)
    with pytest.raises(InvalidMessagesError, match="the message"):
        chat.send([{"type": "text"}])
    with pytest.raises(UnsupportedOptionError):
        chat.send("hi", top_k=3)
    assert chat.messages == [{"role": "system", "content": "S"}]


def test_messages_is_a_copy():
    chat = Conversation.from_dict({"provider": "FlowGpt", "messages": [{"role": "user", "content": "a"}]})
    chat.messages[0]["content"] = "changed"
    chat.messages.append({"role": "user", "content": "b"})
    assert chat.messages == [{"role": "user", "content": "a"}]


def test_a_tool_result_must_answer_a_call_of_the_conversation():
    saved = {
        "provider": "OpenAICompatible",
        "model": "m",
        "options": {"base_url": NOWHERE + "/v1"},
        "messages": [
            {"role": "user", "content": "Погода?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ]},
        ],
    }
    chat = Conversation.from_dict(saved)
    with pytest.raises(InvalidArgumentError, match=r"no tool call with id 'call_2'.*call_1 \(get_weather\)"):
        chat.add_tool_result("call_2", "21")
    with pytest.raises(InvalidArgumentError, match="tool_call_id"):
        chat.add_tool_result("", "21")
    with pytest.raises(InvalidArgumentError, match="JSON value"):
        chat.add_tool_result("call_1", {"when": object()})
    chat.add_tool_result("call_1", ["ясно", 21])
    assert chat.messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": '["ясно", 21]'}
    assert chat.undo() == saved["messages"] + [chat_tool("call_1", '["ясно", 21]')]


def chat_tool(call_id, content):
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def test_undo_without_a_user_message_removes_the_last_message():
    chat = Conversation.from_dict({"provider": "FlowGpt", "messages": [
        {"role": "assistant", "content": "Здравствуйте!"}, {"role": "assistant", "content": "Чем помочь?"},
    ]})
    assert chat.undo() == [{"role": "assistant", "content": "Чем помочь?"}]
    assert chat.undo() == [{"role": "assistant", "content": "Здравствуйте!"}]
    assert chat.undo() == []


def test_from_dict_says_what_is_wrong():
    with pytest.raises(InvalidArgumentError, match="takes the dict"):
        Conversation.from_dict("[]")
    with pytest.raises(InvalidArgumentError, match="names its provider"):
        Conversation.from_dict({"messages": []})
    with pytest.raises(InvalidArgumentError, match="version"):
        Conversation.from_dict({"format": FORMAT, "version": 99, "provider": "FlowGpt"})
    with pytest.raises(InvalidArgumentError, match="format"):
        Conversation.from_dict({"format": "something else", "provider": "FlowGpt"})
    with pytest.raises(InvalidArgumentError, match="'messages' must be a list"):
        Conversation.from_dict({"provider": "FlowGpt", "messages": "hi"})
    with pytest.raises(InvalidArgumentError, match="'options' must be a dict"):
        Conversation.from_dict({"provider": "FlowGpt", "options": ["a"]})
    with pytest.raises(InvalidMessagesError, match=r"saved conversation's messages\[1\] has role 'bot'"):
        Conversation.from_dict({"provider": "FlowGpt", "messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]})


def test_a_retry_provider_is_saved_by_name_and_repr_shows_no_secret():
    chat = Conversation(RetryProvider(["FlowGpt", "Ylokh"], shuffle=True), api_key="sk-hidden-0123", base_url=NOWHERE)
    saved = json.loads(json.dumps(chat.to_dict()))
    assert saved["provider"] == {"providers": ["FlowGpt", "Ylokh"], "shuffle": True}
    assert "sk-hidden" not in json.dumps(saved) and "sk-hidden" not in repr(chat)
    restored = Conversation.from_dict(saved)
    assert [p.__name__ for p in restored.provider.providers] == ["FlowGpt", "Ylokh"] and restored.provider.shuffle
    assert repr(Conversation(FlowGpt, "gemini")) == "<Conversation provider=FlowGpt model='gemini' messages=0>"


def test_the_package_import_stays_free_of_asyncio_and_ipython():
    import subprocess
    import sys

    script = (
        "import sys, llmproviders\n"
        "llmproviders.Conversation(llmproviders.FlowGpt)\n"
        "assert 'asyncio' not in sys.modules and 'IPython' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
