"""Benchmarks of the accent pipeline: YAMNet embedding throughput and serving latency (``make bench``)."""
