"""Nothing the tests make may be left in the temp directory (a pytest plugin, see conftest.py).

pytest's own base directory (``<tmp>/pytest-of-<user>``, where ``tmp_path`` lives) is pytest's
to manage. Everything else must be gone when the session ends, also after failed tests:

- in this process, every directory or file that code of this repository (a test, a fixture,
  a helper) makes directly in the temp directory with ``tempfile.mkdtemp``/``mkstemp`` (also
  through ``TemporaryDirectory``) is recorded;
- child processes get ``TMPDIR`` set to a directory of this session, so what an example, a
  benchmark or a child script makes with ``tempfile`` lands there (a child started with its
  own minimal environment, or as another user, is not covered).

At the end of the session each leftover is named, fails the run, and is then removed. Other
processes on the machine may create files in the temp directory meanwhile: only what this
session made is looked at, so they never cause a failure.

SIGTERM and SIGHUP (a CI timeout, a closed terminal) stop the session like Ctrl-C, so that
fixtures are torn down: a PostgreSQL cluster or a Secret Service stops and its directory goes.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_TEMPFILE = os.path.normcase(os.path.abspath(tempfile.__file__))
_SIGNALS = ("SIGTERM", "SIGHUP")


class TempWatch:
    """What this session made in the temp directory, and the children's temp directory."""

    def __init__(self) -> None:
        self.temp = Path(tempfile.gettempdir())  # also fixes it for this process
        self.made: list[Path] = []
        self.children: Path | None = None
        self.saved_tmpdir: str | None = None
        self.originals: dict[str, Any] = {}
        self.handlers: dict[int, Any] = {}

    def note(self, path: str | bytes, caller: FrameType | None) -> None:
        """Record ``path`` if code of this repository (``caller``, or the first frame above it
        outside the tempfile module) made it directly in the temp directory."""
        made = Path(os.fsdecode(path))
        if made.parent == self.temp and _called_from_repository(caller):
            self.made.append(made)

    def leftovers(self) -> list[Path]:
        """What this session made and is still there."""
        left = [path for path in self.made if os.path.lexists(path)]
        if self.children is not None and self.children.is_dir():
            left += sorted(self.children.iterdir())
        return left


def _called_from_repository(frame: FrameType | None) -> bool:
    """Whether the first caller outside the tempfile module is a file of this repository."""
    while frame is not None and os.path.normcase(frame.f_code.co_filename) == _TEMPFILE:
        frame = frame.f_back
    if frame is None:
        return False
    path = Path(os.path.abspath(frame.f_code.co_filename))
    return path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".venv")


_WATCH = pytest.StashKey[TempWatch]()


def watch_of(config: pytest.Config) -> TempWatch:
    """The session's :class:`TempWatch` (for the tests of this plugin)."""
    return config.stash[_WATCH]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Start watching before any test module is imported."""
    watch = TempWatch()
    config.stash[_WATCH] = watch
    for name in ("mkdtemp", "mkstemp"):
        original = watch.originals[name] = getattr(tempfile, name)

        def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            result = _original(*args, **kwargs)
            watch.note(result if isinstance(result, str | bytes) else result[1],
                       sys._getframe(1))
            return result

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(tempfile, name, wrapper)
    watch.children = Path(watch.originals["mkdtemp"](prefix="credseal-tests-children-"))
    watch.saved_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(watch.children)
    if threading.current_thread() is threading.main_thread():
        for name in _SIGNALS:
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
                watch.handlers[signum] = signal.signal(signum, _interrupt)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture was torn down: name what is left, fail the run, remove it."""
    watch = session.config.stash.get(_WATCH, None)
    if watch is None:
        return
    left = watch.leftovers()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and left:
        reporter.write_line(f"temp hygiene: the tests left {len(left)} paths in {watch.temp} "
                            "(outside pytest's base directory), removed now:", red=True)
        for path in left:
            reporter.write_line(f"  LEFT: {path}", red=True)
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    for path in left:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put tempfile, TMPDIR and the signal handlers back; remove the children's directory."""
    watch = config.stash.get(_WATCH, None)
    if watch is None:
        return
    for name, original in watch.originals.items():
        setattr(tempfile, name, original)
    if watch.saved_tmpdir is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = watch.saved_tmpdir
    for signum, previous in watch.handlers.items():
        signal.signal(signum, previous)
    if watch.children is not None:
        shutil.rmtree(watch.children, ignore_errors=True)
