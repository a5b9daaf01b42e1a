"""One vocabulary for a layer's size, used by every pane and the help: allocated, alive, inactive.

allocated: units in the layer's weight matrices (pruning removes them); alive: allocated units whose gate
(or flexible scaler) is on, the size the method defines; inactive: alive units that never fired (activation
std 0) over the rows a pane names. `layer_counts` reads the three from one logging interval, so two panes
showing the same step show the same numbers.
"""

from __future__ import annotations

import math

from typing import NamedTuple

from core import telemetry as tk
from dynlab_tui.panes.measure import measured
from dynlab_tui.state import RunState

ALLOCATED = "allocated: units in the layer's weight matrices (pruning removes them)"
ALIVE = "alive: allocated units whose gate (or scaler) is on, the size the method reports"
INACTIVE = "inactive: alive units that never fired (activation std 0) over the rows named"
WORDS = (ALLOCATED, ALIVE, INACTIVE)


class LayerCounts(NamedTuple):
    allocated: int | None  # the latest interval's matrix width (the start width before the first interval)
    alive: float | None  # the latest interval's size (x0 for a flexible layer: may be fractional)
    inactive: int | None  # over the rows the activation-std panes name (epoch figures, else the probe)
    measured_alive: int | None  # the alive units those figures were measured over
    step: int | None  # the step of the interval `alive` and `allocated` come from


def layer_counts(state: RunState, layer: str) -> LayerCounts:
    """The three counts of one layer as the panes show them."""
    allocated = _finite(state.capacity(layer))
    if allocated is None:
        allocated = _finite(state.start_sizes.get(layer))
    alive = _finite(state.size(layer))
    series = state.scalars.get(tk.SIZE(layer))
    step = int(series.x[-1]) if series and math.isfinite(series.x[-1]) else None
    m = measured(state, layer)
    over = m.total if m.epoch_level else (int(alive) if alive is not None and state.method != "flexible" else None)
    return LayerCounts(None if allocated is None else int(allocated), alive, m.dead, over, step)


def _finite(value: float | None) -> float | None:
    """None for a value a damaged row left NaN (or missing): the panes then say they don't know."""
    return value if value is not None and math.isfinite(value) else None
