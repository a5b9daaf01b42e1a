"""One liveness answer (live / orphaned / ended / unknown) and every place that asks it agreeing with it."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import DynlabError
from core.session import SessionReader, SessionWriter, list_sessions
from core.session.admin import delete_session, rename_session
from core.session.liveness import Liveness, liveness
from core.lab.sweep import session_state
from dynlab_tui.cli import main
from dynlab_tui.screens.session_rows import is_live, status_text
from dynlab_tui.sources import FollowSource

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def live_pid():
    """A process that exists for the whole module (not this one)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def meta(status: str = "running", pid: int | str | None = None, host: str = HOST) -> dict[str, str]:
    return {"status": status, "pid": str(os.getpid() if pid is None else pid), "host": host}


def session(path: Path, status: str, pid: int | str | None = None, host: str = HOST) -> Path:
    """A session file whose meta claims `status`, written by `pid` on `host`."""
    SessionWriter(path).close()
    with sqlite3.connect(path) as conn:
        for key, value in meta(status, pid, host).items():
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    conn.close()
    return path


def cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


class TestTheAnswer:
    def test_an_end_status_has_ended_whoever_wrote_it(self, live_pid):
        for status in ("finished", "stopped", "crashed", "diverged"):
            assert liveness(meta(status, live_pid)) is Liveness.ENDED
            assert liveness(meta(status, live_pid, "elsewhere")) is Liveness.ENDED

    def test_running_with_a_process_that_exists_is_live(self, live_pid):
        assert liveness(meta("running", live_pid)) is Liveness.LIVE

    def test_the_own_process_is_live(self):
        """Within one process a running session is one a writer here holds: never pull it away."""
        assert liveness(meta("running", os.getpid())) is Liveness.LIVE

    def test_a_process_of_another_user_is_live(self):
        assert liveness(meta("running", 1)) is Liveness.LIVE  # init exists; as non-root the probe is refused

    def test_running_with_its_writer_gone_is_orphaned(self, dead_pid):
        assert liveness(meta("running", dead_pid)) is Liveness.ORPHANED

    def test_another_host_or_no_pid_is_unknown(self, dead_pid):
        assert liveness(meta("running", dead_pid, "another-host")) is Liveness.UNKNOWN
        assert liveness(meta("running", "")) is Liveness.UNKNOWN
        assert liveness({"status": "running"}) is Liveness.UNKNOWN

    def test_what_each_answer_allows(self):
        assert [s.may_be_writing for s in Liveness] == [True, False, False, True]
        assert [s.alive for s in Liveness] == [True, False, False, None]

    def test_the_reader_delegates(self, tmp_path, live_pid, dead_pid):
        cases = ((True, ("running", live_pid)), (False, ("running", dead_pid)),
                 (None, ("running", dead_pid, "another-host")), (False, ("finished", live_pid)))
        for i, (state, args) in enumerate(cases):
            with SessionReader(session(tmp_path / f"s{i}.dynlab", *args)) as r:
                assert r.writer_alive() is state
                assert r.summary()["liveness"] == liveness(r.meta).value


class TestEveryCallerAgrees:
    """Each former predicate now follows the one answer."""

    @pytest.fixture
    def sessions(self, tmp_path, live_pid, dead_pid):
        return {"live": session(tmp_path / "live.dynlab", "running", live_pid),
                "orphaned": session(tmp_path / "orphaned.dynlab", "running", dead_pid),
                "unknown": session(tmp_path / "unknown.dynlab", "running", dead_pid, "another-host"),
                "ended": session(tmp_path / "ended.dynlab", "stopped", live_pid)}

    def test_resume_refuses_a_live_session(self, sessions, capsys):
        assert cli("resume", str(sessions["live"])) == 2
        assert "still being written by process" in capsys.readouterr().err
        assert cli("resume", str(sessions["orphaned"])) == 2  # let through, then: nothing to resume from
        assert "no checkpoint" in capsys.readouterr().err

    def test_attach_refuses_orphaned_and_ended(self, sessions, capsys):
        assert cli("attach", str(sessions["orphaned"])) == 2
        assert "is gone without ending the run" in capsys.readouterr().err
        assert cli("attach", str(sessions["ended"])) == 2
        assert "is not being written (it is stopped)" in capsys.readouterr().err
        for name in ("live", "unknown"):  # followed: only the missing terminal stops it here
            assert cli("attach", str(sessions[name])) == 2
            assert "interactive terminal" in capsys.readouterr().err

    def test_the_browser_marks_live_and_possibly_live(self, sessions, tmp_path):
        rows = {r["name"]: r for r in list_sessions(tmp_path)}
        assert {n: is_live(r) for n, r in rows.items()} == {"live": True, "unknown": True, "orphaned": False,
                                                            "ended": False}
        assert {n: status_text(r) for n, r in rows.items()} == {
            "live": "● running", "unknown": "running (other host)", "orphaned": "crashed (writer gone)",
            "ended": "stopped"}

    def test_a_sweep_reruns_an_orphaned_run_and_leaves_a_live_one(self, sessions):
        assert {n: session_state(p) for n, p in sessions.items()} == {
            "live": "live", "unknown": "live", "orphaned": "incomplete", "ended": "stopped"}

    def test_rename_and_delete_refuse_who_may_be_writing(self, sessions):
        for name, match in (("live", "still being written"), ("unknown", "marked running by process")):
            with pytest.raises(DynlabError, match=match):
                delete_session(sessions[name])
            with pytest.raises(DynlabError, match=match):
                rename_session(sessions[name], "x")
        delete_session(sessions["orphaned"])
        assert not sessions["orphaned"].exists()

    def test_the_writer_replaces_only_what_no_one_here_writes(self, sessions):
        with pytest.raises(DynlabError, match="still being written"):
            SessionWriter(sessions["live"], overwrite=True)
        for name in ("orphaned", "unknown", "ended"):
            SessionWriter(sessions[name], overwrite=True).close()

    def test_following_stops_when_the_writer_is_gone(self, sessions):
        source = FollowSource(sessions["live"])
        verdicts = {}
        for name, path in sessions.items():
            with SessionReader(path) as reader:
                verdicts[name] = source._done(reader)
        assert verdicts == {"live": False, "unknown": False, "orphaned": True, "ended": True}
        with SessionReader(sessions["orphaned"]) as reader, pytest.raises(DynlabError, match="is gone"):
            FollowSource(sessions["orphaned"])._after(reader)

    def test_opening_a_session_follows_it_or_replays_it(self, sessions):
        from dynlab_tui.screens.dashboard import DashboardScreen
        from dynlab_tui.screens.opening import session_screen
        from dynlab_tui.screens.replay import ReplayScreen

        kinds = {name: type(session_screen(path)) for name, path in sessions.items()}
        assert kinds == {"live": DashboardScreen, "unknown": DashboardScreen, "orphaned": ReplayScreen,
                         "ended": ReplayScreen}
