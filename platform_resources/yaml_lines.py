"""Load YAML while remembering the line of every value, so errors can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]


class YamlWithLines:
    """Parsed YAML data plus the 1-based line of every key path in it."""

    def __init__(self, data: Any, lines: dict[Location, int]):
        self.data = data
        self.lines = lines

    def line_of(self, location: Location) -> int:
        """Line of the deepest known prefix of `location` (1 when nothing matches)."""
        for end in range(len(location), -1, -1):
            line = self.lines.get(tuple(location[:end]))
            if line is not None:
                return line
        return 1


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Location, lines: dict[Location, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            result[key] = _construct(loader, value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml_with_lines(path: Path, text: str | None = None) -> YamlWithLines:
    """Parse `path` (or `text` read from it); yaml.YAMLError propagates with its own mark for the caller to report."""
    # One loader per file: a loader remembers every node it constructed until it is disposed.
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8") if text is None else text)
    try:
        root = loader.get_single_node()
        lines: dict[Location, int] = {}
        data = _construct(loader, root, (), lines) if root is not None else None
    finally:
        loader.dispose()
    return YamlWithLines(data, lines)
