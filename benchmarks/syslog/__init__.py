"""Syslog ingest benchmark: `python -m benchmarks.syslog` (see __main__.py)."""
