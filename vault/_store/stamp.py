"""Versioned entry plaintexts: a copy that says which version of its source value it holds.

An entry's plaintext is the codec's JSON of its value. A copy kept for a fleet (the local
file and the shared tier's envelope) also carries, **inside** the sealed plaintext and so
authenticated, its place in the order of the name's values, and whether it is a value or a
tombstone (a delete). ``docs/format.md`` section 13 specifies it::

    0x1E "CSV1" | version: uint64 big-endian | op: 1 byte | [base: uint64] | codec JSON

``op`` 0 is a value and 1 a tombstone, at source ``version``; 2 and 3 are the same for a
**provisional** write, one the source has not taken yet (made during an outage): ``version``
is then the writer's clock and ``base`` the source version it was based on.

The order (:class:`Order`) is ``(base, 1, version)`` for a provisional copy and ``(version,
0, 0)`` for a source one: a provisional write is newer than the value it was based on, older
than any later source version (the source's answer, once it has one, wins), and provisional
writes on one base are ordered by their clocks.

JSON text never starts with byte 0x1E (RFC 8259 allows only whitespace before a value), so
every plaintext this release or an earlier one wrote reads exactly as before: unversioned.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from vault.errors import SerializationError

__all__ = ["MAX_VERSION", "NO_ORDER", "PREFIX", "Order", "Stamped", "source_order", "stamp",
           "tombstone", "unstamp"]

PREFIX = b"\x1eCSV1"
MAX_VERSION = 2**63 - 1
_META = struct.Struct(">QB")
_BASE = struct.Struct(">Q")
_HEAD = len(PREFIX) + _META.size
_VALUE, _TOMBSTONE, _PROVISIONAL = 0, 1, 2


class Order(NamedTuple):
    """A copy's place among the values of its name (tuples compare in this order)."""

    base: int  # the source version: of the value, or the one a provisional write was based on
    provisional: int  # 0: the source's own version; 1: a write the source has not taken yet
    at: int  # a provisional write's time (µs, the writer's clock); 0 for a source version

    def clear(self) -> bytes:
        """The 41 ASCII digits of a shared record's clear prefix (they compare as the order)."""
        return b"%020d%d%020d" % (self.base, self.provisional, self.at)


NO_ORDER = Order(0, 0, 0)  # an unversioned copy: older than any versioned one


def source_order(version: int) -> Order:
    """The order of a copy at source ``version``."""
    return Order(version, 0, 0)


class Stamped(NamedTuple):
    """An entry plaintext split: ``order`` (None: an unversioned plaintext), whether it is a
    ``tombstone``, and ``body``, the codec JSON of the value (empty for a tombstone)."""

    order: Order | None
    tombstone: bool
    body: bytes

    @property
    def version(self) -> int | None:
        """The source version of a source copy (None for an unversioned or provisional one)."""
        return None if self.order is None or self.order.provisional else self.order.base


def _check_version(version: int) -> None:
    if type(version) is not int or not 0 <= version <= MAX_VERSION:
        raise SerializationError(f"a source version must be an int in 0..2^63-1, got "
                                 f"{type(version).__name__}")


def _as_order(order: Order | int) -> Order:
    order = source_order(order) if isinstance(order, int) else order
    for part in (order.base, order.at):
        _check_version(part)
    if order.provisional not in (0, 1) or (not order.provisional and order.at):
        raise SerializationError("malformed order")
    return order


def _meta(order: Order, op: int) -> bytes:
    if order.provisional:
        return _META.pack(order.at, op | _PROVISIONAL) + _BASE.pack(order.base)
    return _META.pack(order.base, op)


def stamp(order: Order | int | None, body: bytes) -> bytes:
    """The plaintext of a value copy: ``body`` (codec JSON) at ``order`` (an int: a source
    version); with ``order=None``, ``body`` unchanged (an unversioned entry)."""
    if order is None:
        return body
    return PREFIX + _meta(_as_order(order), _VALUE) + body


def tombstone(order: Order | int) -> bytes:
    """The plaintext of a tombstone: the name was deleted, at ``order``."""
    return PREFIX + _meta(_as_order(order), _TOMBSTONE)


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
    head = _HEAD
    if op & _PROVISIONAL:
        if len(plaintext) < head + _BASE.size:
            raise SerializationError("entry plaintext has a malformed version mark")
        (base,) = _BASE.unpack_from(plaintext, head)
        head += _BASE.size
        order = Order(base, 1, version)
    else:
        order = Order(version, 0, 0)
    body = plaintext[head:]
    tomb = bool(op & _TOMBSTONE)
    if max(order.base, order.at) > MAX_VERSION or op > 3 or (tomb and body):
        raise SerializationError("entry plaintext has a malformed version mark")
    return Stamped(order, tomb, body)
