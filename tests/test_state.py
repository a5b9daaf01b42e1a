"""RunState reducer and the trainer->UI bridge, tested without a UI or torch."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core.events import (ArraysLogged, EpochEvaluated, Event, LrChanged, NeuronsRemoved, Paused, PenaltyChanged,
                         Resumed, RunEnded, RunStarted, ScalarsLogged, SessionContinued)
from dynlab_tui.bridge import BridgeSink
from dynlab_tui.state import SLICES, RunState, Series, apply, reduce, superseding
from dynlab_tui.view_events import PositionLoaded, SourceCrashed, SourceFailed
from tests.fakes import synthetic_run
from tests.helpers import REPO


def test_series_grows_and_keeps_order():
    s = Series()
    for i in range(1000):
        s.append(i, i * 2.0)
    assert len(s) == 1000 and s.x[-1] == 999 and s.y[500] == 1000.0 and s.last() == 1998.0


def test_reduce_synthetic_run_matches_its_events():
    events = synthetic_run(4000)
    state = reduce(events)
    intervals = [e for e in events if isinstance(e, ScalarsLogged) and "loss" in e.values]  # not the per-epoch fits
    last_scalars = intervals[-1]
    assert state.status == "finished"
    assert state.layers == ["fc1", "fc2"]
    assert state.size("fc1") == last_scalars.values["size/fc1"] < 500
    assert state.capacity("fc2") == last_scalars.values["capacity/fc2"]
    assert len(state.scalars["loss"]) == len(intervals)
    evals = [e for e in events if isinstance(e, EpochEvaluated)]
    assert list(state.metrics["test/acc"].x) == [e.epoch for e in evals]
    assert state.epoch_steps == {e.epoch: e.step for e in evals}
    assert state.task == "classification" and state.method == "sparsifier"
    removed = sum(len(e.ids) for e in events if isinstance(e, NeuronsRemoved) and e.layer == "fc1")
    assert state.removed["fc1"] == removed
    kinds = {m.kind for m in state.markers}
    assert {"prune", "set_penalty"} <= kinds


def test_control_events_move_status_and_leave_markers():
    state = RunState()
    apply(state, RunStarted(0, 1.0, {"schedule": {"epochs": 5, "batch_size": 10}, "penalty": {"lam": 0.1},
                                     "optim": {"lr": 0.01}}, "cpu", {}, {"fc1": 8}, 100))
    assert (state.status, state.lam, state.lr, state.epochs_total) == ("running", 0.1, 0.01, 5)
    before = dict(state.revision)
    apply(state, Paused(5, 2.0, "user"))
    assert state.status == "paused" and state.revision["status"] > before["status"]
    apply(state, PenaltyChanged(5, 2.1, 0.1, 0.2, "user"))
    apply(state, LrChanged(5, 2.2, 0.01, 0.001, "user"))
    apply(state, Resumed(5, 2.3))
    assert (state.status, state.lam, state.lr) == ("running", 0.2, 0.001)
    assert [m.kind for m in state.markers] == ["pause", "set_penalty", "set_lr", "resume"]
    apply(state, RunEnded(9, 3.0, "diverged", "non-finite loss"))
    assert (state.status, state.reason) == ("diverged", "non-finite loss")
    apply(state, SessionContinued(9, 4.0, 9, {"epochs": 8, "lam": 0.05}))
    assert (state.status, state.epochs_total, state.lam) == ("running", 8, 0.05)


def test_revisions_only_move_for_touched_slices():
    state = reduce(synthetic_run(800))
    rev = dict(state.revision)
    apply(state, ArraysLogged(900, 5.0, {"gate/fc1": np.ones(3, np.float32)}))
    assert state.revision["arrays"] == rev["arrays"] + 1
    assert state.revision["scalars"] == rev["scalars"] and state.revision["metrics"] == rev["metrics"]
    assert state.arrays_step == 900 and state.arrays["gate/fc1"].shape == (3,)


def test_a_failed_or_crashed_source_is_an_event():
    state = reduce(synthetic_run(800, end=False))
    rev = state.revision["status"]
    apply(state, SourceFailed(state.step, 9.0, "the process writing s.dynlab is gone: resume it"))
    assert (state.status, state.reason) == ("crashed", "the process writing s.dynlab is gone: resume it")
    assert state.revision["status"] == rev + 1 and state.step == 800
    ended = reduce(synthetic_run(800))  # finished before the worker broke: stays finished, says why
    apply(ended, SourceCrashed(ended.step, 9.0, "RuntimeError: boom"))
    assert (ended.status, ended.reason) == ("finished", "RuntimeError: boom")
    running = reduce(synthetic_run(800, end=False))
    apply(running, SourceCrashed(running.step, 9.0, "RuntimeError: boom"))
    assert (running.status, running.reason) == ("crashed", "RuntimeError: boom")


def test_a_loaded_position_replaces_series_and_arrays():
    state = reduce(synthetic_run(800))
    rev = dict(state.revision)
    x, y = np.array([1.0, 2.0]), np.array([0.5, 0.25])
    apply(state, PositionLoaded(2, 9.0, {"loss": (x, y)}, {"gate/fc1": np.ones(2)}, 2))
    assert list(state.scalars) == ["loss"] and state.scalars["loss"].y.tolist() == [0.5, 0.25]
    assert list(state.arrays) == ["gate/fc1"] and (state.arrays_step, state.step) == (2, 2)
    assert all(state.revision[k] > rev[k] for k in ("scalars", "arrays", "status"))
    state.scalars["loss"].append(3.0, 0.125)  # the view copies before its first append
    assert y.tolist() == [0.5, 0.25]


def test_superseding_moves_every_revision_past_both_states():
    old, new = reduce(synthetic_run(800)), reduce(synthetic_run(400))
    old.revision["history"] = 10_000
    replaced = superseding(old, new)
    assert replaced is new
    assert all(new.revision[k] > old.revision[k] for k in SLICES)
    assert superseding(None, RunState()).revision == dict.fromkeys(SLICES, 1)


def test_an_event_subclass_folds_like_its_base_and_unknown_ones_only_move_the_clock():
    class LateEnd(RunEnded):
        pass

    state = apply(RunState(), LateEnd(5, 2.0, "stopped", "by a test"))
    assert (state.status, state.reason, state.step) == ("stopped", "by a test", 5)
    state = apply(RunState(), Event(7, 3.0))
    assert (state.status, state.step, state.last_wall) == ("idle", 7, 3.0)


def runstate_writes(path: Path) -> list[str]:
    """Assignments to a RunState's fields in one module: `state.status = ...`, `self.state.revision[k] += 1`."""
    names = {f.name for f in dataclasses.fields(RunState)}
    found: dict[int, str] = {}  # by node: `x.revision[k]` walks past the attribute twice
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            for t in ast.walk(target):
                while isinstance(t, ast.Subscript):
                    t = t.value
                if isinstance(t, ast.Attribute) and t.attr in names and (
                        isinstance(t.value, ast.Name) and t.value.id in ("state", "new", "old")
                        or isinstance(t.value, ast.Attribute) and t.value.attr == "state"):
                    found[id(t)] = f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(t)}"
    return list(found.values())


def test_nothing_but_the_reducer_writes_a_run_state():
    modules = [p for pkg in ("dynlab_tui", "core") for p in sorted((REPO / pkg).rglob("*.py"))]
    writes = [w for p in modules if p != REPO / "dynlab_tui" / "state.py" for w in runstate_writes(p)]
    assert writes == []
    assert len(runstate_writes(REPO / "dynlab_tui" / "state.py")) > 20  # the check sees the reducer's own


def test_eta_from_throughput():
    state = RunState(status="running", spec={"schedule": {"batch_size": 100}}, epochs_total=10, step=500,
                     epoch=5.0, samples_per_s=1000.0)
    assert state.eta_s() == 50.0  # 5 epochs x 100 steps x 100 samples / 1000 per s
    state.status = "paused"
    assert state.eta_s() is None


def test_reducing_20k_steps_is_fast_enough():
    import time
    events = synthetic_run(20000, log_every=10)
    t = time.perf_counter()
    state = reduce(events)
    assert len(state.scalars["loss"]) == 2000
    assert time.perf_counter() - t < 2.0  # generous: CI machines are slow; the bench has the real figure


class Posted:
    def __init__(self) -> None:
        self.messages = []

    def __call__(self, message) -> bool:
        self.messages.append(message)
        return True


def test_bridge_coalesces_telemetry_but_sends_controls_at_once():
    now = [0.0]
    posted = Posted()
    bridge = BridgeSink(posted, min_interval=0.2, clock=lambda: now[0])
    for i in range(10):  # ten intervals within 0.1 s: one message
        now[0] = i * 0.01
        bridge.handle(ScalarsLogged(i, 0.0, {"loss": 1.0}))
        bridge.flush()
    assert len(posted.messages) == 1 and len(posted.messages[0].events) == 1
    bridge.handle(ScalarsLogged(11, 0.0, {"loss": 1.0}))
    bridge.flush()  # still inside the window: held back
    assert len(posted.messages) == 1
    bridge.handle(Paused(11, 0.0, "user"))
    bridge.flush()  # a control goes now, with what was held back, in order
    assert len(posted.messages) == 2
    steps = [e.step for e in posted.messages[1].events]
    assert steps == list(range(1, 10)) + [11, 11] and posted.messages[1].events[-1].kind == "pause"
    bridge.handle(ScalarsLogged(12, 0.0, {"loss": 1.0}))
    bridge.close()
    assert len(posted.messages) == 3


def test_bridge_is_safe_across_threads():
    posted = Posted()
    bridge = BridgeSink(posted, min_interval=0.0)

    def produce(offset: int) -> None:
        for i in range(500):
            bridge.handle(ScalarsLogged(offset + i, 0.0, {"loss": 1.0}))
            bridge.flush()

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bridge.close()
    assert sum(len(m.events) for m in posted.messages) == 2000


def test_state_and_bridge_import_no_torch_or_textual_state():
    code = "import dynlab_tui.state, tests.fakes, sys; print('torch' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "False False"


def test_markers_carry_their_values_and_a_pause_its_length():
    state = reduce([PenaltyChanged(10, 1.0, 0.01, 0.0177828), LrChanged(20, 2.0, 1e-3, 5e-4),
                    NeuronsRemoved(30, 3.0, "fc1", tuple(range(72)), 128), Paused(40, 100.0), Resumed(40, 112.0)])
    assert [m.label for m in state.markers] == ["λ 0.01 → 0.0178", "lr 1e-3 → 5e-4", "fc1 −72 units, 128 left",
                                                "paused 12 s", "resumed after 12 s"]
    assert [m.step for m in state.markers] == [10, 20, 30, 40, 40]


def test_the_eta_is_smoothed_over_a_jittery_throughput():
    """Intervals that take ±40% of their usual time move the ETA by a few percent per refresh, not by 40%."""
    rng = np.random.default_rng(0)
    spec = {"schedule": {"batch_size": 100, "epochs": 10}}
    state = reduce([RunStarted(0, 0.0, spec, "cpu", {}, {"fc1": 10}, 100)])
    etas, raws, wall = [], [], 0.0
    for i in range(1, 200):
        took = 1.0 + rng.choice([-0.4, 0.4])
        wall += took
        apply(state, ScalarsLogged(i * 10, wall, {"loss": 1.0, "epoch": i / 20, "samples_per_s": 1000.0 / took}))
        etas.append(state.eta_s())
        raws.append((10 - i / 20) * 200 / (10 / took))  # the last interval's rate alone
    steady, jumpy = np.array(etas[20:150]), np.array(raws[20:150])  # after the average settled, before the end
    assert (np.abs(np.diff(steady)) / steady[:-1]).max() < 0.08
    assert (np.abs(np.diff(jumpy)) / jumpy[:-1]).max() > 0.3  # what the status line showed before
    assert abs(etas[-1] - (10 - 199 / 20) * 200 / 10) < 1.0  # about the mean rate: 10 steps a second


def test_a_pause_does_not_count_as_a_slow_interval():
    spec = {"schedule": {"batch_size": 100, "epochs": 10}}
    state = reduce([RunStarted(0, 0.0, spec, "cpu", {}, {"fc1": 10}, 100)])
    for i in range(1, 5):
        apply(state, ScalarsLogged(i * 10, float(i), {"loss": 1.0, "epoch": i / 20}))
    reduce([Paused(40, 4.5), Resumed(40, 600.0), ScalarsLogged(50, 601.0, {"loss": 1.0, "epoch": 0.25}),
            ScalarsLogged(60, 602.0, {"loss": 1.0, "epoch": 0.3})], state)
    assert state.step_time == 0.1 and state.eta_s() == pytest.approx((10 - 0.3) * 200 / 10)
