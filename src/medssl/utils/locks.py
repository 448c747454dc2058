"""Folder locks between the processes that share one benchmark grid (``medssl benchmark --cells i/n``).

A process that makes a run folder (a pre-training, a prepared store) holds ``FOLDER/.lock``; the
others skip that folder or wait for it. Where the system has ``fcntl`` (Linux, macOS) the lock is an
exclusive ``flock`` on that file, which the kernel releases when its process ends however it ends,
so two processes can never both hold one, even when both find the lock of a killed process at the
same instant. The file also names its owner (:func:`process_stamp`: pid, start time, boot): a lock
file left by an older medssl, which held no ``flock``, counts as held while the process it names
runs. Without ``fcntl`` the file is created exclusively and a lock whose owner is gone is removed
(a narrower guarantee: two processes that find one stale lock at the same instant may both take it).

Example::

    lock = try_lock(run_dir)        # a FolderLock, False (finished) or None (another process has it)
    if lock:
        try:
            make(run_dir)
        finally:
            lock.release()
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Literal

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["LOCK_NAME", "FolderLock", "holder", "is_held", "owner_alive", "process_stamp", "try_lock", "wait_or_lock"]

#: the lock file inside a locked folder
LOCK_NAME = ".lock"


def process_stamp(pid: int) -> str:
    """``pid`` and, where ``/proc`` tells it, the process's start time and the boot: a lock names its
    owner this way, so that a later process that happens to get the same pid is not taken for it."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, IndexError):
        return str(pid)
    return f"{pid} {start} {boot}"


def owner_alive(stamp: str) -> bool:
    """Whether the process a lock file names (:func:`process_stamp`) still runs."""
    try:
        pid = int(stamp.split()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError, OSError):
        return False
    if len(stamp.split()) >= 3:
        return process_stamp(pid) == stamp.strip()
    try:  # a lock of an older medssl names only the pid: alive if that pid still runs medssl
        return b"medssl" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: the pid runs, which is all that can be known


class FolderLock:
    """A held folder lock (true in a boolean context); :meth:`release` removes the file and lets go.

    Attributes:
        path: the lock file.
    """

    def __init__(self, path: Path, fd: int | None, inode: int) -> None:
        self.path = path
        self._fd = fd
        self._inode = inode

    def __bool__(self) -> bool:
        return True

    def release(self) -> None:
        """Remove the lock file (if it is still this lock's) and release the ``flock``; idempotent."""
        try:
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except OSError:
            pass
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _stamp_of(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode(errors="replace")


def _flock(lock: Path) -> FolderLock | None:
    """The flock of ``lock`` (a FolderLock), or None while another process holds it (or an older
    medssl's lock file names a live process)."""
    assert fcntl is not None
    while True:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder removed it as we opened it: try the new file
            os.close(fd)
            continue
        old = _stamp_of(fd).strip()
        if old and owner_alive(old):  # an older medssl's lock (no flock) whose process runs
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, process_stamp(os.getpid()).encode())
        return FolderLock(lock, fd, os.fstat(fd).st_ino)


def _exclusive_file(lock: Path) -> FolderLock | None:
    """Without fcntl: the lock file created exclusively; a stale one (its owner gone) is removed first."""
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                stamp = lock.read_text()
            except OSError:
                continue  # removed meanwhile
            if owner_alive(stamp):
                return None
            lock.unlink(missing_ok=True)
            continue
        os.write(fd, process_stamp(os.getpid()).encode())
        inode = os.fstat(fd).st_ino
        os.close(fd)
        return FolderLock(lock, None, inode)


def try_lock(folder: str | Path, done: Callable[[], bool] | None = None) -> FolderLock | Literal[False] | None:
    """Take ``folder/.lock`` unless the folder's work is finished or another process does it.

    Args:
        folder: the folder (created if missing).
        done: whether its work is finished (default: never); asked before and after taking the lock,
            so that a process that waited does not redo what the holder finished.

    Returns:
        A :class:`FolderLock` (this process makes it), False (finished) or None (another live
        process holds the lock).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    finished = done or (lambda: False)
    if finished():
        return False
    lock = (_flock if fcntl is not None else _exclusive_file)(folder / LOCK_NAME)
    if lock is not None and finished():
        lock.release()
        return False
    return lock


def wait_or_lock(
    folder: str | Path, done: Callable[[], bool] | None = None, poll: float = 5.0
) -> FolderLock | Literal[False]:
    """A :class:`FolderLock` if this process must make ``folder``; False once another finished it
    (waits, polling every ``poll`` seconds, while another process holds the lock)."""
    while (got := try_lock(folder, done)) is None:
        time.sleep(poll)
    return got


def holder(folder: str | Path) -> int | None:
    """The pid of the live process that holds ``folder/.lock``, asked without taking the lock (so that
    asking never makes a process that is taking it at that instant believe it is held): its file names
    its owner (:func:`process_stamp`), whose process must still run; None when no live process holds
    it (no lock file, or its process ended, however it ended)."""
    try:
        stamp = (Path(folder) / LOCK_NAME).read_text().strip()
    except OSError:
        return None
    return int(stamp.split()[0]) if stamp and owner_alive(stamp) else None


def is_held(folder: str | Path) -> bool:
    """Whether a live process holds ``folder/.lock`` (:func:`holder`)."""
    return holder(folder) is not None
