"""Benchmarks: run with `python -m benchmarks.run` from the repository root."""
