"""The command line's ``emulator`` and ``demo`` commands: bind failures and bad values are one
line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import errno
import os
import pathlib
import socket
import subprocess
import sys
from typing import Any, List

import pytest

from llmproviders import __main__ as cli
from llmproviders.testing import Emulator

ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT = 60  # for a whole child process


def run(*args: str) -> "subprocess.CompletedProcess[str]":
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROVIDERS_")}
    return subprocess.run(
        [sys.executable, "-m", "llmproviders", *args],
        cwd=ROOT,
        env={**environment, "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
    )


def one_line_error(result: "subprocess.CompletedProcess[str]") -> str:
    assert result.returncode == 2, result
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_emulator_on_a_port_in_use() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        line = one_line_error(run("emulator", "--port", str(port)))
    assert f"127.0.0.1:{port}" in line and "Address already in use" in line and "--port 0" in line


def test_emulator_on_a_host_that_is_not_local() -> None:
    line = one_line_error(run("emulator", "--host", "192.0.2.1", "--port", "0"))
    assert "192.0.2.1:0" in line and "assign requested address" in line


@pytest.mark.parametrize(
    "args",
    [
        ["emulator", "--pace", "-1"],
        ["emulator", "--pace", "nan"],
        ["emulator", "--pace", "soon"],
        ["emulator", "--port", "70000"],
        ["emulator", "--port", "-5"],
        ["demo", "--pace", "-0.5"],
        ["demo", "--pace", "inf"],
    ],
)
def test_bad_values_are_usage_errors(args: List[str]) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    assert f"argument {args[1]}:" in result.stderr.splitlines()[-1]


def test_demo_reports_a_bind_failure_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    def refuse(self: Emulator) -> Emulator:
        raise OSError(errno.EADDRNOTAVAIL, os.strerror(errno.EADDRNOTAVAIL))

    monkeypatch.setattr(Emulator, "start", refuse)
    assert cli.main(["demo", "--pace", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: cannot serve the emulator on 127.0.0.1:0: {os.strerror(errno.EADDRNOTAVAIL)}\n"
