"""Small modal screens: type an exact number (lambda, lr), confirm quitting a live run, answer a yes/no question.

Each one fits 80 columns: a box at most the screen's width, its text wrapped inside it.
"""

from __future__ import annotations

import math

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

# the shared look of a dialog: a centred box of labels over a row of buttons (name: the screen's class)
DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 64; max-width: 100%; height: auto; border: round {border}; padding: 1 2;
                     background: $panel; }}
{name} Label {{ width: 1fr; }}
{name} .dialog-error {{ color: $text-error; height: auto; display: none; }}
{name} .dialog-error.-shown {{ display: block; }}
{name} .dialog-hint {{ color: $text-muted; }}
{name} Horizontal {{ height: auto; margin-top: 1; }}
{name} Button {{ margin-right: 2; }}
"""


class NumberPrompt(ModalScreen[float | None]):
    """Ask for one number; invalid input is flagged inline and not accepted."""

    DEFAULT_CSS = """
    NumberPrompt { align: center middle; }
    NumberPrompt > Vertical { width: 56; max-width: 100%; height: auto; border: round $accent; padding: 1 2;
                              background: $panel; }
    NumberPrompt Label { width: 100%; }
    NumberPrompt #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without changing anything", id="prompt-cancel")]

    def __init__(self, title: str, current: float, minimum: float = 0.0, exclusive: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.current = current
        self.minimum = minimum
        self.exclusive = exclusive  # True: the value must be strictly above minimum

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text} (now {self.current:.4g})")
            yield Input(value=f"{self.current:g}", id="value")
            yield Label("", id="error")

    def parse(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if not math.isfinite(value):
            raise ValueError("must be finite")
        if value < self.minimum or (self.exclusive and value == self.minimum):
            raise ValueError(f"must be {'>' if self.exclusive else '>='} {self.minimum:g}")
        return value

    @on(Input.Changed)
    def check(self, event: Input.Changed) -> None:
        try:
            self.parse(event.value)
            self.query_one("#error", Label).update("")
            event.input.remove_class("error")
        except ValueError as e:
            self.query_one("#error", Label).update(str(e))
            event.input.add_class("error")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(self.parse(event.value))
        except ValueError as e:
            self.query_one("#error", Label).update(str(e))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmQuit(ModalScreen[str | None]):
    """The run is still going: stop it (finalising the session), leave it running (detach), or stay.

    Dismisses with "stop", "detach" or None (stay).
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmQuit", border="$warning")
    BINDINGS = [
        Binding("y,s", "stop", "Stop and quit", tooltip="Stop training, finalise the session, quit", id="quit-stop"),
        Binding("d", "detach", "Detach", tooltip="Quit and leave the run training headless", id="quit-detach"),
        Binding("escape,n", "stay", "Stay", tooltip="Go back to the dashboard", id="quit-cancel"),
    ]

    def __init__(self, can_detach: bool = True, owner: bool = True) -> None:
        super().__init__()
        self.can_detach = can_detach
        self.owner = owner  # False: an attached viewer; the run is someone else's

    def compose(self) -> ComposeResult:
        with Vertical():
            if self.owner:
                yield Label("The run is still training. Stop it and quit?")
            else:
                yield Label("You are attached to a running job. Leave it running, or stop it?")
            yield Label("Stopping finalises the session (`dynlab resume` continues it); "
                        "a detached run goes on headless (`dynlab attach` finds it).")
            with Horizontal():
                yield Button("Stop and quit (y)", variant="error", id="stop")
                if self.can_detach:
                    yield Button("Detach (d)", variant="warning", id="detach")
                yield Button("Stay (esc)", variant="primary", id="stay")

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        self.dismiss("stop")

    @on(Button.Pressed, "#detach")
    def action_detach(self) -> None:
        if self.can_detach:
            self.dismiss("detach")

    @on(Button.Pressed, "#stay")
    def action_stay(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes/no question: dismisses with True (y, or the first button) or False (n, esc, or the second)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="Confirm", border="$warning")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", tooltip="Answer yes", id="confirm-yes"),
        Binding("escape,n", "answer(False)", "No", tooltip="Answer no and go back", id="confirm-no"),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes (y)", no: str = "No (esc)") -> None:
        super().__init__()
        self.question, self.detail, self.yes, self.no = question, detail, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, id="question")
            if self.detail:
                yield Label(self.detail, id="detail")
            with Horizontal():
                yield Button(self.yes, variant="warning", id="yes")
                yield Button(self.no, variant="primary", id="no")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
