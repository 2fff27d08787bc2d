"""Without the ``postgres`` extra, importing the PostgreSQL source names the extra to install."""

from __future__ import annotations

import subprocess
import sys

_WITHOUT_PSYCOPG = """\
import sys
sys.modules["psycopg"] = None  # as if the extra were not installed: import psycopg fails
try:
    import vault.sources.postgres
except ModuleNotFoundError as exc:
    print(exc.name, str(exc), sep="|")
"""


def test_a_missing_extra_names_the_pip_command() -> None:
    out = subprocess.run([sys.executable, "-c", _WITHOUT_PSYCOPG], capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    name, message = out.split("|")
    assert name == "psycopg" and 'pip install "credseal[postgres]"' in message
