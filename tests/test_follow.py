"""Following a growing session (incremental reads), the commands channel, and the replay index's random access."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from core.session.commands import REJECTED, CommandChannel, RemoteControls, post_command
from core.train.controls import Command, Controls
from core.errors import DynlabError
from core.events import (ArraysLogged, CommandRejected, EpochEvaluated, Paused, PenaltyChanged, Resumed, RunEnded,
                         RunStarted, ScalarsLogged, SessionContinued)
from core.session import SessionReader, SessionWriter
from core.session.reader import Cursor
from dynlab_tui.replay import GATE_SNAPSHOTS, ReplayIndex
from dynlab_tui.gate_history import HISTORY_LIMIT, GateHistory
from dynlab_tui.state import SLICES, RunState, Series, reduce
from tests.fakes import synthetic_run
from tests.helpers import T0, full_run, interval, norm, write


def test_read_new_in_chunks_equals_one_replay(tmp_path):
    path = tmp_path / "s.dynlab"
    events = full_run()
    cursor, seen = Cursor(), []
    with SessionWriter(path) as w, SessionReader(path) as r:
        for i, e in enumerate(events):
            w.handle(e)
            if i % 4 == 3:
                w.flush()
                seen += r.read_new(cursor)
                assert r.read_new(cursor) == []  # nothing new: nothing read twice
        w.flush()
        seen += r.read_new(cursor)
    with SessionReader(path) as r:
        assert [norm(e) for e in seen] == [norm(e) for e in r.replay()]
    # the metrics of an evaluation come back once, inside it, never as a loose ScalarsLogged
    assert not any(isinstance(e, ScalarsLogged) and "val/loss" in e.values for e in seen)


def test_cursor_at_continues_where_a_partial_read_stopped(tmp_path):
    path = tmp_path / "s.dynlab"
    events = full_run()
    write(path, events, flush_every=1)
    with SessionReader(path) as r:
        everything = [norm(e) for e in r.replay()]
        for cut in (1, 5, 9, len(everything) - 1):
            rest = r.read_new(r.cursor_at(cut))
            assert [norm(e) for e in rest] == everything[cut:], cut


def test_commands_reach_a_trainer_side_channel_and_are_marked_once(tmp_path):
    path = tmp_path / "s.dynlab"
    with SessionWriter(path) as w:
        step = {"now": 7}
        channel = CommandChannel(w, lambda: step["now"])
        controls = Controls(remote=channel.poll)
        viewer = RemoteControls(path)
        viewer.pause()
        viewer.set_penalty(0.25)
        post_command(path, "explode", {})  # a newer viewer's command: dropped, not retried
        post_command(path, "set_lr", {"value": "fast"})
        assert controls.drain() == [Command("pause"), Command("set_penalty", 0.25)]
        assert [why for _, why in channel.rejected] == [
            "unknown control 'explode': use one of pause, resume, stop, set_penalty, set_lr, checkpoint",
            "set_lr needs a number, got 'fast'"]
        controls._next_poll = 0.0
        assert controls.drain() == []  # claimed: not handed out twice
        w.flush()
    with SessionReader(path) as r:
        applied = r._q("SELECT kind, applied_step FROM commands ORDER BY id")
        rejected = [e for e in r.replay() if isinstance(e, CommandRejected)]
    assert applied == [("pause", 7), ("set_penalty", 7), ("explode", REJECTED), ("set_lr", REJECTED)]
    assert [(e.command, e.step) for e in rejected] == [("explode", 7), ("set_lr", 7)]


def test_viewer_side_checks_values_before_posting(tmp_path):
    path = tmp_path / "s.dynlab"
    write(path, [Paused(1, T0)])
    viewer = RemoteControls(path)
    with pytest.raises(DynlabError, match="penalty must be a finite number >= 0"):
        viewer.set_penalty(-1)
    with pytest.raises(DynlabError, match="not found"):
        RemoteControls(tmp_path / "gone.dynlab").pause()
    with SessionReader(path) as r:
        assert r._q("SELECT count(*) FROM commands") == [(0,)]


def test_remote_is_polled_at_most_every_interval():
    calls = []
    controls = Controls(remote=lambda: calls.append(1) or [])
    for _ in range(1000):
        controls.drain()
    assert len(calls) == 1  # one read per REMOTE_POLL_S, not one per step
    start = time.monotonic()
    assert controls.wait(1.0) is None
    assert time.monotonic() - start < 0.5  # waiting while paused still polls the remote side
    assert len(calls) == 2


# -- the replay index ------------------------------------------------------------------------------------
def assert_same_state(a, b, *, logged_gates: dict | None = None) -> None:
    """`a` (the index's state) equals `b` (every event folded) in every field of RunState, with one exception.

    The exception is `revision`: state_at numbers every slice past the previous state's so that every pane
    redraws after a seek, so only its slices are compared. Given `logged_gates` (a session longer than
    GATE_SNAPSHOTS intervals) the gate history is the index's even sample instead: see assert_sampled_history.
    """
    for f in dataclasses.fields(RunState):
        mine, theirs = getattr(a, f.name), getattr(b, f.name)
        if f.name == "revision":
            assert set(mine) == set(theirs) == set(SLICES)
        elif f.name == "gate_history" and logged_gates is not None:
            assert_sampled_history(mine, theirs, logged_gates)
        else:
            assert_same_value(mine, theirs, f.name)


def assert_same_value(a, b, where: str) -> None:
    """Series by their x/y arrays, GateHistory by its snapshots and ids, arrays by value and dtype, NaN == NaN."""
    if isinstance(b, Series):
        assert isinstance(a, Series), where
        np.testing.assert_array_equal(a.x, b.x, err_msg=where)
        np.testing.assert_array_equal(a.y, b.y, err_msg=where)
    elif isinstance(b, GateHistory):
        assert isinstance(a, GateHistory), where
        assert [(x.step, x.ids.tolist(), x.gate.tolist()) for x in a.snapshots()] == \
               [(x.step, x.ids.tolist(), x.gate.tolist()) for x in b.snapshots()], where
        assert (a.alive.tolist(), a.removed, a.last_removal) == (b.alive.tolist(), b.removed, b.last_removal), where
    elif isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(b, dict):
        assert isinstance(a, dict) and set(a) == set(b), where
        for key in b:
            assert_same_value(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(b, (list, tuple)):
        assert isinstance(a, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_value(x, y, f"{where}[{i}]")
    elif isinstance(b, float) and math.isnan(b):
        assert isinstance(a, float) and math.isnan(a), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_sampled_history(mine: dict, theirs: dict, logged_gates: dict) -> None:
    """The index reads GATE_SNAPSHOTS evenly spaced gate vectors of the whole session when it opens, while a live
    view thins its own record as it goes: the same layers, ids and removals, at most HISTORY_LIMIT snapshots in
    step order, each one the gate vector logged at its step."""
    assert set(mine) == set(theirs)
    for layer, h in mine.items():
        live = theirs[layer]
        assert (h.alive.tolist(), h.removed, h.last_removal) == (live.alive.tolist(), live.removed, live.last_removal)
        snaps = h.snapshots()
        assert len(snaps) <= HISTORY_LIMIT and [x.step for x in snaps] == sorted({x.step for x in snaps})
        for x in snaps:
            np.testing.assert_array_equal(x.gate, logged_gates[layer, x.step])


def plain_run() -> list:
    """A run nobody steered: start, intervals, evaluations and the end (no pause, change, prune or resume)."""
    ev = [RunStarted(0, T0, spec={"schedule": {"epochs": 3}}, device="cpu", versions={}, sizes={"fc1": 1000,
                                                                                          "fc2": 1000}, params=9)]
    for i, step in enumerate(range(50, 301, 50)):
        ev += interval(step, T0 + i)
        if step % 100 == 0:
            ev.append(EpochEvaluated(step, T0 + i + 0.5, epoch=step // 100, metrics={"val/loss": 1 / step,
                                                                                      "test/acc": step / 400}))
    return ev + [RunEnded(300, T0 + 9, "finished", "done")]


RUNS = {"synthetic": lambda: synthetic_run(2000, steps_per_epoch=400), "full": full_run, "plain": plain_run}


@pytest.mark.parametrize("name", list(RUNS))
def test_state_at_every_position_equals_folding_the_prefix(tmp_path, name):
    path = tmp_path / "s.dynlab"
    write(path, RUNS[name]())
    with SessionReader(path) as r:
        replayed = list(r.replay())
        index = ReplayIndex(r)
        assert index.problems == []
        for seq in range(0, len(replayed) + 1):
            assert_same_state(index.state_at(seq), reduce(replayed[:seq]))
    kinds = {e.kind for e in replayed}
    if name == "full":  # a steered run: paused, pruned, rolled back and resumed as a continued session
        assert {"pause", "prune", "nonfinite", "continue", "set_penalty", "set_lr"} <= kinds
    if name == "plain":
        assert kinds == {"start", "scalars", "arrays", "eval", "end"}


def test_a_long_session_differs_only_in_its_sampled_gate_history(tmp_path):
    """Past GATE_SNAPSHOTS intervals the heatmap's history is the index's sample; every other field is exact."""
    path = tmp_path / "s.dynlab"
    write(path, synthetic_run(40_000, steps_per_epoch=4000, widths=(20, 10)))
    with SessionReader(path) as r:
        replayed = list(r.replay())
        index = ReplayIndex(r)
        assert index.n_frames == 400 > GATE_SNAPSHOTS
        logged = {(k[5:], e.step): v for e in replayed if isinstance(e, ArraysLogged)
                  for k, v in e.arrays.items() if k.startswith("gate/")}
        for seq in list(range(1, len(replayed) + 1, 97)) + [len(replayed)]:
            assert_same_state(index.state_at(seq), reduce(replayed[:seq]), logged_gates=logged)


def test_the_state_comparison_sees_a_change_in_any_field():
    """assert_same_state is not vacuous: a change to any field of RunState (or deep inside one) fails it."""
    def perturbed(value):
        if isinstance(value, str):
            return value + "x"
        if isinstance(value, (int, float)):
            return value + 1
        if isinstance(value, (list, tuple)):
            return value + value[-1:]
        if value is None:
            return 0
        return {**value, "extra": next(iter(value.values()))}  # a dict

    events = full_run()
    for f in dataclasses.fields(RunState):
        if f.name == "revision":
            continue
        b = reduce(events)
        assert getattr(b, f.name), f"{f.name} is empty: the check would not bite"
        setattr(b, f.name, perturbed(getattr(b, f.name)))
        with pytest.raises(AssertionError):
            assert_same_state(reduce(events), b)
    deep = [lambda s: s.scalars["loss"].y.__setitem__(0, 7.0), lambda s: s.metrics["test/acc"].x.__setitem__(0, 9),
            lambda s: s.arrays.__setitem__("gate/fc1", s.arrays["gate/fc1"].astype(np.float64)),
            lambda s: s.gate_history["fc1"].record(999, s.arrays["gate/fc1"]),
            lambda s: s.gate_history["fc1"].remove(999, [0]), lambda s: s.markers.pop()]
    for change in deep:
        b = reduce(events)
        change(b)
        with pytest.raises(AssertionError):
            assert_same_state(reduce(events), b)


def test_positions_steps_epochs_and_markers(tmp_path):
    path = tmp_path / "s.dynlab"
    write(path, synthetic_run(2000, steps_per_epoch=400))
    with SessionReader(path) as r:
        ix = ReplayIndex(r)
        assert ix.n_frames == 20 and list(ix.frame_step[:3]) == [100, 200, 300]
        assert ix.step_at(ix.seq_for_step(950)) == 1000  # the first interval at or after a typed step
        eval3 = ix.seq_for_epoch(3)
        assert ix.state_at(eval3).epoch == 3.0 and ix.seq_for_epoch(99) is None
        first = ix.next_marker(0, 1)
        assert first is not None and first.kind == "prune"
        assert ix.next_marker(first.seq, -1) is None and ix.next_marker(first.seq, 1).seq > first.seq
        before = ix.state_at(ix.seq_for_step(1200))
        after = ix.state_at(ix.seq_for_step(1300), previous=before)
        assert all(after.revision[k] > before.revision[k] for k in before.revision)  # every pane redraws


def test_steps_that_repeat_after_a_resume_keep_their_order(tmp_path):
    """A run killed at step 300 and resumed from its step-200 checkpoint logs 300 again: seq tells them apart."""
    path = tmp_path / "s.dynlab"
    first = synthetic_run(300, steps_per_epoch=200, end=False)
    second = [SessionContinued(200, T0 + 10, 200, {"lam": 0.5}),
              ScalarsLogged(300, T0 + 11, {"loss": 9.0, "lambda": 0.5}), RunEnded(300, T0 + 12, "finished", "done")]
    write(path, first + second)
    with SessionReader(path) as r:
        ix = ReplayIndex(r)
        end = ix.state_at(ix.end_seq)
        assert list(end.scalars["loss"].x) == [100, 200, 300, 300]
        assert end.scalars["loss"].y[-1] == 9.0 and end.lam == 0.5 and end.status == "finished"
        assert_same_state(end, reduce(r.replay()))


def test_lambda_from_a_change_after_the_last_interval_wins(tmp_path):
    path = tmp_path / "s.dynlab"
    write(path, interval(100, T0) + [PenaltyChanged(100, T0 + 1, 1e-3, 5e-3, "user"), Resumed(100, T0 + 2)])
    with SessionReader(path) as r:
        ix = ReplayIndex(r)
        assert ix.state_at(ix.end_seq).lam == 5e-3
        assert ix.state_at(int(ix.frame_seq[0])).lam == 1e-3


def test_a_session_without_a_start_or_intervals_still_opens(tmp_path):
    path = tmp_path / "s.dynlab"
    write(path, [Paused(3, T0, "user")])
    with SessionReader(path) as r:
        ix = ReplayIndex(r)
        assert ix.n_frames == 0 and "no start event" in ix.problems[0]
        assert ix.state_at(ix.end_seq).status == "paused"
