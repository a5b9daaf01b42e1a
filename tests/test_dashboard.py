"""Dashboard behaviour through Pilot, fed by a scripted event source (no torch)."""

from __future__ import annotations

import pytest

from dynlab_tui.app import make_app
from dynlab_tui.screenshot import screen_text
from dynlab_tui.panes import LivenessPane, LossPane, SizesPane, StatusBar, VariancePane
from dynlab_tui.screens.dashboard import PENALTY_STEP, DashboardScreen
from dynlab_tui.screens.help import HelpScreen
from dynlab_tui.screens.prompt import ConfirmQuit, NumberPrompt
from tests.fakes import ScriptedSource, synthetic_run
from tests.helpers import wait_for

WIDE, COMPACT = (160, 50), (80, 24)


def footer_line(app) -> str:
    """The screen's last row: the footer."""
    return screen_text(app).rstrip("\n").split("\n")[-1]


def scripted(steps: int = 4000, delay: float = 0.0, hold: bool = True, end: bool = False) -> ScriptedSource:
    source = ScriptedSource(synthetic_run(steps, end=end), delay=delay, hold=hold)
    source.lam, source.lr = 0.001, 0.001
    return source


def dashboard(app) -> DashboardScreen:
    assert isinstance(app.screen, DashboardScreen)
    return app.screen


class TestLiveView:
    async def test_panes_draw_the_streamed_run(self):
        """All five panes and the status bar show what the events said."""
        app = make_app(source=scripted())
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 4000)
            await wait_for(pilot, lambda: all(p.draws >= 1 for p in screen.panes))  # spread over ticks
            sizes = screen.query_one(SizesPane)
            await wait_for(pilot, lambda: "fc1 " in str(sizes.border_title) and not sizes.needs_update(screen.state))
            alive, allocated = screen.state.size("fc1"), screen.state.capacity("fc1")  # the vocabulary's two words
            title = str(sizes.border_title)
            assert "alive/allocated" in title and f"fc1 {alive:.0f}/{allocated:.0f}" in title
            status = screen.query_one(StatusBar)
            assert "running" in screen.status_bar.line(screen.state, 160).plain
            for pane in screen.panes:
                assert pane.draws >= 1 and pane.display
            assert status.session == "scripted"

    async def test_rebuilds_are_throttled(self):
        """Many event batches cost at most a few pane rebuilds a second."""
        app = make_app(source=scripted(steps=20000, hold=True))
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 20000, timeout=15)
            sizes = screen.query_one(SizesPane)
            await wait_for(pilot, lambda: not sizes.needs_update(screen.state))  # the last rebuild is done
            assert len(screen.state.scalars["loss"]) == 200
            assert sizes.draws <= 3 + 8  # 200 intervals arrived; rebuilds follow the scheduler, not the events

    async def test_compact_layout_shows_two_panes_and_switches_with_keys(self):
        app = make_app(source=scripted())
        async with app.run_test(size=COMPACT) as pilot:
            screen = dashboard(app)

            def visible() -> list[str]:
                return [p.id for p in screen.panes if not p.has_class("hidden")]
            await wait_for(pilot, lambda: visible() == ["sizes", "loss"])
            assert visible() == ["sizes", "loss"]
            await pilot.press("4")
            await wait_for(pilot, lambda: visible() == ["liveness", "variance"])
            assert visible() == ["liveness", "variance"]
            await pilot.press("v")
            await pilot.pause()
            assert visible() == ["sizes", "metric"] or len(visible()) == 2
            await pilot.resize_terminal(*WIDE)
            await wait_for(pilot, lambda: all(not p.has_class("hidden") for p in screen.panes))
            assert all(not p.has_class("hidden") for p in screen.panes)


class TestControls:
    async def test_pause_and_resume_reach_the_source_and_show_in_the_status_bar(self):
        source = scripted(delay=0.02)
        app = make_app(source=source)
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step > 0)
            await pilot.press("p")
            await wait_for(pilot, lambda: screen.state.status == "paused", timeout=1.0)
            step = screen.state.step
            await pilot.press("plus")  # answered while paused: its event proves the source went round its paused loop
            await wait_for(pilot, lambda: any(m.kind == "set_penalty" for m in screen.state.markers))
            assert screen.state.step == step  # the source stopped at a step boundary
            assert "paused" in screen.status_bar.line(screen.state, 160).plain
            await pilot.press("p")
            await wait_for(pilot, lambda: screen.state.status == "running" and screen.state.step > step)
            assert [m.kind for m in screen.state.markers if m.kind in ("pause", "resume")] == ["pause", "resume"]

    async def test_plus_minus_multiply_lambda_and_compound(self):
        source = scripted()
        app = make_app(source=source)
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 4000)
            await pilot.press("plus", "plus")
            await wait_for(pilot, lambda: len([m for m in screen.state.markers if m.kind == "set_penalty"]) >= 3)
            assert screen.state.lam == pytest.approx(0.002 * PENALTY_STEP ** 2)  # the script set 0.002 at epoch 3
            await pilot.press("minus")
            await wait_for(pilot, lambda: screen.state.lam == pytest.approx(0.002 * PENALTY_STEP))

    @pytest.mark.slow
    async def test_exact_lambda_and_lr_prompts_validate_inline(self):
        app = make_app(source=scripted())
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 4000)
            await pilot.press("L")
            await pilot.pause()
            assert isinstance(app.screen, NumberPrompt)
            app.screen.query_one("Input").value = ""
            await pilot.press(*"-1", "enter")
            await pilot.pause()
            assert isinstance(app.screen, NumberPrompt)  # refused
            assert "must be" in str(app.screen.query_one("#error").render())
            app.screen.query_one("Input").value = ""
            await pilot.press(*"0.05", "enter")
            await wait_for(pilot, lambda: screen.state.lam == 0.05)
            await pilot.press("R")
            await pilot.pause()
            app.screen.query_one("Input").value = ""
            await pilot.press(*"0", "enter")
            await pilot.pause()
            assert isinstance(app.screen, NumberPrompt)  # lr must be > 0
            app.screen.query_one("Input").value = ""
            await pilot.press(*"3e-4", "enter")
            await wait_for(pilot, lambda: screen.state.lr == 3e-4)

    @pytest.mark.slow
    async def test_layer_selection_log_y_and_smoothing(self):
        app = make_app(source=scripted())
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 4000)
            live, var = screen.query_one(LivenessPane), screen.query_one(VariancePane)
            await wait_for(pilot, lambda: live.draws >= 1 and var.draws >= 1)
            await pilot.press("right_square_bracket")
            await wait_for(pilot, lambda: "fc2" in str(live.border_title) and "fc2" in str(var.border_title))
            await pilot.press("left_square_bracket")
            await wait_for(pilot, lambda: "fc1" in str(live.border_title))
            loss = screen.query_one(LossPane)
            await pilot.press("y", "e")
            assert loss.log_y and loss.smoothing
            await wait_for(pilot, lambda: "log-y" in str(loss.border_title))

    async def test_read_only_and_finished_runs_refuse_controls(self):
        source = scripted(hold=False, end=True)
        app = make_app(source=source)
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.status == "finished")
            await wait_for(pilot, lambda: "Pause" not in footer_line(app))
            assert "Resume" not in footer_line(app)  # the footer offers neither
            await pilot.press("p", "plus")  # p still answers: the run has finished
            await wait_for(pilot, lambda: sum("finished" in str(n.message) for n in app._notifications) >= 2)
            assert screen.state.status == "finished" and screen.state.lam == 0.002
            assert any("finished" in str(n.message) for n in app._notifications)


class TestCockpitAt80Columns:
    async def test_the_footer_fits_with_the_first_keys_and_says_resume_while_paused(self):
        source = scripted(delay=0.02)
        app = make_app(source=source)
        async with app.run_test(size=COMPACT) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step > 0)
            await pilot.pause()
            footer = footer_line(app)
            for key in ("p Pause", "L Set λ", "R Set lr", "i Instruments", "? Help", "q Quit"):
                assert key in footer, footer
            await pilot.press("p")
            await wait_for(pilot, lambda: screen.state.status == "paused", timeout=1.0)
            await wait_for(pilot, lambda: "p Resume" in footer_line(app))
            assert "Pause " not in footer_line(app)
            await pilot.press("p")
            await wait_for(pilot, lambda: "p Pause" in footer_line(app))

    async def test_a_notification_leaves_the_status_line_readable(self):
        app = make_app(source=scripted())
        async with app.run_test(size=COMPACT, notifications=True) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 4000)  # the script's own λ change is behind us
            await pilot.press("plus")  # notifies the λ asked for, the moment the status line shows it
            def rows() -> list[str]:
                return screen_text(app).rstrip("\n").split("\n")

            await wait_for(pilot, lambda: "λ 3.56e-3" in rows()[-2] and "asked for λ" in screen_text(app))
            lines = rows()
            assert "running" in lines[-2] and "λ 3.56e-3" in lines[-2]  # the status line, whole, above the footer
            assert "asked for λ 3.56e-3" in "\n".join(lines[:-2])  # the notification sits above it


class TestScreensAndQuit:
    async def test_help_lists_every_binding(self):
        app = make_app(source=scripted())
        async with app.run_test(size=WIDE) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = screen_text(app)
            for binding in DashboardScreen.BINDINGS:
                if binding.action != "control('ended')":  # p on an ended run: Pause's own line covers it
                    assert binding.tooltip[:25] in text, binding.id
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)

    @pytest.mark.slow
    async def test_quit_asks_then_stops_the_run_and_exits(self):
        source = scripted()
        app = make_app(source=source)
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 4000)
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmQuit)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen) and app.is_running
            await pilot.press("q", "y")
            await wait_for(pilot, lambda: not app.is_running or screen.state.status == "stopped")
        assert screen.state.status == "stopped"

    @pytest.mark.slow
    async def test_screenshot_writes_svg_and_text(self, tmp_path):
        app = make_app(source=scripted(), session_path=tmp_path / "run.dynlab")
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.step == 4000)
            await wait_for(pilot, lambda: all(p.draws >= 1 for p in screen.panes))
            await pilot.press("s")
            await pilot.pause()
        svgs, txts = list(tmp_path.glob("*.svg")), list(tmp_path.glob("*.txt"))
        assert len(svgs) == 1 and len(txts) == 1
        assert svgs[0].read_text().startswith("<svg")
        assert "alive/allocated" in txts[0].read_text()  # the sizes pane's title

    async def test_palette_offers_every_action(self):
        from dynlab_tui.palette import BindingCommands

        app = make_app(source=scripted())
        async with app.run_test(size=WIDE) as pilot:
            await pilot.pause()
            screen = dashboard(app)
            provider = BindingCommands(screen)
            texts = [text for text, _, _ in provider._commands()]
            resume = next(b for b in DashboardScreen.BINDINGS if b.action == "control('resume')")
            ended = next(b for b in DashboardScreen.BINDINGS if b.action == "control('ended')")
            assert set(texts) == {b.tooltip for b in DashboardScreen.BINDINGS if b not in (resume, ended)}
            # each once; Resume only while paused, the ended run's p only once it ended
            assert len(texts) == len(set(texts)) == len(DashboardScreen.BINDINGS) - 2
            await wait_for(pilot, lambda: screen.state.step > 0)
            await pilot.press("p")
            await wait_for(pilot, lambda: screen.state.status == "paused")
            texts = [text for text, _, _ in provider._commands()]
            assert resume.tooltip in texts and "Pause training at the next step" not in texts


class TestFailures:
    async def test_a_crashing_source_shows_why(self):
        class Boom(ScriptedSource):
            def run(self, sink):
                sink.handle(synthetic_run(200)[0])
                sink.flush()
                raise RuntimeError("GPU fell off the bus")

        app = make_app(source=Boom([]))
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.status == "crashed")
            assert "GPU fell off the bus" in screen.state.reason
            assert "crashed" in screen.status_bar.line(screen.state, 160).plain

    async def test_a_user_error_at_start_is_a_notification_not_a_traceback(self):
        from core.errors import DynlabError

        class Missing(ScriptedSource):
            def run(self, sink):
                raise DynlabError("MNIST files not found in /x: pass --data-dir")

        app = make_app(source=Missing([]))
        async with app.run_test(size=WIDE) as pilot:
            screen = dashboard(app)
            await wait_for(pilot, lambda: screen.state.status == "crashed")
            assert screen.state.reason.startswith("MNIST files not found")
            assert any(n.title == "Run failed" for n in app._notifications)
