"""Runtime policies on staged data (DuckDB over Arrow): row count, masking, local conditions, and their checks."""

import hashlib

import pyarrow as pa
import pytest

from platform_resources.governance.runtime import checks_of, run_runtime_checks
from platform_resources.manifest import Manifest


def manifest(columns: list[dict], may_be_empty: bool = False, policies: list[dict] = ()) -> Manifest:
    return Manifest.model_validate({
        "id": "shop.customers", "name": "Customers", "archetype": "source-aligned", "status": "active",
        "version": "1.0.0", "input_ports": [{"name": "system", "operational": "shop_db.customer"}],
        "output_ports": [{"name": "customers", "visibility": "restricted", "actual_time": "snapshot",
                          "may_be_empty": may_be_empty,
                          "contract": {"primary_key": ["id"], "columns": [
                              {"name": "id", "type": "bigint", "nullable": False}, *columns]}}],
        "governance": {"policies": list(policies)},
    })


def outcomes(product: Manifest, table: pa.Table) -> dict:
    return {check.name: outcome for check, outcome in run_runtime_checks(product, product.output_ports[0], table)}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_an_empty_result_fails_unless_the_port_may_be_empty():
    empty = pa.table({"id": pa.array([], pa.int64())})
    assert not outcomes(manifest([]), empty)["row_count"].passed
    assert "may_be_empty" in outcomes(manifest([]), empty)["row_count"].summary
    assert outcomes(manifest([], may_be_empty=True), empty)["row_count"].passed
    assert outcomes(manifest([]), pa.table({"id": pa.array([1], pa.int64())}))["row_count"].passed


HASHED = [{"name": "name_hash", "type": "varchar", "masking": "hashed", "classification": "pii"}]
REDACTED = [{"name": "phone", "type": "varchar", "masking": "redacted", "classification": "pii"}]


def test_a_hashed_column_must_hold_sha256_digests():
    good = pa.table({"id": [1, 2, 3], "name_hash": [sha256("Ann"), sha256("Bob"), None]})
    assert outcomes(manifest(HASHED), good)["masking"].passed
    leaked = pa.table({"id": [1, 2], "name_hash": [sha256("Ann"), "Bob"]})
    result = outcomes(manifest(HASHED), leaked)["masking"]
    assert not result.passed and result.details["unmasked_rows"] == {"name_hash": 1}


def test_a_redacted_column_shows_mask_characters_and_at_most_four_letters_or_digits():
    good = pa.table({"id": [1, 2, 3], "phone": ["***-***-1234", "********", None]})
    assert outcomes(manifest(REDACTED), good)["masking"].passed
    leaked = pa.table({"id": [1, 2, 3], "phone": ["25-989-741-2988", "***-***-1234", "Ann"]})
    result = outcomes(manifest(REDACTED), leaked)["masking"]
    assert not result.passed and result.details["unmasked_rows"] == {"phone": 2}  # clear number, and no mask


def test_masking_is_only_checked_on_ports_that_declare_it_and_must_be_text():
    assert "masking" not in {c.name for c in checks_of(manifest([]), manifest([]).output_ports[0])}
    with pytest.raises(ValueError, match="masked value is text"):
        manifest([{"name": "age", "type": "integer", "masking": "redacted"}])


POSITIVE = {"id": "SHOP-001", "title": "Ids are positive", "rationale": "Negative ids are test rows.",
            "severity": "error", "rows_satisfy": "id > 0"}


def test_a_local_runtime_policy_checks_every_row_and_blocks_at_error_severity():
    product = manifest([], policies=[POSITIVE])
    check = next(c for c in checks_of(product, product.output_ports[0]) if c.name == "policy_shop_001")
    assert check.blocking and check.policy.scope == "local"
    assert outcomes(product, pa.table({"id": [1, 2]}))["policy_shop_001"].passed
    failed = outcomes(product, pa.table({"id": [1, -2, None]}))["policy_shop_001"]
    assert not failed.passed and failed.details["failing_rows"] == 2  # a null does not satisfy the condition


def test_a_warning_local_policy_reports_without_blocking_and_a_bad_condition_is_a_clear_failure():
    product = manifest([], policies=[{**POSITIVE, "severity": "warning", "rows_satisfy": "no_such_column > 0"}])
    check = next(c for c in checks_of(product, product.output_ports[0]) if c.name == "policy_shop_001")
    assert not check.blocking
    failed = outcomes(product, pa.table({"id": [1]}))["policy_shop_001"]
    assert not failed.passed and "was not run" in failed.summary and "not in the port's contract" in failed.summary
    assert "fix it in the manifest" in failed.summary

    mistyped = manifest([], policies=[{**POSITIVE, "rows_satisfy": "id > 'one'"}])
    failed = outcomes(mistyped, pa.table({"id": [1]}))["policy_shop_001"]
    assert not failed.passed and "does not run on the port (Conversion Error" in failed.summary
    assert "fix it in the manifest" in failed.summary


def test_a_local_runtime_policy_names_existing_ports_so_it_cannot_silently_check_nothing():
    product = manifest([], policies=[{**POSITIVE, "ports": ["customers"]}])
    assert "policy_shop_001" in {c.name for c in checks_of(product, product.output_ports[0])}
    for ports in (["custmers"], []):
        with pytest.raises(ValueError, match="are not output ports"):
            manifest([], policies=[{**POSITIVE, "ports": ports}])


CONTRACT = [{"name": "name", "type": "varchar", "nullable": False, "classification": "pii"},
            {"name": "balance", "type": "decimal(15,2)", "classification": "confidential"}]


def good_rows() -> pa.Table:
    return pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["Ann", "Bob"],
                     "balance": pa.array([1, None], pa.decimal128(15, 2))})


def test_the_contract_checks_pass_on_conforming_data():
    results = outcomes(manifest(CONTRACT), good_rows())
    assert all(results[name].passed for name in ("contract_schema", "primary_key", "not_null_columns", "row_count"))


def test_contract_schema_fails_on_missing_extra_or_mistyped_columns():
    rows = good_rows().drop_columns(["balance"]).append_column("extra", pa.array([1, 2]))
    rows = rows.set_column(0, "id", pa.array([1, 2], pa.int32()))
    result = outcomes(manifest(CONTRACT), rows)["contract_schema"]
    assert not result.passed
    assert result.details["missing_columns"] == ["balance"] and result.details["undeclared_columns"] == ["extra"]
    assert "declared bigint" in result.details["wrong_types"]["id"]


def test_primary_key_fails_on_duplicates_and_nulls():
    rows = pa.table({"id": pa.array([1, 1, None], pa.int64()), "name": ["Ann", "Bob", "Cy"],
                     "balance": pa.array([1, 2, 3], pa.decimal128(15, 2))})
    result = outcomes(manifest(CONTRACT), rows)["primary_key"]
    assert not result.passed and (result.details["duplicated_keys"], result.details["null_keys"]) == (1, 1)


def test_required_columns_fail_on_nulls_and_nullable_ones_do_not():
    rows = good_rows().set_column(1, "name", pa.array(["Ann", None]))
    result = outcomes(manifest(CONTRACT), rows)["not_null_columns"]
    assert not result.passed and result.details["null_counts"] == {"name": 1}  # balance may be null
