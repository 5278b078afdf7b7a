"""The benchmarks are not tests: ``python -m pytest`` never collects anything here.
Run them with ``python -m tests.benchmarks`` (see ``run.py``)."""

collect_ignore_glob = ["*"]
