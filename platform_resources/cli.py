"""The `mesh` command: run the mesh, read ports, list products."""

from __future__ import annotations

import argparse
import csv
import gc
import json
import logging
import os
import subprocess
import sys
from datetime import datetime

import importlib
from typing import TYPE_CHECKING

from platform_resources.home import mesh_home, prepare_home, workspace_file

if TYPE_CHECKING:
    import duckdb

# Commands whose module is imported only when the command runs: `mesh --help` and `mesh read` stay quick.
MODULE_COMMANDS = {
    "catalog": ("platform_resources.catalog",
                "discover data products: search by text, domain, owner, tag or classification"),
    "export": ("platform_resources.export", "write an ODPS document per product and an ODCS contract per output port"),
    "map": ("platform_resources.mesh_map",
            "draw the mesh (domains, products, ports, dependencies, SLO and policy status) as one static HTML page"),
    "validate": ("platform_resources.governance.validate",
                 "check every static policy on every domain (exit 1 on an error)"),
    "report": ("platform_resources.governance.report", "write a compliance report per domain and product (policies, "
               "SLOs, last publish, consumers) as Markdown or HTML"),
    "new": ("platform_resources.scaffold", "scaffold a domain (code location + dbt project) or a data product"),
    "serve": ("platform_resources.serve", "run each domain as its own code server (grpc_server workspace)"),
}


def _run(args: argparse.Namespace) -> int:
    from operational_systems import tpch
    from platform_resources.forkserver import collect_from_here, start_forkserver
    from platform_resources.home import operational_dir
    from platform_resources.maintenance import mesh_lock

    prepare_home()  # the forkserver keeps the umask and environment it starts with
    start_forkserver()  # it imports Dagster and dbt while this process does the same
    try:
        with mesh_lock(print):
            tpch.ensure_started(operational_dir(), args.scale, print)  # dbgen overlaps the imports
            from platform_resources.runner import format_summary, run_mesh

            collect_from_here()  # mesh run goes on for long once imported
            summary = run_mesh(args.scale, args.domain, workers=args.workers, log=print, partitions=args.partitions)
    except KeyboardInterrupt:  # Ctrl-C: run_mesh has canceled its runs and stopped what it started
        print("mesh run: interrupted; the runs still going were canceled", file=sys.stderr)
        return 130
    from platform_resources import mesh_map
    from platform_resources.registry import load_registry

    print(f"mesh map: {mesh_map.write_map(load_registry(), mesh_home() / 'mesh-map.html')}")
    print()
    print(format_summary(summary))
    return 0 if summary.ok else 1


def _read(args: argparse.Namespace) -> int:
    from platform_resources.access import Reader, authorize, read_port
    from platform_resources.ports import PROCESSING_TIME_COLUMN
    from platform_resources.registry import load_registry

    prepare_home()
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    registry = load_registry()
    reader = Reader.claimed(args.as_consumer)
    if args.consistent:
        authorize(registry, args.port, reader)  # the product's history is the port's data too: access first
        as_of = _consistent_as_of(registry, args.port, as_of)
    served, version = read_port(registry, args.port, reader, as_of=as_of, limit=args.limit, partition=args.partition)
    import duckdb

    if args.format == "json":
        print(json.dumps(served.to_pylist(), default=str, indent=1))
    elif args.format == "csv":
        _write_csv(duckdb.sql("select * from served"))
    else:
        print(f"{args.port}: {served.num_rows} rows, processing time {version.processing_time.isoformat()}, "
              f"snapshot {version.snapshot_id}")
        if args.partition and served.num_rows:  # each partition keeps the processing time of its own last publish
            published = duckdb.sql(f'select min("{PROCESSING_TIME_COLUMN}"), max("{PROCESSING_TIME_COLUMN}") from served').fetchone()
            print(f"partition {args.partition} published at {published[1].isoformat()}"
                  + (f" (some rows at {published[0].isoformat()})" if published[0] != published[1] else ""))
        duckdb.sql(f'select * exclude ("{PROCESSING_TIME_COLUMN}") from served').show()
    return 0


def _consistent_as_of(registry, port_id: str, as_of: datetime | None) -> datetime:
    """The processing time of the port's version in the latest run that published every port of its product."""
    from platform_resources import ports

    if as_of is not None:
        raise ValueError("give --consistent or --as-of, not both: --consistent reads the latest product version")
    manifest, _ = registry.port(port_id)
    return ports.product_version(manifest.id, [p.name for p in manifest.output_ports]).ports[port_id].processing_time


def _write_csv(relation: "duckdb.DuckDBPyRelation", batch_rows: int = 10_000) -> None:
    """CSV on standard output as a stream, where the shell's file stands (after what was written before it).

    Never by opening /dev/stdout: that reopens a redirected file at its start and overwrites it. Values are
    DuckDB's own text (what its CSV writer prints), fetched a batch at a time."""
    quoted = ['"' + name.replace('"', '""') + '"' for name in relation.columns]
    text = relation.query("served_rows", f"select {', '.join(f'{q}::varchar' for q in quoted)} from served_rows")
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(relation.columns)
    while rows := text.fetchmany(batch_rows):
        writer.writerows(rows)
    sys.stdout.flush()


def _row_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of rows") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give the most rows to read, 0 or more (or leave "
                                         "--limit out for every row)")
    return value


def _list(args: argparse.Namespace) -> int:
    from platform_resources import ports
    from platform_resources.governance.engine import evaluate
    from platform_resources.registry import load_registry

    prepare_home()
    registry = load_registry()
    report = evaluate(registry)
    for domain in registry.domains:
        print(f"{domain}")
        for manifest in registry.products_of(domain):
            warnings = sum(f.open_warning for f in report.for_product(manifest.id))
            policy = f"BLOCKED: {report.blocked[manifest.id]}" if manifest.id in report.blocked else \
                f"{warnings} policy warnings (mesh validate)" if warnings else "compliant"
            print(f"  {manifest.id}  [{manifest.archetype}, {manifest.status}, v{manifest.version}]  "
                  f"owner {manifest.owner.label}  {policy}")
            if manifest.replaced_by or manifest.deprecation_date:
                print(f"    {manifest.status}: replaced by {manifest.replaced_by or '(no replacement named)'}, "
                      f"deprecation date {manifest.deprecation_date or '(none declared)'}")
            for port in manifest.output_ports:
                port_id = f"{manifest.id}.{port.name}"
                try:
                    served = ports.resolve_version(port_id).processing_time.isoformat()
                except LookupError:
                    served = "not published"
                print(f"    {port_id:<45} {port.visibility:<10} {served}")
        for product_id, errors in registry.broken.items():
            if product_id.startswith(f"{domain}."):
                print(f"  BROKEN MANIFEST: {errors}")
    for error in registry.workspace_errors:
        print(f"BROKEN WORKSPACE ENTRY: {error}")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from platform_resources import metrics
    from platform_resources.registry import load_registry

    prepare_home()
    _, port = load_registry().port(args.port)  # a clear error for an unknown port
    history = metrics.history(args.port)
    if args.json:
        print(json.dumps(history, indent=1))
        return 0
    if not history:
        print(f"{args.port}: no publish recorded yet")
        return 0
    print(f"{'processing time':<33} {'rows':>9} {'change':>8} {'interval s':>11} {'timeliness h':>13} {'complete':>9}  SLOs")
    for record in history:
        m = record["metrics"]
        shares = [s for s in m["completeness"].values() if s is not None]
        slos = ", ".join(f"{r['name'].removeprefix('slo_')} {'ok' if r['passed'] else 'BREACHED (' + r['severity'] + ')'}"
                         for r in record["slos"]) or "none declared"
        change = "-" if m["row_count_change"] is None else f"{m['row_count_change']:+.1%}"
        interval = "-" if m["processing_interval_seconds"] is None else f"{m['processing_interval_seconds']:.0f}"
        timeliness = "-" if m["timeliness_seconds"] is None else f"{m['timeliness_seconds'] / 3600:.1f}"
        complete = f"{min(shares):.1%}" if shares else "-"
        print(f"{record['processing_time']:<33} {m['row_count']:>9,} {change:>8} {interval:>11} {timeliness:>13} {complete:>9}  {slos}")
    print(_epoch_line(metrics.epoch(args.port), port.retention))
    for line in _input_lag_lines(history[-1]):
        print(line)
    return 0


def _input_lag_lines(record: dict) -> list[str]:
    """What the latest publish consumed of each upstream, and how far behind the upstream's latest version it is."""
    from platform_resources import metrics

    lines = []
    for name, lag in sorted(metrics.input_lags(record).items()):
        again = "; the same upstream version as the publish before" if lag.get("reconsumed") else ""
        lines.append(f"input {name} ({lag['port']}): consumed processing time {lag['processing_time']}, upstream "
                     f"latest {lag['upstream_latest']}, lag {lag['lag_seconds']:.0f} s{again}")
    return lines


def _epoch_line(epoch: dict | None, retention) -> str:
    """The oldest data still readable, after the retention's expiry (the history above keeps every publish)."""
    from platform_resources.ports import retention_text

    kept = f"retention {retention_text(retention)}" if retention else "no retention: every version kept"
    if epoch is None:
        return f"epoch: none recorded ({kept})"
    return f"epoch: actual time {epoch['actual_time']}, processing time {epoch['processing_time']} ({kept})"


def _access_log(args: argparse.Namespace) -> int:
    from platform_resources import access_log

    prepare_home()
    records = access_log.entries(port_id=args.port, consumer=args.consumer, limit=args.limit)
    if args.json:
        print(json.dumps([r.__dict__ for r in records], indent=1))
        return 0
    for r in records:
        served = f"served {r.processing_time}" if r.allowed else f"DENIED: {r.reason}"
        print(f"{r.at}  {r.consumer:<34} {r.port_id:<45} {served}")
    if not records:
        print("no reads logged yet")
    return 0


def _register(args: argparse.Namespace) -> int:
    from platform_resources.lineage.delivery import delivery
    from platform_resources.lineage.resource import register_ports
    from platform_resources.registry import load_registry, publish_domains

    prepare_home()
    registry = load_registry()
    published = publish_domains(registry, args.domain)
    print(f"published {published} product manifests to the registry store ({registry_store_location()})")
    count = register_ports(load_registry(), args.domain)
    result = delivery().flush(force=False)  # after a failed send every command leaves the endpoint alone a while
    print(f"registered {count} output ports with the lineage backend; {result.pending} events waiting in the outbox"
          + (f" ({result.error})" if result.error else ""))
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from platform_resources import maintenance
    from platform_resources.lifecycle import remove_retired_data
    from platform_resources.registry import load_registry

    prepare_home()
    with maintenance.mesh_lock(print):
        instance = DagsterInstance.get()
        try:
            runs = maintenance.fail_abandoned_runs(instance)
        finally:
            instance.dispose()
        sweep = maintenance.remove_orphan_files(args.older_than)
        retired = remove_retired_data(load_registry())
    print(f"marked {len(runs)} abandoned runs failed{': ' + ', '.join(runs) if runs else ''}")
    print(f"removed {len(sweep.removed)} data files no snapshot references (older than {args.older_than:g} s)")
    for path in sweep.removed:
        print(f"  {path}")
    for table in sweep.skipped:
        print(f"  skipped {table}: its files are not local; use the catalog's own maintenance")
    for port_id in retired.dropped:
        print(f"dropped the table of {port_id}: its product is retired and its retention has passed")
    for port_id, due in sorted(retired.waiting.items()):
        print(f"keeping {port_id} (retired) until {due.isoformat()}: its deprecation_date plus its retention")
    return 0


def registry_store_location() -> str:
    from platform_resources.registry_store import safe_url, store_url

    return safe_url(store_url())


def _lineage_flush(args: argparse.Namespace) -> int:
    from platform_resources.lineage.delivery import delivery

    prepare_home()
    result = delivery().flush()
    print(f"delivered {result.delivered} lineage events; {result.pending} still in the outbox"
          + (f" ({result.error})" if result.error else "")
          + (f"; {result.quarantined} quarantined in {delivery().outbox.quarantine_folder}" if result.quarantined else ""))
    return 0 if result.pending == 0 and not result.error else 1


def _prepare_domains() -> tuple[list[str], list[str]]:
    """Publish and prepare every local domain: (domains parsed, why each failing one failed, naming its broken
    manifest first). One domain's dbt project that does not parse never stops the others."""
    from platform_resources import dbt_prepare
    from platform_resources.governance.validate import location_failure
    from platform_resources.registry import published_registry

    prepare_home()
    registry = published_registry()
    parsed, failed = [], []
    for name, domain in registry.domains.items():
        try:
            parsed += dbt_prepare.prepare(registry, [name]) if domain.is_local else []
        except dbt_prepare.DbtNotPreparedError as exc:
            failed.append(f"{name} not prepared: {location_failure(registry, name, exc)}")
    return parsed, failed


def _prepare(args: argparse.Namespace) -> int:
    parsed, failed = _prepare_domains()
    print(f"prepared: {', '.join(parsed) or 'all dbt projects were up to date'}")
    for why in failed:
        print(f"mesh prepare: {why}", file=sys.stderr)
    return 1 if failed else 0


def _dev(args: argparse.Namespace) -> int:
    """dagster dev on the mesh's own instance, so the UI shows the runs of `mesh run`."""
    for why in _prepare_domains()[1]:  # the UI shows the other domains, and the broken manifest where it is
        print(f"mesh dev: {why}", file=sys.stderr)
    from platform_resources.partitions import plan_ranges_in_one_event

    plan_ranges_in_one_event()  # for the backfills the UI and the daemon launch
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    return subprocess.call([dagster, "dev", "-w", str(workspace_file()), *args.dagster_args])


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive scale; try 0.01, 0.1 or 1")
    return value


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `mesh` command line; `command` (the one being run) gets its full arguments, the other module commands
    only their name and help until they are run."""
    root = argparse.ArgumentParser(prog="mesh", description="The data mesh platform's command line.")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="materialize every data product, domain by domain in dependency order")
    run.add_argument("--scale", type=_positive_float, default=0.01, help="TPC-H scale of the sample operational systems (default 0.01)")
    run.add_argument("--domain", action="append", help="only this domain (repeatable)")
    run.add_argument("--partitions", metavar="FROM..TO",
                     help="partitioned ports publish only these partitions (a date, a month like 1995-03, or a range "
                          "FROM..TO); the other ports publish whole. Default: every partition")
    run.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                     help="domains run at once when they do not depend on each other (default: 2 or the CPU count)")
    run.set_defaults(handler=_run)

    read = commands.add_parser("read", help="read an output port: domain.product.port")
    read.add_argument("port")
    read.add_argument("--as-of", help="processing time (ISO 8601) to read the port as it was served then")
    read.add_argument("--consistent", action="store_true",
                      help="read the port as published by the latest run that published every port of its product")
    read.add_argument("--partition", help="a partitioned port's partitions only: a key (1995-03-01), a month "
                                          "(1995-03), a range FROM..TO, or values A,B")
    read.add_argument("--limit", type=_row_limit, help="at most this many rows")
    read.add_argument("--as", dest="as_consumer",
                      help="the product you read as (domain.product), for internal and restricted ports: a claim, "
                           "logged as one; where MESH_PRINCIPAL is set, that is who you read as")
    read.add_argument("--format", choices=["table", "csv", "json"], default="table")
    read.set_defaults(handler=_read)

    metrics = commands.add_parser("metrics", help="the metrics and SLO results of every publish of a port")
    metrics.add_argument("port")
    metrics.add_argument("--json", action="store_true")
    metrics.set_defaults(handler=_metrics)

    commands.add_parser("list", help="list domains, products and ports").set_defaults(handler=_list)
    log = commands.add_parser("access-log", help="every read of a port, allowed or denied, newest first")
    log.add_argument("--port", help="only reads of this port (domain.product.port)")
    log.add_argument("--consumer", help="only reads by this consumer (domain.product, or anonymous)")
    log.add_argument("--limit", type=int, default=50, help="at most this many entries (default 50)")
    log.add_argument("--json", action="store_true")
    log.set_defaults(handler=_access_log)
    register = commands.add_parser("register", help="publish the domains' manifests to the registry store and "
                                                    "announce every output port to the lineage backend (OpenLineage)")
    register.add_argument("--domain", action="append", help="only this domain (repeatable)")
    register.set_defaults(handler=_register)
    lineage = commands.add_parser("lineage", help="lineage delivery").add_subparsers(dest="lineage_command", required=True)
    lineage.add_parser("flush", help="deliver the events waiting in the outbox").set_defaults(handler=_lineage_flush)
    commands.add_parser("prepare", help="prepare the dbt projects (dbt parse) of every domain").set_defaults(handler=_prepare)
    cleanup = commands.add_parser("cleanup", help="after a killed run: mark its abandoned Dagster runs failed and "
                                                  "delete the data files no Iceberg snapshot references")
    cleanup.add_argument("--older-than", type=float, default=3600, metavar="SECONDS",
                         help="only files at least this old (default 3600: a publish in progress is younger)")
    cleanup.set_defaults(handler=_cleanup)
    dev = commands.add_parser("dev", help="start the Dagster UI on the mesh's instance")
    dev.add_argument("dagster_args", nargs=argparse.REMAINDER)
    dev.set_defaults(handler=_dev)
    for name, (module, text) in MODULE_COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_command(commands, text)
        else:
            commands.add_parser(name, help=text, add_help=False)
    return root


def main(argv: list[str] | None = None) -> int:
    words = [word for word in (sys.argv[1:] if argv is None else argv) if not word.startswith("-")]
    args = parser(words[0] if words else None).parse_args(argv)
    try:
        return args.handler(args)
    except (LookupError, PermissionError, ValueError) as exc:
        # Errors meant for people: print the message, not a traceback.
        print(f"mesh {args.command}: {exc}", file=sys.stderr)
        return 2


def entry_point() -> None:
    """The `mesh` command: main, then out at once. Python's own shutdown (tearing down Dagster's, dbt's and
    DuckDB's modules and threads) took about 2 s after every command had finished and said everything.

    Without the garbage collector: a command is mostly imports, hundreds of thousands of objects and next to no
    garbage, which every collection scans again (`mesh read` of a small port: 2.25 s with it, 1.9 s without).
    The process is short-lived; `mesh run` collects again once imported (forkserver.collect_from_here)."""
    gc.disable()
    code = main()
    from platform_resources.dbt_fork import release_adapters

    release_adapters()  # after a dbt parse here: its locks are named semaphores, which the resource tracker reports
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
