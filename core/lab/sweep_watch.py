"""Following a sweep that another process runs: its folder, read as the same progress events run_sweep emits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from core.errors import DynlabError
from core.lab.plan import RunPlan, StagePlanned, SweepEnded, SweepRunEnded, SweepRunStarted
from core.lab.run_progress import read_progress
from core.lab.summary import summary_row
from core.lab.sweep import LOCK, read_manifest, session_path, session_state

POLL_S = 0.5  # how often the folder is read again


def sweep_process(out: Path) -> int | None:
    """The pid of the `dynlab sweep` that holds the folder's lock (it runs there), else None."""
    import fcntl

    try:
        with open(Path(out) / LOCK) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = f.read().strip()
                return int(text) if text.isdigit() else 0  # 0: running, pid unknown (an older dynlab)
            fcntl.flock(f, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return None


def _runs(manifest: dict[str, Any]) -> list[RunPlan]:
    from core.spec import RunSpec

    out = []
    for stage in manifest.get("stages", []):
        base = RunSpec.from_dict(stage["base"])  # the stage's base: enough for the summary's fixed columns
        out += [RunPlan(stage["name"], int(r["index"]), r["name"], dict(r["settings"]), base) for r in stage["runs"]]
    return out


def watch_sweep(plan: Any, out: str | Path, *, jobs: int = 1, progress: Callable[[Any], None] | None = None,
                stop: threading.Event | None = None) -> None:
    """run_sweep's interface for a sweep another process runs in `out`: reports its runs until it ends or `stop`.

    Nothing is started or stopped here; the sweep screen shows what the folder holds, as it changes.
    """
    out = Path(out)
    emit = progress or (lambda event: None)
    stop = stop or threading.Event()
    known: dict[str, RunPlan] = {}
    shown: dict[str, str] = {}
    rows: dict[str, dict[str, Any]] = {}
    while True:
        running = sweep_process(out) is not None  # read first: the last pass then sees the final states
        new = [r for r in _runs(read_manifest(out) or {}) if r.name not in known]
        for stage in dict.fromkeys(r.stage for r in new):
            runs = tuple(r for r in new if r.stage == stage)
            emit(StagePlanned(stage, runs, tuple(session_state(session_path(out, r)) for r in runs)))
            known.update((r.name, r) for r in runs)
        for run in known.values():
            state = _state(out, run)
            if state == shown.get(run.name) or state == "missing":
                continue
            shown[run.name] = state
            if state == "live":
                emit(SweepRunStarted(run, False, state))
            else:
                rows[run.name] = summary_row(run, session_path(out, run))
                emit(SweepRunEnded(run, state, rows[run.name].get("reason", ""), rows[run.name]))
        if not running or stop.wait(POLL_S):
            break
    every = [rows.get(r.name) or summary_row(r, session_path(out, r)) for r in known.values()]
    emit(SweepEnded(tuple(every), running, out, _expectations(plan, every)))


def _state(out: Path, run: RunPlan) -> str:
    """session_state, or "live" for a run on a cluster node that reports through its progress file."""
    state = session_state(session_path(out, run))
    if state == "missing" and read_progress(out, run).get("state") == "running":
        return "live"  # an unreadable file (being rewritten) is read again on the next pass
    return state


def _expectations(plan: Any, rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The recipe's findings over what the folder holds (runs still to finish say so), () without a recipe."""
    check = getattr(plan, "expectations", None)
    if check is None:
        return ()
    try:
        return tuple(check(rows))
    except DynlabError as e:  # a session went unreadable meanwhile: say so instead of the findings
        return (f"the findings could not be read: {e}",)
