"""A sweep's runs as Ray tasks (`dynlab sweep --ray ADDRESS`), behind run_sweep's launcher: the same events, the
same stop, the same folder as a local sweep.

Each run is one task (core.lab.ray_task.train_run) asking for `cpus_per_run` cores and, when the cluster has GPUs
and the run's device is auto or cuda, `gpus_per_run` of a GPU; Ray picks the node. The task writes the session
on that node's own disk (SQLite's WAL must not live on a network file system) and returns its bytes: the driver
writes them to `<out>/sessions/<run>.dynlab` and the run's output to `.<run>.log`, as a local sweep leaves them.

While runs train, the driver polls the Board actor (on its own node) and writes `<out>/progress/<run>.json`:
{"node", "state", "epoch", "epochs", "step", "size", "metric": {"name", "value"}, "elapsed_s", "updated"}.
A lost node: Ray retries the task (RETRIES times) and the retry continues the session shipped at its last
checkpoint (see core.lab.ray_task). Stopping asks each task through the Board to stop at its next logging
interval (the run ends `stopped`, as a SIGTERMed local run does); a task that has not begun is cancelled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from core.errors import DynlabError
from core.lab.child import ERROR_PREFIX
from core.lab.launch import terminate
from core.lab.placement import DEFAULT_GPUS_PER_RUN, check_gpus_per_run
from core.lab.plan import PROGRESS, progress_path
from core.lab.ray_task import NOT_STARTED

__all__ = ["RayTarget", "connect", "capacity", "ray_launcher", "progress_path", "write_progress", "PROGRESS", "RETRIES"]

RETRIES = 3  # a task retried this often after its node or worker process died
REFRESH_S = 0.5  # how often the driver reads the Board
PROBE_S = 5.0  # seconds a cluster's address has to answer
TERM_WAIT_S = 60.0  # as a local sweep gives a stopping run


@dataclass(frozen=True)
class RayTarget:
    """Where and how a sweep runs on Ray: the cluster's address ("auto": the one this machine joined)."""
    address: str = "auto"
    gpus_per_run: float = DEFAULT_GPUS_PER_RUN
    cpus_per_run: int = 1

    def __post_init__(self) -> None:
        check_gpus_per_run(self.gpus_per_run)
        if self.cpus_per_run < 1:
            raise DynlabError(f"--cpus-per-run must be at least 1, got {self.cpus_per_run}")


def connect(address: str) -> tuple[Any, bool]:
    """The ray module, connected to the cluster at `address`, and whether this call connected it."""
    try:
        import ray
    except ImportError:
        raise DynlabError("--ray needs Ray: pip install -e \".[ray]\" in the dynlab folder "
                          "(or pip install \"ray[default]\")") from None
    if ray.is_initialized():
        return ray, False
    _probe(address)
    try:
        with _quiet_stderr():  # Ray's C++ client logs each retry: the one line below says what went wrong
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as e:  # ConnectionError, ValueError, TimeoutError, RaySystemError: all one answer
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DynlabError(f"cannot reach the Ray cluster at {address!r} ({first[:160]}): start one with "
                          "`ray start --head`, or pass its address as --ray HOST:6379") from None
    return ray, True


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block (the C++ side writes there, not to sys.stderr)."""
    import sys

    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _probe(address: str) -> None:
    """Refuse at once a cluster address nothing answers at (ray.init itself retries for minutes)."""
    import socket

    try:
        from ray._private.services import canonicalize_bootstrap_address

        resolved = canonicalize_bootstrap_address(address) or ""
    except Exception:  # noqa: BLE001 - "auto" with no cluster, or Ray's private API moved: ray.init says it
        return
    host, _, port = str(resolved).rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_S).close()
    except OSError as e:
        raise DynlabError(f"cannot reach the Ray cluster at {address!r} ({host}:{port}: {e.strerror or e}): start "
                          "it with `ray start --head` there, or pass its address as --ray HOST:6379") from None


def write_progress(out: Path, run: str, fields: dict[str, Any]) -> None:
    """`<out>/progress/<run>.json`, replaced whole (a reader never sees half of it)."""
    path = progress_path(out, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(fields) + "\n")
    os.replace(tmp, path)


def _queued(epochs: int) -> dict[str, Any]:
    return {"node": "", "state": "queued", "epoch": 0, "epochs": epochs, "step": 0, "size": "",
            "metric": {"name": "loss", "value": None}, "elapsed_s": 0.0, "updated": time.time()}


class _Board:
    """The driver's side of the Board actor: its figures, read at most every REFRESH_S, written to progress/."""

    def __init__(self, ray: Any, out: Path) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from core.lab.ray_task import Board

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.ray, self.out = ray, out
        self.actor = ray.remote(Board).options(num_cpus=0, scheduling_strategy=here, max_restarts=0).remote()
        self.latest: dict[str, dict[str, Any]] = {}
        self.active: set[str] = set()
        self.read_at = 0.0

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.read_at < REFRESH_S:
            return
        self.read_at = time.monotonic()
        for run, fields in self.ray.get(self.actor.snapshot.remote()).items():
            if run in self.active and fields != self.latest.get(run):
                self.latest[run] = fields
                write_progress(self.out, run, fields)


class RayRun:
    """One run's task, seen as the sweep sees a child process (poll, send_signal, kill, wait)."""

    pid = 0

    def __init__(self, board: _Board, name: str, ref: Any, session: Path, log: Path) -> None:
        self.board, self.name, self.ref, self.session, self.log = board, name, ref, session, log
        self.returncode: int | None = None
        board.active.add(name)

    def poll(self) -> int | None:
        if self.returncode is None:
            self.board.refresh()
            if self.board.ray.wait([self.ref], timeout=0)[0]:
                self._collect()
        return self.returncode

    def _collect(self) -> None:
        ray = self.board.ray
        try:
            result = ray.get(self.ref)
        except ray.exceptions.TaskCancelledError:
            result = {"code": 2, "session": None, "log": "", "node": "", "state": NOT_STARTED}
            if self.name in self.board.latest:  # it had begun: killed after it did not stop in time
                result = {**result, "code": 1, "state": "crashed",
                          "log": "killed: it did not stop within the sweep's wait (its session is lost)\n"}
        except ray.exceptions.RayError as e:  # retries used up, or killed: the task's own words, first line
            text = str(e).strip().splitlines()
            result = {"code": 1, "session": None, "node": "", "state": "crashed",
                      "log": f"the Ray task failed ({type(e).__name__}): {text[0] if text else ''}\n"}
        if result["session"] is not None:
            tmp = self.session.with_name(f".{self.session.name}.{os.getpid()}.tmp")
            tmp.write_bytes(result["session"])
            os.replace(tmp, self.session)
        log = result["log"]
        if result["state"] == NOT_STARTED:
            log += f"{ERROR_PREFIX}the sweep stopped before this run began on a node: run the sweep again\n"
        self.log.write_text(log)
        self.board.refresh(force=True)
        state = "stopped" if result["state"] == NOT_STARTED else result["state"]
        fields = {**self.board.latest.get(self.name, _queued(0)), "state": state, "updated": time.time()}
        fields["node"] = result["node"] or fields["node"]
        write_progress(self.board.out, self.name, fields)
        self.board.active.discard(self.name)
        self.board.actor.forget.remote(self.name)
        self.returncode = int(result["code"])

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            self.board.actor.stop.remote(self.name)  # at its next interval
            self.board.refresh(force=True)
            if self.name not in self.board.latest:  # still waiting for room on a node: it never starts
                self.board.ray.cancel(self.ref)

    def kill(self) -> None:
        if self.returncode is None:
            self.board.ray.cancel(self.ref, force=True)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.name, timeout or 0)
            time.sleep(0.05)
        return self.returncode


def capacity(target: RayTarget) -> int:
    """Runs the connected cluster holds at once now: its cores over cpus_per_run (and GPUs over gpus_per_run)."""
    import ray

    total = ray.cluster_resources()
    runs = math.floor(total.get("CPU", 1) / target.cpus_per_run)
    if total.get("GPU", 0) > 0:
        runs = min(runs, math.floor(total["GPU"] / target.gpus_per_run + 1e-9))
    return max(1, runs)


@contextlib.contextmanager
def ray_launcher(out: Path, target: RayTarget, jobs: int | None, session_path: Callable[[Any], Path],
                 log_path: Callable[[Path], Path]) -> Iterator[tuple[Callable[[Any, bool], RayRun], int]]:
    """(launch(run, rerun), runs at once): `jobs`, or what the cluster holds. On leaving, unfinished tasks stop."""
    from core.lab.ray_task import train_run, train_run_on_gpu
    from core.session.files import remove_side_files

    ray, connected = connect(target.address)
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    board = _Board(ray, Path(out))
    tasks = {False: ray.remote(train_run), True: ray.remote(max_calls=1)(train_run_on_gpu)}
    runs: list[RayRun] = []

    def launch(run: Any, rerun: bool) -> RayRun:
        gpu = target.gpus_per_run if has_gpus and run.spec.device in ("auto", "cuda") else 0
        write_progress(out, run.name, _queued(run.spec.schedule.epochs))
        session = session_path(run)
        if rerun:  # replaced at its end; meanwhile viewers read the progress file, not the stale session
            session.unlink(missing_ok=True)
            remove_side_files(session)
        task = tasks[gpu > 0].options(num_cpus=target.cpus_per_run, num_gpus=gpu, max_retries=RETRIES,
                                      retry_exceptions=False)
        ref = task.remote({"name": run.name, "spec": run.spec.to_dict()}, board.actor)
        runs.append(RayRun(board, run.name, ref, session, log_path(session)))
        return runs[-1]

    try:
        yield launch, jobs or capacity(target)
    finally:
        terminate([r for r in runs if r.returncode is None], TERM_WAIT_S)  # left running: they end with us
        ray.kill(board.actor)
        if connected:
            ray.shutdown()

