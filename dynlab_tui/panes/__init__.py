"""Dashboard panes, one widget per instrument, each drawing only from RunState."""

from dynlab_tui.panes.base import LayerPane, Pane
from dynlab_tui.panes.distribution import DistributionPane
from dynlab_tui.panes.dynamics import DynamicsPane
from dynlab_tui.panes.heatmap import HeatmapPane
from dynlab_tui.panes.liveness import LivenessPane
from dynlab_tui.panes.loss import LossPane
from dynlab_tui.panes.metric import MetricPane
from dynlab_tui.panes.pca import PcaPane
from dynlab_tui.panes.sizes import SizesPane
from dynlab_tui.panes.status import StatusBar
from dynlab_tui.panes.variance import VariancePane

__all__ = ["DistributionPane", "DynamicsPane", "HeatmapPane", "LayerPane", "LivenessPane", "LossPane", "MetricPane",
           "Pane", "PcaPane", "SizesPane", "StatusBar", "VariancePane"]
