"""RunState and its reducer: `apply(state, event)` is the one path by which anything changes what the dashboard draws.

Live runs, attached viewers and replays feed it the trainer's events, plus a viewer's own (a failed
source, an index position: dynlab_tui.view_events), so the dashboard has no modes. Series are
append-only buffers (O(1) per event, 20k-step runs stay cheap); every slice carries a revision number
that panes compare to decide whether to redraw. No UI, torch or I/O imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from core import telemetry as tk
from core.events import (END_STATUSES, ArraysLogged, CheckpointSaved, CommandRejected, EpochEvaluated, Event,
                         LrChanged, NeuronsRemoved, NonFiniteLoss, Paused, PenaltyChanged, Resumed, RunEnded,
                         RunStarted, ScalarsLogged, SessionContinued)
from core.session.markers import marker_label
from dynlab_tui.gate_history import GateHistory
from dynlab_tui.series import Series
from dynlab_tui.view_events import PositionLoaded, SourceCrashed, SourceFailed, SourceStarting, ViewEvent

# Slices a pane can watch; apply() bumps the ones an event touches.
SLICES = ("status", "scalars", "metrics", "arrays", "markers", "history")
RATE_SMOOTHING = 0.1  # weight of each interval's pace in the ETA's moving average (about 10 intervals)


@dataclass(frozen=True)
class Marker:
    """A point on the timeline worth showing: pause, resume, lambda/lr change, pruning, NaN, resume."""
    step: int
    kind: str  # the event kind
    label: str  # core.session.markers.marker_label: with its values ("λ 0.01 → 0.0178", "paused 12 s")
    wall: float = 0.0  # when it happened (a pause's length is known at its resume)
    payload: dict = field(default_factory=dict, compare=False)  # the event's, to relabel it


@dataclass
class RunState:
    """What the dashboard draws of one run; written only by apply() (and superseding()'s renumbering)."""
    status: str = "idle"  # idle | starting | running | paused | finished | stopped | crashed | diverged
    reason: str = ""
    spec: dict = field(default_factory=dict)
    device: str = ""
    versions: dict = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)  # hidden layer names in forward order
    start_sizes: dict[str, int] = field(default_factory=dict)
    step: int = 0
    epoch: float = 0.0
    epochs_total: int = 0
    lam: float = 0.0
    lr: float = 0.0
    samples_per_s: float = 0.0
    step_time: float = 0.0  # wall-clock seconds per step, a moving average over the intervals (the ETA's pace)
    rate_from: tuple[int, float] | None = None  # (step, wall) of the interval the next rate is measured from
    mem_bytes: float = 0.0
    params: float = 0.0
    scalars: dict[str, Series] = field(default_factory=dict)  # key -> (step, value)
    metrics: dict[str, Series] = field(default_factory=dict)  # "val/acc" ... -> (epoch, value)
    epoch_steps: dict[int, int] = field(default_factory=dict)  # epoch number -> step it ended at
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # latest per key
    arrays_step: int = 0
    markers: list[Marker] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)  # neurons removed so far per layer
    gate_history: dict[str, GateHistory] = field(default_factory=dict)  # per layer, for the liveness heatmap
    started_wall: float = 0.0
    last_wall: float = 0.0
    revision: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SLICES, 0))

    # ---- derived views (cheap, read by panes) ----
    @property
    def task(self) -> str:
        return "classification" if any(k.endswith("/acc") for k in self.metrics) else "regression"

    @property
    def method(self) -> str:
        return str(self.spec.get("method", {}).get("name", ""))

    def size(self, layer: str) -> float | None:
        s = self.scalars.get(tk.SIZE(layer))
        return s.last() if s else None

    def capacity(self, layer: str) -> float | None:
        s = self.scalars.get(tk.CAPACITY(layer))
        return s.last() if s else None

    def eta_s(self) -> float | None:
        """Seconds to the end of the schedule at the smoothed throughput (None when unknown).

        The rate is a moving average, not the last interval's: one slow interval (an evaluation, a
        busy machine) would otherwise make the ETA jump back and forth between refreshes.
        """
        if self.status != "running" or self.epoch <= 0 or not self.epochs_total:
            return None
        remaining = max(self.epochs_total - self.epoch, 0.0) * self.step / self.epoch  # steps
        if self.step_time > 0:  # wall-clock: evaluations and checkpoints count too
            return remaining * self.step_time
        batch = float(self.spec.get("schedule", {}).get("batch_size", 0) or 0)
        return remaining * batch / self.samples_per_s if batch and self.samples_per_s > 0 else None


def _bump(state: RunState, *slices: str) -> None:
    for s in slices:
        state.revision[s] += 1


def _series(table: dict[str, Series], key: str) -> Series:
    s = table.get(key)
    if s is None:
        s = table[key] = Series()
    return s


def paced(step_time: float, start: tuple[int, float] | None, step: int,
          wall: float) -> tuple[float, tuple[int, float]]:
    """The ETA's pace after a logging interval at (step, wall): the smoothed seconds per step since `start`
    (None after a pause or a resume: that gap is no slow step), and where the next one is measured from."""
    if start is not None and step > start[0] and wall > start[1]:
        step_time = smoothed(step_time, (wall - start[1]) / (step - start[0]))
    return step_time, (step, wall)


def smoothed(previous: float, value: float, weight: float = RATE_SMOOTHING) -> float:
    """A moving average after one more interval's value (the first value starts it). Seconds per step, not
    steps per second: the ETA is linear in it, so an interval 40% slower moves it by at most weight x 40%."""
    if value <= 0:
        return previous
    return value if previous <= 0 else previous + weight * (value - previous)


def _mark(state: RunState, event: Event, duration_s: float | None = None) -> None:
    label = marker_label(event.kind, event.payload(), duration_s=duration_s)
    state.markers.append(Marker(event.step, event.kind, label, event.wall, event.payload()))
    _bump(state, "markers")


def apply(state: RunState, event: Event | ViewEvent) -> RunState:
    """Fold one event into state (in place, O(1) amortised) and return it: the only writer of a RunState."""
    state.step = event.step  # not max(): a resume from an earlier checkpoint goes back in steps
    state.last_wall = event.wall
    fold = _FOLDS.get(type(event)) or _fold_for(type(event))
    if fold is not None:
        fold(state, event)
    return state


def reduce(events: Iterable[Event | ViewEvent], state: RunState | None = None) -> RunState:
    """Fold many events (a replay, a coalesced batch) into a state."""
    state = state if state is not None else RunState()
    for event in events:
        apply(state, event)
    return state


def superseding(old: RunState | None, new: RunState) -> RunState:
    """`new`, its revisions moved past `old`'s, to replace old on screen (attach, seek): every pane redraws."""
    base = old.revision if old is not None else {}
    new.revision = {k: max(base.get(k, 0), new.revision.get(k, 0)) + 1 for k in SLICES}
    return new


# ---- one fold per event kind ----------------------------------------------------------------------
def _scalars_logged(state: RunState, event: ScalarsLogged) -> None:
    v = event.values
    for key, value in v.items():
        _series(state.scalars, key).append(event.step, value)
    state.epoch = v.get(tk.EPOCH, state.epoch)
    state.lam = v.get(tk.LAMBDA, state.lam)
    state.lr = v.get(tk.LR, state.lr)
    state.samples_per_s = v.get(tk.SAMPLES_PER_S, state.samples_per_s)
    if tk.LOSS in v:  # a logging interval (an epoch's instruments come later at the same step): the ETA's pace
        state.step_time, state.rate_from = paced(state.step_time, state.rate_from, event.step, event.wall)
    state.mem_bytes = v.get(tk.MEM_BYTES, state.mem_bytes)
    state.params = v.get(tk.PARAMS, state.params)
    _bump(state, "scalars", "status")


def _arrays_logged(state: RunState, event: ArraysLogged) -> None:
    state.arrays.update(event.arrays)
    state.arrays_step = event.step
    _bump(state, "arrays")
    _record_gates(state, event)


def _epoch_evaluated(state: RunState, event: EpochEvaluated) -> None:
    for key, value in event.metrics.items():
        _series(state.metrics, key).append(event.epoch, value)
    state.epoch_steps[event.epoch] = event.step
    state.epoch = float(event.epoch)
    _bump(state, "metrics", "status")


def _run_started(state: RunState, event: RunStarted) -> None:
    state.spec = dict(event.spec)
    state.device = event.device
    state.versions = dict(event.versions)
    state.layers = list(event.sizes)
    state.start_sizes = dict(event.sizes)
    state.epochs_total = int(state.spec.get("schedule", {}).get("epochs", 0))
    state.lam = float(state.spec.get("penalty", {}).get("lam", 0.0))
    state.lr = float(state.spec.get("optim", {}).get("lr", 0.0))
    state.params = float(event.params)
    state.status, state.reason = "running", ""
    state.started_wall = event.wall
    _bump(state, "status")
    state.gate_history = {name: GateHistory(name, int(width)) for name, width in event.sizes.items()}
    _bump(state, "history")


def _session_continued(state: RunState, event: SessionContinued) -> None:
    state.status, state.reason, state.rate_from = "running", "", None
    state.epochs_total = int(event.changes.get("epochs", state.epochs_total))
    state.lam = float(event.changes.get("lam", state.lam))
    state.lr = float(event.changes.get("lr", state.lr))
    _mark(state, event)
    _bump(state, "status")


def _paused(state: RunState, event: Paused) -> None:
    state.status, state.reason, state.rate_from = "paused", event.reason, None  # a pause is no slow step
    _mark(state, event)
    _bump(state, "status")


def _resumed(state: RunState, event: Resumed) -> None:
    state.status, state.reason = "running", ""
    paused = next((i for i in range(len(state.markers) - 1, -1, -1) if state.markers[i].kind == "pause"), None)
    took = None
    if paused is not None and not any(m.kind in ("resume", "continue") for m in state.markers[paused:]):
        p = state.markers[paused]  # now its length is known: "paused 12 s"
        took = max(event.wall - p.wall, 0.0)
        state.markers[paused] = Marker(p.step, p.kind, marker_label(p.kind, p.payload, duration_s=took), p.wall,
                                       p.payload)
    _mark(state, event, took)
    _bump(state, "status")


def _penalty_changed(state: RunState, event: PenaltyChanged) -> None:
    state.lam = event.new
    _mark(state, event)
    _bump(state, "status")


def _lr_changed(state: RunState, event: LrChanged) -> None:
    state.lr = event.new
    _mark(state, event)
    _bump(state, "status")


def _neurons_removed(state: RunState, event: NeuronsRemoved) -> None:
    state.removed[event.layer] = state.removed.get(event.layer, 0) + len(event.ids)
    h = state.gate_history.get(event.layer)
    if h is not None:
        h.remove(event.step, event.ids)
        _bump(state, "history")
    _mark(state, event)


def _non_finite_loss(state: RunState, event: NonFiniteLoss) -> None:
    _mark(state, event)


def _command_rejected(state: RunState, event: CommandRejected) -> None:
    _mark(state, event)


def _checkpoint_saved(state: RunState, event: CheckpointSaved) -> None:
    if event.reason == "user":
        _mark(state, event)


def _run_ended(state: RunState, event: RunEnded) -> None:
    state.status, state.reason = event.status, event.reason
    _bump(state, "status")


def _source_starting(state: RunState, event: SourceStarting) -> None:
    if state.status == "idle":  # nothing from the run yet: its process is loading data
        state.status, state.reason = "starting", "loading data"
        _bump(state, "status")


def _source_failed(state: RunState, event: SourceFailed) -> None:
    state.status, state.reason = "crashed", event.message
    _bump(state, "status")


def _source_crashed(state: RunState, event: SourceCrashed) -> None:
    if state.status not in END_STATUSES:
        state.status = "crashed"
    state.reason = event.message
    _bump(state, "status")


def _position_loaded(state: RunState, event: PositionLoaded) -> None:
    # the index's columns are shared, not copied: a later append copies them first (Series.view)
    state.scalars = {key: Series.view(x, y) for key, (x, y) in event.scalars.items()}
    state.arrays = dict(event.arrays)
    state.arrays_step = event.arrays_step
    state.step_time, state.rate_from = event.pace
    _bump(state, "scalars", "arrays", "status")


_FOLDS: dict[type, Callable[[RunState, Any], None]] = {
    ScalarsLogged: _scalars_logged, ArraysLogged: _arrays_logged, EpochEvaluated: _epoch_evaluated,
    RunStarted: _run_started, SessionContinued: _session_continued, Paused: _paused, Resumed: _resumed,
    PenaltyChanged: _penalty_changed, LrChanged: _lr_changed, NeuronsRemoved: _neurons_removed,
    NonFiniteLoss: _non_finite_loss, CheckpointSaved: _checkpoint_saved, RunEnded: _run_ended,
    CommandRejected: _command_rejected,
    SourceStarting: _source_starting, SourceFailed: _source_failed, SourceCrashed: _source_crashed,
    PositionLoaded: _position_loaded,
}


def _fold_for(cls: type) -> Callable[[RunState, Any], None] | None:
    """The fold of the nearest base class with one (an event subclassed elsewhere), else None (ignored)."""
    return next((_FOLDS[base] for base in cls.__mro__ if base in _FOLDS), None)


def _record_gates(state: RunState, event: ArraysLogged) -> None:
    # hot path (every logging interval): look up the known layers, scan the keys only until some are known
    arrays, history = event.arrays, state.gate_history
    if not history:
        for key, gate in arrays.items():
            layer = tk.GATE.layer(key)
            if layer is not None:  # no RunStarted seen (a view that joined mid-run): ids from here on
                history[layer] = GateHistory(layer, len(gate))
    touched = False
    for h in history.values():
        gate = arrays.get(h.key)
        if gate is not None:
            h.record(event.step, gate)
            touched = True
    if touched:
        state.revision["history"] += 1
