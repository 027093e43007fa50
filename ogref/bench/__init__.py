"""Benchmarks (run as ``python -m ogref.bench.<name>``); measurements only, never assertions."""
