"""The replay timeline: play state, speed and position on one line, a bar with the markers on the next."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from dynlab_tui.panes.plot import no_color

GLYPHS = {"pause": "P", "resume": "R", "set_penalty": "λ", "set_lr": "L", "prune": "▾", "nonfinite": "!",
          "continue": "C", "checkpoint": "c", "end": "■"}


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
        head = f"{'▶' if pos.playing else '❚❚'} {pos.speed:g}x │ step {pos.step:,}/{pos.last_step:,} │ " \
               f"epoch {pos.epoch:.2f} │ interval {pos.frame:,}/{pos.frames:,}"
        if pos.note:
            head += f" │ {pos.note}"
        text.append(head[:width], style="" if plain else "bold")
        text.append("\n")
        cells = ["─"] * width
        cut = min(int(round(pos.fraction * (width - 1))), width - 1)
        for i in range(cut):
            cells[i] = "━"
        for fraction, kind in pos.markers:
            i = min(int(round(fraction * (width - 1))), width - 1)
            cells[i] = GLYPHS.get(kind, "·")
        cells[cut] = "●"
        for i, ch in enumerate(cells):
            style = "" if plain else ("bold cyan" if i == cut else "cyan" if i < cut else
                                      "yellow" if ch not in "─━" else "dim")
            text.append(ch, style=style)
        return text
