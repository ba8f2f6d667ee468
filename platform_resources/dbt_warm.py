"""Imported by `mesh run`'s forkserver (forkserver.PRELOAD): what every dbt command would compute again, computed
once, so that each run worker, and each dbt command forked from it (dbt_fork), starts with it.

dbt validates the project, the profile and the selectors against JSON schemas that mashumaro builds from dbt's
dataclasses on first use and keeps for the process; dbt's behavior flags look up the module that calls them, which
makes `inspect` map every loaded module to its file first. A dbt build of geography in a fork took 3.1 s without
this and 2.3 s with it (this costs 0.9 s, once). Neither starts a thread or opens a file a fork would share.
"""

import inspect
import sys

from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.contracts.project import Configuration, PackageConfig, ProfileConfig, Project, ProjectFlags
from dbt.contracts.selection import SelectorFile

for validated in (DuckDBCredentials, Configuration, PackageConfig, ProfileConfig, Project, ProjectFlags, SelectorFile):
    validated.json_schema()
inspect.getmodule(sys._getframe())  # a frame has no module: inspect maps the loaded modules' files
