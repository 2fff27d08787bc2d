"""Benchmark of the keyring backend: set and get per call vs keyrings.cryptfile.

Both derive their key from a passphrase with Argon2id at their default costs; credseal derives
once per process (then opens each entry with HKDF and AES-GCM), keyrings.cryptfile on every
call. keyrings.cryptfile lives in a virtual environment of this benchmark's own
(``bench/.cryptfile-venv``, made on first run): installed beside credseal, its entry point
could become the default keyring backend of our environment and prompt. Its calls run in a
warm child process that answers one command per line, so the two are timed alternately, call
by call, in one run. Goal (issue 15): >= 1,000x faster on ``get``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from bench.timing import Timing, us, verdict
from vault.config import BackendSettings
from vault.integrations.keyring_backend import CredsealKeyring

PASSPHRASE = "bench keyring passphrase, four words"
VENV = Path(__file__).resolve().parent / ".cryptfile-venv"
_CHILD = """\
import json, os, sys, time
from keyrings.cryptfile.cryptfile import CryptFileKeyring
ring = CryptFileKeyring()
ring.file_path = sys.argv[1]
ring.keyring_key = os.environ["BENCH_PASSPHRASE"]
ring.set_password("svc", "warm", "up")
print("ready", flush=True)
n = 0
for line in sys.stdin:
    n += 1
    started = time.perf_counter()
    if line.strip() == "set":
        ring.set_password("svc", f"u{n}", "pw")
    else:
        ring.get_password("svc", "warm")
    print(json.dumps(time.perf_counter() - started), flush=True)
"""


def cryptfile_python() -> Path | None:
    """The Python of the benchmark's own environment with keyrings.cryptfile, made if missing
    (None when it cannot be installed: no index reachable)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
    check = subprocess.run([str(python), "-c", "import keyrings.cryptfile"],
                           capture_output=True, timeout=60)
    if check.returncode != 0:
        installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                                    "keyrings.cryptfile>=1.3"], capture_output=True, timeout=600)
        if installed.returncode != 0:
            return None
    return python


def bench(rounds: int, work: Path, *, anchor: bool = True) -> list[str]:
    """set_password and get_password, ours in-process vs cryptfile in its warm child
    (``anchor=False``: ours alone, for the smoke test, which installs nothing)."""
    ours = CredsealKeyring(settings=BackendSettings(
        _env_file=None, dir=work / "credseal", key_source="passphrase", passphrase=PASSPHRASE))
    ours.set_password("svc", "warm", "up")  # creates the vault: one derivation, as at start
    if not anchor:
        started = time.perf_counter()
        for i in range(rounds):
            ours.set_password("svc", f"u{i}", "pw")
            assert ours.get_password("svc", "warm") == "up"
        per = (time.perf_counter() - started) / max(rounds, 1)
        return [f"keyring set+get with credseal: {us(per)} per pair (anchor not run)",
                _cli_line(work)]
    python = cryptfile_python()
    if python is None:
        return ["keyring benchmark: keyrings.cryptfile could not be installed in "
                f"{VENV}: anchor skipped"]
    # The child's environment holds only PATH and the passphrase (never its argv).
    child = subprocess.Popen([str(python), "-c", _CHILD, str(work / "cryptfile.cfg")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={"PATH": os.environ.get("PATH", ""),
                                  "BENCH_PASSPHRASE": PASSPHRASE})
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        samples: dict[str, list[float]] = {k: [] for k in ("os", "og", "ts", "tg")}
        for i in range(rounds):
            started = time.perf_counter()
            ours.set_password("svc", f"u{i}", "pw")
            samples["os"].append(time.perf_counter() - started)
            started = time.perf_counter()
            ours.get_password("svc", "warm")
            samples["og"].append(time.perf_counter() - started)
            for op, key in (("set", "ts"), ("get", "tg")):
                child.stdin.write(op + "\n")
                child.stdin.flush()
                samples[key].append(float(json.loads(child.stdout.readline())))
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    t = {k: Timing(k, tuple(v)) for k, v in samples.items()}
    lines = []
    for what, mine, theirs, goal in (("set_password", t["os"], t["ts"], None),
                                     ("get_password", t["og"], t["tg"], 1000.0)):
        speedup = theirs.median / mine.median
        judged = "" if goal is None else f"; goal >= 1,000x: {verdict(speedup, '>=', goal)}"
        lines.append(f"keyring {what} in a warm process: credseal {speedup:,.0f}x faster than "
                     f"keyrings.cryptfile by median ({us(mine.median)} vs "
                     f"{us(theirs.median)}), {theirs.minimum / mine.minimum:,.0f}x by "
                     f"minimum{judged}")
    lines.append(_cli_line(work))
    return lines


def _cli_line(work: Path) -> str:
    """One `keyring get` CLI call against our backend: a fresh process pays the KDF once."""
    env = {**os.environ, "PYTHON_KEYRING_BACKEND":
           "vault.integrations.keyring_backend.CredsealKeyring",
           "CREDSEAL_BACKEND_DIR": str(work / "credseal"),
           "CREDSEAL_BACKEND_KEY_SOURCE": "passphrase", "CREDSEAL_BACKEND_PASSPHRASE": PASSPHRASE}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keyring", "get", "svc", "warm"], env=env,
                          capture_output=True, text=True, timeout=120)
    spent = time.perf_counter() - started
    ok = done.returncode == 0 and done.stdout.strip() == "up"
    return (f"one `keyring get` CLI call (a fresh process: start-up and one Argon2id "
            f"derivation): {spent:.2f} s{'' if ok else ' (FAILED)'}")


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
