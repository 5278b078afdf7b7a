"""pytest plugin: the ``llm_emulator`` fixture.

Enable it with ``pytest_plugins = ["llmproviders.testing.pytest_plugin"]`` in the
root ``conftest.py`` (or ``-p llmproviders.testing.pytest_plugin``).

Example usage::

    def test_ylokh(llm_emulator):
        plan = llm_emulator.plan(path="/v1/chat/completions", malformed=True)
        ...  # point a client at llm_emulator.base_url
        assert plan.wait() == "complete"
"""

from __future__ import annotations

from typing import Iterator

import pytest

from ._emulator import Emulator

__all__ = ["llm_emulator"]


@pytest.fixture
def llm_emulator() -> Iterator[Emulator]:
    """A started :class:`~llmproviders.testing.Emulator`, stopped after the test."""
    with Emulator() as emulator:
        yield emulator
