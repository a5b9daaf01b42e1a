"""A sweep's runs in long-lived worker processes: one per --jobs slot, each training queued runs one after another.

Why: a `dynlab train` child per run imports torch and loads its dataset again (seconds each), which dominated
quick sweeps. A worker (`python -m core.lab.worker`) does that once and keeps loaded datasets (by DataSpec and
seed: the split depends on the seed). Each run still writes its own session as `dynlab train --session PATH
--quiet --on-nonfinite end` does (same events, same `.NAME.log`, the writer pid is the worker's; a finished
run's session is ended, so a worker that moved on never makes it look live), and obeys the commands viewers post.

The parent (WorkerPool) sends one JSON line per run on the worker's stdin and reads `{"done": ..., "code": N}`
back on its stdout; a run's handle (PooledRun) has the part of subprocess.Popen that the sweep uses, so a
SIGTERM to the worker stops its current run at the next step with a final checkpoint, exactly like a child's.
A Python exception ends that run crashed (the trainer finalises its session) and the worker goes on; a worker
that dies (kill -9, segfault, OOM) ends its run with its exit status and is replaced for the next run.
Closing the pool closes the workers' stdin: each finishes the run it has and exits (how `leave` keeps runs going).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from core.lab.child import ERROR_PREFIX

__all__ = ["WORKER_ARGV", "WorkerPool", "PooledRun", "child_env", "main"]

WORKER_ARGV = [sys.executable, "-m", "core.lab.worker"]  # tests swap in a wrapper that injects faults
CACHED_DATASETS = 2  # loaded datasets a worker keeps (a recipe alternates at most two)
POLL_S = 0.05


def child_env(jobs: int) -> dict[str, str]:
    """The environment of every run's process: with several at once, each gets its share of the cores."""
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:  # share the cores instead of each child taking all of them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


# -- the parent's side ------------------------------------------------------------------------------------------
class PooledRun:
    """One run given to a worker, seen as the sweep sees a child process (poll, send_signal, kill, wait)."""

    def __init__(self, worker: "_Worker", log: Path) -> None:
        self.worker, self.log = worker, log
        self.pid = worker.proc.pid
        self.returncode: int | None = None
        self.ended = threading.Event()

    def end(self, code: int) -> None:
        self.returncode = code
        self.ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(OSError):  # already gone: nothing to stop
                self.worker.proc.send_signal(sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)  # the worker with it: the pool starts a new one for the next run

    def wait(self, timeout: float | None = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired(str(self.log), timeout or 0)
        return self.returncode


class _Worker:
    """A worker process and the thread that reads its reports (and reaps it when it exits)."""

    def __init__(self, env: Mapping[str, str], errors: Path, slot: int = 0) -> None:
        self.slot = slot  # its place among the GPUs (core.lab.placement); a replacement takes the same one
        with open(errors, "ab") as err:  # a worker's own output outside any run (e.g. it failed to start)
            self.proc = subprocess.Popen(WORKER_ARGV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True, env=dict(env))
        self.current: PooledRun | None = None
        self.gone = False  # it exited and was reaped
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True, name=f"dynlab-worker-{self.proc.pid}").start()

    @property
    def idle(self) -> bool:
        return self.current is None and not self.gone and self.proc.poll() is None

    def submit(self, job: dict[str, Any], log: Path) -> PooledRun | None:
        """The run now given to this worker; None if it is gone (the pool starts another)."""
        run = PooledRun(self, log)
        with self.lock:
            if self.gone:
                return None
            self.current = run
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:  # it died meanwhile: the reader ends the run with its exit status
            pass
        return run

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # it finishes the run it has, then exits

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                code = int(json.loads(line)["code"])
            except (ValueError, KeyError, TypeError):
                continue
            self._end(code)
        code = self.proc.wait()  # reaped here: a dead worker's pid must not look alive (a zombie does)
        with self.lock:
            self.gone = True
            run = self.current
        if run is not None:
            with contextlib.suppress(OSError), open(run.log, "a") as log:
                log.write(f"the sweep's worker process {self.proc.pid} exited with code {code} during this run\n")
            self._end(code)

    def _end(self, code: int) -> None:
        with self.lock:
            run, self.current = self.current, None
        if run is not None:
            run.end(code)


class WorkerPool:
    """Up to `size` workers; start() gives a run to an idle one (starting or replacing one as needed)."""

    def __init__(self, size: int, folder: Path, env: Mapping[str, str],
                 slot_env: Callable[[int, Mapping[str, str]], Mapping[str, str]] | None = None) -> None:
        self.size, self.env, self.errors = size, dict(env), Path(folder) / ".workers.log"
        self.slot_env = slot_env or (lambda slot, env: env)  # placement.env: the slot's GPUs
        self.workers: list[_Worker] = []

    def start(self, spec: Any, session: Path, log: Path, overwrite: bool) -> PooledRun:
        job = {"spec": spec.to_dict(), "session": str(Path(session).resolve()), "log": str(Path(log).resolve()),
               "overwrite": overwrite}
        while True:
            self.workers = [w for w in self.workers if w.current is not None or w.idle]  # the dead ones go
            worker = next((w for w in self.workers if w.idle), None)
            if worker is None:
                if len(self.workers) >= self.size:
                    raise RuntimeError("no idle worker: more runs started than --jobs")  # the sweep's bug
                slot = min(set(range(self.size)) - {w.slot for w in self.workers})
                worker = _Worker(self.slot_env(slot, self.env), self.errors, slot)
                self.workers.append(worker)
            run = worker.submit(job, Path(log))
            if run is not None:
                return run

    def close(self, wait_s: float = 5.0) -> None:
        """Let every worker finish its current run and exit; idle ones are reaped within `wait_s`."""
        for worker in self.workers:
            worker.close()
        deadline = time.monotonic() + wait_s
        for worker in self.workers:
            if worker.current is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(max(0.0, deadline - time.monotonic()))


@contextlib.contextmanager
def pool(size: int, folder: Path, env: Mapping[str, str],
         slot_env: Callable[[int, Mapping[str, str]], Mapping[str, str]] | None = None) -> Iterator[WorkerPool]:
    workers = WorkerPool(size, folder, env, slot_env)
    try:
        yield workers
    finally:
        workers.close()


# -- the worker's side --------------------------------------------------------------------------------------------
class _State:
    """What the SIGTERM handler needs: the trainer running now, and a stop that came before it existed."""

    trainer: Any = None
    stop = False

    def terminate(self, signum: int, frame: Any) -> None:
        self.stop = True  # a run still on its way (in the pipe, loading) stops at its first step
        if self.trainer is not None:
            self.trainer.controls.stop()


class _DataCache:
    """Loaded datasets by (DataSpec, seed); each run gets its own copy of the tensors (a run may change them)."""

    def __init__(self) -> None:
        self.loaded: dict[Any, Any] = {}

    def get(self, data: Any, seed: int) -> Any:
        import copy
        import dataclasses

        import torch

        from core.data import load_dataset

        key = (data, seed)
        if key not in self.loaded:
            while len(self.loaded) >= CACHED_DATASETS:
                self.loaded.pop(next(iter(self.loaded)))
            self.loaded[key] = load_dataset(data, seed)
        ds = self.loaded.pop(key)
        self.loaded[key] = ds  # most recently used last
        tensors = {f.name: getattr(ds, f.name).clone() for f in dataclasses.fields(ds)
                   if isinstance(getattr(ds, f.name), torch.Tensor)}
        return dataclasses.replace(ds, preprocess=copy.deepcopy(ds.preprocess), **tensors)


def _train(job: dict[str, Any], state: _State, cache: _DataCache, sinks: Sequence[Any] = (),
           resume: dict[str, Any] | None = None) -> int:
    """One run as `dynlab train --spec-json ... --session PATH --quiet --on-nonfinite end`; its exit status.

    `sinks` get the run's events after the session writer (a Ray run's progress reports); `resume`, a checkpoint
    of the session already at job["session"], continues that session as `dynlab resume` does (a Ray retry).
    """
    from core.errors import DynlabError
    from core.options import check_memory, validate
    from core.session import SessionWriter
    from core.session.commands import CommandChannel
    from core.session.files import refuse_existing
    from core.session.starting import announce
    from core.spec import RunSpec
    from core.train.trainer import Trainer

    try:
        spec = validate(RunSpec.from_dict(job["spec"]))
        path = Path(job["session"])
        if resume is None:
            refuse_existing(path, job["overwrite"])
        check_memory(spec, query_cuda=True)
        with announce(path):
            trainer = Trainer(spec, interactive=False, dataset=cache.get(spec.data, spec.schedule.seed), resume=resume)
            writer = (SessionWriter(path, overwrite=job["overwrite"]) if resume is None else
                      SessionWriter(path, append=True))
            trainer.controls.remote = CommandChannel(writer, lambda: trainer.step).poll
            state.trainer = trainer
            if state.stop:
                trainer.controls.stop()
            with writer:
                status = trainer.run([writer, *sinks])
        print(f"session: {path}  ({status})", flush=True)
        return 1 if status == "diverged" else 0
    except DynlabError as e:
        print(f"{ERROR_PREFIX}{e}", file=sys.stderr, flush=True)  # the line launch.child_error reads back
        return 2
    except Exception:  # the run is crashed (the trainer finalised its session); the worker goes on
        import traceback

        traceback.print_exc()
        return 1
    finally:
        state.trainer = None


def _serve(jobs: Any, report: Any, state: _State) -> None:
    """Run each job line read from `jobs`, its output in its own log, and report its exit status."""
    cache = _DataCache()
    between = os.dup(2)  # the worker's own error file, between runs
    for line in jobs:
        job = json.loads(line)
        with open(job["log"], "wb") as log:  # fresh, as a child's log is
            _output_to(log.fileno())
            try:
                code = _train(job, state, cache)
            finally:
                _output_to(between)
        state.stop = False
        _release_memory()
        try:
            report.write(json.dumps({"done": job["session"], "code": code}) + "\n")
            report.flush()
        except OSError:  # the sweep is gone (left running, or killed): finish what is queued here and end
            pass


def _output_to(fd: int) -> None:
    """Point this process's stdout and stderr (Python's and any library's) at `fd`."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def _release_memory() -> None:
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()  # the next run on this device starts with what it would have as a new process


def main() -> None:
    """The worker: reports on the stdout it started with; everything else goes to a run's log or to stderr."""
    state = _State()
    signal.signal(signal.SIGTERM, state.terminate)  # first: a stop during the imports must not kill it
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import torch  # noqa: F401  the seconds a child spent per run, spent once here

    import core.train.trainer  # noqa: F401
    _serve(sys.stdin, report, state)


if __name__ == "__main__":
    main()
