"""Suite-wide fixtures."""

import pytest

from llmproviders import _http

# Our own pytest plugin provides the `llm_emulator` fixture (dogfooded by tests/socket).
pytest_plugins = ["llmproviders.testing.pytest_plugin"]


@pytest.fixture(autouse=True, scope="session")
def _close_pooled_connections():
    """Pooled keep-alive connections are closed once the suite is done."""
    yield
    _http.close_sessions()
