"""Framing readers, fed bytes split at every possible place."""

import time
import json

import pytest

from llmproviders import ProtocolError, StreamInterruptedError
from llmproviders._framing import iter_ndjson, iter_sse, iter_text

from tests.helpers import split_every

TEXT = "Привет, мир! 👋 Hello — «ok»"


def splits(data: bytes):
    """Every way to cut ``data`` in two, three-way cuts around the middle, and 1-byte pieces."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    middle = len(data) // 2
    for i in range(1, middle):
        yield [data[:i], data[i:middle], data[middle:]]
    yield split_every(data, 1)


def test_text_decoder_reassembles_characters_split_anywhere():
    data = TEXT.encode()
    for pieces in splits(data):
        assert "".join(iter_text(iter(pieces), provider="P")) == TEXT


def test_text_decoder_yields_each_piece_without_waiting_for_more():
    pieces = [p.encode() for p in ("Hel", "lo ", "мир")]
    reader = iter_text(iter(pieces), provider="P")
    assert [next(reader), next(reader), next(reader)] == ["Hel", "lo ", "мир"]


def test_text_decoder_rejects_invalid_utf8_and_flags_a_cut_character():
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        list(iter_text(iter([b"ok", b"\xff\xfe"]), provider="P"))
    # valid text in the same read as the bad bytes is delivered before the error
    reader = iter_text(iter([b"\xd0", "Ок ".encode()[1:] + b"\xff"]), provider="P")
    assert next(reader) == "Ок "
    with pytest.raises(ProtocolError):
        next(reader)
    with pytest.raises(StreamInterruptedError, match="middle of a UTF-8 character"):
        list(iter_text(iter([b"ok", "ж".encode()[:1]]), provider="P"))


def test_ndjson_split_anywhere():
    lines = [{"event": "text", "data": "При"}, {"event": "text", "data": "вет 👋"}, {"event": "done"}]
    data = ("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n").encode()
    for pieces in splits(data):
        assert list(iter_ndjson(iter(pieces), provider="P")) == lines


def test_ndjson_crlf_blank_lines_and_unterminated_last_line():
    data = b'\r\n{"a": 1}\r\n\r\n   \n{"a": 2}'
    assert list(iter_ndjson(iter([data]), provider="P")) == [{"a": 1}, {"a": 2}]


def test_ndjson_delivers_a_line_as_soon_as_its_newline_arrives():
    reader = iter_ndjson(iter([b'{"a": 1}\n{"a"', b': 2}\n']), provider="P")
    assert next(reader) == {"a": 1}
    assert next(reader) == {"a": 2}


def test_ndjson_malformed_line_is_a_protocol_error_showing_the_line():
    with pytest.raises(ProtocolError) as info:
        list(iter_ndjson(iter([b'{"a": 1}\n<html>Bad gateway</html>\n']), provider="FlowGpt"))
    assert "FlowGpt" in str(info.value) and "<html>Bad gateway" in str(info.value)
    assert info.value.frame == "<html>Bad gateway</html>"


def test_ndjson_body_cut_inside_a_line_is_an_interruption():
    with pytest.raises(StreamInterruptedError, match="middle of a line"):
        list(iter_ndjson(iter([b'{"a": 1}\n{"event": "te']), provider="P"))


def test_ndjson_line_size_is_capped():
    with pytest.raises(ProtocolError, match="larger than 100 bytes"):
        list(iter_ndjson(iter([b"x" * 60, b"x" * 60]), provider="P", max_frame=100))
    with pytest.raises(ProtocolError, match="larger than 100 bytes"):
        list(iter_ndjson(iter([b"{}\n" + b"x" * 101]), provider="P", max_frame=100))


SSE = 'data: {"t": "При"}\n\n: a comment\n\nevent: ping\ndata: 1\n\ndata: line one\ndata: line two\n\ndata:{"t": "👋"}\n\n'
SSE_EVENTS = ['{"t": "При"}', "1", "line one\nline two", '{"t": "👋"}']


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_sse_split_anywhere_with_any_line_ending(newline):
    data = SSE.replace("\n", newline).encode()
    for pieces in splits(data):
        assert list(iter_sse(iter(pieces), provider="P")) == SSE_EVENTS, pieces


def test_sse_mixed_line_endings_do_not_merge_events():
    # A "\n" line followed by a "\r\n" blank line: sseclient-py alone would merge these.
    data = b"data: a\n\r\ndata: b\r\n\ndata: c\n\n"
    assert list(iter_sse(iter([data]), provider="P")) == ["a", "b", "c"]


def test_sse_delivers_an_event_as_soon_as_its_blank_line_arrives():
    reader = iter_sse(iter([b"data: one\n", b"\n", b"data: two\n\n"]), provider="P")
    assert next(reader) == "one"
    assert next(reader) == "two"


def test_sse_body_cut_inside_an_event_is_an_interruption_not_a_partial_event():
    with pytest.raises(StreamInterruptedError, match="middle of an event"):
        list(iter_sse(iter([b"data: one\n\n", b'data: {"choices": [{"de']), provider="P"))
    # ending on a comment or whitespace is fine
    assert list(iter_sse(iter([b"data: one\n\n: bye\n"]), provider="P")) == ["one"]


def test_sse_invalid_utf8_decodes_to_replacement_characters_and_the_stream_goes_on():
    """WHATWG: the stream is decoded with UTF-8 decode (errors become U+FFFD)."""
    data = b"data: a\xff\xfeb\n\ndata: \xe2\x82\n\ndata: next\n\n"
    for pieces in splits(data):
        assert list(iter_sse(iter(pieces), provider="P")) == ["a\ufffd\ufffdb", "\ufffd", "next"], pieces


def test_sse_event_size_is_capped():
    with pytest.raises(ProtocolError, match="larger than 100 bytes"):
        list(iter_sse(iter([b"data: " + b"x" * 50, b"x" * 60]), provider="P", max_frame=100))
    many = [b"data: " + b"x" * 40 + b"\n\n"] * 10  # many small events are fine
    assert len(list(iter_sse(iter(many), provider="P", max_frame=100))) == 10


def test_sseclient_py_still_has_the_hooks_we_build_on():
    """We frame events ourselves and let sseclient-py parse their fields: its
    ``_read`` yields one event's bytes, which ``events()`` parses. A release that
    changes this must fail here, not in production."""
    import inspect

    from sseclient import SSEClient

    assert "_read" in vars(SSEClient) and "self._read()" in inspect.getsource(SSEClient.events)
    events = list(iter_sse(iter([b"event: x\nid: 7\nretry: 5\ndata: a\ndata: b\n\n: c\n\ndata: z\n\n"]), provider="P"))
    assert events == ["a\nb", "z"]


# -- moved from the review-fix file: each names what used to go wrong ---------------------------


def test_sse_byte_order_mark_does_not_eat_the_first_event():
    data = b"\xef\xbb\xbfdata: first\n\ndata: second\n\n"
    for cut in range(len(data)):
        assert list(iter_sse(iter([data[:cut], data[cut:]]), provider="P")) == ["first", "second"]
    assert list(iter_sse(iter([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]), provider="P")) == ["x"]


def test_text_byte_order_mark_is_dropped():
    assert "".join(iter_text(iter([b"\xef\xbb", b"\xbfhi"]), provider="P")) == "hi"


def test_cr_only_event_is_not_held_back_for_the_next_chunk():
    asked = []

    def chunks():
        yield b"data: a\r\r"
        asked.append("second chunk")
        yield b"data: b\r\r"

    reader = iter_sse(chunks(), provider="P")
    assert next(reader) == "a" and asked == []  # delivered before the next read
    assert list(reader) == ["b"]


def test_event_with_too_many_lines_is_refused_quickly():
    data = b"data: x\n" * 20_000 + b"\n"
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="more than 1000 lines"):
        list(iter_sse(iter([data]), provider="P"))
    assert time.monotonic() - started < 1.0


def test_event_with_too_many_lines_in_many_chunks_is_refused():
    with pytest.raises(ProtocolError, match="more than 1000 lines"):
        list(iter_sse(iter([b"data: x\n"] * 20_000 + [b"\n"]), provider="P"))


def test_a_big_event_of_many_lines_is_refused_before_quadratic_parsing():
    line = b"data: " + b"y" * 6000 + b"\n"
    data = line * 900 + b"\n"  # 5.4 MB in 900 lines: under both caps, but lines x bytes is not
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="a big event must be a few lines"):
        list(iter_sse(iter(chunks), provider="P", max_frame=256 * 1024 * 1024))
    assert time.monotonic() - started < 1.0


def test_a_big_event_is_buffered_in_linear_time():
    payload = b"x" * (20 * 1024 * 1024)
    data = b"data: " + payload + b"\n\n"
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    started = time.monotonic()
    (event,) = list(iter_sse(iter(chunks), provider="P", max_frame=64 * 1024 * 1024))
    assert len(event) == len(payload)
    assert time.monotonic() - started < 2.0  # fed to sseclient-py piecewise this took minutes


# -- the one-data-line short way agrees with sseclient-py's field parsing (issue 16) ---------------


def _sseclient_reading(body: bytes):
    """(event, data, id) of each event sseclient-py alone dispatches from LF-only ``body``."""
    from sseclient import SSEClient

    return [(e.event, e.data, e.id) for e in SSEClient(iter([body])).events()]


def _our_reading(body: bytes):
    from llmproviders._framing import iter_sse_events

    return [(e.event, e.data, e.id) for e in iter_sse_events(iter([body]), provider="P")]


@pytest.mark.parametrize(
    "event",
    [b"data: x", b"data:x", b"data:  x", b"data:", b"data: ", b"data: {\"a\": 1}", b"data: \xd0\x9f\xf0\x9f\x91\x8b",
     b"data: a:b: c", b"data", b"data x", b"datum: x", b": c", b"data: a\ndata: b", b"event: e\ndata: x",
     b"data: x\nid: 3", b"id: 4\ndata: y", b"data: x\n: trailing comment", b"DATA: x", b" data: x", b"data:\tx"],
)
def test_a_single_line_event_reads_as_sseclient_py_reads_it(event):
    body = event + b"\n\n" + b"data: after\n\n"
    assert _our_reading(body) == _sseclient_reading(body)


def test_single_line_events_agree_with_sseclient_py_for_any_text():
    from hypothesis import given, settings, strategies as st  # (the test extra has it)

    line = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["data:", "data: ", "data:  ", ": ", "event: ", "id: "]), line), min_size=1, max_size=6))
    def check(fields):
        body = b"".join((name + value).encode() + b"\n\n" for name, value in fields)
        assert _our_reading(body) == _sseclient_reading(body)

    check()


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_provider_frames_are_the_events_with_plain_ones_as_their_data(newline):
    """``iter_sse_frames`` (the ``sse`` framing providers read) gives the usual event as
    a ``str`` and any event with another field as the event, split anywhere alike."""
    from llmproviders._framing import iter_sse_frames

    data = SSE.replace("\n", newline).encode()
    for pieces in splits(data):
        frames = list(iter_sse_frames(iter(pieces), provider="P"))
        assert [f if isinstance(f, str) else f.data for f in frames] == SSE_EVENTS, pieces
        assert [type(f).__name__ for f in frames] == ["str", "Event", "Event", "str"], pieces
        assert frames[1].event == "ping"
