"""The ``batch`` command line, run as users run it: ``python -m llmproviders batch ...``
in a subprocess, against the emulator running here."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from llmproviders.__main__ import main as cli_main
from llmproviders.testing import Emulator, Flaky, reply_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUESTIONS = [f"Строка {n}: {'FAIL ' if n == 3 else ''}что нового?" for n in range(8)]
# Retries wait only the 429's Retry-After (0.05 s), so the child's default policy is quick.
FLAKY = Flaky(rate=0.5, kinds=("429",), retry_after=0.05, seed=2, max_failures=1, permanent="429")


def run(*args, input=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROVIDERS_")}
    environment["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "llmproviders", "batch", *args],
        cwd=ROOT, env=environment, input=input, capture_output=True, text=True, encoding="utf-8", timeout=60,
    )


def write_input(path: pathlib.Path) -> None:
    lines = [json.dumps({"id": f"line{n}", "prompt": q}, ensure_ascii=False) for n, q in enumerate(QUESTIONS)]
    lines.insert(2, "")  # blank lines are skipped
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_jsonl(path: pathlib.Path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_batch_runs_resumes_and_exports(tmp_path):
    source, db, out = tmp_path / "in.jsonl", tmp_path / "results.db", tmp_path / "out.jsonl"
    write_input(source)
    with Emulator(flaky=FLAKY) as emulator:
        options = ["-o", f"base_url={emulator.base_url}", "-o", "timeout=10", "-o", "max_retries=2"]
        first = run(str(source), "--provider", "flowgpt", "--workers", "3", "--rate", "50/s", "--db", str(db),
                    "--out", str(out), *options)
        sent = len(emulator.requests)
        again = run(str(source), "--provider", "FlowGpt", "--db", str(db), "--out", str(tmp_path / "again.jsonl"), *options)
        assert len(emulator.requests) == sent  # nothing sent again
        assert sum(1 for q in QUESTIONS if FLAKY.failures(q)) >= 3  # there were retries
    assert first.returncode == 1, first.stderr  # an item failed
    assert first.stdout == ""
    results = read_jsonl(out)
    assert [r["id"] for r in results] == [f"line{n}" for n in range(8)] and [r["index"] for r in results] == list(range(8))
    for question, result in zip(QUESTIONS, results):
        if "FAIL" in question:
            assert not result["ok"] and result["text"] is None and result["attempts"] == 3
            assert result["error"]["type"] == "RateLimitError" and result["error"]["status_code"] == 429
            assert len(result["error"]["attempts"]) == 2
        else:
            assert result["ok"] and result["text"] == reply_for(question) and result["error"] is None
            assert result["attempts"] == 1 + (FLAKY.failures(question) or 0)
    summary = first.stderr.splitlines()
    assert any("batch: 7 done, 1 failed, 0 skipped in" in line for line in summary), first.stderr
    assert any(line.startswith("  item 3 (id 'line3'): FlowGpt: ") for line in summary), first.stderr
    assert "Traceback" not in first.stderr
    assert again.returncode == 1 and "batch: 0 done, 1 failed, 7 skipped in" in again.stderr
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in read_jsonl(tmp_path / "again.jsonl")] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in results
    ]
    exported = run("export", str(db), "--out", str(tmp_path / "export.jsonl"))
    assert exported.returncode == 0 and f"exported 8 items from {db}" in exported.stderr
    assert read_jsonl(tmp_path / "export.jsonl") == results  # what --out wrote is what the store has
    to_stdout = run("export", str(db))
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()] == results


def test_stdin_in_stdout_out_and_exit_status_0(tmp_path):
    lines = "\n".join(json.dumps({"messages": [{"role": "user", "content": q}]}) for q in ("один", "два")) + "\n"
    with Emulator() as emulator:
        result = run("-", "--provider", "GPROChat", "--no-progress", "-o", f"base_url={emulator.base_url}", input=lines)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == [reply_for("один"), reply_for("два")]
    assert result.stderr.startswith("batch: 2 done, 0 failed, 0 skipped in")  # no progress, just the summary


def main(capsys, *args):
    """The command line in this process (faster than a child; the error paths print
    the same): exit status, stdout, stderr."""
    try:
        status = cli_main(["batch", *args])
    except SystemExit as exit:  # argparse's usage errors
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_usage_errors_exit_2_and_input_errors_name_the_line(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "fine"}\n\n{"prompt": "fine"}\n{"prompt": "x", "options": {"temprature": 1}}\n')
    for args, fragment in [
        ((str(source),), "--provider is required"),
        ((str(source), "--provider", "FlowGpt", "-o", "novalue"), "-o takes key=value"),
        (("export",), "export needs the store"),
        ((str(source), "extra.db", "--provider", "FlowGpt"), "did you mean 'batch export extra.db'"),
        ((str(source), "--provider", "FlowGpt", "--workers", "many"), "invalid int value: 'many'"),
    ]:
        status, out, err = main(capsys, *args)
        assert status == 2 and fragment in err and out == "", (args, err)
    for args, message in [
        ((str(source), "--provider", "FlowGpt", "-o", "base_url=http://127.0.0.1:9"),
         f"error: {source} line 4: FlowGpt does not accept option(s) temprature"),
        ((str(tmp_path / "missing.jsonl"), "--provider", "FlowGpt"), "error: cannot read "),
        ((str(source), "--provider", "NoSuch"), "error: no provider named 'NoSuch'"),
        (("export", str(tmp_path / "missing.db")), "error: no batch store at"),
        ((str(source), "--provider", "FlowGpt", "--rate", "fast"), "error: rate_limit must be a positive rate"),
        ((str(source), "--provider", "FlowGpt", "--workers", "0"), "error: workers must be a whole number >= 1"),
    ]:
        status, out, err = main(capsys, *args)
        assert status == 1 and err.startswith(message) and out == "", (args, err)
        assert len(err.splitlines()) == 1
    source.write_text('{"prompt": "fine"}\nnot json\n')
    status, _, err = main(capsys, str(source), "--provider", "FlowGpt")
    assert status == 1 and err.startswith(f"error: {source} line 2: not JSON")
    source.write_text('["a list"]\n')
    status, _, err = main(capsys, str(source), "--provider", "FlowGpt")
    assert status == 1 and "line 1: each line must be a JSON object with prompt or messages" in err
    source.write_bytes(b'{"prompt": "\xff"}\n')
    status, _, err = main(capsys, str(source), "--provider", "FlowGpt")
    assert status == 1 and "is not UTF-8 text" in err
