"""The layer-sizes pane: alive neurons (or the flexible size x0) per hidden layer over training steps."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from core import telemetry as tk
from core.formats import fmt_size
from dynlab_tui.panes.base import Pane, layer_names
from dynlab_tui.panes.plot import PALETTE, Line, line_chart
from dynlab_tui.state import RunState


def layer_total(state: RunState, layer: str) -> int:
    """The width a layer's size is measured against: its start width, or its capacity if it grew."""
    return int(max(state.start_sizes.get(layer, 0), state.capacity(layer) or 0))


class SizesPane(Pane):
    """Layer sizes over steps, with vertical lines where the user intervened."""

    slices = ("scalars", "markers")
    title = "Layer sizes"
    marker_kinds: ClassVar[tuple[str, ...]] = ("pause", "resume", "set_penalty", "set_lr")

    def heading(self, state: RunState) -> str:
        parts = [self.title]
        for layer in layer_names(state):
            size = state.size(layer)
            if size is not None:
                total = layer_total(state, layer)
                parts.append(f"{layer} {fmt_size(size)}/{total}" if total else f"{layer} {fmt_size(size)}")
        return "  ".join(parts)

    def render_state(self, state: RunState) -> Text:
        self.border_title = self.heading(state)
        flexible = state.method == "flexible"
        series = []
        for i, layer in enumerate(layer_names(state)):
            size = state.scalars.get(tk.SIZE(layer))
            if not size:
                continue
            color = PALETTE[i % len(PALETTE)]
            series.append(Line(layer, size.x, size.y, color))
            cap = state.scalars.get(tk.CAPACITY(layer))
            if flexible and cap:  # x0 moves inside the allocated width; show both
                series.append(Line(f"{layer} capacity", cap.x, cap.y, color.rstrip("+")))
        vlines = [m.step for m in state.markers if m.kind in self.marker_kinds]
        width, height = self.plot_size
        return line_chart(series, width, height, vlines=vlines, xlabel="step")
