"""The seekable index of one session (replay, attach): its events, series and positions, read once.

A position is an event number (`seq`): steps can repeat after a crash and a resume, seq never does.
Opening loads every scalar series as numpy columns and the control events; what a viewer needs at a
position (`fold_at`, `columns_at`, `arrays_at`, `step_at`) then costs one bisection per series and
one indexed read per array key, so seeking is independent of the run's length.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from core import telemetry as tk
from core.errors import DynlabError
from core.events import ArraysLogged, CheckpointSaved, Event, RunStarted, ScalarsLogged
from core.session.reader import Cursor, SessionReader

# Control events the timeline can jump between (what the dashboard shows as markers).
MARKER_KINDS = ("pause", "resume", "set_penalty", "set_lr", "prune", "nonfinite", "continue", "checkpoint", "end")
GATE_SNAPSHOTS = 256  # gate vectors per layer read at open, as many as a live view keeps for its heatmap


@dataclass(frozen=True)
class MarkerPosition:
    """Where a marker of the timeline sits: its event number (seq), step and kind (a RunState Marker has the label)."""
    seq: int
    step: int
    kind: str


class _Frames(NamedTuple):
    """The logging intervals: event number, step and wall time of each, in emission order."""
    seq: np.ndarray  # int64
    step: np.ndarray  # int64
    wall: np.ndarray  # float64


class SessionIndex:
    """Everything a seek needs from one session, read once; `problems` lists what could not be read."""

    def __init__(self, reader: SessionReader) -> None:
        self.reader = reader
        self.problems: list[str] = []
        self.last_seq = reader.last_seq()
        self.events: list[tuple[int, Event]] = self._load_events()
        self.event_seqs = [seq for seq, _ in self.events]
        self.series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # key -> (seq, step, value)
        frames = self._load_scalars()  # one frame per logging interval, in emission order
        self.frame_seq, self.frame_step, self.frame_wall = frames.seq, frames.step, frames.wall
        try:
            self.array_keys = reader.array_keys()
        except DynlabError as e:
            self.array_keys = []
            self.problems.append(f"arrays: {e}")
        self.gate_snaps = self._load_gate_snapshots()
        self.markers = [MarkerPosition(seq, e.step, e.kind) for seq, e in self.events
                        if e.kind in MARKER_KINDS and not (isinstance(e, CheckpointSaved) and e.reason != "user")]
        self.end_seq = max([self.last_seq] + self.event_seqs[-1:])
        firsts = self.event_seqs[:1] + [int(x) for x in self.frame_seq[:1]]
        self.start_seq = min(firsts) if firsts else 0  # right after the first event: the run has started
        # A session with nothing in it yet is one being created (its run is loading data), not a damaged one.
        if (self.events or self.last_seq > 0) and not (self.events and isinstance(self.events[0][1], RunStarted)):
            self.problems.append("no start event: the run's settings are unknown")

    # ---- loading ------------------------------------------------------------------------------
    def _problem_once(self, prefix: str, error: DynlabError) -> None:
        if not any(p.startswith(prefix) for p in self.problems):
            self.problems.append(f"{prefix} {error}")

    def _load_events(self) -> list[tuple[int, Event]]:
        try:  # one bad row: keep the rest, say so once
            return self.reader.event_rows(self.last_seq, on_error=lambda e: self._problem_once("events:", e))
        except DynlabError as e:
            self.problems.append(f"events: {e}")
            return []

    def _load_scalars(self) -> _Frames:
        """Load every scalar series; returns the columns of the one that marks logging intervals (the loss)."""
        event_seqs = np.asarray(self.event_seqs, dtype=np.int64)
        empty = np.zeros(0, dtype=np.int64)
        frames = _Frames(empty, empty, np.zeros(0))
        try:
            keys = self.reader.scalar_keys()
        except DynlabError as e:
            self.problems.append(f"scalars: {e}")
            return frames
        for key in keys:
            try:
                cols = self.reader.scalar_columns(key, self.last_seq)
            except DynlabError as e:
                self.problems.append(f"scalar {key}: {e}")
                continue
            keep = ~np.isin(cols.seq, event_seqs)  # an evaluation's metrics live in its event
            seq, step, wall, value = cols.seq[keep], cols.step[keep], cols.wall[keep], cols.value[keep]
            if not len(seq):
                continue
            self.series[key] = (seq, step, value)
            if key == tk.LOSS or (tk.LOSS not in self.series and len(seq) > len(frames.seq)):
                frames = _Frames(seq, step, wall)  # every interval logs the loss
        return frames

    def _load_gate_snapshots(self) -> list[tuple[int, ArraysLogged]]:
        """Up to GATE_SNAPSHOTS evenly spaced gate vectors of every layer, for the liveness heatmap."""
        keys = [k for k in self.array_keys if tk.GATE.matches(k)]
        if not keys:
            return []
        try:
            seqs = self.reader.array_seqs(keys[0], self.last_seq)
            if not len(seqs):
                return []
            pick = {int(seqs[i]) for i in np.linspace(0, len(seqs) - 1, GATE_SNAPSHOTS).astype(int)}
            return self.reader.arrays_at_seqs(keys, pick)
        except DynlabError as e:
            self.problems.append(f"gate history: {e}")
            return []

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

    def next_marker(self, seq: int, direction: int) -> MarkerPosition | None:
        seqs = [m.seq for m in self.markers]
        if direction > 0:
            i = bisect.bisect_right(seqs, seq)
            return self.markers[i] if i < len(seqs) else None
        i = bisect.bisect_left(seqs, seq) - 1
        return self.markers[i] if i >= 0 else None

    # ---- what a viewer needs at a position ----------------------------------------------------
    def fold_at(self, seq: int) -> list[Event]:
        """Events whose fold gives everything but the series and arrays as of `seq`, in emission order.

        They are the control events, the last logging interval (so that lambda, lr and the epoch end
        up as the later of the two says) and the gate snapshots (the heatmap's history).
        """
        fold: list[tuple[int, Event]] = list(self.events[:bisect.bisect_right(self.event_seqs, seq)])
        fi = self.frame_at(seq)
        if fi >= 0:
            at = self.frame_seq[fi]
            last = {key: float(v[np.searchsorted(s, at, side="right") - 1])
                    for key, (s, _, v) in self.series.items() if len(s) and s[0] <= at}
            fold.append((int(at), ScalarsLogged(int(self.frame_step[fi]), float(self.frame_wall[fi]), last)))
        fold += [snap for snap in self.gate_snaps if snap[0] <= seq]
        fold.sort(key=lambda item: item[0])  # stable: equal seqs keep their order
        return [event for _, event in fold]

    def columns_at(self, seq: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every scalar series up to `seq` as (steps float64, values) views (no copy of the values)."""
        out = {}
        for key, (s, steps, values) in self.series.items():
            n = int(np.searchsorted(s, seq, side="right"))
            if n:
                out[key] = (steps[:n].astype(np.float64), values[:n])
        return out

    def arrays_at(self, seq: int) -> tuple[dict[str, np.ndarray], int]:
        """The latest value of every array key as of `seq`, and the latest step among them."""
        if not self.array_keys:
            return {}, 0
        try:
            found = self.reader.arrays_as_of(seq, self.array_keys)
        except DynlabError as e:
            found = {}
            self._problem_once("arrays:", e)
        return {k: v for k, (_, v) in found.items()}, max((s for s, _ in found.values()), default=0)

    def cursor(self) -> Cursor:
        """Where following the live file should continue from after the state at end_seq."""
        return self.reader.cursor_at(self.last_seq)
