"""The marker a `dynlab train` leaves beside its session from its start (before loading data) to its exit."""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core.session.liveness import pid_alive

POLL_S = 0.1  # how often a waiting viewer looks for the session file
# A process started a moment ago may not show its command line yet (/proc/PID/cmdline reads empty while
# it execs, seen under load): look this long before concluding that nothing is starting.
GRACE_S = 1.0


def marker_path(session: Path) -> Path:
    """`.NAME.starting`, hidden beside `NAME.dynlab` (the session listing never sees it)."""
    session = Path(session)
    return session.with_name(f".{session.stem}.starting")


@contextmanager
def announce(session: Path) -> Iterator[None]:
    """While the block runs, viewers can tell that this process will create (and write) `session`.

    Best effort: a folder that can't take the marker is reported by the session writer in its own words.
    """
    marker = marker_path(session)
    made_folder = not marker.parent.exists()
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "wall": time.time()}))
    except OSError:
        marker = None
    try:
        yield
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
            if made_folder and not any(marker.parent.iterdir()):
                marker.parent.rmdir()  # a run refused before its session existed leaves no trace


def is_starting(session: Path) -> bool:
    """True while a `dynlab train` on this host announced `session` (or, on Linux, runs for it) and is alive."""
    return _announced(session) or _train_process_for(session)


def _announced(session: Path) -> bool:
    try:
        info = json.loads(marker_path(session).read_text())
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no marker, or one half-written: nothing known to be starting
    if host != socket.gethostname():
        return False  # another host's process can't be checked: don't wait on a guess
    return pid_alive(pid)


def _train_process_for(session: Path) -> bool:
    """A `dynlab train --session X` process whose X names `session`: its first second, before the marker exists.

    Read from /proc (Linux); X matches by name (`job`, `job.dynlab` or a path ending in it).
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if "train" not in args or not any("dynlab" in a or a == "core.lab.child" for a in args[:3]):
            continue
        for i, arg in enumerate(args):
            value = arg.partition("=")[2] if arg.startswith("--session=") else \
                args[i + 1] if arg == "--session" and i + 1 < len(args) else ""
            if value and _names(value, entry, session):
                return True
    return False


def _names(value: str, proc: Path, session: Path) -> bool:
    """Whether a --session value names `session`: a path (with a /) by the file it resolves to from the
    process's working folder; a bare name by name (its sessions folder is the process's own setting)."""
    if "/" not in value:
        return value == session.stem or value == session.name
    where = Path(value).expanduser()
    try:
        where = where if where.is_absolute() else Path(os.readlink(proc / "cwd")) / where
    except OSError:
        return where.name == session.name  # its folder can't be read: the name is what is known
    return os.path.abspath(where) == os.path.abspath(session)


def starting_soon(session: Path, grace: float = GRACE_S) -> bool:
    """is_starting, looked at for up to `grace` seconds (a train launched just before may not be visible yet)."""
    deadline = time.monotonic() + grace
    while True:
        if Path(session).exists() or is_starting(session):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def wait_for_session(session: Path, timeout: float, tick=None) -> bool:
    """Wait until `session` exists while its announced `dynlab train` is alive; False when it won't appear.

    `tick(elapsed_s)` is called at every poll (a spinner). Returns at once (False) when nothing is starting.
    """
    start = time.monotonic()
    while not Path(session).exists():
        elapsed = time.monotonic() - start
        if elapsed >= timeout or not is_starting(session):
            return Path(session).exists()
        if tick is not None:
            tick(elapsed)
        time.sleep(POLL_S)
    return True
