"""Fake adapters that need no deep-learning framework, for testing isolation and the probes themselves."""
