"""Workload 6, import (issue 16, target 1): what ``import llmproviders`` costs a script
or a CLI call, against ``import requests`` (which it needs) measured the same way.

Each sample is a fresh interpreter that times one import statement with
``time.perf_counter()`` around it (interpreter start-up is the same for all and left
out); 20 interleaved rounds, bytecode cached (every statement runs once first, with
``PYTHONDONTWRITEBYTECODE`` unset, so the ``.pyc`` files exist).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List

from .harness import ROOT, Check, Section, interleaved, median, table

ROUNDS = 20
TARGET_MS = 10.0
STATEMENTS = {
    "import requests": "import requests",
    "import llmproviders": "import llmproviders",
    "from llmproviders import FlowGpt, OpenAICompatible": "from llmproviders import FlowGpt, OpenAICompatible",
    "import llmproviders; Ylokh.create_completion (first call)": (
        "import llmproviders; llmproviders.Ylokh.create_completion(None, [{'role': 'user', 'content': 'x'}])"
    ),
}
_PROGRAM = "import time; _t = time.perf_counter(); {statement}; print(time.perf_counter() - _t)"


def _environment() -> Dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    environment.pop("PYTHONPROFILEIMPORTTIME", None)
    return environment


def _seconds(statement: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(statement=statement)],
        cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{statement!r} failed: {result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def run(root: str, rounds: int = ROUNDS) -> Section:
    names = list(STATEMENTS)
    for name in names:  # writes the bytecode caches
        _seconds(STATEMENTS[name])
    samples: Dict[str, List[float]] = interleaved(names, lambda name: _seconds(STATEMENTS[name]), rounds)
    base = samples["import requests"]

    def extra_ms(name: str) -> float:
        """The median over the rounds of this statement's time minus requests' in the same round."""
        return median([mine - theirs for mine, theirs in zip(samples[name], base)]) * 1e3

    rows = [[f"`{name}`", f"{median(values) * 1e3:.1f}", f"{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}",
             "" if name == "import requests" else f"{extra_ms(name):+.1f}"]
            for name, values in samples.items()]
    text = (
        f"Each sample is a fresh interpreter timing one statement with `time.perf_counter()`; medians of "
        f"{rounds} interleaved rounds, bytecode cached. The last row adds the first call's lazy imports "
        "(no request is sent: the stream is never iterated).\n\n"
        + table(["statement", "median ms", "(min-max)", "extra vs import requests, ms (median of per-round differences)"], rows)
    )
    print(text + "\n", flush=True)
    checks: List[Check] = []
    for name in ("import llmproviders", "from llmproviders import FlowGpt, OpenAICompatible"):
        extra = extra_ms(name)
        checks.append(Check(f"`{name}` within import requests + {TARGET_MS:g} ms", f"{extra:+.1f} ms", extra <= TARGET_MS))
    return Section("Import", text, checks, {name: median(values) for name, values in samples.items()})
