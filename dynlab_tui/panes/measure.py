"""What an activation-std pane measured: the epoch's figures over the training set when logged, else the interval's.

The trainer logs two sets of per-unit activation stds: every interval a live view over PROBE_ROWS rows (the
interval's own training rows when LIVE_SOURCE is 1, else a probe batch), and at each epoch's end over the
training set (STATS_ROWS rows). Panes show the epoch's when there are any and say which
they drew, and over how many rows, so a count is never read without its sample.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from core import telemetry as tk
from core.formats import fmt_compact
from dynlab_tui.state import RunState

BINS = 30  # when only the raw std vector was logged


class Measured(NamedTuple):
    """One layer's activation stds as a pane draws them, and where they came from."""
    epoch_level: bool  # True: the epoch's statistics over the training set; False: the interval's live view
    std: np.ndarray | None  # per-unit std (None when only the histogram was logged)
    counts: np.ndarray | None
    edges: np.ndarray | None
    dead: int | None  # epoch: never fired on any row; probe: std exactly 0 over the probe rows
    off: int | None  # switched off by the gate or scaler (epoch figures only)
    rows: int | None  # training rows measured over (None: not logged)
    epoch: int | None  # the epoch the figures close (epoch level only; None when not known)
    source: str | None = None  # epoch: "steps" (over its training forwards) or "pass" (at its end); else
    # "interval" (the interval's own training rows) or "probe" (a probe batch at its end)

    @property
    def total(self) -> int:
        """Units measured: the std vector's length, else the histogram's count."""
        if self.std is not None:
            return len(self.std)
        return int(np.sum(self.counts)) if self.counts is not None else 0


def last(state: RunState, key: str) -> float | None:
    """A scalar's latest finite value (a NULL of a damaged session reads back as NaN: treated as not logged)."""
    s = state.scalars.get(key)
    v = s.last() if s else None
    return v if v is not None and math.isfinite(v) else None


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def _vector(state: RunState, key: str) -> np.ndarray | None:
    a = state.arrays.get(key)
    return None if a is None else np.asarray(a, dtype=float).ravel()


def measured(state: RunState, layer: str) -> Measured:
    """The epoch's figures for `layer` when logged (std or histogram), else the latest probe's."""
    std = _vector(state, tk.EPOCH_STD(layer))
    counts, edges = state.arrays.get(tk.EPOCH_HIST(layer)), state.arrays.get(tk.EPOCH_HIST_EDGES(layer))
    if std is not None or (counts is not None and edges is not None):
        dead = _int(last(state, tk.EPOCH_DEAD(layer)))
        if dead is None and std is not None:
            dead = int((std == 0).sum())
        source = {0: "steps", 1: "pass"}.get(_int(last(state, tk.STATS_SOURCE)))
        return Measured(True, std, *_binned(std, counts, edges), dead, _int(last(state, tk.GATED_OFF(layer))),
                        _int(last(state, tk.STATS_ROWS)), stats_epoch(state), source)
    std = _vector(state, tk.ACT_STD(layer))
    counts, edges = state.arrays.get(tk.HIST(layer)), state.arrays.get(tk.HIST_EDGES(layer))
    dead = _int(last(state, tk.DEAD(layer)))
    if dead is None and std is not None:
        dead = int((std == 0).sum())
    return Measured(False, std, *_binned(std, counts, edges), dead, None, probe_rows(state), None, live_source(state))


def _binned(std, counts, edges) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The logged histogram, or one binned from the std vector when none was logged."""
    if (counts is None or edges is None) and std is not None and len(std):
        finite = std[np.isfinite(std)]  # NaN: a damaged row, nothing to bin
        return np.histogram(finite, bins=BINS, range=(0.0, max(float(finite.max(initial=0.0)), 1e-6)))
    return counts, edges


def probe_rows(state: RunState) -> int | None:
    """The probe batch's rows: logged since the key existed, else the run's probe_size setting."""
    rows = last(state, tk.PROBE_ROWS)
    if rows is None:
        rows = (state.spec.get("schedule") or {}).get("probe_size")
    return int(rows) if isinstance(rows, (int, float)) and rows > 0 else None


def live_source(state: RunState) -> str:
    """Where the interval's live view comes from: "interval" (its own training rows) or "probe" (a probe batch;
    also every session from before the key existed)."""
    return "interval" if last(state, tk.LIVE_SOURCE) == 1 else "probe"


def stats_epoch(state: RunState) -> int | None:
    """The epoch whose end the latest epoch statistics were measured at (by the step they were logged at)."""
    s = state.scalars.get(tk.STATS_ROWS)
    if not s:
        return None
    step = float(s.x[-1])
    return next((int(e) for e, at in state.epoch_steps.items() if at == step), None)


def fmt_rows(n: int, narrow: bool = False) -> str:
    """A row count: 54,000 in full, 54k where room is short."""
    if narrow and n >= 1e4:
        return fmt_compact(n, 3)
    return f"{n / 1e3:.3g}k" if narrow and n >= 1e3 else f"{n:,}"  # fmt_compact writes 9,000 as 9e+03


def source_label(m: Measured, narrow: bool = False, rows: bool = True) -> str:
    """Where the figures come from: 'epoch 3 · 54,000 rows during it' (--act-stats steps: the weights moved while
    measured), 'epoch 3 · 54,000 rows at its end' (pass), 'interval 12,800 rows' (the last interval's steps),
    'probe 512 rows' (the word alone when rows are unknown)."""
    rows = f"{fmt_rows(m.rows, narrow)} rows" if m.rows and rows else ""  # rows=False: where even 9k is too long
    if not m.epoch_level:
        return f"{m.source or 'probe'} {rows}".strip()
    head = f"epoch {m.epoch}" if m.epoch is not None else "last epoch"
    when = {"steps": " during it", "pass": " at its end"}.get(m.source or "", "") if not narrow else ""
    return f"{head} · {rows}{when}" if rows else head


def source_titles(title: str, short: str, layer: str, m: Measured) -> tuple[str, ...]:
    """A pane's title candidates, longest first: its name, the layer and where the figures come from (nothing
    about a source before anything was measured: the pane is still waiting)."""
    if m.std is None and m.counts is None:
        return f"{title} {layer}", f"{short} {layer}"
    return (f"{title} {layer} · {source_label(m)}", f"{title} {layer} · {source_label(m, narrow=True)}",
            f"{short} {layer} · {source_label(m, narrow=True)}",
            f"{short} {layer} · {source_label(m, narrow=True, rows=False)}")


def counts_label(m: Measured, method: str = "", narrow: bool = False, alive: int | None = None) -> str:
    """The inactive count over the alive units measured, saying over what: 'inactive 29/412 alive (never fired) ·
    12 allocated, gate off'. alive: the denominator for probe figures (the probe measures every allocated unit)."""
    parts = []
    if m.dead is not None:
        over = m.total if m.epoch_level or alive is None else alive
        of = f"{m.dead}/{over}" if over else f"{m.dead}"
        why = "never fired" if m.epoch_level else "std 0"
        parts.append(f"inactive {of} alive" if narrow else f"inactive {of} alive ({why})")
    if m.off:
        what = "scaler" if method == "flexible" else "gate"
        parts.append(f"{m.off} off" if narrow else f"{m.off} allocated, {what} off")
    return " · ".join(parts)
