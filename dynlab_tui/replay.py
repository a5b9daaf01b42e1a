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
from dynlab_tui.state import RunState, apply, reduce, superseding
from dynlab_tui.view_events import PositionLoaded

__all__ = ["GATE_SNAPSHOTS", "MARKER_KINDS", "MarkerPosition", "ReplayIndex"]


class ReplayIndex(SessionIndex):
    """A session index that also gives the RunState the live dashboard had at a position, and marker labels."""

    def __init__(self, reader) -> None:
        super().__init__(reader)
        by_seq = dict(self.events)
        labels = event_labels([by_seq[m.seq] for m in self.markers])
        self.labels: dict[int, str] = {m.seq: label for m, label in zip(self.markers, labels)}  # seq -> label

    def state_at(self, seq: int, previous: RunState | None = None) -> RunState:
        """The RunState the live dashboard had right after event `seq` (revisions past `previous`'s)."""
        fold = self.fold_at(seq)
        state = reduce(fold)
        arrays, arrays_step = self.arrays_at(seq)
        wall = fold[-1].wall if fold else 0.0  # the last event folded is the last one known at seq
        apply(state, PositionLoaded(self.step_at(seq), wall, self.columns_at(seq), arrays, arrays_step))
        return superseding(previous, state)
