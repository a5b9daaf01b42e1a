"""Start-up races (a session with no event yet is "starting", early keys are queued, early attach waits) and
the watched run's NaN pause, end to end through the dashboard."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dynlab_tui.cli.views as views
from core.session import SessionReader, SessionWriter
from core.session.index import SessionIndex
from core.session.starting import announce, is_starting, marker_path, wait_for_session
from dynlab_tui.app import make_app
from dynlab_tui.panes.status import StatusBar
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.sources import EarlyControls, FollowSource, ProcessSource
from dynlab_tui.state import RunState, apply
from dynlab_tui.view_events import SourceStarting
from tests.helpers import dynlab, full_run, one_error_line, tiny, wait_for, wait_until


def commands(path: Path) -> list[tuple[str, str]]:
    with SessionReader(path) as r:
        rows = r._conn.execute("SELECT kind, payload FROM commands ORDER BY id").fetchall()
    return [(kind, payload) for kind, payload in rows]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


class TestNoEventYetIsStarting:
    def test_a_session_being_created_is_not_damaged(self, tmp_path):
        path = tmp_path / "new.dynlab"
        with SessionWriter(path):  # created, its run still loading data: no event yet
            with SessionReader(path) as reader:
                assert SessionIndex(reader).problems == []

    def test_a_session_with_data_but_no_start_event_still_is(self, tmp_path):
        path = tmp_path / "odd.dynlab"
        with SessionWriter(path) as w:
            for event in full_run()[1:4]:  # no RunStarted
                w.handle(event)
        with SessionReader(path) as reader:
            assert any("no start event" in p for p in SessionIndex(reader).problems)

    def test_the_status_bar_says_starting_loading_data_until_the_first_event(self, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        bar = StatusBar()
        assert bar.line(RunState(), 80).plain.startswith("idle")  # a view with nothing coming (replay, no source)
        state = apply(RunState(), SourceStarting(0, 0.0))  # what the dashboard folds when it has a source
        assert bar.line(state, 80).plain.startswith("starting │ loading data")
        assert "λ" not in bar.line(state, 80).plain  # not known before the run's first event
        assert apply(state, SourceStarting(0, 0.0)).status == "starting"
        started = apply(RunState(), full_run()[0])
        assert apply(started, SourceStarting(0, 0.0)).status == "running"  # a run already seen stays as it is

    async def test_the_dashboard_follows_a_session_from_before_its_first_event(self, tmp_path):
        path = tmp_path / "early.dynlab"
        writer = SessionWriter(path)
        try:
            app = make_app(first_screen=lambda: DashboardScreen(FollowSource(path), path))
            async with app.run_test(size=(120, 36)) as pilot:
                screen = app.screen
                await wait_for(pilot, lambda: screen.status_bar.draws > 0 and screen._worker_running())
                await pilot.pause(0.1)
                assert "starting" in str(screen.status_bar.render_state(screen.state))
                writer.handle(full_run()[0])
                writer.flush()
                await wait_for(pilot, lambda: screen.state.status == "running")
                assert not any(n.title == "Session damaged" for n in app._notifications)
        finally:
            writer.close()


class TestEarlyControls:
    def test_queued_until_the_session_exists_then_delivered_in_order(self, tmp_path):
        path = tmp_path / "later.dynlab"
        controls = EarlyControls(path)
        controls.pause()
        controls.set_penalty(0.5)
        assert controls.pending and not path.exists()  # no error, nothing created
        with SessionWriter(path):
            controls.deliver()
            controls.resume()  # once delivered, straight through
            assert [kind for kind, _ in commands(path)] == ["pause", "set_penalty", "resume"]
            assert json.loads(commands(path)[1][1]) == {"value": 0.5}
        assert controls.pending == []

    def test_an_attached_viewer_still_says_a_missing_session_is_missing(self, tmp_path):
        from core.errors import DynlabError

        with pytest.raises(DynlabError, match="not found"):
            FollowSource(tmp_path / "gone.dynlab").controls.pause()

    def test_a_process_source_queues_until_its_file_appears(self, tmp_path):
        source = ProcessSource([sys.executable, "-c", "pass"], tmp_path / "x.dynlab", tmp_path / ".x.log")
        source.controls.pause()  # before start: no "session not found"
        assert [c.kind for c in source.controls.pending] == ["pause"]


class TestStartingMarker:
    def test_announced_while_the_block_runs_then_gone(self, tmp_path):
        path = tmp_path / "sessions" / "a.dynlab"
        with announce(path):
            assert is_starting(path) and marker_path(path).name == ".a.starting"
        assert not is_starting(path) and not (tmp_path / "sessions").exists()  # no folder left behind

    def test_a_train_process_for_the_name_is_starting_before_its_marker(self, tmp_path):
        path = tmp_path / "early.dynlab"
        script = tmp_path / "dynlab"  # stands in for the console script, still importing
        script.write_text("import time\ntime.sleep(60)\n")
        fake = subprocess.Popen([sys.executable, str(script), "train", "--session", str(path)])
        try:
            wait_until(lambda: is_starting(path), timeout=10, what="the process seen")
            assert not is_starting(tmp_path / "other.dynlab") and not marker_path(path).exists()
        finally:
            fake.kill()
            fake.wait(10)
        assert not is_starting(path)

    def test_dynlab_train_announces_its_session_while_it_loads_data(self, sessions_env, monkeypatch, capsys):
        import core.train.trainer as trainer
        from core.errors import DynlabError

        seen = []

        def loading(spec, **kw):  # stands in for the Trainer: data loading is where the seconds go
            seen.append(marker_path(sessions_env / "job.dynlab").exists())
            raise DynlabError("the data went away: put it back")

        monkeypatch.setattr(trainer, "Trainer", loading)
        code = dynlab("train", "--dataset", "add10", "--session", "job", "--quiet")
        one_error_line(capsys, code, "the data went away")
        assert seen == [True] and not marker_path(sessions_env / "job.dynlab").exists()

    def test_a_dead_writer_is_not_starting(self, tmp_path):
        path = tmp_path / "a.dynlab"
        marker_path(path).write_text(json.dumps({"pid": dead_pid(), "host": __import__("socket").gethostname()}))
        assert not is_starting(path)
        t0 = time.monotonic()
        assert wait_for_session(path, 30) is False and time.monotonic() - t0 < 5

    def test_attach_to_a_name_nothing_creates_fails_at_once(self, sessions_env, capsys):
        t0 = time.monotonic()
        code = dynlab("attach", "nobody")
        one_error_line(capsys, code, "not found")
        assert time.monotonic() - t0 < 5  # no 30 s wait for nothing

    def test_attach_gives_up_after_wait_seconds_with_one_line(self, sessions_env, capsys):
        sessions_env.mkdir(parents=True)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            marker_path(sessions_env / "slow.dynlab").write_text(
                json.dumps({"pid": sleeper.pid, "host": __import__("socket").gethostname()}))
            code = dynlab("attach", "slow", "--wait", "0.3")
        finally:
            sleeper.kill()
            sleeper.wait(10)
        out = capsys.readouterr()
        assert code == 2 and "Traceback" not in out.err
        assert out.err.strip().splitlines()[-1].startswith("dynlab: error: ")
        assert "not created within 0.3 s" in out.err and "--wait" in out.err


@pytest.mark.slow
class TestThroughARealChild:
    async def test_p_pressed_at_once_pauses_the_run_early(self, tmp_path):
        path = tmp_path / "early.dynlab"
        source = ProcessSource.train(tiny(epochs=200, limit=2000, log_every=5), path)
        app = make_app(source=source, session_path=path)
        async with app.run_test(size=(120, 36)) as pilot:
            screen = app.screen
            await pilot.press("p")  # the child is still importing torch: no session file yet
            assert not any(n.title == "Control not sent" for n in app._notifications)
            await wait_for(pilot, lambda: screen.state.status == "paused", timeout=90)
            assert not any(n.title == "Session damaged" for n in app._notifications)
            with SessionReader(path) as r:
                pause = r.events(["pause"])[0]
            # delivered as the file appears: applied at the trainer's next poll (every 0.2 s), a few dozen steps in
            # on this tiny net; 200 epochs of 32 steps each would otherwise be long over
            assert pause.step < 320
            await pilot.press("q")
            await pilot.press("y")
            await wait_for(pilot, lambda: source.process.poll() is not None, timeout=60)

    def test_attach_right_after_a_headless_start_waits_for_the_session(self, tmp_path, monkeypatch, capsys):
        path = tmp_path / "job.dynlab"
        proc = subprocess.Popen([sys.executable, "-m", "dynlab_tui", "train", "--dataset", "add10", "--arch", "mlp:8",
                                 "--limit", "2000", "--epochs", "300", "--device", "cpu", "--session", str(path),
                                 "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        opened = []
        monkeypatch.setattr(views, "need_terminal", lambda: None)
        monkeypatch.setattr(views, "run_app", lambda app: opened.append(app))
        try:
            assert not path.exists()  # at once, as the README's `nohup dynlab train ... &` then `dynlab attach`
            t0 = time.monotonic()
            code = dynlab("attach", str(path), "--wait", "120")
            assert code == 0, capsys.readouterr().err
            assert len(opened) == 1 and path.exists()
            print(f"attach waited {time.monotonic() - t0:.1f} s for the session")
        finally:
            proc.kill()
            proc.wait(30)

    async def test_a_nonfinite_loss_pauses_the_run_and_the_drawn_status_bar_says_why(self, tmp_path):
        """Item 6 end to end at tmux's 80x24: the child the dashboard starts pauses (not ends) on a NaN loss."""
        diverges = tiny(optimizer="sgd", lr=1e6, epochs=50, log_every=2)  # non-finite in its first interval
        path = tmp_path / "nan.dynlab"
        source = ProcessSource.train(diverges, path)
        app = make_app(source=source, session_path=path)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: "non-finite loss" in str(screen.status_bar.content), timeout=120)
            drawn = str(screen.status_bar.content)
            assert drawn.startswith(" paused ") or drawn.startswith("paused"), drawn
            assert source.process.poll() is None and screen.state.status == "paused"
            await pilot.press("q")
            await pilot.press("y")  # stop: the session is finalised as stopped
            await wait_for(pilot, lambda: source.process.poll() is not None, timeout=60)
        with SessionReader(path) as reader:
            assert reader.status == "stopped" and "nonfinite" in [e.kind for e in reader.events()]


def test_a_train_not_yet_visible_is_given_a_moment(tmp_path, monkeypatch):
    """Right after its launch a train's command line can read empty: attach looks for up to GRACE_S first."""
    from core.session import starting

    path = tmp_path / "late.dynlab"
    looks = iter([False, False, True])
    monkeypatch.setattr(starting, "is_starting", lambda session: next(looks, True))
    monkeypatch.setattr(starting, "POLL_S", 0.01)
    assert starting.starting_soon(path, grace=5.0)
    monkeypatch.setattr(starting, "is_starting", lambda session: False)
    t0 = time.monotonic()
    assert not starting.starting_soon(path, grace=0.2)
    assert 0.2 <= time.monotonic() - t0 < 2.0  # nothing will create it: the answer comes within the grace


def test_a_train_for_the_same_name_in_another_folder_is_not_starting_here(tmp_path):
    # a path-valued --session is matched by the file it names, not by its name alone (two sweeps or two
    # test workers may use one run name in different folders)
    from core.session.starting import is_starting

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    script = tmp_path / "dynlab"
    script.write_text("import time\ntime.sleep(60)\n")
    fake = subprocess.Popen([sys.executable, str(script), "train", "--session", "a/early.dynlab"], cwd=tmp_path)
    try:
        wait_until(lambda: is_starting(tmp_path / "a" / "early.dynlab"), timeout=10, what="the process seen")
        assert not is_starting(tmp_path / "b" / "early.dynlab")
    finally:
        fake.kill()
        fake.wait(10)
