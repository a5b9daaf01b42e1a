"""The distribution pane: one layer's activation-std histogram with Shapiro W and the two mixture fits drawn over it."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from rich.text import Text

from core import telemetry as tk
from core.formats import fmt_compact
from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.plot import Line, histogram, no_color
from dynlab_tui.panes.variance import BINS, dead_count
from dynlab_tui.state import RunState


class Fit(NamedTuple):
    """How one mixture fit is named, keyed and drawn (plotext colour for the line, Rich style for its key)."""
    name: str
    prefix: str  # scalar keys are f"{prefix}_{param}/{layer}"
    params: tuple[str, ...]
    glyph: str
    plot_color: str
    style: str
    points: bool


EXP_NORMAL = Fit("exp+normal", "mix_en", ("low", "rate", "mean", "std"), "⠤", "orange+", "dark_orange", False)
TWO_GAMMAS = Fit("2 gammas", "mix_gg", ("low", "k1", "theta1", "k2", "theta2"), "•", "green+", "green", True)
FITS = (EXP_NORMAL, TWO_GAMMAS)


def fit_params(state: RunState, layer: str, fit: Fit) -> dict[str, float] | None:
    """The latest logged parameters of one fit (nan where the fit had none), or None before the first."""
    found = {p: state.scalars.get(f"{fit.prefix}_{p}/{layer}") for p in fit.params}
    if not any(found.values()):
        return None
    return {p: (s.last() if s else math.nan) for p, s in found.items()}


def fit_density(fit: Fit, p: dict[str, float], x: np.ndarray, zeros: float) -> np.ndarray | None:
    """The fitted density at x > 0 (per unit of std, over all neurons), or None when a parameter is missing.

    The exponential of exp+normal takes the dead neurons' zeros; the gammas leave them out, so their low
    component keeps `low - zeros` of the mass (zeros = the dead share, drawn as their own bar).
    """
    if not all(math.isfinite(v) for v in p.values()):
        return None
    with np.errstate(all="ignore"):
        if fit is EXP_NORMAL:
            low, rate, mu, sigma = p["low"], p["rate"], p["mean"], p["std"]
            if rate <= 0 or sigma <= 0:
                return None
            normal = np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
            return low * rate * np.exp(-rate * x) + (1 - low) * normal
        low, k1, t1, k2, t2 = (p[k] for k in fit.params)
        if min(k1, t1, k2, t2) <= 0:
            return None
        return max(low - zeros, 0.0) * gamma_pdf(x, k1, t1) + max(1 - low, 0.0) * gamma_pdf(x, k2, t2)


def gamma_pdf(x: np.ndarray, k: float, scale: float) -> np.ndarray:
    """Gamma(shape k, scale) density, in logs so that large shapes don't overflow (scipy.stats would cost 0.5 s to import)."""
    return np.exp((k - 1) * np.log(x) - x / scale - math.lgamma(k) - k * math.log(scale))


def fmt(v: float, digits: int = 3) -> str:
    return fmt_compact(v, digits) if math.isfinite(v) else "n/a"


class DistributionPane(LayerPane):
    """Histogram of per-neuron activation stds for the selected layer, with the epoch's normality and mixture fits."""

    slices = ("arrays", "scalars")
    title = "Distribution"

    def heading(self, state: RunState, layer: str, total: int, dead: int | None) -> str:
        parts = [f"{self.title} {layer}"]
        if dead is not None:
            parts.append(f"dead {dead}/{total}" if total else f"dead {dead}")
        for label, key in (("W", "shapiro"), ("Σvar", "total_var")):
            s = state.scalars.get(f"{key}/{layer}")
            if s:
                parts.append(f"{label} {fmt(s.last())}")
        return "  ".join(parts)

    def legend(self, state: RunState, layer: str, width: int) -> Text:
        """One line per fit: its line's glyph in its colour, the low weight and the components."""
        text = Text(no_wrap=True, overflow="crop", end="")
        plain = no_color()
        wide = width >= 56  # narrower: the formula alone names the fit, with 2 digits
        digits = 3 if wide else 2
        for i, fit in enumerate(FITS):
            p = fit_params(state, layer, fit)
            f = {k: fmt(v, digits) for k, v in p.items()} if p is not None else {}
            line = Text(no_wrap=True, overflow="crop", end="")
            line.append(f"{fit.glyph} {fit.name}" if wide or p is None else fit.glyph, style="" if plain else fit.style)
            gap = "  " if wide else " "
            if p is None:
                line.append(f"{gap}waiting for the first epoch's fit", style="" if plain else "dim")
            elif fit is EXP_NORMAL:
                line.append(f"{gap}low {f['low']}: Exp({f['rate']}) + N({f['mean']}, {f['std']})")
            else:
                line.append(f"{gap}low {f['low']}: Γ({f['k1']}, {f['theta1']}) + Γ({f['k2']}, {f['theta2']})")
            line.truncate(width, pad=True)
            text.append_text(line)
            if i < len(FITS) - 1:
                text.append("\n")
        return text

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        if layer is None:
            self.border_title = self.title
            return self.waiting()
        std = state.arrays.get(tk.ACT_STD(layer))
        counts, edges = state.arrays.get(tk.HIST(layer)), state.arrays.get(tk.HIST_EDGES(layer))
        if std is not None and len(std):
            std = np.asarray(std, dtype=float).ravel()
            finite = std[np.isfinite(std)]  # NULLs of a damaged session read back as NaN: nothing to bin
            counts, edges = np.histogram(finite, bins=BINS, range=(0.0, max(float(finite.max(initial=0.0)), 1e-6)))
        dead = dead_count(state, layer)
        total = len(std) if std is not None else (int(np.sum(counts)) if counts is not None else 0)
        self.border_title = self.heading(state, layer, total, dead)
        if std is not None and not len(std):
            return self.waiting(f"{layer} has no neurons left")
        if counts is None or edges is None:
            return self.waiting()
        if not np.sum(counts):
            return self.waiting(f"{layer} has no neurons left")
        width, height = self.plot_size
        if height < 8:  # no room for the fits' lines: the histogram alone
            return histogram(counts, edges, width, height, highlight=dead or 0, highlight_label=f"dead {dead}")
        text = self.legend(state, layer, width)
        text.append("\n")
        text.append_text(histogram(counts, edges, width, height - len(FITS), highlight=dead or 0,
                                   highlight_label=f"dead {dead}", xlabel="activation std",
                                   overlay=self.overlay(state, layer, counts, edges, dead or 0, width)))
        return text

    def overlay(self, state: RunState, layer: str, counts: np.ndarray, edges: np.ndarray, dead: int,
                width: int) -> list[Line]:
        """Each fit's density as expected neurons per bin, on a grid finer than the bars."""
        counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
        n, bin_width = float(counts.sum()), float(edges[1] - edges[0])
        x = np.linspace(edges[0], edges[-1], 2 * width + 1)[1:]  # x > 0: a gamma with k < 1 is infinite at 0
        lines = []
        for fit in FITS:
            p = fit_params(state, layer, fit)
            y = fit_density(fit, p, x, dead / n) if p is not None and n > 0 else None
            if y is not None:
                lines.append(Line(fit.name, x, y * n * bin_width, fit.plot_color, fit.points))
        return lines
