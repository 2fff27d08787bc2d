"""Tests of the installed ``credvault`` command, run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import vault

BIN = Path(sys.executable).parent / "credvault"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed credvault with ``args``."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    """--version prints the package version and exits 0."""
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"credvault {vault.__version__}"


def test_help() -> None:
    """--help describes the tool and exits 0."""
    result = run("--help")
    assert result.returncode == 0 and "usage: credvault" in result.stdout


def test_python_dash_m() -> None:
    """python -m vault is the same command."""
    result = subprocess.run([sys.executable, "-m", "vault", "--version"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and vault.__version__ in result.stdout
