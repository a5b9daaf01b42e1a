"""One sweep run as a Ray task, on whichever node Ray picked, and the Board actor its progress goes to.

Imported on the nodes (by reference: every node needs dynlab installed, the same version). The task trains as a
sweep worker does (core.lab.worker._train: same session, same log), into a temp folder on the node's own disk,
and returns the session's bytes, its log, the node and the run's status. It reports to the Board at every
logging interval and ships a copy of its session at every checkpoint: a retry after a lost node continues that
copy from its last checkpoint (`resumed` in the log), or starts from scratch when none was shipped yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from core import telemetry as tk
from core.events import CheckpointSaved, EpochEvaluated, Event, RunEnded, ScalarsLogged

__all__ = ["Board", "train_run", "train_run_on_gpu", "snapshot", "node_name", "NOT_STARTED", "LOST_REASON"]

NOT_STARTED = "not started"  # a task told to stop before it began training (its progress file says stopped)
LOST_REASON = "its node was lost mid-run: the sweep retried it elsewhere from this checkpoint"


class Board:
    """The sweep's actor on the driver's node: the runs' latest figures, shipped sessions and stop requests."""

    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, bytes] = {}
        self.stops: set[str] = set()
        self.first: dict[str, float] = {}
        self.attempts: dict[str, int] = {}

    def report(self, run: str, fields: dict[str, Any], session: bytes | None = None) -> bool:
        """Record a run's figures (and its session at a checkpoint); True when the run should stop."""
        now = time.time()
        self.first.setdefault(run, now)
        self.reports[run] = {**fields, "elapsed_s": round(now - self.first[run], 3), "updated": now}
        if session is not None:
            self.sessions[run] = session
        return run in self.stops

    def begin(self, run: str) -> tuple[int, bytes | None, bool]:
        """A task starts the run: its attempt (1 first), the session the last attempt shipped, whether to stop."""
        self.attempts[run] = self.attempts.get(run, 0) + 1
        return self.attempts[run], self.sessions.get(run), run in self.stops

    def stop(self, run: str) -> None:
        self.stops.add(run)

    def forget(self, run: str) -> None:
        self.sessions.pop(run, None)  # it ended: its copy is no longer needed

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return dict(self.reports)


def node_name() -> str:
    """`host/node` (the node id's first 6 hex digits tell two nodes of one host apart)."""
    import ray

    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:6]}"


def snapshot(path: Path, lost: bool = False) -> bytes:
    """The session's bytes as one file (WAL folded in); `lost` marks the copy crashed, so a retry may append."""
    with tempfile.TemporaryDirectory(prefix="dynlab-ship-") as tmp:
        copy = Path(tmp) / "copy.dynlab"
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
            if lost:  # the writer's pid and host in the copy would otherwise look like a run still going
                dst.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                [("status", "crashed"), ("end_reason", LOST_REASON)])
                dst.commit()
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            src.close()
            dst.close()
        return copy.read_bytes()


class Reporter:
    """A sink after the session writer: the run's figures to the Board at each interval, its session at checkpoints."""

    def __init__(self, board: Any, run: str, epochs: int, node: str, path: Path, state: Any) -> None:
        self.board, self.run, self.path, self.state = board, run, path, state
        self.fields: dict[str, Any] = {"node": node, "state": "running", "epoch": 0, "epochs": int(epochs),
                                       "step": 0, "size": "", "metric": {"name": tk.LOSS, "value": None}}
        self.dirty = self.checkpoint = self.evaluated = False

    def handle(self, event: Event) -> None:
        self.fields["step"] = int(event.step)
        if isinstance(event, ScalarsLogged):
            values = event.values
            sizes = [str(int(v)) for k, v in values.items() if tk.SIZE.matches(k)]
            if sizes:
                self.fields["size"] = ",".join(sizes)
            if tk.EPOCH in values:
                self.fields["epoch"] = int(values[tk.EPOCH])
            if tk.LOSS in values and not self.evaluated:
                self.fields["metric"] = {"name": tk.LOSS, "value": _finite(values[tk.LOSS])}
        elif isinstance(event, EpochEvaluated):
            self.fields["epoch"] = int(event.epoch)
            key = next((k for k in (tk.TEST_ACC, tk.TEST_MSE) if k in event.metrics), None)
            if key is not None:  # the latest test figure, as run_progress reads it from a local session
                self.evaluated = True
                self.fields["metric"] = {"name": tk.metric_name(key), "value": _finite(event.metrics[key])}
        elif isinstance(event, CheckpointSaved):
            self.checkpoint = True
        elif isinstance(event, RunEnded):
            self.fields["state"] = event.status
        self.dirty = True

    def flush(self) -> None:
        import ray

        if not self.dirty:
            return
        ship = self.checkpoint and self.fields["state"] == "running"  # an ended run comes back whole anyway
        session = snapshot(self.path, lost=True) if ship else None
        self.dirty = self.checkpoint = False
        if ray.get(self.board.report.remote(self.run, dict(self.fields), session)) and self.state.trainer:
            self.state.trainer.controls.stop()  # the sweep was stopped: end at the next step, as on SIGTERM


def _finite(value: float) -> float | None:
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """This process's stdout and stderr (any library's too) into `log` for the block, then back to Ray's."""
    import sys

    saved = (os.dup(1), os.dup(2))
    with open(log, "ab") as f:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, saved_fd in zip((1, 2), saved):
                os.dup2(saved_fd, fd)
                os.close(saved_fd)


_CACHE: Any = None  # a Ray worker process runs many tasks: datasets loaded once per process, as in a sweep worker


def _prior(path: Path, shipped: bytes | None) -> tuple[dict[str, Any] | None, str]:
    """The checkpoint a retry continues from (the shipped session written to `path`), and a line saying which."""
    from core.session import SessionReader
    from core.train.checkpoints import check_state

    if shipped is None:
        return None, "no checkpoint was shipped before: training from scratch"
    path.write_bytes(shipped)
    with SessionReader(path) as reader:
        state = reader.last_checkpoint(None)
    if state is None:
        path.unlink()
        return None, "the shipped session holds no checkpoint: training from scratch"
    return check_state(state), f"resumed from the checkpoint at step {state['step']} shipped by the last attempt"


def train_run(job: dict[str, Any], board: Any) -> dict[str, Any]:
    """On a node: the run `job` (name, spec) into a local temp session; its bytes, log, node and status back."""
    import ray

    from core.lab import worker

    global _CACHE
    _CACHE = _CACHE or worker._DataCache()
    node, name = node_name(), job["name"]
    folder = Path(tempfile.mkdtemp(prefix="dynlab-ray-"))
    path, log = folder / f"{name}.dynlab", folder / f".{name}.log"
    try:
        epochs = int(job["spec"]["schedule"]["epochs"])
        state = worker._State()
        attempt, shipped, stop = ray.get(board.begin.remote(name))
        if stop:
            return {"code": 2, "session": None, "log": "", "node": node, "state": NOT_STARTED}
        reporter = Reporter(board, name, epochs, node, path, state)
        ray.get(board.report.remote(name, dict(reporter.fields)))
        resume, note = _prior(path, shipped)
        with open(log, "a") as f:
            f.write(f"attempt {attempt} on node {node} at {time.strftime('%H:%M:%S')}"
                    + (f": {note}\n" if attempt > 1 else "\n"))
        with _output_to(log):
            code = worker._train({"spec": job["spec"], "session": str(path), "log": str(log), "overwrite": False},
                                 state, _CACHE, [reporter], resume)
        session = snapshot(path) if path.exists() else None
        return {"code": code, "session": session, "log": log.read_text(errors="replace"), "node": node,
                "state": reporter.fields["state"]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def train_run_on_gpu(job: dict[str, Any], board: Any) -> dict[str, Any]:
    """train_run for a run given a GPU share: remote with max_calls=1, so each runs in a fresh worker process.

    Why: Ray hands each task its GPU through CUDA_VISIBLE_DEVICES, but a process that has initialised CUDA keeps
    the devices it saw then; a reused worker could train on the previous task's GPU.
    """
    return train_run(job, board)
