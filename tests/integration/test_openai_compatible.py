"""OpenAICompatible (and Ylokh, its subclass) against the emulator's OpenAI endpoints."""

import logging
import socket

import pytest

from llmproviders import AuthenticationError, OpenAICompatible, ResponseError, TransportError, Ylokh
from llmproviders.testing import OPENAI_MODELS, YLOKH_PATH, Emulator, reply_for

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Привет! 🚀"},
]
PIECES = ["Один ", "два ", "три 🚀"]
TIMEOUT = (5, 5)
KEY = "sk-distinctive-4f1c9a7e2b-key"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    monkeypatch.delenv("LLMPROVIDERS_BASE_URL", raising=False)
    monkeypatch.delenv("LLMPROVIDERS_API_KEY", raising=False)


def start(emulator, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    return OpenAICompatible.create_completion("local-model", MESSAGES, base_url=emulator.base_url + "/v1", **kwargs)


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_each_delta_arrives_before_the_next_is_sent(emulator, framing):
    plan = emulator.plan(path=YLOKH_PATH, framing=framing, pieces=PIECES, step=True)
    with start(emulator) as stream:
        for expected in PIECES:
            assert next(stream) == expected
            plan.advance()
        assert list(stream) == []
    assert plan.wait() == "complete"
    assert stream.metadata["finish_reason"] == "stop" and stream.metadata["model"] == "local-model"
    assert stream.metadata["id"].startswith("chatcmpl-")
    sent = emulator.requests[-1].json
    assert sent == {"model": "local-model", "messages": MESSAGES, "stream": True}


def test_streamed_and_whole_replies_with_usage(emulator):
    stream = start(emulator, stream_options={"include_usage": True}, temperature=0.1)
    assert "".join(stream) == reply_for(MESSAGES)
    usage = stream.metadata["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    whole = start(emulator, stream=False)
    assert list(whole) == [reply_for(MESSAGES)]
    assert whole.metadata["usage"] == usage and whole.metadata["finish_reason"] == "stop"
    assert emulator.requests[-1].json["stream"] is False


def test_get_models_from_the_emulator(emulator):
    assert OpenAICompatible.get_models(base_url=emulator.base_url + "/v1", timeout=TIMEOUT) == list(OPENAI_MODELS)
    assert emulator.requests[-1].method == "GET" and emulator.requests[-1].path == "/v1/models"
    # Ylokh asks only when given a server, whose root or /v1 root both work
    assert Ylokh.get_models() == []
    assert Ylokh.get_models(base_url=emulator.base_url, timeout=TIMEOUT) == list(OPENAI_MODELS)


@pytest.mark.parametrize("suffix", ["", "/v1"])
def test_ylokh_reaches_the_emulator_from_its_root_or_v1(emulator, suffix):
    assert Ylokh.create(None, MESSAGES, base_url=emulator.base_url + suffix, timeout=TIMEOUT) == reply_for(MESSAGES)
    sent = emulator.requests[-1]
    assert sent.path == YLOKH_PATH and sent.headers["origin"] == "https://chat.ylokh.xyz"
    assert sent.json["allow_fallback"] is True and "authorization" not in sent.headers


def test_api_key_is_sent_and_checked():
    with Emulator(api_key=KEY) as emu:
        base = emu.base_url + "/v1"
        assert OpenAICompatible.create("m", MESSAGES, base_url=base, api_key=KEY, timeout=TIMEOUT) == reply_for(MESSAGES)
        assert emu.requests[-1].headers["authorization"] == f"Bearer {KEY}"
        assert OpenAICompatible.get_models(base_url=base, api_key=KEY, timeout=TIMEOUT) == list(OPENAI_MODELS)
        with pytest.raises(AuthenticationError, match="Incorrect API key"):
            OpenAICompatible.create("m", MESSAGES, base_url=base, timeout=TIMEOUT)
        with pytest.raises(AuthenticationError):
            OpenAICompatible.get_models(base_url=base, timeout=TIMEOUT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_key_never_appears_in_errors_or_logs(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    with Emulator(api_key="the-right-key") as emu:
        with pytest.raises(AuthenticationError) as info:
            OpenAICompatible.create("m", MESSAGES, base_url=emu.base_url + "/v1", api_key=KEY, timeout=TIMEOUT)
        errors.append(info.value)
        assert emu.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    monkeypatch.setenv("LLMPROVIDERS_API_KEY", KEY)  # from the environment as well
    with pytest.raises(TransportError) as info:
        OpenAICompatible.create("m", MESSAGES, base_url=f"http://127.0.0.1:{_free_port()}/v1", timeout=TIMEOUT)
    errors.append(info.value)
    for error in errors:
        for text in (str(error), repr(error), str(getattr(error, "body", "")), caplog.text):
            assert KEY not in text and "4f1c9a7e2b" not in text
    assert "could not reach" in str(errors[1])


def test_error_inside_the_stream(emulator):
    emulator.plan(path=YLOKH_PATH, pieces=PIECES, stream_error={"message": "overloaded", "type": "server_error"})
    stream = start(emulator)
    with pytest.raises(ResponseError, match="overloaded") as info:
        list(stream)
    assert info.value.partial == PIECES[0] == stream.text
