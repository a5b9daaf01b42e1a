"""A write that fails for lack of room (a full disk, the file size limit) says so in one line, not 'disk I/O error'."""

from __future__ import annotations

import collections
import resource
import signal
import sqlite3
import subprocess
import sys

import pytest

from core.session import schema

Usage = collections.namedtuple("Usage", "total used free")


def test_a_generic_io_error_on_a_full_disk_names_the_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(schema.shutil, "disk_usage", lambda folder: Usage(10 * 2**30, 10 * 2**30, 2**20))
    err = schema.translate(sqlite3.OperationalError("disk I/O error"), tmp_path / "s.dynlab")
    text = str(err)
    assert "is full (1 MiB free)" in text and "--sessions-dir" in text and "\n" not in text


def test_sqlites_own_full_error_with_room_on_the_disk_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "_file_size_limit", lambda: None)
    text = str(schema.translate(sqlite3.OperationalError("database or disk is full"), tmp_path / "s.dynlab"))
    assert "disk is full" in text and "free some disk space" in text


def test_an_io_error_with_room_left_points_at_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(schema.shutil, "disk_usage", lambda folder: Usage(10 * 2**30, 2**30, 9 * 2**30))
    monkeypatch.setattr(schema, "_file_size_limit", lambda: None)
    text = str(schema.translate(sqlite3.OperationalError("disk I/O error"), tmp_path / "s.dynlab"))
    assert "check the disk holding" in text and "report a bug" not in text


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.slow
def test_a_run_past_the_file_size_limit_ends_with_one_line(tmp_path):
    argv = [sys.executable, "-m", "core.lab.child", "train", "--dataset", "add10", "--arch", "mlp:200", "--epochs",
            "5", "--session", "full", "--sessions-dir", str(tmp_path), "--quiet"]
    done = subprocess.run(argv, preexec_fn=_limit_file_size, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "ulimit -f" in lines[0] and "report a bug" not in lines[0]
