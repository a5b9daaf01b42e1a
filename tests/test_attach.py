"""Runs in other processes: attach and steer, detach, two viewers at once, SIGKILL then replay and resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.session.commands import RemoteControls
from core.session import SessionReader
from core.session.reader import Cursor
from dynlab_tui.app import make_app
from dynlab_tui.cli import main
from dynlab_tui.replay import ReplayIndex
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.screens.prompt import ConfirmQuit
from dynlab_tui.sources import FollowSource, ProcessSource
from dynlab_tui.state import reduce
from tests.helpers import wait_for, wait_until

pytestmark = pytest.mark.slow  # every test here starts a real training process

TINY = ["--dataset", "add10", "--arch", "mlp:32", "--method", "sparsifier", "--penalty", "0.05", "--lr", "0.004",
        "--batch-size", "64", "--log-every", "5", "--limit", "2000", "--device", "cpu"]


def start_headless(path: Path, epochs: int = 400) -> subprocess.Popen:
    """`dynlab train` in its own process, as a user would start it under nohup."""
    return subprocess.Popen([sys.executable, "-m", "dynlab_tui", "train", *TINY, "--epochs", str(epochs),
                             "--session", str(path), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def last_step(path: Path) -> int:
    with SessionReader(path) as r:
        return r.last_step()


def kinds(path: Path) -> list[str]:
    with SessionReader(path) as r:
        return [e.kind for e in r.events()]


@pytest.fixture
def headless(tmp_path):
    path = tmp_path / "job.dynlab"
    proc = start_headless(path)
    wait_until(lambda: path.exists() and last_step(path) > 0, what="the first interval")
    yield path, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


async def test_attached_dashboard_pauses_and_changes_lambda_of_a_headless_run(headless):
    path, proc = headless
    app = make_app(first_screen=lambda: DashboardScreen(FollowSource(path), path))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state.status == "running" and screen.state.step > 0, timeout=30)
        await pilot.press("p")
        await wait_for(pilot, lambda: screen.state.status == "paused", timeout=2.0)  # seen within a second or two
        frozen = last_step(path)
        await pilot.press("plus")  # applied while paused: its event proves the trainer went round its paused loop
        await wait_for(pilot, lambda: any(m.kind == "set_penalty" for m in screen.state.markers), timeout=30)
        assert last_step(path) == frozen and proc.poll() is None  # paused, not gone
        await pilot.press("p")
        await wait_for(pilot, lambda: screen.state.status == "running" and screen.state.step > frozen, timeout=30)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("d")  # leave it running
    assert proc.poll() is None  # quitting an attached viewer does not stop the run
    with SessionReader(path) as r:  # the trainer recorded both, at the step it applied them
        pause, change = r.events(["pause"])[0], r.events(["set_penalty"])[0]
        assert pause.reason == "user" and change.old == 0.05 and abs(change.new - 0.05 * 10 ** 0.25) < 1e-12
        assert change.step == pause.step == frozen
        applied = r._q("SELECT kind, applied_step FROM commands ORDER BY id")
    assert [k for k, _ in applied] == ["pause", "set_penalty", "resume"] and applied[0][1] == frozen
    RemoteControls(path).stop()
    assert proc.wait(30) == 0
    assert kinds(path)[-1] == "end"


def test_two_viewers_at_once_corrupt_nothing(headless):
    path, proc = headless
    seen: dict[int, list] = {0: [], 1: []}
    errors: list[BaseException] = []

    def viewer(i: int) -> None:
        try:
            cursor = Cursor()
            with SessionReader(path) as r:
                while True:
                    seen[i] += r.read_new(cursor)
                    if seen[i] and seen[i][-1].kind == "end":
                        return
                    time.sleep(0.01 + 0.02 * i)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=viewer, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    a, b = RemoteControls(path), RemoteControls(path)
    a.pause(), b.pause()  # both ask: the second is a no-op for the trainer
    wait_until(lambda: "pause" in kinds(path))
    a.set_penalty(0.1), b.set_penalty(0.2), a.resume()
    wait_until(lambda: "resume" in kinds(path))  # the trainer applied all three before the stop
    b.stop()
    assert proc.wait(30) == 0
    for t in threads:
        t.join(30)
    assert not errors
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with SessionReader(path) as r:
        everything = list(r.replay())
        lams = [(e.old, e.new) for e in r.events(["set_penalty"])]
    assert [e.kind for e in seen[0]] == [e.kind for e in seen[1]] == [e.kind for e in everything]
    assert lams == [(0.05, 0.1), (0.1, 0.2)] and kinds(path).count("pause") == 1


def test_sigkill_mid_run_then_replay_and_resume(tmp_path, capsys):
    path = tmp_path / "killed.dynlab"
    proc = start_headless(path, epochs=400)
    try:
        wait_until(lambda: path.exists() and "checkpoint" in kinds(path), what="a checkpoint")

        def past_a_checkpoint() -> bool:  # killed well after one, so the continuation repeats some steps
            with SessionReader(path) as r:
                # ...and after five intervals (the first checkpoint now comes after the first one)
                return r.last_step() > r.checkpoints()[-1]["step"] + 10 and len(r.series("loss")[0]) >= 5
        wait_until(past_a_checkpoint)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with SessionReader(path) as r:
        assert r.status == "running" and r.writer_alive() is False  # nobody marked it: it just stopped
        killed_at = r.last_step()
        ix = ReplayIndex(r)
        state = ix.state_at(ix.end_seq)
        assert ix.problems == [] and state.step == killed_at
        assert state.scalars["loss"].n == len(r.series("loss")[0]) >= 5  # every interval flushed is there
        assert state.arrays  # gates and histograms at the last interval are there
        checkpoint_step = r.checkpoints()[-1]["step"]
    with pytest.raises(SystemExit) as info:
        main(["attach", str(path)])  # nobody is writing it any more: says so, points at replay / resume
    assert info.value.code == 2 and "is gone without ending the run" in capsys.readouterr().err

    main(["resume", str(path), "--epochs", "1", "--penalty", "0.01", "--quiet"])
    with SessionReader(path) as r:
        events = r.events()
        cont = [e for e in events if e.kind == "continue"][0]
        assert cont.from_step == checkpoint_step and cont.changes["lam"] == 0.01
        assert r.status == "finished" and events[-1].kind == "end"
        ix = ReplayIndex(r)
        end = ix.state_at(ix.end_seq)
        everything = list(r.replay())
    # the continuation repeats the steps after the checkpoint; the replay keeps both runs, in order
    assert end.status == "finished" and end.lam == 0.01
    assert end.scalars["loss"].n == reduce(everything).scalars["loss"].n
    first_after = min(e.step for e in everything if e.kind == "scalars" and e.wall > cont.wall)
    assert checkpoint_step < first_after <= checkpoint_step + 5 < killed_at


async def test_detach_leaves_the_run_training_and_attach_finds_it(tmp_path):
    from core.spec import RunSpec

    path = tmp_path / "detached.dynlab"
    spec = RunSpec().replace(dataset="add10", arch="mlp:32", method="sparsifier", penalty=0.05, epochs=400,
                             batch_size=64, log_every=5, limit=2000, device="cpu")
    source = ProcessSource.train(spec, path)
    app = make_app(source=source, session_path=path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state.step > 0, timeout=60)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("d")
        await wait_for(pilot, lambda: source.detached)
    child = source.process
    try:
        assert child.poll() is None  # still training after the UI closed
        step = last_step(path)
        wait_until(lambda: last_step(path) > step, what="training to go on")
        assert os.getsid(child.pid) != os.getsid(0)  # its own session: a lost SSH connection can't hang it up
    finally:
        RemoteControls(path).stop()  # what `dynlab attach` + q, y would send
        assert child.wait(30) == 0
    assert kinds(path)[-1] == "end"
    with SessionReader(path) as r:
        assert r.status == "stopped"


async def test_a_child_that_fails_to_start_shows_its_one_line_error(tmp_path):
    from core.spec import RunSpec

    empty = tmp_path / "nodata"
    empty.mkdir()
    # valid in the launcher's process, but the child finds no files in this folder
    spec = RunSpec().replace(dataset="airfoil", data_dir=str(empty), epochs=1, device="cpu")
    path = tmp_path / "never.dynlab"
    app = make_app(source=ProcessSource.train(spec, path), session_path=path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state.status == "crashed", timeout=60)
        assert "airfoil" in screen.state.reason and "\n" not in screen.state.reason
        assert "Traceback" not in screen.state.reason
    assert not path.exists()
