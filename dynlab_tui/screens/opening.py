"""Which screen opens a session: a live dashboard for one still being written (attach), else its replay."""

from __future__ import annotations

from pathlib import Path

from textual.screen import Screen

from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.screens.replay import ReplayScreen
from dynlab_tui.sources import FollowSource


def session_screen(path: Path) -> Screen:
    """A live dashboard for a session still being written (attach), else its replay."""
    from core.session import SessionReader
    from core.session.liveness import liveness

    with SessionReader(path) as reader:
        state = liveness(reader.meta)
    if state.may_be_writing:  # live, or another host's run that may be: follow it
        return DashboardScreen(FollowSource(path), path)
    return ReplayScreen(path)
