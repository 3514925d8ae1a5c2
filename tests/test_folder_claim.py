"""``stlsim._io.claim_folder``: two runs started at once never both take a folder.

The race these tests pin down: a run creates ``.stlsim.lock`` and writes its process id a moment
later; a second run that read the lock in between saw an empty file, judged it stale, removed it
and took the folder too (two ``stlsim compare`` runs with different learning rates then left a
``results.json`` and records that disagree). The window is widened here on purpose (the start-time
lookup that comes between the create and the write sleeps), and the two claims come from two
threads, whose separate folder descriptors conflict as two processes' would.
"""
from __future__ import annotations

import os
import threading
import time

import pytest

import stlsim._io as io


def _claim_in_thread(folder, holding, release):
    def body():
        with io.claim_folder(str(folder), "first"):
            holding.set()
            release.wait(10)
    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_a_lock_being_written_is_not_taken_as_stale(tmp_path, monkeypatch):
    slow_write, real_start_time = threading.Event(), io._start_time

    def slow_start_time(pid):
        slow_write.set()                # the lock exists now, still empty
        time.sleep(0.5)
        return real_start_time(pid)

    monkeypatch.setattr(io, "_start_time", slow_start_time)
    holding, release = threading.Event(), threading.Event()
    first = _claim_in_thread(tmp_path, holding, release)
    try:
        assert slow_write.wait(10)
        monkeypatch.setattr(io, "_start_time", real_start_time)
        assert (tmp_path / io.LOCK_NAME).read_text() == ""     # the window the second claim falls into
        with pytest.raises(ValueError, match="already claimed by this process"), \
                io.claim_folder(str(tmp_path), "second"):
            pass                                                 # pragma: no cover - must not get here
        assert holding.wait(10)
        assert (tmp_path / io.LOCK_NAME).read_text().split()[0] == str(os.getpid())
    finally:
        release.set()
        first.join(10)
    assert not (tmp_path / io.LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_once(tmp_path, monkeypatch):
    (tmp_path / io.LOCK_NAME).write_text("999999999")          # its process is gone
    real_remove, removed = os.remove, []

    def slow_remove(path):
        removed.append(path)
        time.sleep(0.2)                 # both claims judge the stale lock before either writes its own
        real_remove(path)

    monkeypatch.setattr(io.os, "remove", slow_remove)
    outcomes = []

    def claim(name):
        try:
            with io.claim_folder(str(tmp_path), name):
                outcomes.append("took")
                time.sleep(0.5)
        except ValueError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=claim, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert outcomes.count("took") == 1, outcomes


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")
def test_a_folder_held_inside_the_claim_is_a_clear_error(tmp_path):
    import fcntl

    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match="held by another process"), \
                io._folder_mutex(str(tmp_path), "compare", wait_s=0.2):
            pass                                                 # pragma: no cover
        assert time.perf_counter() - t0 < 5
    finally:
        os.close(fd)
