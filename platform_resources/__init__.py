"""The self-serve data mesh platform: turns data product manifests into Dagster code locations.

A domain's code location loads the `DataMeshDomain` component (platform_resources.component) from its defs.yaml.
"""
