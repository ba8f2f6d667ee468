"""A run worker keeps the index and its run's SQLite event log open (platform_resources.event_log_files): one
engine and connection per file instead of one per event, so SQLite keeps the write-ahead log between events instead
of checkpointing and deleting it after every one, and other processes still read and write the run's events."""

import multiprocessing
import os
import uuid
from pathlib import Path

from dagster import AssetKey, AssetMaterialization, DagsterInstance
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from sqlalchemy import Engine, event

from platform_resources.event_log_files import kept_open


def _report(run_id: str, message: str) -> None:  # another process writing to the run's event log
    with DagsterInstance.get() as instance:
        instance.report_engine_event(message, None, job_name="a_job", run_id=run_id)


def test_the_event_logs_stay_open_for_the_run_and_others_still_write_them(fresh_home):
    (fresh_home / "dagster").mkdir(parents=True)
    (fresh_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run_id = str(uuid.uuid4())
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        run_log, index = (Path(storage.path_for_shard(shard)) for shard in (run_id, INDEX_SHARD_NAME))
        with kept_open(instance):
            instance.report_engine_event("first", None, job_name="a_job", run_id=run_id)
            assert Path(f"{run_log}-wal").exists()  # not checkpointed away after the event
            writer = multiprocessing.get_context("spawn").Process(target=_report, args=(run_id, "from another"))
            writer.start()
            writer.join(120)
            assert writer.exitcode == 0
            assert [e.dagster_event.message for e in instance.all_logs(run_id)] == ["first", "from another"]
        assert not Path(f"{run_log}-wal").exists() and not Path(f"{index}-wal").exists()  # all closed: checkpointed
        assert [e.dagster_event.message for e in instance.all_logs(run_id)] == ["first", "from another"]


def test_events_of_a_run_share_one_connection_per_file(fresh_home):
    (fresh_home / "dagster").mkdir(parents=True)
    (fresh_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run_id = str(uuid.uuid4())
    connects = []
    count = lambda *args: connects.append(args)  # noqa: E731
    with DagsterInstance.get() as instance:
        instance.all_logs(str(uuid.uuid4()))  # the index created before counting
        event.listen(Engine, "connect", count)
        try:
            with kept_open(instance):
                for i in range(20):
                    instance.report_engine_event(f"event {i}", None, job_name="a_job", run_id=run_id)
                    materialization = AssetMaterialization(AssetKey(["a", "b"]), partition=f"p{i}",
                                                           tags={"dagster/data_version": str(i)})
                    instance.report_dagster_event(DagsterEvent(
                        DagsterEventType.ASSET_MATERIALIZATION.value, job_name="a_job",
                        event_specific_data=StepMaterializationData(materialization)), run_id=run_id)
                assert len(instance.all_logs(run_id)) == 40
                with instance.event_log_storage.run_connection(run_id) as conn:
                    assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: no disk wait per commit
        finally:
            event.remove(Engine, "connect", count)
    assert len(connects) <= 3  # the run's file, the index and its tables asked once: not one per event or tag set
    assert instance.get_latest_materialization_event(AssetKey(["a", "b"])).dagster_event.partition == "p19"


def _partition_materializations(run_id: str, key: AssetKey, partitions: int) -> list:
    from dagster._core.events.log import EventLogEntry

    return [EventLogEntry(error_info=None, level=20, user_message="", run_id=run_id, timestamp=1_700_000_000.0 + i,
                          job_name="a_job", dagster_event=DagsterEvent(
                              DagsterEventType.ASSET_MATERIALIZATION.value, job_name="a_job",
                              event_specific_data=StepMaterializationData(AssetMaterialization(
                                  key, partition=f"p{i:02d}", metadata={"rows": i},
                                  tags={"dagster/data_version": str(i)}))))
            for i in range(partitions)]


def test_a_batch_of_partition_materializations_is_stored_as_one_by_one_storage_stores_it(fresh_home):
    (fresh_home / "dagster").mkdir(parents=True)
    (fresh_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    one_by_one, batched = AssetKey(["a", "one_by_one"]), AssetKey(["a", "batched"])
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        for event in _partition_materializations(str(uuid.uuid4()), one_by_one, 12):
            storage.store_event(event)
        run_id = str(uuid.uuid4())
        with kept_open(instance):
            assert os.environ["DAGSTER_EVENT_BATCH_SIZE"]  # Dagster hands partition materializations over in batches
            storage.store_event_batch(_partition_materializations(run_id, batched, 12))
        assert "DAGSTER_EVENT_BATCH_SIZE" not in os.environ

        def stored(key: AssetKey) -> tuple:
            records = instance.fetch_materializations(key, limit=100).records
            latest = instance.get_latest_materialization_event(key)
            return ([(r.partition_key, r.asset_materialization.metadata["rows"].value,
                      r.asset_materialization.tags["dagster/data_version"]) for r in records],
                    storage.get_materialized_partitions(key), latest.dagster_event.partition,
                    storage.get_event_tags_for_asset(key, filter_tags={"dagster/data_version": "7"}))

        assert len(instance.all_logs(run_id)) == 12  # in the run's own file as well as in the index
        ours, dagsters = stored(batched), stored(one_by_one)
        assert ours[:3] == dagsters[:3] and ours[2] == "p11"
        assert [tags["dagster/data_version"] for tags in ours[3]] == ["7"]
