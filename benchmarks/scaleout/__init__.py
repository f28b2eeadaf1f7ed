"""Scale-out benchmark: `python -m benchmarks.scaleout` (see __main__.py)."""
