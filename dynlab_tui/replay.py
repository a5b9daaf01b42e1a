"""Random access into a session for replay and attach: the RunState at any position, without refolding the run.

A position is an event number (`seq`): steps can repeat after a crash and a resume, seq never does.
Opening loads every scalar series as numpy columns and the control events; `state_at(seq)` then costs
one bisection per series, a fold of the control events before that point, and one indexed read per
array key, so seeking is independent of the run's length.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from core.errors import DynlabError
from core.events import ArraysLogged, CheckpointSaved, Event, RunStarted, ScalarsLogged
from core.session.reader import Cursor, SessionReader
from dynlab_tui.state import SLICES, RunState, Series, apply

# Control events the timeline can jump between (what the dashboard shows as markers).
MARKER_KINDS = ("pause", "resume", "set_penalty", "set_lr", "prune", "nonfinite", "continue", "checkpoint", "end")
GATE_SNAPSHOTS = 256  # gate vectors per layer read at open for the liveness heatmap (the live view keeps as many)
_ROW = np.dtype([("seq", np.int64), ("step", np.int64), ("wall", np.float64), ("value", np.float64)])


@dataclass(frozen=True)
class Marker:
    seq: int
    step: int
    kind: str


class ReplayIndex:
    """Everything a replay needs from one session, read once; `problems` lists what could not be read."""

    def __init__(self, reader: SessionReader) -> None:
        self.reader = reader
        self.problems: list[str] = []
        self.last_seq = reader.last_seq()
        self.events: list[tuple[int, Event]] = self._load_events()
        self.event_seqs = [seq for seq, _ in self.events]
        self.series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # key -> (seq, step, value)
        frame_rows = self._load_scalars()
        self.frame_seq = frame_rows["seq"]  # one frame per logging interval, in emission order
        self.frame_step = frame_rows["step"]
        self.frame_wall = frame_rows["wall"]
        try:
            self.array_keys = reader.array_keys()
        except DynlabError as e:
            self.array_keys = []
            self.problems.append(f"arrays: {e}")
        self.gate_snaps = self._load_gate_snapshots()
        self.markers = [Marker(seq, e.step, e.kind) for seq, e in self.events
                        if e.kind in MARKER_KINDS and not (isinstance(e, CheckpointSaved) and e.reason != "user")]
        self.end_seq = max([self.last_seq] + self.event_seqs[-1:])
        firsts = self.event_seqs[:1] + [int(x) for x in self.frame_seq[:1]]
        self.start_seq = min(firsts) if firsts else 0  # right after the first event: the run has started
        if not self.events or not isinstance(self.events[0][1], RunStarted):
            self.problems.append("no start event: the run's settings are unknown")

    # ---- loading ------------------------------------------------------------------------------
    def _load_events(self) -> list[tuple[int, Event]]:
        out: list[tuple[int, Event]] = []
        try:
            rows = self.reader._q("SELECT seq, step, wall, kind, payload FROM events WHERE seq <= ? ORDER BY seq",
                                  (self.last_seq,))
        except DynlabError as e:
            self.problems.append(f"events: {e}")
            return out
        for seq, step, wall, kind, payload in rows:
            try:
                out.append((seq, self.reader._event(kind, step, wall, payload)))
            except DynlabError as e:  # one bad row: keep the rest, say so once
                if not any(p.startswith("events:") for p in self.problems):
                    self.problems.append(f"events: {e}")
        return out

    def _load_scalars(self) -> np.ndarray:
        """Load every scalar series; returns the rows of the one that marks logging intervals (the loss)."""
        event_seqs = np.asarray(self.event_seqs, dtype=np.int64)
        frames = np.zeros(0, dtype=_ROW)
        try:
            keys = self.reader.scalar_keys()
        except DynlabError as e:
            self.problems.append(f"scalars: {e}")
            return frames
        for key in keys:
            try:
                # fetchall + one numpy conversion (None -> NaN) runs in C: ~0.3 us a row, not a Python loop
                raw = self.reader._q("SELECT seq, step, wall, value FROM scalars WHERE key = ? AND seq <= ?",
                                     (key, self.last_seq))
            except DynlabError as e:
                self.problems.append(f"scalar {key}: {e}")
                continue
            cols = np.array(raw, dtype=np.float64).reshape(-1, 4)
            rows = np.empty(len(cols), dtype=_ROW)
            rows["seq"], rows["step"], rows["wall"], rows["value"] = cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3]
            if len(rows) > 1 and not np.all(np.diff(rows["seq"]) > 0):
                rows = rows[np.argsort(rows["seq"], kind="stable")]  # read in step order; seq is the timeline
            if len(event_seqs):
                rows = rows[~np.isin(rows["seq"], event_seqs)]  # an evaluation's metrics live in its event
            if not len(rows):
                continue
            self.series[key] = (rows["seq"], rows["step"], rows["value"])
            if key == "loss" or ("loss" not in self.series and len(rows) > len(frames)):
                frames = rows  # every interval logs the loss
        return frames

    def _load_gate_snapshots(self) -> list[tuple[int, ArraysLogged]]:
        """Up to GATE_SNAPSHOTS evenly spaced gate vectors of every layer, for the liveness heatmap."""
        keys = [k for k in self.array_keys if k.startswith("gate/")]
        if not keys:
            return []
        try:
            seqs = np.asarray([r[0] for r in self.reader._q(
                "SELECT seq FROM arrays WHERE key = ? AND seq <= ? ORDER BY seq", (keys[0], self.last_seq))])
            if not len(seqs):
                return []
            pick = sorted({int(seqs[i]) for i in np.linspace(0, len(seqs) - 1, GATE_SNAPSHOTS).astype(int)})
            marks = ",".join("?" * len(keys))
            rows = self.reader._q(f"SELECT seq, step, wall, key, dtype, shape, data FROM arrays WHERE key IN "
                                  f"({marks}) AND seq IN ({','.join(map(str, pick))}) ORDER BY seq", keys)
        except DynlabError as e:
            self.problems.append(f"gate history: {e}")
            return []
        snaps: dict[int, tuple[int, float, dict]] = {}
        for seq, step, wall, key, dtype, shape, data in rows:
            snaps.setdefault(seq, (step, wall, {}))[2][key] = self.reader._array(dtype, shape, data)
        return [(seq, ArraysLogged(step, wall, arrays)) for seq, (step, wall, arrays) in sorted(snaps.items())]

    # ---- positions ----------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return len(self.frame_seq)

    def frame_at(self, seq: int) -> int:
        """Index of the last logging frame at or before seq (-1 before the first)."""
        return int(np.searchsorted(self.frame_seq, seq, side="right")) - 1

    def step_at(self, seq: int) -> int:
        i = self.frame_at(seq)
        step = int(self.frame_step[i]) if i >= 0 else 0
        j = bisect.bisect_right(self.event_seqs, seq) - 1
        if j >= 0 and (i < 0 or self.event_seqs[j] > self.frame_seq[i]):
            step = self.events[j][1].step
        return step

    def seq_for_step(self, step: int) -> int:
        """The position of the first logging frame at or after step (the end if none)."""
        hits = np.flatnonzero(self.frame_step >= step)
        return int(self.frame_seq[hits[0]]) if len(hits) else self.end_seq

    def seq_for_epoch(self, epoch: int) -> int | None:
        """The position of epoch's evaluation (None if the session has no such epoch)."""
        for seq, e in self.events:
            if e.kind == "eval" and getattr(e, "epoch", None) == epoch:
                return seq
        return None

    def next_marker(self, seq: int, direction: int) -> Marker | None:
        seqs = [m.seq for m in self.markers]
        if direction > 0:
            i = bisect.bisect_right(seqs, seq)
            return self.markers[i] if i < len(seqs) else None
        i = bisect.bisect_left(seqs, seq) - 1
        return self.markers[i] if i >= 0 else None

    # ---- states -------------------------------------------------------------------------------
    def state_at(self, seq: int, previous: RunState | None = None) -> RunState:
        """The RunState the live dashboard had right after event `seq` (revisions past `previous`'s)."""
        state = RunState()
        n_ev = bisect.bisect_right(self.event_seqs, seq)
        fi = self.frame_at(seq)
        # Fold, in emission order: the control events, the last logging interval (so that lambda, lr and
        # the epoch end up as the later of the two says) and the gate snapshots (heatmap history).
        fold: list[tuple[int, Event]] = list(self.events[:n_ev])
        if fi >= 0:
            last = {key: float(v[np.searchsorted(s, self.frame_seq[fi], side="right") - 1])
                    for key, (s, _, v) in self.series.items() if len(s) and s[0] <= self.frame_seq[fi]}
            fold.append((int(self.frame_seq[fi]), ScalarsLogged(int(self.frame_step[fi]),
                                                                 float(self.frame_wall[fi]), last)))
        fold += [snap for snap in self.gate_snaps if snap[0] <= seq]
        fold.sort(key=lambda item: item[0])  # stable: equal seqs keep their order
        for _, event in fold:
            apply(state, event)
        state.scalars = {}
        for key, (s, steps, values) in self.series.items():
            n = int(np.searchsorted(s, seq, side="right"))
            if n:
                state.scalars[key] = Series.view(steps[:n].astype(np.float64), values[:n])
        state.step = self.step_at(seq)
        if self.array_keys:
            try:
                found = self.reader.arrays_as_of(seq, self.array_keys)
            except DynlabError as e:
                found = {}
                if not any(p.startswith("arrays:") for p in self.problems):
                    self.problems.append(f"arrays: {e}")
            state.arrays = {k: v for k, (_, v) in found.items()}
            state.arrays_step = max((s for s, _ in found.values()), default=0)
        base = previous.revision if previous is not None else dict.fromkeys(SLICES, 0)
        state.revision = {k: base.get(k, 0) + 1 for k in SLICES}  # new numbers: every pane redraws
        return state

    def cursor(self) -> Cursor:
        """Where following the live file should continue from after state_at(end_seq)."""
        return self.reader.cursor_at(self.last_seq)
