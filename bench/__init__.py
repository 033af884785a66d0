"""Benchmarks of the gateway (not shipped in the wheel): ``python -m bench.ingest``."""
