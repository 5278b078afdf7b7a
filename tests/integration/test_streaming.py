"""Streaming behaviour of every provider against the emulator, in both framings."""

import gc
import threading

import pytest

from llmproviders import (
    CloudflareError,
    ProtocolError,
    RateLimitError,
    ReplyMismatchError,
    RequestTimeoutError,
    ResponseError,
    ResponseStatusError,
    StreamInterruptedError,
)
from llmproviders.testing import reply_for

from .conftest import FRAMINGS, PROVIDERS

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Привет, как дела? 👋"},
]
PIECES = ["Один ", "два, ", "three 🚀 ", "четыре"]
TIMEOUT = (5, 5)


def start(provider, model, emulator, **kwargs):
    """One attempt (these tests are about a single stream; retries: test_faults.py)."""
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("max_retries", 0)
    return provider.create_completion(model, MESSAGES, base_url=emulator.base_url, **kwargs)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_each_delta_arrives_before_the_server_sends_the_next(provider, model, path, framing, emulator):
    """The server holds piece i+1 until the test has received piece i: a client that
    buffered (for example until EOF on a close-delimited body) would never see piece i."""
    plan = emulator.plan(path=path, framing=framing, pieces=PIECES, step=True)
    with start(provider, model, emulator) as stream:
        for expected in PIECES:
            assert next(stream) == expected
            plan.advance()
        assert list(stream) == []
    assert plan.wait() == "complete"
    assert emulator.requests[-1].headers.get("transfer-encoding") is None  # a request header, sanity


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_full_reply_and_split_utf8(provider, model, path, framing, emulator):
    emulator.plan(path=path, framing=framing, split_utf8=True)
    assert "".join(start(provider, model, emulator)) == reply_for(MESSAGES)
    emulator.plan(path=path, framing=framing)
    assert provider.create(model, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT) == reply_for(MESSAGES)


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_long_reply_in_many_pieces(provider, model, path, emulator):
    emulator.plan(path=path, long_reply=200_000)
    text = "".join(start(provider, model, emulator))
    assert len(text) == 200_000


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_disconnect_mid_stream_keeps_exactly_what_was_yielded(provider, model, path, emulator):
    emulator.plan(path=path, framing="chunked", pieces=PIECES, disconnect_after_events=2)
    stream = start(provider, model, emulator)
    received = []
    with pytest.raises(StreamInterruptedError) as info:
        for delta in stream:
            received.append(delta)
    assert received == PIECES[:2]
    assert info.value.partial == "".join(received) == stream.text
    assert info.value.provider == provider.__name__


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_disconnect_inside_a_frame_is_an_interruption(provider, model, path, emulator):
    pieces = ["a" * 40, "д" * 40]  # byte 41 is inside the body for every protocol
    emulator.plan(path=path, framing="chunked", pieces=pieces, disconnect_after_bytes=41)
    with pytest.raises(StreamInterruptedError) as info:
        list(start(provider, model, emulator))
    assert "".join(pieces).startswith(info.value.partial)


@pytest.mark.parametrize(
    "provider, model, path, detected",
    [
        (*p.values, d)
        for p, d in zip(PROVIDERS, [False, False, True, True])  # only SSE protocols have an end marker
    ],
)
def test_close_delimited_cut_between_frames(provider, model, path, detected, emulator):
    """On a close-delimited body a cut between frames looks like the end of the body.
    Protocols with an end marker still notice; FlowGpt and GPROChat cannot (documented)."""
    emulator.plan(path=path, framing="close", pieces=PIECES, disconnect_after_events=2)
    stream = start(provider, model, emulator)
    if detected:
        with pytest.raises(StreamInterruptedError) as info:
            list(stream)
        assert info.value.partial == "".join(PIECES[:2])
    else:
        assert "".join(stream) == "".join(PIECES[:2])


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_malformed_frame_is_a_protocol_error(provider, model, path, framing, emulator):
    emulator.plan(path=path, framing=framing, pieces=PIECES, malformed=True)
    stream = start(provider, model, emulator)
    with pytest.raises(ProtocolError) as info:
        list(stream)
    assert info.value.partial == PIECES[0] and provider.__name__ in str(info.value)


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_status_faults_become_typed_errors(provider, model, path, emulator):
    emulator.plan(path=path, html_error=502)
    with pytest.raises(ResponseStatusError) as info:
        list(start(provider, model, emulator))
    assert info.value.status_code == 502 and "Bad Gateway" in str(info.value)

    emulator.plan(path=path, cloudflare=True)
    with pytest.raises(CloudflareError) as info:
        list(start(provider, model, emulator))
    assert info.value.status_code == 403

    emulator.plan(path=path, retry_after=3)
    with pytest.raises(RateLimitError) as info:
        list(start(provider, model, emulator))
    assert info.value.retry_after == 3 and info.value.status_code == 429

    emulator.plan(path=path, status=500, body={"error": {"message": "boom"}})
    with pytest.raises(ResponseStatusError, match="boom"):
        list(start(provider, model, emulator))


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_read_timeout_mid_stream(provider, model, path, emulator):
    plan = emulator.plan(path=path, pieces=PIECES, step=True)
    stream = start(provider, model, emulator, timeout=(5, 0.3))
    assert next(stream) == PIECES[0]
    with pytest.raises(StreamInterruptedError, match="read timeout") as info:
        next(stream)  # the server holds the next piece: silence past the read timeout
    assert info.value.partial == PIECES[0]
    plan.advance(10)


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_slow_headers_past_the_read_timeout(provider, model, path, emulator):
    emulator.plan(path=path, delay_headers=1.0)
    with pytest.raises(RequestTimeoutError, match="read timeout"):
        list(start(provider, model, emulator, timeout=(5, 0.2)))


@pytest.mark.parametrize("how", ["break", "close", "with", "exception"])
@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_leaving_early_closes_the_connection(provider, model, path, how, emulator):
    plan = emulator.plan(path=path, long_reply=100_000, pace=0.002)
    if how == "break":
        for _ in start(provider, model, emulator):
            break
        gc.collect()
    elif how == "close":
        stream = start(provider, model, emulator)
        next(stream)
        stream.close()
    elif how == "with":
        with start(provider, model, emulator) as stream:
            next(stream)
    else:
        with pytest.raises(KeyError):
            with start(provider, model, emulator) as stream:
                next(stream)
                raise KeyError("caller")
    assert plan.wait(10) == "client-disconnected"


def test_chatgpt4online_protocol_faults(emulator):
    from llmproviders import Chatgpt4Online
    from llmproviders.testing import CHATGPT4ONLINE_SUBMIT_PATH as submit

    emulator.plan(start_session_html=True)
    with pytest.raises(ResponseStatusError) as info:
        Chatgpt4Online.create(None, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT)
    assert info.value.status_code == 403
    assert [r.path for r in emulator.requests][-1].endswith("start_session")  # no submit without a nonce

    emulator.plan(path=submit, pieces=["Hello, ", "world"], end_mismatch="Goodbye")
    with pytest.raises(ReplyMismatchError) as info:
        list(Chatgpt4Online.create_completion(None, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT))
    assert info.value.partial == "Hello, world" and info.value.reply == "Goodbye"

    emulator.plan(path=submit, pieces=["Hel"], omit_trailer=True)
    with pytest.raises(StreamInterruptedError, match="'end' event"):
        Chatgpt4Online.create(None, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT, max_retries=0)


def test_ylokh_protocol_modes(emulator):
    from llmproviders import Ylokh
    from llmproviders.testing import YLOKH_PATH

    assert list(Ylokh.create_completion(None, MESSAGES, stream=False, base_url=emulator.base_url)) == [reply_for(MESSAGES)]
    assert emulator.requests[-1].json["stream"] is False
    emulator.plan(path=YLOKH_PATH, pieces=PIECES, stream_error={"message": "overloaded", "type": "server_error"})
    with pytest.raises(ResponseError, match="overloaded") as info:
        list(Ylokh.create_completion(None, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT))
    assert info.value.partial == PIECES[0]
    emulator.plan(path=YLOKH_PATH, omit_trailer=True)
    with pytest.raises(StreamInterruptedError):
        Ylokh.create(None, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT, max_retries=0)


def test_flowgpt_trailing_done_is_optional(emulator):
    from llmproviders import FlowGpt
    from llmproviders.testing import FLOWGPT_PATH

    emulator.plan(path=FLOWGPT_PATH, omit_trailer=True)
    assert FlowGpt.create(None, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT) == reply_for(MESSAGES)


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_seed_examples_sync_form(provider, model, path, emulator):
    """The seeds' example conversations, with the synchronous loop."""
    seeds = [
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Как дела?"}],
        [{"role": "user", "content": "Hello, how are you?"}],
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}],
        [{"role": "user", "content": "Привет, как дела?"}],
    ]
    for messages in seeds:
        out = []
        for message in provider.create_completion(model=model, messages=messages, base_url=emulator.base_url):
            out.append(message)
        assert "".join(out) == reply_for(messages)
        assert len(out) > 1  # streamed in pieces, not delivered whole


def test_many_threads_share_each_providers_session(emulator):
    from llmproviders import list_providers

    results = {}
    errors = []

    def run(index):
        provider = list_providers()[index % 4]
        messages = [{"role": "user", "content": f"вопрос {index}"}]
        try:
            results[index] = provider.create(None, messages, base_url=emulator.base_url, timeout=TIMEOUT)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    assert results == {i: reply_for([{"role": "user", "content": f"вопрос {i}"}]) for i in range(40)}


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_connections_are_reused_across_calls(provider, model, path, emulator, caplog):
    """A body read to its end (also after [DONE]/end, where the protocol stops early)
    returns its connection to the pool: three calls, one connection."""
    import logging

    from llmproviders import _http

    _http.close_sessions()
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    for _ in range(3):
        assert provider.create(model, MESSAGES, base_url=emulator.base_url, timeout=TIMEOUT) == reply_for(MESSAGES)
    new = [r for r in caplog.records if "Starting new" in r.getMessage()]
    dropped = [r for r in caplog.records if "Resetting dropped" in r.getMessage()]
    assert (len(new), len(dropped)) == (1, 0)
