"""Socket-level tests run against the embedded emulator on loopback.

Every test here has a timeout (pytest-timeout), and every client call passes a short
``timeout`` of its own, so a bug shows up as a failure, never as a hung suite.
"""

import pytest

from llmproviders import Chatgpt4Online, FlowGpt, GPROChat, Ylokh
from llmproviders.testing import (
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_PATH,
    GPROCHAT_PATH,
    YLOKH_PATH,
)

# provider, model, the path its reply comes from
PROVIDERS = [
    pytest.param(FlowGpt, "gpt-3.5-turbo", FLOWGPT_PATH, id="FlowGpt"),
    pytest.param(GPROChat, "gemini-1.5-pro", GPROCHAT_PATH, id="GPROChat"),
    pytest.param(Chatgpt4Online, "gpt-4", CHATGPT4ONLINE_SUBMIT_PATH, id="Chatgpt4Online"),
    pytest.param(Ylokh, "gpt-3.5-turbo", YLOKH_PATH, id="Ylokh"),
]
FRAMINGS = ["chunked", "close"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(30))


@pytest.fixture
def emulator(llm_emulator):
    """The plugin's emulator (started before, stopped after each test)."""
    return llm_emulator
