"""Breaking contract changes between two versions of a manifest, and the manifest as committed at a git revision.

Behind the policy: a breaking contract change (column removed or renamed, type narrowed, nullable to required,
primary key changed) requires a major version bump.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from platform_resources.manifest import SEMVER, Column, Contract, Manifest, ManifestErrors, load_manifest


@dataclass(frozen=True)
class BreakingChange:
    port: str  # output port name
    change: str  # one human sentence, like "column c_phone removed (or renamed)"


def breaking_changes(old: Manifest, new: Manifest) -> list[BreakingChange]:
    """Every change from old to new that can break a consumer of old's output ports, in old's declaration order.

    Additions (ports, columns), type widenings and required -> nullable are not breaking: a consumer written
    against old still reads every column it knows, with values that fit its types.
    """
    changes: list[BreakingChange] = []
    for old_port in old.output_ports:
        new_port = new.output_port(old_port.name)
        if new_port is None:
            # A renamed port is, to its consumers, a removed one.
            changes.append(BreakingChange(old_port.name, f"output port {old_port.name} removed (or renamed)"))
            continue
        changes += [BreakingChange(old_port.name, c) for c in contract_changes(old_port.contract, new_port.contract)]
    return changes


def contract_changes(old: Contract, new: Contract) -> list[str]:
    """Every change from old to new that can break a consumer of a port served under old, as sentences."""
    new_columns = {c.name: c for c in new.columns}
    changes: list[str] = []
    for column in old.columns:
        changes += _column_changes(column, new_columns.get(column.name))
    old_key, new_key = list(old.primary_key or []), list(new.primary_key or [])
    # Key order carries no meaning (uniqueness of the set); declaring a key where none was declared only adds a
    # guarantee, so it breaks nobody.
    if old_key and set(old_key) != set(new_key):
        changes.append(f"primary key changed from {_names(old_key)} to {_names(new_key)}")
    return changes


def _column_changes(old: Column, new: Column | None) -> list[str]:
    if new is None:
        # A rename looks like a removal plus an addition; consumers of the old name break either way.
        return [f"column {old.name} removed (or renamed)"]
    changes = []
    if not is_type_widening(old.type, new.type):
        changes.append(f"column {old.name} type narrowed from {old.type} to {new.type}")
    if old.nullable and not new.nullable:
        # Listed as breaking by the policy: writers that still send nulls now violate the contract.
        changes.append(f"column {old.name} became required (nullable: true -> false)")
    return changes


def _names(key: list[str]) -> str:
    return "[" + ", ".join(key) + "]"


# --- the contract a port serves ----------------------------------------------------------------------

def contract_record(contract: Contract) -> str:
    """The parts of a contract that decide what breaks a consumer, as JSON: stored with every publish of the port,
    so the next publish compares with what the port serves (no git needed)."""
    return json.dumps({"columns": [{"name": c.name, "type": c.type, "nullable": c.nullable} for c in contract.columns],
                       "primary_key": list(contract.primary_key)}, separators=(",", ":"))


def contract_from_record(record: str) -> Contract | None:
    """The contract a publish stored with contract_record; None when it cannot be read back."""
    try:
        data = json.loads(record)
        return Contract(columns=[Column(name=c["name"], type=c["type"], nullable=c["nullable"]) for c in data["columns"]],
                        primary_key=data["primary_key"])
    except (ValueError, KeyError, TypeError):  # pydantic's ValidationError is a ValueError
        return None


# --- type widening ---------------------------------------------------------------------------------

_INTEGERS = ["tinyint", "smallint", "integer", "bigint"]
# Decimal digits needed to hold every value of each integer type (127, 32767, 2147483647, 9223372036854775807).
_INTEGER_DIGITS = {"tinyint": 3, "smallint": 5, "integer": 10, "bigint": 19}
# float is float32: its 24-bit mantissa holds every tinyint and smallint exactly, but not every integer or bigint.
_EXACT_IN_FLOAT = {"tinyint", "smallint"}
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")


def is_type_widening(old: str, new: str) -> bool:
    """True when every value of contract type old is also a value of new (same type included).

    double is the platform's approximate number: any integer, float or decimal -> double counts as widening,
    although bigint and wide decimals may round, because a consumer of a double already expects rounding.
    date -> timestamp and timestamp -> timestamptz are not widenings: the meaning of the value changes.
    Anything -> varchar is a widening: every value has a text form.
    """
    if old == new or new == "varchar":
        return True
    old_decimal, new_decimal = _decimal(old), _decimal(new)
    if new == "double":
        return old in _INTEGERS or old == "float" or old_decimal is not None
    if new == "float":
        return old in _EXACT_IN_FLOAT
    if new in _INTEGERS:
        return old in _INTEGERS and _INTEGERS.index(old) < _INTEGERS.index(new)
    if new_decimal is not None:
        new_precision, new_scale = new_decimal
        if old in _INTEGER_DIGITS:
            return new_precision - new_scale >= _INTEGER_DIGITS[old]
        if old_decimal is not None:
            old_precision, old_scale = old_decimal
            # Room for as many fractional digits and as many integer digits as before.
            return new_scale >= old_scale and new_precision - new_scale >= old_precision - old_scale
    return False


def _decimal(contract_type: str) -> tuple[int, int] | None:
    match = _DECIMAL.match(contract_type)
    return (int(match[1]), int(match[2])) if match else None


# --- versions --------------------------------------------------------------------------------------

def major_bumped(old_version: str, new_version: str) -> bool:
    """True when new's MAJOR is greater than old's; pre-release suffixes are ignored."""
    return _major(new_version) > _major(old_version)


def next_major(version: str) -> str:
    """The first version of the next major release: 1.4.2 -> 2.0.0."""
    return f"{_major(version) + 1}.0.0"


def _major(version: str) -> int:
    if not SEMVER.match(version.strip()):
        raise ValueError(f"'{version}' is not a semantic version; write MAJOR.MINOR.PATCH, like 1.0.0")
    return int(version.strip().split(".")[0])


# --- git -------------------------------------------------------------------------------------------


def manifest_at_revision(repo_root: Path, path: Path, revision: str) -> Manifest | None:
    """The manifest at path as committed at revision, or None when it did not exist there or is not valid.

    path is absolute or relative to repo_root. Raises ValueError when git is missing, repo_root is not in a git
    repository, or the revision is unknown: those are setup problems, not "no old manifest".
    """
    if revision.startswith("-"):
        # Would be read by git as an option.
        raise ValueError(f"'{revision}' is not a git revision; name a branch, tag or commit")
    repo_root, path = Path(repo_root), Path(path)
    try:
        relative = (path.resolve().relative_to(repo_root.resolve()) if path.is_absolute() else path).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not inside {repo_root}; pass a manifest path within the repository") from None
    verified = _git(repo_root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if verified.returncode != 0:
        stderr = verified.stderr.decode(errors="replace").strip()
        if "not a git repository" in stderr:
            raise ValueError(f"{repo_root} is not in a git repository ({stderr}); "
                             "run the contract change check from a git checkout")
        raise ValueError(f"git revision '{revision}' is unknown in {repo_root}; git fetch the base branch "
                         "(a shallow CI checkout needs 'git fetch origin <base branch>' or fetch-depth: 0) and run again")
    # './' makes the path relative to repo_root rather than to the repository's top level.
    shown = _git(repo_root, "show", f"{revision}:./{relative}")
    if shown.returncode != 0:
        return None  # the revision exists, so the file did not
    with tempfile.TemporaryDirectory() as directory:
        # Parsed through load_manifest so an old manifest is read exactly as a current one.
        copy = Path(directory) / Path(relative).name
        copy.write_bytes(shown.stdout)
        try:
            return load_manifest(copy)
        except ManifestErrors:
            return None  # an invalid old manifest cannot be compared


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=repo_root, capture_output=True, check=False)
    except FileNotFoundError as exc:
        # Either git is not installed or repo_root does not exist.
        missing = "git is not installed" if Path(repo_root).is_dir() else f"{repo_root} does not exist"
        raise ValueError(f"cannot read manifests from git: {missing}; install git and run from a git checkout") from exc
