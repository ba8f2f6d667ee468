"""The Iceberg table of a port shows its contract: required columns are `required` fields, the primary key is the
table's identifier fields; both follow the contract from one publish to the next (schema evolution)."""

from __future__ import annotations

import pyarrow as pa

from platform_resources import ports
from platform_resources.governance.contract_changes import contract_record
from platform_resources.manifest import Column, Contract

PORT = "test.things.things"


def _type(name: str) -> str:
    return "bigint" if name.startswith("id") else "double" if name == "score" else "varchar"


_ARROW = {"bigint": pa.int64(), "double": pa.float64(), "varchar": pa.string()}


def table(**columns: list) -> pa.Table:
    return pa.table({name: pa.array(values, _ARROW[_type(name)]) for name, values in columns.items()})


def stamp(key: list[str], **nullable: bool) -> ports.Stamp:
    """A publish stamp with the contract record publish gets from the port asset."""
    columns = [Column(name=n, type=_type(n), nullable=is_nullable) for n, is_nullable in nullable.items()]
    return ports.Stamp(contract_version="1.0.0", contract=contract_record(Contract(columns=columns, primary_key=key)))


def served_schema():
    return ports.catalog().load_table(ports.table_identifier(PORT)).schema()


def required_fields() -> set[str]:
    return {f.name for f in served_schema().fields if f.required}


def test_required_columns_and_the_key_are_in_the_table(fresh_home):
    data = table(id=[1, 2], name=["a", "b"], note=[None, "x"])
    ports.publish(PORT, data, stamp=stamp(["id"], id=False, name=False, note=True))
    assert required_fields() == {"id", "name", "_processing_time"}
    assert served_schema().identifier_field_names() == {"id"}


def test_a_key_column_is_required_even_where_the_contract_says_nullable(fresh_home):
    ports.publish(PORT, table(id=[1], name=["a"]), stamp=stamp(["id"], id=True, name=True))
    assert required_fields() == {"id", "_processing_time"}
    assert served_schema().identifier_field_names() == {"id"}


def test_a_column_turning_required_and_back_between_versions(fresh_home):
    ports.publish(PORT, table(id=[1, 2], note=[None, "x"]), stamp=stamp(["id"], id=False, note=True))
    assert "note" not in required_fields()
    # The next version's contract requires a value: the served column becomes required (its data has no nulls).
    ports.publish(PORT, table(id=[1, 2], note=["y", "x"]), stamp=stamp(["id"], id=False, note=False))
    assert "note" in required_fields()
    first, second = ports.versions(PORT)
    # Time travel still reads the first version's nulls, under the schema it was written with.
    assert ports.scan_version(PORT, first).column("note").to_pylist() == [None, "x"]
    assert ports.scan_version(PORT, second).column("note").to_pylist() == ["y", "x"]
    ports.publish(PORT, table(id=[1, 2], note=[None, None]), stamp=stamp(["id"], id=False, note=True))
    assert "note" not in required_fields()
    assert len(ports.versions(PORT)) == 3


def test_the_identifier_fields_follow_the_key(fresh_home):
    ports.publish(PORT, table(id=[1, 2], name=["a", "b"]), stamp=stamp(["id"], id=False, name=False))
    ports.publish(PORT, table(id=[1, 1], name=["a", "b"]), stamp=stamp(["id", "name"], id=False, name=False))
    assert served_schema().identifier_field_names() == {"id", "name"}
    # The old key column goes, and the new key is a column that was not there.
    ports.publish(PORT, table(id2=[7, 8], name=["a", None]), stamp=stamp(["id2"], id2=False, name=True))
    assert served_schema().identifier_field_names() == {"id2"}
    assert required_fields() == {"id2", "_processing_time"}
    # A bare publish (no contract) serves no key.
    ports.publish(PORT, table(id2=[7, 8], name=["a", None]))
    assert served_schema().identifier_field_names() == set() and required_fields() == {"_processing_time"}


def test_a_floating_point_key_is_required_but_no_identifier(fresh_home):
    # Iceberg refuses float and double identifier fields.
    ports.publish(PORT, table(score=[0.5], name=["a"]), stamp=stamp(["score"], score=False, name=True))
    assert required_fields() == {"score", "_processing_time"}
    assert served_schema().identifier_field_names() == set()


def test_a_direct_publish_with_nulls_in_a_required_column_serves_it_optional(fresh_home):
    # A port asset never gets here (its runtime checks refuse the nulls); the table never claims what is not so.
    ports.publish(PORT, table(id=[1], name=["a"]), stamp=stamp(["id"], id=False, name=False))
    ports.publish(PORT, table(id=[1, None], name=["a", None]), stamp=stamp(["id"], id=False, name=False))
    assert required_fields() == {"_processing_time"} and served_schema().identifier_field_names() == set()
    assert ports.scan_version(PORT, ports.versions(PORT)[-1]).column("name").to_pylist() == ["a", None]
