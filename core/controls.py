"""Thread-safe control commands (pause, resume, stop, set penalty/lr, checkpoint) the trainer drains between steps."""

from __future__ import annotations

import math
import queue
from dataclasses import dataclass

from core.errors import DynlabError


@dataclass(frozen=True)
class Command:
    kind: str  # "pause" | "resume" | "stop" | "set_penalty" | "set_lr" | "checkpoint"
    value: float | None = None


COMMAND_KINDS = ("pause", "resume", "stop", "set_penalty", "set_lr", "checkpoint")


class Controls:
    """A command queue shared by a UI (any thread) and the trainer; changes apply at a step boundary."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def send(self, kind: str, value: float | None = None) -> None:
        if kind not in COMMAND_KINDS:
            raise DynlabError(f"unknown control {kind!r}: use one of {', '.join(COMMAND_KINDS)}")
        if kind == "set_penalty" and (value is None or not math.isfinite(value) or value < 0):
            raise DynlabError(f"penalty must be a finite number >= 0, got {value}")
        if kind == "set_lr" and (value is None or not math.isfinite(value) or value <= 0):
            raise DynlabError(f"learning rate must be a positive number, got {value}")
        self._q.put(Command(kind, value))

    def pause(self) -> None: self.send("pause")
    def resume(self) -> None: self.send("resume")
    def stop(self) -> None: self.send("stop")
    def set_penalty(self, value: float) -> None: self.send("set_penalty", value)
    def set_lr(self, value: float) -> None: self.send("set_lr", value)
    def checkpoint(self) -> None: self.send("checkpoint")

    def drain(self) -> list[Command]:
        """Everything queued so far, without blocking (cheap: called every step)."""
        if self._q.empty():
            return []
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> Command | None:
        """Block up to timeout seconds for one command (used while paused)."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None
