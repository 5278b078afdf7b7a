"""Suite-wide fixtures."""

import pytest

from llmproviders import Provider, _http
from llmproviders._retry import RetryPolicy

# Our own pytest plugin provides the `llm_emulator` fixture (dogfooded by tests/integration).
pytest_plugins = ["llmproviders.testing.pytest_plugin"]


@pytest.fixture(autouse=True, scope="session")
def _close_pooled_connections():
    """Pooled keep-alive connections are closed once the suite is done."""
    yield
    _http.close_sessions()


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    """Keep the default number of retries, but wait milliseconds between them."""
    monkeypatch.setattr(Provider, "retry_policy", RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_retry_after=0.05))
