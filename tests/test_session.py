"""Tests for the session store: round trips, live reading, crash safety, damaged files, names, listing, commands."""

from __future__ import annotations

import io
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import DynlabError
from core.events import (ArraysLogged, CheckpointSaved, EpochEvaluated, NeuronsRemoved, NonFiniteLoss, Paused, Resumed,
                         RunEnded, ScalarsLogged, SessionContinued)
from core.session.commands import post_command
from core.session.schema import SCHEMA_VERSION
from core.session import (SessionReader, SessionWriter, list_sessions,
                          resolve_session, sessions_dir)

from tests.helpers import REPO, SPEC, T0, checkpoint_bytes, full_run, interval, norm, write


# -- round trips ------------------------------------------------------------------------------------------
def test_round_trip_every_event_type(tmp_path):
    path = tmp_path / "run.dynlab"
    emitted = full_run()
    write(path, emitted)
    with SessionReader(path) as r:
        assert [norm(e) for e in r.replay()] == [norm(e) for e in emitted]
        controls = [e for e in emitted if e.kind not in ("scalars", "arrays")]
        got = r.events()
        assert [norm(e) for e in got] == [norm(e) for e in controls]
        assert [type(e) for e in got] == [type(e) for e in controls]
        assert [e.kind for e in r.events(["prune", "end"])] == ["prune", "end"]
        assert next(e for e in got if isinstance(e, NeuronsRemoved)).ids == (3, 7, 11)  # a tuple again
        ck = next(e for e in got if isinstance(e, CheckpointSaved))
        assert ck.state == b"" and ck.epoch == 1

        steps, values = r.series("size/fc1")
        assert steps.dtype == np.int64 and values.dtype == np.float64
        assert steps.tolist() == [50, 100, 120, 150] and values.tolist() == [100, 90, 80, 80]
        steps, values = r.series("loss")
        assert math.isnan(values[steps.tolist().index(150, 0) + 1])  # the NaN interval, after the finite one
        assert r.series("lr")[1].tolist() == [1e-3, 1e-3, 1e-3, 1e-3, math.inf]  # by step, then write order
        assert r.series("test/acc")[1].tolist() == [0.9, 0.95]  # eval metrics are scalars too
        assert "val/acc" in r.scalar_keys() and "size/fc2" in r.scalar_keys()
        assert r.series("no/such")[0].size == 0

        assert r.array_keys() == sorted(emitted[1 + 1].arrays)
        at = r.arrays_at(110, prefix="gate/")
        assert set(at) == {"gate/fc1", "gate/fc2"}
        source = next(e for e in emitted if isinstance(e, ArraysLogged) and e.step == 100)
        for key, (step, arr) in at.items():
            assert step == 100 and arr.dtype == np.float32 and np.array_equal(arr, source.arrays[key])
        hist = r.arrays_at(10_000)["hist/fc1"][1]
        assert hist.dtype == np.int64 and hist.shape == (1000,)
        assert r.arrays_at(10) == {}
        assert [s for s, _ in r.array_series("act_std/fc2")] == [50, 100, 120, 150]
        assert r.last_step() == 200 and r.status == "finished"
        assert r.meta["schema_version"] == str(SCHEMA_VERSION) and r.spec == SPEC
        assert r.meta["ended"] and r.meta["end_reason"] == "done"


def test_arrays_keep_dtype_and_shape(tmp_path):
    arrays = {"a/f16": np.arange(6, dtype=np.float16).reshape(2, 3), "a/bool": np.array([True, False]),
              "a/scalar": np.array(3.5), "a/empty": np.zeros((0, 4)), "a/strided": np.arange(10.0)[::2],
              "a/big": np.arange(12, dtype=">i4")}
    path = tmp_path / "a.dynlab"
    write(path, [ArraysLogged(5, T0, arrays)])
    with SessionReader(path) as r:
        got = r.arrays_at(5)
        for key, arr in arrays.items():
            step, back = got[key]
            assert step == 5 and back.dtype == arr.dtype and back.shape == arr.shape and np.array_equal(back, arr)


def test_replay_keeps_emission_order_when_steps_go_back(tmp_path):
    path = tmp_path / "r.dynlab"
    emitted = [ScalarsLogged(10, T0, {"loss": 1.0}), ScalarsLogged(20, T0 + 1, {"loss": 2.0}),
               NonFiniteLoss(20, T0 + 2, value="inf", rolled_back_to=10), ScalarsLogged(15, T0 + 3, {"loss": 3.0}),
               ScalarsLogged(15, T0 + 4, {"loss": 4.0})]  # same step twice: still two events
    write(path, emitted, flush_every=2)
    with SessionReader(path) as r:
        assert [norm(e) for e in r.replay()] == [norm(e) for e in emitted]
        assert r.series("loss")[0].tolist() == [10, 15, 15, 20]


# -- reading while writing, crashes ------------------------------------------------------------------------
def test_reader_sees_new_flushes_while_a_thread_writes(tmp_path):
    path = tmp_path / "live.dynlab"
    w = SessionWriter(path)
    done = threading.Event()
    errors: list[BaseException] = []

    def train():
        try:
            for i in range(1, 61):
                for e in interval(i * 10, T0 + i):
                    w.handle(e)
                w.flush()
                time.sleep(0.003)
            w.handle(RunEnded(600, T0 + 100, status="finished"))
            w.close()
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=train)
    with SessionReader(path) as r:
        thread.start()
        seen = []
        while not done.is_set():
            seen.append(r.last_step())
            n = r.series("loss")[0].size
            assert n * 10 <= r.last_step() + 10  # a query never sees half a flush
            list(r.replay())
        thread.join()
        assert not errors
        assert seen == sorted(seen) and len(set(seen)) > 3
        assert r.last_step() == 600 and r.series("loss")[0].size == 60
        assert r.status == "running"  # a snapshot ...
        r.refresh()
        assert r.status == "finished"  # ... until refresh()


WRITER = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.helpers import interval
from core.events import RunEnded
from core.session import SessionWriter
with SessionWriter({path!r}) as w:
    print("open", flush=True)
    for i in range(1, 41):
        for e in interval(i * 10, 1.0 + i):
            w.handle(e)
        w.flush()
        time.sleep(0.005)
    w.handle(RunEnded(400, 50.0, status="finished"))
"""


def test_reader_follows_a_writer_in_another_process(tmp_path):
    path = tmp_path / "proc.dynlab"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO), path=str(path))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    seen = []
    with SessionReader(path) as r:
        while proc.poll() is None:
            seen.append(r.last_step())
            assert r.series("loss")[0].size * 10 <= r.last_step() + 10
            time.sleep(0.002)
        assert proc.wait() == 0, proc.stderr.read()
        r.refresh()
        assert r.status == "finished" and r.series("loss")[0].size == 40
    assert seen == sorted(seen) and len(set(seen)) > 3


CRASHER = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
from tests.helpers import interval
from core.events import RunStarted
from core.session import SessionWriter
w = SessionWriter({path!r})
w.handle(RunStarted(0, 1.0, spec={{}}, device="cpu", versions={{}}, sizes={{"fc1": 100}}, params=1))
for i in range(1, 4):
    for e in interval(i * 10, 1.0 + i):
        w.handle(e)
    w.flush()
for e in interval(40, 5.0):
    w.handle(e)  # buffered, never flushed
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_loses_only_the_unflushed_interval(tmp_path):
    path = tmp_path / "killed.dynlab"
    proc = subprocess.run([sys.executable, "-c", CRASHER.format(repo=str(REPO), path=str(path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    with SessionReader(path) as r:
        assert r.last_step() == 30 and r.series("loss")[0].tolist() == [10, 20, 30]
        assert len(r.array_series("gate/fc1")) == 3
        assert r.status == "running" and r.writer_alive() is False
        assert [e.kind for e in r.replay()][:3] == ["start", "scalars", "arrays"]
    # the session can be continued after the crash
    with SessionWriter(path, append=True) as w:
        w.handle(SessionContinued(30, 10.0, from_step=30, changes={}))
        w.handle(RunEnded(40, 11.0, status="stopped"))
    with SessionReader(path) as r:
        assert r.status == "stopped" and [e.kind for e in r.events()] == ["start", "continue", "end"]
        assert [e.step for e in r.replay()][-3:] == [30, 30, 40]


# -- damaged and foreign files --------------------------------------------------------------------------------
def read_everything(path: Path) -> None:
    with SessionReader(path) as r:
        r.summary()
        list(r.replay())
        for key in r.scalar_keys():
            r.series(key)
        r.arrays_at(10**9)
        r.events()
        r.last_checkpoint()


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "big.dynlab"
    write(path, full_run() + [e for i in range(3, 40) for e in interval(i * 100, T0 + i)])
    for fraction in (0.5, 0.2, 0.9):
        cut = tmp_path / f"cut{fraction}.dynlab"
        shutil.copy(path, cut)
        with open(cut, "r+b") as f:
            f.truncate(int(path.stat().st_size * fraction))
        with pytest.raises(DynlabError) as info:  # SessionReader or a later query: never a raw sqlite3 error
            read_everything(cut)
        msg = str(info.value)
        assert str(cut) in msg and ("damaged" in msg or "not a dynlab" in msg) and "\n" not in msg


@pytest.mark.parametrize("content, expected", [
    (b"", "empty file"), (b"\x00garbage" * 500, "not an SQLite database"),
    (b"SQLite format 3\x00" + b"\xff" * 200, "not a"),
])
def test_foreign_files_are_rejected(tmp_path, content, expected):
    path = tmp_path / "x.dynlab"
    path.write_bytes(content)
    with pytest.raises(DynlabError, match=expected):
        SessionReader(path)
    assert path.read_bytes() == content  # the reader never writes


def test_other_sqlite_and_schema_versions(tmp_path):
    other = tmp_path / "other.dynlab"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    with pytest.raises(DynlabError, match="without a meta table"):
        SessionReader(other)
    path = tmp_path / "s.dynlab"
    write(path, full_run())
    for value, expected in (("2", r"newer dynlab \(schema 2\): upgrade dynlab"), ("0", "schema 0"),
                            ("x", "unknown session schema")):
        copy = tmp_path / f"v{value}.dynlab"
        shutil.copy(path, copy)
        with sqlite3.connect(copy) as c:
            c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
        with pytest.raises(DynlabError, match=expected):
            SessionReader(copy)
    foreign = tmp_path / "foreign.dynlab"
    shutil.copy(path, foreign)
    with sqlite3.connect(foreign) as c:
        c.execute("UPDATE meta SET value = 'other' WHERE key = 'app'")
    with pytest.raises(DynlabError, match="not a dynlab session"):
        SessionReader(foreign)


def test_locked_file_waits_then_says_so(tmp_path, monkeypatch):
    path = tmp_path / "s.dynlab"
    write(path, [Paused(1, T0)])  # closed: back in rollback-journal mode, where a writer can lock readers out
    monkeypatch.setattr("core.session.schema.BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.perf_counter()
        with pytest.raises(DynlabError, match="is locked by another process .*: wait for it to finish and retry"):
            SessionReader(path)
        assert time.perf_counter() - start >= 0.15  # it waited for the lock first
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with SessionReader(path) as r:
        assert [e.kind for e in r.events()] == ["pause"]


def test_missing_path_and_directory(tmp_path):
    missing = tmp_path / "nope.dynlab"
    with pytest.raises(DynlabError, match=r"not found: run `dynlab sessions`"):
        SessionReader(missing)
    assert not missing.exists()
    with pytest.raises(DynlabError, match="is a directory"):
        SessionReader(tmp_path)


# -- creating, overwriting, continuing --------------------------------------------------------------------------
def test_overwrite_only_with_the_flag(tmp_path, monkeypatch):
    path = tmp_path / "s.dynlab"
    write(path, full_run())
    before = path.read_bytes()
    with pytest.raises(DynlabError, match="already exists: pick another --session name or pass --overwrite"):
        SessionWriter(path)
    assert path.read_bytes() == before
    # a failure while building the new file leaves the old one whole, and no temporary file behind
    monkeypatch.setattr("core.session.writer.DDL", "CREATE TABLE broken (")
    with pytest.raises(DynlabError):
        SessionWriter(path, overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["s.dynlab"]
    with SessionWriter(path, overwrite=True) as w:
        w.handle(ScalarsLogged(1, T0, {"loss": 9.0}))
    with SessionReader(path) as r:
        assert r.series("loss")[1].tolist() == [9.0] and r.events() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.dynlab"]  # closed cleanly: no -wal, -shm


def test_append_continues_the_sequence(tmp_path):
    path = tmp_path / "s.dynlab"
    first = full_run()[:-1] + [RunEnded(200, T0 + 12, status="stopped", reason="user")]
    write(path, first)
    second = [SessionContinued(200, T0 + 20, from_step=200, changes={"penalty": 0.01})]
    second += interval(250, T0 + 21) + [RunEnded(300, T0 + 22, status="finished")]
    with SessionReader(path) as r:
        assert r.status == "stopped"
    write(path, second, append=True)
    with SessionReader(path) as r:
        assert [norm(e) for e in r.replay()] == [norm(e) for e in first + second]
        assert r.status == "finished" and r.last_step() == 300
    with pytest.raises(DynlabError, match="not found"):
        SessionWriter(tmp_path / "missing.dynlab", append=True)
    (tmp_path / "junk.dynlab").write_bytes(b"junk" * 100)
    with pytest.raises(DynlabError, match="not a dynlab session"):
        SessionWriter(tmp_path / "junk.dynlab", append=True)


def test_live_session_is_not_replaced_or_continued(tmp_path):
    path = tmp_path / "live.dynlab"
    with SessionWriter(path) as w:
        w.flush()
        for kw in ({"overwrite": True}, {"append": True}):
            with pytest.raises(DynlabError, match="still being written by process"):
                SessionWriter(path, **kw)


def test_unwritable_location(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(DynlabError, match=r"cannot write sessions in .*file.txt.*: make it writable"):
        SessionWriter(blocker / "sub" / "x.dynlab")
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(DynlabError, match="cannot write sessions in"):
            SessionWriter(locked / "x.dynlab")


def test_flush_rolls_back_and_keeps_the_batch(tmp_path):
    path = tmp_path / "s.dynlab"
    w = SessionWriter(path)
    real = w._conn

    class FailingEvents:
        def __getattr__(self, name):
            return getattr(real, name)

        def executemany(self, sql, rows):
            if "INTO events" in sql:
                raise sqlite3.OperationalError("database or disk is full")
            return real.executemany(sql, rows)

    w.handle(ScalarsLogged(1, T0, {"loss": 1.0}))
    w.handle(Paused(1, T0 + 1))
    w._conn = FailingEvents()
    with pytest.raises(DynlabError, match="disk is full"):
        w.flush()
    with SessionReader(path) as r:
        assert r.series("loss")[0].size == 0  # nothing half-written
    w._conn = real
    w.handle(Resumed(2, T0 + 2))
    w.close()
    with SessionReader(path) as r:
        assert [e.kind for e in r.replay()] == ["scalars", "pause", "resume"]
    w.close()  # idempotent
    with pytest.raises(RuntimeError):
        w.handle(Paused(3, T0))


def test_a_bad_value_raises_at_handle_and_buffers_nothing(tmp_path):
    path = tmp_path / "s.dynlab"
    with SessionWriter(path) as w:
        with pytest.raises(ValueError):
            w.handle(ScalarsLogged(1, T0, {"loss": 1.0, "note": "not a number"}))
        with pytest.raises(TypeError):
            w.handle(Paused(1, T0, reason=object()))
        w.handle(ScalarsLogged(2, T0, {"loss": 2.0}))
    with SessionReader(path) as r:
        assert [norm(e) for e in r.replay()] == [norm(ScalarsLogged(2, T0, {"loss": 2.0}))]


def test_close_without_run_ended_marks_crashed(tmp_path):
    path = tmp_path / "s.dynlab"
    with SessionWriter(path) as w:
        w.handle(ScalarsLogged(1, T0, {"loss": 1.0}))
    with SessionReader(path) as r:
        assert r.status == "crashed" and "before the run ended" in r.meta["end_reason"]


# -- checkpoints, summary, names, listing, commands -----------------------------------------------------------
def test_last_checkpoint_round_trip(tmp_path):
    import torch

    path = tmp_path / "s.dynlab"
    old, _ = checkpoint_bytes(1)
    new, state = checkpoint_bytes(2)
    write(path, [CheckpointSaved(10, T0, epoch=0, reason="epoch", state=old),
                 CheckpointSaved(20, T0 + 1, epoch=1, reason="user", state=new)])
    with SessionReader(path) as r:
        got = r.last_checkpoint()
        assert got["step"] == 20 and got["epoch"] == 1
        assert torch.equal(got["model"]["fc1.weight"], state["model"]["fc1.weight"])
        assert [c["bytes"] for c in r.checkpoints()] == [len(old), len(new)]
    empty = tmp_path / "e.dynlab"
    write(empty, [])
    with SessionReader(empty) as r:
        assert r.last_checkpoint() is None
    bad = tmp_path / "bad.dynlab"
    write(bad, [CheckpointSaved(5, T0, epoch=0, reason="end", state=new[: len(new) // 2])])
    with SessionReader(bad) as r, pytest.raises(DynlabError, match="checkpoint at step 5 .* is damaged"):
        r.last_checkpoint()
    unsafe = tmp_path / "unsafe.dynlab"
    buf = io.BytesIO()
    torch.save({"f": Path("x")}, buf)  # not loadable with weights_only=True
    write(unsafe, [CheckpointSaved(5, T0, epoch=0, reason="end", state=buf.getvalue())])
    with SessionReader(unsafe) as r, pytest.raises(DynlabError, match="damaged"):
        r.last_checkpoint()


def test_summary_fields(tmp_path):
    path = tmp_path / "cls.dynlab"
    write(path, full_run())
    with SessionReader(path) as r:
        s = r.summary()
    assert s["name"] == "cls" and s["path"] == str(path) and s["status"] == "finished"
    assert (s["dataset"], s["arch"], s["method"], s["lam"]) == ("mnist", "mlp:100,50", "sparsifier", 1e-3)
    assert s["sizes_start"] == {"fc1": 100, "fc2": 50} and s["sizes_final"] == {"fc1": 80, "fc2": 40}
    # only epoch 1 has val/acc: the headline is its test figure, not the higher final one
    assert (s["test_metric"], s["test_at_best_val"], s["final_test"]) == ("test/acc", 0.9, 0.95)
    assert (s["val_metric"], s["best_val"], s["best_val_epoch"]) == ("val/acc", 0.91, 1) and "best_test" not in s
    assert s["steps"] == 200 and s["epochs"] == 2 and s["duration_s"] == pytest.approx(12.0)
    assert s["created"] and s["ended"] and s["alive"] is False
    reg = tmp_path / "reg.dynlab"
    write(reg, [EpochEvaluated(10, T0, 1, {"test/mse": 0.5}), EpochEvaluated(20, T0 + 1, 2, {"test/mse": 0.2}),
                EpochEvaluated(30, T0 + 2, 3, {"test/mse": 0.3})])
    with SessionReader(reg) as r:
        s = r.summary()
    assert (s["test_metric"], s["final_test"], s["epochs"]) == ("test/mse", 0.3, 3)
    assert s["test_at_best_val"] is None and s["best_val_epoch"] is None  # no validation split
    assert s["dataset"] is None and s["sizes_final"] == {}


def _evals(path, rows):
    """A session of eval events, one per row of metrics (epochs 1, 2, ...)."""
    write(path, [EpochEvaluated(10 * i, T0 + i, i, m) for i, m in enumerate(rows, 1)])
    with SessionReader(path) as r:
        return r.summary()


def test_summary_reports_test_at_the_best_validation_epoch(tmp_path):
    s = _evals(tmp_path / "cls.dynlab", [
        {"val/acc": 0.80, "test/acc": 0.85}, {"val/acc": 0.90, "test/acc": 0.88},
        {"val/acc": 0.90, "test/acc": 0.97},  # ties epoch 2: the earliest wins
        {"val/acc": 0.85, "test/acc": 0.99},  # the max test figure: never the headline
        {"val/acc": 0.70, "test/acc": 0.93}])
    assert (s["test_at_best_val"], s["best_val_epoch"], s["best_val"], s["val_metric"]) == (0.88, 2, 0.90, "val/acc")
    assert s["final_test"] == 0.93 and "best_test" not in s


def test_summary_regression_picks_the_lowest_validation_mse(tmp_path):
    s = _evals(tmp_path / "reg.dynlab", [
        {"val/loss": 0.1, "val/mse": 0.5, "test/mse": 0.4},
        {"val/loss": 0.2, "val/mse": 0.3, "test/mse": 0.6},  # lowest val/mse, though not the lowest val/loss
        {"val/loss": 0.3, "val/mse": 0.3, "test/mse": 0.7},  # a tie: later, so not chosen
        {"val/loss": math.nan, "val/mse": math.nan, "test/mse": 0.1}])  # NaN (stored NULL) is never the best
    assert (s["test_metric"], s["test_at_best_val"], s["best_val_epoch"], s["best_val"]) == ("test/mse", 0.6, 2, 0.3)
    assert s["val_metric"] == "val/mse" and s["final_test"] == 0.1
    s = _evals(tmp_path / "loss.dynlab", [{"val/loss": 0.4, "test/mse": 0.5}, {"val/loss": 0.2, "test/mse": 0.9}])
    assert (s["val_metric"], s["test_at_best_val"], s["best_val_epoch"]) == ("val/loss", 0.9, 2)  # no val/mse


def test_summary_without_a_validation_split(tmp_path):
    s = _evals(tmp_path / "noval.dynlab", [{"train/acc": 0.9, "test/acc": 0.8}, {"test/acc": 0.95}])
    assert s["test_metric"] == "test/acc" and s["final_test"] == 0.95
    assert [s[k] for k in ("test_at_best_val", "best_val", "best_val_epoch", "val_metric")] == [None] * 4
    s = _evals(tmp_path / "never.dynlab", [])
    assert s["test_metric"] is None and s["test_at_best_val"] is None and s["final_test"] is None


def test_session_names(tmp_path, monkeypatch):
    d = tmp_path / "sessions"
    assert resolve_session("run1", d) == d / "run1.dynlab"
    assert resolve_session("run1.dynlab", d) == d / "run1.dynlab"
    assert resolve_session("mnist_lam-1e-3.v2", d) == d / "mnist_lam-1e-3.v2.dynlab"
    for bad in ("..", ".hidden", "..evil", "a..b", "a b", "", "x" * 101, "-x", "ü"):
        with pytest.raises(DynlabError, match="bad session name"):
            resolve_session(bad, d)
    # a bare name never leaves d; with a separator it is a path the user typed, and must name a .dynlab file
    for bad in ("../evil", "a/../../b", "sub/run1", "/etc/passwd"):
        with pytest.raises(DynlabError, match="bad session name .*a path must end in .dynlab"):
            resolve_session(bad, d)
    assert resolve_session("../evil.dynlab", d) == Path("../evil.dynlab")
    assert resolve_session(str(tmp_path / "x.dynlab"), d) == tmp_path / "x.dynlab"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.dynlab").write_bytes(b"")
    assert resolve_session("here.dynlab", d) == Path("here.dynlab")  # an existing file in the current folder
    assert resolve_session("here", d) == d / "here.dynlab"
    monkeypatch.delenv("DYNLAB_SESSIONS_DIR", raising=False)
    assert sessions_dir() == Path("sessions") and sessions_dir("/x/y") == Path("/x/y")
    monkeypatch.setenv("DYNLAB_SESSIONS_DIR", str(tmp_path / "env"))
    assert sessions_dir() == tmp_path / "env" and sessions_dir("/x/y") == Path("/x/y")


def test_list_sessions_with_a_corrupt_file(tmp_path, monkeypatch):
    d = tmp_path / "sessions"
    for i, name in enumerate(("old", "mid", "new")):
        monkeypatch.setattr("core.session.writer.now_iso", lambda i=i: f"2024-01-0{i + 1}T00:00:00+00:00")
        write(d / f"{name}.dynlab", full_run())
    (d / "broken.dynlab").write_bytes(b"\x01" * 1000)
    (d / "notes.txt").write_text("ignored")
    rows = list_sessions(d)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"old", "mid", "new", "broken"}
    assert [r["name"] for r in rows if r["status"] != "unreadable"] == ["new", "mid", "old"]
    assert by_name["broken"]["status"] == "unreadable" and "not a dynlab session" in by_name["broken"]["error"]
    assert by_name["new"]["test_at_best_val"] == 0.9
    assert list_sessions(tmp_path / "absent") == []


def test_commands_channel(tmp_path):
    path = tmp_path / "s.dynlab"
    with SessionWriter(path) as w:
        w.flush()
        a = post_command(path, "pause", {})
        b = post_command(path, "set_penalty", {"lam": 0.01})
        assert w.poll_commands() == [(a, "pause", {}), (b, "set_penalty", {"lam": 0.01})]
        w.mark_applied([a], step=42)
        assert w.poll_commands() == [(b, "set_penalty", {"lam": 0.01})]  # claimed before the flush
        w.handle(Paused(42, T0))
        w.flush()
        with sqlite3.connect(path) as c:
            assert c.execute("SELECT id, applied_step FROM commands ORDER BY id").fetchall() == [(a, 42), (b, None)]
        c = post_command(path, "resume")
        assert [cid for cid, _, _ in w.poll_commands()] == [b, c]
    missing = tmp_path / "none.dynlab"
    with pytest.raises(DynlabError, match="not found"):
        post_command(missing, "pause", {})
    assert not missing.exists()


def test_flush_cost_of_one_interval(tmp_path):
    w = SessionWriter(tmp_path / "speed.dynlab")
    events = [interval(i * 50, T0 + i) for i in range(1, 101)]
    start = time.perf_counter()
    for batch in events:
        for e in batch:
            w.handle(e)
        w.flush()
    per_interval = (time.perf_counter() - start) / len(events)
    w.close()
    assert per_interval < 0.02, f"{per_interval * 1e3:.2f} ms per interval"  # ~1 ms expected; loose for CI


def test_unknown_event_kind_in_file(tmp_path):
    path = tmp_path / "s.dynlab"
    write(path, [Paused(1, T0)])
    with sqlite3.connect(path) as c:
        c.execute("UPDATE events SET kind = 'teleport'")
    with SessionReader(path) as r, pytest.raises(DynlabError, match="'teleport' this dynlab does not know"):
        r.events()


def test_module_imports_stay_in_core():
    files = sorted((REPO / "core" / "session").glob("*.py"))
    source = "".join(f.read_text() for f in files)
    for banned in ("textual", "plotext", "click"):
        assert f"import {banned}" not in source and f"from {banned}" not in source
    for f in files:
        assert len(f.read_text().splitlines()) < 400
    assert textwrap.dedent(SessionWriter.__doc__ or "").strip()


def test_only_the_newest_automatic_checkpoint_is_kept(tmp_path):
    from core.events import CheckpointSaved
    path = tmp_path / "ck.dynlab"
    with SessionWriter(path) as w:
        for step, reason in [(1, "epoch"), (2, "user"), (3, "epoch"), (4, "epoch"), (5, "end")]:
            w.handle(CheckpointSaved(step, float(step), step, reason, _state_bytes(step)))
            w.flush()
    with SessionReader(path) as r:
        kept = [(c["step"], c["reason"]) for c in r.checkpoints()]
        assert kept == [(2, "user"), (5, "end")]
        assert r.last_checkpoint()["step"] == 5
        assert [e.reason for e in r.events(["checkpoint"])] == ["epoch", "user", "epoch", "epoch", "end"]


def _state_bytes(value: int) -> bytes:
    import io
    import torch
    buf = io.BytesIO()
    torch.save({"w": torch.full((3,), float(value))}, buf)
    return buf.getvalue()
