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

from llmproviders.testing import FLOWGPT_PATH, GPROCHAT_PATH, OPENAI_MODELS, OPENAI_MODELS_PATH, YLOKH_PATH, Emulator, reply_for, thinking_for

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


OPENAI = ["--provider", "OpenAICompatible", "--timeout", "10"]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_reasoning_goes_to_stderr_when_piped_and_can_be_hidden(emulator):
    question = [{"role": "user", "content": "2+2?"}]
    for dialect in ("reasoning_content", "reasoning", "think"):
        base = ["chat", *OPENAI, "--base-url", emulator.base_url + "/v1", "--model", f"qwen3@reasoning={dialect}", "2+2?"]
        result = run(*base)
        assert result.returncode == 0, result.stderr
        assert result.stdout == reply_for(question) + "\n"  # the answer alone, not dimmed: stdout is a pipe
        assert result.stderr == thinking_for(question) + "\n"
        hidden = run(*base, "--hide-reasoning")
        assert (hidden.stdout, hidden.stderr) == (reply_for(question) + "\n", "")


def test_tool_calls_are_printed_as_one_json_object_per_line(emulator):
    emulator.plan(reply="Сейчас посмотрю.", tool_calls=[
        {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_a"},
        {"name": "get_time", "arguments": '{"zone": "CET"}', "id": "call_b"},
    ])
    result = run("chat", *OPENAI, "--base-url", emulator.base_url + "/v1", "--model", "m", "-o", "tools=" + json.dumps([WEATHER]), "Погода?")
    assert result.returncode == 0, result.stderr
    text, *calls = result.stdout.splitlines()
    assert text == "Сейчас посмотрю."
    assert [json.loads(line) for line in calls] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}},
    ]
    assert emulator.requests[-1].json["tools"] == [WEATHER]


def test_options_are_json_when_they_parse_and_strings_otherwise(emulator):
    result = run(
        "chat", *OPENAI, "--base-url", emulator.base_url + "/v1", "--model", "m", "-o", "temperature=0.25",
        "--option", 'stop=["\\n", "КОНЕЦ"]', "-o", "user=alice", "-o", "seed=7", "-o", "extra_body={\"top_k\": 3}",
        "-o", "max_tokens = 50", "Привет",
    )
    assert result.returncode == 0, result.stderr
    body = emulator.requests[-1].json
    assert (body["temperature"], body["stop"], body["user"], body["seed"], body["top_k"]) == (0.25, ["\n", "КОНЕЦ"], "alice", 7, 3)
    assert body["max_tokens"] == 50
    refused = run("chat", "--emulator", "-o", "temperature=9", "hi")
    assert_one_line_error(refused, "temperature")
    assert_one_line_error(run("chat", "--emulator", "-o", "top_k=3", "hi"), "FlowGpt does not accept option(s) top_k")
    for bad, message in (("novalue", "expected KEY=VALUE"), ("=1", "expected KEY=VALUE"), ("model=x", "use --model")):
        result = run("chat", "--emulator", "-o", bad, "hi")
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_continue_a_saved_conversation_with_one_piped_question(emulator, tmp_path):
    from llmproviders import Conversation, Ylokh

    chat = Conversation(Ylokh, system="Кратко.", base_url=emulator.base_url, timeout=10)
    first = "".join(chat.send("Привет"))
    saved = tmp_path / "chat.json"
    saved.write_text(json.dumps(chat.to_dict(), ensure_ascii=False), encoding="utf-8")
    result = run("chat", "--continue", str(saved), "--base-url", emulator.base_url, input="А дальше?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == reply_for("А дальше?") + "\n"
    assert emulator.requests[-1].path == YLOKH_PATH
    assert emulator.requests[-1].json["messages"] == [
        {"role": "system", "content": "Кратко."},
        {"role": "user", "content": "Привет"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "А дальше?"},
    ]
    missing = run("chat", "--continue", str(tmp_path / "nothing.json"), "hi")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    bad = run("chat", "--continue", str(tmp_path / "bad.json"), "hi")
    assert bad.returncode == 2 and "not a saved conversation" in bad.stderr


def test_models_lists_a_servers_models():
    key = "sk-models-0f9e8d"
    with Emulator(api_key=key) as emu:
        result = run("models", "--base-url", emu.base_url + "/v1", "--api-key", key)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == list(OPENAI_MODELS)
        listing = json.loads(run("models", "--base-url", emu.base_url + "/v1", "--json", LLMPROVIDERS_API_KEY=key).stdout)
        assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == list(OPENAI_MODELS)
        refused = run("models", "--base-url", emu.base_url + "/v1", "--api-key", "sk-wrong-0f9e8d")
        assert_one_line_error(refused, "401")
        assert "0f9e8d" not in refused.stderr
    assert run("models", "--emulator").stdout.splitlines() == list(OPENAI_MODELS)
    assert run("models", "--provider", "FlowGpt").stdout.splitlines()[:2] == ["gpt-3.5-turbo", "gpt-3.5-long"]
    nowhere = run("models")
    assert nowhere.returncode == 2 and "--base-url" in nowhere.stderr


def test_continue_keeps_a_saved_retry_provider(emulator, tmp_path):
    from llmproviders import Conversation, RetryProvider

    chat = Conversation(RetryProvider(["GPROChat", "FlowGpt"]), base_url=emulator.base_url, timeout=10)
    first = "".join(chat.send("Первый"))
    saved = tmp_path / "retry.json"
    saved.write_text(json.dumps(chat.to_dict(), ensure_ascii=False), encoding="utf-8")
    before = len(emulator.requests)
    emulator.plan(status=500, times=3)  # GPROChat fails (with its retries): FlowGpt answers
    result = run("chat", "--continue", str(saved), "--base-url", emulator.base_url, "Второй")
    assert result.returncode == 0, result.stderr
    assert result.stdout == reply_for("Второй") + "\n"
    assert [r.path for r in emulator.requests[before:]] == [GPROCHAT_PATH] * 3 + [FLOWGPT_PATH]
    last = emulator.requests[-1]
    assert last.path == FLOWGPT_PATH
    assert last.json["history"][1:] == [{"role": "user", "content": "Первый"}, {"role": "assistant", "content": first}]
