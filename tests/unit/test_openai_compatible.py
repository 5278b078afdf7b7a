"""OpenAICompatible with ``responses``: request contract, key handling, options, replies."""

import json
import logging

import pytest
import requests
import responses

import llmproviders
from llmproviders import (
    AuthenticationError,
    InvalidArgumentError,
    ModelNotSupportedError,
    OpenAICompatible,
    ProtocolError,
    ResponseError,
    ResponseStatusError,
    StreamInterruptedError,
    TransportError,
    UnsupportedOptionError,
    Ylokh,
)
from llmproviders.providers.openai_compatible import SAMPLING_OPTIONS
from tests.helpers import MESSAGES_RU, body, split_every

BASE = "http://127.0.0.1:9/v1"
CHAT_URL = BASE + "/chat/completions"
MODELS_URL = BASE + "/models"
KEY = "sk-test-0123456789-UNIQUE-KEY"
YLOKH_URL = "https://chatapi.ylokh.xyz/v1/chat/completions"


def sse(*payloads) -> bytes:
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p, ensure_ascii=False)).encode() + b"\n\n"
        for p in payloads
    )


def chunk(content=None, finish_reason=None, role=None, **extra):
    delta = {} if content is None else {"content": content}
    if role:
        delta["role"] = role
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 7, "model": "m-1", "choices": [choice], **extra}


def completion(text, **extra):
    message = {"role": "assistant", "content": text}
    return {"id": "chatcmpl-8", "object": "chat.completion", "created": 8, "model": "m-1",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], **extra}


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    monkeypatch.delenv("LLMPROVIDERS_BASE_URL", raising=False)
    monkeypatch.delenv("LLMPROVIDERS_API_KEY", raising=False)


def create(**kwargs):
    kwargs.setdefault("base_url", BASE)
    return OpenAICompatible.create("m", MESSAGES_RU, **kwargs)


@responses.activate
def test_request_contract_minimal_body_and_no_key():
    responses.post(CHAT_URL, body=sse(chunk("ok", "stop"), "[DONE]"), content_type="text/event-stream")
    assert create() == "ok"
    request = responses.calls[0].request
    assert request.url == CHAT_URL
    assert json.loads(request.body) == {"model": "m", "messages": MESSAGES_RU, "stream": True}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "text/event-stream"
    assert "Authorization" not in request.headers
    assert "Origin" not in request.headers


@responses.activate
def test_base_url_is_the_api_root_whatever_its_path():
    """The OpenAI convention: {base_url}/chat/completions, so roots not ending in /v1 work;
    a base_url with no path at all gets /v1 (one LLMPROVIDERS_BASE_URL serves every provider)."""
    for root, api in (
        ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
        ("http://127.0.0.1:9/v1beta/openai", "http://127.0.0.1:9/v1beta/openai"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9/v1"),
    ):
        responses.post(api + "/chat/completions", body=sse(chunk("ok", "stop"), "[DONE]"), content_type="text/event-stream")
        assert create(base_url=root + "/") == "ok"
        assert responses.calls[-1].request.url == api + "/chat/completions"


@responses.activate
def test_api_key_from_option_or_environment_never_openai_api_key(monkeypatch):
    responses.post(CHAT_URL, body=sse(chunk("ok", "stop"), "[DONE]"), content_type="text/event-stream")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-be-sent")
    create()
    assert "Authorization" not in responses.calls[-1].request.headers
    monkeypatch.setenv("LLMPROVIDERS_API_KEY", "from-env")
    create()
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer from-env"
    create(api_key=KEY)
    assert responses.calls[-1].request.headers["Authorization"] == f"Bearer {KEY}"


@responses.activate
def test_extra_headers_are_sent():
    responses.post(CHAT_URL, body=sse(chunk("ok", "stop"), "[DONE]"), content_type="text/event-stream")
    create(extra_headers={"X-Title": "llmproviders", "OpenAI-Organization": "org-1"})
    headers = responses.calls[0].request.headers
    assert headers["X-Title"] == "llmproviders" and headers["OpenAI-Organization"] == "org-1"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": "two words"}, "api_key"),
        ({"api_key": "line\nbreak"}, "api_key"),
        ({"api_key": 42}, "api_key"),
        ({"extra_headers": ["X-A: b"]}, "extra_headers"),
        ({"extra_headers": {"X-A": 1}}, "extra_headers"),
    ],
)
def test_unusable_key_or_headers_are_refused_before_any_io(kwargs, message):
    with responses.RequestsMock():  # any request would fail the test
        with pytest.raises(InvalidArgumentError, match=message) as info:
            OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, **kwargs)
    assert "break" not in str(info.value) and "words" not in str(info.value)


@responses.activate
def test_sampling_options_are_passed_through_only_when_given():
    responses.post(CHAT_URL, body=sse(chunk("ok", "stop"), "[DONE]"), content_type="text/event-stream")
    given = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 5,
        "max_completion_tokens": 6,
        "stop": ["\n"],
        "seed": 1,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100},
        "user": "u-1",
        "response_format": {"type": "json_object"},
        "stream_options": {"include_usage": True},
    }
    assert set(given) == SAMPLING_OPTIONS
    create(**given)
    assert json.loads(responses.calls[0].request.body) == {"model": "m", "messages": MESSAGES_RU, "stream": True, **given}


@pytest.mark.parametrize("option", ["allow_fallback", "foo"])
def test_unknown_options_are_refused(option):
    with pytest.raises(UnsupportedOptionError, match=option) as info:
        OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, **{option: 2})
    assert "temperature" in str(info.value)  # lists what is accepted


@pytest.mark.parametrize(("option", "expected"), [("n", "must be 1"), ("tools", "must be a list of tools")])
def test_known_options_with_bad_values_are_refused_naming_the_option(option, expected):
    with pytest.raises(InvalidArgumentError, match=expected) as info:
        OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, **{option: 2})
    assert repr(option) in str(info.value)


def test_a_base_url_is_required_and_the_message_says_how():
    with responses.RequestsMock():
        with pytest.raises(InvalidArgumentError) as info:
            OpenAICompatible.create_completion("m", MESSAGES_RU)
    assert "base_url=" in str(info.value) and "LLMPROVIDERS_BASE_URL" in str(info.value)


@responses.activate
def test_base_url_from_class_attribute_or_environment(monkeypatch):
    class Preconfigured(OpenAICompatible):
        base_url = "http://127.0.0.1:9/api/v1"
        default_model = "house-model"

    responses.post("http://127.0.0.1:9/api/v1/chat/completions", body=sse(chunk("a", "stop")), content_type="text/event-stream")
    assert Preconfigured.create(None, MESSAGES_RU) == "a"
    assert json.loads(responses.calls[-1].request.body)["model"] == "house-model"
    monkeypatch.setenv("LLMPROVIDERS_BASE_URL", BASE)
    responses.post(CHAT_URL, body=sse(chunk("b", "stop")), content_type="text/event-stream")
    assert OpenAICompatible.create("m", MESSAGES_RU) == "b"


def test_a_model_is_required():
    with pytest.raises(ModelNotSupportedError, match="no default model"):
        OpenAICompatible.create_completion(None, MESSAGES_RU, base_url=BASE)


@responses.activate
def test_streaming_skips_empty_deltas_stops_at_done_and_records_metadata():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    reply = sse(
        chunk("", role="assistant"),
        chunk("При"),
        chunk(None),
        chunk("вет 👋"),
        chunk(None, "length"),
        {**chunk(None), "choices": [], "usage": usage, "system_fingerprint": "fp_1"},
        "[DONE]",
        chunk("after done is never read"),
    )
    for size in (1, 7, 1000):
        responses.post(CHAT_URL, body=body(*split_every(reply, size)), content_type="text/event-stream")
        stream = OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE)
        assert list(stream) == ["При", "вет 👋"]
        assert stream.metadata == {
            "id": "chatcmpl-7",
            "created": 7,
            "model": "m-1",
            "finish_reason": "length",
            "usage": usage,
            "system_fingerprint": "fp_1",
        }


@responses.activate
def test_non_streaming_is_one_json_completion():
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    responses.post(CHAT_URL, json=completion("Целиком", usage=usage))
    stream = OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE, stream=False)
    assert list(stream) == ["Целиком"]
    request = responses.calls[0].request
    assert json.loads(request.body)["stream"] is False and request.headers["Accept"] == "application/json"
    assert stream.metadata == {"id": "chatcmpl-8", "created": 8, "model": "m-1", "finish_reason": "stop", "usage": usage}


@responses.activate
def test_errors_inside_the_stream_or_as_a_body_are_response_errors():
    error = {"message": "The model is overloaded", "type": "server_error"}
    responses.post(CHAT_URL, body=sse(chunk("Hi"), {"error": error}), content_type="text/event-stream")
    with pytest.raises(ResponseError, match="overloaded") as info:
        list(OpenAICompatible.create_completion("m", MESSAGES_RU, base_url=BASE))
    assert info.value.error == error and info.value.partial == "Hi"
    responses.post(CHAT_URL, json={"error": error})
    with pytest.raises(ResponseError, match="overloaded"):
        create(stream=False)


@responses.activate
def test_truncated_and_malformed_streams():
    responses.post(CHAT_URL, body=sse(chunk("Hel")), content_type="text/event-stream")
    with pytest.raises(StreamInterruptedError, match=r"\[DONE\]"):
        create()
    responses.post(CHAT_URL, body=sse({"choices": "nope"}), content_type="text/event-stream")
    with pytest.raises(ProtocolError, match="not a chat.completion.chunk"):
        create()
    responses.post(CHAT_URL, json={"object": "chat.completion"})
    with pytest.raises(ProtocolError, match="not a chat.completion"):
        create(stream=False)


@responses.activate
def test_404_says_what_base_url_should_be():
    responses.post("http://127.0.0.1:9/api/chat/completions", status=404, body="404 page not found")
    with pytest.raises(ResponseStatusError, match="usually ending in /v1") as info:
        create(base_url="http://127.0.0.1:9/api")  # (a base_url without a path gets /v1)
    assert info.value.status_code == 404 and "usually ending in /v1" in repr(info.value)


def _assert_key_absent(error, caplog):
    for text in (str(error), repr(error), caplog.text, getattr(error, "body", ""), str(error.__cause__ or "")):
        assert KEY not in text
        assert KEY[10:25] not in text


@responses.activate
def test_401_is_an_authentication_error_and_the_key_never_shows(caplog):
    caplog.set_level(logging.DEBUG)
    echoed = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error", "code": "invalid_api_key"}}
    responses.post(CHAT_URL, status=401, json=echoed)
    with pytest.raises(AuthenticationError) as info:
        create(api_key=KEY)
    assert info.value.status_code == 401 and "Incorrect API key provided: [redacted]" in str(info.value)
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"  # it was sent
    _assert_key_absent(info.value, caplog)
    responses.get(MODELS_URL, status=401, json=echoed)
    with pytest.raises(AuthenticationError) as info:
        OpenAICompatible.get_models(base_url=BASE, api_key=KEY)
    _assert_key_absent(info.value, caplog)


@responses.activate
def test_connection_error_never_shows_the_key(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LLMPROVIDERS_API_KEY", KEY)
    responses.post(CHAT_URL, body=requests.exceptions.ConnectionError("[Errno 111] Connection refused"))
    with pytest.raises(TransportError) as info:
        create()
    _assert_key_absent(info.value, caplog)


@responses.activate
def test_get_models_lists_ids():
    listing = {"object": "list", "data": [{"id": "a", "object": "model"}, {"id": "b", "object": "model"}]}
    responses.get(MODELS_URL, json=listing)
    assert OpenAICompatible.get_models(base_url=BASE, api_key=KEY, timeout=5) == ["a", "b"]
    request = responses.calls[0].request
    assert request.method == "GET" and request.headers["Authorization"] == f"Bearer {KEY}"
    responses.get(MODELS_URL, json={"object": "list"})
    with pytest.raises(ProtocolError, match="not a model list"):
        OpenAICompatible.get_models(base_url=BASE)


def test_get_models_without_a_server_is_the_static_list_and_does_no_io():
    with responses.RequestsMock():
        assert OpenAICompatible.get_models() == []
        assert Ylokh.get_models() == []
        # looking a provider up by model never goes online either
        with pytest.raises(llmproviders.ProviderNotFoundError):
            llmproviders.ChatCompletion.create(model="no-such-model", messages=MESSAGES_RU)


@responses.activate
def test_ylokh_is_a_preconfigured_subclass():
    assert issubclass(Ylokh, OpenAICompatible)
    assert (Ylokh.default_model, Ylokh.working, Ylokh.supports_system_message) == ("gpt-3.5-turbo", False, False)
    assert OpenAICompatible.working and OpenAICompatible.default_model is None
    ylokh = "https://chatapi.ylokh.xyz/v1/chat/completions"
    responses.post(ylokh, body=sse(chunk("ok", "stop"), "[DONE]"), content_type="text/event-stream")
    assert Ylokh.create(None, MESSAGES_RU, presence_penalty=1) == "ok"  # no base_url needed
    assert "Authorization" not in responses.calls[0].request.headers
    assert json.loads(responses.calls[0].request.body) == {
        "messages": MESSAGES_RU,
        "model": "gpt-3.5-turbo",
        "temperature": 1,
        "presence_penalty": 1,
        "top_p": 1,
        "frequency_penalty": 0,
        "allow_fallback": True,
        "stream": True,
    }
    Ylokh.create(None, MESSAGES_RU, api_key=KEY)
    assert responses.calls[1].request.headers["Authorization"] == f"Bearer {KEY}"


@responses.activate
def test_ylokh_does_not_send_the_environment_key(monkeypatch):
    monkeypatch.setenv("LLMPROVIDERS_API_KEY", KEY)
    responses.post("https://chatapi.ylokh.xyz/v1/chat/completions", body=sse(chunk("ok", "stop")), content_type="text/event-stream")
    Ylokh.create(None, MESSAGES_RU)
    assert "Authorization" not in responses.calls[0].request.headers


# -- moved from the review-fix file: each names what used to go wrong ---------------------------


@responses.activate
def test_crlf_split_between_chunks_in_sse_still_frames_events():
    responses.post(YLOKH_URL, body=body(b'data: {"choices": [{"delta": {"content": "a"}}]}\r', b"\n\r", b"\ndata: [DONE]\r\n\r\n"), content_type="text/event-stream")
    assert Ylokh.create(None, MESSAGES_RU) == "a"


@pytest.mark.parametrize("error", [None, False, "", {}])
@responses.activate
def test_an_empty_or_false_error_field_is_not_an_error(error):
    import json

    chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}], "error": error}
    responses.post(YLOKH_URL, body=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n", content_type="text/event-stream")
    assert Ylokh.create(None, MESSAGES_RU) == "ok"
