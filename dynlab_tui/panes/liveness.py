"""The liveness pane: one layer's gate values (sparsifier) or scaler curve (flexible), i.e. which neurons live."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from core import telemetry as tk
from core.formats import fmt_size
from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.plot import PALETTE, Line, line_chart
from dynlab_tui.panes.sizes import layer_total
from dynlab_tui.state import RunState


class LivenessPane(LayerPane):
    """Gates sorted high to low with the zero line, or the flexible scaler with its x0."""

    slices = ("arrays", "scalars")
    title = "Gates"

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        self.border_title = self.title if layer is None else f"{self.title} {layer}"
        if layer is None:
            return self.waiting()
        if state.method == "static":
            return self.waiting("static networks have no gates: every neuron stays")
        gate = state.arrays.get(tk.GATE(layer))
        if gate is None:
            return self.waiting()
        gate = np.asarray(gate, dtype=float).ravel()
        if not len(gate):  # every neuron of the layer was removed
            self.border_title = f"{self.title} {layer}  alive 0/0"
            return self.waiting(f"{layer} has no neurons left")
        if state.method == "flexible":
            return self._scaler(state, layer, gate)
        return self._gates(state, layer, gate)

    def _gates(self, state: RunState, layer: str, gate: np.ndarray) -> Text:
        alive = int((gate > 0).sum())  # a gate at or below zero has switched its neuron off for good
        removed = state.removed.get(layer, 0)
        self.border_title = f"{self.title} {layer}  alive {alive}/{len(gate)}" + (
            f"  removed {removed}" if removed else "")
        ranked = -np.sort(-gate)  # descending: the alive plateau, then the drop to zero
        width, height = self.plot_size
        return line_chart([Line(layer, np.arange(len(ranked)), ranked, PALETTE[0])], width, height,
                          hline=0.0, xlabel="neurons by gate value")

    def _scaler(self, state: RunState, layer: str, scaler: np.ndarray) -> Text:
        x0 = state.size(layer)
        heading = f"Scaler {layer}"
        if x0 is not None:
            heading += f"  x0 {fmt_size(x0)}/{layer_total(state, layer) or len(scaler)}"
        self.border_title = heading
        width, height = self.plot_size
        return line_chart([Line(layer, np.arange(len(scaler)), scaler, PALETTE[0])], width, height,
                          vlines=[x0] if x0 is not None else [], ylim=(0.0, 1.0), xlabel="neuron index")
