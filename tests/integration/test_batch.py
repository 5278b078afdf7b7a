"""Batch jobs against the emulator, on the default thread pool: order and exact texts,
per-item errors, requests per item as the emulator saw them, retries, rate limiting, the
shared 429 pause, deadlines and resuming from a store."""

from __future__ import annotations

import time
from typing import List, Tuple

import pytest

from llmproviders import (
    BatchStore,
    FlowGpt,
    Provider,
    RateLimitError,
    ResponseStatusError,
    RetryPolicy,
    StreamInterruptedError,
    TransportError,
    Ylokh,
    batch,
)
from llmproviders._batch_work import Flight, Task, provider_ref, run_attempt
from llmproviders.testing import FLOWGPT_PATH, Emulator, Flaky, RecordedRequest, reply_for

from .conftest import PROVIDERS

QUESTIONS = [f"Вопрос {n}: сколько будет {n} + {n}? 🚀" for n in range(24)] + ["FAIL: этот всегда падает", "And FAIL again"]
FLAKY = Flaky(rate=0.4, kinds=("500", "429", "drop"), retry_after=0.05, seed=1, max_failures=2)
TIMEOUT = 10


def items(questions=QUESTIONS):
    return [{"id": f"q{n}", "prompt": question} for n, question in enumerate(questions)]


def expected(flaky: Flaky, question: str, max_retries: int = 2) -> Tuple[int, bool]:
    """The requests an item costs, and whether it succeeds, by the flaky configuration."""
    failures = flaky.failures(question)
    if failures is None or failures > max_retries:
        return max_retries + 1, False
    return failures + 1, True


def record_arrivals(monkeypatch, emulator: Emulator) -> List[Tuple[float, RecordedRequest]]:
    """When each request reached the emulator (time.monotonic()), as it admitted it."""
    arrivals: List[Tuple[float, RecordedRequest]] = []
    admit = emulator._admit

    def timed(request, endpoint):
        plan = admit(request, endpoint)
        arrivals.append((time.monotonic(), request))
        return plan

    monkeypatch.setattr(emulator, "_admit", timed)
    return arrivals


@pytest.mark.parametrize("provider, model, path", PROVIDERS)
def test_items_come_back_in_order_with_exact_texts_and_per_item_errors(provider, model, path):
    with Emulator(flaky=FLAKY) as emulator:
        result = batch(provider, items(), model=model, base_url=emulator.base_url, timeout=TIMEOUT, progress=False)
        seen = {question: len(emulator.requests_for(question)) for question in QUESTIONS}
        faults = {request.fault for request in emulator.requests}
    assert [item.index for item in result] == list(range(len(QUESTIONS)))
    assert [item.id for item in result] == [f"q{n}" for n in range(len(QUESTIONS))]
    for question, item in zip(QUESTIONS, result):
        requests, ok = expected(FLAKY, question)
        assert (seen[question], item.attempts, item.ok) == (requests, requests, ok), question
        if ok:
            assert item.text == reply_for(question) and item.error is None
        else:
            assert item.text is None
            assert type(item.error) is ResponseStatusError and item.error.status_code == 500
            assert len(item.error.attempts) == 2 and item.error.provider == provider.__name__
        assert item.seconds > 0 and not item.from_store
    assert (result.done, result.failed, result.skipped) == (24, 2, 0)
    assert faults >= {"500", "429", "drop", None}  # every kind of failure happened and was retried
    assert sum(FLAKY.failures(q) or 0 for q in QUESTIONS) >= 8


def test_an_item_out_of_retries_fails_with_its_last_error_and_the_earlier_ones():
    questions = [q for q in QUESTIONS if FLAKY.failures(q) != 0][:8]
    with Emulator(flaky=FLAKY) as emulator:
        result = batch(FlowGpt, questions, base_url=emulator.base_url, max_retries=1, timeout=TIMEOUT, progress=False)
        seen = [len(emulator.requests_for(question)) for question in questions]
    for question, item, requests in zip(questions, result, seen):
        count, ok = expected(FLAKY, question, max_retries=1)
        assert (requests, item.attempts, item.ok) == (count, count, ok)
        if not ok:
            fault = FLAKY.fault(question, 1)
            kind = {"500": ResponseStatusError, "429": RateLimitError, "drop": TransportError}[fault or "500"]
            assert isinstance(item.error, kind) and len(item.error.attempts) == 1
    assert result.failed >= 2 and result.done >= 2


def test_a_failure_after_the_first_delta_is_final_and_one_before_it_is_retried():
    with Emulator() as emulator:
        emulator.plan(path=FLOWGPT_PATH, disconnect_after_events=1)  # cut after one piece of the first reply
        first = batch(FlowGpt, ["a"], base_url=emulator.base_url, timeout=TIMEOUT, progress=False)[0]
        emulator.plan(path=FLOWGPT_PATH, disconnect_after_events=0)  # cut before any piece
        second = batch(FlowGpt, ["b"], base_url=emulator.base_url, timeout=TIMEOUT, progress=False)[0]
        requests = len(emulator.requests_for("a")), len(emulator.requests_for("b"))
    assert requests == (1, 2)
    assert not first.ok and isinstance(first.error, StreamInterruptedError) and first.attempts == 1
    assert first.error.partial and reply_for("a").startswith(first.error.partial)  # what had arrived
    assert second.ok and second.text == reply_for("b") and second.attempts == 2


def test_finish_reason_and_usage_come_from_the_stream():
    messages = [{"role": "user", "content": "usage?"}]
    with Emulator() as emulator:
        (item,) = batch(Ylokh, [messages], base_url=emulator.base_url, progress=False)
        with Ylokh.create_completion(None, messages, base_url=emulator.base_url) as stream:
            text = "".join(stream)
    assert item.ok and item.text == text
    assert item.finish_reason == stream.finish_reason and item.usage == stream.usage


def assert_rate(times: List[float], per_second: float, slack: float = 0.05) -> None:
    """In any stretch of time T, at most one second's worth plus T's worth started
    (``slack``: what a busy machine may add between a start and its arrival)."""
    times = sorted(times)
    burst = max(1.0, per_second)
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert j - i + 1 <= burst + per_second * (times[j] - times[i] + slack) + 1e-9, (i, j, times)


def test_the_rate_limit_spaces_request_starts_retries_included(monkeypatch):
    every_item_fails_once = Flaky(rate=1.0, kinds=("500",), seed=3, max_failures=1, marker=None)
    questions = [f"q{n}" for n in range(10)]
    with Emulator(flaky=every_item_fails_once) as emulator:
        arrivals = record_arrivals(monkeypatch, emulator)
        started = time.monotonic()
        result = batch(FlowGpt, questions, rate_limit="10/s", workers=8, base_url=emulator.base_url, progress=False)
        took = time.monotonic() - started
    times = [at for at, request in arrivals if request.path == FLOWGPT_PATH]
    assert result.done == 10 and all(item.attempts == 2 for item in result)
    assert len(times) == 20
    assert_rate(times, 10.0)
    assert max(times) - min(times) >= (20 - 10) / 10 - 0.1  # 10 at once, then 10 more at 10 per second
    assert took < 8  # it is a limit, not a stall


def test_a_429_with_retry_after_pauses_every_worker(monkeypatch):
    monkeypatch.setattr(Provider, "retry_policy", RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_retry_after=5))
    questions = [f"q{n}" for n in range(12)]
    with Emulator(pace=0.03) as emulator:  # each reply takes about 0.2 s
        arrivals = record_arrivals(monkeypatch, emulator)
        emulator.plan(path=FLOWGPT_PATH, retry_after=0.6)  # the first request: 429, Retry-After 0.6
        result = batch(FlowGpt, questions, workers=4, base_url=emulator.base_url, timeout=TIMEOUT, progress=False)
    chat = sorted((at, request) for at, request in arrivals if request.path == FLOWGPT_PATH)
    (limited,) = [at for at, request in chat if request.status == 429]
    assert result.done == 12 and sorted(item.attempts for item in result) == [1] * 11 + [2]
    # The other three first requests were on their way already; after them, nothing
    # reached the server until the Retry-After had passed, though workers were free
    # after about 0.2 s.
    assert len(chat) == 13 and all(at - limited < 0.3 for at, _ in chat[:4])
    assert all(at >= limited + 0.6 for at, _ in chat[4:]), [round(at - limited, 3) for at, _ in chat]


def test_a_deadline_covers_every_attempt_of_an_item(monkeypatch):
    monkeypatch.setattr(Provider, "retry_policy", RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_retry_after=5))
    flaky = Flaky(rate=1.0, kinds=("429",), retry_after=0.3, seed=0, max_failures=2, marker=None)
    question = next(q for q in (f"q{n}" for n in range(100)) if flaky.failures(q) == 2)  # two 429s, then a reply
    with Emulator(flaky=flaky) as emulator:
        (item,) = batch(FlowGpt, [question], base_url=emulator.base_url, deadline=0.5, progress=False)
        requests = len(emulator.requests_for(question))
        emulator.reset()  # the question's failures start over
        (unlimited,) = batch(FlowGpt, [question], base_url=emulator.base_url, progress=False)
    # the first 429 leaves 0.5 s, enough for its 0.3 s; the second leaves less than 0.3 s
    assert requests == 2 and item.attempts == 2
    assert isinstance(item.error, RateLimitError) and len(item.error.attempts) == 1
    assert unlimited.ok and unlimited.attempts == 3


def test_a_store_resumes_without_sending_finished_items_again(tmp_path):
    path = tmp_path / "results.db"
    with Emulator(flaky=FLAKY) as emulator:
        first = batch(FlowGpt, items(), base_url=emulator.base_url, store=path, timeout=TIMEOUT, progress=False)
        sent = len(emulator.requests)
        again = batch(FlowGpt, items(), base_url=emulator.base_url, store=str(path), timeout=TIMEOUT, progress=False)
        assert len(emulator.requests) == sent  # nothing was sent again, not even the failed ones
        emulator.flaky = None
        with BatchStore(path) as store:
            retried = batch(FlowGpt, items(), base_url=emulator.base_url, store=store, retry_failed=True, progress=False)
            assert not store.closed  # a store you pass stays yours
            assert store.counts() == {"total": len(QUESTIONS), "done": len(QUESTIONS), "failed": 0}
        new = emulator.requests[sent:]
    assert (first.done, first.failed, first.skipped) == (24, 2, 0)
    assert (again.done, again.failed, again.skipped) == (0, 2, 24)
    assert [item.text for item in again] == [item.text for item in first]
    assert all(item.from_store for item in again) and [item.index for item in again] == list(range(26))
    assert [type(item.error) for item in again.errors] == [ResponseStatusError] * 2
    assert str(again.errors[0].error) == str(first.errors[0].error)
    assert (retried.done, retried.failed, retried.skipped) == (2, 0, 24)
    assert sorted(request.question for request in new) == sorted(q for q in QUESTIONS if "FAIL" in q)
    assert [item.text for item in retried] == [reply_for(q) for q in QUESTIONS]


def test_the_same_prompt_twice_is_two_items_with_keys_of_their_own(tmp_path):
    with Emulator() as emulator:
        result = batch(FlowGpt, ["same", "same", "other"], base_url=emulator.base_url, store=tmp_path / "r.db", progress=False)
        again = batch(FlowGpt, ["same", "same", "other"], base_url=emulator.base_url, store=tmp_path / "r.db", progress=False)
        requests = len(emulator.requests_for("same"))
    assert requests == 2 and result.done == 3 and again.skipped == 3
    assert result[1].key == result[0].key + "-2"


def test_a_progress_line_goes_to_stderr_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)
    with Emulator(flaky=Flaky(rate=0.0, seed=0)) as emulator:
        batch(FlowGpt, ["a", "b", "FAIL c"], base_url=emulator.base_url, max_retries=0)
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("batch: 3/3 items, 2 done, 1 failed, 0 skipped, ") and "/s" in last


def test_an_error_bound_for_another_process_leaves_its_traceback_and_foreign_cause_behind():
    dropped = Flaky(rate=0.0, seed=0, marker="FAIL", permanent="drop")  # every request dropped
    messages = [{"role": "user", "content": "FAIL q"}]
    options = {"base_url": None, "max_retries": 0, "timeout": TIMEOUT}
    with Emulator(flaky=dropped) as emulator:
        options["base_url"] = emulator.base_url
        here = run_attempt(Task("job", 0, 1, provider_ref(FlowGpt), "gpt-3.5-turbo", messages, options, Flight()))
        away = run_attempt(Task("job", 0, 2, provider_ref(FlowGpt), "gpt-3.5-turbo", messages, options, None))
    assert isinstance(here.error, TransportError) and isinstance(away.error, TransportError)
    assert here.error.__cause__ is not None and here.error.__traceback__ is not None  # in this process: all of it
    # What goes back to the caller is the same under any pickler (tblib, installed by
    # distributed, would otherwise send a requests error and the traceback along).
    assert away.error.__cause__ is None and away.error.__traceback__ is None and away.error.__context__ is None
    assert not here.delivered and not away.delivered and here.text is None
