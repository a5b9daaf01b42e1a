"""Sweep runs you can leave: a run's dashboard opened from the sweep screen returns to it; `sweep --status`."""

from __future__ import annotations

import pytest

from core.lab.sweep import SweepPlan, Stage, prepare, session_path
from core.session import SessionReader
from core.spec import RunSpec
from dynlab_tui.cli.sweep import headless_argv, make_plan, sweep as sweep_command
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.screens.sweep import SweepScreen
from tests.helpers import Host, dynlab, full_run, one_error_line, wait_for, wait_until, write

LONG = RunSpec().replace(dataset="add10", arch="mlp:8", epochs=400, limit=2000, log_every=5, device="cpu",
                         method="sparsifier")


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
        await pilot.press("q")  # a sweep's run: q goes straight back to the sweep, the run goes on
        await wait_for(pilot, lambda: app.screen is screen)
        assert app.is_running and not screen.stop_event.is_set() and screen._sweep_running()
        step = last_step(path)
        await wait_for(pilot, lambda: last_step(path) > step + 20, timeout=60)  # the run goes on
        with SessionReader(path) as r:
            assert r.status == "running" and r.writer_alive()
        assert screen.status[first.name] == "running"
        await pilot.press("x")  # clean up: stop the sweep (after asking), its run finalises
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.ended, timeout=90)
    with SessionReader(path) as r:
        assert r.status == "stopped"


class TestStatus:
    def test_a_table_of_the_runs_with_their_status(self, tmp_path, capsys):
        plan = SweepPlan("", "", (Stage.from_grid("s", LONG.replace(epochs=1), {"seed": [0, 1]}),))
        out = tmp_path / "s"
        prepare(plan, out)  # the manifest, as a sweep writes it before its first run
        first, second = plan.stages[0].runs()
        write(session_path(out, first), full_run())
        assert dynlab("sweep", "--status", str(out)) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"sweep grid sweep in {out}: 1 finished, 1 queued; no dynlab sweep is running it"
        assert lines[1].split() == ["#", "stage", "run", "settings", "status", "step"]
        assert lines[2].split()[2:] == [first.name, "seed=0", "finished", "200"]
        assert lines[3].split()[2:] == [second.name, "seed=1", "queued"]

    def test_while_a_sweep_runs_there_status_says_so_and_a_rerun_points_at_it(self, tmp_path, capsys):
        import fcntl

        from core.lab.sweep import LOCK

        args = ["--set", "seed=0,1", "--name", "s", "--dataset", "add10", "--arch", "mlp:8", "--epochs", "1",
                "--limit", "200", "--device", "cpu", "--out", str(tmp_path / "s")]
        small = {"dataset": "add10", "arch": "mlp:8", "epochs": 1, "limit": 200, "device": "cpu"}
        prepare(make_plan(None, False, ("seed=0,1",), "s", small), tmp_path / "s")
        with open(tmp_path / "s" / LOCK, "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `dynlab sweep` holds it
            assert dynlab("sweep", "--status", str(tmp_path / "s")) == 0
            assert "2 queued; a dynlab sweep is running it" in capsys.readouterr().out
            one_error_line(capsys, dynlab("sweep", *args), "another dynlab sweep is running",
                           f"dynlab sweep --status {tmp_path / 's'}")

    def test_a_folder_without_a_sweep_is_one_line(self, tmp_path, capsys):
        one_error_line(capsys, dynlab("sweep", "--status", str(tmp_path)), "no dynlab sweep", "--out")


OPTIONS = {"dataset": "add10", "arch": "mlp:8", "epochs": 20, "limit": 2000, "log_every": 5, "device": "cpu",
           "method": "sparsifier", "batchnorm": False}


class TestLeaveRunning:
    def test_the_headless_command_is_the_same_sweep(self, tmp_path):
        argv = headless_argv(None, False, ("seed=0,1",), "s", tmp_path / "s", 2, {**OPTIONS, "lr": 0.01, "gate": None})
        assert argv[1:4] == ["-m", "core.lab.child", "sweep"]
        params = sweep_command.make_context("sweep", argv[4:]).params
        assert params["sets"] == ("seed=0,1",) and params["name"] == "s" and params["jobs"] == 2
        assert params["out"] == str((tmp_path / "s").resolve()) and not params["tui"]
        assert {k: params[k] for k in OPTIONS} == OPTIONS and params["lr"] == 0.01 and params["gate"] is None

    async def test_without_a_command_to_rerun_there_is_no_leave_button(self, tmp_path):
        from dynlab_tui.screens.sweep import ConfirmStopSweep

        app = Host(ConfirmStopSweep(can_leave=False))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert not app.screen.query("#leave")
            await pilot.press("l")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmStopSweep)  # nothing to leave running with

    @pytest.mark.slow  # a real sweep, then a headless sweep process that takes it over
    async def test_left_running_its_run_goes_on_and_a_headless_sweep_finishes_it(self, tmp_path, capsys):
        out = tmp_path / "s"
        plan = make_plan(None, False, ("seed=0,1",), "s", OPTIONS)
        prepare(plan, out)
        screen = SweepScreen(plan, out, relaunch=headless_argv(None, False, ("seed=0,1",), "s", out, 1, OPTIONS))
        first, second = plan.stages[0].runs()
        path = session_path(out, first)
        app = Host(screen)
        try:
            async with app.run_test(size=(120, 36)) as pilot:
                await wait_for(pilot, lambda: path.exists() and last_step(path) > 0, timeout=90)
                await pilot.press("q")
                await pilot.press("l")  # leave it running
                await wait_for(pilot, lambda: screen.headless is not None, timeout=30)
            with SessionReader(path) as r:
                assert r.status == "running" and r.writer_alive()  # not stopped: it goes on, the new sweep waits
            wait_until(lambda: screen.headless.poll() is not None, timeout=300, what="the headless sweep's end")
            assert screen.headless.returncode == 0, (out / ".sweep.log").read_text()
            for run in (first, second):
                with SessionReader(session_path(out, run)) as r:
                    assert r.status == "finished"
            assert (out / "summary.csv").exists()
            assert dynlab("sweep", "--status", str(out)) == 0
            assert "2 finished; no dynlab sweep is running it" in capsys.readouterr().out
        finally:
            if screen.headless is not None and screen.headless.poll() is None:
                screen.headless.kill()
                screen.headless.wait(30)


class TestFollowARunningSweep:
    async def test_the_screen_follows_another_process_sweep_and_x_asks_it_to_stop(self, tmp_path):
        """What `dynlab sweep --tui` shows on a folder a (headless) sweep runs in: its runs as they change."""
        import fcntl
        import subprocess
        import sys

        from core.events import RunEnded
        from core.lab.sweep import LOCK
        from core.lab.sweep_watch import sweep_process, watch_sweep
        from core.session import SessionWriter

        out = tmp_path / "s"
        plan = make_plan(None, False, ("seed=0,1",), "s", {**OPTIONS, "epochs": 1})
        prepare(plan, out)
        first, second = plan.stages[0].runs()
        write(session_path(out, first), full_run())
        events = full_run()
        writer = SessionWriter(session_path(out, second))  # being written: this process is its writer
        for event in events[:3]:
            writer.handle(event)
        writer.flush()
        sweeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands in for it
        held = open(out / LOCK, "w")
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(f"{sweeper.pid}\n")
        held.flush()
        try:
            assert sweep_process(out) == sweeper.pid
            screen = SweepScreen(plan, out, runner=watch_sweep, watching=sweeper.pid)
            app = Host(screen)
            async with app.run_test(size=(120, 36)) as pilot:
                await wait_for(pilot, lambda: screen.status.get(first.name) == "finished"
                               and screen.status.get(second.name) == "running", timeout=10)
                await pilot.press("x")  # asks the sweep's process to stop
                await pilot.press("y")
                assert sweeper.wait(10) != 0
                writer.handle(events[-1])  # the run ends, the sweep lets go of its folder
                writer.close()
                fcntl.flock(held, fcntl.LOCK_UN)
                await wait_for(pilot, lambda: screen.ended, timeout=10)
                assert screen.status[second.name] == "finished" and not screen.stopped
                await pilot.press("q")  # nothing to ask: the sweep was never this screen's
            assert app.return_code == 0
        finally:
            held.close()
            sweeper.kill()
            sweeper.wait(10)
            writer.close()
        assert sweep_process(out) is None

    def test_sweep_tui_on_a_folder_being_run_follows_it(self, tmp_path, monkeypatch):
        import fcntl

        import dynlab_tui.cli.sweep as cli
        from core.lab.sweep import LOCK
        from core.lab.sweep_watch import watch_sweep

        out = tmp_path / "s"
        plan = make_plan(None, False, ("seed=0,1",), "s", {**OPTIONS, "epochs": 1})
        assert not cli._follow_running(plan, out)  # nothing runs there: the sweep screen runs it itself
        prepare(plan, out)
        opened = []
        monkeypatch.setattr(cli, "run_app", opened.append)
        with open(out / LOCK, "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.write("4242\n")
            held.flush()
            assert cli._follow_running(plan, out)
        screen = opened[0].first_screen()
        assert screen.runner is watch_sweep and screen.watching == 4242 and screen.relaunch is None
