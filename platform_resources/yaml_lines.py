"""Load YAML while remembering the line of every value, so errors can point at it.

The files are written by people (and by attackers): the loader refuses what YAML allows but a manifest never
needs, before it can cost time or memory or change meaning silently: bytes that are not UTF-8, files over a size
limit, duplicate keys (YAML keeps the last one silently), keys that are lists or mappings, aliases that contain
themselves or expand into millions of values, nesting deeper than a manifest ever goes, and scalars that do not
convert (a date like 2025-13-45).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]

MAX_VALUES = 100_000  # values after expanding aliases; a real manifest has a few hundred
MAX_DEPTH = 64  # nested mappings and lists; a manifest goes about eight deep
_PLAIN_TAGS = {f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")}


class YamlRefused(yaml.YAMLError):
    """YAML the platform will not read, with the line, the problem and the fix (a mark-less YAMLError of our own)."""

    def __init__(self, line: int, problem: str, fix: str, location: Location = ()):
        self.line, self.problem, self.fix, self.location = line, problem, fix, location
        super().__init__(f"line {line}: {problem}; {fix}")


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


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Builder:
    """Python values from a composed node tree, with the line of each key path and the limits above."""

    def __init__(self, loader: yaml.SafeLoader | yaml.CSafeLoader):
        self.loader = loader
        self.lines: dict[Location, int] = {}
        self.values = 0
        self.open: set[int] = set()  # ids of the nodes being built: an alias to one of them is a recursion

    def build(self, node: yaml.Node, path: Location, line: int) -> Any:
        if id(node) in self.open:
            raise YamlRefused(line, "an alias refers to a value that contains the alias itself (a recursive alias)",
                              "write the value out instead of the alias", path)
        self.values += 1
        if self.values > MAX_VALUES:
            raise YamlRefused(line, f"the document expands to more than {MAX_VALUES:,} values (each alias repeats "
                                    "the whole value it names)", "write the values out, without nested aliases", path)
        if len(path) > MAX_DEPTH:
            raise YamlRefused(line, f"values are nested more than {MAX_DEPTH} levels deep",
                              "flatten the structure: no manifest field nests that deep", path)
        self.lines[path] = _line(node)
        if node.tag not in _PLAIN_TAGS:  # !!python/..., !!binary, !!set, a tag of your own: no manifest needs one
            raise YamlRefused(_line(node), f"the tag {node.tag} is not allowed", "remove the tag", path)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, (*path, i), _line(item)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Location) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = _line(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlRefused(line, "a key is a list or a mapping (a '?' complex key)",
                                  "write every key as plain text, like 'name:'", path)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlRefused(line, "merge keys ('<<: *alias') are not supported",
                                  "write the fields out in this mapping", path)
            key = self._scalar(key_node, path)
            if not isinstance(key, str):
                raise YamlRefused(line, f"the key {key_node.value!r} is read as {type(key).__name__}, not text",
                                  f"write a field name, or quote it: '{key_node.value}':", path)
            if key in result:
                raise YamlRefused(line, f"key '{key}' is given twice (first at line {first_line[key]}); YAML would "
                                        "silently keep only the last value", "keep one of them", (*path, key))
            first_line[key] = line
            result[key] = self.build(value_node, (*path, key), line)
            self.lines[(*path, key)] = line
        return result

    def _scalar(self, node: yaml.ScalarNode, path: Location) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise  # an unknown tag: it names its own line
        except (ValueError, TypeError, OverflowError) as exc:  # YAML resolved a type the text does not fit
            kind = {"timestamp": "date"}.get(node.tag.rsplit(":", 1)[-1], node.tag.rsplit(":", 1)[-1])
            fix = "write a date as YYYY-MM-DD" if kind == "date" else f"write a valid {kind}, or quote the text"
            raise YamlRefused(_line(node), f"'{node.value}' is not a valid {kind} ({exc})", fix, path) from None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise YamlRefused(line, f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})",
                          "save the file as UTF-8") from None


def read_text(path: Path, max_bytes: int | None = None) -> str:
    """The file's text, refused (YamlRefused) when over `max_bytes` (checked before reading) or not UTF-8."""
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):  # a pipe or a device would block or never end
        raise YamlRefused(1, "is not a regular file", "replace it with a YAML file")
    size = status.st_size
    if max_bytes is not None and size > max_bytes:
        raise YamlRefused(1, f"the file has {size:,} bytes, more than the limit of {max_bytes:,}",
                          "keep the file small: one product per file, without generated bulk")
    return _decode(path.read_bytes())


def _loader(text: str) -> yaml.SafeLoader | yaml.CSafeLoader:
    """libyaml's loader where PyYAML has it (a registry of 14 manifests composes in 6 ms, not 87 ms), else the
    pure-Python one. libyaml's composer recurses in C without a limit and would crash the process on deeply nested
    input, so the nesting is measured first on libyaml's event stream, which does not recurse."""
    if not yaml.__with_libyaml__:
        return yaml.SafeLoader(text)
    parser, depth = yaml.CSafeLoader(text), 0
    try:
        while (event := parser.get_event()) is not None:
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                # One level past the builder's own limit: up to there the builder refuses it, naming the field.
                if depth > MAX_DEPTH + 1:
                    raise YamlRefused(event.start_mark.line + 1, f"values are nested more than {MAX_DEPTH} levels deep",
                                      "flatten the structure: no manifest field nests that deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        parser.dispose()
    return yaml.CSafeLoader(text)


def load_yaml_with_lines(path: Path, text: str | None = None, max_bytes: int | None = None) -> YamlWithLines:
    """Parse `path` (or `text` read from it); yaml.YAMLError propagates with its own mark for the caller to report,
    and YamlRefused (a YAMLError too) with its line, problem and fix."""
    if text is None:
        text = read_text(path, max_bytes)
    elif max_bytes is not None and len(text) > max_bytes:
        raise YamlRefused(1, f"the document has {len(text):,} characters, more than the limit of {max_bytes:,}",
                          "keep the file small: one product per file, without generated bulk")
    # One loader per file: a loader remembers every node it constructed until it is disposed.
    loader = _loader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:  # the pure-Python parser nests one call per level
            raise YamlRefused(1, "values are nested too deeply to parse",
                              "flatten the structure: no manifest field nests that deep") from None
        builder = _Builder(loader)
        data = builder.build(root, (), 1) if root is not None else None
    finally:
        loader.dispose()
    return YamlWithLines(data, builder.lines)
