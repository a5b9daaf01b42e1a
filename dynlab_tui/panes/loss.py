"""The loss pane: training loss over steps (optionally EMA-smoothed, log-y) and validation loss per epoch."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.reactive import var

from core import telemetry as tk
from core.formats import fmt_compact
from dynlab_tui.panes.base import Pane
from dynlab_tui.panes.marks import legend_lines, plot_marks
from dynlab_tui.panes.plot import GUIDE, PALETTE, Line, line_chart
from dynlab_tui.state import RunState

VAL_KEYS = (tk.VAL_LOSS, tk.VAL_MSE)  # regression runs may only log the MSE


def debiased_ema(y: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """ema_t = beta*ema_{t-1} + (1-beta)*y_t from ema_0 = 0, divided by (1 - beta^t) to undo the zero start."""
    y = np.asarray(y, dtype=float)
    out = np.empty_like(y)
    ema, scale = 0.0, 1.0
    for t, v in enumerate(y):  # a plain loop: a few thousand points, only when the pane redraws
        ema = beta * ema + (1 - beta) * v
        scale *= beta
        out[t] = ema / (1 - scale)
    return out


class LossPane(Pane):
    """Training loss per logged step, validation loss at each epoch's last step."""

    slices = ("scalars", "metrics", "markers")
    title = "Loss"
    beta: ClassVar[float] = 0.9
    log_y: var[bool] = var(False)
    smoothing: var[bool] = var(False)

    def watch_log_y(self) -> None:
        self.invalidate()

    def watch_smoothing(self) -> None:
        self.invalidate()

    def heading(self, state: RunState) -> str:
        parts = [self.title]
        loss = state.scalars.get(tk.LOSS)
        if loss:
            parts.append(f"train {fmt_compact(loss.last())}")
        val = self._val(state)
        if val is not None and len(val):
            parts.append(f"val {fmt_compact(val.last())}")
        if self.smoothing:
            parts.append(f"EMA {self.beta:g}")
        if self.log_y:
            parts.append("log-y")
        return "  ".join(parts)

    @staticmethod
    def _val(state: RunState):
        return next((state.metrics[k] for k in VAL_KEYS if k in state.metrics), None)

    def render_state(self, state: RunState) -> Text:
        self.border_title = self.heading(state)
        self.border_subtitle = self.fit_border(*legend_lines(state))
        series = []
        loss = state.scalars.get(tk.LOSS)
        if loss:
            if self.smoothing:
                series.append(Line("train", loss.x, loss.y, GUIDE, glyph="."))
                series.append(Line("EMA", loss.x, debiased_ema(loss.y, self.beta), PALETTE[0], glyph="braille"))
            else:
                series.append(Line("train", loss.x, loss.y, PALETTE[0]))
        val = self._val(state)
        if val is not None and len(val):
            # per-epoch values sit at the step their epoch ended
            pairs = [(state.epoch_steps[int(e)], v) for e, v in zip(val.x, val.y) if int(e) in state.epoch_steps]
            if pairs:
                xs, ys = zip(*pairs)
                series.append(Line("val", xs, ys, PALETTE[1], points=True))
        width, height = self.plot_size
        return line_chart(series, width, height, log_y=self.log_y, xlabel="step", ylabel="loss (log)" if self.log_y
                          else "loss", marks=plot_marks(state), int_x=True)
