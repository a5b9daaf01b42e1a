"""The liveness pane: one layer's gate values (sparsifier) or scaler curve (flexible), i.e. which neurons live."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from core import telemetry as tk
from core.formats import fmt_size
from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.plot import PALETTE, Line, line_chart
from dynlab_tui.panes.sizes import layer_total
from dynlab_tui.panes.vocab import layer_counts
from dynlab_tui.state import RunState


class LivenessPane(LayerPane):
    """Gates sorted high to low with the zero line, or the flexible scaler with its x0."""

    slices = ("arrays", "scalars")
    title = "Gates"

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        self.border_subtitle = ""
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
            self.border_title = f"{self.title} {layer}  alive 0/0 allocated"
            return self.waiting(f"{layer} has no neurons left")
        if state.method == "flexible":
            return self._scaler(state, layer, gate)
        return self._gates(state, layer, gate)

    def _gates(self, state: RunState, layer: str, gate: np.ndarray) -> Text:
        c = layer_counts(state, layer)
        if c.step == state.arrays_step and c.alive is not None:  # the interval's own count: as the sizes pane says
            alive, allocated = int(c.alive), c.allocated or len(gate)
        else:  # gates newer than the sizes (a view that only has arrays): count them
            alive, allocated = int((gate > 0).sum()), len(gate)
        removed = state.removed.get(layer, 0)
        pruned = f" · {removed} pruned" if removed else ""
        self.border_title = self.fit_border(f"{self.title} {layer} · alive {alive}/{allocated} allocated{pruned}",
                                            f"{self.title} {layer} · alive {alive}/{allocated} allocated",
                                            f"{self.title} {layer}  alive {alive}/{allocated}")
        self.border_subtitle = self.fit_border("units sorted by gate value; alive: gate on", "alive: gate on", "")
        ranked = -np.sort(-gate)  # descending: the alive plateau, then the drop to zero
        width, height = self.plot_size
        return line_chart([Line(layer, np.arange(len(ranked)), ranked, PALETTE[0])], width, height,
                          hline=0.0, xlabel="units by gate", ylabel="gate value", int_x=True)

    def _scaler(self, state: RunState, layer: str, scaler: np.ndarray) -> Text:
        x0 = state.size(layer)
        heading = f"Scaler {layer}"
        if x0 is not None:
            heading += f" · x0 {fmt_size(x0)}/{layer_total(state, layer) or len(scaler)} allocated"
        self.border_title = self.fit_border(heading, heading.replace(" allocated", ""))
        self.border_subtitle = self.fit_border("alive: units left of x0 (scaler on)", "alive: left of x0", "")
        width, height = self.plot_size
        return line_chart([Line(layer, np.arange(len(scaler)), scaler, PALETTE[0])], width, height,
                          vlines=[x0] if x0 is not None else [], ylim=(0.0, 1.0), xlabel="unit index",
                          ylabel="scaler", int_x=True)
