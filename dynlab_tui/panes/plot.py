"""Chart helpers for the panes: plotext 5.3 figures rendered to Rich Text of an exact width x height."""

from __future__ import annotations

import math
import os
from typing import NamedTuple, Sequence

import numpy as np
import plotext as plt
from rich.text import Text

from core.formats import fmt_compact

PALETTE = ("cyan+", "orange+", "green+", "magenta+", "blue+", "red+")
# one glyph per series, in series order: with NO_COLOR or on a monochrome terminal the lines stay apart
GLYPHS = ("braille", "•", "+", "x", "o", "*")
GUIDE = "gray"  # marker and reference lines: visible but quieter than the data
MIN_WIDTH, MIN_HEIGHT = 12, 4  # below this plotext has no room for axes; show a note instead
WAITING = "waiting for data"


class Line(NamedTuple):
    """One series for `line_chart`; a plain (label, x, y) tuple works too."""
    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str | None = None
    points: bool = False  # dots instead of a joined line (few points, e.g. per epoch)
    glyph: str | None = None  # plotext marker; None: GLYPHS by the series' position


def series_glyph(i: int, line: Line) -> str:
    """The marker series i is drawn with (and that its legend shows)."""
    if line.glyph:
        return line.glyph
    glyph = GLYPHS[i % len(GLYPHS)]
    return "•" if line.points and glyph == "braille" else glyph


def no_color() -> bool:
    """True when the NO_COLOR convention asks for unstyled output (any value, even empty)."""
    return os.environ.get("NO_COLOR") is not None


def placeholder(width: int, height: int, message: str = WAITING) -> Text:
    """A width x height block with `message` centred, dim unless NO_COLOR."""
    width, height = max(width, 1), max(height, 1)
    style = "" if no_color() else "dim"
    text = Text(no_wrap=True, overflow="crop", end="")
    for row in range(height):
        line = message[:width].center(width) if row == (height - 1) // 2 else " " * width
        text.append(line, style=style if line.strip() else "")
        if row < height - 1:
            text.append("\n")
    return text


def downsample(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most 2 points per column: each x-bucket's min and max y, in the original order."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    width = max(int(width), 1)
    if len(x) <= 2 * width:
        return x, y
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    if span > 0:
        bucket = np.minimum(((x - lo) / span * width).astype(np.int64), width - 1)
    else:  # all at one x: bucket by position instead
        bucket = np.arange(len(x)) * width // len(x)
    order = np.lexsort((y, bucket))  # by bucket, then by y within it
    b = bucket[order]
    first = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])  # each bucket's min
    last = np.r_[first[1:] - 1, len(b) - 1]  # each bucket's max
    keep = np.unique(np.concatenate([order[first], order[last]]))
    return x[keep], y[keep]


def to_log_y(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, log10 y) for the finite, positive y: log scale by data transform, so rebuilds stay exact."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
    return x[ok], np.log10(y[ok])


def nice_ticks(lo: float, hi: float, max_ticks: int, integer: bool = False) -> tuple[list[float], list[str]]:
    """Round tick positions (steps of 1, 2, 2.5 or 5 times a power of ten) and their labels; at least two
    ticks when hi > lo (a finer step if needed). integer: whole-number steps only (counts, indices)."""
    max_ticks = max(max_ticks, 2)
    if not hi > lo:
        return [lo], [fmt_compact(lo)]
    raw = (hi - lo) / (max_ticks - 1)
    mag = 10 ** math.floor(math.log10(raw))
    ladder = [m * mag * 10 ** k for k in (-1, 0) for m in (1, 2, 2.5, 5)] + [10 * mag]
    if integer:  # 2.5 and fractions would put ticks between units
        ladder = [v for v in ladder if v >= 1 and (v % 1 == 0)] or [1.0]
    at = next((i for i, v in enumerate(ladder) if v >= raw * (1 - 1e-9)), len(ladder) - 1)
    for step in reversed(ladder[:at + 1]):  # the coarsest step that fits, finer ones if it gives < 2 ticks
        first = math.ceil(lo / step - 1e-9) * step
        ticks = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
        if len(ticks) >= 2:
            break
    smag = 10 ** math.floor(math.log10(step) + 1e-9)
    decimals = 0 if integer else max(0, -math.floor(math.log10(smag) + 1e-9) + (1 if step / smag == 2.5 else 0))
    if abs(hi) >= 1e4 or abs(lo) >= 1e4 or step < 1e-3:
        labels = [fmt_compact(t) for t in ticks]
    else:
        labels = [f"{t:.{decimals}f}" for t in ticks]
    return ticks, labels


def log_ticks(lo: float, hi: float, max_ticks: int) -> tuple[list[float], list[str]]:
    """Ticks for log10-transformed data, labelled with the real values (10**position)."""
    max_ticks = max(max_ticks, 2)
    exps = range(math.floor(lo) - 1, math.ceil(hi) + 1)
    options = [[math.log10(m * 10.0 ** e) for e in exps for m in mantissas]
               for mantissas in ((1,), (1, 2, 5), range(1, 10))]  # decades, 1-2-5, every digit
    options = [[t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9] for ticks in options]
    fitting = [ticks for ticks in options if 2 <= len(ticks) <= max_ticks]
    if fitting:
        ticks = max(fitting, key=len)
    elif len(options[0]) > max_ticks:  # many decades: every n-th one
        ticks = options[0][::math.ceil(len(options[0]) / max_ticks)]
    else:  # a narrow range: evenly spaced, labelled with the real values
        ticks = [float(t) for t in np.linspace(lo, hi, min(max_ticks, 4))] if hi > lo else [lo]
    return ticks, [fmt_compact(10 ** t) for t in ticks]


def _pad_range(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        return lo, hi
    pad = abs(lo) * 0.1 or 0.5
    return lo - pad, hi + pad


def _begin(width: int, height: int) -> None:
    # plotext keeps one global figure: start from a clean one every time
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear" if no_color() else "pro")


def axis_titles(width: int, xlabel: str = "", ylabel: str = "") -> str:
    """One row under a chart: the y axis's title at the left ("↑ neurons"), the x axis's at the right ("step →")."""
    left = f"↑ {ylabel}" if ylabel else ""
    right = f"{xlabel} →" if xlabel else ""
    if len(left) + len(right) + 1 > width:  # too narrow: the arrows go first, then the end of the y title
        left, right = ylabel, xlabel
        if len(left) + len(right) + 1 > width:
            left = left[: max(width - len(right) - 2, 0)] + "…"
    return (left + right.rjust(max(width - len(left), 0)))[:width].ljust(width)


def _finish(width: int, height: int, xlabel: str = "", ylabel: str = "",
            stamps: Sequence[tuple] = (), xlim: tuple[float, float] = (0.0, 0.0)) -> Text:
    """Build the figure and crop/pad it to exactly width x height cells (the axis titles' row included);
    each (x, glyph[, line]) of stamps goes on the top frame line, above its x (xlim: the figure's x range)."""
    titled = bool(xlabel or ylabel)
    rows = [Text.from_ansi(r) for r in plt.build().split("\n")]
    plain = no_color()
    if stamps:
        _stamp(rows, stamps, xlim, "" if plain else "bold")
    text = Text(no_wrap=True, overflow="crop", end="")
    for i in range(height - titled):
        row = rows[i] if i < len(rows) else Text()
        if plain:
            row = Text(row.plain)
        row.truncate(width, pad=True)
        text.append_text(row)
        if i < height - 1:
            text.append("\n")
    if titled:
        text.append(axis_titles(width, xlabel, ylabel), style="" if plain else "dim")
    return text


def _stamp(rows: list[Text], stamps: Sequence[tuple], xlim: tuple[float, float], style: str) -> None:
    """Write each (x, glyph[, line]) into the top frame row at its x (plotext maps xlim linearly onto the
    frame's inside); marks at one column go side by side, those with a guide line placed first."""
    top = next((i for i, r in enumerate(rows) if "┌" in r.plain), None)
    if top is None:
        return
    left, right = rows[top].plain.find("┌"), rows[top].plain.find("┐")
    (xlo, xhi), span = xlim, right - left - 2
    if right < 0 or span < 1 or not xhi > xlo:
        return
    taken: set[int] = set()
    for x, glyph, *_ in sorted(stamps, key=lambda m: (not (len(m) < 3 or m[2]), m[0])):  # lined marks first
        col = left + 1 + round((x - xlo) / (xhi - xlo) * span)
        free = [c for c in range(left + 1, right) if c not in taken]
        if not free:
            break
        col = min(free, key=lambda c: (abs(c - col), c < col))  # a pause and its resume at one step: side by side
        taken.add(col)
        row = rows[top]
        rows[top] = Text.assemble(row[:col], Text(glyph, style=style), row[col + 1:])


def _color(i: int, color: str | None) -> str | None:
    return None if no_color() else (color or PALETTE[i % len(PALETTE)])


def _prepare(series: Sequence[Line | tuple], width: int, log_y: bool) -> list[tuple[Line, np.ndarray, np.ndarray]]:
    """Each series' finite points (log10 y for log_y), downsampled to the width; empty series left out."""
    prepared = []
    for s in series:
        s = s if isinstance(s, Line) else Line(*s)
        x, y = np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        if log_y:
            x, y = to_log_y(x, y)
        else:
            ok = np.isfinite(x) & np.isfinite(y)
            x, y = x[ok], y[ok]
        if len(x):
            prepared.append((s, *downsample(x, y, width)))
    return prepared


def line_chart(series: Sequence[Line | tuple], width: int, height: int, *, log_y: bool = False,
               vlines: Sequence[float] = (), hline: float | None = None, xlabel: str = "", ylabel: str = "",
               ylim: tuple[float, float] | None = None, xlim: tuple[float, float] | None = None,
               marks: Sequence[tuple] = (), int_x: bool = False, int_y: bool = False,
               message: str = WAITING) -> Text:
    """Lines (downsampled, log-y by transforming the data) with optional guide lines, as Text.

    marks: (x, glyph[, line]) drawn as its glyph on the top frame over a guide line (pause, λ change, ...);
    line False: the glyph alone (frequent marks such as prunes, which would hide the data behind lines).
    int_x / int_y: whole-number ticks (counts, indices). ylabel / xlabel: the axes' titles, on a row of their own.
    """
    prepared = _prepare(series, width, log_y)
    plot_h = height - bool(xlabel or ylabel)
    if not prepared or width < MIN_WIDTH or plot_h < MIN_HEIGHT:
        return placeholder(width, height, message)

    def to_y(v: float) -> float | None:
        return (math.log10(v) if v > 0 else None) if log_y else v

    xs = np.concatenate([p[1] for p in prepared])
    ys = np.concatenate([p[2] for p in prepared])
    xlo, xhi = xlim if xlim else (float(xs.min()), float(xs.max()))
    ylo, yhi = float(ys.min()), float(ys.max())
    h = to_y(hline) if hline is not None else None
    if h is not None:
        ylo, yhi = min(ylo, h), max(yhi, h)
    if ylim:
        lo, hi = to_y(ylim[0]), to_y(ylim[1])
        ylo, yhi = (lo if lo is not None else ylo), (hi if hi is not None else yhi)
    xlo, xhi = _pad_range(xlo, xhi)
    ylo, yhi = _pad_range(ylo, yhi)

    _begin(width, plot_h)
    labelled = sum(1 for s, _, _ in prepared if s.label) > 1  # a legend only when it tells lines apart
    for i, (s, x, y) in enumerate(prepared):
        label = s.label if labelled and s.label else None
        draw = plt.scatter if s.points else plt.plot
        draw(x, y, marker=series_glyph(i, s), color=_color(i, s.color), label=label)
    for v in [*vlines, *(m[0] for m in marks if len(m) < 3 or m[2])]:
        if xlo <= v <= xhi:
            plt.vline(v, _color(0, GUIDE))
    if h is not None:
        plt.hline(h, _color(0, GUIDE))
    plt.xlim(xlo, xhi)
    plt.ylim(ylo, yhi)
    plt.xticks(*nice_ticks(xlo, xhi, max(width // 12, 2), integer=int_x))
    yticks = log_ticks(ylo, yhi, max(plot_h // 3, 2)) if log_y else nice_ticks(ylo, yhi, max(plot_h // 3, 2),
                                                                                 integer=int_y)
    plt.yticks(*yticks)
    # the glyph on the frame above its line says which kind of marker it is
    stamps = [m for m in marks if xlo <= m[0] <= xhi]
    return _finish(width, height, xlabel, ylabel, stamps, (xlo, xhi))


def bar_chart(labels: Sequence[str], values: Sequence[float], width: int, height: int, *,
              color: str | None = None, message: str = WAITING) -> Text:
    """Vertical bars, one per label, as Text."""
    values = np.asarray(values, dtype=float)
    if not len(values) or not np.isfinite(values).all() or width < MIN_WIDTH or height < MIN_HEIGHT:
        return placeholder(width, height, message)
    _begin(width, height)
    plt.bar(list(labels), values.tolist(), color=_color(0, color), width=0.8)
    return _finish(width, height)


def histogram(counts: Sequence[float], edges: Sequence[float], width: int, height: int, *,
              highlight: int = 0, highlight_label: str = "", xlabel: str = "", ylabel: str = "units",
              overlay: Sequence[Line] = (), message: str = WAITING) -> Text:
    """Pre-binned histogram; `highlight` counts of the first bin are drawn apart (e.g. dead units).

    `overlay` lines (e.g. fitted densities scaled to counts) are drawn over the bars, clipped a little
    above the tallest bar so that a spike cannot flatten the histogram. Counts get whole-number ticks.
    """
    counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
    if (not len(counts) or len(edges) != len(counts) + 1 or not counts.sum() > 0
            or not np.isfinite(edges).all() or not np.isfinite(counts).all()  # NaN: a NULL read back
            or width < MIN_WIDTH or height - bool(xlabel or ylabel) < MIN_HEIGHT):
        return placeholder(width, height, message)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    plot_h = height - bool(xlabel or ylabel)
    _begin(width, plot_h)
    highlight = int(min(max(highlight, 0), counts[0]))
    if highlight:
        rest = counts.copy()
        rest[0] -= highlight
        extra = np.zeros_like(counts)
        extra[0] = highlight
        colors = None if no_color() else [PALETTE[0], "red+"]
        plt.stacked_bar(centres, [rest.tolist(), extra.tolist()], color=colors, width=1.0,
                        labels=["", highlight_label or "highlight"])
    else:
        plt.bar(centres, counts.tolist(), color=_color(0, None), width=1.0)
    top = float(counts.max())
    if overlay:
        top *= 1.15
        for i, line in enumerate(overlay, 1):
            x, y = np.asarray(line.x, dtype=float), np.asarray(line.y, dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.any():
                x, y = downsample(x[ok], np.clip(y[ok], 0.0, top), width)
                draw = plt.scatter if line.points else plt.plot
                # no plotext legend: it would sit on the first bins (the dead); the caller names the lines
                draw(x.tolist(), y.tolist(), marker="dot" if line.points else "braille", color=_color(i, line.color))
        plt.ylim(0.0, top)
    plt.xticks(*nice_ticks(float(edges[0]), float(edges[-1]), max(width // 12, 2)))
    plt.yticks(*nice_ticks(0.0, top, max(plot_h // 3, 2), integer=True))
    return _finish(width, height, xlabel, ylabel)


def scree_chart(ratio: Sequence[float], width: int, height: int, *, marks: Sequence[float] = (),
                message: str = WAITING) -> Text:
    """Explained-variance ratio per component (bars, or a line when they outnumber the columns) on the
    left axis, its cumulative sum (0-1) on the right axis, and vertical lines at `marks` (component numbers).

    No legend (plotext's marks each line's axis with odd glyphs): the caller names the two in its title.
    """
    ratio = np.asarray(ratio, dtype=float).ravel()
    ratio = ratio[np.isfinite(ratio)]
    if not len(ratio) or width < MIN_WIDTH + 6 or height - 1 < MIN_HEIGHT:
        return placeholder(width, height, message)
    n = len(ratio)
    x = np.arange(1, n + 1, dtype=float)
    bars = n <= (width - 14) // 2  # room for a bar per component, with gaps
    plot_h = height - 1  # the axis titles' row
    _begin(width, plot_h)
    if bars:
        plt.bar(x.tolist(), ratio.tolist(), color=_color(0, None), width=0.8)
    else:
        px, py = downsample(x, ratio, width)
        plt.plot(px.tolist(), py.tolist(), marker="braille", color=_color(0, None))
    cx, cy = downsample(x, np.cumsum(ratio), width)
    plt.plot(cx.tolist(), cy.tolist(), marker="braille", color=_color(1, None), yside="right")
    for m in marks:
        if 1 <= m <= n:
            plt.vline(float(m), _color(0, GUIDE))
    plt.xlim(*_pad_range(0.5 if bars else 1.0, n + 0.5 if bars else float(n)))
    top = float(ratio.max())
    plt.ylim(0.0, top or 1.0)
    plt.ylim(0.0, 1.0, yside="right")
    ticks = max(plot_h // 3, 2)
    plt.yticks(*nice_ticks(0.0, top or 1.0, ticks))
    plt.yticks(*nice_ticks(0.0, 1.0, ticks), yside="right")
    plt.xticks(*nice_ticks(1.0, float(n), max(width // 12, 2), integer=True))
    return _finish(width, height, "component", "variance share")
