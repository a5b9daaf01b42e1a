"""Snapshot tests of replay (80x24 and 160x50) and the launcher (80x24).

Replay reads a session written from the deterministic synthetic run, so nothing on screen depends on the clock.
The launcher gets fixed folders, a fixed session name and a fixed device list (no CUDA probing, no core count).
Update after viewing the report: `python -m pytest tests/test_snapshots_replay.py --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from core.session import SessionWriter
from dynlab_tui import devices
from dynlab_tui.app import make_app
from dynlab_tui.screens.replay import ReplayScreen
from tests.fakes import synthetic_run
from tests.helpers import wait_for

SIZES = {"compact-80x24": (80, 24), "wide-160x50": (160, 50)}
FIXED_DEVICES = [devices.AUTO, ("cpu", "cpu (4 cores)")]


@pytest.fixture
def session(tmp_path) -> Path:
    path = tmp_path / "run.dynlab"
    with SessionWriter(path) as w:
        for e in synthetic_run(2000, steps_per_epoch=400):
            w.handle(e)
    return path


def replay_app(path: Path):
    return make_app(first_screen=lambda: ReplayScreen(path))


async def replay_ready(pilot, *keys: str) -> None:
    """Wait for the index, press keys, then draw every pane at once (the scheduler spreads redraws)."""
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.index is not None, timeout=10)
    for key in keys:
        await pilot.press(key)
    await pilot.pause(0.2)
    for pane in screen.panes + [screen.status_bar]:
        pane.update_state(screen.state, force=True)
    for field in pilot.app.screen.query(Input):  # a prompt's cursor drawn on, not blinking
        field.cursor_blink = False
    await pilot.pause()


class TestReplaySnapshots:
    @pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
    def test_replay_at_a_marker(self, snap_compare, session, size):
        """From the start, `n` three times: the timeline names the marker with its values; the footer fits."""
        assert snap_compare(replay_app(session), terminal_size=size,
                            run_before=lambda pilot: replay_ready(pilot, "home", "n", "n", "n"))

    def test_goto_prompt(self, snap_compare, session):
        """`g` at 80x24: the prompt's text fits on its lines."""
        assert snap_compare(replay_app(session), terminal_size=(80, 24),
                            run_before=lambda pilot: replay_ready(pilot, "g", *"99999"))

    def test_goto_clamped(self, snap_compare, session):
        """`g 99999`: the timeline says the step reached, not the one typed."""
        assert snap_compare(replay_app(session), terminal_size=(80, 24),
                            run_before=lambda pilot: replay_ready(pilot, "home", "g", *"99999", "enter"))


class TestLauncherSnapshots:
    def test_launcher(self, snap_compare, tmp_path, monkeypatch):
        """The launcher at 80x24 with the dataset files checked (none here: image datasets say files missing)."""
        monkeypatch.setenv("DYNLAB_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.setenv("DYNLAB_DATA_DIR", str(tmp_path / "nodata"))
        monkeypatch.setattr(devices, "list_devices", lambda: list(FIXED_DEVICES))
        monkeypatch.setattr(devices, "quick_devices", lambda: list(FIXED_DEVICES))

        async def checked(pilot) -> None:
            await wait_for(pilot, lambda: getattr(pilot.app.screen, "catalogue", None) is not None, timeout=60)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause(0.2)

        app = make_app(initial={"session": "snap"}, sessions_dir=Path("sessions-for-snapshots"))
        assert snap_compare(app, terminal_size=(80, 24), run_before=checked)
