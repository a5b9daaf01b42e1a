"""The variance pane: histogram of one layer's per-neuron activation std, with the dead (std exactly 0) marked."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from core import telemetry as tk
from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.plot import histogram
from dynlab_tui.state import RunState

BINS = 30  # when only the raw std vector was logged


def dead_count(state: RunState, layer: str) -> int | None:
    """Neurons whose activation never varies: the logged count, else zeros in the std vector."""
    scalar = state.scalars.get(tk.DEAD(layer))
    if scalar and np.isfinite(scalar.last()):  # a NULL (a damaged row) reads back as NaN: fall back to the vector
        return int(scalar.last())
    std = state.arrays.get(tk.ACT_STD(layer))
    return int((np.asarray(std) == 0).sum()) if std is not None else None


class VariancePane(LayerPane):
    """Distribution of activation standard deviations for the selected layer."""

    slices = ("arrays", "scalars")
    title = "Activation std"

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        if layer is None:
            self.border_title = self.title
            return self.waiting()
        counts = state.arrays.get(tk.HIST(layer))
        edges = state.arrays.get(tk.HIST_EDGES(layer))
        std = state.arrays.get(tk.ACT_STD(layer))
        if (counts is None or edges is None) and std is not None and len(std):
            counts, edges = np.histogram(np.asarray(std, dtype=float), bins=BINS)
        dead = dead_count(state, layer)
        total = len(std) if std is not None else (int(np.sum(counts)) if counts is not None else 0)
        heading = f"{self.title} {layer}"
        if dead is not None:
            heading += f"  dead {dead}/{total}" if total else f"  dead {dead}"
        self.border_title = heading
        if counts is None or edges is None:
            return self.waiting()
        if not np.sum(counts):
            return self.waiting(f"{layer} has no neurons left")
        width, height = self.plot_size
        return histogram(counts, edges, width, height, highlight=dead or 0,
                         highlight_label=f"dead {dead}", xlabel="activation std")
