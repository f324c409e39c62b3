"""A small YAML writer for the generated blocks.

PyYAML's dumper does not indent lists under their key and cannot fold long
strings in a way yamllint's default rules accept; this writer does both, is
deterministic (keys keep their order) and fast enough for 500 machines.
Only plain data is supported: mappings, lists, strings, numbers, booleans, null,
and Ansible Vault values (``!vault``) passed through from infra.yml.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .loader import VAULT_TAG, Vault

WIDTH = 80
INDENT = "  "
# Strings written without quotes: safe characters only, and never a value the
# YAML 1.1 resolver would read as something else (true, 0x1, 1e3, 12:30, ...).
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@+-]*(?::[A-Za-z0-9_./@+-]+)*$")
_NOT_PLAIN = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|null|Null|NULL|~|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"
)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Characters JSON leaves alone but a YAML reader rejects or reads as a line break.
_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def quote(text: str) -> str:
    """A double-quoted YAML scalar (JSON string syntax is a subset of it)."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "." not in text:
            # YAML 1.1 (PyYAML) reads 1e-05 as a string; a float needs a dot.
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent}" if exponent else f"{mantissa}.0"
        return text
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and not _NOT_PLAIN.fullmatch(value):
            return value
        return quote(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _key(key: Any) -> str:
    if isinstance(key, str) and _KEY.fullmatch(key) and not _NOT_PLAIN.fullmatch(key):
        return key
    return scalar(key)


def _folded(prefix: str, text: str, depth: int) -> list[str]:
    """``prefix`` + a quoted string, folded at single spaces to stay within WIDTH.

    In a double-quoted YAML scalar a line break between two words reads back
    as one space, and the continuation's leading indentation is ignored.
    """
    quoted = quote(text)
    first = prefix + quoted
    if len(first) <= WIDTH or " " not in text:
        return [first]
    pad = INDENT * (depth + 1)
    lines: list[str] = []
    current = ""
    for word in re.split(r"(?<=[^ ]) (?=[^ ])", quoted):
        if not current:
            current = prefix + word
        elif len(current) + 1 + len(word) > WIDTH:
            lines.append(current)
            current = pad + word
        else:
            current = current + " " + word
    lines.append(current)
    return lines


def _lines(value: Any, depth: int) -> list[str]:
    pad = INDENT * depth
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{pad}{_key(key)}:"
            if isinstance(item, dict | list) and item:
                out.append(head)
                out.extend(_lines(item, depth + 1))
            else:
                out.extend(_inline(head + " ", item, depth))
        return out
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                nested = _lines(item, depth + 1)
                nested[0] = f"{pad}- {nested[0][len(pad) + len(INDENT) :]}"
                out.extend(nested)
            elif isinstance(item, list) and item:
                out.append(f"{pad}-")
                out.extend(_lines(item, depth + 1))
            else:
                out.extend(_inline(f"{pad}- ", item, depth))
        return out
    return _inline(pad, value, depth)


def _inline(prefix: str, value: Any, depth: int) -> list[str]:
    if isinstance(value, Vault):
        # A literal block, indented below its key or list dash, as ansible-vault prints it.
        pad = INDENT * (depth + 1)
        return [f"{prefix}{VAULT_TAG} |"] + [pad + line for line in value.ciphertext.splitlines()]
    if isinstance(value, dict):
        return [prefix + "{}"]
    if isinstance(value, list):
        return [prefix + "[]"]
    text = scalar(value)
    if isinstance(value, str) and len(prefix) + len(text) > WIDTH and text.startswith('"'):
        return _folded(prefix, value, depth)
    return [prefix + text]


def dump(value: dict[str, Any]) -> str:
    """YAML text for a mapping, one line per scalar, ending in a newline."""
    if not value:
        return ""
    return "\n".join(_lines(value, 0)) + "\n"
