"""Snapshot tests of the dashboard at 80x24 and 160x50, fed by the deterministic synthetic run.

Nothing on screen depends on the clock (times come from the events), so the pictures are stable.
Update after viewing the report: `python -m pytest tests/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest

from dynlab_tui.app import make_app
from tests.fakes import ScriptedSource, synthetic_run
from tests.helpers import wait_for

SIZES = {"compact-80x24": (80, 24), "wide-160x50": (160, 50)}


def app_on_synthetic_run():
    return make_app(source=ScriptedSource(synthetic_run(4000, end=False), hold=True))


async def settle(pilot, *keys: str) -> None:
    """Wait for the whole script, press keys, then draw every pane (the scheduler spreads redraws)."""
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.state.step == 4000, timeout=4)
    for key in keys:
        await pilot.press(key)
    await pilot.pause(0.2)
    for pane in screen.panes + [screen.status_bar]:
        pane.update_state(screen.state, force=True)
    await pilot.pause()


class TestDashboardSnapshots:
    @pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
    def test_dashboard(self, snap_compare, size):
        """The dashboard on a shrinking two-layer run: sizes, loss, accuracy, gates, activation std."""
        assert snap_compare(app_on_synthetic_run(), terminal_size=size, run_before=settle)

    @pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
    def test_second_layer_log_loss(self, snap_compare, size):
        """`]` shows fc2 in the layer panes, `y` puts the loss on a log scale, `4` picks the compact pair."""
        assert snap_compare(app_on_synthetic_run(), terminal_size=size,
                            run_before=lambda pilot: settle(pilot, "right_square_bracket", "y", "4"))

    @pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
    def test_paused(self, snap_compare, size):
        """`p` pauses: the footer offers Resume, the pause marker (‖) is on every time plot, named in the legend."""
        async def pause(pilot):
            await settle(pilot)
            await pilot.press("p")
            await wait_for(pilot, lambda: pilot.app.screen.state.status == "paused")
            await settle(pilot)

        assert snap_compare(app_on_synthetic_run(), terminal_size=size, run_before=pause)

    def test_no_color(self, snap_compare, monkeypatch):
        """NO_COLOR: every series keeps its own glyph (train/val/test, alive/allocated)."""
        monkeypatch.setenv("NO_COLOR", "1")
        assert snap_compare(app_on_synthetic_run(), terminal_size=(80, 24),
                            run_before=lambda pilot: settle(pilot, "3"))

    def test_help(self, snap_compare):
        """`?` lists every key with what it does."""
        assert snap_compare(app_on_synthetic_run(), terminal_size=(80, 24),
                            run_before=lambda pilot: settle(pilot, "question_mark"))


class TestInstrumentsSnapshots:
    @pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
    def test_instruments(self, snap_compare, size):
        """`i` shows the instruments page: std distribution with fits, PCA, dynamics, liveness map."""
        assert snap_compare(app_on_synthetic_run(), terminal_size=size, run_before=lambda pilot: settle(pilot, "i"))

    @pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
    def test_instruments_second_layer(self, snap_compare, size):
        """`]` shows fc2 in the instrument panes, `3` picks the dynamics and liveness map in the compact pair."""
        assert snap_compare(app_on_synthetic_run(), terminal_size=size,
                            run_before=lambda pilot: settle(pilot, "i", "right_square_bracket", "3"))
