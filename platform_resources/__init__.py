"""The self-serve data mesh platform: turns data product manifests into Dagster code locations."""

from platform_resources.build import build_domain

__all__ = ["build_domain"]
