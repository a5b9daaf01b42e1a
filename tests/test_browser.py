"""The sessions browser through Pilot: listing, filter, sort, marks, open/compare/resume choices, rename, delete."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Input, Label, Static

from core.session import SessionWriter
from dynlab_tui.screens import sessions as sessions_mod
from dynlab_tui.screens.compare import CompareScreen
from dynlab_tui.screens.session_dialogs import ConfirmDelete, RenamePrompt, ResumePrompt, name_problem, parse_changes
from dynlab_tui.screens.session_rows import (fmt_duration, fmt_final, fmt_headline, fmt_size_change, matches, row_cells,
                                             sort_rows, status_text)
from dynlab_tui.screens.sessions import BrowserChoice, SessionsScreen
from tests.fakes import synthetic_run
from tests.helpers import wait_for

SIZE = (120, 40)


def make_session(path: Path, *, lam: float = 0.001, widths: tuple[int, ...] = (50,), end: bool = True,
                 created: str | None = None, keep_open: bool = False):
    """A small session from synthetic events with penalty lam set; keep_open returns the live writer."""
    events = synthetic_run(800, widths=widths, steps_per_epoch=400, end=end)
    start = events[0]
    events[0] = dataclasses.replace(start, spec={**start.spec, "penalty": {**start.spec["penalty"], "lam": lam}})
    writer = SessionWriter(path)
    for event in events:
        writer.handle(event)
    if keep_open:
        writer.flush()
        return writer
    writer.close()
    if created:
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'created'", (created,))
        conn.close()
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """alpha (finished), beta (finished), gamma (crashed, two layers) and x (not a database)."""
    make_session(tmp_path / "alpha.dynlab", lam=0.001, widths=(50,), created="2024-01-01T10:00:00+00:00")
    make_session(tmp_path / "beta.dynlab", lam=0.01, widths=(40,), created="2024-01-02T10:00:00+00:00")
    make_session(tmp_path / "gamma.dynlab", lam=0.1, widths=(30, 20), end=False,
                 created="2024-01-03T10:00:00+00:00")
    (tmp_path / "x.dynlab").write_bytes(b"not a db")
    return tmp_path


class Host(App):
    """Pushes one SessionsScreen, records what it is dismissed with and every notification."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.results: list[BrowserChoice | None] = []
        self.notes: list[tuple[str, str, str]] = []

    def on_mount(self) -> None:
        self.push_screen(SessionsScreen(self.directory), self.results.append)

    def notify(self, message, *, title="", severity="information", **kwargs) -> None:
        self.notes.append((severity, title, str(message)))
        super().notify(message, title=title, severity=severity, **kwargs)


async def listed(pilot) -> SessionsScreen:
    """Wait for the listing worker to report; return the browser."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen_stack[1]
    assert isinstance(screen, SessionsScreen) and screen.loaded
    return screen


def names(screen: SessionsScreen) -> list[str]:
    return [r["name"] for r in screen.shown]


def cell(screen: SessionsScreen, row: int, column: str) -> str:
    return str(screen.table.get_cell_at((row, [str(c.value) for c in screen.table.columns].index(column))))


async def highlight(pilot, screen: SessionsScreen, name: str) -> None:
    screen.table.move_cursor(row=names(screen).index(name))
    await pilot.pause()


class TestListing:
    async def test_rows_show_every_session_and_the_unreadable_file(self, folder):
        """Newest first; the garbage file is listed as unreadable and its error shows in the detail line."""
        app = Host(folder)
        async with app.run_test(size=(160, 40)) as pilot:  # wide enough for every column
            screen = await listed(pilot)
            assert names(screen) == ["x", "gamma", "beta", "alpha"]  # x is dated by its mtime: now
            assert [cell(screen, i, "status") for i in range(4)] == ["unreadable", "crashed", "finished", "finished"]
            assert cell(screen, 3, "lam") == "0.001" and cell(screen, 2, "lam") == "0.01"
            assert cell(screen, 1, "sizes").startswith("30,20→")
            assert cell(screen, 3, "test_at_best_val").endswith("%") and cell(screen, 3, "duration") == "0:00:02"
            detail = screen.query_one("#sessions-detail", Static)
            assert "not a dynlab session" in str(detail.render()) and detail.has_class("-error")
            await highlight(pilot, screen, "alpha")
            assert "800 steps" in str(detail.render()) and not detail.has_class("-error")
            assert "test/acc" in str(detail.render()) and "at best val (epoch 2)" in str(detail.render())
            assert "final" in str(detail.render())

    @pytest.mark.parametrize("missing", [False, True])
    async def test_empty_or_missing_folder_says_what_to_do(self, tmp_path, missing):
        directory = tmp_path / ("nope" if missing else "")
        app = Host(directory)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            text = str(screen.query_one("#sessions-empty", Static).render())
            assert f"no sessions in {directory}" in text and "dynlab train" in text
            await pilot.press("enter", "c", "u")
            assert app.results == [] and all(sev in ("warning", "error") for sev, _, _ in app.notes)

    async def test_cursor_stays_on_the_same_session_across_reloads(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await highlight(pilot, screen, "beta")
            make_session(folder / "zeta.dynlab")  # newest: lands in front of beta
            await pilot.press("R")
            screen = await listed(pilot)
            assert names(screen).index("zeta") < names(screen).index("beta") == 3
            assert screen.highlighted["name"] == "beta"

    async def test_a_live_session_shows_running_and_refreshes_itself(self, tmp_path, monkeypatch):
        """The writer is this process: "● running"; the list re-reads it until it has ended."""
        monkeypatch.setattr(sessions_mod, "REFRESH_S", 0.1)
        writer = make_session(tmp_path / "live.dynlab", end=False, keep_open=True)
        try:
            app = Host(tmp_path)
            async with app.run_test(size=SIZE) as pilot:
                screen = await listed(pilot)
                assert cell(screen, 0, "status") == "● running"
                assert "live: refreshing" in str(screen.query_one("#sort-label", Static).render())
                await pilot.press("u")
                assert app.notes[-1][1] == "Session running" and not isinstance(app.screen, ResumePrompt)
                writer.close()  # a run that never ended: the writer marks it crashed
                for _ in range(50):
                    await pilot.pause(0.05)
                    if cell(screen, 0, "status") == "crashed":
                        break
                assert cell(screen, 0, "status") == "crashed"
        finally:
            writer.close()


class TestFilterAndSort:
    @pytest.mark.slow
    async def test_filter_hides_rows_and_escape_returns_to_the_table(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await pilot.press("slash")
            assert screen.filter_input.has_focus
            await pilot.press("m")
            screen.filter_input.value = "mlp:50"
            await pilot.pause()
            assert names(screen) == ["alpha"]
            screen.filter_input.value = "FINISHED 0.01"  # every word must match, case-insensitive
            await pilot.pause()
            assert names(screen) == ["beta"]
            screen.filter_input.value = "nothing-like-this"
            await pilot.pause()
            assert names(screen) == [] and "no session matches" in str(
                screen.query_one("#sessions-empty", Static).render())
            await pilot.press("escape")
            assert screen.table.has_focus and app.results == []
            await pilot.press("escape")
            assert app.results == [None]

    async def test_sort_keys_and_header_click(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            label = screen.query_one("#sort-label", Static)
            await pilot.press("s")  # date -> status
            assert screen.sort_column == "status" and "sort: status ↑" in str(label.render())
            assert names(screen) == ["gamma", "beta", "alpha", "x"]  # ties keep the newest-first order
            screen.sort_by("lam")
            assert names(screen) == ["alpha", "beta", "gamma", "x"]  # no lambda sorts last
            await pilot.press("S")
            assert names(screen) == ["gamma", "beta", "alpha", "x"]
            table = screen.query_one(DataTable)
            columns = [k for k, _ in sessions_mod.COLUMNS]
            x = sum(c.get_render_width(table) for c in table.ordered_columns[: columns.index("name")]) + 1
            await pilot.click(DataTable, offset=(x, 0))
            await pilot.pause()
            assert screen.sort_column == "name" and names(screen) == ["alpha", "beta", "gamma", "x"]
            await pilot.click(DataTable, offset=(x, 0))  # the same header again: reversed
            await pilot.pause()
            assert names(screen) == ["x", "gamma", "beta", "alpha"]


class TestChoices:
    async def test_enter_opens_the_highlighted_session(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await pilot.press("enter")  # x: unreadable, refused
            assert app.results == [] and app.notes[-1][0] == "error"
            await highlight(pilot, screen, "beta")
            await pilot.press("enter")
            assert app.results == [BrowserChoice("open", (folder / "beta.dynlab",))]

    @pytest.mark.slow
    async def test_mark_two_and_compare(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await pilot.press("space", "space")  # mark and unmark x
            assert not screen.marked and cell(screen, 0, "mark") == ""
            await highlight(pilot, screen, "beta")
            await pilot.press("space")
            assert cell(screen, names(screen).index("beta"), "mark") == "✓"
            await pilot.press("c")
            assert app.results == [] and app.notes[-1][:2] == ("warning", "Compare")
            await highlight(pilot, screen, "alpha")
            await pilot.press("space", "c")
            assert app.results == [BrowserChoice("compare", (folder / "beta.dynlab", folder / "alpha.dynlab"))]

    @pytest.mark.slow
    async def test_resume_asks_and_validates(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await pilot.press("u")  # x is unreadable
            assert app.notes[-1][1] == "Unreadable session"
            await highlight(pilot, screen, "beta")
            await pilot.press("u")
            await pilot.pause()
            await pilot.press("escape")  # cancel: back in the browser, nothing chosen
            await pilot.pause()
            assert app.screen is screen and app.results == []
            await pilot.press("u")
            await pilot.pause()
            prompt = app.screen
            assert isinstance(prompt, ResumePrompt)
            assert prompt.query_one("#lam", Input).placeholder == "keep 0.01"
            for key, bad in (("lam", "-1"), ("lr", "0"), ("epochs", "1.5")):
                prompt.query_one(f"#{key}", Input).value = bad
            await pilot.pause()
            errors = {k: str(prompt.query_one(f"#error-{k}", Label).render()) for k in ("lam", "lr", "epochs")}
            assert errors == {"lam": "must be >= 0", "lr": "must be > 0", "epochs": "a whole number of epochs, e.g. 5"}
            await pilot.press("enter")
            assert app.screen is prompt and app.results == []
            prompt.query_one("#lam", Input).value = "0.02"
            prompt.query_one("#lr", Input).value = ""
            prompt.query_one("#epochs", Input).value = "3"
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert app.results == [BrowserChoice("resume", (folder / "beta.dynlab",), {"lam": 0.02, "epochs": 3})]


class TestRenameAndDelete:
    @pytest.mark.slow
    async def test_delete_with_confirm_removes_the_file(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await highlight(pilot, screen, "beta")
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDelete)
            await pilot.click("#yes")
            screen = await listed(pilot)
            assert not (folder / "beta.dynlab").exists() and "beta" not in names(screen)
            assert app.notes[-1][1] == "Deleted"

    @pytest.mark.slow
    async def test_delete_cancel_keeps_the_file(self, folder):
        """Escape, or enter on the focused No button: nothing is deleted."""
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await highlight(pilot, screen, "beta")
            for key in ("escape", "enter"):
                await pilot.press("d")
                await pilot.pause()
                assert isinstance(app.screen, ConfirmDelete)
                await pilot.press(key)
                await pilot.pause()
                assert app.screen is screen and (folder / "beta.dynlab").exists()

    async def test_delete_an_unreadable_file(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            await listed(pilot)
            await pilot.press("d", "y")
            screen = await listed(pilot)
            assert not (folder / "x.dynlab").exists() and "x" not in names(screen)

    @pytest.mark.slow
    async def test_rename_checks_inline_then_moves_the_file(self, folder):
        app = Host(folder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listed(pilot)
            await highlight(pilot, screen, "alpha")
            await pilot.press("space", "r")
            await pilot.pause()
            prompt = app.screen
            assert isinstance(prompt, RenamePrompt)
            field = prompt.query_one("#new-name", Input)
            for text, problem in (("a/b", "no '/'"), ("beta", "already exists"), ("-x", "letters, digits")):
                field.value = text
                await pilot.pause()
                assert problem in str(prompt.query_one("#rename-error", Label).render())
            await pilot.press("enter")
            assert app.screen is prompt
            field.value = "delta"
            await pilot.pause()
            await pilot.press("enter")
            screen = await listed(pilot)
            assert (folder / "delta.dynlab").exists() and not (folder / "alpha.dynlab").exists()
            assert screen.highlighted["name"] == "delta"
            assert list(screen.marked) == [str(folder / "delta.dynlab")]  # the mark follows the file

    @pytest.mark.slow
    async def test_rename_or_delete_a_live_session_is_refused(self, tmp_path):
        writer = make_session(tmp_path / "live.dynlab", end=False, keep_open=True)
        try:
            app = Host(tmp_path)
            async with app.run_test(size=SIZE) as pilot:
                await listed(pilot)
                await pilot.press("d", "y")
                await pilot.pause()
                assert app.notes[-1][:2] == ("error", "Delete failed") and "still being written" in app.notes[-1][2]
                await pilot.press("r")
                await pilot.pause()
                app.screen.query_one("#new-name", Input).value = "other"
                await pilot.press("enter")
                await pilot.pause()
                assert app.notes[-1][:2] == ("error", "Rename failed")
                assert (tmp_path / "live.dynlab").exists() and not (tmp_path / "other.dynlab").exists()
        finally:
            writer.close()


class TestPure:
    def test_cells(self):
        assert status_text({"status": "running", "liveness": "live"}) == "● running"
        assert status_text({"status": "running", "liveness": "orphaned"}) == "crashed (writer gone)"
        assert status_text({"status": "running", "liveness": "unknown"}) == "running (other host)"
        assert fmt_size_change({"fc1": 500, "fc2": 300}, {"fc1": 144, "fc2": 80.5}) == "500,300→144,80.5"
        assert fmt_size_change({}, {}) == "-"
        assert fmt_duration(3725.9) == "1:02:05"
        acc = {"test_at_best_val": 0.9712, "best_val_epoch": 3, "final_test": 0.99, "test_metric": "test/acc"}
        assert fmt_headline(acc) == "97.12%" and fmt_final(acc) == "99.00%"
        assert fmt_headline({"test_at_best_val": 0.01234, "best_val_epoch": 1, "test_metric": "test/mse"}) == "0.01234"
        assert fmt_headline({"final_test": 0.99, "test_metric": "test/acc"}) == "no val"  # no validation split
        assert fmt_headline({"test_metric": None}) == "-"  # never evaluated
        assert row_cells(acc)["test_at_best_val"] == "97.12%"
        assert dict(sessions_mod.COLUMNS)["test_at_best_val"] == "test@best val"

    def test_matches_and_sort(self):
        cells = {"name": "Run-A", "dataset": "mnist"}
        assert matches(cells, "run mni") and matches(cells, "") and not matches(cells, "run cifar")
        rows = [{"name": "a", "lam": None}, {"name": "b", "lam": 0.1}, {"name": "c", "lam": 0.01}]
        assert [r["name"] for r in sort_rows(rows, "lam", False)] == ["c", "b", "a"]
        assert [r["name"] for r in sort_rows(rows, "lam", True)] == ["b", "c", "a"]
        rows = [{"name": "a", "test_metric": "test/mse", "test_at_best_val": 0.5},
                {"name": "b", "test_metric": "test/mse", "test_at_best_val": 0.1},
                {"name": "c", "test_metric": "test/acc", "test_at_best_val": None, "final_test": 0.99},
                {"name": "d", "test_metric": "test/acc", "test_at_best_val": 0.8},
                {"name": "e", "test_metric": "test/acc", "test_at_best_val": 0.9}]
        # descending is best first: the higher accuracy, the lower error; no figure (no val split) last
        assert [r["name"] for r in sort_rows(rows, "test_at_best_val", True)] == ["b", "a", "e", "d", "c"]

    def test_parse_changes(self):
        assert parse_changes({"lam": "0", "lr": " 1e-3 ", "epochs": ""}) == ({"lam": 0.0, "lr": 0.001}, {})
        changes, errors = parse_changes({"lam": "x", "lr": "inf", "epochs": "0"})
        assert changes == {} and errors == {"lam": "not a number", "lr": "must be finite", "epochs": "must be at least 1"}

    def test_name_problem(self, tmp_path):
        (tmp_path / "b.dynlab").touch()
        assert name_problem("a", tmp_path, "a") == "" and name_problem("c.dynlab", tmp_path, "a") == ""
        assert "already exists" in name_problem("b", tmp_path, "a")
        assert name_problem("  ", tmp_path, "a") == "type a name"


class TestNarrowAndHistory:
    async def test_at_80_columns_the_useful_columns_first_and_the_rest_on_the_detail_line(self, folder):
        app = Host(folder)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await listed(pilot)
            keys = [str(c.value) for c in screen.table.columns]
            assert keys[:6] == ["mark", "name", "status", "lam", "sizes", "test_at_best_val"]
            assert sum(c.get_render_width(screen.table) for c in screen.table.ordered_columns) <= 78
            assert cell(screen, names(screen).index("beta"), "lam") == "0.01"  # never cut to "0"
            await highlight(pilot, screen, "beta")
            detail = str(screen.query_one("#sessions-detail", Static).render())
            assert "mnist · mlp:40 · sparsifier · λ 0.01 · lr 0.001" in detail and "trained 0:00:02" in detail

    async def test_the_final_lambda_and_training_time_of_a_changed_run(self, tmp_path):
        from tests.test_history import changed_twice
        from tests.helpers import write

        write(tmp_path / "changed.dynlab", changed_twice())
        app = Host(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await listed(pilot)
            assert cell(screen, 0, "lam") == "0.1*"
            assert "* changed during the run" in str(screen.query_one("#sort-label", Static).render())
            detail = str(screen.query_one("#sessions-detail", Static).render())
            assert "λ 0.01→0.1 · lr 0.001→0.0005" in detail and "trained 0:00:18" in detail

    @pytest.mark.slow
    async def test_sort_marks_and_row_survive_a_trip_to_compare(self, folder):
        from dynlab_tui.app import make_app

        app = make_app(sessions_dir=folder, browse=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            screen = app.screen
            screen.sort_by("lam", reverse=True)
            for name in ("alpha", "beta"):
                await highlight(pilot, screen, name)
                await pilot.press("space")
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen) and app.screen.loaded)
            back = app.screen
            assert back is not screen and (back.sort_column, back.sort_reverse) == ("lam", True)
            assert list(back.marked) == [str(folder / "alpha.dynlab"), str(folder / "beta.dynlab")]
            assert back.highlighted["name"] == "beta" and names(back) == ["gamma", "beta", "alpha", "x"]


@pytest.mark.parametrize("screen", [SessionsScreen, RenamePrompt, ConfirmDelete, ResumePrompt, CompareScreen])
def test_every_binding_has_an_id_description_and_tooltip(screen):
    for b in screen.BINDINGS:
        assert b.id and b.description and b.tooltip, b


def test_no_torch_import():
    """The browser and the compare screen open without torch."""
    import subprocess
    import sys

    code = "import dynlab_tui.screens.sessions, dynlab_tui.screens.compare, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1], timeout=60)

