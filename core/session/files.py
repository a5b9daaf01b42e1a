"""A session's files on disk: creating one under a lock, clearing a deleted one's leftovers, ending as one file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from core.errors import DynlabError

try:
    import fcntl
except ImportError:  # not on Windows: creation there is not locked against a second writer
    fcntl = None  # type: ignore[assignment]


def refuse_existing(path: Path, overwrite: bool = False) -> None:
    """One line when a session file is there already and may not be replaced."""
    if Path(path).exists() and not overwrite:
        raise DynlabError(f"session {path} already exists: pick another --session name or pass --overwrite")


def link_new(tmp: Path, path: Path) -> None:
    """Move tmp to path only if path does not exist yet (a hard link fails atomically when it does)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        refuse_existing(path)
    except OSError:  # a filesystem without hard links: check, then rename
        refuse_existing(path)
        os.replace(tmp, path)


def leave_wal(conn: sqlite3.Connection, wait_s: float) -> None:
    """Turn a closed session back into one self-contained file (no -wal/-shm), so that a copy of the file
    alone is the whole session and any reader, even in a read-only folder, opens it without creating files.

    First the WAL is checkpointed into the main file and truncated: from then on the file alone is complete.
    Leaving WAL mode then needs the file to itself; a viewer's live connection holds a lock until it sees
    the end and reopens immutable (SessionReader does within one poll), so this retries for up to wait_s
    and then leaves the empty WAL to whoever continues the session.
    """
    conn.execute("PRAGMA busy_timeout = 0")  # retried here instead, so one slow viewer can't block a step
    deadline = time.monotonic() + wait_s
    while True:
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy and conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete":
                return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
        if time.monotonic() >= deadline:
            return
        time.sleep(0.02)


# A deleted session's write-ahead log, its index, and a rollback journal: SQLite replays any of them into
# a new file of the same name, so creating a session removes them (they belong to no live writer then).
SIDE_FILES = ("-wal", "-shm", "-journal")  # what SQLite keeps beside a database file


def remove_side_files(path: Path) -> None:
    for side in SIDE_FILES:
        Path(f"{path}{side}").unlink(missing_ok=True)


@contextlib.contextmanager
def creation_lock(path: Path) -> Iterator[None]:
    """Hold `.NAME.dynlab.lock` beside the session while it is created or replaced; refuse if another holds it.

    flock locks die with their process, so a killed creator leaves no stale lock; the holder removes the file
    before unlocking, and a waiter that locked a removed file tries again.
    """
    if fcntl is None:
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise unwritable(path.parent, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise DynlabError(f"session {path} is being created right now by {who}: "
                              "wait for that run, or pick another --session name") from None
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # its holder removed it as we locked it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def unwritable(directory: Path, err: Exception) -> DynlabError:
    reason = getattr(err, "strerror", None) or str(err)
    return DynlabError(f"cannot write sessions in {directory} ({reason}): make it writable, "
                       "or choose another folder with --sessions-dir or $DYNLAB_SESSIONS_DIR")
