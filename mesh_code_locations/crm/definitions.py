"""The crm domain's code location: its data products, built by the mesh platform."""

from platform_resources import build_domain

defs = build_domain("crm")
