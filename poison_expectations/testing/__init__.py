"""Seeded attack generators for tests and benchmarks (not used at run time)."""
