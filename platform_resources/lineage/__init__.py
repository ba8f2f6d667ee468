"""OpenLineage emission for the mesh."""
