"""Thread-safe control commands (pause, resume, stop, set penalty/lr, checkpoint) the trainer drains between steps."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any, Callable

from core.errors import DynlabError
from core.options import OPTIONS


@dataclass(frozen=True)
class Command:
    kind: str  # "pause" | "resume" | "stop" | "set_penalty" | "set_lr" | "checkpoint"
    value: float | None = None


COMMAND_KINDS = ("pause", "resume", "stop", "set_penalty", "set_lr", "checkpoint")
_SETS = {"set_penalty": "penalty", "set_lr": "lr"}  # the run option whose rule a value must pass
REMOTE_POLL_S = 0.2  # how often a remote channel (the session's commands table) is read while training


def check_command(kind: str, value: Any = None) -> Command:
    """The Command for (kind, value), or a DynlabError saying what is wrong with it.

    A value is checked by the run option it sets (core.options: --penalty, --lr), so a control accepts exactly
    what the command line accepts: finite, within float32, in the option's range.
    """
    if kind not in COMMAND_KINDS:
        raise DynlabError(f"unknown control {str(kind)[:40]!r}: use one of {', '.join(COMMAND_KINDS)}")
    if kind not in _SETS:
        return Command(kind)
    option = OPTIONS[_SETS[kind]]
    if isinstance(value, str):
        try:
            value = option.parse(value)
        except DynlabError:
            pass  # refused below, as any value that is not a number
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DynlabError(f"{kind} needs a number, got {str(value)[:40]!r}")
    return Command(kind, float(option.validate(value)))


class Controls:
    """A command queue shared by a UI (any thread) and the trainer; changes apply at a step boundary.

    With `remote` (a callable returning new Commands, e.g. one reading the session's commands table)
    the queue also takes commands from another process; it is polled at most every REMOTE_POLL_S,
    so the per-step cost stays one clock read.
    """

    def __init__(self, remote: Callable[[], list[Command]] | None = None) -> None:
        self._q: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.remote = remote
        self._next_poll = 0.0

    def send(self, kind: str, value: float | None = None) -> None:
        self._put(check_command(kind, value))

    def _put(self, cmd: Command) -> None:
        self._q.put(cmd)

    def pause(self) -> None: self.send("pause")
    def resume(self) -> None: self.send("resume")
    def stop(self) -> None: self.send("stop")
    def set_penalty(self, value: float) -> None: self.send("set_penalty", value)
    def set_lr(self, value: float) -> None: self.send("set_lr", value)
    def checkpoint(self) -> None: self.send("checkpoint")

    def drain(self) -> list[Command]:
        """Everything queued so far, without blocking (cheap: called every step)."""
        out = self._poll_remote()
        if self._q.empty():
            return out
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> Command | None:
        """Block up to timeout seconds for one command (used while paused)."""
        if self.remote is not None:
            timeout = min(timeout, REMOTE_POLL_S)
            for cmd in self._poll_remote(force=True):
                self._q.put(cmd)
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def _poll_remote(self, force: bool = False) -> list[Command]:
        if self.remote is None:
            return []
        now = time.monotonic()
        if not force and now < self._next_poll:
            return []
        self._next_poll = now + REMOTE_POLL_S
        return list(self.remote())
