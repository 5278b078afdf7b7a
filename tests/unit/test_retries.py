"""Retries, deadlines, empty replies and provider fallback, with ``responses``."""

import time

import pytest
import requests
import responses

from llmproviders import (
    AuthenticationError,
    Chatgpt4Online,
    ChatCompletion,
    CloudflareError,
    EmptyResponseError,
    FlowGpt,
    GPROChat,
    InvalidArgumentError,
    ProtocolError,
    Provider,
    RateLimitError,
    RequestTimeoutError,
    ResponseStatusError,
    RetryPolicy,
    RetryProvider,
    RetryProviderError,
    StreamInterruptedError,
    TransportError,
    Ylokh,
)
from tests.helpers import MESSAGES_RU, body

GPRO = "https://gprochat.com/api/generate"
FLOW = "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous"
YLOKH = "https://chatapi.ylokh.xyz/v1/chat/completions"


def flow_line(text):
    return '{"event": "text", "data": "%s"}\n' % text


@responses.activate
def test_5xx_then_success_is_retried_transparently():
    responses.post(GPRO, status=503, body="busy")
    responses.post(GPRO, status=502, body="<html><title>502 Bad Gateway</title></html>", content_type="text/html")
    responses.post(GPRO, body="ok")
    assert GPROChat.create(None, MESSAGES_RU) == "ok"
    assert len(responses.calls) == 3


@responses.activate
def test_final_error_says_how_many_attempts_and_why():
    responses.post(GPRO, status=503, body="busy")
    responses.post(GPRO, body=requests.exceptions.ConnectionError("refused"))
    responses.post(GPRO, status=500, json={"error": "down"})
    with pytest.raises(ResponseStatusError) as info:
        GPROChat.create(None, MESSAGES_RU)
    error = info.value
    assert error.status_code == 500 and len(responses.calls) == 3
    assert [type(e) for e in error.attempts] == [ResponseStatusError, TransportError]
    assert "[3 attempts; earlier: 1) gprochat.com answered HTTP 503" in str(error)
    assert "2) could not reach gprochat.com" in str(error)


@responses.activate
def test_identical_failures_are_summarised_once():
    responses.post(GPRO, status=503, body="busy")
    with pytest.raises(ResponseStatusError, match=r"\[3 attempts, all failed the same way\]") as info:
        GPROChat.create(None, MESSAGES_RU)
    assert len(info.value.attempts) == 2


@pytest.mark.parametrize(
    "kwargs, kind",
    [
        ({"status": 400, "json": {"error": "bad request"}}, ResponseStatusError),
        ({"status": 401, "body": "invalid sign"}, AuthenticationError),
        ({"status": 403, "body": "<title>Just a moment...</title>", "headers": {"cf-mitigated": "challenge"}}, CloudflareError),
        ({"status": 200, "body": "<html>maintenance</html>", "content_type": "text/html"}, ProtocolError),
    ],
)
@responses.activate
def test_non_retryable_failures_are_not_retried(kwargs, kind):
    responses.post(GPRO, **kwargs)
    with pytest.raises(kind) as info:
        GPROChat.create(None, MESSAGES_RU)
    assert len(responses.calls) == 1 and info.value.attempts == []


@responses.activate
def test_no_retry_after_the_first_delta():
    responses.post(GPRO, body=body("Hel", error=ConnectionResetError(104, "reset")))
    responses.post(GPRO, body="never used")
    stream = GPROChat.create_completion(None, MESSAGES_RU)
    with pytest.raises(StreamInterruptedError) as info:
        list(stream)
    assert info.value.partial == "Hel" and len(responses.calls) == 1


@responses.activate
def test_a_break_before_the_first_delta_is_retried():
    responses.post(FLOW, body=body('{"event": "status"}\n', error=ConnectionResetError(104, "reset")))
    responses.post(FLOW, body=flow_line("ok"))
    assert FlowGpt.create(None, MESSAGES_RU) == "ok"
    assert len(responses.calls) == 2


@responses.activate
def test_max_retries_per_call_and_per_provider(monkeypatch):
    responses.post(GPRO, status=503, body="busy")
    with pytest.raises(ResponseStatusError):
        GPROChat.create(None, MESSAGES_RU, max_retries=0)
    assert len(responses.calls) == 1
    with pytest.raises(ResponseStatusError):
        GPROChat.create(None, MESSAGES_RU, max_retries=4)
    assert len(responses.calls) == 1 + 5
    monkeypatch.setattr(GPROChat, "retry_policy", RetryPolicy(max_retries=1, initial_backoff=0.001))
    with pytest.raises(ResponseStatusError):
        GPROChat.create(None, MESSAGES_RU)
    assert len(responses.calls) == 6 + 2
    with pytest.raises(InvalidArgumentError):
        GPROChat.create_completion(None, MESSAGES_RU, max_retries=-1)


@responses.activate
def test_retry_after_is_honoured_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(Provider, "retry_policy", RetryPolicy(initial_backoff=0.001, max_retry_after=0.3))
    responses.post(GPRO, status=429, body="slow down", headers={"Retry-After": "0.2"})
    responses.post(GPRO, body="ok")
    started = time.monotonic()
    assert GPROChat.create(None, MESSAGES_RU) == "ok"
    assert 0.2 <= time.monotonic() - started < 1.0
    responses.post(GPRO, status=429, body="slow down", headers={"Retry-After": "3600"})
    responses.post(GPRO, body="ok")
    started = time.monotonic()
    assert GPROChat.create(None, MESSAGES_RU) == "ok"
    assert 0.3 <= time.monotonic() - started < 1.0  # capped, not an hour


def test_backoff_is_exponential_with_jitter_and_capped():
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=8.0)
    error = ResponseStatusError("x", status_code=503)
    for retry, nominal in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {policy.backoff(retry, error) for _ in range(50)}
        assert all(0.75 * nominal <= d <= nominal for d in delays) and len(delays) > 1
    assert policy.backoff(0, RateLimitError("x", status_code=429, retry_after=5)) == 5


@responses.activate
def test_empty_reply_is_an_error_and_is_retried():
    responses.post(GPRO, body="")
    with pytest.raises(EmptyResponseError, match="without any text") as info:
        GPROChat.create(None, MESSAGES_RU)
    assert len(responses.calls) == 3 and info.value.partial == ""
    responses.post(FLOW, body='{"event": "done"}\n')
    with pytest.raises(EmptyResponseError):
        FlowGpt.create(None, MESSAGES_RU, max_retries=0)


@responses.activate
def test_an_explicitly_finished_empty_reply_is_legitimate():
    responses.post(YLOKH, body='data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}\n\ndata: [DONE]\n\n')
    assert Ylokh.create(None, MESSAGES_RU) == ""
    responses.post("https://chatgpt4online.org/wp-json/mwai/v1/start_session", json={"restNonce": "n"})
    responses.post(
        "https://chatgpt4online.org/wp-json/mwai-ui/v1/chats/submit",
        body='data: {"type": "end", "data": "{\\"reply\\": \\"\\"}"}\n\n',
    )
    assert Chatgpt4Online.create(None, MESSAGES_RU) == ""


@responses.activate
def test_deadline_bounds_retries():
    responses.post(GPRO, status=503, body="busy")
    started = time.monotonic()
    # The deadline ends the call either while waiting to retry (the last 503 is raised)
    # or just as an attempt starts (RequestTimeoutError): which one is a matter of timing.
    with pytest.raises((ResponseStatusError, RequestTimeoutError)) as info:
        GPROChat.create(None, MESSAGES_RU, max_retries=10_000, deadline=0.3)
    assert time.monotonic() - started < 1.0
    assert 1 <= len(info.value.attempts) < 10_000  # it retried, and the deadline stopped it
    if isinstance(info.value, RequestTimeoutError):
        assert "deadline of 0.3 s" in str(info.value)
    with pytest.raises(InvalidArgumentError):
        GPROChat.create_completion(None, MESSAGES_RU, deadline=0)


# -- RetryProvider -----------------------------------------------------------------


@responses.activate
def test_retry_provider_falls_back_only_before_text():
    responses.post(FLOW, status=500, json={"error": "flow down"})
    responses.post(GPRO, body="from gpro")
    provider = RetryProvider([FlowGpt, "GPROChat"])
    stream = provider.create_completion(None, MESSAGES_RU)
    assert "".join(stream) == "from gpro"
    assert stream.metadata["provider"] == "GPROChat"
    assert repr(provider) == "RetryProvider([FlowGpt, GPROChat], shuffle=False)"


@responses.activate
def test_retry_provider_never_splices_answers():
    responses.post(FLOW, body=body(flow_line("Hello "), error=ConnectionResetError(104, "reset")))
    responses.post(GPRO, body="another answer")
    with pytest.raises(StreamInterruptedError) as info:
        list(RetryProvider([FlowGpt, GPROChat]).create_completion(None, MESSAGES_RU))
    assert info.value.partial == "Hello " and info.value.provider == "FlowGpt"
    assert [c.request.url for c in responses.calls] == [FLOW]


@responses.activate
def test_retry_provider_all_failed_lists_each_provider():
    responses.post(FLOW, status=503, body="busy")
    responses.post(GPRO, body=requests.exceptions.ConnectionError("refused"))
    provider = RetryProvider([FlowGpt, GPROChat, Chatgpt4Online])
    with pytest.raises(RetryProviderError) as info:
        provider.create("gpt-3.5-turbo", MESSAGES_RU, max_retries=0)
    error = info.value
    assert list(error.errors) == ["FlowGpt", "GPROChat", "Chatgpt4Online"]
    lines = str(error).splitlines()
    assert lines[0] == "RetryProvider: all 3 providers failed:"
    assert lines[1].startswith("  FlowGpt: ResponseStatusError:") and "503" in lines[1]
    assert lines[2].startswith("  GPROChat: TransportError: could not reach gprochat.com")
    assert lines[3].startswith("  Chatgpt4Online: ModelNotSupportedError:") and "gpt-4" in lines[3]


@responses.activate
def test_retry_provider_shuffle_and_chat_completion():
    responses.post(FLOW, body=flow_line("flow"))
    responses.post(GPRO, body="gpro")
    seen = set()
    for _ in range(40):
        seen.add(RetryProvider([FlowGpt, GPROChat], shuffle=True).create(None, MESSAGES_RU))
    assert seen == {"flow", "gpro"}
    assert ChatCompletion.create(model=None, messages=MESSAGES_RU, provider=RetryProvider([GPROChat])) == "gpro"
    with pytest.raises(InvalidArgumentError):
        RetryProvider([])


def test_a_retry_policy_is_an_immutable_value():
    """A plain slotted class since issue 16 (not a dataclass): the same behaviour."""
    import copy
    import pickle

    policy = RetryPolicy(max_retries=1, initial_backoff=0.25)
    assert policy == RetryPolicy(1, 0.25) and hash(policy) == hash(RetryPolicy(1, 0.25))
    assert policy != RetryPolicy() and policy != (1, 0.25, 8.0, 60.0)
    assert repr(policy) == "RetryPolicy(max_retries=1, initial_backoff=0.25, max_backoff=8.0, max_retry_after=60.0)"
    assert pickle.loads(pickle.dumps(policy)) == policy and copy.deepcopy(policy) == policy
    with pytest.raises(AttributeError):
        policy.max_retries = 5
    with pytest.raises(AttributeError):
        del policy.max_retries
    assert policy.max_retries == 1
    assert RetryPolicy.__match_args__ == ("max_retries", "initial_backoff", "max_backoff", "max_retry_after")


class _Patient(RetryPolicy):
    """A policy with its own backoff (review: copies and pickles came back as RetryPolicy)."""

    def backoff(self, retry, error):
        return 0.0


def test_a_retry_policy_subclass_stays_itself():
    import copy
    import pickle

    policy = _Patient(5)
    for same in (copy.copy(policy), copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))):
        assert type(same) is _Patient and same == policy and same.backoff(0, None) == 0.0
    assert _Patient(5) == _Patient(5) and _Patient(5) != RetryPolicy(5)
    assert repr(policy).startswith("_Patient(max_retries=5,")
