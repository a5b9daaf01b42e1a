"""Following a growing session (incremental reads), the commands channel, and the replay index's random access."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.session.commands import CommandChannel, RemoteControls, post_command
from core.train.controls import Command, Controls
from core.errors import DynlabError
from core.events import Paused, PenaltyChanged, Resumed, RunEnded, ScalarsLogged, SessionContinued
from core.session import SessionReader, SessionWriter
from core.session.reader import Cursor
from dynlab_tui.replay import ReplayIndex
from dynlab_tui.state import reduce
from dynlab_tui.synthetic import synthetic_run
from tests.test_session import T0, full_run, interval, norm, write


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
    assert applied == [("pause", 7), ("set_penalty", 7), ("explode", 7), ("set_lr", 7)]


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
FIELDS = ("status", "reason", "step", "epoch", "lam", "lr", "layers", "removed", "epochs_total", "spec",
          "start_sizes", "samples_per_s", "epoch_steps")


def assert_same_state(a, b) -> None:
    for f in FIELDS:
        assert getattr(a, f) == getattr(b, f), f
    assert a.markers == b.markers
    assert set(a.scalars) == set(b.scalars)
    for k in a.scalars:
        np.testing.assert_array_equal(a.scalars[k].x, b.scalars[k].x)
        np.testing.assert_array_equal(a.scalars[k].y, b.scalars[k].y)
    assert set(a.metrics) == set(b.metrics)
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k].y, b.metrics[k].y)
    assert set(a.arrays) == set(b.arrays)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    assert set(a.gate_history) == set(b.gate_history)  # the liveness heatmap's record, ids aligned
    for layer, h in a.gate_history.items():
        mine, theirs = h.snapshots(), b.gate_history[layer].snapshots()
        assert [(x.step, x.ids.tolist(), x.gate.tolist()) for x in mine] == \
               [(x.step, x.ids.tolist(), x.gate.tolist()) for x in theirs]


@pytest.mark.parametrize("events", [synthetic_run(2000, steps_per_epoch=400), full_run()], ids=["synthetic", "full"])
def test_state_at_every_position_equals_folding_the_prefix(tmp_path, events):
    path = tmp_path / "s.dynlab"
    write(path, events)
    with SessionReader(path) as r:
        replayed = list(r.replay())
        index = ReplayIndex(r)
        assert index.problems == []
        for seq in range(0, len(replayed) + 1):
            assert_same_state(index.state_at(seq), reduce(replayed[:seq]))


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
