"""Batch jobs, the parts without sockets: the rate limiter, pauses, results and their JSON,
the SQLite store, checking inputs before any I/O, item keys, progress, and what is
shipped to a worker."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import sqlite3
import sys
import time

import pytest

import llmproviders
from llmproviders import (
    BatchError,
    BatchResult,
    BatchStore,
    FlowGpt,
    InvalidArgumentError,
    InvalidMessagesError,
    ItemResult,
    ModelNotSupportedError,
    OpenAICompatible,
    ProviderNotFoundError,
    RateLimitError,
    ResponseStatusError,
    RetryProviderError,
    StreamInterruptedError,
    UnsupportedOptionError,
    Usage,
    batch,
)
from llmproviders._batch import _Interrupts, _items
from llmproviders._batch_limits import Pauses, RateLimiter, parse_rate
from llmproviders._batch_progress import LineProgress, Progress, TqdmProgress, make_progress
from llmproviders._batch_result import error_from_dict, error_to_dict
from llmproviders._batch_work import Flight, Task, provider_ref, resolve_provider

CLOSED = "http://127.0.0.1:9"  # nothing listens there: a test that sent a request would fail


# -- rate limits and pauses ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, per_second",
    [("60/min", 1.0), ("300/min", 5.0), ("5/s", 5.0), ("5/sec", 5.0), (" 2 / second ", 2.0), ("3600/h", 1.0),
     ("7200/hour", 2.0), ("30/minute", 0.5), ("1.5/s", 1.5), ("90/mins", 1.5), (4, 4.0), (0.5, 0.5)],
)
def test_rates_are_parsed_per_second(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "60", "60/day", "-1/s", "0/min", "fast", "1/0", True, None, float("inf"), [60]])
def test_bad_rates_are_refused_with_an_example(text):
    with pytest.raises(InvalidArgumentError, match=r"such as '60/min'"):
        parse_rate(text)


def starts(limiter: RateLimiter, count: int, now: float = 100.0):
    """When ``count`` starts happen if each one starts as soon as the limiter allows."""
    times = []
    while len(times) < count:
        wait = limiter.take(now)
        if wait == 0:
            times.append(now)
        else:
            now += wait
    return times


def test_a_rate_allows_one_seconds_worth_at_once_then_spreads_starts_evenly():
    times = starts(RateLimiter(parse_rate("300/min")), 15)
    assert times[:5] == [100.0] * 5  # at most one second's worth at once
    gaps = [b - a for a, b in zip(times[5:], times[6:])]
    assert all(gap == pytest.approx(0.2) for gap in gaps)  # then 5 per second, evenly
    assert times[-1] == pytest.approx(102.0)


def test_a_slow_rate_starts_one_at_a_time():
    times = starts(RateLimiter(parse_rate("30/min")), 4)
    assert times == pytest.approx([100.0, 102.0, 104.0, 106.0])


def test_an_idle_limiter_refills_only_up_to_one_second():
    limiter = RateLimiter(5.0)
    starts(limiter, 5)
    assert limiter.take(100.1) > 0  # empty: nothing for 0.2 s
    assert starts(limiter, 7, now=1000.0)[:6] == [1000.0] * 5 + [1000.2]  # an hour idle is still 5 at once


def test_a_wait_is_not_counted_as_a_start():
    limiter = RateLimiter(1.0)
    assert limiter.take(0.0) == 0
    assert limiter.take(0.5) == pytest.approx(0.5)
    assert limiter.take(0.5) == pytest.approx(0.5)  # asking again does not push it further
    assert limiter.take(1.0) == 0


def test_pauses_keep_the_latest_end_per_target():
    pauses = Pauses()
    pauses.pause(("FlowGpt", None), 10.0)
    pauses.pause(("FlowGpt", None), 8.0)  # an earlier end does not shorten it
    assert pauses.left(("FlowGpt", None), 9.0) == pytest.approx(1.0)
    assert pauses.left(("Ylokh", None), 9.0) == 0.0  # other targets go on
    assert pauses.left(("FlowGpt", None), 10.0) == 0.0


# -- results and their JSON -----------------------------------------------------------------


def item(index, ok=True, error=None, from_store=False, id=None):
    return ItemResult(
        index=index, id=id, key=f"k{index}", ok=ok, text="text" if ok else None, error=error,
        usage=Usage(3, 4, 7, {"prompt_tokens": 3}) if ok else None, finish_reason="stop" if ok else None,
        attempts=1 if ok else 3, seconds=0.25, from_store=from_store,
    )


def test_batch_result_counts_and_order():
    error = ResponseStatusError("FlowGpt: HTTP 500", provider="FlowGpt", status_code=500)
    result = BatchResult([item(0), item(1, ok=False, error=error), item(2, from_store=True), item(3)])
    assert (result.done, result.failed, result.skipped, len(result)) == (2, 1, 1, 4)
    assert [r.index for r in result] == [0, 1, 2, 3] and result[1].error is error
    assert result.texts == ["text", None, "text", "text"]
    assert [r.index for r in result.errors] == [1]
    assert "4 items: 2 done, 1 failed, 1 skipped" in repr(result)


def test_raise_for_errors_names_the_failed_items_and_keeps_their_errors():
    errors = [ResponseStatusError(f"FlowGpt: HTTP 50{i}", provider="FlowGpt", status_code=500 + i) for i in range(5)]
    result = BatchResult([item(0)] + [item(i + 1, ok=False, error=e, id=f"q{i}") for i, e in enumerate(errors)])
    with pytest.raises(BatchError) as info:
        result.raise_for_errors()
    message = str(info.value)
    assert message.startswith("5 of 6 batch items failed: item 1 (id 'q0'): ResponseStatusError: FlowGpt: HTTP 500")
    assert "item 3 (id 'q2')" in message and "and 2 more" in message and "item 4" not in message
    assert [r.error for r in info.value.failed] == errors
    assert isinstance(info.value, llmproviders.LLMProvidersError)
    again = pickle.loads(pickle.dumps(info.value))  # a process pool or a cluster sends it back pickled
    assert type(again) is BatchError and str(again) == message and again.failed[0].error.status_code == 500
    clean = BatchResult([item(0)])
    assert clean.raise_for_errors() is clean


def test_to_dict_is_json_ready():
    data = item(0).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "index": 0, "id": None, "key": "k0", "ok": True, "text": "text", "error": None,
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}, "finish_reason": "stop",
        "attempts": 1, "seconds": 0.25,
    }


def test_errors_round_trip_through_json_with_their_type_and_fields():
    first = RateLimitError("FlowGpt: HTTP 429", provider="FlowGpt", status_code=429, retry_after=1.5,
                           body="slow down", headers={"Set-Cookie": "session=secret"})
    second = StreamInterruptedError("FlowGpt: the stream broke", provider="FlowGpt", partial="Hal")
    second.attempts = [first]
    data = error_to_dict(second)
    assert json.loads(json.dumps(data)) == data
    assert "session=secret" not in json.dumps(data)  # response headers are not kept
    again = error_from_dict(data)
    assert type(again) is StreamInterruptedError and again.partial == "Hal" and again.provider == "FlowGpt"
    assert str(again) == str(second)  # with the attempts summary
    (earlier,) = again.attempts
    assert type(earlier) is RateLimitError and earlier.retry_after == 1.5 and earlier.status_code == 429
    assert earlier.body == "slow down" and earlier.headers == {}
    fallback = RetryProviderError("all failed", errors={"FlowGpt": first})
    assert error_from_dict(error_to_dict(fallback)).errors["FlowGpt"].status_code == 429


def test_a_foreign_error_comes_back_as_a_library_error_naming_it():
    data = error_to_dict(ValueError("bad thing"))
    assert data == {"type": "builtins.ValueError", "message": "bad thing"}
    again = error_from_dict(data)
    assert type(again) is llmproviders.LLMProvidersError and str(again) == "builtins.ValueError: bad thing"


# -- the store ------------------------------------------------------------------------------


def test_the_store_keeps_items_across_opens_and_exports_them(tmp_path):
    path = tmp_path / "results.db"
    error = ResponseStatusError("FlowGpt: HTTP 500", provider="FlowGpt", status_code=500)
    with BatchStore(path) as store:
        run = store.begin_run(3, "FlowGpt", None)
        store.record(item(1, ok=False, error=error), run=run, started_at=1.0, provider="FlowGpt", model="m")
        store.record(item(0, id="first"), run=run, started_at=1.0, provider="FlowGpt", model="m")
        assert store.counts() == {"total": 3, "done": 1, "failed": 1}
    with BatchStore(str(path)) as store:
        assert len(store) == 2
        results = store.results()
        assert [r.index for r in results] == [0, 1] and all(r.from_store for r in results)
        assert results[0].id == "first" and results[0].text == "text" and results[0].usage.total_tokens == 7
        assert type(results[1].error) is ResponseStatusError and results[1].error.status_code == 500
        assert store.get("k1").attempts == 3 and store.get("nope") is None
        assert store.export(tmp_path / "out.jsonl") == 2
        buffer = io.StringIO()
        store.export(buffer)
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == buffer.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in results]
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT status FROM runs").fetchall() == [("running",)]
    finally:
        db.close()


def test_a_store_is_readable_while_another_connection_writes(tmp_path):
    path = tmp_path / "results.db"
    with BatchStore(path) as writer, BatchStore(path) as reader:
        run = writer.begin_run(2, "FlowGpt", None)
        writer.record(item(0), run=run, started_at=1.0, provider="FlowGpt", model="m")
        assert reader.counts()["done"] == 1  # committed as it finished, visible at once
        writer.record(item(1), run=run, started_at=1.0, provider="FlowGpt", model="m")
        assert [r.index for r in reader.results()] == [0, 1]


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"prompt": "hi"}\n' * 100)
    with pytest.raises(InvalidArgumentError, match="cannot use .*notes.jsonl.* as a batch store"):
        BatchStore(path)
    with pytest.raises(InvalidArgumentError, match="cannot use"):
        BatchStore(tmp_path / "missing-dir" / "results.db")


def test_a_closed_store_says_so(tmp_path):
    store = BatchStore(tmp_path / "results.db")
    store.close()
    store.close()
    with pytest.raises(InvalidArgumentError, match="is closed"):
        store.counts()


# -- inputs are checked before any I/O ------------------------------------------------------


@pytest.mark.parametrize(
    "inputs, error, fragment",
    [
        (["fine", [{"role": "wizard", "content": "x"}]], InvalidMessagesError, "batch item 1: "),
        (["fine", {"prompt": "x", "id": "a", "options": {"temprature": 0.2}}], UnsupportedOptionError, "batch item 1 (id 'a'): "),
        ([{"prompt": "x", "messages": []}], InvalidArgumentError, "exactly one of messages and prompt"),
        ([{"text": "x"}], InvalidArgumentError, "unknown key(s) text"),
        ([{"prompt": 3}], InvalidArgumentError, "prompt must be a str"),
        ([{"prompt": "x", "id": 1.5}], InvalidArgumentError, "id must be a str or an int"),
        ([{"prompt": "x", "options": ["a"]}], InvalidArgumentError, "options must be a dict"),
        ([{"prompt": "x", "id": "a"}, {"prompt": "y", "id": "a"}], InvalidArgumentError, "items 0 and 1 have the same id 'a'"),
        ("a prompt", InvalidArgumentError, "wrap a single item in a list"),
        ({"prompt": "x"}, InvalidArgumentError, "wrap a single item in a list"),
        (42, InvalidArgumentError, "iterable of items"),
    ],
)
def test_bad_inputs_raise_typed_errors_naming_the_item_before_any_request(inputs, error, fragment):
    with pytest.raises(error) as info:
        batch(FlowGpt, inputs, base_url=CLOSED, progress=False)
    assert fragment in str(info.value)


def test_bad_arguments_raise_before_any_request(tmp_path):
    with pytest.raises(ModelNotSupportedError, match="batch item 0: FlowGpt does not support model 'nope'"):
        batch(FlowGpt, ["x"], model="nope", base_url=CLOSED)
    with pytest.raises(ProviderNotFoundError):
        batch("NoSuchProvider", ["x"])
    with pytest.raises(InvalidArgumentError, match="one provider class or its name"):
        batch(llmproviders.RetryProvider([FlowGpt]), ["x"])
    for workers in (0, -1, 1.5, True, "4"):
        with pytest.raises(InvalidArgumentError, match="workers must be a whole number"):
            batch(FlowGpt, ["x"], workers=workers)
    with pytest.raises(InvalidArgumentError, match="rate_limit"):
        batch(FlowGpt, ["x"], rate_limit="lots")
    with pytest.raises(InvalidArgumentError, match="executor must be"):
        batch(FlowGpt, ["x"], executor=object())
    with pytest.raises(InvalidArgumentError, match="store must be a path or a BatchStore"):
        batch(FlowGpt, ["x"], store=3)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        batch(FlowGpt, ["x"], base_url=CLOSED, timeout=-1)
    store = tmp_path / "never.db"
    with pytest.raises(InvalidMessagesError):
        batch(FlowGpt, [[]], store=store)
    assert not store.exists()  # a job that cannot start leaves no file behind


def test_no_inputs_is_an_empty_result():
    result = batch(FlowGpt, iter([]), base_url=CLOSED, progress=False)
    assert len(result) == 0 and (result.done, result.failed, result.skipped) == (0, 0, 0)


def keys(inputs, model=None, **options):
    return [item.key for item in _items(FlowGpt, model, inputs, options)]


def test_an_item_is_known_by_its_id_or_by_a_hash_of_its_request():
    assert keys([{"prompt": "x", "id": "a"}, {"prompt": "x", "id": 7}]) == ["a", "7"]
    (plain,) = keys(["x"], base_url="http://h:1")
    assert len(plain) == 32 and int(plain, 16) >= 0
    # the same request, however it is written: a prompt is one user message
    assert keys([{"prompt": "x"}, [{"role": "user", "content": "x"}]], base_url="http://h:1") == [plain, plain + "-2"]
    # what changes the reply changes the key
    assert keys(["y"], base_url="http://h:1") != [plain]
    assert keys(["x"], base_url="http://h:2") != [plain]
    assert keys(["x"], base_url="http://h:1", temperature=0.1) != [plain]
    assert keys(["x"], base_url="http://h:1") != keys(["x"], base_url="http://h:1", temperature=0.1)
    assert keys(["x"], base_url="http://h:1", model="gemini") == keys(["x"], base_url="http://h:1", model="google-gemini")
    # what cannot change it does not: timeouts, retries, credentials in the URL
    assert keys(["x"], base_url="http://user:pw@h:1", timeout=3, max_retries=0, deadline=9, proxy="http://p:1") == [plain]


def test_secrets_are_not_part_of_a_key():
    def key(**options):
        return [i.key for i in _items(OpenAICompatible, "m", ["x"], {"base_url": "http://h:1/v1", **options})]

    assert key(api_key="sk-one-1234") == key(api_key="sk-two-5678") == key(extra_headers={"X-Org": "abcd"})
    assert key(temperature=0.5) != key()


# -- what a worker gets ---------------------------------------------------------------------


def test_a_task_pickles_without_its_flight_and_names_its_provider():
    task = Task("job", 3, 1, provider_ref(FlowGpt), "gpt-4", [{"role": "user", "content": "x"}], {"timeout": 5}, Flight())
    again = pickle.loads(pickle.dumps(task))
    assert again.flight is None and (again.index, again.number, again.options) == (3, 1, {"timeout": 5})
    assert again.provider == "llmproviders.providers.flowgpt:FlowGpt"
    assert resolve_provider(again.provider) is FlowGpt
    assert resolve_provider("gone.module:FlowGpt") is FlowGpt  # falls back to the registered name


def test_a_flight_aborted_before_its_stream_starts_refuses_it():
    flight = Flight()
    flight.abort()
    stream = FlowGpt.create_completion(None, [{"role": "user", "content": "x"}], base_url=CLOSED)
    with stream:
        assert flight.attach(stream) is False


# -- progress -------------------------------------------------------------------------------


def test_without_a_terminal_the_progress_line_is_printed_now_and_then_and_at_the_end():
    out = io.StringIO()
    progress = LineProgress(out)
    progress.start(10, skipped=2, failed=1)
    for done in range(1, 8):
        progress.update(done, 1)  # less than 5 s apart: not printed
    progress.close()
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith("batch: 3/10 items, 0 done, 1 failed, 2 skipped, ")
    assert lines[1].startswith("batch: 10/10 items, 7 done, 1 failed, 2 skipped, ") and "/s" in lines[1]


def test_on_a_terminal_the_progress_line_is_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    progress = LineProgress(out)
    progress.start(3, skipped=0)
    progress.update(1, 0)
    progress.close()
    text = out.getvalue()
    assert text.startswith("\rbatch: 0/3 items") and text.endswith("\n") and text.count("\n") == 1
    assert text.rstrip("\n").split("\r")[-1].startswith("batch: 1/3 items, 1 done, 0 failed")


def test_progress_uses_tqdm_when_installed_else_the_line(monkeypatch):
    assert type(make_progress(False)) is Progress
    assert isinstance(make_progress(True), TqdmProgress)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    assert isinstance(make_progress(True), LineProgress)


def test_the_tqdm_bar_shows_done_failed_and_skipped():
    bars = []

    class FakeBar:
        def __init__(self, **kwargs):
            self.kwargs, self.n, self.postfix, self.closed = kwargs, kwargs["initial"], None, False
            bars.append(self)

        def set_postfix(self, refresh=True, **values):
            self.postfix = values

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    progress = TqdmProgress(FakeBar)
    progress.start(5, skipped=2, failed=1)
    progress.update(1, 1)
    progress.close()
    (bar,) = bars
    assert bar.kwargs["total"] == 5 and bar.kwargs["unit"] == "item" and bar.n == 4 and bar.closed
    assert bar.postfix == {"done": 1, "failed": 1, "skipped": 2}


# -- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_waits_until_a_commit_and_its_record_are_whole():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    interrupts = _Interrupts()
    interrupts.install()
    try:
        steps = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler runs in here, and defers
                steps.append("committed")
                steps.append("recorded")
        assert steps == ["committed", "recorded"]
        with pytest.raises(KeyboardInterrupt):  # elsewhere it is as prompt as ever
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    finally:
        interrupts.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
