"""``base_url`` against the emulator: a query stays on every request, after the path
(issue 11, item 12), and one ``LLMPROVIDERS_BASE_URL`` without a path serves every
provider, OpenAICompatible included (item 25)."""

import pytest

from llmproviders import Chatgpt4Online, FlowGpt, GPROChat, OpenAICompatible, Ylokh
from llmproviders.testing import (
    CHATGPT4ONLINE_SESSION_PATH,
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_PATH,
    GPROCHAT_PATH,
    OPENAI_MODELS,
    OPENAI_MODELS_PATH,
    YLOKH_PATH,
    reply_for,
)

MESSAGES = [{"role": "user", "content": "a query on the base URL"}]
PATHS = {
    FlowGpt: [FLOWGPT_PATH],
    GPROChat: [GPROCHAT_PATH],
    Chatgpt4Online: [CHATGPT4ONLINE_SESSION_PATH, CHATGPT4ONLINE_SUBMIT_PATH],
    Ylokh: [YLOKH_PATH],
    OpenAICompatible: [YLOKH_PATH],
}


def model_for(provider):
    return "gpt-4" if provider is OpenAICompatible else None


@pytest.mark.parametrize("provider", list(PATHS), ids=lambda p: p.__name__)
@pytest.mark.parametrize("suffix", ["?token=abc&region=eu", "/?token=abc&region=eu"])
def test_a_query_on_base_url_stays_after_the_path(emulator, provider, suffix):
    text = provider.create(model_for(provider), MESSAGES, base_url=emulator.base_url + suffix, timeout=5)
    assert text == reply_for(MESSAGES)
    assert [(r.path, r.query) for r in emulator.requests] == [(p, "token=abc&region=eu") for p in PATHS[provider]]


@pytest.mark.parametrize("provider", list(PATHS), ids=lambda p: p.__name__)
def test_one_base_url_without_a_path_serves_every_provider(emulator, monkeypatch, provider):
    monkeypatch.setenv("LLMPROVIDERS_BASE_URL", emulator.base_url)
    assert provider.create(model_for(provider), MESSAGES, timeout=5) == reply_for(MESSAGES)
    assert [r.path for r in emulator.requests] == PATHS[provider]


def test_openai_compatible_lists_models_under_v1_of_a_bare_base_url(emulator):
    assert OpenAICompatible.get_models(base_url=emulator.base_url, timeout=5) == list(OPENAI_MODELS)
    assert [r.path for r in emulator.requests] == [OPENAI_MODELS_PATH]


# -- proxies from the environment (issue 16: the sessions skip requests' scans only when none is set)


def test_a_proxy_named_by_the_environment_carries_the_request(monkeypatch):
    from .rawhttp import ScriptedServer, text_reply

    with ScriptedServer([[text_reply("через прокси")]]) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        text = GPROChat.create(None, MESSAGES, base_url="http://upstream.invalid:81", max_retries=0, timeout=5)
    assert text == "через прокси"
    assert proxy.seen[0].request_line.startswith("POST http://upstream.invalid:81/")


def test_no_proxy_from_the_environment_sends_it_direct(monkeypatch):
    from .rawhttp import ScriptedServer, text_reply

    with ScriptedServer([[text_reply("напрямую")]]) as server:
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        text = GPROChat.create(None, MESSAGES, base_url=server.base_url, max_retries=0, timeout=5)
    assert text == "напрямую"
    assert not server.seen[0].request_line.split()[1].startswith("http://")
