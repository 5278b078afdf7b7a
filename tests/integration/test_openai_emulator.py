"""The emulator's OpenAI parts, seen from plain ``requests``: the model list, the
optional API key, and the usage chunk of ``stream_options.include_usage``."""

import io
import json

import pytest
import requests

from llmproviders.testing import OPENAI_MODELS, OPENAI_MODELS_PATH, YLOKH_PATH, Emulator, reply_for, serve

TIMEOUT = 5
MESSAGES = [{"role": "user", "content": "Сколько токенов?"}]
KEY = "sk-emulator-key"
UNAUTHORIZED = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}


def events(response):
    """The JSON payloads of an SSE body, and whether it ended with [DONE]."""
    payloads = [line[len("data: "):] for line in response.text.split("\n\n") if line.startswith("data: ")]
    done = payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads if p != "[DONE]"], done


def test_models_list_in_openai_shape(emulator):
    response = requests.get(emulator.url(OPENAI_MODELS_PATH), timeout=TIMEOUT)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    listing = response.json()
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == list(OPENAI_MODELS)
    for model in listing["data"]:
        assert model["object"] == "model" and model["owned_by"] == "llmproviders-emulator"
        assert isinstance(model["created"], int)
    wrong = requests.post(emulator.url(OPENAI_MODELS_PATH), json={}, timeout=TIMEOUT)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert wrong.json() == {"error": f"method not allowed: POST {OPENAI_MODELS_PATH} (use GET)"}


def test_a_plan_with_a_path_applies_to_the_model_list(emulator):
    emulator.plan(path=OPENAI_MODELS_PATH, status=503)
    emulator.plan(status=500)  # a plan without a path is for the chat endpoints only
    assert requests.get(emulator.url(OPENAI_MODELS_PATH), timeout=TIMEOUT).status_code == 503
    assert requests.get(emulator.url(OPENAI_MODELS_PATH), timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {KEY}", KEY, f"Bearer {KEY} "])
def test_api_key_is_required_when_set(authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with Emulator(api_key=KEY) as emu:
        for response in (
            requests.post(emu.url(YLOKH_PATH), json=body, headers=headers, timeout=TIMEOUT),
            requests.get(emu.url(OPENAI_MODELS_PATH), headers=headers, timeout=TIMEOUT),
        ):
            assert response.status_code == 401
            assert response.json() == UNAUTHORIZED
        good = {"Authorization": f"Bearer {KEY}"}
        assert requests.get(emu.url(OPENAI_MODELS_PATH), headers=good, timeout=TIMEOUT).status_code == 200
        streamed = requests.post(emu.url(YLOKH_PATH), json=body, headers=good, timeout=TIMEOUT)
        assert streamed.status_code == 200
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in events(streamed)[0]) == reply_for(MESSAGES)


def test_without_api_key_any_or_no_authorization_is_accepted(emulator):
    body = {"model": "m", "messages": MESSAGES, "stream": False}
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert requests.post(emulator.url(YLOKH_PATH), json=body, headers=headers, timeout=TIMEOUT).status_code == 200


def test_include_usage_adds_a_final_usage_chunk(emulator):
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    chunks, done = events(requests.post(emulator.url(YLOKH_PATH), json=body, timeout=TIMEOUT))
    assert done
    *content, finish, last = chunks
    assert all(chunk["usage"] is None for chunk in content + [finish])
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == [] and last["id"] == finish["id"] and last["object"] == "chat.completion.chunk"
    prompt, reply = len(MESSAGES[0]["content"].split()), len(reply_for(MESSAGES).split())
    assert last["usage"] == {"prompt_tokens": prompt, "completion_tokens": reply, "total_tokens": prompt + reply}
    # the usage agrees with the whole (non-streamed) completion's
    whole = requests.post(emulator.url(YLOKH_PATH), json={**body, "stream": False}, timeout=TIMEOUT).json()
    assert whole["usage"] == last["usage"]


def test_without_include_usage_chunks_have_no_usage(emulator):
    for options in (None, {"include_usage": False}):
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        if options is not None:
            body["stream_options"] = options
        chunks, done = events(requests.post(emulator.url(YLOKH_PATH), json=body, timeout=TIMEOUT))
        assert done and all("usage" not in chunk and chunk["choices"] for chunk in chunks)
    bad = requests.post(emulator.url(YLOKH_PATH), json={**body, "stream_options": "yes"}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "stream_options" in bad.json()["error"]["message"]


def test_omit_trailer_also_omits_the_usage_chunk(emulator):
    emulator.plan(path=YLOKH_PATH, omit_trailer=True)
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    chunks, done = events(requests.post(emulator.url(YLOKH_PATH), json=body, timeout=TIMEOUT))
    assert not done and all(chunk["choices"] and chunk["choices"][0]["finish_reason"] is None for chunk in chunks)


def test_serve_lists_the_model_list_with_its_method():
    lines = []

    class Output(io.StringIO):
        def flush(self):
            lines.extend(self.getvalue().splitlines())
            raise KeyboardInterrupt  # serve() stops as on Ctrl+C, once the URLs are printed

    serve(port=0, file=Output(), api_key=KEY)
    assert any(line.split()[-2] == "GET" and line.endswith(OPENAI_MODELS_PATH) for line in lines)
    assert any(line.split()[-2] == "POST" and line.endswith(YLOKH_PATH) for line in lines)
