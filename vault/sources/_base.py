"""The source protocols, the thread adapter for async services, and shared checks.

The contract is in the docstring of ``vault.sources``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Any, Protocol, cast, runtime_checkable

from vault import codec
from vault.errors import ConfigurationError, SerializationError

__all__ = ["ABSENT", "AsyncConditionalSource", "AsyncSource", "AsyncVersionedSource",
           "ConditionalSource", "Source", "ThreadedAsyncSource", "VersionedSource",
           "check_storable", "check_table_name", "conditional_save", "conditional_save_async",
           "next_version", "now_us", "supports_versions", "value_digest"]

#: The base digest of a name that holds no value.
ABSENT = "absent"


@runtime_checkable
class Source(Protocol):
    """A synchronous primary source (see the module docstring for the contract)."""

    def load(self, name: str) -> Any:
        """Return the value stored under ``name``, or ``None`` if there is none."""
        ...

    def save(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``, replacing any previous value."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; removing a missing name is not an error."""
        ...


@runtime_checkable
class AsyncSource(Protocol):
    """The asyncio twin of :class:`Source`: the same contract with coroutine methods."""

    async def load(self, name: str) -> Any:
        """Return the value stored under ``name``, or ``None`` if there is none."""
        ...

    async def save(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``, replacing any previous value."""
        ...

    async def delete(self, name: str) -> None:
        """Remove ``name``; removing a missing name is not an error."""
        ...


@runtime_checkable
class ConditionalSource(Source, Protocol):
    """A source that can write atomically only over the value a write was based on."""

    def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """If ``name`` holds the value whose :func:`value_digest` is ``base_digest`` (``ABSENT``:
        no value), store ``value`` (``None``: delete ``name``) and return True; else change
        nothing and return False. Atomic: one transaction in the built-in sources."""
        ...


@runtime_checkable
class AsyncConditionalSource(AsyncSource, Protocol):
    """The asyncio twin of :class:`ConditionalSource`."""

    async def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """As ``ConditionalSource.save_if``."""
        ...


@runtime_checkable
class VersionedSource(Source, Protocol):
    """A source whose rows carry versions: microseconds since the Unix epoch of the last
    write, strictly increasing with every write of a name (see the module docstring)."""

    def load_versioned(self, name: str) -> tuple[Any, int]:
        """Return ``(value, version)``; for a missing name ``(None, now)``, the source's clock
        now in microseconds (an "absent as of now" version)."""
        ...

    def save_versioned(self, name: str, value: Any) -> int:
        """Store ``value`` under ``name`` as ``save`` does; return the row's new version."""
        ...

    def delete_versioned(self, name: str) -> int:
        """Remove ``name`` as ``delete`` does; return the tombstone version, greater than the
        deleted row's (for a missing name: the clock now)."""
        ...


@runtime_checkable
class AsyncVersionedSource(AsyncSource, Protocol):
    """The asyncio twin of :class:`VersionedSource`."""

    async def load_versioned(self, name: str) -> tuple[Any, int]:
        """As ``VersionedSource.load_versioned``."""
        ...

    async def save_versioned(self, name: str, value: Any) -> int:
        """As ``VersionedSource.save_versioned``."""
        ...

    async def delete_versioned(self, name: str) -> int:
        """As ``VersionedSource.delete_versioned``."""
        ...


_VERSION_METHODS = ("load_versioned", "save_versioned", "delete_versioned")


def supports_versions(source: object) -> bool:
    """Whether ``source`` has ``load_versioned``, ``save_versioned`` and ``delete_versioned``;
    for a :class:`ThreadedAsyncSource`, whether the source it wraps has them."""
    if isinstance(source, ThreadedAsyncSource):
        source = source.source
    return all(callable(getattr(source, method, None)) for method in _VERSION_METHODS)


def now_us() -> int:
    """The wall clock in microseconds since the Unix epoch: "now" for the versions of the
    sources that keep time in Python (tests patch it through the module)."""
    return time.time_ns() // 1000


def next_version(old: int | None) -> int:
    """The version of a write over a row of version ``old`` (``None``: no row): the clock now,
    but at least ``old + 1``, so a row's versions increase even if the clock steps back."""
    now = now_us()
    return now if old is None else max(now, old + 1)


def _canonical(value: Any) -> Any:
    if type(value) is dict:
        return {key: _canonical(value[key]) for key in sorted(value)}
    if type(value) is list:
        return [_canonical(item) for item in value]
    return value


def value_digest(value: Any) -> str:
    """SHA-256 (hex) of ``value``'s canonical codec form, keys sorted (PostgreSQL's ``jsonb``
    does not keep key order); ``ABSENT`` for ``None`` (no value).

    Replay compares these, never ciphertext or stored bytes.

    Raises:
        SerializationError: not a codec value.
    """
    if value is None:
        return ABSENT
    return hashlib.sha256(codec.dumps(_canonical(value))).hexdigest()


def conditional_save(source: Source, name: str, value: Any, base_digest: str) -> bool:
    """``source.save_if`` if it has one; else load, compare and save (or delete), which is
    **not atomic**: a write by another process between the load and the save is lost."""
    save_if = getattr(source, "save_if", None)
    if save_if is not None:
        return bool(save_if(name, value, base_digest))
    if value_digest(source.load(name)) != base_digest:
        return False
    if value is None:
        source.delete(name)
    else:
        source.save(name, value)
    return True


async def conditional_save_async(source: AsyncSource, name: str, value: Any,
                                 base_digest: str) -> bool:
    """The asyncio twin of :func:`conditional_save` (the same window without ``save_if``)."""
    save_if = getattr(source, "save_if", None)
    if save_if is not None:
        return bool(await save_if(name, value, base_digest))
    if value_digest(await source.load(name)) != base_digest:
        return False
    if value is None:
        await source.delete(name)
    else:
        await source.save(name, value)
    return True


class ThreadedAsyncSource:
    """An :class:`AsyncSource` that runs a thread-safe sync :class:`Source` in worker threads.

    ``ThreadedAsyncSource(SQLiteSource(path))`` gives an asyncio service the embedded
    default without blocking its event loop.
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    def __repr__(self) -> str:
        return f"ThreadedAsyncSource({self.source!r})"

    async def load(self, name: str) -> Any:
        """``source.load`` in a worker thread."""
        return await asyncio.to_thread(self.source.load, name)

    async def save(self, name: str, value: Any) -> None:
        """``source.save`` in a worker thread."""
        await asyncio.to_thread(self.source.save, name, value)

    async def delete(self, name: str) -> None:
        """``source.delete`` in a worker thread."""
        await asyncio.to_thread(self.source.delete, name)

    async def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """:func:`conditional_save` on the source, in a worker thread."""
        return await asyncio.to_thread(conditional_save, self.source, name, value, base_digest)

    async def load_versioned(self, name: str) -> tuple[Any, int]:
        """``source.load_versioned`` in a worker thread.

        Raises:
            ConfigurationError: the source has no versions (:func:`supports_versions`).
        """
        return await asyncio.to_thread(self._versioned().load_versioned, name)

    async def save_versioned(self, name: str, value: Any) -> int:
        """``source.save_versioned`` in a worker thread; raises as :meth:`load_versioned`."""
        return await asyncio.to_thread(self._versioned().save_versioned, name, value)

    async def delete_versioned(self, name: str) -> int:
        """``source.delete_versioned`` in a worker thread; raises as :meth:`load_versioned`."""
        return await asyncio.to_thread(self._versioned().delete_versioned, name)

    def _versioned(self) -> VersionedSource:
        if not supports_versions(self.source):
            raise ConfigurationError(
                f"ThreadedAsyncSource: the wrapped {type(self.source).__name__} has no versions "
                "(load_versioned, save_versioned, delete_versioned)",
                hint="wrap a vault.sources.VersionedSource, such as SQLiteSource")
        return cast(VersionedSource, self.source)


def check_storable(value: object) -> None:
    """Refuse ``None``, which ``load`` could not tell from a missing name.

    Raises:
        SerializationError: ``value`` is ``None``.
    """
    if value is None:
        raise SerializationError("None cannot be stored in a source: load() returns None for a "
                                 "missing name; use delete() to remove a credential")


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_table_name(table: str) -> tuple[str, ...]:
    """Split ``table`` (``name`` or ``schema.name``) into checked identifier parts.

    Each part must be a lowercase SQL identifier: ``[a-z_][a-z0-9_]*``, at most 63 bytes.
    Lowercase only, because PostgreSQL folds unquoted names to lowercase and a quoted
    ``"MyTable"`` would silently be another table.

    Raises:
        ConfigurationError: anything else.
    """
    parts = tuple(table.split(".")) if isinstance(table, str) else ()
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ConfigurationError("table must be a lowercase identifier ([a-z_][a-z0-9_]*, at "
                                 "most 63 characters), optionally schema-qualified")
    return parts
