"""``python -m tests.benchmarks [workload ...]``: see ``run.py``."""

from .run import main

main()
