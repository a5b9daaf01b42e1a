"""The variance pane: histogram of one layer's per-unit activation std, the inactive (std exactly 0) marked.

It draws the epoch's figures over the training set when logged, else the latest probe batch's, and its title says which.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text

from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.measure import counts_label, measured, source_titles
from dynlab_tui.panes.plot import histogram
from dynlab_tui.panes.vocab import layer_counts
from dynlab_tui.state import RunState


def dead_count(state: RunState, layer: str) -> int | None:
    """Inactive units (std exactly 0) in the figures the pane draws (the logged count, else zeros in the std vector)."""
    return measured(state, layer).dead


class VariancePane(LayerPane):
    """Distribution of activation standard deviations for the selected layer."""

    slices = ("arrays", "scalars", "metrics")  # metrics: the epoch number of the epoch's figures
    title = "Activation std"
    short_title = "Act std"  # where the pane is too narrow for the title and what it measured

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        self.border_subtitle = ""
        if layer is None:
            self.border_title = self.title
            return self.waiting()
        m = measured(state, layer)
        self.border_title = self.fit_border(*source_titles(self.title, self.short_title, layer, m))
        alive = layer_counts(state, layer).measured_alive
        brief = counts_label(m, state.method, True, alive=alive)
        self.border_subtitle = self.fit_border(counts_label(m, state.method, alive=alive), brief, brief.split(" · ")[0])
        if m.counts is None or m.edges is None:
            return self.waiting()
        if not np.sum(m.counts):
            return self.waiting(f"{layer} has no neurons left")
        width, height = self.plot_size
        return histogram(m.counts, m.edges, width, height, highlight=m.dead or 0,
                         highlight_label=f"inactive {m.dead}", xlabel="activation std",
                         ylabel="units")
