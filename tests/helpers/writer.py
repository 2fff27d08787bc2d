"""A child process that writes entries in a loop and reports each completed write.

Usage: python -m tests.helpers.writer DIRECTORY NAMES ROUNDS
The key ring comes from the VAULT_KEYS environment variable (never from argv). After each
put returns, prints "<name> <counter>" and flushes, so the parent knows what was durable.
"""

from __future__ import annotations

import os
import sys

import vault


def main() -> None:
    """Write ``ROUNDS`` rounds over ``NAMES`` entries, printing each completed write."""
    directory, names, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ring = vault.KeyRing.from_text(os.environ["VAULT_KEYS"])
    v = vault.Vault(directory, keys=ring, ttl=3600)
    tag = os.environ.get("WRITER_TAG", "w")
    prefix = os.environ.get("WRITER_PREFIX", "entry")
    for counter in range(1, rounds + 1):
        for i in range(names):
            name = f"{prefix}-{i}"
            v.put(name, {"writer": tag, "counter": counter, "blob": os.urandom(64)})
            print(name, counter, flush=True)


if __name__ == "__main__":
    main()
