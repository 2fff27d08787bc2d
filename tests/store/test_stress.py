"""Multi-process stress: four writers and one rotating process on one vault."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import vault

ROOT = Path(__file__).resolve().parents[2]


def spawn(module: str, args: list[str], ring: vault.KeyRing,
          **env: str) -> subprocess.Popen[str]:
    """Start ``python -m module args`` with the ring in CREDSEAL_KEYS (never in argv)."""
    return subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                            "CREDSEAL_KEYS": ring.to_text(), **env})


@pytest.mark.slow
def test_four_writers_and_a_rotator(make_vault: Callable[..., vault.Vault],
                                    tmp_path: Path) -> None:
    """After 4 writers (2 still on the old ring) and a rotator run together, every entry opens
    and holds the last value its writer reported."""
    old, new = vault.Key.generate(), vault.Key.generate()
    old_ring, new_ring = vault.KeyRing([old]), vault.KeyRing([new, old])
    v = make_vault(keys=new_ring, ttl=3600)
    for w in range(4):
        for i in range(6):
            v.put(f"w{w}-{i}", {"counter": 0})
    stop = tmp_path / "stop"
    rotator = spawn("tests.helpers.rotator", [str(v.directory), str(stop)], new_ring)
    writers = [spawn("tests.helpers.writer", [str(v.directory), "6", "150"],
                     old_ring if w < 2 else new_ring, WRITER_TAG=f"w{w}", WRITER_PREFIX=f"w{w}")
               for w in range(4)]
    outputs = [w.communicate(timeout=300)[0] for w in writers]
    time.sleep(0.2)  # let the rotator finish a pass after the last write
    stop.touch()
    rotator_out = rotator.communicate(timeout=300)[0]
    assert all(w.returncode == 0 for w in writers)
    assert rotator.returncode == 0, rotator_out
    passes = [tuple(map(int, line.split())) for line in rotator_out.splitlines()]
    assert len(passes) >= 2 and sum(p[0] for p in passes) > 0
    last: dict[str, int] = {}
    for out in outputs:
        for line in out.splitlines():
            name, counter = line.split()
            last[name] = int(counter)
    assert len(last) == 24
    for name, counter in last.items():
        assert v.get(name)["counter"] == counter == 150
    final = v.rewrap()
    assert final.failed == 0 and final.rewrapped + final.current == 24
    assert {v.info(n).key_id for n in v.names()} == {new.id}
