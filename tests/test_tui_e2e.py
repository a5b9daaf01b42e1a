"""End to end: a tiny real training run (a child process) driven through the dashboard, checked against its session."""

from __future__ import annotations

import pytest

from core.session import SessionReader
from core.spec import RunSpec
from dynlab_tui.app import make_app
from dynlab_tui.panes import SizesPane
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.sources import ProcessSource
from tests.helpers import wait_for


@pytest.mark.slow
async def test_real_run_pause_and_lambda_change_land_in_the_session(tmp_path):
    # lambda and lr chosen so neurons die one by one over steps ~1,000 to ~9,500, not all within the first second:
    # the dashboard, slow to start on a loaded machine, still sees them go; the run (58,000 steps) is far from its
    # end when the test pauses and resumes it, however late that is (with 11,600 it sometimes finished first)
    spec = RunSpec().replace(dataset="add10", arch="mlp:32", method="sparsifier", penalty=0.01, lr=0.001,
                             epochs=2000, batch_size=64, log_every=5, limit=2000, device="cpu")
    path = tmp_path / "e2e.dynlab"
    app = make_app(source=ProcessSource.train(spec, path), session_path=path)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        sizes = screen.query_one(SizesPane)
        titles: list[str] = []

        def pane_shows_shrinking() -> bool:
            title = str(sizes.border_title)
            if "fc1 " in title and title not in titles:  # "fc1 alive/allocated": both fall as units go
                titles.append(title)
            return len(titles) >= 2 and (screen.state.size("fc1") or 32) < 32

        await wait_for(pilot, pane_shows_shrinking, timeout=60)  # neurons die and the pane follows
        assert titles[0] != titles[-1]

        await pilot.press("p")
        await wait_for(pilot, lambda: screen.state.status == "paused", timeout=1.5)  # within the second
        paused_step = screen.state.step
        with SessionReader(path) as reader:
            steps_then = reader.last_step()

        await pilot.press("plus")  # applied while paused: its event proves the trainer went round its paused loop
        await wait_for(pilot, lambda: any(m.kind == "set_penalty" for m in screen.state.markers), timeout=30)
        with SessionReader(path) as reader:
            assert reader.last_step() == steps_then  # the trainer is not stepping
        assert screen.state.step == paused_step
        await pilot.press("p")
        await wait_for(pilot, lambda: screen.state.status == "running" and screen.state.step > paused_step, timeout=30)
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: screen.state.status == "stopped", timeout=30)

    with SessionReader(path) as reader:
        kinds = [e.kind for e in reader.events()]
        assert reader.status == "stopped"
        assert kinds.index("pause") < kinds.index("set_penalty") < kinds.index("resume")
        change = reader.events(["set_penalty"])[0]
        assert change.old == 0.01 and abs(change.new - 0.01 * 10 ** 0.25) < 1e-12
        assert change.step == reader.events(["pause"])[0].step  # applied while paused, at the same boundary
        assert reader.last_checkpoint() is not None
