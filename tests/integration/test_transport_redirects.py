"""A redirect to another origin is not followed (issue 11, item 13).

``extra_headers`` (API keys), FlowGpt's signature headers and Chatgpt4Online's nonce
used to follow a 302/307 to another host, and a 307 re-posted the prompt there. Now a
redirect to another scheme, host or port is a :class:`RedirectError` naming the
(redacted) target, never retried, and nothing reaches the other origin. A redirect
within the origin is followed, a few times at most.
"""

import pytest

from llmproviders import Chatgpt4Online, FlowGpt, GPROChat, OpenAICompatible, RedirectError, ResponseStatusError, Ylokh
from llmproviders import _http
from llmproviders.testing import reply_for

from .rawhttp import ScriptedServer, text_reply

MESSAGES = [{"role": "user", "content": "where does this go?"}]
KEY = "sk-S3CRET-KEY-0123456789"


@pytest.fixture(autouse=True)
def _fresh_pool():
    _http.close_sessions()
    yield
    _http.close_sessions()


def redirect(status: int, location: str) -> bytes:
    return b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location.encode())


def call(provider, base_url, **kwargs):
    if provider is OpenAICompatible:
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("extra_headers", {"X-Api-Key": KEY})
    return provider.create(None if provider is not OpenAICompatible else "m", MESSAGES, base_url=base_url, timeout=5, **kwargs)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("provider", [OpenAICompatible, FlowGpt, GPROChat, Ylokh, Chatgpt4Online])
def test_a_redirect_to_another_port_is_refused_and_nothing_reaches_it(provider, status):
    with ScriptedServer([]) as other:
        target = f"{other.base_url}/collect?token={KEY}"
        answers = [[redirect(status, target)]]
        if provider is Chatgpt4Online:  # its handshake comes first: let it through, redirect the prompt
            answers.insert(0, [text_reply('{"restNonce": "n0nce-1234"}', content_type="application/json")])
        with ScriptedServer(answers) as server:
            with pytest.raises(RedirectError) as info:
                call(provider, server.base_url)
        assert other.connections == 0  # no byte went there: no key, no signature, no prompt
        assert len(server.seen) == len(answers)  # and a RedirectError is not retried
    error = info.value
    assert isinstance(error, ResponseStatusError) and error.status_code == status
    assert error.location == f"{other.base_url}/collect?token=[redacted]"
    assert other.base_url in str(error) and "another origin" in str(error)
    for text in (str(error), repr(error), error.location, str(error.headers)):
        assert KEY not in text


@pytest.mark.parametrize(
    "target",
    [
        "http://localhost:{port}/v1/chat/completions",  # another host name (same machine)
        "https://127.0.0.1:{port}/v1/chat/completions",  # another scheme
        "//localhost:{port}/v1/chat/completions",  # scheme-relative, another host
        "http://[::1:{port}/broken",  # unparseable
    ],
)
def test_a_redirect_to_another_host_or_scheme_is_refused(target):
    with ScriptedServer([]) as server:
        server.answers.append([redirect(307, target.format(port=server.port))])
        with pytest.raises(RedirectError):
            call(OpenAICompatible, server.base_url + "/v1")
    assert len(server.seen) == 1  # the target on this very server was not asked either


def test_get_models_does_not_follow_a_redirect_to_another_origin():
    with ScriptedServer([]) as other, ScriptedServer([[redirect(302, other.base_url + "/v1/models")]]) as server:
        with pytest.raises(RedirectError):
            OpenAICompatible.get_models(base_url=server.base_url + "/v1", api_key=KEY, timeout=5)
    assert other.connections == 0


def test_a_same_origin_redirect_is_followed():
    with ScriptedServer([[redirect(307, "/v1/chat/completions")], [_ylokh_reply()]]) as server:
        assert call(Ylokh, server.base_url) == "followed"
    assert [seen.request_line for seen in server.seen] == ["POST /v1/chat/completions HTTP/1.1"] * 2
    assert server.seen[1].body == server.seen[0].body  # a 307 re-posts the body, to the same origin only
    assert [seen.connection for seen in server.seen] == [0, 0]  # the redirect's empty body was read: reused


def test_same_origin_redirects_that_never_end_are_a_redirect_error():
    loop = [redirect(302, "/v1/chat/completions")]
    with ScriptedServer([loop] * 20) as server:
        with pytest.raises(RedirectError, match="kept redirecting"):
            call(Ylokh, server.base_url, max_retries=0)
    assert len(server.seen) == 6  # the request and 5 redirects


def test_a_same_origin_redirect_with_a_huge_body_costs_the_connection_not_memory():
    body = b"x" * 300_000
    moved = b"HTTP/1.1 307 Moved\r\nLocation: /v1/chat/completions\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with ScriptedServer([[moved], [_ylokh_reply()]]) as server:
        assert call(Ylokh, server.base_url) == "followed"
    assert [seen.connection for seen in server.seen] == [0, 1]  # the rest of the body was not read


def _ylokh_reply() -> bytes:
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "followed"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(event), event)


def test_the_emulator_still_answers_without_redirects(emulator):
    assert call(Ylokh, emulator.base_url) == reply_for(MESSAGES)
