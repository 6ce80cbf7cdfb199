"""Benchmarks (run each as a script) and the helpers they and the tests share."""
