"""The sample operational systems: generation started ahead (as `mesh run` does while it imports Dagster) runs in
the background, and the next `ensure` returns what that generation returned instead of checking or generating
again."""

import time

import duckdb

from operational_systems import tpch


def test_generation_started_ahead_runs_in_the_background_and_ensure_takes_its_result(tmp_path):
    tpch.ensure_started(tmp_path, 0.001)
    deadline = time.monotonic() + 120
    while tpch.generated_scale(tmp_path) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # nobody called ensure: the generation goes on by itself
    assert tpch.generated_scale(tmp_path) == 0.001
    # The systems exist now, so an ensure of its own would say "nothing generated"; this one reports the
    # generation that was started ahead.
    assert tpch.ensure(tmp_path, 0.001) is True
    assert tpch.ensure(tmp_path, 0.001) is False  # taken once: the next ensure checks for itself
    for system, tables in tpch.SYSTEMS.items():
        with duckdb.connect(str(tmp_path / f"{system}.duckdb"), read_only=True) as con:
            assert all(con.execute(f"select count(*) from {table}").fetchone()[0] > 0 for table in tables)


def test_a_generation_says_what_it_does_as_it_goes(tmp_path):
    lines: list[str] = []
    assert tpch.ensure(tmp_path, 0.001, lines.append) is True
    assert lines[0] == f"generating the operational systems at TPC-H scale 0.001 in {tmp_path}"
    assert "dbgen done" in lines[1]
    written = lines[2:]
    assert [line.split()[1] for line in written] == list(tpch.SYSTEMS)  # a line per system as it is written
    with duckdb.connect(str(tmp_path / "order_db.duckdb"), read_only=True) as con:
        orders = con.execute("select count(*) from orders").fetchone()[0]
    order_db = written[list(tpch.SYSTEMS).index("order_db")]
    assert f"orders {orders:,}," in order_db, order_db

    again: list[str] = []
    tpch.ensure_started(tmp_path, 0.001, again.append)  # the next mesh run says at once that it generates nothing
    assert tpch.ensure(tmp_path, 0.001) is False
    assert again == [f"the operational systems at TPC-H scale 0.001 in {tmp_path} exist already"]
