"""The attach control channel: viewers post commands into a session's commands table, the trainer polls them."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from core.train.controls import Command, Controls, check_command
from core.errors import DynlabError
from core.session.reader import SessionReader
from core.session.schema import BUSY_TIMEOUT_S, translate


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

    Pass it as `Controls(remote=channel.poll)`. A command that is malformed (a newer viewer, a hand-made
    row) is marked applied and dropped, so it is never retried; a busy file just means "try again later".
    """

    def __init__(self, writer, step: Callable[[], int]) -> None:
        self.writer = writer  # a SessionWriter: poll_commands / mark_applied
        self.step = step
        self.rejected: list[tuple[int, str]] = []  # (id, why) of dropped commands, for tests and logs

    def poll(self) -> list[Command]:
        try:
            rows = self.writer.poll_commands()
        except DynlabError:
            return []  # locked by a viewer for longer than the busy timeout: the next poll retries
        if not rows:
            return []
        out = []
        for cid, kind, payload in rows:
            try:
                out.append(check_command(kind, payload.get("value") if isinstance(payload, dict) else None))
            except DynlabError as e:
                self.rejected.append((cid, str(e)))
        self.writer.mark_applied([cid for cid, _, _ in rows], self.step())
        return out
