"""Hold a vault's rotation lock from another process, as a running rotation would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLDER = """\
import sys
from vault._store.state import RotationLock

from vault.config import current_context

CONTEXT = current_context()
lock = RotationLock(sys.argv[1], CONTEXT)
lock.acquire()
lock.record(phase="rewrapping")
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def held_rotation_lock(directory: Path) -> Iterator[int]:
    """Hold ``directory``'s rotation lock in a child process; yields the child's pid."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(directory)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.communicate("", timeout=30)
