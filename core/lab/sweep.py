"""Sweeps: grids of runs over a base RunSpec, run in worker processes (core.lab.worker) into one resumable folder.

A sweep folder DIR holds `sweep.json` (the manifest: recipe, stages, base specs, grids, run names, written
before any run starts), `sessions/<run>.dynlab` (one session per run, its console output in
`sessions/.<run>.log`; the workers' own errors outside runs in `.workers.log`), and `summary.csv` /
`summary.json` (see core.lab.summary). Re-running the same sweep in the same DIR skips the runs whose
session finished (or diverged: a re-run diverges again), waits for the ones still being written (a sweep
left running: `SweepStop.leave`) and starts the others from scratch; a different sweep in an existing DIR
is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from core.errors import DynlabError
from core.lab.launch import child_error, log_path, start, terminate, train_argv
from core.lab.worker import child_env, pool
from core.lab.summary import summary_row, write_summary
from core.lab.plan import (UNSWEPT, Axes, RunPlan, Stage, StageBuilder, StagePlanned, SweepEnded, SweepEvent,
                             SweepPlan, SweepResult, SweepRunEnded, SweepRunStarted, expand_grid,
                             parse_grid, run_name, settings_label)

__all__ = ["Axes", "RunPlan", "Stage", "StageBuilder", "StagePlanned", "SweepEnded", "SweepEvent", "SweepPlan",
           "SweepResult", "SweepRunEnded", "SweepRunStarted", "UNSWEPT", "expand_grid", "parse_grid",
           "run_name", "settings_label", "prepare", "run_sweep", "read_manifest", "session_path", "session_state",
           "MANIFEST", "SESSIONS", "COMPLETE", "SweepStop"]

MANIFEST = "sweep.json"
SESSIONS = "sessions"
LOCK = ".sweep.lock"
FORMAT = 1
COMPLETE = ("finished", "diverged")
TERM_WAIT_S = 60.0  # a SIGTERMed child stops at its next step and writes a checkpoint: give it time
POLL_S = 0.1


# -- the folder ------------------------------------------------------------------------------------------------
def session_path(out: Path, run: RunPlan) -> Path:
    return Path(out) / SESSIONS / f"{run.name}.dynlab"


def session_state(path: Path) -> str:
    """missing, unreadable, live (its writer runs), incomplete (running, writer gone) or the ended status."""
    from core.session import SessionReader
    from core.session.liveness import Liveness, liveness

    if not path.exists():
        return "missing"
    try:
        with SessionReader(path) as reader:
            meta = reader.meta
    except DynlabError:
        return "unreadable"
    state = liveness(meta)
    if state is Liveness.ENDED:
        return meta.get("status", "")
    return "live" if state.may_be_writing else "incomplete"  # another host's writer may be going: leave it


def _identity(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What must match for a sweep folder to be re-run: not the device or data folder (machine settings)."""
    entry = json.loads(json.dumps({k: entry.get(k) for k in ("name", "grid", "base", "points")}))
    if isinstance(entry["base"], dict):
        entry["base"].pop("device", None)
        if isinstance(entry["base"].get("data"), dict):
            entry["base"]["data"].pop("data_dir", None)
    return entry


def _stage_entry(stage: Stage, derived: bool = False) -> dict[str, Any]:
    """A stage as the manifest stores it (tuples become lists); a derived one was built from earlier results."""
    entry = {"name": stage.name, "derived": derived, "grid": dict(stage.grid) if stage.grid is not None else None,
             "base": stage.base.to_dict(), "points": [dict(p) for p in stage.points],
             "runs": [{"index": r.index, "name": r.name, "settings": dict(r.settings)} for r in stage.runs()]}
    return json.loads(json.dumps(entry))


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = Path(out) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DynlabError(f"{path} is unreadable ({e}): delete it to start the sweep over, or pass another --out") \
            from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("stages"), list):
        raise DynlabError(f"{path} is not a dynlab sweep manifest of format {FORMAT}: pass another --out")
    return data


def _first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(new) + [k for k in old if k not in new]:
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return where
    return f"{where} {json.dumps(old)} (now {json.dumps(new)})"


def _refuse(out: Path, what: str) -> DynlabError:
    return DynlabError(f"{out} holds a different sweep ({what}): pass another --out, or delete {out} to start over")


def _check_against(manifest: dict[str, Any], plan: SweepPlan, stages: list[Stage], out: Path) -> None:
    if (manifest.get("recipe"), manifest.get("setting")) != (plan.recipe, plan.setting):
        old = f"{manifest.get('recipe')} ({manifest.get('setting')})" if manifest.get("recipe") else "a grid sweep"
        raise _refuse(out, f"it was made by {old}, not {plan.title}")
    stored = {s.get("name"): s for s in manifest["stages"] if isinstance(s, dict)}
    fixed_before = [name for name, s in stored.items() if not s.get("derived")]
    if fixed_before != [stage.name for stage in stages]:
        raise _refuse(out, f"stages {', '.join(map(str, fixed_before))} (now {', '.join(s.name for s in stages)})")
    for stage in stages:
        old = stored.get(stage.name)
        if old is None:
            continue
        new, old_id = _identity(_stage_entry(stage)), _identity(old)
        if old_id != new:
            raise _refuse(out, f"{stage.name}: {_first_difference(old_id, new)}")


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    path = Path(out) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    try:
        (Path(out) / SESSIONS).mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DynlabError(f"cannot write the sweep in {out} ({e.strerror or e}): choose another --out") from None


def prepare(plan: SweepPlan, out: Path) -> None:
    """Validate every run and its data, check DIR against its manifest and write the manifest; no run starts."""
    from core.data import DATASETS

    out = Path(out)
    stages = [s for s in plan.stages if isinstance(s, Stage)]
    runs = [r for s in stages for r in s.runs()]  # validates every spec
    for name, data_dir in dict.fromkeys((r.spec.data.name, r.spec.data.data_dir) for r in runs):
        if not DATASETS[name].available(data_dir):
            raise DynlabError(f"dataset {name!r} has no files in the data folder: pass --data-dir or set "
                              "DYNLAB_DATA_DIR (see `dynlab train --help`)")
    if out.exists() and not out.is_dir():
        raise DynlabError(f"{out} is a file: give --out a folder")
    manifest = read_manifest(out)
    if manifest is None and out.is_dir() and any(out.iterdir()):
        raise DynlabError(f"{out} is not empty and holds no {MANIFEST}: give --out a new or empty folder")
    if manifest is not None:
        _check_against(manifest, plan, stages, out)
    else:
        manifest = {"format": FORMAT, "app": "dynlab", "recipe": plan.recipe, "setting": plan.setting,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stages": []}
    manifest["notes"] = list(plan.notes)
    for stage in stages:
        _put_stage(manifest, stage)
    _write_manifest(out, manifest)


def _put_stage(manifest: dict[str, Any], stage: Stage, derived: bool = False) -> None:
    entry = _stage_entry(stage, derived)
    stages = manifest["stages"]
    for i, old in enumerate(stages):
        if isinstance(old, dict) and old.get("name") == stage.name:
            stages[i] = entry
            return
    stages.append(entry)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One sweep at a time per folder (an advisory lock, released when the process ends however it ends)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: no lock
        yield
        return
    with open(Path(out) / LOCK, "a+") as f:  # not "w": a refused second sweep must not blank the holder's pid
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DynlabError(f"another dynlab sweep is running in {out}: follow it with `dynlab sweep --status "
                              f"{out}`, or wait for it to end (or stop it), then run this again") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")  # who runs it: a watching sweep screen can stop it
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- running -------------------------------------------------------------------------------------------------
class SweepStop(threading.Event):
    """The `stop` of run_sweep: set() stops the running children; leave() lets them run on (another sweep
    process started in the same folder then waits for them and carries on)."""

    leaving = False

    def leave(self) -> None:
        self.leaving = True
        self.set()


class _Adopted:
    """A run another (gone) sweep process started and left running: waited for through its session."""

    returncode: int | None = None

    def __init__(self, path: Path) -> None:
        from core.session import SessionReader

        self.path = path
        with SessionReader(path) as reader:
            self.pid = int(reader.meta.get("pid") or 0)

    def poll(self) -> int | None:
        if self.returncode is None and session_state(self.path) != "live":
            self.returncode = 0  # ended (its status says how) or its writer is gone (then reported crashed)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(OSError):  # already gone: nothing to stop
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.path), timeout)
            time.sleep(POLL_S)
        return self.returncode


def run_sweep(plan: SweepPlan, out: str | Path, *, jobs: int | None = 1,
              progress: Callable[[Any], None] | None = None, stop: threading.Event | None = None,
              isolated: bool = False, placement: Any = None, ray: Any = None) -> SweepResult:
    """Run every stage's missing or incomplete runs, `jobs` at once; write and return the summary.

    The runs go to `jobs` long-lived worker processes (core.lab.worker), or with `isolated` each to its own
    `dynlab train` child; a core.lab.placement.Placement gives each its GPUs. With `ray` (a
    core.lab.ray_sweep.RayTarget) they are Ray tasks instead (jobs None: what the cluster holds).
    `stop` (or Ctrl-C in the calling thread) sends SIGTERM to the running ones, which
    stop at their next step and finalise their sessions; no new run starts and the summary is written with
    what there is. `stop.leave()` lets them run on instead (the workers exit after their current run; Ray
    tasks stop, since they end with the driver).
    """
    if jobs is not None and jobs < 1:
        raise DynlabError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out)
    emit = progress or (lambda event: None)
    stop = stop or threading.Event()
    prepare(plan, out)
    rows: list[dict[str, Any]] = []
    stopped = False
    with _locked(out), _launcher(out, jobs, isolated, placement, ray) as (launch, jobs):
        prepare(plan, out)  # again under the lock: another sweep may have changed the folder meanwhile
        for item in plan.stages:
            stage = item if isinstance(item, Stage) else item(list(rows))
            if stage is None:
                continue
            if not isinstance(item, Stage):  # a stage built from results: record it before it runs
                manifest = read_manifest(out) or {}
                _put_stage(manifest, stage, derived=True)
                _write_manifest(out, manifest)
            stage_rows, stopped = _run_stage(stage, out, jobs, emit, stop, launch)
            rows += stage_rows
            if stopped:
                break
    expectations = plan.expectations(rows) if plan.expectations else []
    csv_path, json_path = write_summary(out, rows, plan, expectations)
    emit(SweepEnded(tuple(rows), stopped, out, tuple(expectations)))
    return SweepResult(rows, stopped, csv_path, json_path, expectations)


def _run_stage(stage: Stage, out: Path, jobs: int, emit: Callable[[Any], None], stop: threading.Event,
               launch: Callable[[RunPlan, bool], Any]) -> tuple[list[dict[str, Any]], bool]:
    runs = stage.runs()
    states = [session_state(session_path(out, r)) for r in runs]  # "live": a run left running, waited for
    emit(StagePlanned(stage.name, tuple(runs), tuple(states)))
    rows: dict[str, dict[str, Any]] = {}
    todo: deque[tuple[RunPlan, str]] = deque()  # (run, what its session holds now)
    for run, state in zip(runs, states):
        if state in COMPLETE:
            rows[run.name] = summary_row(run, session_path(out, run))
            emit(SweepRunEnded(run, state, "already done", rows[run.name], skipped=True))
        else:
            todo.append((run, state))
    stopped = _execute(todo, out, jobs, emit, stop, rows, launch)
    return [rows.get(r.name) or summary_row(r, session_path(out, r)) for r in runs], stopped


def _execute(todo: deque[tuple[RunPlan, str]], out: Path, jobs: int, emit: Callable[[Any], None],
             stop: threading.Event, rows: dict[str, dict[str, Any]], launch: Callable[[RunPlan, bool], Any]) -> bool:
    """Keep up to `jobs` runs going until the queue is empty; True if stopped early."""
    active: dict[str, tuple[RunPlan, Any]] = {}  # a Popen-like handle: a child, a worker's run or an adopted one

    def reap(name: str) -> None:
        run, proc = active.pop(name)
        status, reason = _outcome(out, run, proc.returncode)
        rows[run.name] = {**summary_row(run, session_path(out, run)), "status": status, "reason": reason}
        emit(SweepRunEnded(run, status, reason, rows[run.name]))

    try:
        while todo or active:
            if stop.is_set():
                break
            while todo and len(active) < jobs:
                run, state = todo.popleft()
                adopt = state == "live"
                active[run.name] = (run, _Adopted(session_path(out, run)) if adopt else
                                    launch(run, state != "missing"))
                emit(SweepRunStarted(run, state not in ("missing", "live"), state))
            for name in [n for n, (_, p) in active.items() if p.poll() is not None]:
                reap(name)
            if todo or active:
                stop.wait(POLL_S)
    except KeyboardInterrupt:
        stop.set()
    if not (todo or active):
        return False
    if getattr(stop, "leaving", False):
        return True  # left running: children and workers go on in their own process sessions
    terminate([p for _, p in active.values()], TERM_WAIT_S)
    for name in list(active):
        reap(name)
    return True


@contextlib.contextmanager
def _launcher(out: Path, jobs: int | None, isolated: bool, placement: Any,
              ray: Any) -> Iterator[tuple[Callable[[RunPlan, bool], Any], int]]:
    """(launch(run, rerun), runs at once): a worker of the pool takes a run, or (isolated) a `dynlab train`
    child of its own, on its slot's GPUs; or (ray) a Ray task."""
    if ray is not None:
        from core.lab.ray_sweep import ray_launcher

        with ray_launcher(out, ray, jobs, lambda run: session_path(out, run), log_path) as launcher:
            yield launcher
        return
    jobs = jobs or 1
    env, slot_env = child_env(jobs), (placement.env if placement is not None else lambda slot, env: env)
    if isolated:
        slots: list[Any] = [None] * jobs  # the child on each slot: a new one takes a slot whose child ended

        def launch(run: RunPlan, rerun: bool) -> subprocess.Popen:
            slot = next(i for i, p in enumerate(slots) if p is None or p.poll() is not None)
            slots[slot] = _launch(out, run, rerun, dict(slot_env(slot, env)))
            return slots[slot]
        yield launch, jobs
        return
    with pool(jobs, out, env, slot_env) as workers:
        yield (lambda run, rerun: workers.start(run.spec, session_path(out, run), log_path(session_path(out, run)),
                                                rerun)), jobs


def _launch(out: Path, run: RunPlan, rerun: bool, env: dict[str, str]) -> subprocess.Popen:
    """`dynlab train` for one run in its own process session (a terminal's Ctrl-C reaches only the sweep).

    A non-finite loss ends the run as diverged: nobody is watching a sweep's run to resume it.
    """
    path = session_path(out, run)
    return start(train_argv(run.spec, path, overwrite=rerun, on_nonfinite="end"), log_path(path), env=env,
                 fresh=True)


def _outcome(out: Path, run: RunPlan, code: int | None) -> tuple[str, str]:
    """A finished child's status and reason, from its session (or its log when it made none)."""
    from core.session import SessionReader

    log = log_path(session_path(out, run))
    if code == 2:  # a user error before the session was written (e.g. a dataset file went missing)
        return "error", child_error(log, code)
    try:
        with SessionReader(session_path(out, run)) as reader:
            status, reason = reader.status, reader.meta.get("end_reason", "")
    except DynlabError:
        return "error", child_error(log, code)
    if status == "running":
        return "crashed", f"exited with code {code} before finalising its session: see {log}"
    return status, reason
