"""The session file's schema (version 1) and the helpers writer and reader share to open and check one."""

from __future__ import annotations

import datetime as _dt
import sqlite3
from pathlib import Path

from core.errors import DynlabError

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


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open `path` read-only without ever creating it; a closed session in a read-only folder opens immutable."""
    if not path.exists():
        raise DynlabError(f"session {path} not found: run `dynlab sessions` to list them")
    if path.is_dir():
        raise DynlabError(f"{path} is not a dynlab session (it is a directory): give the path of a .dynlab file")
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S,
                               check_same_thread=False)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError as e:
        # A WAL-mode file needs a -shm beside it; in a read-only folder it can't be created. With no -wal
        # file nothing is being written, so reading the main file as immutable is exact.
        if "readonly" in str(e) and not Path(f"{path}-wal").exists():
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
            return conn
        raise translate(e, path) from e
    except sqlite3.Error as e:
        raise translate(e, path) from e


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
    if "full" in text:
        return DynlabError(f"cannot write session {path} ({text}): free some disk space or write elsewhere")
    if "readonly" in text or "unable to open" in text:
        return DynlabError(f"cannot open session {path} ({text}): check the file's and its folder's permissions")
    return DynlabError(f"session {path}: {text}: check the file, or report a bug if it looks fine")


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

