"""``stream.display()`` and ``Conversation`` in a real kernel: ``display.ipynb``, executed
cell by cell by nbclient in an ipykernel, against an emulator this test controls.

The notebook runs once (a kernel costs seconds to start); each test checks one
promise on what it produced: the live updates each cell sent (every
``update_display_data`` message, recorded as it arrived), the final outputs, and
what the emulator saw.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
from collections import defaultdict
from typing import Any, Dict, List

import nbclient
import nbformat
import pytest

from llmproviders.testing import FLOWGPT_PATH, Emulator, pieces_for, reply_for, thinking_for

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
PACE = 0.15  # seconds between the paced reply's pieces: ~1 s for the whole reply
SLOW = [{"role": "user", "content": "Прервите меня"}]

pytestmark = pytest.mark.timeout(300)


class RecordingClient(nbclient.NotebookClient):
    """Records the Markdown of every display update, per cell, as it arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updates: Dict[int, List[str]] = defaultdict(list)

    def process_message(self, msg: Dict[str, Any], cell: Any, cell_index: int) -> Any:
        if msg["msg_type"] == "update_display_data":
            self.updates[cell_index].append(msg["content"]["data"].get("text/markdown", ""))
        return super().process_message(msg, cell, cell_index)


def code_cells(notebook: Any) -> List[int]:
    return [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


def displayed(cell: Any) -> List[str]:
    """The Markdown of every display output of ``cell`` (as it finally reads)."""
    return [
        output["data"]["text/markdown"]
        for output in cell.outputs
        if output.output_type in ("display_data", "execute_result") and "text/markdown" in output.get("data", {})
    ]


def stdout_of(cell: Any) -> str:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.fixture(scope="module")
def run():
    """Execute the notebook; interrupt the kernel while the slow cell's reply streams."""
    notebook = nbformat.read(HERE / "display.ipynb", as_version=4)
    cells = code_cells(notebook)
    setup, paced, reasoning, tools, chat_one, chat_two, slow, after_slow, pending, after_pending = cells
    result: Dict[str, Any] = {"notebook": notebook, "cells": dict(zip(
        ["setup", "paced", "reasoning", "tools", "chat_one", "chat_two", "slow", "after_slow", "pending", "after_pending"],
        cells,
    ))}
    with Emulator(step_timeout=60) as emulator:  # a loaded machine may take a while to interrupt
        client = RecordingClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}, allow_errors=True
        )
        result["client"], result["emulator"] = client, emulator
        environment = {**os.environ, "EMULATOR_URL": emulator.base_url}
        environment = {k: v for k, v in environment.items() if not k.startswith("LLMPROVIDERS_")}
        with client.setup_kernel(env=environment):
            for index in (setup,):
                client.execute_cell(notebook.cells[index], index)
            result["paced_plan"] = emulator.plan(path=FLOWGPT_PATH, pace=PACE)
            for index in (paced, reasoning, tools, chat_one, chat_two):
                client.execute_cell(notebook.cells[index], index)

            # The slow reply: the server sends one piece per advance(); once the display
            # shows two pieces, interrupt the kernel.
            plan = emulator.plan(path=FLOWGPT_PATH, step=True)
            shown = "".join(pieces_for(reply_for(SLOW))[:2])
            interrupter = threading.Thread(target=_interrupt_when_shown, args=(client, plan, slow, shown, result))
            interrupter.start()
            try:
                client.execute_cell(notebook.cells[slow], slow)
            finally:
                interrupter.join(60)
            for index in (after_slow, pending, after_pending):
                client.execute_cell(notebook.cells[index], index)
    return result


def _interrupt_when_shown(client: RecordingClient, plan: Any, cell: int, shown: str, result: Dict[str, Any]) -> None:
    deadline = time.monotonic() + 60
    while not plan.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    plan.advance()  # the second piece (the first went without waiting)
    while not any(shown in update for update in client.updates[cell]) and time.monotonic() < deadline:
        time.sleep(0.02)
    result["shown_before_interrupt"] = list(client.updates[cell])
    interrupted_at = time.monotonic()
    asyncio.run(client.km.interrupt_kernel())  # what the notebook's Interrupt button does
    result["slow_outcome"] = plan.wait(timeout=30)
    result["closed_after"] = time.monotonic() - interrupted_at


def cell(run: Dict[str, Any], name: str) -> Any:
    return run["notebook"].cells[run["cells"][name]]


def test_the_final_markdown_holds_the_whole_reply_and_a_footer(run):
    expected = reply_for("Расскажи о потоках")
    (final,) = displayed(cell(run, "paced"))
    assert expected in final
    assert "FlowGpt" in final and "gpt-3.5-turbo" in final and "first token" in final and "total" in final
    assert stdout_of(cell(run, "paced")) == f"complete {len(expected)}\n"  # display() returned the stream, read


def test_a_paced_stream_updates_the_display_several_times(run):
    updates = run["client"].updates[run["cells"]["paced"]]
    expected = reply_for("Расскажи о потоках")
    # The reply comes in len(pieces) pieces, PACE seconds apart: at most one update per
    # 100 ms still leaves one per piece or so; a few must have been sent, growing.
    assert len(updates) >= 3, updates
    assert run["paced_plan"].wait(10) == "complete"
    growing = [update for update in updates if update.startswith("Вы")]
    assert len(growing) >= 2 and any(expected not in update for update in growing)
    assert expected in updates[-1]


def test_reasoning_is_collapsed_and_tokens_are_counted(run):
    (final,) = displayed(cell(run, "reasoning"))
    question = [{"role": "user", "content": "2+2?"}]
    assert final.startswith("<details><summary>Reasoning</summary>")
    assert thinking_for(question) in final.split("</details>")[0]
    answer = final.split("</details>")[1]
    assert reply_for(question) in answer and thinking_for(question) not in answer
    assert "tokens (" in final  # the server reported usage


def test_tool_calls_are_a_json_code_block(run):
    (final,) = displayed(cell(run, "tools"))
    assert "```json" in final and '"name": "get_weather"' in final and '"city": "Paris"' in final


def test_a_conversation_runs_over_two_cells(run):
    first, second = cell(run, "chat_one"), cell(run, "chat_two")
    # display()'s return value, the cell's result, is not shown a second time
    assert displayed(first) == [d for d in displayed(first) if reply_for("Привет!") in d] and len(displayed(first)) == 1
    assert reply_for("Как дела?") in displayed(second)[0]
    assert stdout_of(second) == "['system', 'user', 'assistant', 'user', 'assistant']\n"
    (request,) = run["emulator"].requests_for("Как дела?")
    assert request.json["history"][1:] == [
        {"role": "user", "content": "Привет!"},
        {"role": "assistant", "content": reply_for("Привет!")},
    ]
    assert request.json["system"] == "Answer briefly."


def test_an_interrupt_closes_the_connection_and_leaves_the_partial_text(run):
    slow = cell(run, "slow")
    shown = "".join(pieces_for(reply_for(SLOW))[:2])
    assert any(shown in update for update in run["shown_before_interrupt"])
    assert run["slow_outcome"] == "client-disconnected"  # the server saw the connection close
    assert run["closed_after"] < 10  # (within a second on an idle machine; this one is shared)
    errors = [o for o in slow.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["KeyboardInterrupt"]  # the interrupt still ends the cell
    (final,) = displayed(slow)
    assert shown in final and "(interrupted)" in final and reply_for(SLOW) not in final
    assert stdout_of(cell(run, "after_slow")).split()[0] in ("failed", "closed")  # (where the interrupt landed)
    assert repr(shown) in stdout_of(cell(run, "after_slow"))  # the partial text stays in stream.text


def test_showing_an_open_stream_does_not_read_it(run):
    (note,) = displayed(cell(run, "pending"))
    assert "not read yet" in note and "stream.display()" in note
    assert stdout_of(cell(run, "after_pending")) == "None ''\n"
    assert run["emulator"].requests_for("Не читай меня") == []

