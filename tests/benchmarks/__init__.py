"""Benchmarks of llmproviders against the floor of what requests can do and against
peer clients: throughput, delivery latency, concurrency and memory.

``python -m tests.benchmarks`` runs all four and writes ``results/RESULTS.md`` and
``results/throughput.png``; ``python -m pytest`` does not collect them.
"""
