"""The mesh-wide view: every domain's published manifests, input-port resolution, the product graph.

A registry holds the domains whose folders this checkout has (their manifests as they are on disk) and every
other domain as it published itself to the registry store. A code location builds from its own folder plus the
store, so it never reaches into another domain's folder and loads when deployed alone.
"""

from __future__ import annotations

import functools
import graphlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from platform_resources import registry_store
from platform_resources.home import workspace_file
from platform_resources.manifest import (
    MAX_MANIFEST_BYTES,
    PORT_ID,
    Manifest,
    ManifestError,
    InputPort,
    ManifestErrors,
    OutputPort,
    load_manifest,
)
from platform_resources.yaml_lines import YamlRefused, YamlWithLines, load_yaml_with_lines, read_text

PRODUCTS_FOLDER = "products"
COMPONENT_TYPE = "platform_resources.component.DataMeshDomain"


class RegistryError(LookupError):
    pass


@dataclass(frozen=True)
class Domain:
    """A domain code location. `folder` (its dg project) is set when this checkout has the domain's source."""

    name: str
    module: str | None = None
    folder: Path | None = None
    manifests_folder: Path | None = None
    dbt_project: Path | None = None
    server: str | None = None  # host:port of its code server, for grpc_server workspace entries
    working_directory: Path | None = None  # where its module is imported from

    @property
    def manifest_files(self) -> list[Path]:
        return sorted(self.manifests_folder.glob("*.y*ml")) if self.manifests_folder else []

    @property
    def is_local(self) -> bool:
        return self.manifests_folder is not None


@dataclass
class Registry:
    domains: dict[str, Domain]
    workspace: Path
    products: dict[str, Manifest] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    # The code location whose folder declares each product (policy MESH-ID-001 wants it to match the id).
    locations: dict[str, str] = field(default_factory=dict)
    # Manifests that failed to load, by the product id their file name suggests.
    broken: dict[str, ManifestErrors] = field(default_factory=dict)
    # Resolution problems per product: unknown references, cycles, duplicates.
    problems: dict[str, list[str]] = field(default_factory=dict)
    # Entries of workspace.yaml that name no loadable code location (the domain is then known as it published).
    workspace_errors: list[ManifestError] = field(default_factory=list)

    # --- lookups -------------------------------------------------------------------------------
    def location_of(self, product_id: str) -> str:
        """The domain of a product (or of a reader named by product id or domain): the code location declaring it.

        A manifest filed in another domain's folder belongs to that folder, whatever its id says.
        """
        return self.locations.get(product_id, product_id.split(".")[0])

    def products_of(self, domain: str) -> list[Manifest]:
        return [m for pid, m in self.products.items() if self.locations[pid] == domain]

    def broken_in(self, domain: str) -> dict[str, ManifestErrors]:
        """The broken manifests of one domain's code location, by the product id their file name suggests."""
        return {pid: errors for pid, errors in self.broken.items() if self.location_of(pid) == domain}

    def port(self, port_id: str) -> tuple[Manifest, OutputPort]:
        if not PORT_ID.match(port_id):
            raise RegistryError(f"'{port_id}' is not a port id; write domain.product.port, like crm.customers.customers")
        domain, product, port_name = port_id.split(".")
        manifest = self.products.get(f"{domain}.{product}")
        port = manifest.output_port(port_name) if manifest else None
        if manifest is None and f"{domain}.{product}" in self.broken:
            raise RegistryError(f"{port_id} is not served while the manifest of {domain}.{product} is broken "
                                f"({self.broken[f'{domain}.{product}'].errors[0]}); its owners must fix it")
        if port is None:
            raise RegistryError(f"unknown output port {port_id}; known ports: {', '.join(self.port_ids()) or 'none'}")
        return manifest, port

    def port_ids(self) -> list[str]:
        return [f"{m.id}.{p.name}" for m in self.products.values() for p in m.output_ports]

    def upstream_products(self, product_id: str) -> set[str]:
        manifest = self.products[product_id]
        return {p.source.rsplit(".", 1)[0] for p in manifest.input_ports if p.source}

    def consumers(self, port_id: str) -> list[str]:
        return sorted(m.id for m in self.products.values() for p in m.input_ports if p.source == port_id)

    def domain_dependencies(self) -> dict[str, set[str]]:
        """Each domain -> the other domains it reads ports from.

        Products with resolution problems are left out: they cannot publish (MESH-REG-001), so the order of a run
        need not wait for what they read, and a cycle they make is their finding rather than every run's failure.
        """
        graph: dict[str, set[str]] = {d: set() for d in self.domains}
        for product_id in self.products:
            if product_id in self.problems:
                continue
            domain = self.location_of(product_id)
            graph[domain] |= {self.location_of(u) for u in self.upstream_products(product_id)} & set(graph) - {domain}
        return graph

    def domain_order(self) -> list[str]:
        """Domains in an order where every domain comes after the domains it reads from."""
        try:
            return list(graphlib.TopologicalSorter(self.domain_dependencies()).static_order())
        except graphlib.CycleError as exc:
            raise RegistryError(f"domains read from each other in a cycle {exc.args[1]}; "
                                "break the cycle so the mesh can be run domain by domain") from None

    # --- building --------------------------------------------------------------------------------
    def _problem(self, product_id: str, message: str) -> None:
        self.problems.setdefault(product_id, []).append(message)

    def _add(self, domain: str, product_id: str, manifest: Manifest, path: Path, seen: dict[str, list[Path]]) -> None:
        seen.setdefault(product_id, []).append(path)
        self.products[product_id] = manifest
        self.files[product_id] = path
        self.locations[product_id] = domain

    def _load(self, published: list[registry_store.PublishedManifest]) -> None:
        """The local domains from their folders, every other domain as it published itself."""
        seen: dict[str, list[Path]] = {}
        for domain in self.domains.values():
            for path in domain.manifest_files:
                try:
                    self._add(domain.name, (manifest := load_manifest(path)).id, manifest, path, seen)
                except ManifestErrors as errors:
                    self.broken[f"{domain.name}.{path.stem}"] = errors
        local = {name for name, d in self.domains.items() if d.is_local}
        for entry in published:
            if entry.domain in local:
                continue  # this checkout's own folder is newer than what the domain last published
            self.domains.setdefault(entry.domain, Domain(entry.domain))
            path = Path(entry.source_file)
            if entry.error:
                self.broken[entry.product_id] = ManifestErrors([ManifestError(**e) for e in json.loads(entry.error)])
                continue
            try:
                self._add(entry.domain, entry.product_id, load_manifest(path, entry.manifest), path, seen)
            except ManifestErrors as errors:  # published by an older platform version that accepted it
                self.broken[entry.product_id] = errors
        for product_id, paths in seen.items():
            if len(paths) > 1:
                self.products.pop(product_id, None)
                listed = ", ".join(str(p) for p in paths)
                self._problem(product_id, f"product id {product_id} is declared by several manifests ({listed}); "
                                          "give each product its own id")

    def _resolve(self) -> None:
        for manifest in self.products.values():
            for input_port in manifest.input_ports:
                if input_port.source:
                    problem = self._unresolvable(input_port.source)
                    if problem:
                        self._problem(manifest.id, f"input port '{input_port.name}' (from {input_port.source}): {problem}")
        graph = {pid: self.upstream_products(pid) & set(self.products) for pid in self.products}
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle = exc.args[1]
            for product_id in set(cycle):
                self._problem(product_id, f"input ports form a cycle {' -> '.join(cycle)}; "
                                          "a product cannot depend on itself, directly or through others")
        self._domain_cycles()

    def _domain_cycles(self) -> None:
        """Domains run one after another, so two domains may not read from each other, even through others.

        The reads of the cycle's thinnest edge (fewest products reading across it: most likely the new one) are the
        finding; with those products out of the run order, the rest of the mesh runs.
        """
        while True:
            try:
                graphlib.TopologicalSorter(self.domain_dependencies()).prepare()
                return
            except graphlib.CycleError as exc:
                cycle = exc.args[1]  # each domain is read by the next one
            edges = [self._reads_across(producer, consumer) for producer, consumer in zip(cycle, cycle[1:])]
            thinnest = min(edges, key=lambda reads: len({product_id for product_id, _ in reads}))
            for product_id, port in thinnest:
                consumer = self.location_of(product_id)
                reads = list(reversed(cycle[1:]))  # each domain reads from the next, starting at this consumer
                chain = " reads from ".join([*reads[reads.index(consumer):], *reads[:reads.index(consumer)], consumer])
                self._problem(product_id, f"input port '{port.name}' (from {port.source}) closes a cycle of domains "
                              f"that wait for each other: {chain}; domains publish one after another, so read only "
                              "from domains that do not read yours (move the product to another domain, or remove "
                              "the input)")

    def _reads_across(self, producer: str, consumer: str) -> list[tuple[str, InputPort]]:
        """(product id, input port) of every read of a consumer domain's products from a producer domain."""
        return [(product_id, port) for product_id, manifest in self.products.items()
                if self.location_of(product_id) == consumer and product_id not in self.problems
                for port in manifest.input_ports
                if port.source and self.location_of(port.source.rsplit(".", 1)[0]) == producer]

    def _unresolvable(self, port_id: str) -> str | None:
        domain, product, port = port_id.split(".")
        product_id = f"{domain}.{product}"
        if product_id in self.broken:
            first = self.broken[product_id].errors[0]
            return f"the manifest of {product_id} is broken ({first}); its owners must fix it"
        if product_id in self.problems and product_id not in self.products:
            return f"{product_id} cannot be resolved: {self.problems[product_id][0]}"
        manifest = self.products.get(product_id)
        if manifest is None:
            known = ", ".join(sorted(self.products)) or "none"
            return f"unknown product {product_id}; check the id (known products: {known})"
        if manifest.output_port(port) is None:
            ports = ", ".join(p.name for p in manifest.output_ports)
            return f"{product_id} has no output port '{port}'; its ports are: {ports}"
        return None


def component_config(folder: Path) -> dict:
    """The attributes of the DataMeshDomain component in a code location's defs folder ({} when it has none)."""
    for defs_yaml in sorted(folder.glob("**/defs/**/defs.yaml")):
        try:
            documents = list(yaml.safe_load_all(defs_yaml.read_bytes()))  # bytes: bad encodings are YAML errors
        except yaml.YAMLError as exc:
            raise RegistryError(f"{defs_yaml} is not valid YAML ({exc}); `dg check yaml` shows where") from None
        for document in documents:
            if isinstance(document, dict) and document.get("type") == COMPONENT_TYPE:
                return document.get("attributes") or {}
    return {}


def project_root(module_dir: Path, working_directory: Path) -> Path:
    """The code location's dg project: the folder with its dg.toml (or pyproject.toml), else the module's folder."""
    for folder in (module_dir, *module_dir.parents):
        if (folder / "dg.toml").exists() or (folder / "pyproject.toml").exists():
            return folder
        if folder == working_directory:
            break
    return module_dir


def local_domain(name: str, folder: Path, module: str | None = None, working_directory: Path | None = None) -> Domain:
    """A domain whose code location folder is here: where its manifests and dbt project are, as its defs.yaml says."""
    config = component_config(folder)
    dbt_project = config.get("dbt_project")
    if dbt_project is None and not config:  # a plain folder of manifests (no component): the sample layout's place
        dbt_project = str(Path("..", "..", "dbt_projects", name))
    return domain_at(folder, config.get("domain", name), config.get("manifests", PRODUCTS_FOLDER), dbt_project,
                     module, working_directory)


def domain_at(folder: Path, name: str, manifests: str, dbt_project: str | None, module: str | None = None,
              working_directory: Path | None = None) -> Domain:
    """The domain of a dg project folder, with the component's paths (relative to the folder) resolved."""
    return Domain(name, module, folder, (folder / manifests).resolve(),
                  (folder / dbt_project).resolve() if dbt_project else None, working_directory=working_directory)


class WorkspaceEntryError(ValueError):
    """A workspace.yaml entry that names no loadable code location: the field, the problem, the fix."""

    def __init__(self, field: str, problem: str, fix: str):
        self.field, self.problem, self.fix = field, problem, fix
        super().__init__(f"field '{field}': {problem}. Fix: {fix}")


def _text(target: dict, key: str) -> str | None:
    value = target.get(key)
    if value is not None and not isinstance(value, str):
        raise WorkspaceEntryError(key, f"is {type(value).__name__}, not text", f"write {key} as text")
    return value


def _entry_domain(kind: str, target: dict, root: Path) -> Domain:
    working = (root / (_text(target, "working_directory") or ".")).resolve()
    name = _text(target, "location_name")
    if kind == "grpc_server":
        if not name:
            raise WorkspaceEntryError("location_name", "is missing", "name the domain the code server serves")
        server = f"{target.get('host', 'localhost')}:{target.get('port') or target.get('socket')}"
        return Domain(name, server=server)
    if not working.is_dir():
        raise WorkspaceEntryError("working_directory", f"{working} is not a folder",
                                  "point working_directory at the domain's code location folder")
    if kind == "python_file":
        relative = _text(target, "relative_path")
        if not relative:
            raise WorkspaceEntryError("relative_path", "is missing", "name the domain's definitions.py")
        path = (working / relative).resolve()
        if not path.parent.is_dir():
            raise WorkspaceEntryError("relative_path", f"{path.parent} is not a folder", "name the domain's definitions.py")
        folder = project_root(path.parent, working)
        return local_domain(name or folder.name, folder, working_directory=working)
    key = "package_name" if kind == "python_package" else "module_name"
    module = _text(target, key)
    if not module:
        raise WorkspaceEntryError(key, "is missing", f"add {key}: <domain>_domain.definitions")
    parts = module.split(".")
    module_dir = working / Path(*parts) if kind == "python_package" else working / Path(*parts[:-1])
    if not module_dir.is_dir():
        raise WorkspaceEntryError(key, f"{module} is not a package under {working} (no folder {module_dir})",
                                  "fix the module name or the working_directory")
    folder = project_root(module_dir, working)
    return local_domain(name or folder.name, folder, module, working)


_KINDS = ("python_module", "python_file", "python_package", "grpc_server")


def _workspace_document(workspace: Path, errors: list[ManifestError]) -> YamlWithLines | None:
    try:
        parsed = load_yaml_with_lines(workspace, max_bytes=MAX_MANIFEST_BYTES)
    except YamlRefused as exc:
        errors.append(ManifestError(workspace, exc.line, "(document)", exc.problem, exc.fix))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        errors.append(ManifestError(workspace, mark.line + 1 if mark else 1, "(document)",
                                    f"is not valid YAML ({getattr(exc, 'problem', exc)})", "fix the YAML syntax"))
        return None
    if parsed.data is not None and not (isinstance(parsed.data, dict) and isinstance(parsed.data.get("load_from"), list)):
        errors.append(ManifestError(workspace, 1, "load_from", "is not a list of code locations",
                                    "write 'load_from:' and one '- python_module: {...}' entry per domain"))
        return None
    return parsed


def read_workspace_checked(workspace: Path) -> tuple[dict[str, Domain], list[ManifestError]]:
    """The domain code locations listed in workspace.yaml (python_module, python_file, python_package, grpc_server),
    and the entries that name none, each with its line and fix. An entry naming a domain whose folder is not here
    leaves the domain known by what it published."""
    errors: list[ManifestError] = []
    parsed = _workspace_document(workspace, errors) if workspace.exists() else None
    domains: dict[str, Domain] = {}
    for i, entry in enumerate((parsed.data or {}).get("load_from") or [] if parsed else []):
        for kind, target in (entry.items() if isinstance(entry, dict) else [(None, entry)]):
            if kind == "python_module" and isinstance(target, str):
                target = {"module_name": target}
            at = ("load_from", i, kind) if kind else ("load_from", i)
            try:
                if kind not in _KINDS or not isinstance(target, dict):
                    raise WorkspaceEntryError("", f"is not a code location entry ({kind or entry!r})",
                                              f"write one of {', '.join(_KINDS)} with its settings")
                domain = _entry_domain(kind, target, workspace.parent)
            except (WorkspaceEntryError, RegistryError) as exc:
                if isinstance(exc, RegistryError):  # its defs.yaml does not load
                    exc = WorkspaceEntryError("", f"names a code location that does not load: {exc}",
                                              "fix the file the problem names")
                where = ".".join(str(p) for p in (*at, exc.field) if p != "")
                errors.append(ManifestError(workspace, parsed.line_of((*at, exc.field)), where, exc.problem, exc.fix))
                name = target.get("location_name") if isinstance(target, dict) else None
                if isinstance(name, str) and name:
                    domains.setdefault(name, Domain(name))
                continue
            domains[domain.name] = domain
    return domains, errors


def read_workspace(workspace: Path) -> dict[str, Domain]:
    """The domain code locations listed in workspace.yaml: python_module, python_file, python_package, grpc_server."""
    return read_workspace_checked(workspace)[0]


def load_registry(workspace: Path | None = None, *, published: bool = True) -> Registry:
    """The mesh as this checkout sees it: the workspace's local domains, and every domain in the registry store."""
    workspace = workspace or workspace_file()
    domains, errors = read_workspace_checked(workspace)
    return _build(Registry(domains, workspace, workspace_errors=errors), published)


def domain_registry(domain: Domain) -> Registry:
    """The mesh as one code location sees it: its own folder, and the registry store for everyone else."""
    root = domain.folder.parent.parent if domain.folder else Path.cwd()  # <repo>/mesh_code_locations/<domain>
    return _build(Registry({domain.name: domain}, root / "workspace.yaml"), True)


def _build(registry: Registry, published: bool) -> Registry:
    registry._load(registry_store.published() if published else [])
    registry._resolve()
    return registry


def publish_domains(registry: Registry, domains: list[str] | None = None) -> int:
    """Publish the local domains' manifests (as written, broken ones with their errors) to the registry store."""
    count = 0
    for name, domain in registry.domains.items():
        if not domain.is_local or (domains and name not in domains):
            continue
        entries: dict[str, tuple[str, str, str, str | None]] = {}
        for path in domain.manifest_files:
            try:
                product_id, errors = load_manifest(path).id, None
                if product_id in entries:
                    errors = [ManifestError(path, 1, "id", f"declares {product_id}, which {entries[product_id][1]} "
                                            "declares too", "give each product its own id")]
            except ManifestErrors as problems:
                errors = problems.errors
            if errors:
                product_id = f"{name}.{path.stem}"
            error = json.dumps([{"file": e.file, "line": e.line, "field": e.field, "problem": e.problem, "fix": e.fix}
                                for e in errors]) if errors else None
            entries[product_id] = (product_id, _source_file(registry, path), _published_text(path), error)
        count += registry_store.publish(name, list(entries.values()))
    return count


def _published_text(path: Path) -> str:
    """The manifest as written; a file too big or not UTF-8 is published by its errors alone."""
    try:
        return read_text(path, MAX_MANIFEST_BYTES)
    except (YamlRefused, OSError):
        return ""


def published_registry(workspace: Path | None = None) -> Registry:
    """Publish this checkout's domains to the registry store (what local commands do for you), then the mesh.

    The registry loaded before publishing is already the mesh after it: local domains come from their folders.
    """
    registry = load_registry(workspace)
    publish_domains(registry)
    return registry


def _source_file(registry: Registry, path: Path) -> str:
    try:
        return str(path.relative_to(registry.workspace.parent.resolve()))
    except ValueError:
        return str(path)


@functools.cache
def mesh_registry() -> Registry:
    """The registry of this repository's workspace, loaded once per process."""
    return load_registry()
