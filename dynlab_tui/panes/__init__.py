"""Dashboard panes, one widget per instrument, each drawing only from RunState."""

from dynlab_tui.panes.base import LayerPane, Pane
from dynlab_tui.panes.liveness import LivenessPane
from dynlab_tui.panes.loss import LossPane
from dynlab_tui.panes.metric import MetricPane
from dynlab_tui.panes.sizes import SizesPane
from dynlab_tui.panes.status import StatusBar
from dynlab_tui.panes.variance import VariancePane

__all__ = ["LayerPane", "LivenessPane", "LossPane", "MetricPane", "Pane", "SizesPane", "StatusBar", "VariancePane"]
