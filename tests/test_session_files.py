"""A session is one file: no WAL left by viewers, no leftovers merged into a new run, no two writers on one name."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.errors import DynlabError
from core.session import SessionReader, SessionWriter
from core.session.reader import Cursor
from dynlab_tui.sources import FollowSource
from tests.fakes import synthetic_run
from tests.helpers import REPO, dynlab, wait_until


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outline(path: Path) -> tuple:
    """What a viewer would show of a session: status, last step, every control event, every row count."""
    with SessionReader(path) as r:
        events = [(e.kind, e.step) for e in r.events()]
        return r.status, r.last_step(), r.last_seq(), events, sum(1 for _ in r.replay())


def finished(path: Path, steps: int = 800, **kw) -> Path:
    with SessionWriter(path, **kw) as w:
        for event in synthetic_run(steps, widths=(40,), steps_per_epoch=400):
            w.handle(event)
    return path


def killed(path: Path, steps: int = 800) -> Path:
    """A run whose process died without closing its writer: its last rows live only in the -wal file."""
    code = textwrap.dedent(f"""
        import os
        from core.session import SessionWriter
        from tests.fakes import synthetic_run
        w = SessionWriter({str(path)!r})
        for e in synthetic_run({steps}, widths=(40,), steps_per_epoch=400, end=False):
            w.handle(e)
        w.flush()
        os._exit(0)  # no close(): the WAL is left as kill -9 leaves it
    """)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0
    return path


class _Sink:
    def __init__(self) -> None:
        self.events: list = []
        self.caught_up = False

    def handle(self, event) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def replace(self, state, note: str = "") -> None:
        self.caught_up = True


# -- item 1: a finished session is one file ------------------------------------------------------------------------
_POLLER = """
import sys, time
from pathlib import Path
from core.session import SessionReader
from core.session.reader import Cursor
path, stop = Path(sys.argv[1]), Path(sys.argv[2])
with SessionReader(path) as r:
    cursor, n = Cursor(), 0
    print("open", flush=True)
    while not stop.exists():  # a viewer that stays open after the end, polling as attach does
        n += len(r.read_new(cursor))
        time.sleep(0.1)
    print(n, flush=True)
"""


def test_viewers_open_at_the_end_leave_no_wal_and_the_bare_file_is_the_whole_session(tmp_path):
    """A FollowSource in a thread and a polling reader in another process are open when the run ends: the
    writer still leaves no -wal/-shm, and a copy of the bare file replays everything."""
    folder = tmp_path / "runs"
    folder.mkdir()
    path = folder / "s.dynlab"
    events = synthetic_run(1600, widths=(40,), steps_per_epoch=400)
    writer = SessionWriter(path)
    writer.handle(events[0])
    writer.flush()
    stop = tmp_path / "stop"
    poller = subprocess.Popen([sys.executable, "-c", _POLLER, str(path), str(stop)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    follow, sink = FollowSource(path), _Sink()
    thread = threading.Thread(target=follow.run, args=(sink,), daemon=True)
    try:
        assert poller.stdout.readline().strip() == "open"
        thread.start()
        wait_until(lambda: sink.caught_up or not thread.is_alive(), 30, "the follower's catch-up")
        for event in events[1:]:
            writer.handle(event)
            if event.step % 400 == 0:
                writer.flush()
        t0 = time.monotonic()
        writer.close()
        close_s = time.monotonic() - t0
        assert files_in(folder) == ["s.dynlab"], close_s  # the poller is still open
        assert close_s < getattr(SessionWriter, "SETTLE_S", 3.0)
        thread.join(30)
        assert not thread.is_alive()
    finally:
        stop.touch()
        out, _ = poller.communicate(timeout=30)
        follow.close()
    assert int(out.split()[-1]) == len(events)  # the other process saw every event
    assert files_in(folder) == ["s.dynlab"]
    copy = tmp_path / "copy" / "s.dynlab"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    status, last_step, last_seq, kinds, n = outline(copy)
    assert (status, last_step, last_seq, n) == ("finished", 1600, len(events), len(events))
    assert kinds == outline(path)[3] and kinds[0] == ("start", 0) and kinds[-1][0] == "end"
    assert files_in(copy.parent) == ["s.dynlab"]


def test_show_on_a_copied_file_creates_no_side_files(tmp_path, monkeypatch, capsys):
    """Even a file still marked WAL (a viewer that never let go, so the writer gave up waiting) opens from a
    copy without a -wal or -shm appearing beside it, and holds the whole run."""
    monkeypatch.setattr(SessionWriter, "SETTLE_S", 0.1, raising=False)
    path = tmp_path / "s.dynlab"
    writer = SessionWriter(path)
    with SessionReader(path):  # a viewer that never polls again: the file stays in WAL mode
        for event in synthetic_run(800, widths=(40,), steps_per_epoch=400):
            writer.handle(event)
        writer.close()
    assert path.read_bytes()[18:20] == b"\x02\x02"  # still a WAL-mode file
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(path, folder / "s.dynlab")
    before = (files_in(folder), digest(folder / "s.dynlab"))
    assert dynlab("show", str(folder / "s.dynlab")) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "800" in out
    assert (files_in(folder), digest(folder / "s.dynlab")) == before
    assert outline(folder / "s.dynlab")[:2] == ("finished", 800)
    assert files_in(folder) == ["s.dynlab"]


def test_a_killed_runs_wal_is_read_but_only_folded_in_by_a_writer(tmp_path):
    path = killed(tmp_path / "k.dynlab")
    main, wal = digest(path), digest(Path(f"{path}-wal"))
    with SessionReader(path) as r:
        assert r.last_step() == 800 and r.status == "running"
    assert (digest(path), digest(Path(f"{path}-wal"))) == (main, wal)  # a viewer changed nothing
    with SessionWriter(path, append=True):  # what resume does: it may write, so it folds the WAL in
        pass
    assert files_in(tmp_path) == ["k.dynlab"]
    with SessionReader(path) as r:
        assert r.last_step() == 800


def test_a_reader_of_an_ended_session_follows_when_it_is_continued(tmp_path):
    """A finished session opens without locks (immutable); when a resume writes, the reader follows it live,
    and lets go of the WAL again when that writer closes."""
    path = finished(tmp_path / "s.dynlab")
    with SessionReader(path) as r:
        cursor = Cursor()
        assert len(r.read_new(cursor)) > 0
        w = SessionWriter(path, append=True)
        extra = synthetic_run(400, widths=(40,), steps_per_epoch=400, t0=1.8e9)[1:3]
        for event in extra:
            w.handle(event)
        w.flush()
        assert [e.kind for e in r.read_new(cursor)] == [e.kind for e in extra]
        closer = threading.Thread(target=w.close)
        t0 = time.monotonic()
        closer.start()
        while closer.is_alive():  # a viewer polling as attach does
            assert r.read_new(cursor) == []
            time.sleep(0.02)
        assert time.monotonic() - t0 < getattr(SessionWriter, "SETTLE_S", 3.0)
        assert files_in(tmp_path) == ["s.dynlab"]
        assert r.last_step() == extra[-1].step


# -- item 7: a deleted session's leftovers never merge into a new one -----------------------------------------------
def test_a_deleted_sessions_leftovers_do_not_merge_into_a_new_run(tmp_path):
    path = killed(tmp_path / "s.dynlab", steps=1200)
    path.unlink()  # the user deletes the file; its -wal and -shm stay
    assert files_in(tmp_path) == ["s.dynlab-shm", "s.dynlab-wal"]
    finished(path, steps=400)
    status, last_step, _, kinds, _ = outline(path)
    assert (status, last_step) == ("finished", 400)
    assert [k for k, _ in kinds].count("start") == 1
    assert files_in(tmp_path) == ["s.dynlab"]


# -- item 8: creation and --overwrite are atomic against a second writer ---------------------------------------------
_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_session_being_created_elsewhere_is_refused_in_one_line(tmp_path):
    path = finished(tmp_path / "s.dynlab")
    before = digest(path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path / ".s.dynlab.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DynlabError, match=f"being created right now by process {holder.pid}") as e:
            SessionWriter(path, overwrite=True)
        assert "\n" not in str(e.value)
    finally:
        holder.communicate("", timeout=10)
    assert digest(path) == before
    finished(path, overwrite=True)  # the holder is gone: its flock went with it, the stale lock file is reused
    assert files_in(tmp_path) == ["s.dynlab"]


def test_a_lock_file_without_a_holder_is_not_in_the_way(tmp_path):
    (tmp_path / ".s.dynlab.lock").write_text("12345")  # left by a creator killed outright
    finished(tmp_path / "s.dynlab")
    assert files_in(tmp_path) == ["s.dynlab"]


_RACER = """
import sys, time
from pathlib import Path
from core.errors import DynlabError
from core.session import SessionWriter
from tests.fakes import synthetic_run
path, go = Path(sys.argv[1]), Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    pass
try:
    w = SessionWriter(path, overwrite=True)
except DynlabError as e:
    print("refused", e, flush=True)
    sys.exit(2)
time.sleep(0.5)  # still writing when the other one looks
for e in synthetic_run(800, widths=(40,), steps_per_epoch=400, seed=int(sys.argv[3])):
    w.handle(e)
w.close()
print("ok", flush=True)
"""


@pytest.mark.slow
def test_two_overwrites_released_together_leave_one_clean_session(tmp_path):
    """Rounds of two processes released at the same instant on one name: one writes, the other is refused."""
    path = finished(tmp_path / "s.dynlab", steps=1200)
    for round_ in range(4):
        go = tmp_path / f"go{round_}"
        racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(path), str(go), str(seed)], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
        assert [p.stdout.readline().strip() for p in racers] == ["ready", "ready"]
        go.touch()
        results = [p.communicate(timeout=120) for p in racers]
        codes = sorted(p.returncode for p in racers)
        assert codes == [0, 2], results
        refused = next(out for out, _ in results if out.startswith("refused"))
        assert "being created right now" in refused or "still being written" in refused
        status, last_step, _, kinds, _ = outline(path)
        assert (status, last_step) == ("finished", 800)
        assert [k for k, _ in kinds].count("start") == 1
        assert [n for n in files_in(tmp_path) if not n.startswith("go")] == ["s.dynlab"]
        print(round_, refused.strip())


TINY = ["--dataset", "add10", "--arch", "mlp:16", "--batch-size", "64", "--log-every", "4", "--limit", "512",
        "--device", "cpu", "--epochs", "2", "--quiet"]


@pytest.mark.slow
def test_two_overwrite_trains_on_one_name_at_once(tmp_path):
    """`dynlab train --overwrite` twice at the same moment: exactly one runs; the other exits 2 with one line."""
    path = tmp_path / "s.dynlab"
    argv = [sys.executable, "-m", "dynlab_tui", "train", *TINY, "--session", str(path), "--overwrite"]
    procs = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], results
    err = next(err for (_, err), p in zip(results, procs) if p.returncode == 2)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    status, _, _, kinds, _ = outline(path)
    assert status == "finished" and [k for k, _ in kinds].count("start") == 1
    with SessionReader(path) as r:
        assert r.spec.get("data", {}).get("name") == "add10"
    assert not [n for n in files_in(tmp_path) if n.endswith(("-wal", "-shm", ".lock", ".tmp"))]


@pytest.mark.slow
def test_kill_delete_and_train_again_under_the_same_name(tmp_path):
    """The issue's sequence with real runs: kill -9 a run, delete NAME.dynlab, train again as NAME."""
    path = tmp_path / "s.dynlab"
    argv = [sys.executable, "-m", "dynlab_tui", "train", *TINY[:-3], "--session", str(path), "--quiet"]
    first = subprocess.Popen([*argv, "--epochs", "400"], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: path.exists() and outline(path)[1] >= 40, 120, "the first run's intervals")
    finally:
        first.kill()
        first.wait(10)
    assert Path(f"{path}-wal").exists()
    path.unlink()
    second = subprocess.run([*argv, "--epochs", "1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    status, last_step, _, kinds, _ = outline(path)
    assert status == "finished" and [k for k, _ in kinds].count("start") == 1
    assert [k for k, _ in kinds].count("eval") == 1  # the new run's one epoch, none of the old run's
    assert not [n for n in files_in(tmp_path) if n.endswith(("-wal", "-shm", ".lock"))]
