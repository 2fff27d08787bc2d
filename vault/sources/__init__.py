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

**Versions.** A :class:`VersionedSource` also has ``load_versioned(name)`` (``(value,
version)``), ``save_versioned(name, value)`` and ``delete_versioned(name)`` (each returning
the version), so that copies kept elsewhere (a shared Redis tier) can be ordered across hosts.
A version is an ``int``: microseconds since the Unix epoch of the row's last write (its
``updated_at``, no extra column). Every write of a row (``save`` and ``save_if`` too) sets it
to ``max(now, old + 1)``, so a row's versions strictly increase even if the clock steps back;
a delete returns a tombstone version by the same rule, and a missing name loads as ``(None,
now)``, "absent as of now". SQLite keeps time with the host's clock, PostgreSQL with the
server's (``clock_timestamp()``). :func:`supports_versions` tells whether a source has them.
"""

from vault.sources._base import (
    ABSENT,
    AsyncConditionalSource,
    AsyncSource,
    AsyncVersionedSource,
    ConditionalSource,
    Source,
    ThreadedAsyncSource,
    VersionedSource,
    check_storable,
    supports_versions,
    value_digest,
)
from vault.sources._outage import is_outage
from vault.sources._sealed import TableTarget
from vault.sources.sqlite import SQLiteSource

__all__ = ["ABSENT", "AsyncConditionalSource", "AsyncSource", "AsyncVersionedSource",
           "ConditionalSource", "SQLiteSource", "Source", "TableTarget", "ThreadedAsyncSource",
           "VersionedSource", "check_storable", "is_outage", "supports_versions", "value_digest"]
