"""A child process that writes entries in a loop and reports each completed write.

Usage: python -m tests.helpers.writer DIRECTORY NAMES ROUNDS
With CREDSEAL_KEY_SOURCE set, the vault is opened from the settings like a service would (and
follows rotations); otherwise the ring is CREDSEAL_KEYS, fixed for the whole run (a service that
has not seen a rotation yet). Keys never come from argv. After each put returns, prints
"<name> <counter>" and flushes, so the parent knows what was durable. With WRITER_STOP_FILE,
stops early once that file exists.
"""

from __future__ import annotations

import os
import sys

import vault


def main() -> None:
    """Write ``ROUNDS`` rounds over ``NAMES`` entries, printing each completed write."""
    directory, names, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if "CREDSEAL_KEY_SOURCE" in os.environ:
        v = vault.open_vault()
        v.refresh_interval = 0.05  # notice a promotion quickly, as the test expects
    else:
        v = vault.Vault(directory, keys=vault.KeyRing.from_text(os.environ["CREDSEAL_KEYS"]),
                        ttl=3600)
    tag = os.environ.get("WRITER_TAG", "w")
    prefix = os.environ.get("WRITER_PREFIX", "entry")
    stop_file = os.environ.get("WRITER_STOP_FILE")
    for counter in range(1, rounds + 1):
        if stop_file and os.path.exists(stop_file):
            break
        for i in range(names):
            name = f"{prefix}-{i}"
            v.put(name, {"writer": tag, "counter": counter, "blob": os.urandom(64)})
            print(name, counter, flush=True)


if __name__ == "__main__":
    main()
