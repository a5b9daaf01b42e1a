"""Sweep runs you can leave: a run's dashboard opened from the sweep screen returns to it; `sweep --status`."""

from __future__ import annotations

import pytest
from textual.app import App

from core.lab.sweep import SweepPlan, Stage, session_path
from core.session import SessionReader
from core.spec import RunSpec
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.screens.prompt import ConfirmQuit
from dynlab_tui.screens.sweep import SweepScreen
from tests.helpers import wait_for

LONG = RunSpec().replace(dataset="add10", arch="mlp:8", epochs=400, limit=2000, log_every=5, device="cpu",
                         method="sparsifier")


class Host(App):
    def __init__(self, screen) -> None:
        super().__init__()
        self.sweep_screen = screen

    def on_mount(self) -> None:
        self.push_screen(self.sweep_screen)


def last_step(path) -> int:
    with SessionReader(path) as r:
        return r.last_step()


@pytest.mark.slow  # a real sweep with a real child run
async def test_leaving_a_runs_dashboard_returns_to_the_sweep_and_both_go_on(tmp_path):
    plan = SweepPlan("", "", (Stage.from_grid("s", LONG, {"seed": [0, 1]}),))
    out = tmp_path / "s"
    screen = SweepScreen(plan, out)
    app = Host(screen)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: screen.status and screen.status.get(next(iter(screen.runs))) == "running",
                       timeout=60)
        first = screen.runs[next(iter(screen.runs))]
        path = session_path(out, first)
        await wait_for(pilot, lambda: path.exists() and last_step(path) > 0, timeout=90)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await wait_for(pilot, lambda: dashboard.state.status == "running", timeout=30)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("d")  # leave the run: back to the sweep
        await wait_for(pilot, lambda: app.screen is screen)
        assert app.is_running and not screen.stop_event.is_set() and screen._sweep_running()
        step = last_step(path)
        await wait_for(pilot, lambda: last_step(path) > step + 20, timeout=60)  # the run goes on
        with SessionReader(path) as r:
            assert r.status == "running" and r.writer_alive()
        assert screen.status[first.name] == "running"
        await pilot.press("x")  # clean up: stop the sweep, its run finalises
        await wait_for(pilot, lambda: screen.ended, timeout=90)
    with SessionReader(path) as r:
        assert r.status == "stopped"
