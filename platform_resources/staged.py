"""A port's staged result: the rows one publish audits and writes, read where they are.

A dbt model's result stays in the domain's DuckDB (`StagedRelation`): the checks and measures are SQL there, and
DuckDB writes its Parquet files for the publish (`duckdb_data_files`) or streams it to Iceberg in chunks, so no
process holds a large port whole (sales' 60 million order lines at TPC-H scale 10 are about 10 GB as Arrow). A
pyarrow table (a direct publish, a test) is staged as it is (`StagedTable`). Both answer the same questions;
`staged()` takes either.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import bin_pack_record_batches

from platform_resources.operational import attach
from platform_resources.sql_sandbox import identifier, literal, lock_down, sandboxed_connection

# DuckDB spills to its temporary folder beyond this (a primary-key check on 60 million rows, say).
MEMORY_LIMIT = "2GB"
# Arrow rows per batch read from DuckDB; chunks of batches are written as one Iceberg write each.
BATCH_ROWS = 122_880


class Staged:
    """What the checks, the measures and the publish ask of a staged result."""

    schema: pa.Schema
    num_rows: int

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

    def null_count(self, column: str) -> int:
        raise NotImplementedError

    def query(self, sql: str, *params) -> tuple:
        """One row of a query over the staged rows, as relation `staged`, in a DuckDB that can open no other file."""
        raise NotImplementedError

    def extremes(self, column: str) -> tuple:
        """The smallest and largest value of a column (None, None without rows)."""
        raise NotImplementedError

    def chunks(self, max_bytes: int, order_by: str | None = None) -> Iterator[pa.Table]:
        """The rows, in tables of about `max_bytes` of Arrow each (ordered by `order_by`, when given); none or empty
        ones without rows."""
        raise NotImplementedError

    def parquet_files(self, select: str, options: str) -> list[Path] | None:
        """`select` over relation `staged` written as Parquet files by DuckDB itself (COPY with `options`), in a new
        folder; None where the rows are not in DuckDB."""
        return None

    def close(self) -> None:
        pass


class StagedTable(Staged):
    """A pyarrow table, already in memory: it is written whole."""

    def __init__(self, table: pa.Table):
        self.table, self.schema, self.num_rows = table, table.schema, table.num_rows

    def null_count(self, column: str) -> int:
        return self.table.column(column).null_count

    def query(self, sql: str, *params) -> tuple:
        con = sandboxed_connection()
        try:
            con.register("staged", self.table)
            return con.execute(sql, list(params)).fetchone()
        finally:
            con.close()

    def extremes(self, column: str) -> tuple:
        values = self.table.column(column)
        return (pc.min(values).as_py(), pc.max(values).as_py()) if self.num_rows else (None, None)

    def chunks(self, max_bytes: int, order_by: str | None = None) -> Iterator[pa.Table]:
        yield self.table


class StagedRelation(Staged):
    """A relation of a domain's DuckDB (a dbt model's result), optionally only the rows of `where`; `operational`
    names the systems its ingestion views read (attached read-only)."""

    def __init__(self, database: Path, relation: str, where: str | None = None, operational: Sequence[str] = ()):
        # Only the domain's database, its operational systems (read-only) and DuckDB's own spill folder beside it are
        # in reach, and that stays so. The same configuration for every connection: DuckDB shares one database
        # instance among a process's connections, and its attachments.
        self.con = duckdb.connect(str(database), read_only=True, config={"memory_limit": MEMORY_LIMIT})
        try:
            if not self.con.execute("select current_setting('lock_configuration')").fetchone()[0]:
                attach(self.con, operational)  # the first connection to the instance; the others share it all
                lock_down(self.con, [])
            self.con.execute(f"create temp view staged as select * from {relation}" + (f" where {where}" if where else ""))
            self.schema = self.con.execute("select * from staged limit 0").to_arrow_table().schema
            counts = ", ".join(f"count({identifier(name)})" for name in self.schema.names)
            total, *present = self.con.execute(f"select count(*){', ' + counts if counts else ''} from staged").fetchone()
        except BaseException:
            self.con.close()
            raise
        self.num_rows = total
        self._nulls = {name: total - count for name, count in zip(self.schema.names, present)}
        self._folders: list[Path] = []

    def null_count(self, column: str) -> int:
        return self._nulls[column]

    def query(self, sql: str, *params) -> tuple:
        return self.con.execute(sql, list(params)).fetchone()

    def extremes(self, column: str) -> tuple:
        return self.query(f"select min({identifier(column)}), max({identifier(column)}) from staged")

    def chunks(self, max_bytes: int, order_by: str | None = None) -> Iterator[pa.Table]:
        order = f" order by {identifier(order_by)}" if order_by else ""
        reader = self.con.execute(f"select * from staged{order}").to_arrow_reader(BATCH_ROWS)
        for batches in bin_pack_record_batches(reader, max_bytes):  # pyiceberg's own streaming write packs the same way
            yield pa.Table.from_batches(batches, self.schema)

    def parquet_files(self, select: str, options: str) -> list[Path] | None:
        # DuckDB's temporary directory is the one folder the sandbox lets it write.
        temp = self.con.execute("select current_setting('temp_directory')").fetchone()[0]
        if not temp:
            return None
        folder = Path(temp) / f"publish-{uuid.uuid4()}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        self._folders.append(folder)
        self.con.execute(f"copy (select {select} from staged) to {literal(str(folder))} (format parquet, {options})")
        return sorted(folder.rglob("*.parquet"))  # in a folder per partition when partitioned

    def close(self) -> None:
        self.con.close()
        for folder in self._folders:  # what the publish did not take
            shutil.rmtree(folder, ignore_errors=True)


def staged(data: Staged | pa.Table) -> Staged:
    return data if isinstance(data, Staged) else StagedTable(data)
