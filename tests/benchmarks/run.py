"""Run the benchmark workloads and write ``results/RESULTS.md`` and ``results/throughput.png``.

    pip install -e ".[bench]" && python -m tests.benchmarks            # all eight, about 20 minutes
    python -m tests.benchmarks latency memory                          # some (prints only)
    python -m tests.benchmarks --only import,batch                     # the same

One loopback server process serves every workload (``server.py``); the clients run in
this process, or in fresh child processes where CPU time or RSS is measured.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from . import (
    bench_batch, bench_concurrency, bench_import, bench_latency, bench_many, bench_memory, bench_requests, bench_throughput,
)
from .harness import COMMAND, Section, machine, table, yes
from .server import serve

RESULTS = Path(__file__).resolve().parent / "results"
WORKLOADS: Dict[str, Callable[[str], Section]] = {
    "throughput": bench_throughput.run,
    "latency": bench_latency.run,
    "concurrency": bench_concurrency.run,
    "memory": bench_memory.run,
    "many": bench_many.run,
    "import": bench_import.run,
    "requests": bench_requests.run,
    "batch": bench_batch.run,
}


def chart(ratios: Dict[str, Dict[str, float]], ours: List[str], path: Path) -> None:
    """Horizontal bars of every contender's ratio to the floor, grouped by wire format;
    our providers' labels in bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    bars = [(title.split(" (")[0], name, ratio, index)
            for index, (title, group) in enumerate(ratios.items())
            for name, ratio in group.items() if not name.startswith("floor")]
    palette = ["#4C72B0", "#55A868", "#C44E52", "#8172B2"]
    figure, axes = plt.subplots(figsize=(10, 0.4 * len(bars) + 1.8))
    positions = list(range(len(bars)))[::-1]
    axes.barh(positions, [ratio for _, _, ratio, _ in bars], color=[palette[i % 4] for *_, i in bars])
    for position, (_, _, ratio, _) in zip(positions, bars):
        axes.text(ratio * 1.04, position, f"{ratio:.2f}x", va="center", fontsize=9,
                  bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    axes.set_yticks(positions)
    axes.set_yticklabels([f"{group}: {name}" for group, name, _, _ in bars], fontsize=9)
    for tick, (_, name, _, _) in zip(axes.get_yticklabels(), bars):
        tick.set_fontweight("bold" if name in ours else "normal")
    axes.set_xscale("log")
    axes.set_xlim(0.3, max(ratio for _, _, ratio, _ in bars) * 1.6)  # (bars start at the left edge)
    axes.xaxis.set_major_locator(FixedLocator([0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 40]))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:g}x")
    axes.axvline(1.0, color="black", linewidth=1, label="floor = 1")
    axes.axvline(1.10, color="tab:orange", linestyle="--", label="1.10x target (NDJSON, raw text)")
    axes.axvline(1.25, color="tab:red", linestyle=":", label="1.25x target (SSE)")
    axes.axvline(0.75, color="tab:green", linestyle="-.", label="0.75x / 0.70x targets with orjson (SSE / NDJSON)")
    axes.set_xlabel("time relative to the floor (requests iter_content(None) + split + json.loads), log scale; lower is faster")
    axes.set_title("Throughput, 100,000 deltas per stream: ratio to the floor measured in the same run\n"
                   "(bold: llmproviders)", fontsize=11)
    axes.set_ylim(-0.7, len(bars) + 2.5)  # room above the bars for the legend
    axes.legend(loc="upper right", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def report(sections: List[Section], facts: List[Tuple[str, str]], seconds: float, timings: List[float]) -> str:
    checks = [check for section in sections for check in section.checks]
    met = sum(check.met for check in checks)
    parts = [
        "# Benchmark results",
        f"Written by `python -m tests.benchmarks` in {seconds:.0f} s. Machine:\n\n"
        + table(["", ""], facts),
        f"## Targets: {met} of {len(checks)} met\n\n"
        + table(["target", "measured", "met"], [[c.target, c.measured, yes(c.met)] for c in checks]),
    ]
    parts += [f"## {section.title} ({took:.0f} s)\n\n{section.markdown}" for section, took in zip(sections, timings)]
    parts.insert(3, "![throughput](throughput.png)")
    return "\n\n".join(parts) + "\n"


def selected(argv: List[str]) -> List[str]:
    """The workloads named by ``argv``: names, or ``--only a,b`` (every one if none)."""
    names: List[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--only":
            arg = next(args, "")
        elif arg.startswith("--only="):
            arg = arg[len("--only="):]
        names += [name for name in arg.split(",") if name]
    return names or list(WORKLOADS)


def main(argv: List[str] = sys.argv[1:]) -> None:
    names = selected(argv)
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    started = time.perf_counter()
    facts = machine()  # before the run: the source measured, not what it became meanwhile
    print(table(["", ""], facts) + "\n", flush=True)
    sections, timings = [], []
    with serve() as root:
        for name in names:
            print(f"## {name}\n", flush=True)
            began = time.perf_counter()
            sections.append(WORKLOADS[name](root))
            timings.append(time.perf_counter() - began)
            print(f"({name}: {timings[-1]:.0f} s)\n", flush=True)
    seconds = time.perf_counter() - started
    for check in (check for section in sections for check in section.checks):
        print(f"{'met   ' if check.met else 'MISSED'}  {check.target}: {check.measured}")
    print(f"\ntotal {seconds:.0f} s")
    if names == list(WORKLOADS):  # only a full run replaces the published results
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "RESULTS.md").write_text(report(sections, facts, seconds, timings))
        chart(sections[0].data["ratios"], sections[0].data["ours"], RESULTS / "throughput.png")
        print(f"wrote {RESULTS / 'RESULTS.md'} and {RESULTS / 'throughput.png'}  ({COMMAND})")
