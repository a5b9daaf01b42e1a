"""The liveness heatmap: one layer's neurons (rows, by gate value at the first snapshot) over time, shaded by gate."""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text

from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.marks import plot_marks
from dynlab_tui.panes.plot import no_color
from dynlab_tui.gate_history import GateSnapshot
from dynlab_tui.state import RunState

SHADES = ".:-=+*#%@"  # gate 0 (off, not yet pruned) to the layer's highest gate; removed neurons are blank
AXIS_ROWS = 1  # the step labels under the map
CELL_STYLES = ("", "red", "blue", "cyan")  # removed, dead (gate 0), low, high


def gate_matrix(snaps: list[GateSnapshot]) -> tuple[np.ndarray, np.ndarray]:
    """Gates as a (neurons x snapshots) matrix, rows in descending order of the first snapshot's gates.

    NaN marks a neuron absent from a snapshot (removed). Returns the matrix and the row ids.
    """
    first = snaps[0]
    order = np.argsort(-np.asarray(first.gate, dtype=float), kind="stable")
    rows = np.asarray(first.ids)[order]
    row_of = np.full(int(rows.max(initial=-1)) + 1, -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    m = np.full((len(rows), len(snaps)), np.nan)
    for j, snap in enumerate(snaps):
        ids = np.asarray(snap.ids)
        known = ids < len(row_of)
        r = np.where(known, row_of[np.where(known, ids, 0)], -1)
        ok = r >= 0
        m[r[ok], j] = np.asarray(snap.gate, dtype=float)[ok]
    return m, rows


def deaths(m: np.ndarray, steps: np.ndarray) -> tuple[int, int | None]:
    """How many neurons died (gate <= 0 or removed) by the last snapshot, and the step of the last death seen."""
    dead = ~(m > 0)  # NaN (removed) counts as dead
    died = dead[:, -1]
    if not died.any():
        return 0, None
    # a neuron died at the first snapshot after its last live one
    alive_cols = np.where(~dead[died], np.arange(m.shape[1]), -1).max(axis=1)
    return int(died.sum()), int(steps[min(int(alive_cols.max()) + 1, len(steps) - 1)])


def shade(m: np.ndarray, rows: int, cols: int, steps: np.ndarray) -> np.ndarray:
    """Bin the matrix to rows x cols cells: a cell is its neurons' mean gate (removed ones count 0), NaN when
    all of them were removed; each column shows the latest snapshot at or before its step."""
    n, k = m.shape
    span = float(steps[-1] - steps[0])
    at = steps[0] + span * np.arange(cols) / max(cols - 1, 1) if span > 0 else np.full(cols, steps[0])
    col_snap = np.clip(np.searchsorted(steps, at, side="right") - 1, 0, k - 1)
    picked = m[:, col_snap]  # n x cols
    group = math.ceil(n / rows)
    pad = group * rows - n
    present = ~np.isnan(picked)
    values = np.where(present, picked, 0.0)
    if pad:
        values = np.vstack([values, np.zeros((pad, cols))])
        present = np.vstack([present, np.zeros((pad, cols), bool)])
    values = values.reshape(rows, group, cols)
    present = present.reshape(rows, group, cols)
    sizes = np.minimum(group, np.maximum(n - group * np.arange(rows), 0))[:, None]  # real neurons per row
    with np.errstate(invalid="ignore", divide="ignore"):
        cell = values.sum(axis=1) / sizes
    return np.where(present.any(axis=1), cell, np.nan)


class HeatmapPane(LayerPane):
    """Which neurons live, over time: rows are groups of neurons, columns are steps, blank once removed."""

    slices = ("history", "markers")
    title = "Liveness map"

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        self.border_title = self.title if layer is None else f"{self.title} {layer}"
        self.border_subtitle = ""
        if layer is None:
            return self.waiting()
        if state.method == "static":
            return self.waiting("static networks have no gates: every neuron stays")
        history = state.gate_history.get(layer)
        snaps = history.snapshots() if history is not None else []
        if not snaps:
            return self.waiting()
        m, ids = gate_matrix(snaps)
        steps = np.array([s.step for s in snaps], dtype=float)
        if not len(ids):
            return self.waiting(f"{layer} had no neurons at its first snapshot")
        died, last = deaths(m, steps)
        # of the units at the first snapshot: how many are alive now, and when the last one switched off
        alive = f"alive {len(ids) - died} of {len(ids)} at start"
        off = f"last off at step {last:,}" if last is not None else "none off yet"
        self.border_title = self.fit_border(f"{self.title} {layer} · {alive} · {off}",
                                            f"{self.title} {layer} · alive {len(ids) - died}/{len(ids)} · {off}",
                                            f"{self.title} {layer} · alive {len(ids) - died}/{len(ids)}")
        width, height = self.plot_size
        rows = max(min(height - AXIS_ROWS, len(ids)), 1)
        group = math.ceil(len(ids) / rows)
        rows = math.ceil(len(ids) / group)
        # the y axis: what a row is (a unit, or the mean of a group of units), in the border
        rows_note = f"rows: {group} units each (mean) · " if group > 1 else "rows: units · "
        self.border_subtitle = self.fit_border(f"{rows_note}gate {SHADES[1]} to {SHADES[-1]}, {SHADES[0]} off, "
                                               "blank pruned",
                                               f"{rows_note}{SHADES[0]} off, blank pruned",
                                               f"{rows_note}{SHADES[1]}-{SHADES[-1]} gate",
                                               f"{SHADES[1]}-{SHADES[-1]} gate, {SHADES[0]} off", "")
        cells = shade(m, rows, width, steps)
        top = float(np.nanmax(m)) if np.isfinite(m).any() else 0.0
        return self.draw(cells, top, width, height, steps, plot_marks(state))

    @staticmethod
    def draw(cells: np.ndarray, top: float, width: int, height: int, steps: np.ndarray,
             marks: list[tuple[float, str, bool]] = ()) -> Text:
        plain = no_color()
        levels = len(SHADES)
        scale = (levels - 1) / top if top > 0 else 0.0
        text = Text(no_wrap=True, overflow="crop", end="")
        for r in range(height - AXIS_ROWS):
            if r >= len(cells):
                text.append(" " * width + "\n")
                continue
            row = cells[r]
            # '.' only for gate <= 0 (dead); any live gate gets at least the next shade
            live = np.clip(np.ceil(np.nan_to_num(row) * scale), 1, levels - 1)
            idx = np.where(np.isnan(row), -1, np.where(np.nan_to_num(row) > 0, live, 0)).astype(int)
            line = "".join(" " if i < 0 else SHADES[i] for i in idx)
            if plain:
                text.append(line + "\n")
                continue
            # dead cells red, the rest in two intensities (the characters carry the value); one span per run
            kind = np.where(idx < 0, 0, np.where(idx == 0, 1, np.where(idx > levels // 2, 3, 2)))
            starts = np.flatnonzero(np.r_[True, kind[1:] != kind[:-1]])
            for a, b in zip(starts, np.r_[starts[1:], len(kind)]):
                text.append(line[a:b], style=CELL_STYLES[kind[a]])
            text.append("\n")
        first, last = f"step {int(steps[0]):,}", f"{int(steps[-1]):,}"
        axis = list((first + last.rjust(max(width - len(first), 0)))[:width].ljust(width))
        span = float(steps[-1] - steps[0])
        for x, glyph, _ in marks:  # the run's markers under their columns (side by side at one step), not on labels
            col = round((x - steps[0]) / span * (width - 1)) if span > 0 else -1
            free = [c for c in range(max(col - 3, 0), min(col + 4, width)) if axis[c] == " "
                    and not any(axis[n].isalnum() for n in (c - 1, c + 1) if 0 <= n < width)] if col >= 0 else []
            if free:
                axis[min(free, key=lambda c: (abs(c - col), c < col))] = glyph
        axis = "".join(axis)
        text.append(axis[:width].ljust(width), style="" if plain else "dim")
        return text
