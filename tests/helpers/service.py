"""A child "service" process running a FallbackCache, for restart and crash tests.

Usage: python -m tests.helpers.service CREDSEAL_DIR SOURCE < actions.json
SOURCE is ``sqlite:<path>`` or ``postgres:<table>`` (DSN in TEST_PG_DSN). The key ring
comes from CREDSEAL_KEYS and the actions, values included, from stdin (never argv): a JSON list
of ``["get", name]``, ``["save", name, value]``, ``["delete", name]``, ``["pause"]`` (report,
then sleep until killed). Each action prints one JSON line, flushed, once it returned.
Warnings of the ``vault.cache`` logger go to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import vault
from vault.cache import FallbackCache
from vault.sources import Source


def open_source(spec: str) -> Source:
    """Build the source named by ``spec``."""
    kind, _, arg = spec.partition(":")
    if kind == "sqlite":
        from vault.sources.sqlite import SQLiteSource

        return SQLiteSource(arg)
    from vault.sources.postgres import PostgresSource

    return PostgresSource(os.environ["TEST_PG_DSN"], table=arg)


def main() -> None:
    """Run the actions read from stdin and report each as a JSON line."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    directory, spec = sys.argv[1], sys.argv[2]
    actions = json.load(sys.stdin)
    ring = vault.KeyRing.from_text(os.environ["CREDSEAL_KEYS"])
    v = vault.Vault(directory, keys=ring, ttl=3600)
    source = open_source(spec)
    cache = FallbackCache(source, v)
    try:
        for op, *args in actions:
            out: dict[str, Any] = {"op": op}
            if op == "get":
                fetched = cache.fetch(args[0])
                out.update(name=args[0], value=fetched.value, origin=fetched.origin)
            elif op == "save":
                result = cache.save(args[0], args[1])
                out.update(name=args[0], journaled=result.journaled)
            elif op == "delete":
                out.update(name=args[0], journaled=cache.delete(args[0]).journaled)
            elif op == "pause":
                print(json.dumps(out), flush=True)
                time.sleep(600)
            out["degraded"] = cache.degraded
            print(json.dumps(out), flush=True)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


if __name__ == "__main__":
    main()
