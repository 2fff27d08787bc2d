"""Tests of vault.files: private files, atomic durable writes and entry locks."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from vault import _files as files
from vault.errors import FormatError, InsecureFileError, LockTimeoutError


@pytest.fixture
def private_dir(tmp_path: Path) -> str:
    """A fresh private directory."""
    path = str(tmp_path / "d")
    files.ensure_private_dir(path)
    return path


def test_write_atomic_creates_private_file(private_dir: str) -> None:
    """write_atomic leaves exactly the target, mode 0600, with the data."""
    target = os.path.join(private_dir, "f")
    files.write_atomic(target, b"data", "f")
    assert Path(target).read_bytes() == b"data"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert os.listdir(private_dir) == ["f"]


def test_write_atomic_cleans_up_on_failure(private_dir: str) -> None:
    """When the rename fails (a directory stands at the target), the temp file is removed and
    the error names the directory (an InsecureFileError, not a raw OSError)."""
    target = os.path.join(private_dir, "sub")
    os.mkdir(target)
    with pytest.raises(InsecureFileError, match="is a directory"):
        files.write_atomic(target, b"data", "sub")
    assert os.listdir(private_dir) == ["sub"]


def test_read_private_refuses_fifo_without_blocking(private_dir: str) -> None:
    """A FIFO planted at a file's path is refused at once (no blocking open)."""
    fifo = os.path.join(private_dir, "pipe")
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InsecureFileError, match="not a regular file"):
        files.read_private(fifo, 100)


def test_read_private_size_cap(private_dir: str) -> None:
    """A file over the size cap is refused before it is read."""
    target = os.path.join(private_dir, "f")
    files.write_atomic(target, b"x" * 101, "f")
    with pytest.raises(FormatError, match="over the limit"):
        files.read_private(target, 100)
    assert files.read_private(target, 101) == b"x" * 101


def test_ensure_private_dir_refuses_a_file(tmp_path: Path) -> None:
    """A regular file where the directory should be is refused."""
    path = tmp_path / "f"
    path.write_text("")
    with pytest.raises(InsecureFileError, match="not a directory"):
        files.ensure_private_dir(str(path))


def test_check_private_dir_missing(tmp_path: Path) -> None:
    """A missing vault directory is named, with a hint to create it."""
    with pytest.raises(InsecureFileError, match="does not exist") as info:
        files.check_private_dir(str(tmp_path / "nope"))
    assert info.value.hint


def test_lock_timeout_names_what(private_dir: str) -> None:
    """A held lock makes a second locker time out with a LockTimeoutError naming the entry."""
    path = os.path.join(private_dir, "x.lock")
    with files.FileLock(path, timeout=5, what="entry 'x'"):
        other = files.FileLock(path, timeout=0.05, what="entry 'x'")
        assert other.acquire(blocking=False) is False
        with pytest.raises(LockTimeoutError, match="entry 'x'"):
            other.acquire()


def test_waiter_follows_a_removed_lock_file(private_dir: str) -> None:
    """A waiter whose lock file was removed by the holder retries on the new file."""
    path = os.path.join(private_dir, "x.lock")
    holder = files.FileLock(path, timeout=5, what="x")
    holder.acquire()
    got: list[int] = []

    def wait() -> None:
        with files.FileLock(path, timeout=5, what="x") as lock:
            got.append(os.stat(path).st_ino)
            assert lock._fd is not None and os.fstat(lock._fd).st_ino == got[0]

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.05)
    holder.remove()
    holder.release()
    thread.join(timeout=10)
    assert got and os.path.exists(path)  # it locked the file now at the path, not the removed one


def test_write_new_creates_whole_private_files_and_never_replaces(private_dir: str) -> None:
    """write_new makes a 0600 file with all the data, refuses an existing name (file, dangling
    symlink) and leaves no temp file behind, whether it succeeded or not."""
    target = os.path.join(private_dir, "export.json")
    files.write_new(target, b"x" * 100_000)
    assert Path(target).read_bytes() == b"x" * 100_000
    assert os.stat(target).st_mode & 0o777 == 0o600 and os.stat(target).st_nlink == 1
    with pytest.raises(FileExistsError):
        files.write_new(target, b"other")
    assert Path(target).read_bytes() == b"x" * 100_000
    link = os.path.join(private_dir, "dangling")
    os.symlink(os.path.join(private_dir, "nowhere"), link)
    with pytest.raises(FileExistsError):
        files.write_new(link, b"data")
    assert not os.path.exists(os.path.join(private_dir, "nowhere"))
    assert sorted(os.listdir(private_dir)) == ["dangling", "export.json"]


def test_a_file_replaced_while_it_is_opened_is_read_again(private_dir: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that opens a file just as a writer replaces it (os.replace) sees link count
    0 on the old inode: it reads the new file instead of calling it insecure (this made
    concurrent readers of vault.state and of entries fail now and then)."""
    target = os.path.join(private_dir, "f")
    files.write_atomic(target, b"old", "f")
    real_open = files.open_nofollow
    replaced: list[bool] = []

    def open_then_replace(path: str, flags: int, what: str) -> tuple[int, os.stat_result]:
        fd, _ = real_open(path, flags, what)
        if not replaced:
            replaced.append(True)
            files.write_atomic(target, b"new", "f")  # the writer wins the race once
        return fd, os.fstat(fd)

    monkeypatch.setattr(files, "open_nofollow", open_then_replace)
    assert files.read_private(target, 100) == b"new" and replaced
