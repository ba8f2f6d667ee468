"""Self-serve scaffolding: `mesh new domain NAME`, `mesh new product DOMAIN.PRODUCT`, and the scaffolder behind
`dg scaffold defs platform_resources.component.DataMeshDomain` (the component's defs.yaml).

Every new file is rendered from a Jinja2 template in `templates/`. Shared files (workspace.yaml, the root dg.toml,
governance/teams.yaml, a dbt project's schema.yml) get lines inserted, never re-dumped, so their comments and
layout stay. A command plans every write first and refuses, naming the file, when one of its new files exists
already: then nothing is written.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from platform_resources.home import workspace_file
from platform_resources.manifest import EMAIL, SNAKE

if TYPE_CHECKING:
    import jinja2
    from dagster import ScaffoldRequest

    from platform_resources.manifest import Column, OutputPort
    from platform_resources.registry import Registry

SNAKE_NAME = re.compile(rf"^{SNAKE}$")
LOCATIONS_FOLDER = "mesh_code_locations"
DBT_FOLDER = "dbt_projects"
DOMAIN_TESTS_FOLDER = Path("tests") / "domains"
PRODUCTS_FOLDER = "products"
ARCHETYPES = ("source-aligned", "aggregate", "consumer-aligned")
VISIBILITIES = ("public", "internal", "restricted")
# Asset keys [domain, internal, ...] hold a domain's private assets: no product may take that name.
RESERVED_PRODUCTS = frozenset({"internal"})
# Words the stub model cannot use as a bare column alias.
_SQL_KEYWORDS = frozenset({
    "all", "and", "any", "as", "asc", "between", "by", "case", "cast", "check", "column", "create", "default", "desc",
    "distinct", "else", "end", "except", "from", "group", "having", "in", "intersect", "is", "join", "key", "like",
    "limit", "not", "null", "offset", "on", "or", "order", "primary", "references", "select", "table", "then", "union",
    "user", "using", "when", "where", "window", "with"})


class ScaffoldError(ValueError):
    """A scaffolding request that cannot be done as asked; the message says why and what to do."""


# --- planning and writing --------------------------------------------------------------------------------------

@dataclass
class Plan:
    """The files a command creates and the shared files it changes, written only once nothing is in the way."""

    root: Path
    created: dict[Path, str] = field(default_factory=dict)
    updated: dict[Path, str] = field(default_factory=dict)
    generated: list[Path] = field(default_factory=list)  # written by the platform after the plan (dbt sources)
    notes: list[str] = field(default_factory=list)

    def create(self, path: Path, text: str) -> None:
        self.created[path] = text

    def update(self, path: Path, text: str) -> None:
        self.updated[path] = text

    def rel(self, path: Path) -> str:
        return relative(path, self.root)

    def refuse_existing(self, what: str, fix: str) -> None:
        for path in self.created:
            if path.exists():
                raise ScaffoldError(f"{self.rel(path)} already exists ({what}); nothing was written. {fix}")

    def write(self) -> None:
        for path, text in [*self.created.items(), *self.updated.items()]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def summary(self) -> list[str]:
        return ([f"  created    {self.rel(p)}" for p in self.created]
                + [f"  updated    {self.rel(p)}" for p in self.updated]
                + [f"  generated  {self.rel(p)}" for p in self.generated])


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# --- templates ------------------------------------------------------------------------------------------------

_PLAIN_SCALAR = re.compile(r"^[A-Za-z][A-Za-z0-9 _.()'/@+-]*[A-Za-z0-9.)]$|^[A-Za-z]$")


def yaml_scalar(value: object) -> str:
    """`value` as a YAML scalar that reads back as the same text, in block and in flow context."""
    text = str(value)
    if _PLAIN_SCALAR.match(text) and ": " not in text and " #" not in text and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


@functools.cache
def _templates() -> jinja2.Environment:
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("platform_resources.scaffold", "templates"),
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     trim_blocks=True, lstrip_blocks=True, autoescape=False)
    environment.filters["q"] = yaml_scalar
    return environment


def render(template: str, **values: Any) -> str:
    return _templates().get_template(template).render(**values)


def defs_yaml(domain: str, manifests: str = PRODUCTS_FOLDER, dbt_project: str | None = None) -> str:
    """The defs.yaml instantiating the DataMeshDomain component (`mesh new domain` and `dg scaffold defs`)."""
    return render("domain/defs.yaml.jinja", domain=domain, manifests=manifests, dbt_project=dbt_project)


# --- editing shared files, line by line -------------------------------------------------------------------------

def insert_list_item(text: str, key: str, item: str, file: str) -> str:
    """`text` (a YAML document) with `item` (YAML lines starting with '- ') appended to its top-level list `key`.

    Only lines are inserted: the file's comments and layout stay. Checks that the result parses to the list with
    the item appended; otherwise asks for a hand edit.
    """
    document = _yaml_mapping(text, file)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    expected = [*(document.get(key) or []), *yaml.safe_load(item)]
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(key)}:", line)), None)
    if start is None:
        new = lines + [f"{key}:\n", *_indented(item, "  ")]
    elif re.match(rf"^{re.escape(key)}:\s*(\[\s*\])?\s*(#.*)?$", lines[start]) and "[" in lines[start].split("#")[0]:
        new = lines[:start] + [f"{key}:\n", *_indented(item, "  ")] + lines[start + 1:]
    else:
        end = start + 1
        while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t-#"):
            end += 1
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1  # blank lines and comments before the next key belong to it
        indent = next((m.group(1) for line in lines[start + 1:end] if (m := re.match(r"^(\s*)- ", line))), "  ")
        new = lines[:end] + _indented(item, indent) + lines[end:]
    result = "".join(new)
    try:
        parsed = yaml.safe_load(result)
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, dict) or parsed.get(key) != expected:
        raise ScaffoldError(f"{file}: cannot append to '{key}' without rewriting the file (it is not a block list); "
                            f"nothing was written. Add this entry under '{key}' by hand, then run the command "
                            f"again:\n{item}")
    return result


def _indented(item: str, indent: str) -> list[str]:
    return [f"{indent}{line}\n" if line.strip() else "\n" for line in item.rstrip("\n").split("\n")]


def _yaml_mapping(text: str, file: str) -> dict:
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ScaffoldError(f"{file} is not valid YAML ({exc}); fix it first, nothing was written") from None
    if not isinstance(document, dict):
        raise ScaffoldError(f"{file} is not a YAML mapping; fix it first, nothing was written")
    return document


def insert_dg_project(text: str, path: str, file: str) -> str:
    """The root dg.toml with `{path = ...}` appended to [workspace] projects, inserting one line."""
    try:
        projects = tomllib.loads(text).get("workspace", {}).get("projects")
    except tomllib.TOMLDecodeError as exc:
        raise ScaffoldError(f"{file} is not valid TOML ({exc}); fix it first, nothing was written") from None
    entry = f'{{path = "{path}"}}'
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if re.match(r"^\s*projects\s*=\s*\[", line)), None)
    if projects is None or start is None:
        raise ScaffoldError(f"{file} has no [workspace] projects list; add projects = [{entry}] under [workspace] "
                            "by hand, then run the command again (nothing was written)")
    head = lines[start].split("#")[0]
    if "]" in head:  # the whole list on one line
        before, _, after = head.rpartition("]")
        separator = "" if before.rstrip().endswith(("[", ",")) else ", "
        new = lines[:start] + [f"{before.rstrip()}{separator}{entry}]{after.rstrip()}\n"] + lines[start + 1:]
    else:
        end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\s*\]", lines[i])), None)
        if end is None:
            raise ScaffoldError(f"{file}: the projects list does not close with a line ']'; add {entry} by hand")
        items = [i for i in range(start + 1, end) if lines[i].split("#")[0].strip()]
        indent = re.match(r"^(\s*)", lines[items[-1]]).group(1) if items else "  "
        new = list(lines)
        if items and not new[items[-1]].split("#")[0].rstrip().endswith(","):
            last = new[items[-1]]
            code, hash_, comment = last.partition("#")
            new[items[-1]] = f"{code.rstrip()},{' ' + hash_ + comment if hash_ else chr(10)}"
        new.insert(end, f"{indent}{entry},\n")
    result = "".join(new)
    if {"path": path} not in tomllib.loads(result)["workspace"]["projects"]:
        raise ScaffoldError(f"{file}: could not add {entry} to the projects list; add it by hand")
    return result


# --- mesh new domain ---------------------------------------------------------------------------------------------

def check_name(name: str, what: str) -> None:
    if not SNAKE_NAME.match(name):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()).strip("_")
        hint = f", like {suggestion}" if suggestion and SNAKE_NAME.match(suggestion) else ""
        raise ScaffoldError(f"'{name}' is not a {what} name: write it in snake_case (lower-case letters, digits and "
                            f"underscores, starting with a letter){hint}")


def _teams(root: Path) -> tuple[Path, str, list[dict]]:
    from platform_resources.governance.context import TEAMS_FILE

    path = root / TEAMS_FILE
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    teams = _yaml_mapping(text, relative(path, root)).get("teams") or []
    return path, text, [t for t in teams if isinstance(t, dict)]


def new_domain(name: str, owner_email: str | None = None, workspace: Path | None = None) -> Plan:
    """Create domain `name`: its code location (a dg project with the DataMeshDomain component), its dbt project,
    its workspace and dg entries, its owner team for governance and a test that loads it."""
    from platform_resources.registry import load_registry

    check_name(name, "domain")
    email = _checked_email(owner_email or f"{name}-data@example.com", name)
    workspace = (workspace or workspace_file()).resolve()
    root = workspace.parent
    plan = Plan(root)
    location, dbt_project = root / LOCATIONS_FOLDER / name, root / DBT_FOLDER / name
    package = location / f"{name}_domain"
    dbt_relative = Path(os.path.relpath(dbt_project, location)).as_posix()
    values = {"domain": name, "package": package.name, "manifests": PRODUCTS_FOLDER, "dbt_project": dbt_relative,
              "python": Path(os.path.relpath(root / ".venv" / "bin" / "python", location)).as_posix()}
    plan.create(location / "dg.toml", render("domain/dg.toml.jinja", **values))
    plan.create(location / ".env", render("domain/env.jinja", **values))
    plan.create(location / PRODUCTS_FOLDER / ".gitkeep", "")
    plan.create(package / "__init__.py", "")
    plan.create(package / "definitions.py", render("domain/definitions.py.jinja", **values))
    plan.create(package / "defs" / "__init__.py", "")
    plan.create(package / "defs" / "data_products" / "defs.yaml", defs_yaml(name, PRODUCTS_FOLDER, dbt_relative))
    plan.create(dbt_project / "dbt_project.yml", render("domain/dbt_project.yml.jinja", **values))
    plan.create(dbt_project / "profiles.yml", render("domain/profiles.yml.jinja", **values))
    plan.create(dbt_project / "models" / "schema.yml", render("domain/schema.yml.jinja", **values))
    plan.create(root / DOMAIN_TESTS_FOLDER / f"test_{name}.py", render("domain/test_domain.py.jinja", **values))
    again = f"Pick another name, or add products to it with `mesh new product {name}.<product>`"
    plan.refuse_existing(f"domain {name}", again)
    for folder in (location, dbt_project):
        if folder.exists():
            raise ScaffoldError(f"{plan.rel(folder)} already exists (domain {name}); nothing was written. {again}")

    registry = load_registry(workspace)
    if name in registry.domains:
        known = registry.domains[name]
        where = (f"{plan.rel(workspace)} lists it (folder {plan.rel(known.folder)})" if known.folder else
                 f"{plan.rel(workspace)} lists it" if known.server or known.module else
                 "it is published in the registry store, deployed from another repository")
        raise ScaffoldError(f"domain {name} exists already: {where}; nothing was written. Pick another name")
    entry = (f"- python_module: {{module_name: {package.name}.definitions, location_name: {name}, "
             f"working_directory: {Path(os.path.relpath(location, root)).as_posix()}}}")
    if workspace.exists():
        text = workspace.read_text(encoding="utf-8")
        plan.update(workspace, insert_list_item(text, "load_from", entry, plan.rel(workspace)))
    else:
        plan.create(workspace, f"# One code location per domain.\nload_from:\n  {entry}\n")
    dg_toml = root / "dg.toml"
    if dg_toml.exists():
        plan.update(dg_toml, insert_dg_project(dg_toml.read_text(encoding="utf-8"),
                                               Path(os.path.relpath(location, root)).as_posix(), plan.rel(dg_toml)))
    else:
        plan.notes.append("no dg.toml at the workspace root: the domain is a dg project of its own (cd into it for dg)")
    teams_path, teams_text, teams = _teams(root)
    if not any(t.get("name") == name for t in teams):
        description = yaml_scalar(f"Owns the {name} domain.")
        team = f"- {{name: {name}, email: {yaml_scalar(email)}, description: {description}}}"
        (plan.update if teams_path.exists() else plan.create)(
            teams_path, insert_list_item(teams_text, "teams", team, plan.rel(teams_path)))
        plan.notes.append(f"team {name} added to {plan.rel(teams_path)}: governance reviews it with your pull request")
    plan.write()
    return plan


# --- mesh new product --------------------------------------------------------------------------------------------

@dataclass
class _Input:
    name: str
    source: str
    port: OutputPort
    dbt_source: str
    dbt_table: str
    restricted: bool


def _words(name: str) -> list[str]:
    """The words of a snake_case name and their singulars: shipping_modes -> shipping, modes, mode."""
    words = []
    for word in name.split("_"):
        words.append(word)
        if word.endswith("ies") and len(word) > 4:
            words.append(word[:-3] + "y")
        elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            words.append(word[:-1])
    return [w for w in words if len(w) >= 3]


def _stem(column: str) -> str:
    """A TPC-H style column without its table prefix: l_shipmode -> shipmode."""
    stem = re.sub(r"^[a-z]{1,2}_", "", column)
    return stem if len(stem) >= 3 else column


def _alias(column: str, words: list[str]) -> str:
    """The column as the product names it: its stem split at the product's words (l_shipmode -> ship_mode)."""
    stem = _stem(column)
    for word in sorted(words, key=len, reverse=True):
        if word in stem and word != stem:
            stem = stem.replace(word, f"_{word}_", 1)
            break
    alias = re.sub(r"_+", "_", stem).strip("_")
    return alias if SNAKE_NAME.match(alias) and alias not in _SQL_KEYWORDS else column


def _group_column(product: str, port: OutputPort) -> Column | None:
    """The upstream column the hello-world model counts rows by: the one its name suggests, else a text category.

    Only columns fit to be a key: not nullable, classified, not personal data (the port is public by default).
    """
    fit = [c for c in port.contract.columns if not c.nullable and c.classification not in (None, "pii")]
    words = _words(product)

    def score(column: Column) -> int:
        stem = _stem(column.name)
        return sum(2 if w in stem else 1 if w[:4] in stem else 0 for w in words)

    best = max(fit, key=score, default=None)
    if best is not None and score(best) > 0:
        return best
    return next((c for c in fit if c.type == "varchar" and c.name not in port.contract.primary_key), None)


def _hello_world(product: str, inputs: list[_Input]) -> tuple[dict | None, list[dict], list[str]]:
    """What the stub model returns, as (group by, contract columns, primary key)."""
    if not inputs:
        return None, [
            {"name": "id", "type": "integer", "nullable": False, "classification": "public",
             "description": "Key of the hello-world row. TODO: replace with the product's own key."},
            {"name": "greeting", "type": "varchar", "nullable": False, "classification": "public",
             "description": "A constant greeting. TODO: replace with the product's own columns."}], ["id"]
    column = _group_column(product, inputs[0].port) if len(inputs) == 1 else None
    if column is None:
        return None, [
            {"name": "input_port", "type": "varchar", "nullable": False, "classification": "public",
             "description": "An input port of the product, as domain.product.port."},
            {"name": "row_count", "type": "bigint", "nullable": False, "classification": "public",
             "description": "Number of rows the input port serves."}], ["input_port"]
    source = inputs[0]
    alias = _alias(column.name, _words(product))
    count = source.name if source.name not in (alias, column.name) and source.name not in _SQL_KEYWORDS \
        else f"{source.name}_count"
    upstream = column.description.strip().rstrip(".")
    origin = f"{column.name} of {source.source}"
    return {"column": column.name, "alias": alias, "count": count}, [
        {"name": alias, "type": column.type, "nullable": False, "classification": column.classification,
         "description": f"{upstream} ({origin})." if upstream else f"{origin}."},
        {"name": count, "type": "bigint", "nullable": False, "classification": "public",
         "description": f"Number of rows of {source.source} with this {alias}."}], [alias]


def _resolve_inputs(registry: Registry, product_id: str, port_ids: Sequence[str]) -> list[_Input]:
    from platform_resources.dbt_prepare import input_schema
    from platform_resources.registry import RegistryError

    inputs: list[_Input] = []
    for port_id in port_ids:
        try:
            manifest, port = registry.port(port_id)
        except RegistryError as exc:
            raise ScaffoldError(f"--input {port_id}: {exc}") from None
        if any(i.source == port_id for i in inputs):
            raise ScaffoldError(f"--input {port_id} is given twice; declare each input port once")
        if port.visibility == "internal" and manifest.domain != product_id.split(".")[0]:
            raise ScaffoldError(f"--input {port_id}: the port is internal to {manifest.domain}, no other domain may "
                                f"read it; read one of its public ports (mesh catalog --domain {manifest.domain} "
                                "lists them)")
        up_domain, up_product, up_port = port_id.split(".")
        names = {i.name for i in inputs}
        name = next(n for n in (up_port, f"{up_product}_{up_port}", f"{up_domain}_{up_product}_{up_port}")
                    if n not in names)
        inputs.append(_Input(name, port_id, port, input_schema(f"{up_domain}.{up_product}"), up_port,
                             port.visibility == "restricted"))
    return inputs


def _owner(registry: Registry, domain: str, root: Path, email: str | None) -> tuple[str, str]:
    """The owner of the domain's products (when they agree on one), else the domain's team in teams.yaml."""
    owners = {(m.owner.team, m.owner.email) for m in registry.products_of(domain) if m.owner.team and m.owner.email}
    if len(owners) == 1:
        team, default_email = owners.pop()
    else:
        team = domain
        _, _, teams = _teams(root)
        default_email = next((t.get("email") for t in teams if t.get("name") == team and t.get("email")),
                             f"{domain}-data@example.com")
    return team, _checked_email(email or default_email, domain)


def _checked_email(email: str, domain: str) -> str:
    if not EMAIL.match(email):
        raise ScaffoldError(f"--owner-email '{email}' is not an email address; give the team's mailbox, like "
                            f"{domain}-data@example.com")
    return email


def new_product(product_id: str, inputs: Sequence[str] = (), archetype: str | None = None,
                owner_email: str | None = None, visibility: str = "public", workspace: Path | None = None) -> Plan:
    """Add product `product_id` to its domain: a manifest with one output port named after the product, the dbt
    model that builds it and its schema.yml entry, then regenerate the domain's dbt sources. The hello-world
    model and the contract agree, so the product publishes as it is."""
    from platform_resources import dbt_prepare
    from platform_resources.manifest import ManifestErrors, load_manifest
    from platform_resources.registry import load_registry

    if product_id.count(".") != 1:
        raise ScaffoldError(f"'{product_id}' is not a product id; write domain.product, like logistics.shipping_modes")
    domain_name, product = product_id.split(".")
    check_name(domain_name, "domain")
    check_name(product, "product")
    if product in RESERVED_PRODUCTS:
        raise ScaffoldError(f"'{product}' is reserved (asset keys [domain, {product}, ...] hold a domain's private "
                            "assets); pick another product name")
    if archetype is not None and archetype not in ARCHETYPES:
        raise ScaffoldError(f"archetype '{archetype}' is not one of {', '.join(ARCHETYPES)}")
    if visibility not in VISIBILITIES:
        raise ScaffoldError(f"visibility '{visibility}' is not one of {', '.join(VISIBILITIES)}")
    workspace = (workspace or workspace_file()).resolve()
    root = workspace.parent
    plan = Plan(root)
    registry = load_registry(workspace)
    domain = registry.domains.get(domain_name)
    if domain is None or not domain.is_local:
        local = ", ".join(sorted(n for n, d in registry.domains.items() if d.is_local)) or "none"
        elsewhere = " (it is deployed from another repository)" if domain else ""
        raise ScaffoldError(f"domain '{domain_name}' is not a code location of {plan.rel(workspace)}{elsewhere}; its "
                            f"domains are: {local}. Create it with `mesh new domain {domain_name}`")
    missing_project = dbt_prepare.missing_project(domain)
    if missing_project:
        raise ScaffoldError(missing_project)
    if product_id in registry.files or product_id in registry.broken:
        existing = registry.files.get(product_id) or Path(registry.broken[product_id].errors[0].file)
        raise ScaffoldError(f"{plan.rel(existing)} already declares {product_id}; nothing was written. Pick another "
                            "product name, or edit that manifest")
    resolved = _resolve_inputs(registry, product_id, inputs)
    team, email = _owner(registry, domain_name, root, owner_email)

    group, columns, primary_key = _hello_world(product, resolved)
    manifest_file = domain.manifests_folder / f"{product}.yaml"
    model_file = domain.dbt_project / "models" / f"{product}.sql"
    schema_file = domain.dbt_project / "models" / "schema.yml"
    port_id = f"{product_id}.{product}"
    title = product.replace("_", " ").capitalize()
    if group:
        does = f"the number of rows of {resolved[0].source} per {group['alias']}"
        row = f"One row per {group['alias']} with its number of {resolved[0].name.replace('_', ' ')}."
    elif resolved:
        does = "the number of rows each of its input ports serves"
        row = "One row per input port with the number of rows it serves."
    else:
        does = "a constant greeting"
        row = "One hello-world row."
    values = {
        "id": product_id, "name": title, "team": team, "email": email, "visibility": visibility, "port": product,
        "archetype": archetype or ("aggregate" if resolved else "source-aligned"),
        "description": f"{title}, scaffolded by `mesh new product`: for now {does}. TODO: say what the product "
                       "serves, for whom, and how to use it.",
        "port_description": f"{row} TODO: say what one row is and how to join it.",
        "inputs": resolved, "columns": columns, "primary_key": primary_key, "group": group, "port_id": port_id,
        "model_file": plan.rel(model_file), "manifest_file": plan.rel(manifest_file),
    }
    manifest_text = render("product/manifest.yaml.jinja", **values)
    try:
        load_manifest(manifest_file, manifest_text)
    except ManifestErrors as errors:  # the templates' fault, not the user's
        raise ScaffoldError(f"the scaffolded manifest does not load, please report it: {errors}") from None
    plan.create(manifest_file, manifest_text)
    plan.create(model_file, render("product/model.sql.jinja", **values))
    plan.refuse_existing(f"product {product_id}", "Pick another product name, or edit that file")

    entry = render("product/schema_entry.yml.jinja", model=product, **values)
    if schema_file.exists():
        text = schema_file.read_text(encoding="utf-8")
        models = _yaml_mapping(text, plan.rel(schema_file)).get("models") or []
        if any(isinstance(m, dict) and m.get("name") == product for m in models):
            raise ScaffoldError(f"{plan.rel(schema_file)} already describes a model {product}; nothing was written. "
                                "Pick another product name, or remove that entry")
        plan.update(schema_file, insert_list_item(text, "models", entry, plan.rel(schema_file)))
    else:
        plan.create(schema_file, "version: 2\nmodels:\n" + "".join(_indented(entry, "  ")))
    if any(i.restricted for i in resolved):
        restricted = ", ".join(i.source for i in resolved if i.restricted)
        plan.notes.append(f"{restricted} is restricted: fill in the access_request reason, and ask its owners to add "
                          f"{product_id} to the port's approved_access (mesh validate fails until they do)")
    plan.write()

    registry = load_registry(workspace)  # the new manifest among the domain's products
    dbt_prepare.write_sources(registry.domains[domain_name], registry.products_of(domain_name))
    plan.generated.append(domain.dbt_project / dbt_prepare.GENERATED_SOURCES)
    return plan


# --- dg scaffold defs --------------------------------------------------------------------------------------------

def code_location_name(project_root: Path) -> str:
    """The domain a dg project is: its dg.toml's code_location_name, else its root module without _domain."""
    config = project_root / "dg.toml"
    project = tomllib.loads(config.read_text(encoding="utf-8")).get("project", {}) if config.exists() else {}
    module = str(project.get("root_module") or project_root.name)
    return project.get("code_location_name") or module.removesuffix("_domain")


def scaffold_component(request: ScaffoldRequest, domain: str | None, manifests: str, dbt_project: str | None) -> Path:
    """`dg scaffold defs platform_resources.component.DataMeshDomain <path>`: the defs.yaml `mesh new domain` writes."""
    if request.scaffold_format != "yaml":
        raise ScaffoldError("the DataMeshDomain component is configured in YAML; run dg scaffold defs without "
                            "--format python")
    project_root = Path(request.project_root or Path.cwd()).resolve()
    domain = domain or code_location_name(project_root)
    check_name(domain, "domain")
    if dbt_project is None:
        root = next((p for p in project_root.parents if (p / DBT_FOLDER).is_dir()), project_root.parent.parent)
        dbt_project = Path(os.path.relpath(root / DBT_FOLDER / domain, project_root)).as_posix()
    target = Path(request.target_path) / "defs.yaml"
    if target.exists():
        raise ScaffoldError(f"{target} already exists; nothing was written")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(defs_yaml(domain, manifests, dbt_project), encoding="utf-8")
    products = project_root / manifests
    if not products.exists():
        products.mkdir(parents=True)
        (products / ".gitkeep").write_text("")
    return target


# --- the mesh command ----------------------------------------------------------------------------------------------

def _new_domain(args: argparse.Namespace) -> int:
    plan = new_domain(args.name, owner_email=args.owner_email)
    print(f"created domain {args.name}:")
    print("\n".join(plan.summary() + [f"  note: {n}" for n in plan.notes]))
    print(f"next: mesh new product {args.name}.<product> --input <domain.product.port>  (mesh catalog lists the ports)")
    return 0


def _new_product(args: argparse.Namespace) -> int:
    plan = new_product(args.product_id, args.input, archetype=args.archetype, owner_email=args.owner_email,
                       visibility=args.visibility)
    domain, product = args.product_id.split(".")
    upstream = sorted({p.split(".")[0] for p in args.input} - {domain})
    run = " ".join(f"--domain {d}" for d in [*upstream, domain])
    print(f"created product {args.product_id}:")
    print("\n".join(plan.summary() + [f"  note: {n}" for n in plan.notes]))
    print(f"next: mesh validate; mesh run {run}; mesh read {args.product_id}.{product}")
    return 0


def add_command(commands: argparse._SubParsersAction, help: str) -> argparse.ArgumentParser:
    """`mesh new domain NAME` and `mesh new product DOMAIN.PRODUCT [--input PORT ...]`."""
    new = commands.add_parser("new", help=help)
    kinds = new.add_subparsers(dest="new_command", required=True, metavar="{domain,product}")
    domain = kinds.add_parser("domain", help="a new domain: code location, dbt project, workspace entry, team, test")
    domain.add_argument("name", help="the domain, snake_case: its code location, dbt project and owner team")
    domain.add_argument("--owner-email",
                        help="the team's mailbox for governance/teams.yaml (default <name>-data@example.com)")
    domain.set_defaults(handler=_new_domain)
    product = kinds.add_parser("product", help="a new data product: manifest, dbt model and schema.yml entry")
    product.add_argument("product_id", metavar="DOMAIN.PRODUCT", help="the new product's id, snake_case")
    product.add_argument("--input", action="append", default=[], metavar="DOMAIN.PRODUCT.PORT",
                         help="an output port the product reads (repeatable; `mesh catalog` lists them)")
    product.add_argument("--archetype", choices=ARCHETYPES,
                         help="default: aggregate with inputs, source-aligned without")
    product.add_argument("--visibility", choices=VISIBILITIES, default="public",
                         help="of its output port (default public)")
    product.add_argument("--owner-email", help="the owner's mailbox (default: the domain's products' or its team's)")
    product.set_defaults(handler=_new_product)
    return new
