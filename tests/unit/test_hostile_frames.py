"""What a hostile upstream sends stays a typed error of the library: absurdly deep JSON
in every provider's frames, and an error after a very long reply (whose text is not
read back unless ``partial`` is asked for)."""

import tracemalloc

import pytest
import responses

from llmproviders import (
    Chatgpt4Online,
    FlowGpt,
    GPROChat,
    InvalidArgumentError,
    LLMProvidersError,
    ProtocolError,
    RetryProvider,
    StreamInterruptedError,
    Ylokh,
)
from tests.helpers import MESSAGES_RU, body

FLOWGPT_URL = "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous"
GPROCHAT_URL = "https://gprochat.com/api/generate"
NONCE_URL = "https://chatgpt4online.org/wp-json/mwai/v1/start_session"
SUBMIT_URL = "https://chatgpt4online.org/wp-json/mwai-ui/v1/chats/submit"
YLOKH_URL = "https://chatapi.ylokh.xyz/v1/chat/completions"

DEEP = "[" * 200_000 + "]" * 200_000  # json.loads raises RecursionError on it


def deep_object(key: str) -> str:
    return '{"%s": %s}' % (key, DEEP)


@pytest.mark.parametrize(
    ("provider", "register"),
    [
        (FlowGpt, lambda: responses.post(FLOWGPT_URL, body=deep_object("event") + "\n")),
        (Chatgpt4Online, lambda: (responses.post(NONCE_URL, json={"restNonce": "n"}), responses.post(SUBMIT_URL, body=f"data: {DEEP}\n\n"))),
        (Chatgpt4Online, lambda: responses.post(NONCE_URL, body=DEEP, content_type="application/json")),
        (Ylokh, lambda: responses.post(YLOKH_URL, body=f"data: {deep_object('choices')}\n\n", content_type="text/event-stream")),
        (Ylokh, lambda: responses.post(YLOKH_URL, body=deep_object("choices"), content_type="application/json")),
    ],
    ids=["FlowGpt-line", "Chatgpt4Online-event", "Chatgpt4Online-nonce", "Ylokh-event", "Ylokh-body"],
)
@responses.activate
def test_absurdly_deep_json_is_a_protocol_error_in_every_provider(provider, register):
    register()
    with pytest.raises(ProtocolError, match="nested too deeply|not JSON|malformed|expected a JSON body"):
        provider.create(None, MESSAGES_RU, max_retries=0)


@responses.activate
def test_retry_provider_falls_back_after_deep_json():
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=f"data: {DEEP}\n\n")
    responses.post(GPROCHAT_URL, body="fine")
    stream = RetryProvider([Chatgpt4Online, GPROChat]).create_completion(None, MESSAGES_RU, max_retries=0)
    assert "".join(stream) == "fine" and stream.metadata["provider"] == "GPROChat"


@responses.activate
def test_an_error_after_a_long_reply_reads_nothing_back_until_partial_is_asked():
    piece = "долгий ответ, a long reply 🚀 " * 1000  # ~45 KB of UTF-8: one read each
    pieces = [piece.encode()] * 400  # ~18 MB of text, most of it spilled to the temporary file
    responses.post(GPROCHAT_URL, body=body(*pieces, error=ConnectionResetError(104, "reset")))
    stream = GPROChat.create_completion(None, MESSAGES_RU, max_retries=0)
    for _ in range(len(pieces)):
        next(stream)
    assert stream._view.reply.record.spill is not None  # most of the text is in the temporary file
    tracemalloc.start()
    try:
        with pytest.raises(StreamInterruptedError) as info:
            next(stream)  # the connection breaks here
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = sum(len(p) for p in pieces)
    assert peak < total / 10, f"the error path held {peak / 2**20:.1f} MiB"
    assert info.value.partial == piece * 400  # read now, exactly


# -- moved from the review-fix file: each names what used to go wrong ---------------------------


@responses.activate
def test_absurdly_nested_json_is_a_protocol_error_not_a_recursion_error():
    responses.post(FLOWGPT_URL, body=b"[" * 200_000 + b"\n")
    with pytest.raises(ProtocolError):
        FlowGpt.create(None, MESSAGES_RU)
    responses.post(YLOKH_URL, body=b"data: " + b"[" * 200_000 + b"\n\n", content_type="text/event-stream")
    with pytest.raises(ProtocolError):
        Ylokh.create(None, MESSAGES_RU)


def deep(n):
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    ("provider", "register", "kwargs"),
    [
        (Ylokh, lambda: responses.post(YLOKH_URL, body='data: {"choices":[{"index":[0],"delta":{"content":"x"}}]}\n\n', content_type="text/event-stream"), {}),
        (Ylokh, lambda: responses.post(YLOKH_URL, body='data: {"error": %s}\n\n' % deep(500), content_type="text/event-stream"), {"api_key": "sk-secret-1234"}),
        (Ylokh, lambda: responses.post(YLOKH_URL, body="event: error\ndata: %s\n\n" % deep(500), content_type="text/event-stream"), {"api_key": "sk-secret-1234"}),
        (Ylokh, lambda: responses.post(YLOKH_URL, body='event: \x00llmproviders-raw-event\ndata: x\n\n', content_type="text/event-stream"), {}),
        (Chatgpt4Online, lambda: (responses.post(NONCE_URL, json={"restNonce": "n"}), responses.post(SUBMIT_URL, body='data: {"type":"error","data":%s}\n\n' % deep(990))), {}),
        (Chatgpt4Online, lambda: (responses.post(NONCE_URL, json={"restNonce": "n"}), responses.post(SUBMIT_URL, body='data: {"type":"live","data":"Hi"}\n\ndata: {"type":"end","data":%s}\n\n' % deep(990))), {}),
        (FlowGpt, lambda: responses.post(FLOWGPT_URL, body='{"event":"text","data":%s}\n' % deep(990)), {}),
    ],
    ids=["index-a-list", "deep-error-with-key", "deep-error-event-with-key", "the-raw-event-placeholder-name",
         "c4o-deep-error", "c4o-deep-end", "flowgpt-deep-data"],
)
@responses.activate
def test_odd_frames_are_typed_errors_never_bare_ones(provider, register, kwargs):
    """(review) A list as a choice's index, deep error payloads (redacted, printed),
    an event named like an internal marker: each a library error (or, for the marker,
    no error at all: a name is just a name)."""
    register()
    try:
        provider.create(None, MESSAGES_RU, max_retries=0, **kwargs)
    except LLMProvidersError:
        pass


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 10**400}, {"max_tokens": 10**400}, {"deadline": 10**400}, {"timeout": 10**400}],
)
def test_huge_integers_are_refused_before_any_io_not_overflow_errors(kwargs):
    with pytest.raises(InvalidArgumentError):
        Ylokh.create_completion(None, MESSAGES_RU, **kwargs)
