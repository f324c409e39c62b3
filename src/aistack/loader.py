"""Read infra.yml into plain data while remembering the line of every key.

PyYAML's own constructors forget where a value came from and keep the last of
two duplicate keys silently; both facts matter for error messages, so the
composed node tree is walked here instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import AistackError, Issue

try:  # the C parser is several times faster; fall back when libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

KeyPath = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"
VAULT_TAG = "!vault"


@dataclass(frozen=True)
class Vault:
    """An Ansible Vault value (``!vault |``): carried to host_vars as it was written.

    The generator never decrypts it; Ansible does, with the user's vault password.
    """

    ciphertext: str


def format_path(path: KeyPath) -> str:
    """Write a key path the way users read it: ``domains.lab.machines.ai.roles[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Document:
    """Parsed YAML plus the 1-based line of each key path (mapping keys and list items)."""

    source: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def line(self, path: KeyPath) -> int:
        """Line of ``path``, or of its nearest ancestor the file mentions."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def issue(self, path: KeyPath, message: str) -> Issue:
        return Issue(self.source, self.line(path), format_path(path), message)


class _Walker:
    def __init__(self, loader: Any, source: str) -> None:
        self.loader = loader
        self.source = source
        self.lines: dict[KeyPath, int] = {}
        self.issues: list[Issue] = []

    def value(self, node: yaml.Node, path: KeyPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            result = []
            for index, item in enumerate(node.value):
                self.lines[path + (index,)] = item.start_mark.line + 1
                result.append(self.value(item, path + (index,)))
            return result
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        # Most values are plain strings; skipping PyYAML's generic dispatch for
        # them keeps a 500-machine file well inside the sync time budget.
        if node.tag == _STR:
            return node.value
        if node.tag == VAULT_TAG and isinstance(node, yaml.ScalarNode):
            return Vault(node.value)
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.scalar(key_node)
            line = key_node.start_mark.line + 1
            if _hashable(key) and key in seen:
                self.issues.append(
                    Issue(
                        self.source,
                        line,
                        format_path(path + (str(key),)),
                        f"duplicate key '{key}' (first set on line {seen[key]}); "
                        "YAML keeps only one of them, so remove or rename the other",
                    )
                )
            elif _hashable(key):
                seen[key] = line
        self.loader.flatten_mapping(node)  # resolves "<<" merge keys, own keys win
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not _hashable(key):
                self.issues.append(
                    Issue(
                        self.source,
                        key_node.start_mark.line + 1,
                        format_path(path),
                        "a mapping key must be a plain value, not a list or mapping",
                    )
                )
                continue
            child = path + (key if isinstance(key, str) else str(key),)
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self.value(value_node, child)
        return result


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def parse(text: str, source: str) -> Document:
    """Parse YAML text; a syntax error raises AistackError, duplicate keys land in .issues."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(source, None, {(): 1})
        walker = _Walker(loader, source)
        data = walker.value(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or str(exc)
        raise AistackError(
            [Issue(source, line, "", f"not valid YAML: {problem}; fix the syntax at this line")]
        ) from None
    except yaml.YAMLError as exc:
        raise AistackError([Issue(source, 0, "", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    walker.lines[()] = node.start_mark.line + 1
    # Duplicate keys travel with the document (the last value wins meanwhile),
    # so that the validator reports them together with everything else.
    return Document(source, data, walker.lines, walker.issues)


def load(path: Path, display: str | None = None) -> Document:
    """Read and parse a file; a missing or unreadable file is a user error too."""
    source = display or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AistackError(
            [Issue(source, 0, "", "file not found; pass the right path with --infra")]
        ) from None
    except OSError as exc:
        raise AistackError(
            [Issue(source, 0, "", f"cannot read the file: {exc.strerror}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AistackError(
            [Issue(source, 0, "", f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")]
        ) from None
    return parse(text, source)
