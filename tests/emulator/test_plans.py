"""Plans: step mode, scripted answers and replies, matching, recording and outcomes."""

from __future__ import annotations

import pytest
import requests

from llmproviders.testing import (
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_PATH,
    YLOKH_PATH,
    Emulator,
    Plan,
    RecordedRequest,
    pieces_for,
    reply_for,
)

from .clients import (
    TIMEOUT,
    PROTOCOLS,
    MESSAGES,
    MALFORMED,
    encode,
    flowgpt_body,
    build,
    post,
    read_reply,
    raw,
)


@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_step_mode_holds_each_piece(emu: Emulator, protocol: str, framing: str) -> None:
    plan = emu.plan(step=True, framing=framing, pieces=["Привет", ", ", "мир 🚀"])
    frames = {
        "flowgpt": lambda p: encode({"event": "text", "data": p}),
        "gprochat": lambda p: p.encode(),
        "chatgpt4online": lambda p: encode({"type": "live", "data": p}),
        "ylokh": lambda p: encode({"content": p}),
    }[protocol]
    with raw(emu, protocol) as response:
        assert response.status == 200
        response.read_until(frames("Привет"))
        assert response.silent_for(0.2)  # the server holds piece 2 ...
        assert plan.requests[0].outcome is None
        plan.advance()
        response.read_until(frames(", "))  # ... until the test lets it go
        assert response.silent_for(0.1)
        plan.advance()
        response.read_until(frames("мир 🚀"))
        body = response.rest() if framing == "close" else b"".join(response.chunks()[0])
    assert plan.wait() == "complete"
    assert plan.requests[0].done.is_set()
    if framing == "close":
        assert read_reply(protocol, response.buffer)[1]
    elif protocol != "gprochat":
        assert body  # the trailer followed the last piece without waiting


def test_step_advance_may_run_ahead(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(step=True)
    plan.advance(100)
    with post(session, emu, "ylokh") as response:
        assert read_reply("ylokh", response.content) == (reply_for(MESSAGES), True)
    assert plan.wait() == "complete"


def test_step_timeout_cuts_the_connection() -> None:
    with Emulator(step_timeout=0.3) as emu:
        plan = emu.plan(step=True)
        with raw(emu, "gprochat") as response:
            first = response.chunk()
            chunks, terminated = response.chunks()
        assert (first, chunks, terminated) == (pieces_for(reply_for(MESSAGES))[0].encode(), [], False)
        assert plan.wait() == "fault-disconnect"


def test_scripted_status_and_body(emu: Emulator, session: requests.Session) -> None:
    emu.plan(status=500, body={"detail": "boom ✗"}, headers={"X-Request-Id": "abc"})
    emu.plan(status=418, body="short and stout")
    emu.plan(status=200, body=b"\x00\x01", content_type="application/x-thing")
    emu.plan(status=503)
    first = post(session, emu, "ylokh")
    assert (first.status_code, first.json(), first.headers["X-Request-Id"]) == (500, {"detail": "boom ✗"}, "abc")
    assert first.headers["Content-Length"] == str(len(first.content))
    second = post(session, emu, "flowgpt")
    assert (second.status_code, second.text, second.headers["Content-Type"]) == (
        418,
        "short and stout",
        "text/plain; charset=utf-8",
    )
    third = post(session, emu, "gprochat")
    assert (third.content, third.headers["Content-Type"]) == (b"\x00\x01", "application/x-thing")
    fourth = post(session, emu, "ylokh")
    assert fourth.status_code == 503 and "503" in fourth.json()["error"]
    for response in (first, second, third, fourth):
        response.close()


def test_headers_option_adds_to_protocol_reply(emu: Emulator, session: requests.Session) -> None:
    emu.plan(headers={"X-Upstream": "emulated", "Server": "nginx"})
    with post(session, emu, "flowgpt") as response:
        assert response.headers["X-Upstream"] == "emulated"
        assert response.headers["Server"] == "nginx"
        assert read_reply("flowgpt", response.content) == (reply_for(MESSAGES), True)


def test_plan_without_path_skips_start_session(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(malformed=True)
    with post(session, emu, "chatgpt4online") as response:  # start_session first, then submit
        chunks = list(response.iter_content(None))
    assert [r.path for r in plan.requests] == [CHATGPT4ONLINE_SUBMIT_PATH]
    assert MALFORMED["chatgpt4online"] in chunks


def test_reply_pieces_and_long_reply(emu: Emulator, session: requests.Session) -> None:
    emu.plan(reply="Готово ✓")
    emu.plan(pieces=["a", "ü", "🚀", ""])
    emu.plan(long_reply=10_000)
    with post(session, emu, "flowgpt") as response:
        assert read_reply("flowgpt", response.content)[0] == "Готово ✓"
    with post(session, emu, "ylokh") as response:
        assert read_reply("ylokh", response.content)[0] == "aü🚀"
    with post(session, emu, "gprochat") as response:
        chunks = [chunk.decode() for chunk in response.iter_content(None)]
    assert len("".join(chunks)) == 10_000
    assert len(chunks) == 157 and all(len(chunk) in (63, 64) for chunk in chunks)
    assert len("".join(chunks).encode()) > 10_000  # multi-byte characters inside


def test_plans_match_by_path_fifo_and_times(emu: Emulator, session: requests.Session) -> None:
    ylokh_plan = emu.plan(path=YLOKH_PATH, times=2, reply="two")
    any_plan = emu.plan(reply="any")
    custom = emu.plan(path="/custom/health", status=200, body={"ok": True})
    with post(session, emu, "gprochat") as response:
        assert response.text == "any"
    for _ in range(3):
        with post(session, emu, "ylokh") as response:
            replies = read_reply("ylokh", response.content)[0]
    assert replies == reply_for(MESSAGES)  # the third one is unscripted
    assert [r.plan for r in emu.requests] == [any_plan, ylokh_plan, ylokh_plan, None]
    assert ylokh_plan.remaining == 0 and ylokh_plan.wait() == "complete"
    assert session.get(emu.url("/custom/health"), timeout=TIMEOUT).json() == {"ok": True}
    assert custom.requests[0].method == "GET"


def test_plan_rejects_bad_options(emu: Emulator) -> None:
    with pytest.raises(TypeError):
        emu.plan(no_such_option=True)  # type: ignore[call-arg]
    for bad in (
        {"framing": "gzip"},
        {"pace": -1},
        {"status": 99},
        {"reply": "a", "pieces": ["a"]},
        {"cloudflare": True, "html_error": 502},
        {"content_type": "text/plain"},
        {"disconnect_after_bytes": -1},
    ):
        with pytest.raises(ValueError):
            emu.plan(**bad)
    with pytest.raises(TypeError):
        emu.plan(pieces="abc")  # type: ignore[arg-type]
    assert emu.requests == [] and emu.plan(path="/x").remaining == 1


def test_requests_are_recorded(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(path=FLOWGPT_PATH)
    path, headers, body = build(emu, "flowgpt", MESSAGES)
    with session.post(emu.url(path + "?trace=1&x=y"), headers=headers, data=body, timeout=TIMEOUT) as response:
        assert response.status_code == 200
    recorded = emu.requests[-1]
    assert isinstance(recorded, RecordedRequest) and isinstance(plan, Plan)
    assert (recorded.method, recorded.path, recorded.query) == ("POST", FLOWGPT_PATH, "trace=1&x=y")
    assert recorded.headers["x-signature"] == recorded.headers["X-Signature"] == headers["x-signature"]
    assert "AUTHORIZATION" in recorded.headers and recorded.headers.get("missing") is None
    with pytest.raises(KeyError):
        recorded.headers["missing"]
    assert recorded.body == body
    assert recorded.json == flowgpt_body(MESSAGES)
    assert recorded.plan is plan and plan.requests == [recorded]
    assert recorded.wait() == "complete" and recorded.status == 200

    session.post(emu.url(YLOKH_PATH), data=b"not json", timeout=TIMEOUT)
    assert emu.requests[-1].json is None and emu.requests[-1].status == 400
    emu.plan(reply="pending")
    emu.reset()
    assert emu.requests == []
    with post(session, emu, "gprochat") as response:
        assert response.text == reply_for(MESSAGES)  # the pending plan was forgotten


def test_client_disconnect_is_observed(emu: Emulator, session: requests.Session) -> None:
    plan = emu.plan(long_reply=5000, pace=0.05)
    response = post(session, emu, "flowgpt")
    next(response.iter_content(None))
    response.close()
    assert plan.wait() == "client-disconnected"
    assert plan.requests[0].outcome == "client-disconnected"


def test_client_disconnect_during_step(emu: Emulator) -> None:
    plan = emu.plan(step=True)
    with raw(emu, "ylokh") as response:
        response.chunk()
        response.chunk()
    assert plan.wait() == "client-disconnected"
