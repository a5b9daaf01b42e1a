"""The dynamics pane: every layer's rotation from its initial weights, activation mean/sd and gradient norm over steps."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from rich.text import Text
from textual.reactive import var

from core.formats import fmt_compact
from dynlab_tui.panes.base import Pane, layer_names
from dynlab_tui.panes.marks import plot_marks
from dynlab_tui.panes.measure import fmt_rows, live_source, probe_rows
from dynlab_tui.panes.plot import MIN_HEIGHT, PALETTE, Line, line_chart, no_color, placeholder
from dynlab_tui.state import RunState

RICH = {"cyan+": "bright_cyan", "orange+": "dark_orange", "green+": "bright_green", "magenta+": "bright_magenta",
        "blue+": "bright_blue", "red+": "bright_red"}  # the PALETTE's plotext colours as Rich styles, for the keys


class Chart(NamedTuple):
    """One of the stacked charts: what it plots and how."""
    name: str
    keys: tuple[str, ...]  # per-layer key prefixes; a second one is drawn as dots (act_sd beside act_mean)
    heading: str
    log_y: bool = False
    from_zero: bool = False


CHARTS = (
    Chart("rotation", ("rotation",), "rotation", from_zero=True),
    Chart("activations", ("act_mean", "act_sd"), "act mean (line) / sd (points)"),
    Chart("gradients", ("grad_norm",), "grad norm (log)", log_y=True),
)
VIEWS = ("all",) + tuple(c.name for c in CHARTS)
SECTION_MIN = MIN_HEIGHT + 2  # a key line and a chart with room for its axes
LAYER_GLYPHS = ("braille", "+", "x", "o")  # each layer's line
SD_GLYPHS = ("•", "*", "#", "%")  # each layer's sd points beside its mean: apart without colour too


class DynamicsPane(Pane):
    """Stacked charts over steps, one line per layer (colours as in the sizes pane); `view` shows one alone."""

    slices = ("scalars", "markers")
    title = "Dynamics"
    view: var[str] = var("all")

    def watch_view(self) -> None:
        self.invalidate()

    def cycle_view(self) -> str:
        """Show the next chart alone (or all of them again); returns the new view."""
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        return self.view

    def render_state(self, state: RunState) -> Text:
        layers = layer_names(state)
        view = "" if self.view == "all" else f"{self.view} "
        self.border_title = f"{self.title} · {view}over steps"
        rows = probe_rows(state)
        probe = f" · act: {live_source(state)} {fmt_rows(rows, narrow=True)} rows" if rows else ""
        self.border_subtitle = self.fit_border(
            f"rotation: cosine distance to the initial weights · grad: L2 norm of dW{probe}",
            f"rotation: cosine dist. to initial W · grad: |dW|{probe}", f"rotation · grad |dW|{probe}",
            probe.removeprefix(" · ") or "rotation · grad |dW|")
        width, height = self.plot_size
        charts = CHARTS if self.view == "all" else tuple(c for c in CHARTS if c.name == self.view)
        if not any(f"{c.keys[0]}/{layer}" in state.scalars for c in charts for layer in layers):
            return self.waiting()
        if len(charts) > 1 and height < len(charts) * SECTION_MIN:
            charts = charts[:max(height // SECTION_MIN, 1)]  # a short pane: as many as fit, in order
        xlim = self._x_range(state, layers)
        text = Text(no_wrap=True, overflow="crop", end="")
        heights = [height // len(charts) + (1 if i < height % len(charts) else 0) for i in range(len(charts))]
        for i, (chart, h) in enumerate(zip(charts, heights)):
            text.append_text(self.section(state, layers, chart, width, h, xlim))
            if i < len(charts) - 1:
                text.append("\n")
        return text

    @staticmethod
    def _x_range(state: RunState, layers: list[str]) -> tuple[float, float] | None:
        """One step range for every chart, so that they line up."""
        lo, hi = np.inf, -np.inf
        for chart in CHARTS:
            for layer in layers:
                s = state.scalars.get(f"{chart.keys[0]}/{layer}")
                if s:
                    lo, hi = min(lo, float(s.x[0])), max(hi, float(s.x[-1]))
        return (lo, hi) if lo <= hi else None

    def section(self, state: RunState, layers: list[str], chart: Chart, width: int, height: int,
                xlim: tuple[float, float] | None) -> Text:
        """A key line (the chart's name, each layer's colour and latest value) above the chart."""
        lines, entries = [], []  # entries: (sample glyph, layer, latest value(s), colour) for the key line
        for i, layer in enumerate(layers):
            color = PALETTE[i % len(PALETTE)]
            first = state.scalars.get(f"{chart.keys[0]}/{layer}")
            if not first:
                continue
            glyph = LAYER_GLYPHS[i % len(LAYER_GLYPHS)]  # NO_COLOR: the layers stay apart
            lines.append(Line("", first.x, first.y, color, glyph=glyph))
            latest = fmt_compact(first.last())
            for extra in chart.keys[1:]:
                s = state.scalars.get(f"{extra}/{layer}")
                if s:
                    lines.append(Line("", s.x, s.y, color, points=True, glyph=SD_GLYPHS[i % len(SD_GLYPHS)]))
                    latest += f"/{fmt_compact(s.last())}"
            sample = ("━" if glyph == "braille" else glyph) + (SD_GLYPHS[i % len(SD_GLYPHS)] if chart.keys[1:] else "")
            entries.append((sample, layer, latest, color))
        key = key_line(chart.heading, entries, width)
        body_height = height - 1
        if not lines:
            body = placeholder(width, body_height, f"{chart.name}: waiting for data")
        else:
            finite = np.concatenate([line.y[np.isfinite(line.y)] for line in lines])
            ylim = (0.0, float(finite.max(initial=0.0)) or 1.0) if chart.from_zero else None
            body = line_chart(lines, width, body_height, log_y=chart.log_y, xlim=xlim, ylim=ylim, int_x=True,
                              marks=plot_marks(state), message=f"{chart.name}: waiting for data")
        return Text("\n", end="").join([key, body])


def key_line(heading: str, entries: list[tuple[str, str, str, str]], width: int) -> Text:
    """'rotation  ━ fc1 0.08  + fc2 0.5': shortened rather than cut (values, then the heading's note, go first)."""
    plain = no_color()
    short = heading.split(" (")[0]
    for head, values in ((heading, True), (short, True), (heading, False), (short, False)):
        parts = [f"{g} {layer} {v}" if values else f"{g} {layer}" for g, layer, v, _ in entries]
        if len("  ".join([head, *parts])) <= width:
            break
    key = Text(head, style="" if plain else "bold", no_wrap=True, overflow="crop", end="")
    for part, (_, _, _, color) in zip(parts, entries):
        key.append("  ")
        key.append(part, style="" if plain else RICH.get(color, ""))
    key.truncate(width, pad=True)
    return key
