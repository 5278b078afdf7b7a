"""The interactive ``chat``, driven through a pseudo-terminal as a person types: the child
has the terminal as its controlling terminal, so Ctrl-C and Ctrl-D are the terminal's
own (a SIGINT to the foreground process group; end of input)."""

from __future__ import annotations

import json
import os
import pathlib
import pty
import re
import select
import subprocess
import sys
import time
from typing import List

import pytest

from llmproviders.testing import YLOKH_PATH, pieces_for, reply_for, thinking_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The child makes the terminal its controlling terminal, then runs the command line.
LAUNCH = (
    "import fcntl, runpy, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "sys.argv = ['llmproviders'] + sys.argv[1:]; runpy.run_module('llmproviders', run_name='__main__', alter_sys=True)"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WAIT = 30  # seconds for any one thing to appear (a loaded machine starts Python slowly)

pytestmark = pytest.mark.timeout(120)


class Terminal:
    """``python -m llmproviders ARGS`` on a pseudo-terminal."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROVIDERS_")}
        environment.update(PYTHONIOENCODING="utf-8", TERM="xterm", COLUMNS="200")
        environment.pop("NO_COLOR", None)
        self.child = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args],
            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=environment, start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.raw = b""  # everything the terminal showed
        self.seen = 0  # where the next expect() starts looking

    @property
    def screen(self) -> str:
        """What the terminal showed, without escape sequences and carriage returns."""
        return ANSI.sub("", self.raw.decode("utf-8", "replace")).replace("\r", "")

    def expect(self, text: str, timeout: float = WAIT) -> str:
        """Wait until ``text`` appears after what earlier calls found; return what came before it."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen
            found = screen.find(text, self.seen)
            if found >= 0:
                before, self.seen = screen[self.seen : found], found + len(text)
                return before
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} did not appear; the terminal shows:\n{screen}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # the child is gone
                    data = b""
                if not data:
                    assert False, f"{text!r} did not appear before the end; the terminal shows:\n{screen}"
                self.raw += data

    def type(self, text: str) -> None:
        os.write(self.master, text.encode("utf-8"))

    def interrupt_at_prompt(self) -> None:
        """Ctrl-C once the prompt is up. (Python's readline loop writes the prompt, then
        waits in select(); a SIGINT that lands between the two is only noticed at the
        next key, so a test that types at machine speed waits a little first.)"""
        time.sleep(0.5)
        self.type("\x03")

    def exit_status(self, timeout: float = WAIT) -> int:
        deadline = time.monotonic() + timeout
        while self.child.poll() is None:
            assert time.monotonic() < deadline, f"the chat did not exit; the terminal shows:\n{self.screen}"
            self.drain()
            time.sleep(0.05)
        self.drain()
        return self.child.returncode

    def drain(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0)
            if not ready:
                return
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.raw += data

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait(WAIT)
        os.close(self.master)


@pytest.fixture
def terminals():
    opened: List[Terminal] = []

    def start(*args: str) -> Terminal:
        terminal = Terminal(*args)
        opened.append(terminal)
        return terminal

    yield start
    for terminal in opened:
        terminal.close()


def sent_messages(emulator):
    return [request.json["messages"] for request in emulator.requests if request.path == YLOKH_PATH]


def test_a_chat_remembers_undoes_saves_and_resumes(emulator, terminals, tmp_path):
    saved = tmp_path / "разговор.json"
    chat = terminals("chat", "--provider", "Ylokh", "--base-url", emulator.base_url, "--system", "Кратко.")
    chat.expect("Chatting with Ylokh (gpt-3.5-turbo)")
    chat.expect("> ")
    chat.type("Привет\r")
    assert reply_for("Привет") in chat.expect("> ")
    chat.type("Как дела?\r")
    assert reply_for("Как дела?") in chat.expect("> ")
    system = {"role": "system", "content": "Кратко."}
    first = [{"role": "user", "content": "Привет"}, {"role": "assistant", "content": reply_for("Привет")}]
    assert sent_messages(emulator)[-1] == [system, *first, {"role": "user", "content": "Как дела?"}]

    chat.type("/undo\r")
    assert "(removed the last exchange: 2 messages)" in chat.expect("> ")
    chat.type(f"/save {saved}\r")
    assert f"(saved 2 messages to {saved}" in chat.expect("> ")
    assert json.loads(saved.read_text(encoding="utf-8"))["messages"] == first
    chat.type("Третий\r")
    chat.expect(reply_for("Третий"))
    chat.expect("> ")
    assert sent_messages(emulator)[-1] == [system, *first, {"role": "user", "content": "Третий"}]
    chat.type("/reset\r")
    assert "(the conversation is empty again)" in chat.expect("> ")
    chat.type("/nonsense\r")
    assert "unknown command /nonsense" in chat.expect("> ")
    chat.type("\x04")  # Ctrl-D at the prompt
    assert chat.exit_status() == 0

    resumed = terminals("chat", "--continue", str(saved), "--base-url", emulator.base_url)
    resumed.expect("Chatting with Ylokh (gpt-3.5-turbo)")
    resumed.expect("(continuing a conversation of 2 messages)")
    resumed.type("Снова\r")
    resumed.expect(reply_for("Снова"))
    assert sent_messages(emulator)[-1] == [system, *first, {"role": "user", "content": "Снова"}]
    resumed.type("/exit\r")
    assert resumed.exit_status() == 0


def test_ctrl_c_stops_a_reply_and_the_chat_goes_on_and_at_the_prompt_exits(emulator, terminals):
    plan = emulator.plan(path=YLOKH_PATH, step=True)  # one piece, then the server waits
    first_piece = pieces_for(reply_for("Медленно"))[0]
    chat = terminals("chat", "--provider", "Ylokh", "--base-url", emulator.base_url, "--timeout", "30")
    chat.expect("> ")
    chat.type("Медленно\r")
    chat.expect(first_piece)
    chat.type("\x03")  # Ctrl-C during the reply
    assert plan.wait(WAIT) == "client-disconnected"  # that reply's connection was closed
    assert "(stopped: the partial reply stays in the conversation; /undo removes it)" in chat.expect("> ")
    chat.type("Дальше\r")
    chat.expect(reply_for("Дальше"))
    assert sent_messages(emulator)[-1] == [
        {"role": "user", "content": "Медленно"},
        {"role": "assistant", "content": first_piece},  # what was shown, kept (never marked "partial" on the wire)
        {"role": "user", "content": "Дальше"},
    ]
    chat.expect("> ")
    chat.interrupt_at_prompt()
    assert chat.exit_status() == 130


def test_reasoning_is_dimmed_and_tool_calls_are_json_lines_on_a_terminal(emulator, terminals):
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    chat = terminals(
        "chat", "--provider", "OpenAICompatible", "--model", "qwen3@reasoning=reasoning_content",
        "--base-url", emulator.base_url + "/v1", "-o", "tools=" + json.dumps([weather]), "-o", "temperature=0.2",
    )
    chat.expect("> ")
    chat.type("Париж\r")
    shown = chat.expect("> ")
    question = [{"role": "user", "content": "Париж"}]
    assert f"\x1b[2m{thinking_for(question)}\x1b[0m" in chat.raw.decode()  # dimmed, then the answer
    (line,) = [line for line in shown.splitlines() if line.startswith("{")]
    call = json.loads(line)
    assert call["type"] == "function" and call["function"] == {"name": "get_weather", "arguments": '{"city": "Париж"}'}
    assert emulator.requests[-1].json["temperature"] == 0.2
    chat.type("/exit\r")
    assert chat.exit_status() == 0


def test_an_error_ends_the_reply_not_the_chat(emulator, terminals):
    emulator.plan(path=YLOKH_PATH, status=400, body={"error": {"message": "плохой запрос", "type": "invalid_request_error"}})
    chat = terminals("chat", "--provider", "Ylokh", "--base-url", emulator.base_url)
    chat.expect("> ")
    chat.type("Раз\r")
    assert "error: " in chat.expect("> ") and "плохой запрос" in chat.screen
    chat.type("Два\r")
    chat.expect(reply_for("Два"))
    assert sent_messages(emulator)[-1] == [{"role": "user", "content": "Два"}]  # the failed turn left nothing
    chat.expect("> ")
    chat.type("\x04")
    assert chat.exit_status() == 0
