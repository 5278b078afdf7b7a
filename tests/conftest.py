"""Suite-wide fixtures."""

import pytest

from llmproviders import _http


@pytest.fixture(autouse=True, scope="session")
def _close_pooled_connections():
    """Pooled keep-alive connections are closed once the suite is done."""
    yield
    _http.close_sessions()
