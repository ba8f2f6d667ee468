"""The sample operational systems: generation started ahead (as `mesh run` does while it imports Dagster) is the
generation the run then waits for, once."""

import duckdb

from operational_systems import tpch


def test_generation_started_ahead_is_the_one_ensure_waits_for(tmp_path):
    tpch.ensure_started(tmp_path, 0.001)
    assert tpch.ensure(tmp_path, 0.001) is True  # it waited for the generation started ahead, which generated
    assert tpch.ensure(tmp_path, 0.001) is False  # generated already: nothing to do
    for system, tables in tpch.SYSTEMS.items():
        with duckdb.connect(str(tmp_path / f"{system}.duckdb"), read_only=True) as con:
            assert all(con.execute(f"select count(*) from {table}").fetchone()[0] > 0 for table in tables)
