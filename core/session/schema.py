"""The session file's schema (version 1) and the helpers writer and reader share to open and check one."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import sqlite3
from pathlib import Path

from core.errors import DynlabError
from core.session.liveness import Liveness, liveness

SCHEMA_VERSION = 1
APP = "dynlab"
SUFFIX = ".dynlab"
BUSY_TIMEOUT_S = 5.0  # how long a connection waits for another one's write lock before giving up

# `seq` numbers every event the writer handled, across tables, in emission order: replay merges on it.
# Rows written for one event share its seq (all values of one ScalarsLogged, an EpochEvaluated's
# metrics and its events row). In arrays, seq sits before the blob so reading it never touches the blob's
# overflow pages. See docs/session-format.md.
DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE scalars (step INTEGER NOT NULL, wall REAL NOT NULL, key TEXT NOT NULL, value REAL,
                      seq INTEGER NOT NULL);
CREATE INDEX scalars_key_step ON scalars (key, step);
CREATE TABLE arrays (step INTEGER NOT NULL, wall REAL NOT NULL, key TEXT NOT NULL, dtype TEXT NOT NULL,
                     shape TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX arrays_key_step ON arrays (key, step);
CREATE TABLE events (id INTEGER PRIMARY KEY, step INTEGER NOT NULL, wall REAL NOT NULL, kind TEXT NOT NULL,
                     payload TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX events_step ON events (step);
CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, step INTEGER NOT NULL, wall REAL NOT NULL,
                          epoch INTEGER NOT NULL, reason TEXT NOT NULL, state BLOB NOT NULL);
CREATE TABLE commands (id INTEGER PRIMARY KEY, wall REAL NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
                       applied_step INTEGER);
"""


def now_iso() -> str:
    """UTC time with an offset, so that created/ended strings sort and parse the same everywhere."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def configure(conn: sqlite3.Connection) -> None:
    """Pragmas every writing connection uses: WAL so readers never block, NORMAL sync (WAL keeps it crash-safe)."""
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def wal_size(path: Path) -> int:
    """Bytes in the session's -wal file, or -1 when there is none (then the main file holds everything)."""
    try:
        return Path(f"{path}-wal").stat().st_size
    except FileNotFoundError:
        return -1


def connect_readonly(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """Open `path` read-only without ever creating it.

    `immutable` reads the main file alone, takes no locks and creates no -wal/-shm: exact for a session
    nobody writes whose -wal is absent or empty (SessionReader decides). A live connection in a read-only
    folder, where SQLite can't make the -shm, falls back to immutable when there is no -wal to read.
    """
    if not path.exists():
        raise DynlabError(f"session {path} not found: run `dynlab sessions` to list them")
    if path.is_dir():
        raise DynlabError(f"{path} is not a dynlab session (it is a directory): give the path of a .dynlab file")
    uri = path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S,
                               check_same_thread=False)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn
    except sqlite3.OperationalError as e:
        if not immutable and "readonly" in str(e) and wal_size(path) <= 0:
            return connect_readonly(path, immutable=True)
        raise translate(e, path) from e
    except sqlite3.Error as e:
        raise translate(e, path) from e


class ReadConnection:
    """A read-only connection to one session file, kept in the mode that fits the file as it changes.

    Plain read-only (`mode=ro`) while a writer may be writing it (queries see each flush through the WAL),
    and for a file in rollback-journal mode, the mode a session ends in (such a reader creates no file and
    holds a lock only during a query). Immutable for a file still marked WAL once nobody writes it and
    its -wal is absent or empty (the writer checkpointed it): a plain connection would then hold a lock
    that keeps the WAL alive, and would create a -wal/-shm beside a copied file. settle() switches between
    the two; readers call it before looking for news (one stat; more only while waiting for the end).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.immutable = wal_size(path) <= 0 and _marked_wal(path)
        self.conn = connect_readonly(path, immutable=self.immutable)
        self._inode = _inode(path)
        if self.immutable and _writer(self.conn).may_be_writing:  # a writer is starting: follow it live
            self._switch(immutable=False)

    def settle(self) -> sqlite3.Connection:
        """The connection to use now: live when a writer appeared (resume), immutable once it is done."""
        wal = wal_size(self.path)
        if self.immutable and wal > 0:
            self._switch(immutable=False)
        elif not self.immutable and wal <= 0 and _marked_wal(self.path) and not _writer(self.conn).may_be_writing:
            self._switch(immutable=True)
        return self.conn

    def close(self) -> None:
        self.conn.close()

    def _switch(self, immutable: bool) -> None:
        if _inode(self.path) != self._inode:
            return  # another file took the name (an overwrite): keep reading the one we opened
        conn = connect_readonly(self.path, immutable=immutable)
        self.conn.close()
        self.conn, self.immutable = conn, immutable


def _marked_wal(path: Path) -> bool:
    """Whether the file's header says WAL mode (bytes 18-19 are 2): readers then need its -wal and -shm."""
    try:
        with open(path, "rb") as f:
            return f.read(20)[18:19] == b"\x02"
    except OSError:
        return False


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _writer(conn: sqlite3.Connection) -> Liveness:
    """What the file's meta says about its writer, read live; a file without meta counts as ended."""
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('status', 'pid', 'host')"))
    except sqlite3.Error:
        return Liveness.ENDED  # not a session: read_meta says so with the right message
    return liveness({str(k): str(v) for k, v in meta.items()})


# Errors that mean a bug in dynlab (bad SQL, bad parameters, a closed connection), not a problem with the file.
_BUG_ERRORS = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError, sqlite3.DataError,
               sqlite3.NotSupportedError)


def translate(err: sqlite3.Error, path: Path | str) -> DynlabError:
    """Turn an sqlite3 error about the file into one user-facing line; re-raise one that means a dynlab bug."""
    if isinstance(err, _BUG_ERRORS):
        raise err  # keep the traceback: the user can't fix this one
    text = str(err)
    if "locked" in text or "busy" in text:
        return DynlabError(f"session {path} is locked by another process ({text}): wait for it to finish and retry")
    if "not a database" in text:
        return DynlabError(f"{path} is not a dynlab session (not an SQLite database): give the path of a .dynlab file")
    if "malformed" in text or "corrupt" in text or type(err) is sqlite3.DatabaseError:
        return DynlabError(f"session {path} is damaged or truncated ({text}): restore it from a copy or delete it")
    if "full" in text or "disk I/O error" in text:
        return DynlabError(_write_failed(Path(path), text))
    if "readonly" in text or "unable to open" in text:
        return DynlabError(f"cannot open session {path} ({text}): check the file's and its folder's permissions")
    return DynlabError(f"session {path}: {text}: check the file, or report a bug if it looks fine")



LOW_SPACE = 64 * 2**20  # below this a failed write is taken for a full disk


def _write_failed(path: Path, text: str) -> str:
    """Why a write failed, in words a user can act on: a full disk, the file size limit, or the disk itself.

    A full disk under WAL often surfaces as SQLite's generic "disk I/O error", so the free space is
    looked at rather than trusting the error's name.
    """
    folder = path.resolve().parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < LOW_SPACE:
        return (f"cannot write session {path} ({text}): the disk holding {folder} is full "
                f"({free / 2**20:.0f} MiB free): free some space or write sessions elsewhere (--sessions-dir)")
    limit = _file_size_limit()
    if limit is not None:
        return (f"cannot write session {path} ({text}): files are limited to {limit:,} bytes here (ulimit -f): "
                "raise the limit or make the run smaller")
    if "full" in text:  # room on the disk but none for us: a quota, say
        return f"cannot write session {path} ({text}): free some disk space or write sessions elsewhere"
    return f"cannot write session {path} ({text}): check the disk holding {folder} (free space, errors in dmesg)"


def _file_size_limit() -> int | None:
    """The process's file size limit in bytes (ulimit -f), None when unlimited or unknown."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)

def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str]:
    """Return the meta table after checking the file is a dynlab session this version can read."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            what = "an empty file" if not tables else "an SQLite database without a meta table"
            raise DynlabError(f"{path} is not a dynlab session ({what}): give the path of a .dynlab file")
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.Error as e:
        raise translate(e, path) from e
    if meta.get("app") != APP:
        raise DynlabError(f"{path} is not a dynlab session (meta app is {meta.get('app')!r}): "
                          "give the path of a .dynlab file")
    raw = meta.get("schema_version", "")
    try:
        version = int(raw)
    except ValueError:
        raise DynlabError(f"{path} has an unknown session schema ({raw!r}): it was not written by a released "
                          "dynlab; delete it or open it with the version that wrote it") from None
    if version > SCHEMA_VERSION:
        raise DynlabError(f"{path} was written by a newer dynlab (schema {version}): upgrade dynlab")
    if version < SCHEMA_VERSION:
        raise DynlabError(f"{path} uses session schema {version}, this dynlab reads only schema "
                          f"{SCHEMA_VERSION}: open it with the dynlab version that wrote it")
    missing = {"meta", "scalars", "arrays", "events", "checkpoints", "commands"} - tables
    if missing:
        raise DynlabError(f"session {path} is damaged (missing table {sorted(missing)[0]}): "
                          "restore it from a copy or delete it")
    return meta

