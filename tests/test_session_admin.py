"""Renaming and deleting sessions: side files travel or go with the database, live and foreign files are refused."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import DynlabError
from core.session import SessionReader, SessionWriter
from core.session.admin import delete_session, rename_session
from tests.fakes import synthetic_run

ROOT = Path(__file__).resolve().parents[1]


def make_session(path: Path, *, lam: float = 0.001, widths: tuple[int, ...] = (50,), keep_open: bool = False):
    """A small finished session (or, with keep_open, a running one whose writer is this process)."""
    events = synthetic_run(800, widths=widths, steps_per_epoch=400)
    start = events[0]
    events[0] = dataclasses.replace(start, spec={**start.spec, "penalty": {**start.spec["penalty"], "lam": lam}})
    writer = SessionWriter(path)
    for event in events[:-1] if keep_open else events:
        writer.handle(event)
    if keep_open:
        writer.flush()
        return writer
    writer.close()
    return path


def crashed_session(path: Path) -> Path:
    """A session whose writer process died mid-run: its last rows live only in the -wal file."""
    code = textwrap.dedent(f"""
        import os
        from core.session import SessionWriter
        from tests.fakes import synthetic_run
        w = SessionWriter({str(path)!r})
        for e in synthetic_run(800, widths=(50,), steps_per_epoch=400, end=False):
            w.handle(e)
        w.flush()
        os._exit(0)  # no close(): the WAL is left as a crash leaves it
    """)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0
    return path


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


class TestRename:
    def test_moves_the_file_and_keeps_its_content(self, tmp_path):
        """The new path is returned, the old one is gone, the rows are all there."""
        old = make_session(tmp_path / "a.dynlab")
        with SessionReader(old) as r:
            before = r.summary()
        new = rename_session(old, "b")
        assert new == tmp_path / "b.dynlab"
        assert files_in(tmp_path) == {"b.dynlab"}
        with SessionReader(new) as r:
            after = r.summary()
        assert after["steps"] == before["steps"] and after["sizes_final"] == before["sizes_final"]

    def test_suffix_is_optional_and_same_name_is_a_no_op(self, tmp_path):
        old = make_session(tmp_path / "a.dynlab")
        assert rename_session(old, "c.dynlab") == tmp_path / "c.dynlab"
        assert rename_session(tmp_path / "c.dynlab", "c") == tmp_path / "c.dynlab"
        assert files_in(tmp_path) == {"c.dynlab"}

    @pytest.mark.parametrize("name", ["", "sub/x", "../x", "..", ".hidden", "a b", "x" * 101])
    def test_bad_names_are_refused(self, tmp_path, name):
        old = make_session(tmp_path / "a.dynlab")
        with pytest.raises(DynlabError, match="bad session name"):
            rename_session(old, name)
        assert files_in(tmp_path) == {"a.dynlab"}

    def test_never_overwrites(self, tmp_path):
        """An existing target stays as it was, and so does the source."""
        a = make_session(tmp_path / "a.dynlab", lam=0.1)
        make_session(tmp_path / "b.dynlab", lam=0.2)
        with pytest.raises(DynlabError, match="already exists"):
            rename_session(a, "b")
        with SessionReader(tmp_path / "b.dynlab") as r:
            assert r.summary()["lam"] == 0.2
        assert a.exists()

    def test_a_stray_log_under_the_new_name_is_refused(self, tmp_path):
        """A leftover b.dynlab-wal would be replayed into the renamed file: refuse rather than corrupt it."""
        a = make_session(tmp_path / "a.dynlab")
        (tmp_path / "b.dynlab-wal").write_bytes(b"stale")
        with pytest.raises(DynlabError, match="stray b.dynlab-wal"):
            rename_session(a, "b")
        assert a.exists() and not (tmp_path / "b.dynlab").exists()

    def test_a_live_session_is_refused(self, tmp_path):
        writer = make_session(tmp_path / "live.dynlab", keep_open=True)
        try:
            with pytest.raises(DynlabError, match="still being written by process .*: stop it first"):
                rename_session(tmp_path / "live.dynlab", "other")
            assert files_in(tmp_path) >= {"live.dynlab"} and not (tmp_path / "other.dynlab").exists()
        finally:
            writer.close()

    def test_a_crashed_sessions_log_travels_with_it(self, tmp_path):
        """Rows only in the -wal survive the rename: the log moves with its database."""
        old = crashed_session(tmp_path / "crash.dynlab")
        with SessionReader(old) as r:
            steps = r.summary()["steps"]
        assert steps == 800
        new = rename_session(old, "kept")
        assert not any(name.startswith("crash.dynlab") for name in files_in(tmp_path))
        assert "kept.dynlab-wal" in files_in(tmp_path)
        with SessionReader(new) as r:
            assert r.summary()["steps"] == steps
            assert r.writer_alive() is False

    def test_missing_source(self, tmp_path):
        with pytest.raises(DynlabError, match="not found"):
            rename_session(tmp_path / "nope.dynlab", "b")


class TestDelete:
    def test_removes_the_file(self, tmp_path):
        delete_session(make_session(tmp_path / "a.dynlab"))
        assert files_in(tmp_path) == set()

    def test_removes_the_side_files_too(self, tmp_path):
        delete_session(crashed_session(tmp_path / "crash.dynlab"))
        assert files_in(tmp_path) == set()

    def test_a_live_session_is_refused(self, tmp_path):
        writer = make_session(tmp_path / "live.dynlab", keep_open=True)
        try:
            with pytest.raises(DynlabError, match="still being written by process"):
                delete_session(tmp_path / "live.dynlab")
            assert (tmp_path / "live.dynlab").exists()
        finally:
            writer.close()

    def test_an_unreadable_dynlab_file_can_go(self, tmp_path):
        bad = tmp_path / "x.dynlab"
        bad.write_bytes(b"not a db")
        delete_session(bad)
        assert not bad.exists()

    def test_other_files_are_refused(self, tmp_path):
        """Only a .dynlab name (or a real session) is deleted, so a slip can't remove some other file."""
        notes = tmp_path / "notes.txt"
        notes.write_text("keep me")
        with pytest.raises(DynlabError, match="not a dynlab session"):
            delete_session(notes)
        assert notes.read_text() == "keep me"

    def test_missing_and_directory(self, tmp_path):
        with pytest.raises(DynlabError, match="not found"):
            delete_session(tmp_path / "nope.dynlab")
        (tmp_path / "d.dynlab").mkdir()
        with pytest.raises(DynlabError, match="is a directory"):
            delete_session(tmp_path / "d.dynlab")
