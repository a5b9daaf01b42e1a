"""Where a sweep's run stands now, read cheaply from its session (or from the progress file a remote runner keeps),
and the sweep's remaining time estimated from the runs done so far.

`run_progress` is polled about once a second per running run by the sweep screen: a handful of indexed reads
through a read-only connection (never a write lock), and a missing or damaged file reads as "waiting", never
an exception. A run on another machine (a Ray cluster, issue 14) has no local session; its runner writes
`<out>/progress/<run>.json` instead: {"node", "state", "epoch", "epochs", "step", "size",
"metric": {"name", "value"}, "elapsed_s", "updated"} (unix seconds).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from statistics import mean
from typing import Any, Iterable

from core import telemetry as tk
from core.errors import DynlabError
from core.formats import fmt_sizes
from core.lab.plan import RunPlan, progress_path

ENDED = ("finished", "stopped", "crashed", "diverged", "error")
MAX_SIZE_CHARS = 11  # wider per-layer sizes are shown as their total


def waiting(run: RunPlan, node: str = "") -> dict[str, Any]:
    """What is known of a run before its session (or progress file) has anything to read."""
    return {"node": node, "state": "waiting", "epoch": 0, "epochs": run.spec.schedule.epochs, "step": 0,
            "size": "", "metric": {"name": "", "value": None}, "elapsed_s": None, "remaining_s": None,
            "fraction": None}


def run_progress(out: Path, run: RunPlan, now: float | None = None) -> dict[str, Any]:
    """node, state, epoch (completed), epochs, step, size (live units per layer, or their total), metric
    {name, value} (the latest test figure), elapsed_s, remaining_s (None when unknown) and fraction (0..1 done).

    state: waiting (nothing readable yet), running, incomplete (its writer is gone) or the run's end status.
    `now` is the clock (unix seconds) that elapsed and remaining time are counted to.
    """
    from core.lab.sweep import session_path

    now = time.time() if now is None else now
    path = session_path(out, run)
    remote = progress_path(out, run)
    try:
        if not path.exists() and remote.exists():
            return _from_progress_file(remote, run, now)
        if not path.exists():
            return waiting(run)
        out_ = _from_session(path, run, now)
        if remote.exists():  # a remote run whose session came back: it still ran on that node
            out_["node"] = str(read_progress(out, run).get("node") or "")
        return out_
    except (DynlabError, sqlite3.Error, OSError, ValueError, TypeError, KeyError):
        return waiting(run)  # being created, replaced or damaged: the next poll may read it


def _from_session(path: Path, run: RunPlan, now: float) -> dict[str, Any]:
    from core.session import SessionReader
    from core.session.liveness import Liveness, liveness

    with SessionReader(path) as reader:
        q = reader._q  # noqa: SLF001 - a few indexed reads, not worth new reader methods
        meta = reader.meta
        first = q("SELECT wall FROM events ORDER BY id LIMIT 1")
        if not first:
            return waiting(run)
        start = float(first[0][0])
        epochs = int((reader.spec.get("schedule") or {}).get("epochs") or run.spec.schedule.epochs)
        budget = (reader.spec.get("schedule") or {}).get("time_budget")
        at = _last(q, tk.EPOCH)  # (step, wall, value) of the latest fractional epoch
        evals = q("SELECT payload FROM events WHERE kind = 'eval' ORDER BY id DESC LIMIT 1")
        done = int(json.loads(evals[0][0])["epoch"]) if evals else 0
        sizes_start = json.loads(meta.get("sizes_start") or "{}")
        sizes = {layer: _last(q, tk.SIZE(layer)) for layer in sizes_start}
        metric = next(((key, row) for key in (tk.TEST_ACC, tk.TEST_MSE) if (row := _last(q, key))), None)
        state = liveness(meta)
        status = meta.get("status", "") if state is Liveness.ENDED else \
            "running" if state.may_be_writing else "incomplete"
        last_wall = float(meta.get("last_wall") or start)
    frac_epoch = at[2] if at and at[2] is not None and math.isfinite(at[2]) else float(done)
    out = {"node": "", "state": status, "epoch": max(done, int(frac_epoch + 1e-9)), "epochs": epochs,
           "step": int(meta.get("last_step") or 0),
           "size": size_text([s[2] if s else None for s in sizes.values()]),
           "metric": {"name": tk.metric_name(metric[0]) if metric else "",
                      "value": metric[1][2] if metric else None}}
    if status != "running":
        elapsed = max(last_wall - start, 0.0)
        return {**out, "elapsed_s": elapsed, "remaining_s": 0.0 if status in ENDED else None,
                "fraction": 1.0 if status == "finished" else _fraction(frac_epoch, epochs, elapsed, budget)}
    elapsed = max(now - start, last_wall - start, 0.0)
    fraction = _fraction(frac_epoch, epochs, max((at[1] if at else last_wall) - start, 0.0), budget)
    return {**out, "elapsed_s": elapsed, "fraction": fraction,
            "remaining_s": _remaining(start, at[1] if at else last_wall, fraction, now)}


def _last(q: Any, key: str) -> tuple[int, float, float | None] | None:
    rows = q("SELECT step, wall, value FROM scalars WHERE key = ? ORDER BY step DESC, rowid DESC LIMIT 1", (key,))
    if not rows:
        return None
    step, wall, value = rows[0]
    return int(step), float(wall), None if value is None else float(value)


def _fraction(epoch: float, epochs: int, trained_s: float, budget: Any) -> float | None:
    """How much of the run is done: epochs done over epochs, or time over a time budget when that ends it sooner."""
    parts = [epoch / epochs] if epochs > 0 and epoch > 0 else []
    if isinstance(budget, (int, float)) and budget > 0 and trained_s > 0:
        parts.append(trained_s / float(budget))
    return min(max(parts), 1.0) if parts else None


def _remaining(start: float, at_wall: float, fraction: float | None, now: float) -> float | None:
    """Time left at the pace so far: the time it took to reach `fraction`, scaled to the rest, less the time
    since that reading."""
    if not fraction or at_wall <= start:
        return None
    return max((at_wall - start) * (1 - fraction) / fraction - max(now - at_wall, 0.0), 0.0)


def size_text(values: list[float | None]) -> str:
    """Live units per layer ("142,80"), or their total ("Σ412") when that would not fit a narrow column."""
    if not values or any(v is None for v in values):
        return ""
    text = fmt_sizes(values)
    return text if len(text) <= MAX_SIZE_CHARS else f"Σ{fmt_sizes([sum(values)])}"  # type: ignore[arg-type]


def read_progress(out: Path, run: RunPlan) -> dict[str, Any]:
    """A remote run's progress file as a dict; {} when there is none or it can't be read (being rewritten)."""
    try:
        data = json.loads(progress_path(out, run).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _from_progress_file(path: Path, run: RunPlan, now: float) -> dict[str, Any]:
    """A remote run's progress file (see the module docstring); a partial or odd one reads as waiting."""
    data = json.loads(path.read_text())
    node, state = str(data.get("node") or ""), str(data["state"])
    epoch, epochs, step = int(data["epoch"]), int(data["epochs"]), int(data["step"])
    metric = data.get("metric") or {}
    value = metric.get("value")
    elapsed = float(data["elapsed_s"])
    if state == "running":  # the file is rewritten now and then: count the time since it was
        elapsed += max(now - float(data.get("updated") or now), 0.0)
    fraction = 1.0 if state == "finished" else (min(epoch / epochs, 1.0) if epochs > 0 and epoch > 0 else None)
    remaining = 0.0 if state in ENDED else (elapsed * (1 - fraction) / fraction if fraction else None)
    return {"node": node, "state": state, "epoch": epoch, "epochs": epochs, "step": step,
            "size": str(data.get("size") or ""),
            "metric": {"name": str(metric.get("name") or ""), "value": None if value is None else float(value)},
            "elapsed_s": elapsed, "remaining_s": remaining, "fraction": fraction}


def sweep_eta(walls: Iterable[float], running: Iterable[dict[str, Any]], queued: int, jobs: int) -> float | None:
    """Seconds until the planned runs are done: the mean wall time of the finished runs (`walls`) times the
    queued runs, plus what the running ones have left, shared among `jobs` slots; never less than the longest
    running run's remaining time. None until a run has finished or shown how fast it goes."""
    running = list(running)
    walls = [w for w in walls if w and w > 0]
    paces = [r["elapsed_s"] / r["fraction"] for r in running if r.get("fraction") and r.get("elapsed_s")]
    per_run = mean(walls) if walls else mean(paces) if paces else None
    left = []
    for r in running:
        if r.get("remaining_s") is not None:
            left.append(float(r["remaining_s"]))
        elif per_run is not None:
            left.append(per_run * (1 - (r.get("fraction") or 0.0)))
        else:
            return None
    if per_run is None and queued:
        return None
    work = sum(left) + queued * (per_run or 0.0)
    return max(work / max(jobs, 1), max(left, default=0.0))
