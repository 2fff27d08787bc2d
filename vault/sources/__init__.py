"""Primary sources of credentials: the ``Source`` protocol and the outage classifier.

A source is the service's own database, the authority for every credential. The fallback
cache (``vault.cache``) asks it first and keeps an encrypted copy of what it answered.

Implementations: :class:`~vault.sources.sqlite.SQLiteSource` (stdlib ``sqlite3``, the
embedded default) and :class:`~vault.sources.postgres.PostgresSource` /
:class:`~vault.sources.postgres.AsyncPostgresSource` (psycopg 3), plus
``vault.testing.MemorySource``. ``vault.sources.postgres`` is imported on its own (it needs
the ``postgres`` extra). Write your own by implementing three methods; run
``vault.testing.SourceContract`` against it.

**Contract.** ``load(name)`` returns the stored value, or ``None`` when the name is not
stored (so ``None`` itself cannot be stored: the built-in sources refuse it). Values are the
codec's (``vault.codec``): JSON types plus ``bytes``, returned as new objects equal to what
was saved. ``save`` overwrites, ``delete`` of a missing name is not an error. On an outage a
source raises its driver's own exception; it does not translate it. The cache decides what is
an outage with :func:`is_outage` (or the classifier you give it); anything else, such as a
missing table, is a programming error and reaches the caller unchanged.
"""

from vault.sources._base import AsyncSource, Source, ThreadedAsyncSource, check_storable
from vault.sources._outage import is_outage
from vault.sources.sqlite import SQLiteSource

__all__ = ["AsyncSource", "SQLiteSource", "Source", "ThreadedAsyncSource", "check_storable",
           "is_outage"]
