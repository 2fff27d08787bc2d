"""Refuse, at construction, a source of the wrong kind for the cache it is given to.

A sync cache on an async source would hand out coroutines as credentials (and journal nothing
real); an async cache on a sync source fails at the first ``await`` with a bare ``TypeError``.
The kind is read from the methods: an :class:`~vault.sources.AsyncSource` has coroutine
functions (``async def``) for ``load``, ``save`` and ``delete`` (and ``save_if`` if it has
one); a :class:`~vault.sources.Source` has none.
"""

from __future__ import annotations

import inspect
from typing import Any

from vault.errors import ConfigurationError
from vault.sources._base import ThreadedAsyncSource

__all__ = ["check_async_source", "check_sync_source"]

_METHODS = ("load", "save", "delete")


def _is_async(method: Any) -> bool:
    if inspect.iscoroutinefunction(method):
        return True
    try:
        return inspect.iscoroutinefunction(inspect.unwrap(method))  # a decorated ``async def``
    except ValueError:
        return False


def _kinds(source: object) -> dict[str, bool]:
    """Whether each method of ``source`` is a coroutine function (by name).

    Raises:
        ConfigurationError: ``load``, ``save`` or ``delete`` is missing.
    """
    missing = [m for m in _METHODS if not callable(getattr(source, m, None))]
    if missing:
        raise ConfigurationError(
            f"{type(source).__name__} is not a credential source: it has no "
            f"{', '.join(missing)} method", hint="pass a vault.sources.Source (FallbackCache) "
            "or a vault.sources.AsyncSource (AsyncFallbackCache)")
    names = [*_METHODS, *(["save_if"] if callable(getattr(source, "save_if", None)) else [])]
    return {m: _is_async(getattr(source, m)) for m in names}


def check_sync_source(source: object) -> None:
    """Refuse an async (or half-async) source for ``FallbackCache``.

    Raises:
        ConfigurationError: a method of ``source`` is a coroutine function.
    """
    kinds = _kinds(source)
    coroutines = [m for m, is_async in kinds.items() if is_async]
    if not coroutines:
        return
    what = type(source).__name__
    if isinstance(source, ThreadedAsyncSource):
        hint = ("ThreadedAsyncSource is for AsyncFallbackCache; FallbackCache takes the sync "
                "source it wraps: FallbackCache(threaded.source, vault)")
    else:
        hint = ("use vault.cache.AsyncFallbackCache(source, vault) in an asyncio service, or "
                "a sync source (e.g. PostgresSource) here")
    raise ConfigurationError(
        f"FallbackCache needs a sync source, but {what} is async (`async def` "
        f"{', '.join(coroutines)}): get() would return a coroutine, not a credential",
        hint=hint)


def check_async_source(source: object) -> None:
    """Refuse a sync (or half-sync) source for ``AsyncFallbackCache``.

    Raises:
        ConfigurationError: a method of ``source`` is not a coroutine function.
    """
    kinds = _kinds(source)
    plain = [m for m, is_async in kinds.items() if not is_async]
    if not plain:
        return
    what = type(source).__name__
    if len(plain) == len(kinds):
        raise ConfigurationError(
            f"AsyncFallbackCache needs an async source, but {what} is a sync source (its "
            "load, save and delete are not coroutine functions)",
            hint="wrap it: AsyncFallbackCache(vault.sources.ThreadedAsyncSource(source), vault) "
            "runs it in worker threads; or use FallbackCache(source, vault)")
    raise ConfigurationError(
        f"AsyncFallbackCache needs an async source, but {what} mixes sync and async "
        f"methods (not `async def`: {', '.join(plain)})",
        hint="make load, save, delete (and save_if) all `async def`, or wrap a sync source in "
        "vault.sources.ThreadedAsyncSource")
