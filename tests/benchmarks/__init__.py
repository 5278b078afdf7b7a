"""Benchmarks of llmproviders against the floor of what requests can do and against
peer clients: throughput, delivery latency, concurrency, memory and many streams.

``python -m tests.benchmarks`` runs all five and writes ``results/RESULTS.md`` and
``results/throughput.png``; ``python -m pytest`` does not collect them.
"""
