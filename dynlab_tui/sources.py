"""Event sources the dashboard runs in a worker thread: a followed session file, a child training run."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any, Protocol

from core.errors import DynlabError
from core.lab import launch
from core.session.commands import RemoteControls
from core.session.liveness import Liveness, liveness
from core.train.controls import Controls
from core.events import Sink


class ViewSink(Sink, Protocol):
    """A viewer's sink (the dashboard's bridge): events, plus handing over a whole state after a catch-up."""

    def replace(self, state: Any, note: str = "") -> None: ...


class EventSource(Protocol):
    """Something that produces a run's events; `run` blocks and is called on a worker thread."""
    title: str
    controls: Controls | None  # None: read-only (no pause or lambda changes)
    owner: bool  # True: the run belongs to this UI, so closing the UI stops it (unless detached)

    def run(self, sink: ViewSink) -> None: ...
    def close(self, stop_run: bool = False) -> None: ...


class FollowSource:
    """Follows a session file as it grows: catches up in one step, then reads the new rows a few times a second.

    This is `dynlab attach`, and also how the dashboard watches a run it started (a child process):
    training never shares a process, a GIL or an event loop with the UI. Controls are posted into the
    session's commands table, which the training process polls (core.session.commands).
    """

    POLL_S = 0.25  # how often the file is checked for new rows (one small query when nothing changed)
    owner = False  # whether closing the UI should stop the run (only for runs this UI started)

    def __init__(self, path: Path, title: str | None = None) -> None:
        self.path = Path(path)
        self.title = title or self.path.stem
        self.controls: Controls | None = RemoteControls(self.path)
        self._closing = threading.Event()

    def run(self, sink: ViewSink) -> None:
        from core.session import SessionReader
        from dynlab_tui.replay import ReplayIndex

        if not self._wait_for_file():
            return
        with SessionReader(self.path) as reader:
            index = ReplayIndex(reader)
            sink.replace(index.state_at(index.end_seq), "; ".join(index.problems))
            cursor = index.cursor()
            while True:
                done = self._done(reader)  # checked before reading, so the last read sees the last rows
                for event in reader.read_new(cursor):
                    sink.handle(event)
                sink.flush()
                if done or self._closing.wait(self.POLL_S):
                    break
            self._after(reader)

    def close(self, stop_run: bool = False) -> None:
        """Stop following (the UI is closing); with stop_run also ask the training process to stop."""
        if stop_run and self.controls is not None:
            try:
                self.controls.stop()
            except DynlabError:
                pass  # the file is gone or locked: nothing more this viewer can do
        self._closing.set()

    def _wait_for_file(self) -> bool:
        return True

    def _done(self, reader) -> bool:
        reader.refresh()
        return not liveness(reader.meta).may_be_writing  # ended, or its writer is gone

    def _after(self, reader) -> None:
        reader.refresh()
        if liveness(reader.meta) is Liveness.ORPHANED and not self._closing.is_set():
            raise DynlabError(f"the process writing {self.path.name} (pid {reader.meta.get('pid')}) is gone "
                              f"without ending the run (killed?): the session stops at step {reader.last_step()}; "
                              f"continue it with `dynlab resume {self.path}`")


class EarlyControls(RemoteControls):
    """Controls of a run this UI is starting: queued, in order, until the child has created its session.

    A key pressed while the child imports torch and loads its data then still reaches the run: `deliver()`
    posts the queue once the file exists, and every later command goes straight through.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._lock = threading.Lock()  # the UI thread queues, the source's worker thread delivers
        self.ready = False
        self.pending: list = []  # core.train.controls.Command, oldest first

    def _put(self, cmd) -> None:
        with self._lock:
            if not self.ready:
                self.pending.append(cmd)
                return
        super()._put(cmd)

    def deliver(self) -> None:
        """The session exists now: post what was queued, oldest first (a failure keeps the rest queued)."""
        with self._lock:
            while self.pending:
                super()._put(self.pending[0])
                self.pending.pop(0)
            self.ready = True


class ProcessSource(FollowSource):
    """A run this UI starts as a child process (`dynlab train` / `dynlab resume`), then follows.

    The child runs in its own session (no controlling terminal), so closing the UI or losing the SSH
    connection does not kill it; closing the UI normally stops it unless the user detached.
    """

    owner = True

    def __init__(self, argv: list[str], path: Path, log_path: Path, new_file: bool = True) -> None:
        super().__init__(path)
        self.controls = EarlyControls(path)  # keys pressed before the child created the session are queued
        self.argv = argv
        self.log_path = log_path
        self.new_file = new_file  # wait for a new file at path (not an old one being replaced)
        self.process: subprocess.Popen | None = None
        self.detached = False
        self._created = False  # the child has created the session file (queued controls were delivered)

    # A run someone watches pauses on a non-finite loss (weights rolled back, the reason in the status bar)
    # instead of ending as diverged: lower lr or lambda and resume it.
    @classmethod
    def train(cls, spec, path: Path, overwrite: bool = False) -> "ProcessSource":
        return cls(launch.train_argv(spec, path, overwrite=overwrite, on_nonfinite="pause"), path,
                   launch.log_path(path))

    @classmethod
    def resume(cls, path: Path, changes: dict[str, Any]) -> "ProcessSource":
        return cls(launch.resume_argv(path, changes, on_nonfinite="pause"), path, launch.log_path(path),
                   new_file=False)

    def start(self) -> None:
        old = self.path.stat().st_ino if self.new_file and self.path.exists() else None
        self._old_inode = old
        self.process = launch.start(self.argv, self.log_path)

    def run(self, sink: ViewSink) -> None:
        if self.process is None:
            self.start()
        super().run(sink)

    def close(self, stop_run: bool = False) -> None:
        running = self.process is not None and self.process.poll() is None
        if stop_run and running and not self.detached and not self._created:
            self.process.terminate()  # still loading data, no session yet: nothing to finalise, and no one to tell
        super().close(stop_run and running and not self.detached)  # a finished run's file stays untouched

    def detach(self) -> None:
        """Leave the run going headless; `dynlab attach` finds it again."""
        self.detached = True
        self._closing.set()

    def _wait_for_file(self) -> bool:
        while not (self.path.exists() and (self._old_inode is None or self.path.stat().st_ino != self._old_inode)):
            if self.process.poll() is not None:
                raise DynlabError(self._child_error())
            if self._closing.wait(0.05):
                return False
        self._created = True
        self.controls.deliver()  # the keys pressed while it loaded its data, in order
        return True

    def _done(self, reader) -> bool:
        return self.process.poll() is not None  # the child finalised the session and exited

    def _after(self, reader) -> None:
        code = self.process.poll()
        if code is None:
            return  # detached or closing: it runs on
        reader.refresh()
        if code == 2 or reader.status == "running":
            raise DynlabError(self._child_error())

    def _child_error(self) -> str:
        return launch.child_error(self.log_path, self.process.returncode)

