"""Managed blocks: the generator owns the text between two marker lines, the user the rest.

Everything outside the markers is kept byte for byte. A new block goes at the
top of the document, so a key the user sets below it wins (YAML keeps the last
of two duplicate keys, and ansible.cfg silences Ansible's warning about it).
"""

from __future__ import annotations

import yaml

BEGIN = "# BEGIN aistack managed block: written by `aistack sync`, edits inside are lost"
END = "# END aistack managed block"
_BEGIN_TAG = "# BEGIN aistack managed block"


class _CheckLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Reads the combined file only to check it; !vault values stay opaque strings."""


_CheckLoader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


class BlockError(ValueError):
    """The markers in an existing file are damaged; the message says how to repair them."""


def _marker_lines(lines: list[str]) -> tuple[list[int], list[int]]:
    begins = [i for i, line in enumerate(lines) if line.startswith(_BEGIN_TAG)]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == END]
    return begins, ends


def has_block(text: str) -> bool:
    begins, ends = _marker_lines(text.splitlines(keepends=True))
    return len(begins) == 1 and len(ends) == 1 and begins[0] < ends[0]


def _block(body: str) -> str:
    return f"{BEGIN}\n{body}{END}\n"


def _outside_is_trivial(lines: list[str]) -> bool:
    return all(
        not line.strip() or line.lstrip().startswith("#") or line.strip() == "---" for line in lines
    )


def compose(existing: str | None, body: str) -> str:
    """The file's new text: ``body`` inside the markers, the rest of ``existing`` untouched."""
    if existing is None or existing == "":
        return "---\n" + _block(body)
    lines = existing.splitlines(keepends=True)
    begins, ends = _marker_lines(lines)
    if not begins and not ends:
        # Put the block right after the document start, or at the very top.
        insert = 0
        for index, line in enumerate(lines):
            stripped = line.strip()
            if stripped == "---":
                insert = index + 1
                break
            if stripped and not stripped.startswith(("#", "%")):
                break
        head = "".join(lines[:insert])
        if head and not head.endswith("\n"):
            head += "\n"
        result = head + _block(body) + "".join(lines[insert:])
        outside = lines
    elif len(begins) == 1 and len(ends) == 1 and begins[0] < ends[0]:
        before, after = lines[: begins[0]], lines[ends[0] + 1 :]
        result = "".join(before) + _block(body) + "".join(after)
        outside = before + after
    else:
        raise BlockError(
            f"the managed block markers are damaged ({len(begins)} BEGIN and {len(ends)} END "
            "lines); keep exactly one pair, or delete the file to have it written afresh"
        )
    if not _outside_is_trivial(outside):
        try:
            parsed = yaml.load(result, Loader=_CheckLoader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            raise BlockError(
                f"your text outside the managed block does not combine with it "
                f"into valid YAML ({exc.__class__.__name__}); fix the file"
            ) from None
        if not isinstance(parsed, dict):
            raise BlockError(
                "your text outside the managed block turns the file into something "
                "other than a mapping; keep only top-level keys there"
            )
    return result
