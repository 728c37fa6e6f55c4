"""Benchmarks that print figures (docs/PERFORMANCE.md); run as ``python -m bench.NAME``
from the repository root."""
