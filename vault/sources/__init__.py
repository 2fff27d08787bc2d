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

**Compare-and-set.** A :class:`ConditionalSource` also has ``save_if(name, value,
base_digest)``: it writes only while the name still holds the value the write was based on
(compared by :func:`value_digest`, ``ABSENT`` for none), atomically. The journal's replay uses
it so that a write made during an outage never overwrites a newer one. The built-in sources
have it; for a source without it the cache loads, compares and saves, which leaves a window
in which another writer's update can be lost (``docs/operations.md``).
"""

from vault.sources._base import (
    ABSENT,
    AsyncConditionalSource,
    AsyncSource,
    ConditionalSource,
    Source,
    ThreadedAsyncSource,
    check_storable,
    value_digest,
)
from vault.sources._outage import is_outage
from vault.sources.sqlite import SQLiteSource

__all__ = ["ABSENT", "AsyncConditionalSource", "AsyncSource", "ConditionalSource",
           "SQLiteSource", "Source", "ThreadedAsyncSource", "check_storable", "is_outage",
           "value_digest"]
