"""Our sessions skip requests' two scans of the whole environment per request when no
``*_proxy`` variable is set (issue 16, per-request cost). The settings they send with
must be exactly requests' own, whatever the environment says."""

import os

import pytest
import requests
import requests.utils

from llmproviders._http.session import _new_session

URLS = ["http://127.0.0.1:8080/v1/chat", "https://api.example.com/v1", "http://localhost/x"]
ENVIRONMENTS = [
    {},
    {"HTTP_PROXY": "http://proxy.test:3128"},
    {"https_proxy": "http://proxy.test:3128", "no_proxy": "example.com"},
    {"ALL_PROXY": "socks5h://proxy.test:1080", "NO_PROXY": "127.0.0.1,localhost"},
    {"Http_Proxy": "http://mixed.case:1"},  # getproxies_environment reads any case
    {"http_proxy": "", "HTTP_PROXY": "http://upper.test:1"},  # an empty lowercase one wins
    {"NO_PROXY": "*"},
    {"REQUESTS_CA_BUNDLE": "/etc/ssl/ours.pem"},
    {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem", "https_proxy": "http://p.test:8"},
]
PROXY_VARIABLES = [name for name in os.environ if name[-6:].lower() == "_proxy" or name.upper() in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")]


@pytest.fixture
def clean_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=lambda env: ",".join(env) or "nothing")
@pytest.mark.parametrize("proxies", [None, {}, {"https": "http://explicit.test:9"}, {"no_proxy": "127.0.0.1"}])
@pytest.mark.parametrize("verify", [True, None, False, "/mine.pem"])
def test_the_settings_are_requests_own(clean_environment, environment, proxies, verify):
    for name, value in environment.items():
        clean_environment.setenv(name, value)
    ours, theirs = _new_session(), requests.Session()
    try:
        for url in URLS:
            mine = ours.merge_environment_settings(url, dict(proxies) if proxies is not None else {}, True, verify, None)
            want = theirs.merge_environment_settings(url, dict(proxies) if proxies is not None else {}, True, verify, None)
            assert mine == want, (url, environment)
    finally:
        ours.close()
        theirs.close()


def test_the_short_cut_is_taken_only_where_the_environment_is_the_only_source(clean_environment):
    """On macOS and Windows ``getproxies`` asks the system too: requests' own path then."""
    calls = []

    def system_proxies():
        calls.append(1)
        return {"https": "http://system.test:8080"}

    clean_environment.setattr(requests.utils, "getproxies", system_proxies)
    session = _new_session()
    try:
        settings = session.merge_environment_settings("https://api.example.com/v1", {}, True, True, None)
    finally:
        session.close()
    assert calls and settings["proxies"]["https"] == "http://system.test:8080"


def test_trust_env_false_is_honoured(clean_environment):
    clean_environment.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    session = _new_session()
    session.trust_env = False
    try:
        assert session.merge_environment_settings("https://api.example.com", {}, True, True, None)["proxies"] == {}
    finally:
        session.close()
