"""Reproducible benchmarks for jobq: `python -m bench` (see bench/README.md)."""
