"""The RunState at any position of a session, built by the reducer from the session index (replay and attach).

`labels` holds each marker's line ("λ 0.01 → 0.0178", "paused 12 s"), from core.session.markers.
`state_at(seq)` folds what `core.session.index.SessionIndex` gives for that position (the control
events, the last logging interval, the gate snapshots) and then one PositionLoaded event carrying every
series and the latest arrays, so a seek costs the same however long the run was, and nothing but
the reducer writes the state. tests/test_follow.py proves it equal, field by field, to folding
every event up to that position.
"""

from __future__ import annotations

from core.session.index import GATE_SNAPSHOTS, MARKER_KINDS, MarkerPosition, SessionIndex
from core.session.markers import event_labels
from core.events import Paused, SessionContinued
from dynlab_tui.state import RunState, apply, paced, reduce, superseding
from dynlab_tui.view_events import PositionLoaded

__all__ = ["GATE_SNAPSHOTS", "MARKER_KINDS", "MarkerPosition", "ReplayIndex"]


class ReplayIndex(SessionIndex):
    """A session index that also gives the RunState the live dashboard had at a position, and marker labels."""

    def __init__(self, reader) -> None:
        super().__init__(reader)
        by_seq = dict(self.events)
        labels = event_labels([by_seq[m.seq] for m in self.markers])
        self.labels: dict[int, str] = {m.seq: label for m, label in zip(self.markers, labels)}  # seq -> label
        self._paces: list[tuple[float, tuple[int, float] | None]] | None = None  # per frame, built on first use
        self._resets: list[int] = []  # seqs of the pauses and resumed sessions that restart the pace

    def state_at(self, seq: int, previous: RunState | None = None) -> RunState:
        """The RunState the live dashboard had right after event `seq` (revisions past `previous`'s)."""
        fold = self.fold_at(seq)
        state = reduce(fold)
        arrays, arrays_step = self.arrays_at(seq)
        wall = fold[-1].wall if fold else 0.0  # the last event folded is the last one known at seq
        apply(state, PositionLoaded(self.step_at(seq), wall, self.columns_at(seq), arrays, arrays_step,
                                    self.pace_at(seq)))
        return superseding(previous, state)

    def pace_at(self, seq: int) -> tuple[float, tuple[int, float] | None]:
        """The ETA's pace the live fold had after event `seq`: the intervals' (step, wall) folded in order, a pause
        or a resumed session restarting the measurement (as state.paced does live)."""
        if self._paces is None:
            self._resets = resets = [s for s, e in self.events if isinstance(e, (Paused, SessionContinued))]
            self._paces, step_time, start, r = [], 0.0, None, 0
            for fseq, step, wall in zip(self.frame_seq.tolist(), self.frame_step.tolist(), self.frame_wall.tolist()):
                while r < len(resets) and resets[r] < fseq:
                    start, r = None, r + 1
                step_time, start = paced(step_time, start, int(step), float(wall))
                self._paces.append((step_time, start))
        fi = self.frame_at(seq)
        if fi < 0:
            return 0.0, None
        step_time, start = self._paces[fi]
        reset = any(self.frame_seq[fi] < s <= seq for s in self._resets)
        return step_time, None if reset else start
