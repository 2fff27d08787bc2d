"""Instruction counts (valgrind's callgrind): seal+open vs Fernet, without the machine's noise.

Run: python -m bench.bench_instructions
Wall-clock ratios on a shared VM move by 10-20% from one run to the next; callgrind counts the
instructions executed, the same for the same binary and input whatever else the machine is
doing. Each candidate runs in its own process under callgrind twice, with 0 and with N calls,
so that start-up cancels out. Needs ``valgrind`` on the PATH; prints a line saying so if not.
Instructions are not time (a cold cache or a slow instruction costs more): this is a second
view beside the timed ratio, not a replacement for it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import sys
from bench.creds import baileys_like
from cryptography.fernet import Fernet
import vault
from vault import codec
from vault._crypto import format as fmt

plaintext = codec.dumps(baileys_like())
ring = vault.KeyRing([vault.Key.generate()])
fernet = Fernet(Fernet.generate_key())

def ours():
    sealed = ring.seal(kind=fmt.KIND_ENTRY, name="company", plaintext=plaintext, created_at=1,
                       expires_at=2)
    ring.open(sealed, kind=fmt.KIND_ENTRY, name="company")

def fern():
    fernet.decrypt(fernet.encrypt(plaintext))

run = ours if sys.argv[1] == "ours" else fern
run()  # first call outside the count: lazy imports and caches
for _ in range(int(sys.argv[2])):
    run()
"""


def count(which: str, calls: int, script: Path) -> int:
    """Instructions executed by the child doing ``calls`` calls of ``which``."""
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         str(script), which, str(calls)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": root})
    match = re.search(r"Collected\s*:\s*(\d+)", done.stderr) or re.search(
        r"I\s+refs:\s*([\d,]+)", done.stderr)
    if match is None:
        raise RuntimeError("callgrind printed no instruction count")
    return int(match.group(1).replace(",", ""))


def per_call(which: str, calls: int, script: Path) -> float:
    """Instructions per call of ``which``, start-up subtracted."""
    return (count(which, calls, script) - count(which, 0, script)) / calls


def main(argv: list[str] | None = None) -> None:
    """Print instructions per seal+open for ours and for Fernet, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 calls instead of 200")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("instruction counts skipped: valgrind is not installed")
        return
    calls = 50 if args.quick else 200
    with tempfile.TemporaryDirectory(prefix="credseal-bench-") as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(_CHILD)
        ours, fern = per_call("ours", calls, script), per_call("fernet", calls, script)
    print(f"seal+open, instructions per call (callgrind): ours {ours:,.0f}, Fernet {fern:,.0f}: "
          f"Fernet executes {fern / ours:.2f}x as many (the timed ratio's goal is >= 5x)")


if __name__ == "__main__":
    main()
