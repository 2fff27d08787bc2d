"""A child process that rewraps a sealed primary table, for the kill-and-resume tests.

Usage: python -m tests.helpers.table_rotator TABLE BATCH, with TEST_PG_DSN and CREDSEAL_KEYS
(the new ring, its primary first) in the environment. Prints "batch N" after each committed
batch and "done" when the walk ended.
"""

from __future__ import annotations

import os
import sys

import vault
from vault.sources import TableTarget
from vault.sources.postgres import PostgresSource


def main() -> None:
    """Rewrap the table to the ring's primary (resuming after the cursor it finds)."""
    table, batch = sys.argv[1], int(sys.argv[2])
    ring = vault.KeyRing.from_text(os.environ["CREDSEAL_KEYS"])
    with PostgresSource(os.environ["TEST_PG_DSN"], table=table, keys=ring) as source:
        report = TableTarget(source, batch=batch).rewrap_batched(
            ring, lambda done, _: print(f"batch {done}", flush=True))
    print(f"done {report.rewrapped} {report.failed}", flush=True)


if __name__ == "__main__":
    main()
