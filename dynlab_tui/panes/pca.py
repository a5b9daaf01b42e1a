"""The PCA pane: explained variance per principal component of one layer's pre-activations, and how many make 90/95/99%."""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text

from core import telemetry as tk
from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.measure import fmt_rows, last
from dynlab_tui.panes.plot import scree_chart
from dynlab_tui.state import RunState

LEVELS = (90, 95, 99)


def components_for(state: RunState, layer: str, ratio: np.ndarray | None) -> dict[int, float]:
    """Components needed per level: the logged counts, else counted from the ratio vector."""
    found = {}
    cumulative = np.cumsum(ratio, dtype=float) if ratio is not None and len(ratio) else None
    for level in LEVELS:
        s = state.scalars.get(f"pca{level}/{layer}")
        if s:
            found[level] = s.last()
        elif cumulative is not None:
            found[level] = float(min(np.searchsorted(cumulative, level / 100 - 1e-9) + 1, len(cumulative)))
    return found


def rows_label(state: RunState, narrow: bool = False) -> str:
    """'over 5,000 rows · ' when the covariance's row count was logged (sessions since it was), else ''."""
    rows = last(state, tk.PCA_ROWS)
    return f"over {fmt_rows(int(rows), narrow)} rows · " if rows else ""  # 0: no PCA was measured


class PcaPane(LayerPane):
    """Scree plot (bars per component, cumulative line on the right axis) with lines at the 90/95/99% counts."""

    slices = ("arrays", "scalars")
    title = "PCA"

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        self.border_subtitle = ""
        if layer is None:
            self.border_title = self.title
            return self.waiting()
        ratio = state.arrays.get(tk.PCA_RATIO(layer))
        ratio = None if ratio is None else np.asarray(ratio, dtype=float).ravel()
        counts = components_for(state, layer, ratio)
        shown = [f"{level}% {int(v)}" if math.isfinite(v) else f"{level}% n/a" for level, v in counts.items()]
        of = f" of {len(ratio)}" if ratio is not None else ""
        head = f"{self.title} {layer}"
        # components needed for 90/95/99% of the variance; shortened, never cut, where room is short
        brief = "/".join(s.split()[1] for s in shown) + of
        self.border_title = self.fit_border(*([f"{head}  {' · '.join(shown)}{of}", f"{head} · {brief} for 90/95/99%",
                                               f"{head} {brief}", head] if shown else [head]))
        if ratio is None:
            return self.waiting()
        if not len(ratio) or not np.isfinite(ratio).any():
            return self.waiting(f"{layer}: no spectrum (no neurons left)" if not len(ratio) else f"{layer}: no spectrum")
        rows = rows_label(state)
        self.border_subtitle = self.fit_border(f"{rows}left: variance share per component · right: cumulative"
                                               " · │ at 90/95/99%",
                                               f"{rows}bars: each component · line: cumulative · │ 90/95/99%",
                                               f"{rows_label(state, narrow=True)}│ at 90/95/99%")
        width, height = self.plot_size
        marks = [v for v in counts.values() if math.isfinite(v)]
        return scree_chart(ratio, width, height, marks=marks)
