"""Everything about the caller's input is checked before any network I/O."""

import math

import pytest
import responses

import llmproviders
from tests.helpers import MESSAGES_RU
from llmproviders import (
    ChatCompletion,
    Chatgpt4Online,
    FlowGpt,
    GPROChat,
    InvalidArgumentError,
    InvalidMessagesError,
    ModelNotSupportedError,
    ProviderNotFoundError,
    UnsupportedOptionError,
    Ylokh,
    format_prompt,
)

OK = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ([], "empty"),
        ("hello", "must be a list"),
        ({"role": "user", "content": "x"}, "must be a list"),
        (None, "must be a list"),
        (["hello"], "messages[0] must be a dict"),
        ([{"content": "x"}], "messages[0] has no 'role'"),
        ([{"role": "bot", "content": "x"}], "messages[0] has role 'bot'"),
        ([{"role": "user"}], "messages[0] has no 'content'"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": ["x"]}], "messages[1].content[0] must be a dict"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": 5}], "messages[1] has content of type int"),
    ],
)
@responses.activate  # any network access would fail the test with ConnectionError
def test_invalid_messages_are_refused_before_any_io(messages, fragment):
    for provider in (FlowGpt, GPROChat, Chatgpt4Online, Ylokh):
        with pytest.raises(InvalidMessagesError) as info:
            provider.create_completion(None, messages)
        assert fragment in str(info.value)
    assert len(responses.calls) == 0


def test_format_prompt_matches_the_protocol():
    assert format_prompt([{"role": "user", "content": "only"}]) == "only"
    conversation = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ]
    assert format_prompt(conversation) == "System: S\nUser: U1\nAssistant: A1\nUser: U2\nAssistant:"


def test_get_model_semantics():
    assert FlowGpt.get_model("") == "gpt-3.5-turbo"
    assert FlowGpt.get_model(None) == "gpt-3.5-turbo"
    assert FlowGpt.get_model("gemini") == "google-gemini"
    assert FlowGpt.get_model("gemini-pro") == "google-gemini"
    assert FlowGpt.get_model("claude-v2") == "claude-v2"
    assert GPROChat.get_model("anything-goes") == "anything-goes"
    assert Ylokh.get_model(None) == "gpt-3.5-turbo"
    assert FlowGpt.get_models() == FlowGpt.models and FlowGpt.get_models() is not FlowGpt.models


@responses.activate
def test_unknown_model_names_provider_and_lists_valid_models():
    with pytest.raises(ModelNotSupportedError) as info:
        Chatgpt4Online.create_completion("gpt-3.5-turbo", OK)
    error = info.value
    assert "Chatgpt4Online" in str(error) and "gpt-4" in str(error)
    assert error.provider == "Chatgpt4Online" and error.models == ["gpt-4"] and error.model == "gpt-3.5-turbo"
    with pytest.raises(ModelNotSupportedError, match="Mixtral-8x7B"):
        FlowGpt.create_completion("gpt-5", OK)
    assert len(responses.calls) == 0


@responses.activate
def test_unknown_options_are_refused_not_sent():
    with pytest.raises(UnsupportedOptionError, match="accepted options: temperature"):
        FlowGpt.create_completion(None, OK, web_search=True)
    with pytest.raises(TypeError, match="accepted options: none"):
        GPROChat.create_completion(None, OK, temperature=0.2)
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://example.com"},
        {"base_url": "localhost:8080"},
        {"timeout": -1},
        {"timeout": (1, 2, 3)},
        {"timeout": "10"},
        {"proxy": "no-scheme-host:3128"},
    ],
)
def test_bad_transport_arguments(kwargs):
    with pytest.raises(InvalidArgumentError):
        FlowGpt.create_completion(None, OK, **kwargs)


def test_registry():
    assert [p.__name__ for p in llmproviders.list_providers()][:4] == ["FlowGpt", "GPROChat", "Chatgpt4Online", "Ylokh"]
    assert llmproviders.get_provider("FlowGpt") is FlowGpt
    assert llmproviders.get_provider("ylokh") is Ylokh
    with pytest.raises(ProviderNotFoundError) as info:
        llmproviders.get_provider("Bing")
    assert "FlowGpt" in str(info.value) and "Ylokh" in info.value.known
    assert isinstance(info.value, LookupError)


def test_chat_completion_resolves_providers():
    from llmproviders._completion import resolve_provider

    assert resolve_provider(FlowGpt, None) is FlowGpt
    assert resolve_provider("GPROChat", None) is GPROChat
    assert resolve_provider(None, "claude-v2") is FlowGpt
    assert resolve_provider(None, "gemini") is FlowGpt
    with pytest.raises(ProviderNotFoundError, match="pass provider="):
        resolve_provider(None, "no-such-model")
    with pytest.raises(ProviderNotFoundError):
        ChatCompletion.create(model="x", messages=OK, provider="Nope")


def test_providers_are_not_instantiated():
    with pytest.raises(TypeError, match="class methods"):
        FlowGpt()


@responses.activate
def test_choosing_a_provider_by_model_never_goes_online(monkeypatch):
    from llmproviders._completion import resolve_provider

    monkeypatch.setenv("LLMPROVIDERS_BASE_URL", "http://127.0.0.1:9")
    assert resolve_provider(None, "claude-v2") is FlowGpt
    assert len(responses.calls) == 0  # OpenAICompatible's /models was not asked


def test_resolve_base_url_precedence(monkeypatch):
    monkeypatch.delenv("LLMPROVIDERS_BASE_URL", raising=False)
    assert FlowGpt.resolve_base_url() is None
    monkeypatch.setenv("LLMPROVIDERS_BASE_URL", "http://env:1")
    assert FlowGpt.resolve_base_url() == "http://env:1"
    monkeypatch.setattr(FlowGpt, "base_url", "http://class:2")
    assert FlowGpt.resolve_base_url() == "http://class:2"
    assert FlowGpt.resolve_base_url("http://call:3") == "http://call:3"


# -- moved from the review-fix file: each names what used to go wrong ---------------------------


@pytest.mark.parametrize(
    "kwargs, kind",
    [
        ({"model": ["gpt-4"]}, ModelNotSupportedError),
        ({"model": {"x": 1}}, ModelNotSupportedError),
        ({"timeout": math.nan}, InvalidArgumentError),
        ({"timeout": math.inf}, InvalidArgumentError),
        ({"timeout": (1, math.nan)}, InvalidArgumentError),
        ({"base_url": "http://h:99999"}, InvalidArgumentError),
        ({"base_url": "http://h:abc"}, InvalidArgumentError),
        ({"temperature": math.nan}, InvalidArgumentError),
        ({"temperature": object()}, InvalidArgumentError),
    ],
)
@responses.activate
def test_bad_arguments_fail_at_the_call_with_our_errors(kwargs, kind):
    kwargs.setdefault("model", None)
    with pytest.raises(kind):
        FlowGpt.create_completion(messages=MESSAGES_RU, **kwargs)
    assert len(responses.calls) == 0


def test_messages_with_values_json_cannot_carry_are_refused():
    with pytest.raises(InvalidArgumentError, match="plain JSON"):
        Ylokh.create_completion(None, [{"role": "user", "content": "x", "metadata": object()}])


@responses.activate
def test_a_message_that_refers_to_itself_is_refused_at_once():
    """(review) A message holding a reference to itself hung validation, eating memory."""
    message = {"role": "user", "content": "Hello", "metadata": {}}
    message["metadata"]["parent"] = message
    with pytest.raises(llmproviders.InvalidArgumentError, match="Circular reference"):
        llmproviders.FlowGpt.create_completion(None, [message])
    deep = {"role": "user", "content": "Hello"}
    node = deep["extra"] = {}
    for _ in range(200):
        node = node.setdefault("x", {})
    with pytest.raises(llmproviders.InvalidMessagesError, match="nested more than"):
        llmproviders.FlowGpt.create_completion(None, [deep])
    assert len(responses.calls) == 0
