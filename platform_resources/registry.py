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
from platform_resources.manifest import PORT_ID, Manifest, ManifestError, ManifestErrors, OutputPort, load_manifest

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

    # --- lookups -------------------------------------------------------------------------------
    def location_of(self, product_id: str) -> str:
        """The domain of a product (or of a reader named by product id or domain): the code location declaring it.

        A manifest filed in another domain's folder belongs to that folder, whatever its id says.
        """
        return self.locations.get(product_id, product_id.split(".")[0])

    def products_of(self, domain: str) -> list[Manifest]:
        return [m for pid, m in self.products.items() if self.locations[pid] == domain]

    def port(self, port_id: str) -> tuple[Manifest, OutputPort]:
        if not PORT_ID.match(port_id):
            raise RegistryError(f"'{port_id}' is not a port id; write domain.product.port, like crm.customers.customers")
        domain, product, port_name = port_id.split(".")
        manifest = self.products.get(f"{domain}.{product}")
        port = manifest.output_port(port_name) if manifest else None
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
        """Each domain -> the other domains it reads ports from."""
        graph: dict[str, set[str]] = {d: set() for d in self.domains}
        for product_id in self.products:
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
            documents = list(yaml.safe_load_all(defs_yaml.read_text()))
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


def _entry_domain(kind: str, target: dict, root: Path) -> Domain | None:
    working = (root / target.get("working_directory", ".")).resolve()
    if kind == "grpc_server":
        name = target.get("location_name")
        server = f"{target.get('host', 'localhost')}:{target.get('port') or target.get('socket')}"
        return Domain(name, server=server) if name else None
    if kind == "python_file":
        path = (working / target["relative_path"]).resolve()
        folder = project_root(path.parent, working)
        return local_domain(target.get("location_name") or folder.name, folder, working_directory=working)
    module = target.get("module_name") or target.get("package_name")
    if not module:
        return None
    parts = module.split(".")
    module_dir = working / Path(*parts) if kind == "python_package" else working / Path(*parts[:-1])
    folder = project_root(module_dir, working)
    return local_domain(target.get("location_name") or folder.name, folder, module, working)


def read_workspace(workspace: Path) -> dict[str, Domain]:
    """The domain code locations listed in workspace.yaml: python_module, python_file, python_package, grpc_server."""
    entries = (yaml.safe_load(workspace.read_text()) or {}).get("load_from", []) if workspace.exists() else []
    domains: dict[str, Domain] = {}
    for entry in entries:
        for kind, target in (entry or {}).items():
            if kind == "python_module" and isinstance(target, str):
                target = {"module_name": target}
            domain = _entry_domain(kind, target, workspace.parent) if isinstance(target, dict) else None
            if domain:
                domains[domain.name] = domain
    return domains


def load_registry(workspace: Path | None = None, *, published: bool = True) -> Registry:
    """The mesh as this checkout sees it: the workspace's local domains, and every domain in the registry store."""
    workspace = workspace or workspace_file()
    return _build(Registry(read_workspace(workspace), workspace), published)


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
            entries[product_id] = (product_id, _source_file(registry, path), path.read_text(encoding="utf-8"), error)
        count += registry_store.publish(name, list(entries.values()))
    return count


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
