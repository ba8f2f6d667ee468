"""The mesh-wide view: every domain's published manifests, input-port resolution, the product graph.

In this monorepo the registry reads manifests from the domains' folders listed in workspace.yaml. It is the
only module that does, so a deployment where each code location is its own image can swap in a shared store.
"""

from __future__ import annotations

import functools
import graphlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from platform_resources.home import workspace_file
from platform_resources.manifest import PORT_ID, Manifest, ManifestErrors, OutputPort, load_manifest

PRODUCTS_FOLDER = "products"


class RegistryError(LookupError):
    pass


@dataclass(frozen=True)
class Domain:
    name: str
    module: str
    folder: Path

    @property
    def manifest_files(self) -> list[Path]:
        return sorted((self.folder / PRODUCTS_FOLDER).glob("*.y*ml"))


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

    def _load(self) -> None:
        seen: dict[str, list[Path]] = {}
        for domain in self.domains.values():
            for path in domain.manifest_files:
                try:
                    manifest = load_manifest(path)
                except ManifestErrors as errors:
                    self.broken[f"{domain.name}.{path.stem}"] = errors
                    continue
                seen.setdefault(manifest.id, []).append(path)
                self.products[manifest.id] = manifest
                self.files[manifest.id] = path
                self.locations[manifest.id] = domain.name
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


def read_workspace(workspace: Path) -> dict[str, Domain]:
    """The domain code locations listed in workspace.yaml."""
    entries = (yaml.safe_load(workspace.read_text()) or {}).get("load_from", [])
    domains: dict[str, Domain] = {}
    for entry in entries:
        target = entry.get("python_module")
        if not isinstance(target, dict):
            continue  # only python_module entries are domains
        module = target["module_name"]
        name = target.get("location_name") or module.split(".")[-2]
        root = workspace.parent / target.get("working_directory", ".")
        domains[name] = Domain(name, module, (root / Path(*module.split(".")[:-1])).resolve())
    return domains


def load_registry(workspace: Path | None = None) -> Registry:
    workspace = workspace or workspace_file()
    registry = Registry(read_workspace(workspace), workspace)
    registry._load()
    registry._resolve()
    return registry


@functools.cache
def mesh_registry() -> Registry:
    """The registry of this repository's workspace, loaded once per process."""
    return load_registry()
