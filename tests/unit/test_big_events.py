"""Big events: an SSE event over RAW_EVENT_SIZE is handed on without copies, a JSON
string field is decoded piecewise exactly as json.loads would, and Chatgpt4Online's
``end`` event (which repeats the whole reply) costs little more than its own bytes."""

import json
import tracemalloc

import pytest
import responses
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmproviders import Chatgpt4Online, ProtocolError, ReplyMismatchError
from llmproviders._framing import RAW_EVENT_SIZE, RawEvent, iter_sse, iter_sse_events
from llmproviders._jsonstream import JSONStreamError, string_field
from tests.helpers import MESSAGES_RU, body

NONCE_URL = "https://chatgpt4online.org/wp-json/mwai/v1/start_session"
SUBMIT_URL = "https://chatgpt4online.org/wp-json/mwai-ui/v1/chats/submit"


def pieces_of(data, size=65536):
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("space", [b" ", b""])
def test_a_big_one_line_event_is_a_raw_event_with_the_same_data(newline, space):
    payload = ("x" * RAW_EVENT_SIZE + "ж🚀").encode()
    data = b"data: small" + newline * 2 + b"data:" + space + payload + newline * 2 + b"data: after" + newline * 2
    for size in (65536, 65537, 4093):
        events = list(iter_sse_events(iter(pieces_of(data, size)), provider="P", max_frame=8 * RAW_EVENT_SIZE))
        assert [e.data for e in events] == ["small", payload.decode(), "after"]
        assert type(events[1]) is RawEvent and len(events[1]) == len(payload)
        assert b"".join(events[1].pieces()) == payload


def test_a_big_event_of_several_lines_takes_the_usual_path():
    data = b"data: " + b"y" * RAW_EVENT_SIZE + b"\ndata: z\n\n"
    (event,) = list(iter_sse(iter(pieces_of(data)), provider="P", max_frame=8 * RAW_EVENT_SIZE))
    assert event == "y" * RAW_EVENT_SIZE + "\nz"


def test_a_big_event_that_is_not_data_takes_the_usual_path():
    data = b": " + b"c" * RAW_EVENT_SIZE + b"\n\ndata: ok\n\n"
    assert list(iter_sse(iter(pieces_of(data)), provider="P", max_frame=8 * RAW_EVENT_SIZE)) == ["ok"]


# -- piecewise JSON ------------------------------------------------------------------------------

TRICKY = st.text(alphabet=st.sampled_from(list('\\"\n\t/aé一\U0001F680\u2028\x01 ')), max_size=60)


@settings(max_examples=300, deadline=None)
@given(TRICKY, st.lists(st.integers(0, 400), max_size=20), st.booleans(), st.booleans())
@example("\U0001F680" * 3, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], True, True)
def test_string_field_decodes_as_json_loads_whatever_the_cuts(text, cuts, binary, ascii_only):
    inner = json.dumps({"success": True, "reply": text, "images": None}, ensure_ascii=ascii_only)
    outer = json.dumps({"type": "end", "data": inner}, ensure_ascii=ascii_only)
    raw = outer.encode() if binary else outer
    cuts = sorted(c % (len(raw) + 1) for c in cuts)
    pieces = [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]
    fields = {}
    data = list(string_field(pieces, "data", fields))
    assert "".join(data) == inner and fields == {"type": "end"}
    assert "".join(string_field(data, "reply")) == text


@pytest.mark.parametrize(
    "text",
    ['{"type": "end"}', '{"data": 5}', '{"data": "abc', "[1, 2]", '{"data" "x"}', '{"data": "\\q"}', '{"a": 1 "data": "x"}'],
)
def test_string_field_refuses_what_is_not_such_an_object(text):
    with pytest.raises(JSONStreamError):
        list(string_field([text], "data"))


# -- Chatgpt4Online ------------------------------------------------------------------------------


def c4o_body(streamed, final):
    live = b"".join(b"data: " + json.dumps({"type": "live", "data": p}).encode() + b"\n\n" for p in streamed)
    end = b"data: " + json.dumps({"type": "end", "data": json.dumps({"success": True, "reply": final})}).encode() + b"\n\n"
    return live, end


@responses.activate
def test_a_big_end_event_costs_little_more_than_its_own_bytes():
    """A 24 MiB end event (mostly ASCII with one emoji: decoded the usual way, a str of 4
    bytes a character) must peak under 4x its size; it peaked at about 10x before."""
    head = ["Привет, ", "this is ", "the start "]
    final = "".join(head) + ("the rest of a long reply, " * 1_000_000)[:24_000_000] + " 🚀"
    live, end = c4o_body(head, final)
    chunks = pieces_of(live + end)
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=body(*chunks))
    received = 0
    tracemalloc.start()
    try:
        stream = Chatgpt4Online.create_completion(None, MESSAGES_RU, max_retries=0)
        for delta in stream:
            received += len(delta)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == len(final) and stream.finish_reason == "stop"
    assert stream.text == final  # exact, read back from the stream's record
    assert peak < 4 * len(end), f"peak {peak / 2**20:.0f} MiB for a {len(end) / 2**20:.0f} MiB event"


@responses.activate
def test_a_big_end_event_that_contradicts_the_streamed_text_is_a_mismatch():
    final = "Hello " + "z" * (2 * RAW_EVENT_SIZE)
    live, end = c4o_body(["Hallo "], final)
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=body(*pieces_of(live + end)))
    with pytest.raises(ReplyMismatchError) as info:
        list(Chatgpt4Online.create_completion(None, MESSAGES_RU, max_retries=0))
    assert info.value.partial == "Hallo " and info.value.reply == final


@responses.activate
def test_a_big_end_event_shorter_than_the_streamed_text_is_a_mismatch():
    streamed = ["a" * 1000] * 1100  # 1.1 M characters streamed
    final = "a" * (RAW_EVENT_SIZE + 10)
    live, end = c4o_body(streamed, final)
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=body(*pieces_of(live + end)))
    with pytest.raises(ReplyMismatchError) as info:
        list(Chatgpt4Online.create_completion(None, MESSAGES_RU, max_retries=0))
    assert info.value.reply == final and len(info.value.partial) == 1_100_000


@responses.activate
def test_a_malformed_big_end_event_is_a_protocol_error():
    end = b'data: {"type": "end", "data": "{\\"reply\\": \\"' + b"x" * (2 * RAW_EVENT_SIZE) + b'\\"}"\n\n'
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=body(*pieces_of(end)))
    with pytest.raises(ProtocolError, match="malformed end event"):
        list(Chatgpt4Online.create_completion(None, MESSAGES_RU, max_retries=0))


@pytest.mark.parametrize("prefix", [b"", b"id: 1\n", b"event: message\n", b": a comment\nretry: 5\n"])
@responses.activate
def test_a_big_end_event_with_other_fields_before_its_data_is_still_read_piecewise(prefix):
    """(review) An id: or event: line before the data line (legal SSE) sent the event down
    the whole-decode path, at 8-9x its size."""
    final = "Hi " + "x" * (12 * 1024 * 1024) + " 🚀"
    live, end = c4o_body(["Hi "], final)
    end = prefix + end
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=body(*pieces_of(live + end)))
    received = 0
    tracemalloc.start()
    try:
        for delta in Chatgpt4Online.create_completion(None, MESSAGES_RU, max_retries=0):
            received += len(delta)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == len(final)
    assert peak < 4 * len(end), f"peak {peak / 2**20:.0f} MiB for a {len(end) / 2**20:.0f} MiB event"


def test_fields_before_the_data_line_of_a_raw_event_are_read():
    data = b"event: end\nid: 7\nretry: 5\n: comment\ndata: " + b"y" * (RAW_EVENT_SIZE + 10) + b"\n\n"
    (event,) = list(iter_sse_events(iter(pieces_of(data)), provider="P", max_frame=8 * RAW_EVENT_SIZE))
    assert type(event) is RawEvent and (event.event, event.id, event.retry) == ("end", "7", "5")
    assert event.data == "y" * (RAW_EVENT_SIZE + 10)


@responses.activate
def test_a_big_end_event_whose_type_comes_after_its_data():
    final = "Hi " + "z" * (2 * RAW_EVENT_SIZE)
    live = b'data: {"type": "live", "data": "Hi "}\n\n'
    end = b'data: {"data": ' + json.dumps(json.dumps({"reply": final})).encode() + b', "type": "end"}\n\n'
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=body(*pieces_of(live + end)))
    stream = Chatgpt4Online.create_completion(None, MESSAGES_RU, max_retries=0)
    assert "".join(stream) == final and stream.finish_reason == "stop"


def test_small_fields_in_tiny_pieces_cost_linear_time():
    """(review) A 1 MB field before the reply, in 64-byte pieces, was decoded again on
    every piece: seconds of CPU, and a deadline could not cut it (the bytes are all in).
    Now a string is scanned once; 8 MB in 64-byte pieces is well under a second's work
    (quadratic, it would be many minutes)."""
    import time

    inner = json.dumps({"note": "n" * 8_000_000, "numbers": list(range(20_000)), "reply": "Hello"})
    raw = json.dumps({"type": "end", "data": inner}).encode()
    pieces = [raw[i : i + 64] for i in range(0, len(raw), 64)]
    started = time.process_time()
    fields = {}
    data = list(string_field(pieces, "data", fields))
    assert fields == {"type": "end"} and "".join(data) == inner
    assert "".join(string_field(data, "reply")) == "Hello"
    assert time.process_time() - started < 20
