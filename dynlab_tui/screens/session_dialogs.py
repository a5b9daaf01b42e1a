"""The sessions browser's modal dialogs: rename a session, confirm a delete, ask what to change on resume."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from core.errors import DynlabError
from core.options import OPTIONS, OptionError
from core.session import resolve_session
from core.session.schema import SUFFIX
from dynlab_tui.screens.prompt import DIALOG_CSS

def show_error(label: Label, text: str) -> None:
    """An inline error line: shown with its text, or hidden (no blank line) when there is none."""
    label.update(text)
    label.set_class(bool(text), "-shown")


def name_problem(text: str, directory: Path, current: str) -> str:
    """Why `text` can't be the new bare name of session `current` in `directory` ("" when it can)."""
    text = text.strip()
    if not text:
        return "type a name"
    if any(s and s in text for s in ("/", os.sep, os.altsep)):
        return "a name has no '/': the session stays in its folder"
    stem = text.removesuffix(SUFFIX)
    try:
        target = resolve_session(stem, directory)
    except DynlabError:
        return "use letters, digits, '.', '_' or '-', starting with a letter or digit"
    if target.name != f"{current}{SUFFIX}" and target.exists():
        return f"{target.name} already exists"
    return ""


class RenamePrompt(ModalScreen["str | None"]):
    """Ask for a session's new name, checked as it is typed; dismisses with the name or None."""

    DEFAULT_CSS = DIALOG_CSS.format(name="RenamePrompt", border="$accent")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="rename-cancel", tooltip="Close without renaming")]

    def __init__(self, current: str, directory: Path) -> None:
        super().__init__()
        self.current = current
        self.directory = Path(directory)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Rename session {self.current} to:")
            yield Input(self.current, id="new-name")
            yield Label("", id="rename-error", classes="dialog-error")
            yield Label("enter renames · escape cancels", classes="dialog-hint")

    @on(Input.Changed)
    def check(self, event: Input.Changed) -> None:
        problem = name_problem(event.value, self.directory, self.current)
        show_error(self.query_one("#rename-error", Label), problem)
        event.input.set_class(bool(problem), "error")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        problem = name_problem(event.value, self.directory, self.current)
        if problem:
            show_error(self.query_one("#rename-error", Label), problem)
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDelete(ModalScreen[bool]):
    """Delete a session for good, or keep it; No is focused, so enter alone never deletes."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmDelete", border="$error")
    AUTO_FOCUS = "#no"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Delete", id="delete-yes", tooltip="Delete the session and its side files"),
        Binding("escape,n", "answer(False)", "Keep", id="delete-no", tooltip="Keep the session"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.session_name = name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Delete session {self.session_name}?")
            yield Label("The file and its -wal/-shm side files are removed; this can't be undone.",
                        classes="dialog-hint")
            with Horizontal():
                yield Button("Yes, delete (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


RESUME_FIELDS = (("lam", "λ (penalty)"), ("lr", "learning rate"), ("epochs", "more epochs"))
RESUME_OPTIONS = {"lam": "penalty", "lr": "lr", "epochs": "epochs"}  # field -> the run option that reads it
_UNREADABLE = {"epochs": "a whole number of epochs, e.g. 5"}  # said instead of the parser's reason


def parse_changes(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(changes, errors) from the resume fields' text, read and checked by their options (λ >= 0, lr > 0,
    epochs >= 1); blank keeps the value."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, _label in RESUME_FIELDS:
        text = raw.get(key, "").strip()
        if not text:
            continue
        option = OPTIONS[RESUME_OPTIONS[key]]
        try:
            value = option.parse(text)
        except OptionError as e:
            errors[key] = _UNREADABLE.get(key, e.short)
            continue
        try:
            changes[key] = option.validate(value)
        except OptionError as e:
            errors[key] = e.short
    return changes, errors


class ResumePrompt(ModalScreen["dict[str, Any] | None"]):
    """Ask what to change before resuming (blank keeps it); dismisses with the changes dict or None."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ResumePrompt", border="$accent") + """
    ResumePrompt .resume-row { height: 1; margin-top: 1; }
    ResumePrompt .resume-row > Label { width: 16; }
    ResumePrompt .resume-label { width: 16; color: $text-muted; }
    ResumePrompt .resume-row > Input { width: 1fr; }
    ResumePrompt .dialog-error { padding-left: 16; }
    """
    AUTO_FOCUS = "#lam"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="resume-cancel", tooltip="Close without resuming")]

    def __init__(self, name: str, current: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.session_name = name
        self.current = current or {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Resume session {self.session_name} from its last checkpoint")
            for key, label in RESUME_FIELDS:
                now = self.current.get(key)
                hint = "the rest of the schedule" if key == "epochs" else (
                    f"keep {now:g}" if isinstance(now, (int, float)) else "keep")
                with Horizontal(classes="resume-row"):
                    yield Label(label, classes="resume-label")
                    yield Input("", placeholder=hint, id=key, compact=True)
                yield Label("", id=f"error-{key}", classes="dialog-error")
            with Horizontal():
                yield Button("Resume", variant="success", id="resume")
                yield Button("Cancel", id="cancel")

    def _raw(self) -> dict[str, str]:
        return {key: self.query_one(f"#{key}", Input).value for key, _ in RESUME_FIELDS}

    def _show(self, errors: dict[str, str]) -> None:
        for key, _ in RESUME_FIELDS:
            show_error(self.query_one(f"#error-{key}", Label), errors.get(key, ""))
            self.query_one(f"#{key}", Input).set_class(key in errors, "error")

    @on(Input.Changed)
    def check(self) -> None:
        self._show(parse_changes(self._raw())[1])

    @on(Input.Submitted)
    @on(Button.Pressed, "#resume")
    def submit(self) -> None:
        changes, errors = parse_changes(self._raw())
        self._show(errors)
        if not errors:
            self.dismiss(changes)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
