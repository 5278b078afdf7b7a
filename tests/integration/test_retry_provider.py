"""RetryProvider against the emulator: one deadline across all providers."""

import time

import pytest

from llmproviders import FlowGpt, GPROChat, RetryProvider, RetryProviderError, Ylokh
from llmproviders.testing import FLOWGPT_PATH, GPROCHAT_PATH, YLOKH_PATH

MESSAGES = [{"role": "user", "content": "hi"}]


def test_the_deadline_is_one_budget_across_every_provider(emulator):
    """Each provider answers 500 after 0.8 s, and each is retried: with deadline=2 the
    whole fallback must end near 2 s, not restart the clock per provider (about 7 s)."""
    for path in (FLOWGPT_PATH, GPROCHAT_PATH, YLOKH_PATH):
        emulator.plan(path=path, times=5, delay_headers=0.8, status=500)
    provider = RetryProvider([FlowGpt, GPROChat, Ylokh])
    started = time.monotonic()
    with pytest.raises(RetryProviderError) as info:
        provider.create(None, MESSAGES, base_url=emulator.base_url, deadline=2, timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.8, f"took {elapsed:.1f} s"
    assert "deadline" in str(info.value)
    assert len(emulator.requests) <= 3  # no provider got its full share of retries


def test_an_unusable_deadline_is_refused_before_any_io(emulator):
    with pytest.raises(ValueError, match="deadline"):
        RetryProvider([FlowGpt]).create_completion(None, MESSAGES, base_url=emulator.base_url, deadline=float("nan"))
    assert emulator.requests == []
