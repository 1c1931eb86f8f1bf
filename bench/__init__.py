"""Benchmarks: each prints its figures as the median of several runs on fresh data."""
