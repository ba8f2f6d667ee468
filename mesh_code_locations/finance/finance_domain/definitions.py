"""The finance domain's code location: the components in defs/, loaded the Dagster way."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
