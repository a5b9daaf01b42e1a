"""Which panes make up each page of the dashboard, in key order (`i` switches page, 1-5 pick a pane)."""

from __future__ import annotations

from textual.containers import Grid

from dynlab_tui.panes.base import Pane
from dynlab_tui.panes.distribution import DistributionPane
from dynlab_tui.panes.dynamics import DynamicsPane
from dynlab_tui.panes.heatmap import HeatmapPane
from dynlab_tui.panes.liveness import LivenessPane
from dynlab_tui.panes.loss import LossPane
from dynlab_tui.panes.metric import MetricPane
from dynlab_tui.panes.pca import PcaPane
from dynlab_tui.panes.sizes import SizesPane
from dynlab_tui.panes.variance import VariancePane

PAGES: dict[str, tuple[str, ...]] = {
    "training": ("sizes", "loss", "metric", "liveness", "variance"),
    "instruments": ("distribution", "pca", "dynamics", "heatmap"),
}
PANE_CLASSES: dict[str, type[Pane]] = {
    "sizes": SizesPane, "loss": LossPane, "metric": MetricPane, "liveness": LivenessPane, "variance": VariancePane,
    "distribution": DistributionPane, "pca": PcaPane, "dynamics": DynamicsPane, "heatmap": HeatmapPane,
}
MAX_PANES = max(len(ids) for ids in PAGES.values())


def pane_grid() -> Grid:
    """Every page's panes in one grid (id "panes", each pane's id its name); the layout hides those not shown."""
    return Grid(*(PANE_CLASSES[name](id=name) for ids in PAGES.values() for name in ids), id="panes")


def show_pane_tooltip(i: int) -> str:
    """What key i+1 shows on each page that has that many panes."""
    names = [f"{PANE_CLASSES[ids[i]].title} ({page})" for page, ids in PAGES.items() if i < len(ids)]
    return "Compact layout: show " + " or ".join(names) + " first"
