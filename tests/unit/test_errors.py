"""Upstream failures become typed errors of one hierarchy, with context and causes."""

import email.utils
import gc
import json
import logging
import time

import pytest
import requests
import responses
import urllib3

from llmproviders import (
    AuthenticationError,
    CloudflareError,
    FlowGpt,
    GPROChat,
    LLMProvidersError,
    ProtocolError,
    RateLimitError,
    RequestTimeoutError,
    ResponseStatusError,
    StreamInterruptedError,
    TransportError,
)
from tests.helpers import MESSAGES_RU, body

URL = "https://gprochat.com/api/generate"
CHALLENGE = (
    "<!DOCTYPE html><html lang=en><head><title>Just a moment...</title></head><body>"
    "<script src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1'></script>"
    "Checking your browser</body></html>"
)


def fail(**kwargs):
    responses.post(URL, **kwargs)
    with pytest.raises(LLMProvidersError) as info:
        GPROChat.create(None, MESSAGES_RU)
    return info.value


@responses.activate
def test_status_error_carries_code_and_json_message_excerpt():
    error = fail(status=500, json={"error": {"message": "upstream exploded", "type": "server_error"}})
    assert type(error) is ResponseStatusError
    assert error.status_code == 500 and error.body == "upstream exploded"
    assert "HTTP 500" in str(error) and "upstream exploded" in str(error) and "GPROChat" in str(error)
    assert error.provider == "GPROChat" and error.url == URL


@responses.activate
def test_html_error_page_is_summarised_by_its_title():
    page = "<html><head><title>502 Bad Gateway</title><style>h1{}</style></head><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    error = fail(status=502, body=page, content_type="text/html")
    assert type(error) is ResponseStatusError and error.status_code == 502
    assert error.body.startswith("502 Bad Gateway") and "nginx" in error.body and "<" not in error.body


@responses.activate
def test_long_bodies_are_shortened():
    error = fail(status=503, body="x" * 100_000)
    assert len(error.body) <= 300 and len(str(error)) < 500


@pytest.mark.parametrize("headers", [{"cf-mitigated": "challenge"}, {"Server": "cloudflare"}])
@responses.activate
def test_cloudflare_challenge_is_recognised(headers):
    error = fail(status=403, body=CHALLENGE, content_type="text/html", headers=headers)
    assert isinstance(error, CloudflareError) and isinstance(error, ResponseStatusError)
    assert error.status_code == 403 and "Cloudflare" in str(error) and "proxy" in str(error)


@responses.activate
def test_cloudflare_challenge_with_status_200_is_recognised_too():
    error = fail(status=200, body=CHALLENGE, content_type="text/html", headers={"Server": "cloudflare"})
    assert isinstance(error, CloudflareError)


@responses.activate
def test_html_with_status_200_is_a_protocol_error():
    error = fail(status=200, body="<html><title>Maintenance</title></html>", content_type="text/html")
    assert isinstance(error, ProtocolError) and "Maintenance" in str(error)


@responses.activate
def test_rate_limit_with_retry_after_seconds_and_date():
    error = fail(status=429, json={"error": "slow down"}, headers={"Retry-After": "7"})
    assert isinstance(error, RateLimitError) and error.retry_after == 7.0 and error.status_code == 429
    assert "retry after 7 s" in str(error) and "slow down" in str(error)
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = fail(status=429, body="", headers={"Retry-After": when})
    assert 25 <= error.retry_after <= 31
    error = fail(status=429, body="")
    assert error.retry_after is None


@responses.activate
def test_401_is_an_authentication_error():
    assert isinstance(fail(status=401, body="invalid sign"), AuthenticationError)


@pytest.mark.parametrize(
    "exc, kind, fragment",
    [
        (requests.exceptions.ConnectionError("refused"), TransportError, "could not reach gprochat.com"),
        (requests.exceptions.ConnectTimeout("slow"), RequestTimeoutError, "connect timeout"),
        (requests.exceptions.ReadTimeout("slow"), RequestTimeoutError, "read timeout"),
        (requests.exceptions.SSLError("bad cert"), TransportError, "TLS"),
        (requests.exceptions.ProxyError("proxy down"), TransportError, "proxy"),
    ],
)
@responses.activate
def test_transport_errors_before_the_response(exc, kind, fragment):
    error = fail(body=exc)
    assert type(error) is kind and fragment in str(error)
    assert error.__cause__ is exc


@responses.activate
def test_connection_reset_mid_stream_keeps_partial_and_cause():
    reset = ConnectionResetError(104, "Connection reset by peer")
    responses.post(URL, body=body("Hel", "lo ", "wor", error=reset))
    stream = GPROChat.create_completion(None, MESSAGES_RU)
    received = []
    with pytest.raises(StreamInterruptedError) as info:
        for delta in stream:
            received.append(delta)
    error = info.value
    assert received == ["Hel", "lo ", "wor"]
    assert error.partial == "Hello wor" == stream.text
    assert "connection broke" in str(error) and "Connection reset by peer" in str(error)
    assert isinstance(error.__cause__, urllib3.exceptions.ProtocolError)
    assert stream.closed


@responses.activate
def test_read_timeout_mid_stream_is_an_interruption():
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out.")
    responses.post(URL, body=body("partial", error=timeout))
    with pytest.raises(StreamInterruptedError, match="read timeout") as info:
        GPROChat.create(None, MESSAGES_RU, timeout=(1, 5))
    assert info.value.partial == "partial" and "5 s" in str(info.value)


@responses.activate
def test_breaking_out_closing_and_errors_close_the_response():
    bodies = [body("a", "b", "c") for _ in range(4)]
    for b in bodies:
        responses.post(URL, body=b)
    for delta in GPROChat.create_completion(None, MESSAGES_RU):
        break
    gc.collect()  # a dropped stream is closed by the garbage collector
    assert bodies[0].closed
    stream = GPROChat.create_completion(None, MESSAGES_RU)
    next(stream)
    stream.close()
    assert bodies[1].closed and stream.closed
    stream.close()  # idempotent
    with GPROChat.create_completion(None, MESSAGES_RU) as stream:
        next(stream)
    assert bodies[2].closed
    with pytest.raises(RuntimeError):
        with GPROChat.create_completion(None, MESSAGES_RU) as stream:
            next(stream)
            raise RuntimeError("caller's own error")
    assert bodies[3].closed


def test_no_request_is_sent_until_iteration_starts():
    with responses.RequestsMock() as mock:
        stream = GPROChat.create_completion(None, MESSAGES_RU)
        assert len(mock.calls) == 0
        stream.close()


def test_credentials_never_appear_in_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="llmproviders")
    proxy = "http://alice:s3cr3t-pass@127.0.0.1:9"  # nothing listens on port 9
    with pytest.raises(TransportError) as info:
        FlowGpt.create(None, MESSAGES_RU, proxy=proxy, timeout=5, base_url="http://bob:hunter2@127.0.0.1:9/?key=k3y")
    text = str(info.value) + repr(info.value) + (info.value.url or "") + caplog.text
    for secret in ("s3cr3t-pass", "alice", "hunter2", "k3y", "x-signature"):
        assert secret not in text
    assert "127.0.0.1" in text


@responses.activate
def test_debug_log_names_the_request_but_not_its_headers(caplog):
    caplog.set_level(logging.DEBUG, logger="llmproviders")
    responses.post("https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous", body=json.dumps({"event": "text", "data": "x"}))
    FlowGpt.create(None, MESSAGES_RU)
    assert "POST https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous" in caplog.text
    signature = responses.calls[0].request.headers["x-signature"]
    assert signature not in caplog.text and "Bearer" not in caplog.text
    assert all(record.name.startswith("llmproviders") for record in caplog.records)


@responses.activate
def test_partial_is_exact_for_replies_larger_than_what_is_kept_in_memory(monkeypatch):
    from llmproviders import _provider, _reply

    monkeypatch.setattr(_reply, "SPILL_AFTER", 10)
    monkeypatch.setattr(_provider, "JOIN_EVERY", 2)
    pieces = ["Привет ", "мир 👋 ", "x" * 25, "ж" * 7, "end"]
    responses.post(URL, body=body(*pieces, error=ConnectionResetError(104, "reset")))
    stream = GPROChat.create_completion(None, MESSAGES_RU, max_retries=0)
    received = []
    with pytest.raises(StreamInterruptedError) as info:
        for delta in stream:
            received.append(delta)
    assert stream._view.reply.record.spill is not None  # most of it went to the temporary file
    assert info.value.partial == "".join(received) == "".join(pieces) == stream.text
    stream.close()
    assert stream.text == "".join(pieces)  # still readable after close
    spill = stream._view.reply.record.spill
    del stream, info  # the error's traceback refers to the stream's record too
    gc.collect()
    assert spill.closed  # released with the last reference to the stream's record


@responses.activate
def test_text_stays_available_after_the_end_until_close(monkeypatch):
    from llmproviders import _provider, _reply

    monkeypatch.setattr(_reply, "SPILL_AFTER", 4)
    monkeypatch.setattr(_provider, "JOIN_EVERY", 1)
    responses.post(URL, body=body("abc", "defgh", "ij"))
    stream = GPROChat.create_completion(None, MESSAGES_RU)
    assert list(stream) == ["abc", "defgh", "ij"] and stream.text == "abcdefghij"
    del stream
    gc.collect()  # the temporary file is closed with the stream (ResourceWarning is an error here)


# -- moved from the review-fix file: each names what used to go wrong ---------------------------


@responses.activate
def test_huge_html_error_page_is_summarised_quickly():
    responses.post("https://gprochat.com/api/generate", status=502, body="<script" * 9000, content_type="text/html")
    started = time.monotonic()
    with pytest.raises(Exception):
        GPROChat.create(None, MESSAGES_RU, max_retries=0)
    assert time.monotonic() - started < 0.5
