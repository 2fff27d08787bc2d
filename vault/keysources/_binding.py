"""What a key source records of the vault it serves: the vault id and its directories.

One logical vault is one ring and any number of directories. ``credseal init`` writes the
vault's id into the key source (the keyfile's authenticated ``vault`` field, the OS keyring's
``vault`` item) and into each directory's sealed ``vault.state``; a command refuses a key
source bound to another vault. The binding also lists the directories that use the ring
(most recently bound last, at most ``MAX_DIRS``) with the head of each one's audit chain:

- ``retire`` checks every listed directory it can see, not only the one it was pointed at;
- ``verify`` finds a directory whose audit log and state were rolled back together to an
  earlier consistent pair: the anchored head is no longer in its chain.

Parsing is strict and every error is a :class:`~vault.errors.KeySourceError` naming the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from vault.keysources._states import exact_keys, invalid

__all__ = ["MAX_DIRS", "MAX_PATH_CHARS", "Binding", "parse_binding"]

MAX_DIRS = 32
MAX_PATH_CHARS = 1024
_VAULT_ID = re.compile(r"[0-9a-f]{32}")
_HEAD = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Binding:
    """The vault a key source serves: its id, and its directories ``(path, audit head)``."""

    vault_id: str
    dirs: tuple[tuple[str, str | None], ...] = ()
    #: some directory was forgotten to stay within the bounds: ``retire`` cannot see them all
    overflowed: bool = False

    def head_of(self, directory: str) -> str | None:
        """The audit head anchored for ``directory`` (None if none, or not listed)."""
        return next((head for path, head in self.dirs if path == directory), None)

    def lists(self, directory: str) -> bool:
        """Whether ``directory`` is one of the bound directories."""
        return any(path == directory for path, _ in self.dirs)

    def with_dir(self, directory: str, head: str | None = None) -> Binding:
        """This binding with ``directory`` (moved to the end, as most recent); ``head``
        replaces its anchored head when given, else the known one is kept."""
        if len(directory) > MAX_PATH_CHARS or not directory.isprintable():
            return self  # not recorded: a path this long or strange is not worth a refusal
        kept = head if head is not None else self.head_of(directory)
        others = tuple(d for d in self.dirs if d[0] != directory)
        dirs = (*others, (directory, kept))
        return Binding(self.vault_id, dirs[-MAX_DIRS:],
                       self.overflowed or len(dirs) > MAX_DIRS)

    def without_dir(self, directory: str) -> Binding:
        """This binding without ``directory``."""
        return Binding(self.vault_id, tuple(d for d in self.dirs if d[0] != directory),
                       self.overflowed)

    def dropping_oldest(self) -> Binding:
        """This binding without its least recently bound directory (marked overflowed)."""
        return Binding(self.vault_id, self.dirs[1:], True)

    def to_json(self) -> dict[str, Any]:
        """The JSON form: ``{"id", "dirs": [[path, head or null], ...]}``, plus
        ``"overflowed": true`` once a directory was forgotten."""
        doc: dict[str, Any] = {"id": self.vault_id,
                               "dirs": [[path, head] for path, head in self.dirs]}
        if self.overflowed:
            doc["overflowed"] = True
        return doc

    def dumps(self) -> str:
        """The compact JSON text of :meth:`to_json`."""
        return json.dumps(self.to_json(), separators=(",", ":"))


def parse_binding(obj: object, where: str, what: str = "vault") -> Binding:
    """Parse the JSON form of a binding strictly."""
    fields = {"id", "dirs"}
    if isinstance(obj, dict) and "overflowed" in obj:
        fields.add("overflowed")
    doc = exact_keys(obj, fields, where, what)
    if doc.get("overflowed", True) is not True:
        invalid(where, f"{what}.overflowed", "must be true when present")
    if not isinstance(doc["id"], str) or not _VAULT_ID.fullmatch(doc["id"]):
        invalid(where, f"{what}.id", "must be 32 lowercase hex digits")
    dirs = doc["dirs"]
    if not isinstance(dirs, list) or len(dirs) > MAX_DIRS:
        invalid(where, f"{what}.dirs", f"must be a list of at most {MAX_DIRS} directories")
    parsed: list[tuple[str, str | None]] = []
    for position, item in enumerate(dirs):
        here = f"{what}.dirs[{position}]"
        if not (isinstance(item, list) and len(item) == 2):
            invalid(where, here, "must be a [path, audit head] pair")
        path, head = item
        if (not isinstance(path, str) or not path.startswith("/") or not path.isprintable()
                or len(path) > MAX_PATH_CHARS):
            invalid(where, here, f"must start with an absolute path of at most "
                                 f"{MAX_PATH_CHARS} printable characters")
        if head is not None and not (isinstance(head, str) and _HEAD.fullmatch(head)):
            invalid(where, here, "must end with null or 64 lowercase hex digits")
        if any(p == path for p, _ in parsed):
            invalid(where, here, "repeats a directory")
        parsed.append((path, head))
    return Binding(doc["id"], tuple(parsed), "overflowed" in doc)
