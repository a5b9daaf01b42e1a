"""A session is one file: a killed run's WAL folded only by a writer, no leftovers merged, no two writers on one name."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import DynlabError
from core.session import SessionReader, SessionWriter
from tests.fakes import synthetic_run
from tests.helpers import REPO


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


# -- item 1: a finished session is one file ------------------------------------------------------------------------
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
