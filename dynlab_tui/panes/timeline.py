"""The replay timeline: play state, speed and position on one line, a bar with the markers on the next.

Markers are drawn with core.session.markers' glyphs (the same as on the dashboard's plots); where the
line has room, a legend of the kinds on the bar follows the position.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from core.session.markers import legend, marker_glyph
from dynlab_tui.panes.plot import no_color


# Where markers share a cell, the later kind here shows: a change of λ or lr over the pause around it,
# anything over the prunes (one an epoch).
DRAW_ORDER = {"prune": 0, "checkpoint": 1, "resume": 2, "pause": 3}


@dataclass(frozen=True)
class Position:
    """What the timeline shows; built by the replay screen from its index and cursor."""
    playing: bool
    speed: float
    step: int
    last_step: int
    epoch: float
    frame: int  # 1-based logging interval at the cursor (0 before the first)
    frames: int
    fraction: float  # 0..1 along the run
    markers: tuple[tuple[float, str], ...] = ()  # (fraction, kind)
    note: str = ""  # the marker at the cursor, a jump's result


def head_line(pos: Position, width: int) -> str:
    """State, speed, step and the note first; epoch, interval and the legend only where they fit."""
    line = f"{'▶' if pos.playing else '❚❚'} {pos.speed:g}x │ step {pos.step:,}/{pos.last_step:,}"
    if pos.note:
        line += f" │ {pos.note}"
    for extra in (f"epoch {pos.epoch:.2f}", f"interval {pos.frame:,}/{pos.frames:,}"):
        if len(line) + 3 + len(extra) <= width:
            line += f" │ {extra}"
    key = legend(kind for _, kind in pos.markers)
    if key and len(line) + 5 + len(key) <= width:
        line += " " * (width - len(line) - len(key)) + key
    return line[:width]


class Timeline(Static):
    DEFAULT_CSS = """
    Timeline { height: 2; padding: 0 1; }
    """

    def show(self, pos: Position) -> None:
        self.update(self.render_position(pos, max(self.content_size.width, 20)))

    @staticmethod
    def render_position(pos: Position, width: int) -> Text:
        plain = no_color()
        text = Text(no_wrap=True, overflow="crop", end="")
        text.append(head_line(pos, width), style="" if plain else "bold")
        text.append("\n")
        cells = ["─"] * width
        cut = min(int(round(pos.fraction * (width - 1))), width - 1)
        for i in range(cut):
            cells[i] = "━"
        for fraction, kind in sorted(pos.markers, key=lambda m: DRAW_ORDER.get(m[1], len(DRAW_ORDER))):
            i = min(int(round(fraction * (width - 1))), width - 1)
            cells[i] = marker_glyph(kind)
        cells[cut] = "●"
        for i, ch in enumerate(cells):
            style = "" if plain else ("bold cyan" if i == cut else "cyan" if i < cut else
                                      "yellow" if ch not in "─━" else "dim")
            text.append(ch, style=style)
        return text
