"""Versioned entry plaintexts: a copy that says which version of its source value it holds.

An entry's plaintext is the codec's JSON of its value. A copy kept for a fleet (the local
file and the shared tier's envelope) also carries, **inside** the sealed plaintext and so
authenticated, the source version of the value (``vault.sources.VersionedSource``) and whether
it is a value or a tombstone (a delete). ``docs/format.md`` section 13 specifies it::

    0x1E "CSV1" | version: uint64 big-endian | op: 0 value, 1 tombstone | codec JSON (value only)

JSON text never starts with byte 0x1E (RFC 8259 allows only whitespace before a value), so
every plaintext this release or an earlier one wrote reads exactly as before: unversioned.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from vault.errors import SerializationError

__all__ = ["MAX_VERSION", "PREFIX", "Stamped", "stamp", "tombstone", "unstamp"]

PREFIX = b"\x1eCSV1"
MAX_VERSION = 2**63 - 1
_META = struct.Struct(">QB")
_HEAD = len(PREFIX) + _META.size
_VALUE, _TOMBSTONE = 0, 1


class Stamped(NamedTuple):
    """An entry plaintext split: ``version`` (None: an unversioned plaintext), whether it is
    a ``tombstone``, and ``body``, the codec JSON of the value (empty for a tombstone)."""

    version: int | None
    tombstone: bool
    body: bytes


def _check_version(version: int) -> None:
    if type(version) is not int or not 0 <= version <= MAX_VERSION:
        raise SerializationError(f"a source version must be an int in 0..2^63-1, got "
                                 f"{type(version).__name__}")


def stamp(version: int | None, body: bytes) -> bytes:
    """The plaintext of a value copy: ``body`` (codec JSON) marked with ``version``; with
    ``version=None``, ``body`` unchanged (an unversioned entry, as every earlier release)."""
    if version is None:
        return body
    _check_version(version)
    return PREFIX + _META.pack(version, _VALUE) + body


def tombstone(version: int) -> bytes:
    """The plaintext of a tombstone: the name was deleted at source ``version``."""
    _check_version(version)
    return PREFIX + _META.pack(version, _TOMBSTONE)


def unstamp(plaintext: bytes) -> Stamped:
    """Split an **authenticated** entry plaintext (see the module docstring).

    Raises:
        SerializationError: it starts like a versioned plaintext but is malformed.
    """
    if plaintext[:1] != PREFIX[:1]:
        return Stamped(None, False, plaintext)
    if plaintext[:len(PREFIX)] != PREFIX or len(plaintext) < _HEAD:
        raise SerializationError("entry plaintext has a malformed version mark")
    version, op = _META.unpack_from(plaintext, len(PREFIX))
    body = plaintext[_HEAD:]
    if version > MAX_VERSION or op not in (_VALUE, _TOMBSTONE) or (op == _TOMBSTONE and body):
        raise SerializationError("entry plaintext has a malformed version mark")
    return Stamped(version, op == _TOMBSTONE, body)
