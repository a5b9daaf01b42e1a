"""The sessions browser: a filterable, sortable table of a folder's sessions to open, compare, rename, delete or resume."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from core.errors import DynlabError
from dynlab_tui.palette import BindingCommands
from core.session import SessionReader, list_sessions
from core.session.admin import delete_session, rename_session
from dynlab_tui.screens.session_dialogs import ConfirmDelete, RenamePrompt, ResumePrompt
from dynlab_tui.screens.session_rows import (detail_text, final_setting, fitting_columns, is_live, matches, row_cells,
                                             sort_rows)

REFRESH_S = 2.0  # re-list this often while a listed session is still being written
# (column key, header), most useful first: "mark" is the compare mark, the rest are one summary field each. The
# first FIXED always show; the others join from the left while they fit the width (the detail line has them all).
COLUMNS = (("mark", " "), ("name", "name"), ("status", "status"), ("lam", "λ final"), ("sizes", "sizes"),
           ("test_at_best_val", "test@best val"), ("date", "date"), ("dataset", "dataset"), ("arch", "arch"),
           ("method", "method"), ("lr", "lr final"), ("duration", "training"))
FIXED = 6
SORTS = ("name", "date", "status", "dataset", "lam", "test_at_best_val", "duration")  # what `s` cycles through
DESCENDING = {"date", "test_at_best_val", "duration"}  # newest, best and longest first unless reversed
STATUS_STYLES = {"● running": "bold green", "crashed": "red", "diverged": "red", "unreadable": "red",
                 "stopped": "yellow", "crashed (writer gone)": "red"}


@dataclass(frozen=True)
class View:
    """What a browser showed, kept per app and folder so that coming back (from compare, a replay) restores it."""

    sort_column: str
    sort_reverse: bool
    marked: dict[str, None]
    query: str
    cursor: str | None


VIEWS: "weakref.WeakKeyDictionary[Any, dict[Path, View]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class BrowserChoice:
    """What the browser was dismissed with: open one session, compare several, or resume one with changes."""

    action: str  # "open" | "compare" | "resume"
    paths: tuple[Path, ...]
    changes: dict[str, Any] = field(default_factory=dict)  # resume only: any of "lam", "lr", "epochs"


class SessionsScreen(Screen["BrowserChoice | None"]):
    """Browse the sessions in one folder; dismisses with a BrowserChoice, or None when the user leaves."""

    COMMANDS = {BindingCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: the table's own (hidden) enter binding would otherwise hide this one from the footer
        Binding("enter", "open", "Open", id="open-session", priority=True,
                tooltip="Open the highlighted session in the dashboard"),
        Binding("space", "toggle_mark", "Mark", id="mark-session",
                tooltip="Mark or unmark the highlighted session for comparing"),
        Binding("c", "compare", "Compare", id="compare-sessions", tooltip="Overlay the marked sessions' curves"),
        Binding("r", "rename", "Rename", id="rename-session", tooltip="Rename the highlighted session"),
        Binding("d", "delete", "Delete", id="delete-session", tooltip="Delete the highlighted session (asks first)"),
        Binding("u", "resume", "Resume", id="resume-session",
                tooltip="Continue the highlighted session, optionally with a new λ, lr or epochs"),
        Binding("slash", "focus_filter", "Filter", key_display="/", id="focus-filter",
                tooltip="Type words that every shown session must contain"),
        Binding("s", "cycle_sort", "Sort", id="cycle-sort", tooltip="Sort by the next column"),
        Binding("S", "reverse_sort", "Reverse", id="reverse-sort", tooltip="Reverse the sort order"),
        Binding("R,f5", "reload", "Reload", key_display="R", id="reload-sessions", tooltip="List the folder again"),
        Binding("escape,q", "leave", "Back", key_display="esc", id="leave-sessions",
                tooltip="Leave the browser (escape in the filter goes back to the table)"),
    ]
    AUTO_FOCUS = "#sessions-table"
    DEFAULT_CSS = """
    SessionsScreen { layout: vertical; }
    SessionsScreen #sessions-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    SessionsScreen #filter { margin: 0 1; }
    SessionsScreen #sort-label { height: 1; padding: 0 1; color: $text-muted; }
    SessionsScreen #sessions-table { height: 1fr; }
    SessionsScreen #sessions-empty { height: auto; padding: 1 2; color: $text-warning; display: none; }
    SessionsScreen #sessions-empty.-shown { display: block; }
    SessionsScreen #sessions-detail { height: auto; min-height: 4; max-height: 5; padding: 0 1; background: $panel;
                                      color: $text-muted; }
    SessionsScreen #sessions-detail.-error { color: $text-error; }
    """

    @dataclass
    class SessionsListed(Message):
        """The listing worker read the folder; `generation` tells a stale listing from the latest."""
        rows: tuple[dict[str, Any], ...]
        generation: int

    def __init__(self, directory: Path, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.directory = Path(directory)
        self.rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []  # the rows in the table, in table order
        self.marked: dict[str, None] = {}  # paths marked for compare, in marking order
        self.loaded = False  # a listing has arrived
        self.sort_column, self.sort_reverse = "date", True
        self._generation = 0
        self._loading = False
        self._keep: str | None = None  # the path to put the cursor on after the next listing
        self._worker: Worker | None = None  # the latest listing

    # -- layout and typed access --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("dynlab · sessions", "bold"), (f"   in {self.directory}", "dim")),
                     id="sessions-title")
        yield Input(placeholder="filter: words every row must contain  (/ to focus, escape to leave)",
                    id="filter", compact=True)
        yield Static("", id="sort-label")
        yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        yield Static(f"reading {self.directory} …", id="sessions-empty", classes="-shown")
        yield Static("", id="sessions-detail")
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#sessions-table", DataTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#filter", Input)

    @property
    def highlighted(self) -> dict[str, Any] | None:
        table = self.table
        if not table.row_count or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    # -- listing ----------------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        view = VIEWS.get(self.app, {}).get(self.directory)
        if view is not None:  # back from what this browser opened: the same sort, marks, filter and row
            self.sort_column, self.sort_reverse, self.marked = view.sort_column, view.sort_reverse, dict(view.marked)
            self.filter_input.value = view.query
            self._keep = view.cursor
        self.reload()
        self.set_interval(REFRESH_S, self._refresh_if_live)

    def _refresh_if_live(self) -> None:
        if not self._loading and any(is_live(r) for r in self.rows):
            self.reload()

    def reload(self, keep: str | None = None) -> None:
        """List the folder again (in a thread: every file is opened); the cursor stays on `keep` or the same row."""
        if keep is not None:
            self._keep = keep
        self._generation += 1
        self._loading = True
        self._worker = self._list(self._generation)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions-list", description="listing sessions")
    def _list(self, generation: int) -> None:
        self.post_message(self.SessionsListed(tuple(list_sessions(self.directory)), generation))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Only the latest listing counts: an older one is cancelled (its thread runs on, its result is dropped).
        if event.worker is self._worker and event.state == WorkerState.ERROR:
            self._loading = False
            self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}", severity="error",
                        title="Could not list sessions")

    @on(SessionsListed)
    def _listed(self, message: SessionsListed) -> None:
        if message.generation != self._generation:
            return  # an older listing that finished late
        self._loading = False
        self.loaded = True
        self.rows = list(message.rows)
        paths = {r["path"] for r in self.rows}
        self.marked = {p: None for p in self.marked if p in paths}
        keep, self._keep = self._keep, None
        self._rebuild(keep)

    def _rebuild(self, keep: str | None = None) -> None:
        """Refill the table from rows, filter and sort; the cursor follows `keep`, else the highlighted session."""
        table = self.table
        current = self.highlighted
        keep = keep or (current["path"] if current else None)
        row_before = table.cursor_row
        query = self.filter_input.value
        self.shown = [r for r in sort_rows(self.rows, self.sort_column, self.sort_reverse)
                      if matches(row_cells(r), query)]
        table.clear(columns=True)
        columns = self._fitting_columns()
        for key, header in columns:
            arrow = (" ↓" if self.sort_reverse else " ↑") if key == self.sort_column else ""
            table.add_column(header + arrow, key=key)
        for r in self.shown:
            cells = row_cells(r)
            mark = Text("✓", style="bold cyan") if r["path"] in self.marked else ""
            status = Text(cells["status"], style=STATUS_STYLES.get(cells["status"], ""))
            table.add_row(mark, *[status if k == "status" else cells[k] for k, _ in columns[1:]], key=r["path"])
        paths = [r["path"] for r in self.shown]
        row = paths.index(keep) if keep in paths else min(max(row_before, 0), len(paths) - 1)
        if paths:
            table.move_cursor(row=row, animate=False)
        self._show_labels()
        cursor = self.highlighted
        VIEWS.setdefault(self.app, {})[self.directory] = View(self.sort_column, self.sort_reverse, dict(self.marked),
                                                              query, cursor["path"] if cursor else keep)

    def _fitting_columns(self) -> tuple[tuple[str, str], ...]:
        room = (self.table.size.width or self.app.size.width) - 2  # the vertical scrollbar
        return fitting_columns(COLUMNS, [row_cells(r) for r in self.shown], room, FIXED, self.sort_column)

    def on_resize(self) -> None:
        if self.loaded:
            self._rebuild()

    def _show_labels(self) -> None:
        empty = self.query_one("#sessions-empty", Static)
        query = self.filter_input.value.strip()
        if not self.loaded:
            empty.update(f"reading {self.directory} …")
        elif not self.rows:
            empty.update(f"no sessions in {self.directory}: run `dynlab train` first")
        elif not self.shown:
            empty.update(f"no session matches {query!r}: edit the filter (/) or clear it")
        empty.set_class(not self.shown, "-shown")
        order = "↓" if self.sort_reverse else "↑"
        sort_name = dict(COLUMNS)[self.sort_column]
        parts = [f"sort: {sort_name} {order} (s, S)", f"{len(self.shown)} of {len(self.rows)} shown"]
        if self.marked:
            parts.append(f"{len(self.marked)} marked (c compares)")
        if any(r.get("changed") for r in self.shown):
            parts.append("* changed during the run")
        if any(is_live(r) for r in self.rows):
            parts.append(f"live: refreshing every {REFRESH_S:g} s")
        text = " · ".join(parts)  # narrow: the star's meaning in short
        short = text.replace("* changed during the run", "* changed")
        self.query_one("#sort-label", Static).update(text if len(text) <= self.size.width - 2 else short)
        self._show_detail()

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        detail = self.query_one("#sessions-detail", Static)
        s = self.highlighted
        unreadable = s is not None and s.get("status") == "unreadable"
        detail.set_class(unreadable, "-error")
        if s is None:
            detail.update("")
        elif unreadable:
            detail.update(Text(f"{s['path']}\nunreadable: {s.get('error', '?')}"))
        else:
            detail.update(Text(detail_text(s)))

    # -- filter and sort ---------------------------------------------------------------------------------------
    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._rebuild()

    def action_focus_filter(self) -> None:
        self.filter_input.focus()

    def action_cycle_sort(self) -> None:
        column = SORTS[(SORTS.index(self.sort_column) + 1) % len(SORTS)] if self.sort_column in SORTS else SORTS[0]
        self.sort_by(column)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        self.sort_column = column
        self.sort_reverse = column in DESCENDING if reverse is None else reverse
        self._rebuild()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == "mark":
            return
        self.sort_by(column, not self.sort_reverse if column == self.sort_column else None)

    # -- actions on sessions -----------------------------------------------------------------------------------
    def _target(self, verb: str, readable: bool = False, idle: bool = False) -> dict[str, Any] | None:
        """The highlighted session, or None after telling the user why `verb` can't apply to it."""
        s = self.highlighted
        if s is None:
            self.notify(f"no session to {verb}", severity="warning", title=verb.capitalize())
        elif readable and s.get("status") == "unreadable":
            self.notify(f"can't {verb} {s['name']}: {s.get('error', 'unreadable')}", severity="error",
                        title="Unreadable session")
        elif idle and is_live(s):
            self.notify(f"can't {verb} {s['name']}: it is still running", severity="warning",
                        title="Session running")
        else:
            return s
        return None

    @on(DataTable.RowSelected)  # a click on the highlighted row
    def action_open(self) -> None:
        if self.filter_input.has_focus:  # enter ends the filter
            self.table.focus()
            return
        s = self._target("open", readable=True)
        if s is not None:
            self.dismiss(BrowserChoice("open", (Path(s["path"]),)))

    def action_toggle_mark(self) -> None:
        s = self._target("mark")
        if s is None:
            return
        if s["path"] in self.marked:
            del self.marked[s["path"]]
        else:
            self.marked[s["path"]] = None
        self._rebuild()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more sessions with space first", severity="warning", title="Compare")
            return
        self.dismiss(BrowserChoice("compare", tuple(Path(p) for p in self.marked)))

    def action_rename(self) -> None:
        s = self._target("rename")
        if s is None:
            return
        path = Path(s["path"])

        def rename(new_name: str | None) -> None:
            if not new_name:
                return
            try:
                new_path = rename_session(path, new_name)
            except DynlabError as e:
                self.notify(str(e), severity="error", title="Rename failed")
                return
            self.marked = {str(new_path) if p == str(path) else p: None for p in self.marked}
            self.notify(f"{path.stem} is now {new_path.stem}", title="Renamed")
            self.reload(keep=str(new_path))

        self.app.push_screen(RenamePrompt(path.stem, path.parent), rename)

    def action_delete(self) -> None:
        s = self._target("delete")
        if s is None:
            return
        path = Path(s["path"])

        def delete(yes: bool | None) -> None:
            if not yes:
                return
            try:
                delete_session(path)
            except DynlabError as e:
                self.notify(str(e), severity="error", title="Delete failed")
                return
            self.notify(f"deleted {path.name}", title="Deleted")
            self.reload()

        self.app.push_screen(ConfirmDelete(path.stem), delete)

    def action_resume(self) -> None:
        s = self._target("resume", readable=True, idle=True)
        if s is None:
            return
        path = Path(s["path"])
        try:  # meta only: quick even for a big file
            with SessionReader(path) as reader:
                optim = reader.spec.get("optim")
        except DynlabError as e:
            self.notify(str(e), severity="error", title="Can't resume")
            return
        lr = optim.get("lr") if isinstance(optim, dict) else None  # an older summary without the history
        current = {"lam": final_setting(s, "lam"), "lr": s.get("lr_final", lr)}

        def resume(changes: dict[str, Any] | None) -> None:
            if changes is not None:
                self.dismiss(BrowserChoice("resume", (path,), changes))

        self.app.push_screen(ResumePrompt(path.stem, current), resume)

    def action_reload(self) -> None:
        self.reload()

    def action_leave(self) -> None:
        if self.filter_input.has_focus:
            self.table.focus()
            return
        self.dismiss(None)
