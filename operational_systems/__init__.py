"""Simulated operational systems of the sample mesh (not part of the platform)."""
