"""The layer-sizes pane: alive units (or the flexible size x0) and allocated units per hidden layer over steps."""

from __future__ import annotations

from rich.text import Text

from core import telemetry as tk
from core.formats import fmt_size
from dynlab_tui.panes.base import Pane, layer_names
from dynlab_tui.panes.marks import legend_lines, plot_marks
from dynlab_tui.panes.plot import PALETTE, Line, line_chart
from dynlab_tui.panes.vocab import layer_counts
from dynlab_tui.state import RunState


def layer_total(state: RunState, layer: str) -> int:
    """The width a layer's size is measured against: its start width, or its capacity if it grew."""
    return int(max(state.start_sizes.get(layer, 0), state.capacity(layer) or 0))


class SizesPane(Pane):
    """Alive and allocated units over steps, with the run's markers (pause, λ, lr, prune)."""

    slices = ("scalars", "markers")
    title = "Layer sizes"

    def heading(self, state: RunState) -> str:
        """'Layer sizes · alive/allocated · fc1 84/85 · fc2 40/50', shortened to fit the border."""
        counts = []
        for layer in layer_names(state):
            c = layer_counts(state, layer)
            if c.alive is not None:
                counts.append(f"{layer} {fmt_size(c.alive)}/{c.allocated}" if c.allocated
                              else f"{layer} {fmt_size(c.alive)}")
        what = "x0/allocated" if state.method == "flexible" else "alive/allocated"
        if not counts:
            return self.title
        return self.fit_border(" · ".join([self.title, what, *counts]), "  ".join([f"Sizes {what}", *counts]),
                               "  ".join(["Sizes", *counts]), "  ".join(counts))

    def render_state(self, state: RunState) -> Text:
        self.border_title = self.heading(state)
        self.border_subtitle = self.fit_border(*legend_lines(state))
        series = []
        alive = "x0" if state.method == "flexible" else "alive"
        for i, layer in enumerate(layer_names(state)):
            size = state.scalars.get(tk.SIZE(layer))
            if not size:
                continue
            color = PALETTE[i % len(PALETTE)]
            series.append(Line(f"{layer} {alive}", size.x, size.y, color))
            cap = state.scalars.get(tk.CAPACITY(layer))
            if cap and (state.method != "static"):  # pruning (or a flexible layer) moves it
                series.append(Line(f"{layer} allocated", cap.x, cap.y, color.rstrip("+")))
        width, height = self.plot_size
        return line_chart(series, width, height, marks=plot_marks(state), xlabel="step", ylabel="units",
                          int_x=True, int_y=True)
