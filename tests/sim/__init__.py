"""Deterministic simulation of a validator network in one process (see harness.py)."""
