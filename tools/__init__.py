"""Tooling that is not part of the product: test-traffic synthesis for the tests, the demo and the benchmarks."""
