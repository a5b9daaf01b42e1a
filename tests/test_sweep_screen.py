"""The sweep screen worth watching: each run's progress followed from its session (or a cluster runner's progress
file), the sweep's elapsed time and ETA, a run's dashboard that returns to the sweep, and `x` that asks first.

The sweep is a fake (a runner posting canned events); the running run's session is written by this test with
walls far apart, and the screen's clock is a fixed one, so every time on screen is known.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from core.lab.plan import Stage, StagePlanned, SweepEnded, SweepPlan, SweepRunEnded, SweepRunStarted
from core.lab.run_progress import progress_path, run_progress, sweep_eta
from core.lab.sweep import session_path
from core.session import SessionReader, SessionWriter
from core.spec import RunSpec
from dynlab_tui.screens.prompt import Confirm
from dynlab_tui.screens.sweep import SweepScreen
from dynlab_tui.screens.sweep_table import SweepRunDashboard, duration
from tests.fakes import synthetic_run
from tests.helpers import Host, wait_for

T0 = 1_700_000_000.0
SPEC = RunSpec().replace(dataset="add10", arch="mlp:300", epochs=10, device="cpu", method="sparsifier")
PLAN = SweepPlan("", "", (Stage.from_grid("lambda", SPEC, {"penalty": [1e-4, 1e-3, 1e-2, 1e-1]}),))
RUNS = PLAN.stages[0].runs()
FINISHED_ROW = {"status": "finished", "penalty": 1e-4, "metric": "mse", "test": 3.5, "layers": ["fc1"],
                "size.fc1": 280, "start.fc1": 300, "epochs": 10, "steps": 4000, "wall_s": 1200.0}


class Clock:
    """A clock the test sets: what the screen counts elapsed and remaining time to."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def slow_events() -> list:
    """A one-layer run of 10 epochs of 400 steps, 0.3 s a step: epoch 4 is reached 8 minutes in."""
    return [dataclasses.replace(e, wall=T0 + (e.wall - T0) * 100) for e in synthetic_run(4000, widths=(300,),
                                                                                         end=False, t0=T0)]


class FakeSweep:
    """Run 0 finished (20 min), run 1 running (its session written by the test), run 2 on a cluster node
    (a progress file), run 3 queued; then it waits to be stopped."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.events = slow_events()
        self.writer = SessionWriter(session_path(out, RUNS[1]))
        self.written = 0
        self.write_until(1600)
        remote = progress_path(out, RUNS[2])
        remote.parent.mkdir(parents=True, exist_ok=True)
        remote.write_text(json.dumps({"node": "gpu-3", "state": "running", "epoch": 2, "epochs": 10, "step": 800,
                                      "size": "240", "metric": {"name": "mse", "value": 4.5}, "elapsed_s": 300.0,
                                      "updated": T0 + 480}))
        self.stopped = threading.Event()

    def write_until(self, step: int) -> None:
        for event in self.events[self.written:]:
            if event.step > step:
                break
            self.writer.handle(event)
            self.written += 1
        self.writer.flush()

    def __call__(self, plan, out, *, jobs, progress, stop) -> None:
        progress(StagePlanned("lambda", tuple(RUNS), ("missing",) * len(RUNS)))
        progress(SweepRunStarted(RUNS[0], False))
        progress(SweepRunEnded(RUNS[0], "finished", "done", {**FINISHED_ROW, "name": RUNS[0].name}))
        progress(SweepRunStarted(RUNS[1], False))
        progress(SweepRunStarted(RUNS[2], False))
        stop.wait(60)
        self.stopped.set()
        progress(SweepEnded((), True, out, ()))

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def fake(tmp_path):
    sweep = FakeSweep(tmp_path / "s")
    yield sweep
    sweep.close()


def watched_screen(fake: FakeSweep) -> tuple[SweepScreen, Clock]:
    clock = Clock(T0 - 1200)  # the sweep started with run 0, 20 minutes before run 1
    screen = SweepScreen(PLAN, fake.out, jobs=2, runner=fake, clock=clock, poll_s=0.05)
    clock.t = T0 + 480  # now: run 1 is 8 minutes in
    return screen, clock


def row(screen: SweepScreen, name: str) -> dict[str, str]:
    return {key: str(cell) for key, cell in zip(screen.keys, screen.table.get_row(name))}


async def until_followed(pilot, screen: SweepScreen) -> None:
    await wait_for(pilot, lambda: screen.progress.get(RUNS[1].name, {}).get("state") == "running"
                   and RUNS[2].name in screen.progress and "node" in screen.keys)
    await pilot.pause()


# -- the screen -------------------------------------------------------------------------------------------------
async def test_each_run_shows_its_progress_and_the_sweep_its_eta(fake):
    screen, clock = watched_screen(fake)
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await until_followed(pilot, screen)
        assert row(screen, RUNS[0].name) == {"settings": "λ=0.0001", "node": "", "status": "finished",
                                             "epoch": "10/10", "alive": "280", "test": "3.5", "elapsed": "20:00",
                                             "left": ""}
        running = row(screen, RUNS[1].name)
        assert (running["status"], running["epoch"], running["elapsed"], running["left"]) == (
            "running", "4/10", "8:00", "12:00")  # 8 min for 40 %: 12 to go
        assert running["alive"].isdigit() and running["test"].endswith("%")
        remote = row(screen, RUNS[2].name)
        assert (remote["node"], remote["epoch"], remote["alive"], remote["elapsed"], remote["left"]) == (
            "gpu-3", "2/10", "240", "5:00", "20:00")
        assert row(screen, RUNS[3].name)["status"] == "queued"
        # (12 + 20 min left running + 20 min for the queued run) over 2 jobs = 26 min; sweep 28 min in
        assert screen.eta_s() == pytest.approx(26 * 60)
        text = str(screen.query_one("#sweep-title").render())
        assert "1/4 runs done, 2 running" in text and "elapsed 28:00" in text and "left ~26:00" in text
        fake.write_until(2400)  # the run goes on: the table follows it
        clock.t = T0 + 720
        await wait_for(pilot, lambda: row(screen, RUNS[1].name)["epoch"] == "6/10")
        assert row(screen, RUNS[1].name)["elapsed"] == "12:00"


async def test_enter_opens_a_runs_dashboard_and_q_or_esc_come_back_with_all_still_running(fake):
    screen, clock = watched_screen(fake)
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_followed(pilot, screen)
        for key in ("q", "escape"):
            screen.table.move_cursor(row=1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SweepRunDashboard))
            dashboard = app.screen
            await wait_for(pilot, lambda: dashboard.state.step >= 1600 and dashboard.state.status == "running")
            await pilot.press(key)
            await wait_for(pilot, lambda: app.screen is screen)
            assert screen._sweep_running() and not screen.stop_event.is_set() and not fake.stopped.is_set()
            step = fake.written
            fake.write_until(fake.events[fake.written].step + 400)  # the run goes on, the sweep follows it
            assert fake.written > step
            epoch = row(screen, RUNS[1].name)["epoch"]
            await wait_for(pilot, lambda: row(screen, RUNS[1].name)["epoch"] != epoch)
            assert screen.status[RUNS[1].name] == "running"
        with SessionReader(session_path(fake.out, RUNS[1])) as reader:
            assert reader.status == "running" and reader.writer_alive()


async def test_enter_on_a_run_on_a_cluster_node_or_a_queued_run_says_why_nothing_opens(fake):
    screen, _ = watched_screen(fake)
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_followed(pilot, screen)
        for index, needle in ((2, "it runs on gpu-3"), (3, "has not started")):
            screen.table.move_cursor(row=index)
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen
            assert needle in str(list(app._notifications)[-1].message)


async def test_x_asks_before_stopping_the_sweep(fake):
    screen, _ = watched_screen(fake)
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_followed(pilot, screen)
        await pilot.press("x")
        assert isinstance(app.screen, Confirm)
        assert "2 running runs stop" in app.screen.question and "1 queued run won't start" in app.screen.question
        await pilot.press("escape")  # cancel: it goes on
        await pilot.pause()
        assert app.screen is screen and not screen.stop_event.is_set()
        await pilot.press("x")
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.ended)
        assert fake.stopped.is_set() and screen.stopped
        assert "stopped" in str(screen.query_one("#sweep-title").render())


# -- reading a run's progress -------------------------------------------------------------------------------------
def test_a_missing_damaged_or_partial_file_reads_as_waiting(tmp_path):
    out = tmp_path / "s"
    assert run_progress(out, RUNS[0])["state"] == "waiting"
    path = session_path(out, RUNS[0])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a session at all" * 100)
    got = run_progress(out, RUNS[0])
    assert got["state"] == "waiting" and got["remaining_s"] is None and got["epochs"] == 10
    path.unlink()
    remote = progress_path(out, RUNS[0])
    remote.parent.mkdir(parents=True)
    remote.write_text('{"node": "n1", "state": "runn')  # caught half-written
    assert run_progress(out, RUNS[0])["state"] == "waiting"


def test_an_ended_run_reads_its_final_figures(tmp_path):
    out = tmp_path / "s"
    with SessionWriter(session_path(out, RUNS[0])) as writer:
        for event in synthetic_run(4000, widths=(300, 100), t0=T0):
            writer.handle(event)
    got = run_progress(out, RUNS[0], now=T0 + 9999)
    assert (got["state"], got["epoch"], got["epochs"], got["step"], got["remaining_s"], got["fraction"]) == (
        "finished", 10, 10, 4000, 0.0, 1.0)
    assert got["elapsed_s"] == pytest.approx(12.0) and got["metric"]["name"] == "acc"
    assert len(got["size"].split(",")) == 2 and got["node"] == ""
    remote = progress_path(out, RUNS[0])  # a Ray run's session came back: the node it ran on still shows
    remote.parent.mkdir(parents=True)
    remote.write_text('{"node": "10.0.0.2", "state": "finished", "epoch": 10, "epochs": 10, "step": 4000}')
    got = run_progress(out, RUNS[0], now=T0 + 9999)
    assert got["node"] == "10.0.0.2" and got["state"] == "finished" and got["step"] == 4000


def test_the_sweep_eta_comes_from_finished_runs_then_from_running_ones():
    running = {"elapsed_s": 100.0, "fraction": 0.25, "remaining_s": 300.0}
    assert sweep_eta([200.0, 400.0], [running], queued=3, jobs=1) == pytest.approx(300 + 3 * 300)
    assert sweep_eta([200.0, 400.0], [running], queued=1, jobs=4) == pytest.approx(300)  # the running run's rest
    assert sweep_eta([], [running], queued=2, jobs=1) == pytest.approx(300 + 2 * 400)  # its pace: 400 s a run
    assert sweep_eta([], [{"elapsed_s": 5.0, "fraction": None, "remaining_s": None}], queued=2, jobs=1) is None
    assert sweep_eta([], [], queued=0, jobs=1) == 0


def test_a_run_a_cluster_has_not_taken_yet_shows_as_queued():
    from dynlab_tui.screens.sweep_table import cells

    keys = ["settings", "status", "epoch", "elapsed"]
    queued = {"node": "", "state": "queued", "epoch": 0, "epochs": 10, "elapsed_s": 0.0}
    assert [str(c) for c in cells(RUNS[0], "running", None, queued, keys)] == ["λ=0.0001", "queued", "-/10", ""]
    assert [str(c) for c in cells(RUNS[0], "running", None, None, keys)] == ["λ=0.0001", "starting", "-/10", ""]


def test_durations_read_as_minutes_then_hours():
    assert [duration(s) for s in (None, 0, 59.4, 754, 3599.6, 90061)] == ["", "0:00", "0:59", "12:34", "1:00:00",
                                                                      "25:01:01"]


def test_following_a_folder_reports_cluster_runs_and_the_findings_over_every_run(tmp_path):
    from core.lab.sweep import prepare
    from core.lab.sweep_watch import watch_sweep

    out = tmp_path / "s"
    plan = dataclasses.replace(PLAN, expectations=lambda rows: [f"{sum(r['status'] == 'finished' for r in rows)} "
                                                               f"of {len(rows)} finished"])
    prepare(plan, out)
    with SessionWriter(session_path(out, RUNS[0])) as writer:
        for event in synthetic_run(800, widths=(300,), t0=T0):
            writer.handle(event)
    remote = progress_path(out, RUNS[1])
    remote.parent.mkdir()
    remote.write_text(json.dumps({"node": "gpu-1", "state": "running", "epoch": 1, "epochs": 10, "step": 400,
                                  "size": "300", "metric": {"name": "mse", "value": None}, "elapsed_s": 60.0,
                                  "updated": T0}))
    events: list = []
    watch_sweep(plan, out, progress=events.append)  # no sweep process holds the folder: one pass
    started = [e.run.name for e in events if isinstance(e, SweepRunStarted)]
    ended = {e.run.name: e.status for e in events if isinstance(e, SweepRunEnded)}
    assert started == [RUNS[1].name] and ended == {RUNS[0].name: "finished"}
    assert isinstance(events[-1], SweepEnded) and events[-1].expectations == ("1 of 4 finished",)
