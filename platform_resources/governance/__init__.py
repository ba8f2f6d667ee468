"""Federated computational governance: policies as code."""
