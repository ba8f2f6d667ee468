"""`mesh --help`, `mesh read` and `mesh list --help` never import Dagster or dbt: they start at once."""

import subprocess
import sys

import pytest

PROBE = """
import contextlib, io, sys
from platform_resources.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main({argv!r})
heavy = sorted(m for m in ("dagster", "dagster_dbt", "dbt", "sqlalchemy") if m in sys.modules)
print(",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["read", "--help"], ["catalog", "--help"],
                                  ["read", "geography.nations.nations", "--limit", "1"]])
def test_light_commands_import_no_orchestrator(argv, fresh_home):
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    heavy = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert "dagster" not in heavy.split(",") and "dbt" not in heavy.split(","), (argv, heavy)
