"""Diagnostics of a network: gradient checks, health metrics, sanity checks, figures."""
