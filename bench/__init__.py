"""Benchmarks: `make bench` (python -m bench [NAME ...]) prints the figures the issues ask for."""
