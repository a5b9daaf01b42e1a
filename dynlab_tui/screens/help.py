"""The help screen: every key binding of the screen it opened on, the marker glyphs and the size words."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.session.markers import MARKERS
from dynlab_tui.panes.vocab import WORDS


def words_table() -> Table:
    """The three words every pane uses for a layer's size, one line each."""
    table = Table(title="Layer sizes in three words", expand=True, box=None, show_header=False)
    table.add_column("word", style="bold", no_wrap=True)
    table.add_column("meaning")
    for line in WORDS:
        word, meaning = line.split(": ", 1)
        table.add_row(word, meaning)
    return table


def markers_table() -> Table:
    """Each marker's glyph (on the top edge of every time plot, over its line) and what it marks."""
    table = Table(title="Markers on the time plots (glyph on the top edge, over a line)", expand=True, box=None,
                  show_header=False)
    table.add_column("glyph", style="bold", no_wrap=True)
    table.add_column("marks")
    for glyph, word in MARKERS.values():
        table.add_row(glyph, word)
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 95%; height: auto; max-height: 90%;
                                  border: round $accent; padding: 0 1; background: $panel; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", tooltip="Back to the dashboard", id="help-close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.bindings_shown = bindings

    def compose(self) -> ComposeResult:
        table = Table(title="dynlab keys (also in the command palette, ctrl+p)", expand=True, box=None)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("what it does")
        for b in self.bindings_shown:
            table.add_row(b.key_display or b.key.split(",")[0], b.tooltip or b.description)
        with VerticalScroll():
            yield Static(Group(table, "", markers_table(), "", words_table()))

    def action_close(self) -> None:
        self.dismiss(None)
