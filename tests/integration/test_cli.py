"""The command line, run as users run it: ``python -m llmproviders`` in a subprocess."""

import json
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from llmproviders.testing import FLOWGPT_PATH, OPENAI_MODELS_PATH, YLOKH_PATH, Emulator, reply_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT = 60  # for a whole child process
PIECES = ["Один ", "два ", "три 🚀"]


def env(**extra):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROVIDERS_")}
    environment.update(PYTHONIOENCODING="utf-8", **extra)
    return environment


def run(*args, input=None, **extra_env):
    return subprocess.run(
        [sys.executable, "-m", "llmproviders", *args],
        cwd=ROOT, env=env(**extra_env), input=input, capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def read_until(stream, expected: bytes, timeout: float = 10) -> bytes:
    """Read a child's pipe until ``expected`` is in what came, without waiting for more."""
    data = b""
    deadline = time.monotonic() + timeout
    while expected not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"only {data!r} arrived"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            piece = os.read(stream.fileno(), 65536)
            assert piece, f"EOF after {data!r}"
            data += piece
    return data


def test_chat_streams_each_delta_to_stdout_as_it_arrives(emulator):
    plan = emulator.plan(path=FLOWGPT_PATH, pieces=PIECES, step=True)
    command = [sys.executable, "-m", "llmproviders", "chat", "--base-url", emulator.base_url, "--timeout", "10", "Привет"]
    with subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        try:
            received = read_until(child.stdout, PIECES[0].encode())  # the server holds the next piece
            assert received == PIECES[0].encode()
            plan.advance()
            received += read_until(child.stdout, PIECES[1].encode())
            assert PIECES[2].encode() not in received
            plan.advance()
            rest, errors = child.communicate(timeout=TIMEOUT)
        finally:
            child.kill()
    assert child.returncode == 0, errors
    assert (received + rest).decode() == "".join(PIECES) + "\n"
    assert plan.wait() == "complete"


def test_json_lines_are_openai_chunks(emulator):
    result = run("chat", "--base-url", emulator.base_url + "/v1", "--provider", "OpenAICompatible",
                 "--model", "local", "--json", "--timeout", "5", "Привет")
    assert result.returncode == 0, result.stderr
    chunks = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "local" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == reply_for("Привет")
    assert len({c["id"] for c in chunks}) == 1


def test_no_stream_system_message_and_stdin_prompt(emulator):
    result = run("chat", "--emulator", "--provider", "Ylokh", "--no-stream", "--system", "Be brief.", input="Как дела?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == reply_for("Как дела?") + "\n"
    result = run("chat", "--base-url", emulator.base_url, "--provider", "ylokh", "--no-stream", "--json", "--timeout", "5", "Hi")
    completion = json.loads(result.stdout)
    assert completion["object"] == "chat.completion" and completion["usage"]["total_tokens"] > 0
    assert emulator.requests[-1].json["stream"] is False
    assert emulator.requests[-1].path == YLOKH_PATH


@pytest.mark.parametrize("provider", ["FlowGpt", "GPROChat", "Chatgpt4Online", "Ylokh"])
def test_chat_on_the_embedded_emulator(provider):
    result = run("chat", "--emulator", "--provider", provider, "Привет!")
    assert result.returncode == 0, result.stderr
    assert result.stdout == reply_for("Привет!") + "\n"


def test_api_key_option_and_environment():
    key = "sk-cli-7d3e9b1f5a"
    with Emulator(api_key=key) as emu:
        base = ["chat", "--provider", "OpenAICompatible", "--model", "m", "--base-url", emu.base_url + "/v1", "--timeout", "5", "Hi"]
        assert run(*base, "--api-key", key).stdout == reply_for("Hi") + "\n"
        assert run(*base, LLMPROVIDERS_API_KEY=key).stdout == reply_for("Hi") + "\n"
        refused = run(*base, "--api-key", "sk-wrong-7d3e9b1f5a")
        assert_one_line_error(refused, "Incorrect API key")
        assert "7d3e9b1f5a" not in refused.stderr


def test_usage_errors_exit_with_2():
    result = run("chat", input="   \n")
    assert result.returncode == 2 and result.stderr.strip() == "error: no prompt: pass it as arguments or on stdin"
    result = run("chat", "--emulator", "--base-url", "http://127.0.0.1:1", "hi")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
    assert run("nonsense").returncode == 2


def test_errors_are_one_line_on_stderr_with_status_1():
    assert_one_line_error(run("chat", "--provider", "Bing", "hi"), "no provider named 'Bing'", "FlowGpt")
    assert_one_line_error(run("chat", "--emulator", "--model", "gpt-5", "hi"), "gpt-5", "valid models")
    assert_one_line_error(run("chat", "--provider", "OpenAICompatible", "--emulator", "hi"), "--model")
    assert_one_line_error(run("chat", "--provider", "OpenAICompatible", "--model", "m", "hi"), "--base-url")


def test_connection_refused_points_at_the_emulator():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("chat", "--base-url", f"http://127.0.0.1:{port}", "--timeout", "2", "hi")
    assert_one_line_error(result, "Connection refused", "--emulator")


def test_providers_table_lists_all_five_aligned():
    result = run("providers")
    assert result.returncode == 0 and result.stderr == ""
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["PROVIDER", "WORKING"] and "DEFAULT MODEL" in header and "MODELS" in header
    assert [row.split()[0] for row in rows] == ["FlowGpt", "GPROChat", "Chatgpt4Online", "Ylokh", "OpenAICompatible"]
    column = header.index("DEFAULT MODEL")
    assert rows[0][column:].startswith("gpt-3.5-turbo") and rows[4][column:].startswith("- ")
    assert "+10 more" in rows[0]  # FlowGpt's 13 models, shortened
    assert all(len(row) <= 120 for row in rows)


def test_demo_streams_every_provider():
    result = run("demo", "--pace", "0")
    assert result.returncode == 0, result.stderr
    for name in ("FlowGpt", "GPROChat", "Chatgpt4Online", "Ylokh", "OpenAICompatible"):
        assert f"{name} [" in result.stdout
    assert result.stdout.count(reply_for("Привет! What is streaming, in one sentence?")) == 5


def test_emulator_command_serves_with_an_api_key():
    command = [sys.executable, "-m", "llmproviders", "emulator", "--port", "0", "--api-key", "k"]
    with subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        try:
            first = read_until(child.stdout, b"\n").decode()
            url = first.split()[4]
            assert url.startswith("http://127.0.0.1:")
            assert requests.get(url + OPENAI_MODELS_PATH, timeout=5).status_code == 401
            assert requests.get(url + OPENAI_MODELS_PATH, headers={"Authorization": "Bearer k"}, timeout=5).ok
            child.send_signal(signal.SIGINT)
            child.communicate(timeout=TIMEOUT)
        finally:
            child.kill()
    assert child.returncode == 0
