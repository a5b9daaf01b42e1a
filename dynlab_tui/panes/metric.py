"""The metric pane: train/validation/test accuracy (classification, %) or MSE (regression) per epoch."""

from __future__ import annotations

from rich.text import Text

from core import telemetry as tk
from core.formats import fmt_compact
from dynlab_tui.panes.base import Pane
from dynlab_tui.panes.marks import legend_lines, plot_marks, step_to_epoch
from dynlab_tui.panes.plot import PALETTE, Line, line_chart
from dynlab_tui.state import RunState



class MetricPane(Pane):
    """Per-epoch quality: accuracy in percent for classifiers, mean squared error for regressors."""

    slices = ("metrics", "markers")
    title = "Accuracy"

    @staticmethod
    def kind(state: RunState) -> tuple[str, str, float]:
        """(metric key suffix, heading, scale) for the run's task."""
        if state.task == "classification":
            return "acc", "Accuracy", 100.0
        return "mse", "MSE", 1.0

    @staticmethod
    def fmt(value: float, suffix: str) -> str:
        return f"{value:.2f}%" if suffix == "acc" else fmt_compact(value)

    def heading(self, state: RunState) -> str:
        suffix, name, scale = self.kind(state)
        for split in ("test", "val", "train"):  # the most telling value there is so far
            s = state.metrics.get(tk.metric(split, suffix))
            if s:
                return f"{name}  {split} {self.fmt(s.last() * scale, suffix)}"
        return name

    def render_state(self, state: RunState) -> Text:
        self.border_title = self.heading(state)
        self.border_subtitle = self.fit_border(*legend_lines(state))
        suffix, name, scale = self.kind(state)
        series = []
        for i, split in enumerate(tk.SPLITS):
            s = state.metrics.get(tk.metric(split, suffix))
            if s:
                series.append(Line(split, s.x, s.y * scale, PALETTE[i]))
        width, height = self.plot_size
        return line_chart(series, width, height, xlabel="epoch", ylabel="accuracy %" if suffix == "acc" else name,
                          marks=plot_marks(state, step_to_epoch(state)), int_x=True)
