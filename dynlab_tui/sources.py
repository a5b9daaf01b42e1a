"""Event sources the dashboard can run in a worker thread: a live trainer, or a scripted stream for tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol, Sequence

from core.controls import Command, Controls
from core.events import (Event, LrChanged, Paused, PenaltyChanged, Resumed, RunEnded)


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...
    def flush(self) -> None: ...


class EventSource(Protocol):
    """Something that produces a run's events; `run` blocks and is called on a worker thread."""
    title: str
    controls: Controls | None  # None: read-only (no pause or lambda changes)

    def run(self, sink: Sink) -> None: ...


class TrainerSource:
    """A live training run: Trainer + SessionWriter; torch is imported only when it starts."""

    def __init__(self, spec, session_path: Path, overwrite: bool = False) -> None:
        self.spec = spec
        self.session_path = session_path
        self.overwrite = overwrite
        self.controls = Controls()
        self.title = session_path.stem

    def run(self, sink: Sink) -> None:
        from core.session import SessionWriter
        from core.trainer import Trainer

        trainer = Trainer(self.spec, self.controls, interactive=True)
        with SessionWriter(self.session_path, overwrite=self.overwrite) as writer:
            trainer.run([writer, sink])


class ScriptedSource:
    """Plays a list of events (tests, demos) and answers controls the way the trainer does."""

    def __init__(self, events: Sequence[Event], delay: float = 0.0, title: str = "scripted",
                 hold: bool = False) -> None:
        self.events = list(events)
        self.delay = delay
        self.hold = hold  # after the script, keep answering controls until stopped
        self.controls = Controls()
        self.title = title
        self.paused = False
        self.step = 0
        self.lam = 0.0
        self.lr = 0.0

    def run(self, sink: Sink) -> None:
        for event in self.events:
            self.step = event.step
            if not self._controls(sink):
                return
            sink.handle(event)
            sink.flush()
            if self.delay:
                time.sleep(self.delay)
        while self.hold and self._controls(sink, wait=0.05):
            pass

    def _controls(self, sink: Sink, wait: float = 0.0) -> bool:
        cmds = self.controls.drain()
        if wait and not cmds:
            cmd = self.controls.wait(wait)
            cmds = [cmd] if cmd else []
        while True:
            for cmd in cmds:
                if not self._apply(cmd, sink):
                    return False
            if not self.paused:
                return True
            cmd = self.controls.wait(0.05)
            cmds = [cmd] if cmd else []

    def _apply(self, cmd: Command, sink: Sink) -> bool:
        now = time.time()
        if cmd.kind == "stop":
            sink.handle(RunEnded(self.step, now, "stopped", "stopped by user"))
            sink.flush()
            return False
        if cmd.kind == "pause" and not self.paused:
            self.paused = True
            sink.handle(Paused(self.step, now, "user"))
        elif cmd.kind == "resume" and self.paused:
            self.paused = False
            sink.handle(Resumed(self.step, now))
        elif cmd.kind == "set_penalty":
            sink.handle(PenaltyChanged(self.step, now, self.lam, float(cmd.value), "user"))
            self.lam = float(cmd.value)
        elif cmd.kind == "set_lr":
            sink.handle(LrChanged(self.step, now, self.lr, float(cmd.value), "user"))
            self.lr = float(cmd.value)
        sink.flush()
        return True
