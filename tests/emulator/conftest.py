"""Fixtures of the emulator's tests: a started emulator and a requests session."""

from __future__ import annotations

from typing import Iterator

import pytest
import requests

from llmproviders.testing import Emulator


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def emu(llm_emulator: Emulator) -> Emulator:
    return llm_emulator
