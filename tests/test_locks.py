"""medssl.utils.locks: one holder per folder, also when a killed holder's lock is found by many at once."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from medssl.utils import locks
from medssl.utils.locks import (
    LOCK_NAME,
    FolderLock,
    holder,
    is_held,
    owner_alive,
    process_stamp,
    try_lock,
    wait_or_lock,
)


def _hold(folder: str, ready, stop) -> None:  # a child process that takes the lock and keeps it
    lock = try_lock(folder)
    ready.set()
    stop.wait(30)
    if lock:
        lock.release()


def _contend(folder: str, barrier, results) -> None:  # take the lock at the same instant as the others
    barrier.wait()
    lock = try_lock(folder)
    results.put(bool(lock))
    time.sleep(0.5)  # hold it while the others try
    if lock:
        lock.release()


def test_a_held_lock_is_refused_and_released_on_kill(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(str(tmp_path), ready, stop))
    child.start()
    assert ready.wait(30)
    assert not is_held(tmp_path / "elsewhere")  # no lock file
    assert is_held(tmp_path) and holder(tmp_path) == child.pid  # asked without taking it
    assert try_lock(tmp_path) is None  # held by a live process
    assert owner_alive((tmp_path / LOCK_NAME).read_text())
    os.kill(child.pid, signal.SIGKILL)  # no release: the kernel drops the flock, the file stays
    child.join()
    assert (tmp_path / LOCK_NAME).is_file()
    assert not is_held(tmp_path) and holder(tmp_path) is None  # its process is gone
    lock = try_lock(tmp_path)
    assert isinstance(lock, FolderLock)
    assert (tmp_path / LOCK_NAME).read_text() == process_stamp(os.getpid())
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    lock.release()  # idempotent


def test_exactly_one_of_many_takes_a_stale_lock(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("999999999 1 another-boot")  # a dead owner
    ctx = mp.get_context("fork")
    n = 8
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=30) for _ in range(n)]
    for p in procs:
        p.join()
    assert sum(got) == 1


def test_done_folders_are_not_locked_and_waiting_ends_when_the_holder_finishes(tmp_path: Path) -> None:
    assert try_lock(tmp_path / "a", done=lambda: True) is False
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(str(tmp_path / "b"), ready, stop))
    child.start()
    assert ready.wait(30)
    calls = {"n": 0}

    def done() -> bool:  # the holder finishes (and lets go) while we wait
        calls["n"] += 1
        if calls["n"] == 2:
            stop.set()
            child.join()
        return calls["n"] >= 3

    assert wait_or_lock(tmp_path / "b", done, poll=0.01) is False and calls["n"] == 3
    assert not (tmp_path / "b" / LOCK_NAME).exists()


def test_an_older_medssl_lock_of_a_live_process_counts(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(process_stamp(os.getpid()))  # no flock held: an older medssl's lock
    assert try_lock(tmp_path) is None
    (tmp_path / LOCK_NAME).write_text(f"{os.getpid()} 1 not-this-boot")  # that pid, but another process
    lock = try_lock(tmp_path)
    assert lock
    lock.release()


def test_without_fcntl_the_file_is_created_exclusively(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(locks, "fcntl", None)
    lock = try_lock(tmp_path)
    assert isinstance(lock, FolderLock)
    assert try_lock(tmp_path) is None  # our own live stamp
    lock.release()
    (tmp_path / LOCK_NAME).write_text("999999999")  # stale
    again = try_lock(tmp_path)
    assert again and (tmp_path / LOCK_NAME).read_text() == process_stamp(os.getpid())
    again.release()
