"""Benchmarks: scripts that print numbers (never wall-clock assertions in tests)."""
