"""The flaky configuration for batch tests: deterministic failures before the first delta,
per question and attempt, on all four chat protocols."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import pytest
import requests

from llmproviders.testing import CHATGPT4ONLINE_SUBMIT_PATH, FAULTS, Emulator, Flaky, reply_for

from .clients import PROTOCOLS, TIMEOUT, build, read_reply

QUESTIONS = [f"Вопрос номер {number}?" for number in range(40)]


def ask(emu: Emulator, protocol: str, question: str) -> Optional[str]:
    """One attempt: ``None`` if the reply came whole, else the fault seen ("500", "429", "drop")."""
    path, headers, body = build(emu, protocol, [{"role": "user", "content": question}])
    with requests.Session() as session:
        try:
            response = session.post(emu.url(path), headers=headers, data=body, timeout=TIMEOUT)
        except requests.exceptions.ConnectionError:
            return "drop"
        with response:
            if response.status_code != 200:
                if response.status_code == 429:
                    assert response.headers["Retry-After"] == "0.05"
                return str(response.status_code)
            assert read_reply(protocol, response.content) == (reply_for(question), True)
            return None


def until_success(emu: Emulator, protocol: str, question: str, limit: int = 6) -> List[Optional[str]]:
    """Ask until a reply comes (at most ``limit`` times); the faults seen, in order."""
    seen = [ask(emu, protocol, question)]
    while seen[-1] is not None and len(seen) < limit:
        seen.append(ask(emu, protocol, question))
    return seen


def expected(flaky: Flaky, question: str, limit: int = 6) -> List[Optional[str]]:
    failures = flaky.failures(question)
    count = limit if failures is None else failures + 1
    return [flaky.fault(question, attempt) for attempt in range(count)]


def test_flaky_is_a_pure_function_of_seed_question_and_attempt() -> None:
    flaky = Flaky(rate=0.3, seed=1)
    again = Flaky(rate=0.3, seed=1)
    other = Flaky(rate=0.3, seed=2)
    questions = [f"q{number}" for number in range(2000)]
    failures = [flaky.failures(q) for q in questions]
    assert failures == [again.failures(q) for q in questions] != [other.failures(q) for q in questions]
    flaky_share = sum(1 for f in failures if f) / len(questions)
    assert 0.25 < flaky_share < 0.35
    assert {f for f in failures} == {0, 1, 2}  # max_failures=2
    for question, count in zip(questions, failures):
        assert count is not None
        faults = [flaky.fault(question, attempt) for attempt in range(count + 3)]
        assert all(fault in FAULTS for fault in faults[:count]) and faults[count:] == [None] * 3
    kinds = {flaky.fault(q, 0) for q, f in zip(questions, failures) if f}
    assert kinds == {"500", "429", "drop"}
    assert flaky.failures("Please FAIL this") is None and flaky.fault("FAIL", 99) == "500"
    assert Flaky(rate=0).failures("q") == 0 and Flaky(rate=1, max_failures=1).failures("q") == 1
    assert Flaky(marker=None).failures("FAIL") is not None
    assert Flaky(permanent="503", marker="!").fault("boom!", 0) == "503"


@pytest.mark.parametrize(
    "options",
    [
        {"rate": 1.5},
        {"rate": -0.1},
        {"rate": "0.3"},
        {"kinds": ()},
        {"kinds": "500"},
        {"kinds": ("500", "timeout")},
        {"kinds": ("200",)},
        {"permanent": "nope"},
        {"retry_after": -1},
        {"retry_after": float("inf")},
        {"max_failures": 0},
        {"marker": ""},
    ],
)
def test_bad_flaky_options(options: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Flaky(**options)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_protocol_fails_as_predicted(protocol: str) -> None:
    flaky = Flaky(rate=0.5, retry_after=0.05, seed=3)
    with Emulator(flaky=flaky) as emu:
        for question in QUESTIONS[:12] + ["This one must FAIL"]:
            assert until_success(emu, protocol, question) == expected(flaky, question), question
            requests_for = emu.requests_for(question)
            assert [r.attempt for r in requests_for] == list(range(len(requests_for)))
            assert [r.fault for r in requests_for] == expected(flaky, question)
            assert [r.status for r in requests_for] == [
                None if fault == "drop" else int(fault) if fault else 200 for fault in expected(flaky, question)
            ]
            assert [r.wait() for r in requests_for] == [
                "fault-disconnect" if r.fault == "drop" else "complete" for r in requests_for
            ]
        if protocol == "chatgpt4online":  # the start_session requests have no question
            assert all(r.path == CHATGPT4ONLINE_SUBMIT_PATH for q in QUESTIONS for r in emu.requests_for(q))
        assert {fault for q in QUESTIONS[:12] for fault in expected(flaky, q)} >= {"500", "429", "drop", None}


def test_concurrent_items_cost_exactly_the_predicted_requests() -> None:
    flaky = Flaky(rate=0.4, seed=11, max_failures=3)
    with Emulator(flaky=flaky) as emu:
        barrier = threading.Barrier(8)

        def run(question: str) -> List[Optional[str]]:
            if question in QUESTIONS[:8]:
                barrier.wait(TIMEOUT)  # eight items start at once
            return until_success(emu, ["flowgpt", "gprochat", "chatgpt4online", "ylokh"][len(question) % 4], question)

        with ThreadPoolExecutor(8) as pool:
            seen = dict(zip(QUESTIONS, pool.map(run, QUESTIONS)))
        for question in QUESTIONS:
            assert seen[question] == expected(flaky, question)
            assert len(emu.requests_for(question)) == (flaky.failures(question) or 0) + 1


def test_reset_starts_over_and_flaky_can_change_while_running() -> None:
    with Emulator(flaky=Flaky(rate=1, max_failures=1, kinds=("503",))) as emu:
        assert ask(emu, "ylokh", "hi") == "503" and ask(emu, "ylokh", "hi") is None
        emu.reset()
        assert emu.requests_for("hi") == [] and ask(emu, "ylokh", "hi") == "503"
        emu.flaky = None
        assert ask(emu, "ylokh", "FAIL") is None
        emu.flaky = Flaky(rate=0)
        assert ask(emu, "ylokh", "FAIL") == "500" and emu.requests_for("FAIL")[-1].attempt == 1
        with pytest.raises(TypeError):
            emu.flaky = "often"  # type: ignore[assignment]


def test_scripted_answers_and_bad_requests_come_before_flaky() -> None:
    with Emulator(flaky=Flaky(marker="FAIL")) as emu:
        path, headers, body = build(emu, "gprochat", [{"role": "user", "content": "FAIL"}])
        emu.plan(status=418)  # a scripted answer: the protocol, and flaky, never see the request
        assert requests.post(emu.url(path), headers=headers, data=body, timeout=TIMEOUT).status_code == 418
        bad = requests.post(emu.url(path), headers={"Content-Type": "application/json"}, data=body, timeout=TIMEOUT)
        assert bad.status_code == 400 and "Content-Type" in bad.text  # an invalid request: no attempt
        assert emu.requests_for("FAIL") == []
        emu.plan(reply="по плану")  # a plan that only changes the text: flaky still applies
        assert requests.post(emu.url(path), headers=headers, data=body, timeout=TIMEOUT).status_code == 500
        assert [(r.attempt, r.fault) for r in emu.requests_for("FAIL")] == [(0, "500")]
        assert [r.question for r in emu.requests] == [None, None, "FAIL"]
