"""Every check of a publish is recorded against the materialization it validated, as the Dagster instance stores
it (the UI shows a materialization with the checks whose target it is). A real port asset of geography, published
twice through Dagster into a real Iceberg port; a third publish fails a blocking check and still shows it."""

import duckdb
import pytest
from dagster import AssetCheckEvaluation, AssetCheckKey, AssetKey, DagsterInstance, materialize

from platform_resources.build import build_domain
from platform_resources.home import domain_duckdb_path
from platform_resources.registry import load_registry

KEY = AssetKey(["geography", "nations", "nations"])
NATIONS = """create or replace table geography.main.nations as
    select range::integer as n_nationkey, 'NATION ' || range as n_name, (range % 5)::integer as n_regionkey,
           'a comment' as n_comment, 'REGION ' || (range % 5) as r_name, null::varchar as r_comment
    from range({rows})"""


def stage_nations(rows: int, duplicate_key: bool = False) -> None:
    """What the dbt model `nations` would have built in the domain's DuckDB."""
    path = domain_duckdb_path("geography")
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute(NATIONS.format(rows=rows))
        if duplicate_key:
            con.execute("update geography.main.nations set n_nationkey = 0 where n_nationkey = 1")


@pytest.fixture
def publish(fresh_home, prepared_dbt):
    (fresh_home / "dagster").mkdir(parents=True)
    (fresh_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.local_temp(str(fresh_home / "dagster"))
    port = build_domain(load_registry().domains["geography"]).resolve_assets_def(KEY)

    def run(raise_on_error: bool = True):
        return materialize([port], instance=instance, raise_on_error=raise_on_error)  # with the domain's resources

    yield instance, port, run
    instance.dispose()


def evaluations(instance: DagsterInstance, check_names: set[str], run_id: str) -> dict:
    """check name -> its evaluation in that run (a check planned but never evaluated has none)."""
    found = {}
    for name in check_names:
        for record in instance.event_log_storage.get_asset_check_execution_history(AssetCheckKey(KEY, name), limit=10):
            data = record.event.dagster_event.event_specific_data if record.event else None
            if record.run_id == run_id and isinstance(data, AssetCheckEvaluation):
                found[name] = data
    return found


def test_each_check_points_at_the_materialization_of_its_own_publish_the_first_one_too(publish):
    instance, port, run = publish
    names = {key.name for key in port.check_keys}
    assert {"static_policies", "contract_schema", "primary_key", "slo_volume"} <= names
    for publish_number in (1, 2):
        stage_nations(25)
        result = run()
        materialization = instance.fetch_materializations(KEY, limit=1).records[0]
        assert materialization.run_id == result.run_id
        checked = evaluations(instance, names, result.run_id)
        assert set(checked) == names, f"publish {publish_number}: no result for {names - set(checked)}"
        for name, evaluation in checked.items():
            assert evaluation.passed, name
            target = evaluation.target_materialization_data
            assert target is not None, f"publish {publish_number}: {name} points at no materialization"
            assert (target.storage_id, target.run_id) == (materialization.storage_id, result.run_id), \
                f"publish {publish_number}: {name} points at another materialization"
    volume = checked["slo_volume"].metadata
    assert (volume["row_count"].value, volume["min_rows"].value, volume["max_rows"].value) == (25, 25, 25)


def test_a_failed_publish_still_shows_its_failed_checks_and_materializes_nothing(publish):
    instance, port, run = publish
    stage_nations(25)
    first = run()
    served = instance.fetch_materializations(KEY, limit=1).records[0]
    stage_nations(25, duplicate_key=True)
    failed = run(raise_on_error=False)
    assert not failed.success
    assert instance.fetch_materializations(KEY, limit=1).records[0].storage_id == served.storage_id
    checked = evaluations(instance, {key.name for key in port.check_keys}, failed.run_id)
    assert not checked["primary_key"].passed
    assert checked["static_policies"].passed
    assert "slo_volume" not in checked  # nothing was published, so nothing was measured
    # Recorded against the version the port still serves.
    assert checked["primary_key"].target_materialization_data.run_id == first.run_id
