"""Peer-to-peer layer (contract documented below)."""
