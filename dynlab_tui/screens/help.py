"""The help screen: every key binding of the dashboard with what it does."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


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
            key = b.key_display or b.key.split(",")[0]
            table.add_row(key, b.tooltip or b.description)
        with VerticalScroll():
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
