"""The source protocols, the thread adapter for async services, and shared checks.

The contract is in the docstring of ``vault.sources``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol, runtime_checkable

from vault.errors import ConfigurationError, SerializationError

__all__ = ["AsyncSource", "Source", "ThreadedAsyncSource", "check_storable", "check_table_name"]


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
