"""JSON schemas the platform publishes (shipped as package data)."""
