"""A child process that rotates a vault over and over until told to stop.

Usage: python -m tests.helpers.rotator DIRECTORY STOP_FILE
The ring (new primary first) comes from CREDSEAL_KEYS. Prints one line per pass:
"<rotated> <current> <failed>".
"""

from __future__ import annotations

import os
import sys

import vault


def main() -> None:
    """Rotate until STOP_FILE exists; exit 1 if any pass reported a failure."""
    directory, stop_file = sys.argv[1], sys.argv[2]
    v = vault.Vault(directory, keys=vault.KeyRing.from_text(os.environ["CREDSEAL_KEYS"]), ttl=3600)
    failed = 0
    while not os.path.exists(stop_file):
        report = v.rewrap()
        failed += report.failed
        print(report.rewrapped, report.current, report.failed, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
