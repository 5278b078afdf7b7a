"""``stream.display()`` with a stand-in for IPython (the real kernel runs in
``tests/jupyter``): how often it updates, what it renders, and printing elsewhere."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from typing import Any, List

import pytest

from llmproviders import Finish, ReasoningDelta, RefusalDelta, Stream, StreamInterruptedError, ToolCallDelta, Usage
from llmproviders import _display


class FakeHandle:
    def __init__(self, shown: List[str]) -> None:
        self.shown = shown

    def update(self, obj: Any) -> None:
        self.shown.append(obj.data)


class FakeIPython:
    """Just enough of IPython for ``_display``: a kernel shell, Markdown and display()."""

    def __init__(self) -> None:
        self.shown: List[str] = []  # every Markdown shown or updated, in order
        self.raw: List[Any] = []  # what was displayed raw (a mimebundle)
        self.shell = types.SimpleNamespace(kernel=object(), execution_count=7)
        ipython = types.ModuleType("IPython")
        ipython.get_ipython = lambda: self.shell
        display = types.ModuleType("IPython.display")

        class Markdown:
            def __init__(self, data: str) -> None:
                self.data = data

        def show(obj: Any, display_id: Any = None, raw: bool = False) -> Any:
            if raw:
                self.raw.append(obj)
                return None
            self.shown.append(obj.data)
            return FakeHandle(self.shown) if display_id else None

        display.Markdown, display.display = Markdown, show
        ipython.display = display
        self.modules = {"IPython": ipython, "IPython.display": display}


@pytest.fixture
def ipython(monkeypatch):
    fake = FakeIPython()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def paced(items, pause: float = 0.0):
    for item in items:
        if pause:
            time.sleep(pause)
        yield item


def test_a_fast_stream_updates_at_most_every_100_ms(ipython):
    pieces = [f"{n} " for n in range(60)]
    started = time.monotonic()
    stream = Stream(paced(pieces, 0.01), provider="Fake", model="m").display()
    elapsed = time.monotonic() - started
    assert stream.text == "".join(pieces) and stream.outcome == "complete"
    live = ipython.shown[1:-1]  # the first is the placeholder, the last the final rendering
    assert 2 <= len(live) <= elapsed / _display.UPDATE_INTERVAL + 2, (len(live), elapsed)
    assert ipython.shown[0] == "*…*"
    assert ipython.shown[-1].startswith("".join(pieces) + "\n\n<sub>Fake · m · first token ")


def test_text_that_arrives_before_a_pause_is_shown_during_the_pause(ipython):
    seen = threading.Event()

    def source():
        yield "first "
        yield "second "  # within 100 ms of the first update: held back for a moment
        seen.wait(10)  # a long pause: the display must not wait for the next piece
        yield "third"

    def watch():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("first second" in shown for shown in ipython.shown):
            time.sleep(0.01)
        seen.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    Stream(source(), provider="Fake", model="m").display()
    watcher.join()
    assert time.monotonic() - started < 5  # the pause ended because the text was shown
    assert any(shown.startswith("first second ") and "third" not in shown for shown in ipython.shown)


def test_reasoning_refusal_tool_calls_and_usage(ipython):
    events = [
        ReasoningDelta("Думаю:\n"), ReasoningDelta("```python\nprint(1)"),  # a code block left open
        "Ответ ", RefusalDelta("Нельзя."),
        ToolCallDelta(0, "call_1", "get_weather", '{"city": '), ToolCallDelta(0, None, None, '"Paris"}'),
        ToolCallDelta(1, "call_2", "broken", "not json ```"),
        Usage(12, 5, 17), Finish("tool_calls"),
    ]
    stream = Stream(iter(events), provider="Fake", model="m").display()
    final = ipython.shown[-1]
    details, rest = final.split("</details>")
    assert details == "<details><summary>Reasoning</summary>\n\nДумаю:\n```python\nprint(1)\n```\n\n"
    assert rest.startswith("\n\nОтвет \n\n> **Refusal:** Нельзя.\n\n````json\n")  # a fence longer than ``` inside
    assert '"arguments": {\n      "city": "Paris"\n    }' in rest and '"arguments": "not json ```"' in rest
    assert "<sub>Fake · m · 17 tokens (12 in, 5 out) · first token" in rest
    assert [call.name for call in stream.tool_calls] == ["get_weather", "broken"]


def test_a_failure_is_shown_then_raised_with_the_partial_text(ipython):
    def source():
        yield "Начало "
        raise StreamInterruptedError("Fake: the connection broke", provider="Fake")

    stream = Stream(source(), provider="Fake", model="m")
    with pytest.raises(StreamInterruptedError) as info:
        stream.display()
    assert info.value.partial == "Начало " == stream.text
    assert ipython.shown[-1].startswith("Начало \n\n*(failed: StreamInterruptedError: Fake: the connection broke)*")


def test_an_open_stream_is_shown_as_a_note_and_not_read(ipython):
    read = []

    def source():
        read.append(True)
        yield "never"

    stream = Stream(source(), provider="Fake", model="m")
    note = stream._repr_markdown_()
    assert "not read yet" in note and "stream.display()" in note
    stream._ipython_display_()
    assert ipython.raw == [{"text/markdown": note, "text/plain": repr(stream)}]
    assert read == [] and stream.outcome is None
    stream.close()


def test_a_displayed_stream_is_not_shown_again_as_the_cells_result(ipython):
    stream = Stream(iter(["Готово"]), provider="Fake", model="m").display()
    stream._ipython_display_()  # the echo of display()'s return value, in the same cell
    assert ipython.raw == []
    ipython.shell.execution_count += 1  # a later cell shows it, with the timings measured
    stream._ipython_display_()
    (bundle,) = ipython.raw
    assert bundle["text/markdown"] == stream._repr_markdown_()
    assert bundle["text/markdown"].startswith("Готово\n\n<sub>Fake · m · first token ")


def test_outside_ipython_the_deltas_go_to_stdout(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    stream = Stream(iter(["Привет, ", "мир"]), provider="Fake", model="m")
    assert stream.display() is stream and stream.outcome == "complete"
    assert capsys.readouterr().out == "Привет, мир\n"


def test_a_terminal_ipython_prints_too(monkeypatch, capsys, ipython):
    ipython.shell = types.SimpleNamespace(execution_count=1)  # no kernel: TerminalInteractiveShell
    Stream(iter(["text"]), provider="Fake", model="m").display()
    assert capsys.readouterr().out == "text\n" and ipython.shown == []


def test_display_async_in_a_kernel(ipython):
    from llmproviders import AsyncStream

    events = [ReasoningDelta("Хм."), "Да", ".", Finish("stop")]  # (a plain iterator gives text as str)

    async def main():
        astream = AsyncStream(Stream(iter(events), provider="Fake", model="m"))
        return await _display.display_async(astream)

    astream = asyncio.run(main())
    assert astream._stream.text == "Да."
    assert ipython.shown[-1].startswith("<details><summary>Reasoning</summary>\n\nХм.\n\n</details>\n\nДа.\n\n<sub>Fake")


def test_display_async_outside_ipython(monkeypatch, capsys):
    from llmproviders import AsyncStream

    monkeypatch.delitem(sys.modules, "IPython", raising=False)

    async def main():
        return await _display.display_async(AsyncStream(Stream(iter(["a", "b"]), provider="Fake", model="m")))

    asyncio.run(main())
    assert capsys.readouterr().out == "ab\n"
