"""A walk over a table's rows in primary-key order: what a rewrap of sealed rows reads and
writes (``vault.sources._sealed.TableTarget``).

A walk hands out keyset pages (``page``), takes each batch's compare-and-set writes with the
table mark and the read of a page further on (``submit``), and reports which rows the batch
replaced with the page read (``collect``). A walk may send a batch and return before it
commits, so that the next batch's cryptography runs while the server writes this one and
reads ahead; ``collect`` waits for it. At most one batch is in flight, so
batches commit in order, each in one transaction with its cursor.

:class:`SequentialWalk` does each call in turn with the source's own ``rows_after``,
``replace_rows`` and ``count_after`` (SQLite, and PostgreSQL through a pool);
``PostgresSource`` with a DSN walks on a connection of its own in pipeline mode
(``vault.sources.postgres``).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["SequentialWalk", "TableWalk"]


class TableWalk(Protocol):
    """What ``TableTarget`` needs of a walk (a context manager)."""

    def __enter__(self) -> TableWalk: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def count_after(self, after: str) -> int:
        """How many rows have names above ``after`` (the mark excluded)."""
        ...

    def page(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        """Up to ``limit`` (name, stored value) rows above ``after``, in name order."""
        ...

    def submit(self, rows: list[tuple[str, Any, bytes]], mark: bytes | None,
               read_after: str | None = None, limit: int = 0) -> None:
        """Send one batch: each (name, old, new) replaced only where the value still is
        ``old``, and ``mark`` written, in one transaction (it may commit later); then, unless
        ``read_after`` is None, the read of the page of ``limit`` rows above it."""
        ...

    def collect(self) -> tuple[list[str], list[tuple[str, bytes]]]:
        """Wait for what is in flight: the names the batch replaced and the page read after
        it (both [] if nothing is in flight).

        Raises whatever the batch's transaction raised (it did not commit); an error the
        server reports at once may be raised by :meth:`submit` already."""
        ...


class SequentialWalk:
    """A walk that does each call when it is made, through the source's own methods."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._done: tuple[list[str], list[tuple[str, bytes]]] | None = None

    def __enter__(self) -> SequentialWalk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done = None

    def count_after(self, after: str) -> int:
        count = getattr(self.source, "count_after", None)
        return 0 if count is None else int(count(after))  # 0: unknown

    def page(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        return list(self.source.rows_after(after, limit))

    def submit(self, rows: list[tuple[str, Any, bytes]], mark: bytes | None,
               read_after: str | None = None, limit: int = 0) -> None:
        done = list(self.source.replace_rows(rows, mark)) if rows or mark is not None else []
        ahead = [] if read_after is None else self.page(read_after, limit)
        self._done = (done, ahead)

    def collect(self) -> tuple[list[str], list[tuple[str, bytes]]]:
        done, self._done = self._done or ([], []), None
        return done
