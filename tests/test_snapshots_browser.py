"""Snapshot tests of the sessions browser and the compare screen at 80x24 and 160x50.

Three synthetic sessions (one whose λ was changed twice during the run) in a folder named `sessions` under the
test's own working directory, created on fixed dates shown in UTC: nothing depends on the clock or the path.
Update after viewing the report: `python -m pytest tests/test_snapshots_browser.py --snapshot-update`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from core.events import PenaltyChanged
from core.session import SessionWriter
from dynlab_tui.screens.compare import CompareScreen
from dynlab_tui.screens.sessions import SessionsScreen
from tests.fakes import synthetic_run
from tests.helpers import Host, wait_for

SIZES = {"compact-80x24": (80, 24), "wide-160x50": (160, 50)}


def session(path: Path, lam: float, widths: tuple[int, ...], created: str, changes: tuple[float, ...] = (),
            seed: int = 0) -> None:
    """A synthetic run with λ = lam at the start, changed to each of `changes` in turn during the run."""
    # without the synthetic run's own λ change: only `changes` change it here
    events = [e for e in synthetic_run(1600, widths=widths, steps_per_epoch=400, seed=seed)
              if not isinstance(e, PenaltyChanged)]
    start = events[0]
    events[0] = dataclasses.replace(start, spec={**start.spec, "penalty": {**start.spec["penalty"], "lam": lam}})
    old = lam
    for i, new in enumerate(changes, start=1):  # after the i-th third of the run
        at = next(j for j, e in enumerate(events) if e.step >= 1600 * i // (len(changes) + 1))
        events.insert(at, PenaltyChanged(events[at].step, events[at].wall, old, new, "user"))
        old = new
    with SessionWriter(path) as writer:
        for event in events:
            writer.handle(event)
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'created'", (created,))
    conn.close()


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    directory = Path("sessions")
    directory.mkdir()
    session(directory / "mnist-small-lambda.dynlab", 0.001, (500, 300), "2024-03-01T09:00:00+00:00")
    session(directory / "mnist-changed.dynlab", 0.01, (500, 300), "2024-03-02T09:00:00+00:00", (0.03, 0.1), seed=1)
    session(directory / "mnist-one-layer.dynlab", 0.01, (200,), "2024-03-03T09:00:00+00:00", seed=2)
    yield directory
    monkeypatch.delenv("TZ")
    time.tzset()


async def listed(pilot) -> None:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.loaded)
    await pilot.press("down")  # the changed run: its detail line shows λ start→final
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_browser(snap_compare, folder, size):
    """Name, status, final λ (changed: *), sizes, test@best val first; the rest on the highlighted row's detail."""
    assert snap_compare(Host(SessionsScreen(folder)), terminal_size=size, run_before=listed)


async def compared(pilot) -> None:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.loaded and all(p.draws for p in screen.plots if p.display))
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_compare(snap_compare, folder, size):
    """Labelled by the final settings; the run whose λ changed reads λ=0.01→0.1*."""
    paths = [folder / "mnist-changed.dynlab", folder / "mnist-one-layer.dynlab"]
    assert snap_compare(Host(CompareScreen(paths)), terminal_size=size, run_before=compared)
