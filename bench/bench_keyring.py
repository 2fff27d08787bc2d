"""Benchmark of the keyring backend: set and get per call vs keyrings.cryptfile.

Both derive their key from a passphrase with Argon2id at their default costs; credseal derives
once per process (then opens each entry with HKDF and AES-GCM), keyrings.cryptfile derives on
every call. keyrings.cryptfile is the bench extra's (pip install -e .[bench]); without it the
anchor is skipped and said so.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.timing import interleave, us
from vault.config import BackendSettings
from vault.integrations.keyring_backend import CredsealKeyring

PASSPHRASE = "bench keyring passphrase, four words"


def _cryptfile(directory: Path) -> Any:
    """A keyrings.cryptfile keyring in ``directory``, or None when it is not installed."""
    try:
        from keyrings.cryptfile.cryptfile import CryptFileKeyring  # type: ignore[import-untyped]
    except ImportError:
        return None
    ring = CryptFileKeyring()
    ring.file_path = str(directory / "cryptfile.cfg")
    ring.keyring_key = PASSPHRASE
    return ring


def bench(rounds: int, work: Path) -> list[str]:
    """set_password and get_password per call, ours vs keyrings.cryptfile, interleaved."""
    ours = CredsealKeyring(settings=BackendSettings(
        _env_file=None, dir=work / "credseal", key_source="passphrase", passphrase=PASSPHRASE))
    ours.set_password("svc", "warm", "up")  # creates the vault: one derivation, as at start
    theirs = _cryptfile(work)
    counter = iter(range(10**9))
    lines = []
    if theirs is None:
        t = interleave({"set": lambda: ours.set_password("svc", f"u{next(counter)}", "pw"),
                        "get": lambda: ours.get_password("svc", "warm")}, rounds)
        lines.append(f"credseal keyring: set {us(t['set'].median)}, get {us(t['get'].median)} "
                     "per call by median")
        lines.append("  keyrings.cryptfile anchor skipped: install it with "
                     "`pip install -e .[bench]`")
        return lines
    theirs.set_password("svc", "warm", "up")
    t = interleave({"ours-set": lambda: ours.set_password("svc", f"u{next(counter)}", "pw"),
                    "theirs-set": lambda: theirs.set_password("svc", f"u{next(counter)}", "pw")},
                   rounds, warmup=1)
    g = interleave({"ours-get": lambda: ours.get_password("svc", "warm"),
                    "theirs-get": lambda: theirs.get_password("svc", "warm")},
                   rounds, warmup=1)
    for what, ours_t, theirs_t in (("set_password", t["ours-set"], t["theirs-set"]),
                                   ("get_password", g["ours-get"], g["theirs-get"])):
        lines.append(f"keyring {what}: keyrings.cryptfile takes "
                     f"{theirs_t.median / ours_t.median:,.0f}x as long as credseal by median "
                     f"({us(ours_t.median)} vs {us(theirs_t.median)}), "
                     f"{theirs_t.minimum / ours_t.minimum:,.0f}x by minimum (anchor: it runs "
                     "Argon2id on every call; credseal once per process)")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="credseal-bench-keyring-") as tmp:
        for line in bench(3 if args.quick else 9, Path(tmp)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
