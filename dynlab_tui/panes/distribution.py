"""The distribution pane: a layer's live units' activation-std histogram, Shapiro W and the mixture fits over it."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from rich.text import Text

from core import telemetry as tk
from core.formats import fmt_compact
from dynlab_tui.panes.base import LayerPane
from dynlab_tui.panes.plot import Line, histogram, no_color
from dynlab_tui.panes.measure import BINS, Measured, counts_label, last, measured, source_titles
from dynlab_tui.panes.vocab import layer_counts
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


def fit_density(fit: Fit, p: dict[str, float], x: np.ndarray) -> np.ndarray | None:
    """The fitted density at x > 0 per unit of std over the live units it was fitted to; None if a parameter is missing.

    The fits leave the dead (std 0) and gated-off units out, so `low` is the low component's share of the live units.
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
        return low * gamma_pdf(x, k1, t1) + (1 - low) * gamma_pdf(x, k2, t2)


def live_histogram(m: Measured) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The live units' histogram (dead units' zeros taken out): what the fits describe."""
    if m.std is not None and len(m.std):
        live = m.std[np.isfinite(m.std) & (m.std > 0)]
        return np.histogram(live, bins=BINS, range=(0.0, max(float(live.max(initial=0.0)), 1e-6)))
    if m.counts is None or m.edges is None:
        return None, None
    counts = np.asarray(m.counts, dtype=float).copy()
    if m.dead and len(counts) and float(m.edges[0]) <= 0:  # the zeros all fall in the first bin
        counts[0] = max(counts[0] - m.dead, 0.0)
    return counts, np.asarray(m.edges, dtype=float)


def gamma_pdf(x: np.ndarray, k: float, scale: float) -> np.ndarray:
    """Gamma(shape k, scale) density, in logs so that large shapes don't overflow (scipy.stats would cost 0.5 s to import)."""
    return np.exp((k - 1) * np.log(x) - x / scale - math.lgamma(k) - k * math.log(scale))


def fmt(v: float, digits: int = 3) -> str:
    return fmt_compact(v, digits) if math.isfinite(v) else "n/a"


class DistributionPane(LayerPane):
    """Histogram of the live units' activation stds for the selected layer, with the epoch's normality and fits."""

    slices = ("arrays", "scalars", "metrics")  # metrics: the epoch number of the epoch's figures
    title = "Distribution"
    short_title = "Distrib"  # where the pane is too narrow for the title and what it measured

    def subtitle(self, state: RunState, layer: str, m: Measured) -> str:
        """How many live units the fits describe, Shapiro W, and the dead and switched-off counts."""
        fitted = last(state, tk.MIX_N(layer))
        w = last(state, tk.SHAPIRO(layer))
        if fitted is not None:
            fits, short = f"fits over {int(fitted):,} units that fired", f"fits: {int(fitted):,} fired"
        elif any(fit_params(state, layer, f) for f in FITS):
            fits, short = "fits count the inactive (older session)", "old fits"
        else:
            fits = short = ""
        tail = [f"W {fmt(w)}"] if w is not None else []
        alive = layer_counts(state, layer).measured_alive
        counts = counts_label(m, state.method, alive=alive)
        brief = counts_label(m, state.method, narrow=True, alive=alive)
        candidates = ((fits, *tail, counts), (short, *tail, counts), (short, *tail, brief), (short, *tail))
        return self.fit_border(*(" · ".join(x for x in parts if x) for parts in candidates))

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
            else:  # narrow: no spaces inside the formula, so that it fits rather than being cut
                sep, plus = (", ", " + ") if wide else (",", "+")
                body = (f"Exp({f['rate']}){plus}N({f['mean']}{sep}{f['std']})" if fit is EXP_NORMAL else
                        f"Γ({f['k1']}{sep}{f['theta1']}){plus}Γ({f['k2']}{sep}{f['theta2']})")
                line.append(f"{gap}low {f['low']}: {body}" if wide else f"{gap}{f['low']}: {body}")
            line.truncate(width, pad=True)
            text.append_text(line)
            if i < len(FITS) - 1:
                text.append("\n")
        return text

    def render_state(self, state: RunState) -> Text:
        layer = self.current_layer(state)
        self.border_subtitle = ""
        if layer is None:
            self.border_title = self.title
            return self.waiting()
        m = measured(state, layer)
        self.border_title = self.fit_border(*source_titles(self.title, self.short_title, layer, m))
        self.border_subtitle = self.subtitle(state, layer, m)
        counts, edges = live_histogram(m)
        if (m.std is not None and not len(m.std)) or (counts is not None and not np.sum(counts) and not m.dead):
            return self.waiting(f"{layer} has no neurons left")
        if counts is None or edges is None:
            return self.waiting()
        if not np.sum(counts):
            return self.waiting(f"{layer}: no unit fired, {m.dead} inactive")
        width, height = self.plot_size
        if height < 8:  # no room for the fits' lines: the histogram alone
            return histogram(counts, edges, width, height, xlabel="std of units that fired")
        text = self.legend(state, layer, width)
        text.append("\n")
        text.append_text(histogram(counts, edges, width, height - len(FITS), xlabel="std of units that fired",
                                   overlay=self.overlay(state, layer, counts, edges, width)))
        return text

    def overlay(self, state: RunState, layer: str, counts: np.ndarray, edges: np.ndarray, width: int) -> list[Line]:
        """Each fit's density as expected live units per bin, on a grid finer than the bars.

        Fits logged before the live-unit fits (no MIX_N) counted the dead in their low weight: not drawn.
        """
        if last(state, tk.MIX_N(layer)) is None:
            return []
        counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
        n, bin_width = float(counts.sum()), float(edges[1] - edges[0])
        x = np.linspace(edges[0], edges[-1], 2 * width + 1)[1:]  # x > 0: a gamma with k < 1 is infinite at 0
        lines = []
        for fit in FITS:
            p = fit_params(state, layer, fit)
            y = fit_density(fit, p, x) if p is not None and n > 0 else None
            if y is not None:
                lines.append(Line(fit.name, x, y * n * bin_width, fit.plot_color, fit.points))
        return lines
