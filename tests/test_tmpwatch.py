"""The temp-directory watch (tests/tmpwatch.py) sees what the tests would leave in /tmp."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.tmpwatch import watch_of


def test_a_temp_directory_made_by_test_code_is_recorded(request: pytest.FixtureRequest,
                                                        tmp_path: Path) -> None:
    """mkdtemp and TemporaryDirectory in /tmp are recorded, mkdtemp under tmp_path is not; a
    removed directory is no leftover."""
    watch = watch_of(request.config)
    made = Path(tempfile.mkdtemp(prefix="credseal-tmpwatch-"))
    try:
        assert made in watch.made and made in watch.leftovers()
        with tempfile.TemporaryDirectory(prefix="credseal-tmpwatch-") as other:
            assert Path(other) in watch.made
        inside = Path(tempfile.mkdtemp(dir=tmp_path))
        assert inside not in watch.made
    finally:
        made.rmdir()
    assert made not in watch.leftovers()


def test_a_child_process_makes_its_temp_files_in_the_watched_directory(
        request: pytest.FixtureRequest) -> None:
    """A child's tempfile.mkdtemp lands in the session's children directory, where the end
    of the session finds it."""
    watch = watch_of(request.config)
    assert watch.children is not None and os.environ["TMPDIR"] == str(watch.children)
    made = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp())"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    try:
        assert Path(made).parent == watch.children and Path(made) in watch.leftovers()
    finally:
        os.rmdir(made)
    assert Path(made) not in watch.leftovers()
