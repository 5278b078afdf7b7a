"""Regressions for defects found in review: each test names what used to go wrong."""

import math
import time

import pytest
import responses

from llmproviders import FlowGpt, GPROChat, InvalidArgumentError, ModelNotSupportedError, ProtocolError, Ylokh
from llmproviders._framing import iter_sse, iter_text
from llmproviders._http import check_base_url, parse_retry_after, redact_url
from tests.helpers import MESSAGES_RU, body

FLOW = "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous"
YLOKH = "https://chatapi.ylokh.xyz/v1/chat/completions"


@responses.activate
def test_absurdly_nested_json_is_a_protocol_error_not_a_recursion_error():
    responses.post(FLOW, body=b"[" * 200_000 + b"\n")
    with pytest.raises(ProtocolError):
        FlowGpt.create(None, MESSAGES_RU)
    responses.post(YLOKH, body=b"data: " + b"[" * 200_000 + b"\n\n", content_type="text/event-stream")
    with pytest.raises(ProtocolError):
        Ylokh.create(None, MESSAGES_RU)


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


def test_base_url_errors_do_not_echo_credentials():
    with pytest.raises(InvalidArgumentError) as info:
        check_base_url("ftp://user:S3CRET@h/?key=S3CRET")
    assert "S3CRET" not in str(info.value) and "user" not in str(info.value)


def test_redact_url_keeps_ipv6_brackets_and_survives_bad_ports():
    assert redact_url("http://[::1]:8080/x?k=1") == "http://[::1]:8080/x"
    assert redact_url("http://h:99999/x") == "http://h/x"


def test_retry_after_edge_cases():
    assert parse_retry_after("1e999") is None
    assert parse_retry_after("nan") is None
    # "-0000" means "no zone given": HTTP dates are GMT, not local time
    when = time.strftime("%a, %d %b %Y %H:%M:%S -0000", time.gmtime(time.time() + 60))
    assert 55 <= parse_retry_after(when) <= 61


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


@responses.activate
def test_huge_html_error_page_is_summarised_quickly():
    responses.post("https://gprochat.com/api/generate", status=502, body="<script" * 9000, content_type="text/html")
    started = time.monotonic()
    with pytest.raises(Exception):
        GPROChat.create(None, MESSAGES_RU, max_retries=0)
    assert time.monotonic() - started < 0.5


@responses.activate
def test_crlf_split_between_chunks_in_sse_still_frames_events():
    responses.post(YLOKH, body=body(b'data: {"choices": [{"delta": {"content": "a"}}]}\r', b"\n\r", b"\ndata: [DONE]\r\n\r\n"), content_type="text/event-stream")
    assert Ylokh.create(None, MESSAGES_RU) == "a"


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


def test_rotating_proxies_do_not_keep_a_pool_each():
    from llmproviders import TransportError
    from llmproviders._http import MAX_PROXY_POOLS, session_for

    for port in range(20):
        with pytest.raises(TransportError):  # nothing listens there; connect is refused
            GPROChat.create(None, MESSAGES_RU, proxy=f"http://127.0.0.1:{port + 1}", max_retries=0, timeout=2)
    managers = session_for(GPROChat).get_adapter("https://gprochat.com").proxy_manager
    assert len(managers) <= MAX_PROXY_POOLS


@pytest.mark.parametrize("error", [None, False, "", {}])
@responses.activate
def test_an_empty_or_false_error_field_is_not_an_error(error):
    import json

    chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}], "error": error}
    responses.post(YLOKH, body=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n", content_type="text/event-stream")
    assert Ylokh.create(None, MESSAGES_RU) == "ok"


def test_a_big_event_is_buffered_in_linear_time():
    payload = b"x" * (20 * 1024 * 1024)
    data = b"data: " + payload + b"\n\n"
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    started = time.monotonic()
    (event,) = list(iter_sse(iter(chunks), provider="P", max_frame=64 * 1024 * 1024))
    assert len(event) == len(payload)
    assert time.monotonic() - started < 2.0  # fed to sseclient-py piecewise this took minutes


def test_frame_caps_are_per_provider():
    from llmproviders import Chatgpt4Online, FlowGpt
    from llmproviders._framing import MAX_FRAME

    assert FlowGpt.max_frame_size == MAX_FRAME == 8 * 1024 * 1024
    assert Chatgpt4Online.max_frame_size > 100 * 1024 * 1024  # its end event repeats the reply
