"""Private, durable file primitives: the only module that opens, writes, renames or removes files.

Every other module of the package goes through these functions (a test enforces it; the one
exception is the SQLite source's own database file, which ``sqlite3`` opens).

- Directories are created 0700 and files 0600 at creation (no chmod window).
- Reads refuse symlinks (``O_NOFOLLOW``), non-regular files, files with more than one hard link,
  group/world access, or another owner, with a hint saying how to fix it.
- Writes go to a unique ``O_EXCL`` temp file in the same directory, are fsynced, renamed over
  the target with ``os.replace`` and made durable by fsyncing the directory.
- Locks are ``flock`` locks on 0600 lock files; they exclude other processes and other threads.

A missing file surfaces as ``FileNotFoundError`` for the caller to translate.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import time
from types import TracebackType

from vault.errors import FormatError, InsecureFileError, LockTimeoutError

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK  # NONBLOCK: a planted FIFO must not hang a reader
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_SUFFIX = ".tmp"
# Paths are plain str: pathlib costs more than the system calls on the write path.


#: Names whose presence marks a directory as a vault's (and an entry: 64 hex + ``.cve``).
VAULT_MARKERS = frozenset({"vault.state", "keyfile.json"})
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.cve")
#: The vault's own subdirectories: private like the vault itself.
_VAULT_SUBDIRS = frozenset({".locks", "journal", "conflicts", "quarantine"})


def looks_like_vault(path: str) -> bool:
    """Whether directory ``path`` is a vault's: it holds its state, keyfile or an entry, or it
    is one of a vault's own subdirectories (``.locks``, ``journal``, ...)."""
    def marked(directory: str) -> bool:
        try:
            names = os.listdir(directory)
        except OSError:
            return False
        return any(name in VAULT_MARKERS or _ENTRY_NAME.fullmatch(name) for name in names)
    path = os.path.abspath(path)
    if os.path.basename(path) in _VAULT_SUBDIRS:
        parent = os.path.dirname(path)
        return marked(parent) or (os.path.basename(parent) == "journal"
                                  and marked(os.path.dirname(parent)))
    return marked(path)


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"  # sudo's syntax for a uid without a name


def check_mode(st: os.stat_result, path: str, what: str) -> None:
    """Raise ``InsecureFileError`` unless ``st`` is owned by this user with no group/world bits.

    The hint never proposes to change a directory that is not a vault's (``/var/lib``, ``/``,
    ``/tmp`` given as ``CREDSEAL_DIR`` by mistake), and for one owned by another user it says
    to run as that user, never to take it over (which would lock its service out)."""
    is_dir = stat.S_ISDIR(st.st_mode)
    mode = stat.S_IMODE(st.st_mode)
    foreign = st.st_uid != os.geteuid()
    if is_dir and (foreign or mode & 0o077):
        shared = bool(mode & (stat.S_ISVTX | 0o002))  # /tmp and the like: never a vault
        listable = os.access(path, os.R_OK | os.X_OK)
        fresh = not foreign and listable and not os.listdir(path)  # empty: made for a vault
        if shared or (listable and not fresh and not looks_like_vault(path)):
            raise InsecureFileError(
                f"{what} {path} is not private to this user and holds no vault (no vault.state, "
                "keyfile or entry inside)",
                hint="check CREDSEAL_DIR: a vault needs a directory of its own (for example "
                     f"{path.rstrip('/')}/credseal, which `credseal init` creates private); do "
                     "not change the permissions of a shared directory")
    if foreign:
        owner = _owner(st.st_uid)
        raise InsecureFileError(f"{what} {path} is owned by {owner} (uid {st.st_uid}), not by "
                                "this user",
                                hint=f"run the command as its owner: sudo -u '{owner}' credseal "
                                     "...; the service that uses the vault runs as that user")
    if mode & 0o077:
        want = "700" if is_dir else "600"
        raise InsecureFileError(f"{what} {path} is accessible to group or others "
                                f"(mode {stat.S_IMODE(st.st_mode):o})",
                                hint=f"chmod {want} '{path}'")


def ensure_private_dir(path: str) -> None:
    """Create ``path`` (and missing parents) with mode 0700, or check an existing one.

    Raises:
        InsecureFileError: it is a symlink or not a directory, has group/world access, or
            belongs to another user.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process won: check its work
            os.mkdir(path, 0o700)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            os.chmod(path, 0o700)  # a strict umask removed owner bits; adding them is safe
            st = os.lstat(path)
    check_private_dir(path, st)


def check_private_dir(path: str, st: os.stat_result | None = None) -> None:
    """Raise ``InsecureFileError`` unless ``path`` is a private directory of this user."""
    try:
        st = st or os.lstat(path)
    except FileNotFoundError:
        raise InsecureFileError(f"vault directory {path} does not exist",
                                hint="create it with `credseal init`") from None
    if stat.S_ISLNK(st.st_mode):
        raise InsecureFileError(f"directory {path} is a symlink",
                                hint="configure the real path of the directory instead")
    if not stat.S_ISDIR(st.st_mode):
        raise InsecureFileError(f"{path} is not a directory", hint="move the file away")
    check_mode(st, path, "directory")


def open_nofollow(path: str, flags: int, what: str) -> tuple[int, os.stat_result]:
    """Open ``path`` without following a symlink (created 0600 with ``O_CREAT``) and check
    that it is this user's, with no group/world access; returns (fd, its stat).

    Raises:
        InsecureFileError: a symlink, another owner, or group/world access (the fd is closed).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InsecureFileError(f"{what} {path} is a symlink",
                                    hint="remove it: a vault never creates symlinks") from None
        if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP, errno.ENODEV):
            raise InsecureFileError(f"{path} is not a regular file (a socket or a device)",
                                    hint="remove it: a vault never creates one") from None
        raise
    try:
        st = os.fstat(fd)
        check_mode(st, path, what)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _open_private(path: str) -> tuple[int, os.stat_result]:
    for _attempt in range(8):
        fd, st = open_nofollow(path, _READ_FLAGS, "file")
        if st.st_nlink == 0 and stat.S_ISREG(st.st_mode):
            # Replaced (atomically, by a writer) between our open and fstat: read the new one.
            os.close(fd)
            continue
        try:
            if not stat.S_ISREG(st.st_mode):
                raise InsecureFileError(f"{path} is not a regular file", hint="remove it")
            if st.st_nlink != 1:
                raise InsecureFileError(f"{path} has {st.st_nlink} hard links",
                                        hint="remove the other links: a vault file has "
                                             "exactly one")
        except BaseException:
            os.close(fd)
            raise
        return fd, st
    raise FileNotFoundError(errno.ENOENT, "replaced again and again while being read", path)


def read_private(path: str, max_size: int) -> bytes:
    """Read a whole private file of at most ``max_size`` bytes (checks as in the module doc)."""
    fd, st = _open_private(path)
    try:
        if st.st_size > max_size:
            raise FormatError(f"{path} is {st.st_size} bytes, over the limit of {max_size}")
        return _read_all(fd, st.st_size)
    finally:
        os.close(fd)


def read_private_prefix(path: str, length: int) -> tuple[bytes, int]:
    """Return the first ``length`` bytes of a private file and its total size."""
    fd, st = _open_private(path)
    try:
        return _read_all(fd, min(length, st.st_size)), st.st_size
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break  # shrank under us: the parser reports the wrong length
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def temp_name(stem: str) -> str:
    """Return a fresh temp file name for a write to ``<stem>.*``: ``.<stem>.<random>.tmp``."""
    return f".{stem}.{secrets.token_hex(8)}{TEMP_SUFFIX}"


def _write_temp(directory: str, stem: str, data: bytes, mode: int = 0o600,
                durable: bool = True) -> str:
    """Write ``data`` to a new temp file (0600, or ``mode``) in ``directory`` and fsync it
    (unless not ``durable``); returns its path (removed again if anything fails)."""
    temp = os.path.join(directory, temp_name(stem))
    fd = os.open(temp, _CREATE_FLAGS, 0o600)
    try:
        try:
            if mode != 0o600:
                os.fchmod(fd, mode)  # after creation: the umask does not decide
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return temp


def write_atomic(path: str, data: bytes, stem: str, *, mode: int = 0o600,
                 durable: bool = True) -> None:
    """Durably replace ``path`` with ``data``: temp file 0600 (or ``mode``, for a file that is
    no secret, such as metrics), fsync, rename, fsync directory. ``durable=False`` skips both
    fsyncs (still atomic: a reader sees the old file or the new one; after a power loss the
    new one may be lost or torn), for a copy that exists elsewhere too.

    ``stem`` names the temp file (see :func:`temp_name`) so stale temps can be matched to the
    lock that protects them. On any error the temp file is removed and ``path`` is unchanged.
    """
    directory = os.path.dirname(path)
    temp = _write_temp(directory, stem, data, mode, durable)
    try:
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(exc, IsADirectoryError | NotADirectoryError):
            raise _not_a_file(path) from None
        raise
    if durable:
        fsync_dir(directory)


def _not_a_file(path: str) -> InsecureFileError:
    return InsecureFileError(f"{path} is a directory, where the vault keeps a file",
                             hint="move it out of the vault directory: a vault never creates "
                                  "a directory there")


def write_new(path: str, data: bytes) -> None:
    """Create ``path`` (0600) holding ``data``, durably; refused if anything exists there.

    Written to a temp file beside it, ``.<name>.<random>.tmp`` (so a crash leaves a file an
    operator recognises), fsynced, then linked into place: ``link`` fails if the name exists,
    so nothing is ever replaced, and an error leaves no file or the whole file, never part of
    one. On a file system without hard links the name is claimed with ``O_EXCL`` first and
    the temp file renamed over that empty claim.

    Raises:
        FileExistsError: ``path`` exists (a file, a directory or a symlink).
    """
    directory = os.path.dirname(os.path.abspath(path))
    temp = _write_temp(directory, os.path.basename(path), data)
    try:
        try:
            os.link(temp, path, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            os.close(os.open(path, _CREATE_FLAGS, 0o600))  # FileExistsError if taken
            os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    fsync_dir(directory)


def set_mtime(path: str, ns: int) -> None:
    """Set the access and modification times of ``path`` (not following a symlink)."""
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def append_durably(path: str, data: bytes, what: str) -> None:
    """Append ``data`` to ``path`` in one ``write`` (``O_APPEND``: concurrent appends stay
    whole) and fsync it; the file is created 0600 and checked as in the module doc."""
    fd, _ = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, what)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def move_durably(path: str, target: str) -> None:
    """Rename ``path`` to ``target`` and fsync both directories (the caller locks)."""
    os.rename(path, target)
    fsync_dir(os.path.dirname(path))
    fsync_dir(os.path.dirname(target))


def remove_empty_dir(path: str) -> bool:
    """Remove directory ``path`` if it is empty; returns whether it was removed."""
    try:
        os.rmdir(path)
    except OSError:
        return False
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True


class InitGuard:
    """What ``credseal init`` holds on its directory: an ``flock`` on the directory itself (a
    second init waits, then sees the first one's vault and refuses), opened without following
    a symlink, and the names it held when taken, so that a failed init removes only what it
    made, relative to that descriptor (a directory swapped for a symlink meanwhile is never
    followed).

    Raises (on enter):
        LockTimeoutError: another init holds it for longer than ``timeout``.
        InsecureFileError: the path is a symlink or not a directory.
    """

    #: what an init makes: never anything else is removed (a service may write meanwhile)
    OWN = frozenset({".locks", "vault.state", "audit.jsonl", "keyfile.json"})

    def __init__(self, path: str, *, created: bool, timeout: float = 10.0) -> None:
        self.path, self.created, self.timeout = path, created, timeout
        self._fd: int | None = None
        self.before: set[str] = set()

    def __enter__(self) -> InitGuard:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            raise InsecureFileError(f"{self.path} is not a directory (or is a symlink)",
                                    hint="configure the real path of the directory") from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeoutError(f"another init of {self.path} is running",
                                           hint="wait for it, then retry") from None
                time.sleep(0.01)
        here, now = os.fstat(fd), os.lstat(self.path)
        if (here.st_dev, here.st_ino) != (now.st_dev, now.st_ino):  # replaced meanwhile
            os.close(fd)
            raise LockTimeoutError(f"{self.path} was replaced while init waited for it",
                                   hint="run init again")
        self._fd = fd
        # Only the names an init makes are ever undone: in a directory this init made, those
        # present now too (.locks, made just before); in one that was there, those new since.
        self.before = set() if self.created else set(os.listdir(fd))
        return self

    def keep(self) -> None:
        """Undo nothing on exit (an init that refuses, having made nothing under the lock)."""
        self.before = set(os.listdir(self._fd)) if self._fd is not None else self.before
        self.created = False

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._fd is not None
        try:
            if exc is not None:
                self._undo()
        finally:
            os.close(self._fd)  # drops the lock
            self._fd = None

    def _undo(self) -> None:
        """Best effort: remove every name that was not there when the guard was taken."""
        import shutil

        assert self._fd is not None
        fd = self._fd
        for name in (set(os.listdir(fd)) - self.before) & self.OWN:
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
        with contextlib.suppress(OSError):
            os.fsync(fd)
        if self.created and not os.listdir(fd):
            here = os.fstat(fd)
            with contextlib.suppress(OSError):
                now = os.lstat(self.path)
                if (now.st_dev, now.st_ino) == (here.st_dev, here.st_ino):
                    os.rmdir(self.path)
                    fsync_dir(os.path.dirname(os.path.abspath(self.path)))


def read_secret_file(path: str, max_size: int) -> tuple[bytes, os.stat_result]:
    """Read a key or passphrase file a service manager provides (``CREDSEAL_KEYS_FILE``):
    symlinks are followed (Kubernetes secret volumes are links), and the stat is of what was
    read. Returns ``b""`` for what is not a regular file; at most ``max_size + 1`` bytes, so
    the caller can tell an oversized file. Raises ``OSError`` if it cannot be read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO never blocks
    try:
        st = os.fstat(fd)
        data = _read_all(fd, max_size + 1) if stat.S_ISREG(st.st_mode) else b""
    finally:
        os.close(fd)
    return data, st


def read_foreign(path: str, max_size: int) -> tuple[bytes, os.stat_result]:
    """Read a file that is not the vault's (any owner and mode), without following a symlink.

    For the plaintext files that migration imports. Returns the data and the file's stat.

    Raises:
        InsecureFileError: a symlink or not a regular file. FormatError: over ``max_size``.
        OSError: it cannot be read.
    """
    return _read_foreign(path, max_size, None)


def _read_foreign(name: str, max_size: int, dir_fd: int | None) -> tuple[bytes, os.stat_result]:
    try:
        fd = os.open(name, _READ_FLAGS | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InsecureFileError(f"{name} is a symlink (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InsecureFileError(f"{name} is not a regular file")
        chunks, size = [], 0
        while size <= max_size and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > max_size:
        raise FormatError(f"{name} is over the limit of {max_size} bytes")
    return b"".join(chunks), st


def fsync_dir(path: str) -> None:
    """Make renames and unlinks in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(paths: list[str]) -> None:
    """Make files written with ``write_atomic(durable=False)`` durable, in one go: fsync each
    (a file gone meanwhile is skipped), then each directory once."""
    directories = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        directory = os.path.dirname(path)
        if directory not in directories:
            directories.append(directory)
    for directory in directories:
        fsync_dir(directory)


def unlink_durably(path: str) -> bool:
    """Remove ``path`` if it exists and fsync its directory; returns whether it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise _not_a_file(path) from None
    fsync_dir(os.path.dirname(path))
    return True


def open_dir(path: str) -> int:
    """Open directory ``path`` without following a symlink, for work relative to it.

    Raises:
        InsecureFileError: a symlink or not a directory. OSError: it cannot be opened.
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InsecureFileError(f"{path} is a symlink or not a directory (not followed)",
                                    hint="name the real directory") from None
        raise


def read_foreign_at(dir_fd: int, name: str, max_size: int) -> tuple[bytes, os.stat_result]:
    """:func:`read_foreign` of ``name`` inside the directory open as ``dir_fd``."""
    if "/" in name or name in ("", ".", ".."):
        raise InsecureFileError(f"{name!r} is not a plain file name")
    return _read_foreign(name, max_size, dir_fd)


def overwrite_and_unlink_at(dir_fd: int, name: str, identity: tuple[int, int]) -> None:
    """Overwrite file ``name`` of the directory open as ``dir_fd`` with random bytes, fsync,
    and unlink it durably, but only if it is still the file ``identity`` (st_dev, st_ino)
    that the caller checked: nothing outside that directory, and no swapped-in file, is
    touched.

    **Limits**: SSDs, copy-on-write file systems, snapshots and backups may keep the old
    content; this removes the copy the file system shows, nothing more.

    Raises:
        InsecureFileError: ``name`` is no longer the checked file (nothing was changed).
    """
    # NONBLOCK: a FIFO swapped in after the check must not hang us (its identity differs).
    fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                 dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != identity or not stat.S_ISREG(st.st_mode):
            raise InsecureFileError(f"{name} was replaced after it was checked; nothing was "
                                    "overwritten", hint="find out who changes the folder")
        remaining = st.st_size
        while remaining > 0:
            remaining -= os.write(fd, os.urandom(min(remaining, 1 << 20)))
        os.fsync(fd)
    finally:
        os.close(fd)
    now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if (now.st_dev, now.st_ino) == identity:
        os.unlink(name, dir_fd=dir_fd)
        os.fsync(dir_fd)


def lock_is_held(path: str) -> bool | None:
    """Whether a process holds the ``flock`` of lock file ``path`` (None: no such file).

    Opens read-only without creating or following anything and takes no lock that would
    stay: for read-only commands (``status``)."""
    try:
        fd, _ = open_nofollow(path, os.O_RDONLY, "lock file")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock, if taken
    return False


class FileLock:
    """An exclusive ``flock`` on a lock file, as a context manager.

    The lock file may be removed by its holder (:meth:`remove`); a waiter that then gets the
    lock on the removed file notices (the inode at the path changed) and tries again.

    Raises (on enter):
        LockTimeoutError: not obtained within ``timeout`` seconds.
        InsecureFileError: the lock file is a symlink or not private.
    """

    def __init__(self, path: str, *, timeout: float, what: str) -> None:
        self.path = path
        self.timeout = timeout
        self.what = what
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False at once if it is held."""
        deadline = 0.0
        delay = 0.0005
        while True:
            fd, inode = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if not blocking:
                    return False
                deadline = deadline or time.monotonic() + self.timeout
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"could not lock {self.what} within {self.timeout:g} s",
                        hint="another process is writing it; retry, or raise the lock "
                             "timeout") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
                continue
            except BaseException:
                os.close(fd)
                raise
            try:
                linked = os.stat(self.path, follow_symlinks=False).st_ino == inode
            except FileNotFoundError:
                linked = False
            if linked:
                self._fd = fd
                return True
            os.close(fd)  # the holder removed the lock file while we waited: use the new one

    def _open(self) -> tuple[int, int]:
        fd, st = open_nofollow(self.path, os.O_RDWR | os.O_CREAT, "lock file")
        return fd, st.st_ino

    def fileno(self) -> int:
        """The descriptor of the held lock file (its content is the holder's to use)."""
        if self._fd is None:
            raise RuntimeError("the lock is not held")
        return self._fd

    def write_state(self, data: bytes) -> None:
        """Replace the held lock file's content with ``data`` and fsync it."""
        fd = self.fileno()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def remove(self) -> None:
        """Unlink the lock file while holding it (waiters will retry on a new one)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def release(self) -> None:
        """Release the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
