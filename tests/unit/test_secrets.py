"""Secrets never leave: what the library takes in from the upstream into an error (a
frame, a body, an error payload, response headers) is redacted as it is taken in, and
no exception in the chain holds the raw frame."""

import pytest
import responses

from llmproviders import Chatgpt4Online, FlowGpt, LLMProvidersError, OpenAICompatible
from tests.helpers import MESSAGES_RU, body

KEY = "sk-live-0123456789abcdef0123"
QUERY = "qv-9876543210fedcba"
BASE = "http://127.0.0.1:9/v1"
CHAT = BASE + "/chat/completions"


def chain(error: BaseException):
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def assert_hidden(error: LLMProvidersError, *secrets):
    for link in chain(error):
        texts = [str(link), repr(link), getattr(link, "doc", ""), str(getattr(link, "frame", "")),
                 str(getattr(link, "body", "")), str(getattr(link, "error", "")), str(dict(getattr(link, "headers", {}) or {}))]
        for secret in secrets:
            for text in texts:
                assert secret not in text and secret[:14] not in text, (type(link).__name__, text[:200])


def fail(call):
    with pytest.raises(LLMProvidersError) as info:
        call()
    return info.value


@responses.activate
def test_a_malformed_whole_body_echoing_the_key():
    responses.post(CHAT, body='{"error": "invalid key ' + KEY + '"', content_type="application/json")
    error = fail(lambda: OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE, api_key=KEY, stream=False, max_retries=0))
    assert "[redacted]" in error.frame
    assert_hidden(error, KEY)


@responses.activate
def test_a_key_cut_by_the_excerpt_is_still_hidden():
    responses.post(CHAT, body=b"data: {" + b"x" * 104 + KEY.encode() + b"\n\n", content_type="text/event-stream")
    assert_hidden(fail(lambda: OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE, api_key=KEY, max_retries=0)), KEY)


@responses.activate
def test_no_exception_in_the_chain_holds_the_raw_frame():
    responses.post(CHAT, body=b"data: {oops " + KEY.encode() + b"\n\n", content_type="text/event-stream")
    error = fail(lambda: OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE, api_key=KEY, max_retries=0))
    assert error.__context__ is None and error.__cause__ is None
    assert_hidden(error, KEY)


@responses.activate
def test_response_headers_that_echo_the_key_are_redacted():
    responses.post(CHAT, status=401, json={"error": {"message": "bad key"}}, headers={"X-Echo-Authorization": f"Bearer {KEY}"})
    error = fail(lambda: OpenAICompatible.create("m", MESSAGES_RU, base_url=BASE, api_key=KEY, max_retries=0))
    assert error.headers["x-echo-authorization"] == "Bearer [redacted]"  # still case-insensitive
    assert_hidden(error, KEY)


@responses.activate
def test_query_values_in_frames_and_bodies_of_the_seed_providers():
    base = f"http://127.0.0.1:9/?key={QUERY}"
    responses.post(f"http://127.0.0.1:9/wp-json/mwai/v1/start_session?key={QUERY}",
                   json={"code": "rest_forbidden", "message": f"bad key {QUERY}"})
    assert_hidden(fail(lambda: Chatgpt4Online.create(None, MESSAGES_RU, base_url=base, max_retries=0)), QUERY)
    responses.post(f"http://127.0.0.1:9/v3/chat-anonymous?key={QUERY}",
                   body=body(b'{"event":"text","data":"Hi"}\n{oops key=' + QUERY.encode() + b"\n"))
    assert_hidden(fail(lambda: FlowGpt.create(None, MESSAGES_RU, base_url=base, max_retries=0)), QUERY)
    responses.get(f"http://127.0.0.1:9/v1/models?key={QUERY}", body='{"data": [ bad key ' + QUERY, content_type="application/json")
    assert_hidden(fail(lambda: OpenAICompatible.get_models(base_url=f"http://127.0.0.1:9/v1?key={QUERY}")), QUERY)
