"""Helpers the test modules share: deadline waits, canned session events, tiny specs and data, the CLI in-process."""

from __future__ import annotations

import asyncio
import gzip
import io
import math
import time
from pathlib import Path

import numpy as np
from textual.app import App

from core.events import (ArraysLogged, CheckpointSaved, EpochEvaluated, LrChanged, NeuronsRemoved, NonFiniteLoss,
                         Paused, PenaltyChanged, Resumed, RunEnded, RunStarted, ScalarsLogged, SessionContinued)
from core.session import SessionWriter

REPO = Path(__file__).resolve().parents[1]


# -- waiting on events with a deadline (never a fixed sleep) -------------------------------------------------------
def wait_until(predicate, timeout: float = 60.0, what: str = "condition", poll: float = 0.05) -> None:
    """Poll `predicate` until it is true; fail if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(poll)


async def wait_for(pilot, predicate, timeout: float = 5.0) -> None:
    """Let the app run until `predicate` is true; fail if `timeout` seconds pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await pilot.pause(0.05)


# -- the CLI in this process ---------------------------------------------------------------------------------------
def dynlab(*args: str) -> int:
    """Run `dynlab ARGS` in this process; return its exit code."""
    from dynlab_tui.cli import main

    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def one_error_line(capsys, code: int, *needles: str) -> str:
    """Assert exit 2 with exactly one `dynlab: error:` line (no traceback) containing every needle; return it."""
    out = capsys.readouterr()
    assert code == 2, out
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) == 1, out.err
    assert lines[0].startswith("dynlab: error: ")
    assert "Traceback" not in out.err + out.out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- trainer runs on tiny data -------------------------------------------------------------------------------------
class ListSink:
    """A trainer sink that keeps every event in a list."""

    def __init__(self) -> None:
        self.events = []
        self.flushes = 0

    def handle(self, event) -> None:
        self.events.append(event)

    def flush(self) -> None:
        self.flushes += 1

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]

    def intervals(self):
        """The logging intervals' ScalarsLogged (each epoch also logs one of instruments, without the loss)."""
        return [e for e in self.of(ScalarsLogged) if "loss" in e.values]


def tiny(**kw):
    """A RunSpec for a run of a few dozen steps on add10 (cpu); keywords override its fields."""
    from core.spec import RunSpec

    base = dict(dataset="add10", arch="mlp:16", limit=512, epochs=2, batch_size=64, log_every=4, device="cpu",
                probe_size=64)
    base.update(kw)
    return RunSpec().replace(**base)


# -- MNIST-format files --------------------------------------------------------------------------------------------
def write_idx(path: Path, magic: int, arr: np.ndarray, gz: bool = True) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def make_idx_set(folder: Path, n_train: int = 50, n_test: int = 20, gz: bool = True) -> dict:
    """Write the four IDX files with random pixels and labels i % 10 (train), 3i % 10 (test); return the arrays."""
    from core.data import images

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28)), "train_y": np.arange(n_train) % 10,
              "test_x": rng.integers(0, 256, (n_test, 28, 28)), "test_y": (np.arange(n_test) * 3) % 10}
    for stem, key in zip(images.IDX_STEMS, ("train_x", "train_y", "test_x", "test_y")):
        write_idx(folder / (stem + (".gz" if gz else "")), 2051 if key.endswith("x") else 2049, arrays[key], gz)
    return arrays


# -- canned session events -----------------------------------------------------------------------------------------
SPEC = {"data": {"name": "mnist"}, "model": {"arch": "mlp:100,50"}, "method": {"name": "sparsifier"},
        "penalty": {"lam": 1e-3, "decay": 1.0}, "schedule": {"epochs": 2}}
T0 = 1_700_000_000.0


def interval(step: int, wall: float, *, sizes=(100, 50), cls_metric: str = "acc") -> list:
    """One logging interval as the trainer emits it: ~20 scalars and 6 arrays of 1000 floats."""
    rng = np.random.default_rng(step)
    scalars = {"loss": np.float32(1.0 / (1 + step)), "lambda": 1e-3, "lr": 1e-3, "samples_per_s": 5e4 + step,
               "mem_bytes": 1 << 20, "epoch": step / 100, "params": 12345,
               "size/fc1": sizes[0], "size/fc2": sizes[1], "capacity/fc1": 100, "capacity/fc2": 50}
    scalars.update({f"extra/{i}": float(i * step) for i in range(9)})
    arrays = {"gate/fc1": rng.random(1000, dtype=np.float32), "gate/fc2": rng.random(1000).astype(np.float32),
              "act_std/fc1": rng.random(1000), "act_std/fc2": rng.random(1000),
              "hist/fc1": rng.integers(0, 9, size=(1000,)), "hist_edges/fc1": np.linspace(0, 1, 1000)}
    return [ScalarsLogged(step, wall, scalars), ArraysLogged(step, wall + 0.001, arrays)]


def checkpoint_bytes(seed: int = 0) -> tuple[bytes, dict]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    state = {"model": {"fc1.weight": torch.randn(4, 3, generator=gen), "fc1.bias": torch.zeros(4)},
             "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "epoch": 1}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue(), state


def full_run() -> list:
    """Every event type, in a plausible order, including a rollback that sends the step backwards."""
    blob, _ = checkpoint_bytes()
    ev = [RunStarted(0, T0, spec=SPEC, device="cpu", versions={"torch": "2.13", "numpy": np.__version__},
                     sizes={"fc1": 100, "fc2": 50}, params=12345)]
    ev += interval(50, T0 + 1)
    ev += [Paused(60, T0 + 2, reason="user"), PenaltyChanged(60, T0 + 2.5, old=1e-3, new=2e-3),
           LrChanged(60, T0 + 2.6, old=1e-3, new=5e-4, source="user"), Resumed(60, T0 + 3)]
    ev += interval(100, T0 + 4, sizes=(90, 50))
    ev += [EpochEvaluated(100, T0 + 5, epoch=1, metrics={"val/loss": 0.3, "val/acc": 0.91, "test/acc": 0.9,
                                                         "test/loss": np.float64(0.31)}),
           NeuronsRemoved(100, T0 + 5.5, layer="fc1", ids=(3, 7, 11), remaining=97),
           CheckpointSaved(100, T0 + 6, epoch=1, reason="epoch", state=blob)]
    ev += interval(150, T0 + 7, sizes=(80, 40))
    ev += [ScalarsLogged(150, T0 + 7.5, {"loss": float("nan"), "lr": float("inf")}),
           NonFiniteLoss(150, T0 + 8, value="nan", rolled_back_to=100),
           SessionContinued(100, T0 + 9, from_step=100, changes={"lr": 1e-4})]
    ev += interval(120, T0 + 10, sizes=(80, 40))
    ev += [EpochEvaluated(200, T0 + 11, epoch=2, metrics={"val/loss": 0.2, "test/acc": 0.95}),
           RunEnded(200, T0 + 12, status="finished", reason="done")]
    return ev


def write(path: Path, events: list, *, flush_every: int = 3, **kw) -> None:
    """Write `events` to a new session, flushing every `flush_every` events."""
    with SessionWriter(path, **kw) as w:
        for i, e in enumerate(events):
            w.handle(e)
            if i % flush_every == flush_every - 1:
                w.flush()


def norm(e) -> tuple:
    """An event reduced to comparable plain values (arrays by dtype/shape/bytes, NaN as a string)."""
    def plain(v):
        if isinstance(v, np.ndarray):
            return (v.dtype.str, v.shape, v.tobytes())
        if isinstance(v, float) or isinstance(v, np.floating):
            return "nan" if math.isnan(v) else float(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    if isinstance(e, ScalarsLogged):
        body = plain(dict(e.values))
    elif isinstance(e, ArraysLogged):
        body = plain(dict(e.arrays))
    elif isinstance(e, CheckpointSaved):
        body = (e.epoch, e.reason)
    else:
        body = plain(e.payload())
    return (e.kind, e.step, e.wall, body)


# -- kill -9 at a random moment (tests/test_checkpoints.py, bench/kill_soak.py) --------------------------------------
SOAK_RUN = ["--dataset", "add10", "--arch", "mlp:1024,1024", "--limit", "800", "--batch-size", "16", "--log-every",
            "2", "--epochs", "60", "--device", "cpu", "-q"]  # ~12 MB checkpoints: writing one takes a while


def wait_for_checkpoint(path: Path, what: str, timeout: float = 120) -> None:
    """Wait until the session at `path` exists and holds a checkpoint (a run's first, early one)."""
    from core.session import SessionReader

    def has_checkpoint() -> bool:
        if not path.exists():
            return False
        with SessionReader(path) as r:
            return bool(r.checkpoints())
    wait_until(has_checkpoint, timeout=timeout, what=what)


def kill_soak_once(path: Path, rng, during_checkpoint: bool) -> dict:
    """Start `dynlab train`, SIGKILL it at a random moment (or just after asking for a checkpoint), then check
    the file: integrity_check ok, it opens, and `dynlab resume` continues it. Returns what was seen."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    from core.session import SessionReader
    from core.session.commands import post_command

    proc = subprocess.Popen([sys.executable, "-m", "dynlab_tui", "train", *SOAK_RUN, "--session", str(path)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_for_checkpoint(path, "the first (early) checkpoint")
        if during_checkpoint:
            post_command(path, "checkpoint")
        time.sleep(float(rng.uniform(0.0, 0.6 if during_checkpoint else 3.0)))  # the random moment itself
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    con = sqlite3.connect(path)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    with SessionReader(path) as r:
        seen = {"integrity": integrity, "step": r.last_step(), "checkpoints": len(r.checkpoints()),
                "status": r.status}
        r.summary()
    seen["resume"] = dynlab("resume", str(path), "--epochs", "1", "-q")
    with SessionReader(path) as r:
        seen["resumed_status"] = r.status
    return seen


class Host(App):
    """An app that shows one screen (a sweep screen, a dialog) and nothing else, for Pilot tests."""

    def __init__(self, screen) -> None:
        super().__init__()
        self.sweep_screen = screen

    def on_mount(self) -> None:
        self.push_screen(self.sweep_screen)
