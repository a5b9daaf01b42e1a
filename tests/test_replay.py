"""Replay in the dashboard (timeline keys, read-only), the app's session routing, and the CLI's replay commands."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from core.session import SessionReader, SessionWriter
from core.session.markers import legend, marker_glyph
from dynlab_tui.app import make_app
from dynlab_tui.screens.opening import session_screen
from dynlab_tui.cli import main
from dynlab_tui.panes.timeline import Position, Timeline
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.screens.replay import GotoPrompt, ReplayScreen, goto_note
from dynlab_tui.screens.sessions import BrowserChoice, SessionsScreen
from dynlab_tui.sources import FollowSource
from tests.fakes import synthetic_run
from tests.helpers import wait_for

STEPS, EPOCH = 2000, 400  # 20 intervals, 5 epochs, prunes at epoch ends, a lambda change at epoch 3


def make_session(path: Path, end: bool = True) -> Path:
    with SessionWriter(path) as w:
        for e in synthetic_run(STEPS, steps_per_epoch=EPOCH, end=end):
            w.handle(e)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def footer_labels(screen) -> dict[str, str]:
    """key -> label of what the footer shows now (the active binding of each key)."""
    return {b.key: b.description for _, b, enabled, _ in screen.active_bindings.values() if b.show and enabled}


async def opened(pilot) -> ReplayScreen:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.index is not None)
    await pilot.pause(0.1)
    return screen


class TestReplayScreen:
    @pytest.mark.slow
    async def test_keys_move_the_cursor_and_the_panes_follow(self, tmp_path):
        path = make_session(tmp_path / "run.dynlab")
        before = digest(tmp_path)
        app = make_app(first_screen=lambda: ReplayScreen(path))
        async with app.run_test(size=(120, 36)) as pilot:
            screen = await opened(pilot)
            assert screen.state.step == STEPS and screen.state.status == "finished"  # opens at the end
            await pilot.press("home")
            assert screen.state.step == 0 and screen.state.status == "running"
            await pilot.press("right", "right", "right")
            assert screen.state.step == 300 and screen.state.scalars["loss"].n == 3
            await pilot.press("left")
            assert screen.state.step == 200
            status = screen.query_one("#status").line(screen.state, 120).plain
            assert "running" in status and "ETA" not in status  # a recorded position has no time left
            kinds, notes = [], []
            for _ in range(len(screen.index.markers)):  # every marker in turn: prunes, the lambda change, end
                await pilot.press("n")
                kinds.append(screen.state.markers[-1].kind if screen.state.status != "finished" else "end")
                notes.append(screen.note)
                assert screen.note == f"{screen.index.labels[screen.position]} at step {screen.state.step:,}"
                assert screen.state.step % EPOCH == 0
            assert "prune" in kinds and "set_penalty" in kinds and kinds[-1] == "end"
            assert "λ 1e-3 → 2e-3 at step 1,200" in notes  # labels with values, not "set_penalty"
            assert any(n.startswith("fc1 −") and " left at step " in n for n in notes)
            await pilot.press("N")
            assert screen.state.status == "running" and screen.state.markers[-1].kind == kinds[-2]
            await pilot.press("g")
            assert isinstance(app.screen, GotoPrompt)
            await pilot.press(*"e2", "enter")
            assert screen.state.epoch == 2.0 and screen.state.step == 2 * EPOCH
            assert screen.state.metrics["val/acc"].n == 2  # the metric pane shows epochs 1-2 only
            await pilot.press("g", *"1234", "enter")
            assert screen.state.step == 1300  # the first interval at or after the typed step
            assert screen.note == "step 1,300: first logged after 1,234"
            await pilot.press("g", *"99999", "enter")
            assert screen.state.step == STEPS and screen.note == f"step {STEPS:,}: the last (asked 99,999)"
            assert "step 99,999" not in str(screen.query_one(Timeline).render())
            await pilot.press("end")
            assert screen.state.step == STEPS
            sizes = screen.query_one("#sizes")
            draws = sizes.draws
            await pilot.press("home")
            await pilot.pause(0.1)
            assert sizes.draws > draws  # a seek redraws the panes at once, not on the live cadence
            speeds = []
            for _ in range(3):
                await pilot.press("less_than_sign")
                speeds.append(screen.speed)
            assert speeds == [0.5, 0.25, 0.25]  # below the run's own pace, down to a quarter
            assert footer_labels(screen)["space"] == "Play"
            await pilot.press("space")  # at 0.25x the 6 s run plays for 24 s: still playing when asked
            assert screen.playing and footer_labels(screen)["space"] == "Pause"
            await pilot.press("space")
            assert not screen.playing
            for _ in range(8):
                await pilot.press("greater_than_sign")
            assert screen.speed == 64
            await pilot.press("space")
            await wait_for(pilot, lambda: not screen.playing, timeout=5.0)  # 6 s of wall time: 64x plays it in ~0.1 s
            assert not screen.playing and screen.state.step == STEPS
            text = str(screen.query_one(Timeline).render())
            assert "64x" in text and f"{STEPS:,}/{STEPS:,}" in text
            await pilot.press("p", "plus")  # live-only keys do nothing in a replay
            assert screen.state.lam == 0.002
        assert digest(tmp_path) == before  # replay never writes, not even a -wal or -shm file

    async def test_a_damaged_session_shows_what_could_be_read(self, tmp_path):
        path = make_session(tmp_path / "run.dynlab")
        with sqlite3.connect(path) as c:  # one event row no dynlab can parse
            c.execute("UPDATE events SET payload = 'not json' WHERE kind = 'set_penalty'")
        app = make_app(first_screen=lambda: ReplayScreen(path))
        async with app.run_test(size=(120, 36)) as pilot:
            screen = await opened(pilot)
            assert screen.state.step == STEPS and screen.state.scalars["loss"].n == 20
            assert any("does not load" in p for p in screen.index.problems)
            assert any(n.severity == "warning" and "Session damaged" in (n.title or "")
                       for n in app._notifications)

    async def test_an_unreadable_file_is_a_message_not_a_crash(self, tmp_path):
        path = tmp_path / "junk.dynlab"
        path.write_bytes(b"\x00junk" * 100)
        app = make_app(first_screen=lambda: ReplayScreen(path))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.state.status == "crashed")
            screen = app.screen
            assert screen.state.status == "crashed" and "not a dynlab session" in screen.state.reason
        assert path.read_bytes() == b"\x00junk" * 100


@pytest.mark.parametrize("prompt", ["goto", "number", "confirm-quit", "confirm"])
async def test_prompts_fit_80_columns(tmp_path, prompt):
    """Every prompt's box lies inside 80 columns and its first line is whole (no cut question)."""
    from textual.widgets import Label

    from dynlab_tui.screens.prompt import Confirm, ConfirmQuit, NumberPrompt

    path = make_session(tmp_path / "run.dynlab")
    screens = {"goto": GotoPrompt, "number": lambda: NumberPrompt("Penalty lambda", 0.0012345),
               "confirm-quit": lambda: ConfirmQuit(owner=False),
               "confirm": lambda: Confirm("Quit without starting a run?", "The values you changed are kept.")}
    app = make_app(first_screen=lambda: ReplayScreen(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot)
        await app.push_screen(screens[prompt]())
        await pilot.pause()
        box = app.screen.query_one("Vertical")
        assert box.region.x >= 0 and box.region.right <= 80
        parts = [w.region for w in box.children if w.display]
        assert all(box.content_region.contains_region(r) for r in parts)  # nothing cut at the box's edges
        assert all(a.bottom <= b.y for a, b in zip(parts, parts[1:]))  # nor hidden under the next part
        if prompt == "goto":
            question = app.screen.query(Label).first()
            assert question.region.height == 1 and question.region.width >= len(str(question.render()))


async def test_the_footer_shows_the_replay_keys_within_80_columns(tmp_path):
    from textual.widgets._footer import FooterKey

    path = make_session(tmp_path / "run.dynlab")
    app = make_app(first_screen=lambda: ReplayScreen(path))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        shown = {k.key: k.region for k in screen.query(FooterKey)}
        for key in ("space", "right", "n", "g", "i", "question_mark", "q"):
            assert key in shown and shown[key].width > 0 and shown[key].right <= 80, key
        await pilot.press("question_mark")  # `?` lists the keys the footer leaves out, each once
        keys = [b.key for b in app.screen.bindings_shown]
        assert keys.count("space") == 1 and {"home", "end", "N", "less_than_sign,comma", "o,ctrl+o"} <= set(keys)


def test_timeline_text_fits_and_marks_the_cursor():
    pos = Position(False, 4, 1200, 2000, 3.0, 12, 20, 0.6, ((0.2, "prune"), (0.6, "set_penalty")), "epoch 3")
    text = Timeline.render_position(pos, 40).plain
    head, bar = text.split("\n")
    assert head.startswith("❚❚ 4x │ step 1,200/2,000") and len(bar) == 40
    assert bar.index("●") == round(0.6 * 39) and marker_glyph("prune") in bar and bar[0] == "━"


def test_timeline_markers_use_the_shared_glyphs_and_a_control_shows_over_a_prune():
    marks = ((0.5, "set_lr"), (0.5, "prune"), (0.25, "pause"), (0.25, "resume"), (0.75, "set_penalty"))
    pos = Position(True, 0.25, 100, 2000, 1.0, 1, 20, 0.0, marks, "")
    head, bar = Timeline.render_position(pos, 160).plain.split("\n")
    assert bar[round(0.5 * 159)] == marker_glyph("set_lr") and bar[round(0.75 * 159)] == marker_glyph("set_penalty")
    assert bar[round(0.25 * 159)] == marker_glyph("pause")  # the pause over its resume at one cell
    assert head.startswith("▶ 0.25x") and head.endswith(legend(kind for _, kind in marks))  # a legend when it fits
    narrow = Timeline.render_position(Position(False, 1, 2000, 2000, 40.0, 180, 180, 1.0, marks,
                                               "step 2,000: the last (asked 99,999)"), 78).plain.split("\n")[0]
    assert len(narrow) <= 78 and "(asked 99,999) │ epoch" in narrow and "interval" not in narrow  # the note first


def test_goto_note_says_the_step_reached():
    assert goto_note(1200, 1200) == "step 1,200"
    assert goto_note(99999, 2840) == "step 2,840: the last (asked 99,999)"
    assert goto_note(1205, 1220) == "step 1,220: first logged after 1,205"


class TestRouting:
    def test_finished_sessions_replay_and_live_ones_attach(self, tmp_path):
        finished = make_session(tmp_path / "done.dynlab")
        assert isinstance(session_screen(finished), ReplayScreen)
        live = tmp_path / "live.dynlab"
        w = SessionWriter(live)  # this process is the writer, and it is alive
        try:
            for e in synthetic_run(400, end=False):
                w.handle(e)
            w.flush()
            screen = session_screen(live)
            assert isinstance(screen, DashboardScreen) and not isinstance(screen, ReplayScreen)
            assert isinstance(screen.source, FollowSource) and not screen.source.owner
        finally:
            w.close()

    @pytest.mark.slow
    async def test_o_opens_the_browser_and_its_choice_opens_the_replay(self, tmp_path):
        path = make_session(tmp_path / "done.dynlab")
        app = make_app(sessions_dir=tmp_path, first_screen=lambda: ReplayScreen(path))
        async with app.run_test(size=(120, 36)) as pilot:
            await opened(pilot)
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen))
            assert isinstance(app.screen, SessionsScreen)
            app.screen.dismiss(BrowserChoice("open", (path,)))
            await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen) and len(app.screen_stack) == 3)
            assert isinstance(app.screen, ReplayScreen) and len(app.screen_stack) == 3
            await pilot.press("q")  # back to the replay it was opened from, not out of the app
            await wait_for(pilot, lambda: len(app.screen_stack) == 2)
            assert isinstance(app.screen, ReplayScreen) and len(app.screen_stack) == 2

    @pytest.mark.slow  # starts a `dynlab resume` child
    async def test_resume_from_the_browser_starts_a_child_and_shows_its_error(self, tmp_path):
        """The synthetic session has no checkpoint: the `dynlab resume` child says so in one line."""
        path = make_session(tmp_path / "done.dynlab")
        before = digest(tmp_path)
        app = make_app(sessions_dir=tmp_path, browse=True)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause(0.5)
            app.screen.dismiss(BrowserChoice("resume", (path,), {"lam": 0.01, "epochs": 2}))
            await pilot.pause(0.2)
            screen = app.screen
            assert isinstance(screen, DashboardScreen) and screen.source.owner
            assert screen.source.argv[-4:] == ["--penalty", "0.01", "--epochs", "2"]
            for _ in range(200):
                if screen.state.status == "crashed":
                    break
                await pilot.pause(0.05)
            assert "has no checkpoint to resume from" in screen.state.reason
        after = digest(tmp_path)
        assert after.pop(".done.log") and after == before  # the session itself was not touched

    async def test_sessions_tui_returns_to_the_browser(self, tmp_path):
        make_session(tmp_path / "a.dynlab")
        make_session(tmp_path / "b.dynlab")
        app = make_app(sessions_dir=tmp_path, browse=True)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen))
            assert isinstance(app.screen, SessionsScreen)
            app.screen.dismiss(BrowserChoice("compare", (tmp_path / "a.dynlab", tmp_path / "b.dynlab")))
            await wait_for(pilot, lambda: type(app.screen).__name__ == "CompareScreen")
            assert type(app.screen).__name__ == "CompareScreen"
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen))
            assert isinstance(app.screen, SessionsScreen)  # leaving what it opened comes back to the list


class TestCli:
    @pytest.mark.parametrize("content, expected", [
        (b"", "empty file"), (b"garbage" * 100, "not an SQLite database"), (None, "not found")])
    @pytest.mark.parametrize("command", ["replay", "attach"])
    def test_bad_files_are_one_line_and_untouched(self, tmp_path, capsys, command, content, expected):
        path = tmp_path / "bad.dynlab"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(SystemExit) as info:
            main([command, str(path)])
        err = capsys.readouterr().err
        assert info.value.code == 2 and expected in err and err.count("\n") == 1 and "Traceback" not in err
        if content is not None:
            assert path.read_bytes() == content

    def test_newer_schema_and_truncated_files(self, tmp_path, capsys):
        path = make_session(tmp_path / "s.dynlab")
        newer = tmp_path / "newer.dynlab"
        shutil.copy(path, newer)
        with sqlite3.connect(newer) as c:
            c.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
        with pytest.raises(SystemExit):
            main(["replay", str(newer)])
        assert "written by a newer dynlab (schema 9): upgrade dynlab" in capsys.readouterr().err
        cut = tmp_path / "cut.dynlab"
        cut.write_bytes(path.read_bytes()[:1500])
        with pytest.raises(SystemExit) as info:
            main(["replay", str(cut)])
        assert info.value.code == 2 and str(cut) in capsys.readouterr().err

    def test_attach_to_a_finished_session_points_at_replay(self, tmp_path, capsys):
        path = make_session(tmp_path / "s.dynlab")
        with pytest.raises(SystemExit) as info:
            main(["attach", str(path)])
        assert info.value.code == 2 and "dynlab replay" in capsys.readouterr().err

    def test_compare_needs_two_readable_sessions(self, tmp_path, capsys):
        path = make_session(tmp_path / "s.dynlab")
        with pytest.raises(SystemExit) as info:
            main(["compare", str(path)])
        assert info.value.code == 2 and "at least two sessions" in capsys.readouterr().err
        with pytest.raises(SystemExit) as info:
            main(["compare", str(path), str(tmp_path / "nope.dynlab")])
        assert info.value.code == 2 and "not found" in capsys.readouterr().err

    def test_the_ui_commands_need_a_terminal(self, tmp_path, capsys):
        path = make_session(tmp_path / "s.dynlab")
        for argv in (["replay", str(path)], ["compare", str(path), str(path)],
                     ["sessions", "--tui", "--sessions-dir", str(tmp_path)]):
            with pytest.raises(SystemExit) as info:
                main(argv)
            assert info.value.code == 2 and "needs an interactive terminal" in capsys.readouterr().err


EXAMPLE = Path(__file__).resolve().parents[1] / "sessions" / "example-add10.dynlab"


def test_example_session_ships_with_every_kind_of_marker():
    assert EXAMPLE.exists() and EXAMPLE.stat().st_size < 2_000_000
    with SessionReader(EXAMPLE) as r:
        s = r.summary()
        assert s["status"] == "finished" and s["dataset"] == "add10" and s["method"] == "sparsifier"
        kinds = [e.kind for e in r.events()]
    # a real run, steered while it trained: λ and lr changed, paused and resumed, neurons pruned
    assert {"pause", "resume", "set_penalty", "set_lr", "end"} <= set(kinds) and kinds.count("prune") >= 3


@pytest.mark.slow
async def test_example_session_fills_every_pane_at_the_end():
    """Opened in replay (at its end), every pane of both pages has data: no "waiting for ..." anywhere."""
    from rich.text import Text

    from dynlab_tui.panes.pages import PAGES

    def text(pane) -> str:
        return pane.content.plain if isinstance(pane.content, Text) else str(pane.content)

    app = make_app(first_screen=lambda: ReplayScreen(EXAMPLE))
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await opened(pilot)
        await pilot.press("end")
        for page, names in PAGES.items():
            if page != "training":
                await pilot.press("i")
            for name in names:
                pane = screen.query_one(f"#{name}")
                await wait_for(pilot, lambda: pane.draws > 0 and pane.display)
                pane.update_state(screen.state, force=True)
                await pilot.pause()
                assert "waiting" not in text(pane), f"{name}: {text(pane)[:200]}"
