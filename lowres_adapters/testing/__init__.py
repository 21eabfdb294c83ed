"""Helpers for testing lowres-adapters and its plugins: conformance checks, tiny models, a loopback Hub."""
