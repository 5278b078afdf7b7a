"""Property-based tests of the three framing decoders (hypothesis).

1. Any re-chunking of a valid byte stream yields the same text.
2. Arbitrary bytes yield text or a StreamError (ProtocolError for garbage,
   StreamInterruptedError when the bytes stop inside a frame), never another exception.
"""

import json

import responses
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmproviders import Chatgpt4Online, FlowGpt, GPROChat, StreamError, Ylokh
from llmproviders._framing import iter_ndjson, iter_sse, iter_text
from tests.helpers import MESSAGES_RU, body

texts = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=12)
cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)


def rechunk(data: bytes, cuts) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return [p for p in pieces if p] or [b""]


def ndjson_stream(parts):
    lines = [json.dumps({"event": "text", "data": p}, ensure_ascii=False) for p in parts]
    return ("\n".join(lines) + "\n").encode()


def sse_stream(parts, newline="\n"):
    events = [f"data: {json.dumps({'t': p}, ensure_ascii=False)}{newline}{newline}" for p in parts]
    return "".join(events).encode()


@given(texts, cut_points)
@settings(max_examples=300)
def test_ndjson_rechunking_is_invisible(parts, cuts):
    chunks = rechunk(ndjson_stream(parts), cuts)
    assert [o["data"] for o in iter_ndjson(iter(chunks), provider="P")] == parts


@given(texts, cut_points)
@example(["\ufeff"], [])  # found by hypothesis: the leading BOM is dropped, as documented
@example(["\ufeffa", "\ufeff"], [1, 2, 4])  # only the leading one, wherever the cuts fall
@settings(max_examples=300)
def test_text_rechunking_is_invisible(parts, cuts):
    text = "".join(parts)
    data = text.encode()
    expected = text[1:] if text.startswith("\ufeff") else text  # iter_text drops a leading BOM
    assert "".join(iter_text(iter(rechunk(data, cuts)), provider="P")) == expected


@given(texts, cut_points, st.sampled_from(["\n", "\r\n", "\r"]))
@settings(max_examples=300)
def test_sse_rechunking_is_invisible(parts, cuts, newline):
    chunks = rechunk(sse_stream(parts, newline), cuts)
    assert [json.loads(d)["t"] for d in iter_sse(iter(chunks), provider="P")] == parts


garbage = st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"\r\n", b"data: ", b"{", b"\xd0", b"\n\n", b"[DONE]"]), max_size=12)


def run(provider, pieces, url, **mock):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        if provider is Chatgpt4Online:
            rsps.post("https://chatgpt4online.org/wp-json/mwai/v1/start_session", json={"restNonce": "n"})
        rsps.post(url, body=body(*pieces), **mock)
        try:
            text = "".join(provider.create_completion(None, MESSAGES_RU, max_retries=0))
        except StreamError as error:  # the only kind of error garbage may cause
            assert isinstance(error.partial, str)
            return None
        assert isinstance(text, str)
        return text


SLOW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(garbage)
@SLOW
def test_flowgpt_garbage_gives_text_or_stream_error(pieces):
    run(FlowGpt, pieces, "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous")


@given(garbage)
@SLOW
def test_gprochat_garbage_gives_text_or_stream_error(pieces):
    run(GPROChat, pieces, "https://gprochat.com/api/generate")


@given(garbage)
@SLOW
def test_chatgpt4online_garbage_gives_text_or_stream_error(pieces):
    run(Chatgpt4Online, pieces, "https://chatgpt4online.org/wp-json/mwai-ui/v1/chats/submit")


@given(garbage)
@SLOW
def test_ylokh_garbage_gives_text_or_stream_error(pieces):
    run(Ylokh, pieces, "https://chatapi.ylokh.xyz/v1/chat/completions", content_type="text/event-stream")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["event", "data", "type", "choices", "delta", "content", "error", "reply", "finish_reason"]), inner, max_size=4),
    max_leaves=12,
)


@given(st.lists(json_values, min_size=1, max_size=5))
@SLOW
def test_well_formed_json_of_the_wrong_shape_gives_text_or_stream_error(values):
    lines = b"".join(json.dumps(v).encode() + b"\n" for v in values)
    events = b"".join(b"data: " + json.dumps(v).encode() + b"\n\n" for v in values)
    run(FlowGpt, [lines], "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous")
    run(Chatgpt4Online, [events], "https://chatgpt4online.org/wp-json/mwai-ui/v1/chats/submit")
    run(Ylokh, [events], "https://chatapi.ylokh.xyz/v1/chat/completions", content_type="text/event-stream")
