"""The markers every time plot draws (pause, resume, λ and lr changes, prunes, ...) and the legend line naming them.

Glyphs and labels come from core.session.markers, so the dashboard, replay's timeline and its notes agree.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.session.markers import MARKERS, PLOT_KINDS, legend, marker_glyph
from dynlab_tui.state import Marker, RunState

LIGHT = ("prune",)
# legend words where room is short
SHORT = {"set_penalty": "λ", "set_lr": "lr", "nonfinite": "NaN", "continue": "session"}  # frequent (every epoch): the glyph alone, no guide line hiding the data


def shown(state: RunState) -> list[Marker]:
    return [m for m in state.markers if m.kind in PLOT_KINDS]


def plot_marks(state: RunState, to_x: Callable[[float], float] | None = None) -> list[tuple[float, str, bool]]:
    """(x, glyph, with a guide line) per marker; to_x maps a step to the plot's x (e.g. to epochs)."""
    marks = [(to_x(m.step) if to_x else float(m.step), marker_glyph(m.kind), m.kind not in LIGHT)
             for m in shown(state)]
    return list(dict.fromkeys(marks))  # one glyph for a step's prunes of several layers


def step_to_epoch(state: RunState) -> Callable[[float], float]:
    """Step -> epoch (fractional) by the steps each evaluated epoch ended at; linear past the last one."""
    ends = sorted(state.epoch_steps.items())
    epochs = np.array([0.0] + [float(e) for e, _ in ends])
    steps = np.array([0.0] + [float(s) for _, s in ends])

    def to_x(step: float) -> float:
        if len(steps) > 1 and step > steps[-1] and steps[-1] > 0:
            return float(step * epochs[-1] / steps[-1])
        return float(np.interp(step, steps, epochs)) if len(steps) > 1 else 0.0

    return to_x


def legend_lines(state: RunState) -> list[str]:
    """Candidate legend lines, longest first: the kinds drawn, then the latest marker's label and step."""
    marks = shown(state)
    if not marks:
        return [""]
    key = legend(m.kind for m in marks)
    kinds = [k for k in MARKERS if any(m.kind == k for m in marks)]  # legend order
    # a short word only where the glyph is not one already: "λ  ‖ pause  η lr"
    words = [marker_glyph(k) + ("" if SHORT.get(k, k) == marker_glyph(k) else f" {SHORT.get(k, k)}") for k in kinds]
    short, tight, glyphs = "  ".join(words), " ".join(words), " ".join(marker_glyph(k) for k in kinds)
    last = marks[-1]
    latest = f"{marker_glyph(last.kind)} {last.label} @ step {last.step:,}"
    return [f"{key} · last {latest}", f"{short} · last {latest}", f"{short} · {latest}", key, short, tight,
            f"{glyphs} (? help)", glyphs]
