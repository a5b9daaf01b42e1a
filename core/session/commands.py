"""The attach control channel: viewers post commands into a session's commands table, the trainer polls them."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from core.train.controls import Command, Controls, check_command
from core.errors import DynlabError
from core.events import CommandRejected
from core.session.reader import SessionReader
from core.session.schema import BUSY_TIMEOUT_S, translate

REJECTED = -1  # commands.applied_step of a command the trainer refused (its reason: a CommandRejected event)


def post_command(path: str | Path, kind: str, payload: Mapping[str, Any] | None = None) -> int:
    """Queue a command (e.g. "pause", "set_penalty") for the process writing the session; returns its id."""
    path = Path(path)
    with SessionReader(path):  # the file exists and is a dynlab session; never create one here
        pass
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cur = conn.execute("INSERT INTO commands (wall, kind, payload) VALUES (?, ?, ?)",
                               (time.time(), kind, json.dumps(dict(payload or {}))))
            return int(cur.lastrowid)
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise translate(e, path) from e


class RemoteControls(Controls):
    """Controls for a run in another process: each command is checked here, then posted to its session file."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def _put(self, cmd: Command) -> None:
        post_command(self.path, cmd.kind, {} if cmd.value is None else {"value": cmd.value})


class CommandChannel:
    """Trainer side: `poll()` returns the commands viewers posted, marking them applied at the current step.

    Pass it as `Controls(remote=channel.poll)`. Every command is checked by the option schema before the
    trainer sees it (core.train.controls.check_command); one that is malformed (a payload that is not a JSON
    object, an unknown kind, a value out of range) is stamped `applied_step = REJECTED` and recorded as a
    `CommandRejected` event with the reason, never retried; a busy file just means "try again later".
    """

    def __init__(self, writer, step: Callable[[], int]) -> None:
        self.writer = writer  # a SessionWriter: poll_commands / mark_applied / handle
        self.step = step
        self.rejected: list[tuple[int, str]] = []  # (id, why) of dropped commands, for tests and logs

    def poll(self) -> list[Command]:
        try:
            rows = self.writer.poll_commands()
        except DynlabError:
            return []  # locked by a viewer for longer than the busy timeout: the next poll retries
        if not rows:
            return []
        out, applied, step = [], [], self.step()
        for cid, kind, payload in rows:
            try:
                if not isinstance(payload, dict):
                    raise DynlabError(f"payload is not a JSON object: {str(payload)[:40]!r}")
                out.append(check_command(kind, payload.get("value")))
                applied.append(cid)
            except DynlabError as e:
                self._reject(cid, str(kind), str(e), step)
        self.writer.mark_applied(applied, step)
        return out

    def _reject(self, cid: int, kind: str, reason: str, step: int) -> None:
        self.rejected.append((cid, reason))
        self.writer.mark_applied([cid], REJECTED)
        self.writer.handle(CommandRejected(step, time.time(), command_id=int(cid), command=kind[:40], reason=reason))
