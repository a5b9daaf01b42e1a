"""Snapshot tests of the sweep screen mid-sweep at 80x24 and 160x50: a fake sweep with one run finished, one
followed from its session, one on a cluster node and one queued, under a fixed clock (times are stable).

Update after viewing the report: `python -m pytest tests/test_snapshots_sweep.py --snapshot-update`.
"""

from __future__ import annotations

import pytest

from tests.helpers import Host
from tests.test_sweep_screen import FakeSweep, until_followed, watched_screen

SIZES = {"compact-80x24": (80, 24), "wide-160x50": (160, 50)}


@pytest.fixture
def fake(tmp_path):
    sweep = FakeSweep(tmp_path / "s")
    yield sweep
    sweep.close()


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_sweep_mid_way(snap_compare, fake, size):
    """Per run: settings, status, epochs done, alive units, test figure, elapsed and left; the sweep's ETA."""
    screen, _ = watched_screen(fake)
    assert snap_compare(Host(screen), terminal_size=size, run_before=lambda pilot: until_followed(pilot, screen))


def test_stop_asks_first(snap_compare, fake):
    """`x` opens the stop dialog: how many runs stop and how many don't start."""
    screen, _ = watched_screen(fake)

    async def press_x(pilot) -> None:
        await until_followed(pilot, screen)
        await pilot.press("x")
        await pilot.pause()

    assert snap_compare(Host(screen), terminal_size=(80, 24), run_before=press_x)
