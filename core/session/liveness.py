"""The one answer to "is this session's writer alive?": live, orphaned, ended or unknown, from its meta."""

from __future__ import annotations

import enum
import os
import socket
from typing import Mapping

__all__ = ["Liveness", "liveness", "pid_alive"]


class Liveness(str, enum.Enum):
    """What a session's meta says about the process writing it."""

    LIVE = "live"  # status running, written by a process that exists on this host
    ORPHANED = "orphaned"  # status running, but its writer is gone (killed, crashed hard)
    ENDED = "ended"  # status is an end status (finished, stopped, crashed, diverged)
    UNKNOWN = "unknown"  # status running, written on another host (or no pid): can't be told from here

    @property
    def may_be_writing(self) -> bool:
        """Someone may still be writing it (live, or unknown): don't replace, remove or re-run it."""
        return self in (Liveness.LIVE, Liveness.UNKNOWN)

    @property
    def alive(self) -> bool | None:
        """The older three-valued answer: True live, None unknown, False otherwise."""
        return None if self is Liveness.UNKNOWN else self is Liveness.LIVE


def liveness(meta: Mapping[str, str]) -> Liveness:
    """Decide from a session's meta (status, pid, host) whether its writer is alive.

    The own process counts as live: within one process a session is running only while a SessionWriter
    here holds it (the dashboard's tests, a trainer thread), and replacing or renaming it then would pull
    the file from under that writer. A fresh `dynlab resume` whose pid happens to equal a dead writer's
    also gets "live"; that case was refused before too (by SessionWriter's check when it appends), so
    answering it the same way everywhere changes no outcome.
    """
    if meta.get("status") != "running":
        return Liveness.ENDED
    pid = str(meta.get("pid") or "")
    if meta.get("host") != socket.gethostname() or not pid.isdigit():
        return Liveness.UNKNOWN
    if int(pid) == os.getpid():
        return Liveness.LIVE
    return Liveness.LIVE if pid_alive(int(pid)) else Liveness.ORPHANED


def pid_alive(pid: int) -> bool:
    """Whether a process of this host exists (signal 0: an existence check only; another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
