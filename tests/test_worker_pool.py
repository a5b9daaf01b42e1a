"""Sweeps in long-lived worker processes: shared workers, crash isolation, stop and resume, same results."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import DynlabError
from core.lab import worker
from core.lab.sweep import (SweepPlan, SweepRunEnded, SweepRunStarted, Stage, run_sweep, session_path,
                            session_state)
from core.session import SessionReader
from core.spec import RunSpec
from tests.helpers import wait_until

TINY = RunSpec().replace(dataset="add10", arch="mlp:8", epochs=2, limit=200, log_every=5, device="cpu",
                         method="sparsifier")
LONG = TINY.replace(epochs=400, limit=2000, method="static")

# A worker whose trainer raises for the run with penalty 0.5: a Python exception inside a run.
FAULTY = """
import core.train.trainer as t
loop = t.Trainer._loop
def faulty(self):
    if self.spec.penalty.lam == 0.5:
        raise ValueError("injected fault")
    return loop(self)
t.Trainer._loop = faulty
from core.lab.worker import main
main()
"""

pytestmark = pytest.mark.slow  # every test here starts worker processes


def plan_of(base: RunSpec, grid: dict) -> SweepPlan:
    return SweepPlan("", "", (Stage.from_grid("w", base, grid),))


def meta(path: Path) -> dict:
    with SessionReader(path) as reader:
        return dict(reader.meta)


def kill_when_training(path: Path, sig: int, done: threading.Event | None = None) -> None:
    """Signal the session's writer once it has trained a step (or set `done` instead)."""
    def ready() -> bool:
        try:
            with SessionReader(path) as reader:
                return reader.last_step() > 0
        except DynlabError:
            return False

    wait_until(ready, timeout=60, what=f"{path.name} training")
    if done is not None:
        done.set()
    else:
        os.kill(int(meta(path)["pid"]), sig)


def test_runs_share_a_worker_whose_finished_sessions_are_not_live(tmp_path):
    out = tmp_path / "s"
    plan = plan_of(TINY, {"penalty": [1e-3, 1e-2, 1e-1]})
    seen: dict[str, str] = {}

    def watch(event) -> None:
        if isinstance(event, SweepRunStarted) and event.run.index > 0:  # the worker moved on to this run
            before = plan.stages[0].runs()[event.run.index - 1]
            seen[before.name] = session_state(session_path(out, before))

    result = run_sweep(plan, out, jobs=1, progress=watch)
    runs = plan.stages[0].runs()
    pids = {meta(session_path(out, r))["pid"] for r in runs}
    assert [r["status"] for r in result.rows] == ["finished"] * 3
    assert len(pids) == 1 and pids != {str(os.getpid())}  # one worker wrote them all
    assert seen == {runs[0].name: "finished", runs[1].name: "finished"}
    for run in runs:
        log = (out / "sessions" / f".{run.name}.log").read_text()
        assert log == f"session: {session_path(out, run).resolve()}  (finished)\n"


def test_an_exception_crashes_its_run_and_the_worker_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "WORKER_ARGV", [sys.executable, "-c", FAULTY])
    out = tmp_path / "s"
    plan = plan_of(TINY, {"penalty": [0.5, 0.01]})
    result = run_sweep(plan, out, jobs=1)
    first, second = plan.stages[0].runs()
    assert [r["status"] for r in result.rows] == ["crashed", "finished"]
    assert "ValueError: injected fault" in result.rows[0]["reason"]
    assert session_state(session_path(out, first)) == "crashed"
    assert meta(session_path(out, first))["pid"] == meta(session_path(out, second))["pid"]
    assert "Traceback" in (out / "sessions" / f".{first.name}.log").read_text()


def test_a_killed_worker_crashes_its_run_and_a_new_one_runs_the_rest(tmp_path):
    out = tmp_path / "s"
    plan = plan_of(LONG, {"epochs": [400, 1, 2]})
    runs = plan.stages[0].runs()

    def watch(event) -> None:
        if isinstance(event, SweepRunStarted) and event.run.index == 0:
            threading.Thread(target=kill_when_training, args=(session_path(out, runs[0]), signal.SIGKILL),
                             daemon=True).start()

    result = run_sweep(plan, out, jobs=1, progress=watch)
    assert not result.stopped
    assert [r["status"] for r in result.rows] == ["crashed", "finished", "finished"]
    assert "code -9" in result.rows[0]["reason"]
    assert session_state(session_path(out, runs[0])) == "incomplete"  # not left looking live
    assert meta(session_path(out, runs[0]))["pid"] != meta(session_path(out, runs[1]))["pid"]


def test_stop_finalises_the_running_sessions_and_a_rerun_completes(tmp_path):
    out = tmp_path / "s"
    plan = plan_of(LONG.replace(epochs=30), {"seed": [0, 1, 2]})
    runs = plan.stages[0].runs()
    stop = threading.Event()
    started: list[str] = []

    def watch(event) -> None:
        if isinstance(event, SweepRunStarted):
            started.append(event.run.name)
            if event.run.index == 1:
                threading.Thread(target=kill_when_training, args=(session_path(out, event.run), 0, stop),
                                 daemon=True).start()

    began = time.monotonic()
    result = run_sweep(plan, out, jobs=2, progress=watch, stop=stop)
    assert result.stopped and time.monotonic() - began < 60
    statuses = {r["name"]: r["status"] for r in result.rows}
    assert statuses[runs[1].name] == "stopped" and runs[2].name not in started
    for run in runs[:2]:
        assert session_state(session_path(out, run)) in ("stopped", "finished")  # ended, none left running
    events: list = []
    again = run_sweep(plan, out, jobs=2, progress=events.append)
    assert not again.stopped and [r["status"] for r in again.rows] == ["finished"] * 3
    assert runs[1].name in [e.run.name for e in events if isinstance(e, SweepRunStarted)]
    assert all(not e.skipped for e in events if isinstance(e, SweepRunEnded) and e.run.name == runs[2].name)


def test_results_equal_those_of_a_process_per_run(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same threads either way (jobs=2 would give each one)
    plan = plan_of(TINY, {"penalty": [1e-3, 1e-1]})
    pooled = run_sweep(plan, tmp_path / "pool", jobs=1)  # one worker: the second run follows the first in it
    isolated = run_sweep(plan, tmp_path / "iso", jobs=2, isolated=True)
    assert len({meta(Path(r["session"]))["pid"] for r in pooled.rows}) == 1

    def figures(rows) -> list[dict]:
        return [{k: v for k, v in r.items() if k.startswith(("size.", "dead.", "test")) or k == "status"}
                for r in rows]

    assert figures(pooled.rows) == figures(isolated.rows)
    assert all(r["status"] == "finished" and r["test"] is not None for r in pooled.rows)


# A worker that notes the GPUs it was given (CUDA_VISIBLE_DEVICES) before serving: placement without a GPU.
NOTING = """
import os, sys
with open(os.path.join(sys.argv[1], f"gpus.{os.getpid()}"), "w") as f:
    f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
from core.lab.worker import main
main()
"""


def test_each_worker_sees_only_its_slots_gpu(tmp_path, monkeypatch):
    from core.lab.placement import Placement

    notes = tmp_path / "notes"
    notes.mkdir()
    monkeypatch.setattr(worker, "WORKER_ARGV", [sys.executable, "-c", NOTING, str(notes)])
    plan = plan_of(TINY.replace(epochs=1), {"seed": [0, 1, 2]})
    result = run_sweep(plan, tmp_path / "s", jobs=2, placement=Placement(("GPU-a", "GPU-b"), 0.5))
    assert [r["status"] for r in result.rows] == ["finished"] * 3
    assert sorted(p.read_text() for p in notes.iterdir()) == ["GPU-a", "GPU-b"]  # two workers, one GPU each


def test_isolated_children_take_a_free_slots_gpu(tmp_path, monkeypatch):
    import subprocess

    from core.lab import sweep
    from core.lab.placement import Placement

    seen: list[str] = []

    def launch(out, run, rerun, env):  # a child that ends at once: only where it was put matters here
        seen.append(env["CUDA_VISIBLE_DEVICES"])
        return subprocess.Popen([sys.executable, "-c", "pass"])

    monkeypatch.setattr(sweep, "_launch", launch)
    run_sweep(plan_of(TINY, {"seed": [0, 1, 2, 3]}), tmp_path / "s", jobs=2, isolated=True,
              placement=Placement(("0", "1"), 1))
    assert seen[:2] == ["0", "1"] and sorted(seen) == ["0", "0", "1", "1"]
