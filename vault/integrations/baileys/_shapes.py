"""Objects that become bytes by their shape alone: found, listed, then revived or kept.

``codec.loads(.., "node")`` reads an object whose keys are exactly ``"0"``..``"n-1"`` and whose
values are ints 0-255 as bytes: that is how ``JSON.stringify`` writes a Uint8Array, and Baileys'
own reader revives it so. No Buffer marker says so, and a map of small counters such as
``{"0": 5, "1": 7}`` has the same shape. A migration therefore lists every such object (entry,
JSON path and length, never its content) and the caller decides:

- ``"revive"`` (:data:`REVIVE`): bytes, exactly what the codec returns;
- ``"keep"`` (:data:`KEEP`): the object, as the file holds it.

Marked Buffers (``{"type":"Buffer","data":..}``, the legacy ``{"buffer":true,"value":..}``)
are bytes in both modes: only the shape rule is in question.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from vault.errors import MigrationError

__all__ = ["BYTES_BY_SHAPE", "KEEP", "REVIVE", "ShapedBytes", "check_mode", "might_hold",
           "sort_out"]

REVIVE, KEEP = "revive", "keep"
BYTES_BY_SHAPE = (REVIVE, KEEP)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_STEPS = 24  # as the codec's error paths: a deeper path keeps its 12 outer and 12 inner


@dataclass(frozen=True)
class ShapedBytes:
    """An object of a planned entry that is bytes by its shape alone: where, never what.

    ``name``: the entry; ``source``: its company id or file name; ``path``: the object's JSON
    path in the entry's value (``$.creds.noiseKey.private``; ``$`` for the whole value);
    ``length``: its number of keys, the length it has as bytes.
    """

    name: str
    source: str
    path: str
    length: int


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is "revive" or "keep". Raises: MigrationError otherwise."""
    if mode not in BYTES_BY_SHAPE:
        raise MigrationError(f"bytes_by_shape must be 'revive' or 'keep', not {mode!r:.40}")
    return mode


def might_hold(text: str | bytes) -> bool:
    """False if a JSON document cannot hold a key ``"0"`` (written so or ``"\\u0030"``)."""
    if isinstance(text, str):
        return '"0"' in text or "\\u" in text
    return b'"0"' in text or b"\\u" in text


def _shaped(d: dict[str, Any]) -> bool:
    """The codec's rule for a Uint8Array's JSON: keys "0".."n-1" (n >= 1), ints 0-255."""
    return "0" in d and all(type(b := d.get(str(i))) is int and 0 <= b <= 255
                            for i in range(len(d)))


def _path(parts: list[str | int]) -> str:
    steps = [f"[{p}]" if isinstance(p, int) else "." + p if _IDENT.match(p)
             else f"[{json.dumps(p[:40], ensure_ascii=False)}]" for p in parts]
    if len(steps) > _MAX_STEPS:
        steps[12:-12] = ["..."]
    return "$" + "".join(steps)


def sort_out(plain: Any, revived: Any, mode: str) -> tuple[Any, list[tuple[str, int]]]:
    """Find the objects that ``revived`` holds as bytes by shape alone; keep them if asked.

    Args: ``plain``, a document as ``json.loads`` reads it; ``revived``, the same document as
    ``codec.loads(.., "node")`` reads it (it is changed in place); ``mode``, "revive" or "keep".
    Returns: the value (``revived``, with those objects back as the plain objects for "keep")
    and their (JSON path, length), in document order.
    """
    found: list[tuple[str, int]] = []
    parts: list[str | int] = []

    def walk(p: Any, r: Any) -> Any:
        if type(p) is dict:
            if type(r) is bytes:
                if not _shaped(p):
                    return r  # a marked Buffer
                found.append((_path(parts), len(p)))
                return dict(p) if mode == KEEP else r
            items: Any = p.items()
        elif type(p) is list:
            items = enumerate(p)
        else:
            return r
        for k, v in items:
            parts.append(k)
            r[k] = walk(v, r[k])
            parts.pop()
        return r

    return walk(plain, revived), found
