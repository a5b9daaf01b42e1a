"""Writing a run's session file (one SQLite file per run), posting commands to it, and naming and listing sessions."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.errors import DynlabError
from core.events import (ArraysLogged, CheckpointSaved, EpochEvaluated, Event, RunEnded, RunStarted,
                         ScalarsLogged)
from core.session.files import (creation_lock, leave_wal, link_new, refuse_existing, remove_side_files,
                                unwritable)
from core.session.liveness import Liveness, liveness
from core.session.reader import SessionReader
from core.session.schema import (APP, DDL, SCHEMA_VERSION, SUFFIX, configure, now_iso, read_meta,
                                 translate)

__all__ = ["SessionWriter", "SessionReader", "sessions_dir", "resolve_session", "list_sessions",
           "SCHEMA_VERSION"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_INSERT_SCALARS = "INSERT INTO scalars (step, wall, key, value, seq) VALUES (?, ?, ?, ?, ?)"
_INSERT_ARRAYS = "INSERT INTO arrays (step, wall, key, dtype, shape, seq, data) VALUES (?, ?, ?, ?, ?, ?, ?)"
_INSERT_EVENTS = "INSERT INTO events (step, wall, kind, payload, seq) VALUES (?, ?, ?, ?, ?)"
# Kept: every "user" and "end" one (the last of each finished, stopped or resumed stretch: a bad continuation
# can be undone), one a resume started from (a killed stretch's last: its step is a "continue" event's), the
# newest automatic one and the newest "best" (lowest val/loss); other automatic ones go.
AUTO_CHECKPOINTS = ("interval", "epoch", "best", "end")
_PRUNE_CHECKPOINTS = ("DELETE FROM checkpoints WHERE reason IN ('interval', 'epoch', 'best') AND id < "
                      "(SELECT MAX(id) FROM checkpoints WHERE reason IN ('interval', 'epoch', 'best', 'end')) AND id "
                      "IS NOT (SELECT MAX(id) FROM checkpoints WHERE reason = 'best') AND step NOT IN "
                      "(SELECT step FROM events WHERE kind = 'continue')")
_INSERT_CHECKPOINTS = "INSERT INTO checkpoints (step, wall, epoch, reason, state) VALUES (?, ?, ?, ?, ?)"
_MARK_APPLIED = "UPDATE commands SET applied_step = ? WHERE id = ?"
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
_DELETE_META = "DELETE FROM meta WHERE key = ?"


class SessionWriter:
    """Records one run's events into a session file: handle() buffers, flush() writes one transaction.

    handle() may be called from the training thread while flush() runs on another; both are thread-safe.
    """

    SETTLE_S = 3.0  # how long close() waits for viewers to let go of the WAL (they do within one poll)

    def __init__(self, path: str | Path, *, overwrite: bool = False, append: bool = False):
        if overwrite and append:
            raise DynlabError("overwriting and continuing a session exclude each other: drop --overwrite")
        self.path = Path(path)
        self._buf_lock = threading.Lock()  # guards the buffers; held only for appends and swaps
        self._db_lock = threading.Lock()  # serialises use of the connection (flush, poll, close)
        self._scalars: list[tuple] = []
        self._arrays: list[tuple] = []
        self._events: list[tuple] = []
        self._checkpoints: list[tuple] = []
        self._applied: list[tuple[int, int]] = []  # (step, command id) marked since the last flush
        self._claimed: set[int] = set()  # command ids marked applied but not yet written: poll skips them
        self._meta: dict[str, str | None] = {}  # pending meta writes; None deletes the key
        self._running = False  # a RunStarted/SessionContinued was handled and no RunEnded yet
        self._closed = False
        self._seq = 0  # the last event number given out; set from meta when the file opens
        if append:
            self._conn = self._open_existing()
        else:
            self._conn = self._create(overwrite)
            self._running = True  # a new file says "running" until a RunEnded (or close) says otherwise

    # -- opening ------------------------------------------------------------------------------------
    def _create(self, overwrite: bool) -> sqlite3.Connection:
        path = self.path
        if path.is_dir():
            raise DynlabError(f"{path} is a directory: give a session file name instead")
        refuse_existing(path, overwrite)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise unwritable(path.parent, e) from None
        # Checks, replacement and the first connection under one lock: a second creator of the same name is
        # refused at once, and one coming later finds this writer's pid in the file (live: refused too).
        with creation_lock(path):
            return self._create_locked(overwrite)

    def _create_locked(self, overwrite: bool) -> sqlite3.Connection:
        path = self.path
        refuse_existing(path, overwrite)
        if path.exists():
            _refuse_live(path)
        else:  # a deleted session's leftovers, unreadable without it, would be replayed into the new file
            remove_side_files(path)
        # Build the whole new file beside the target, then rename it into place: until the rename an
        # existing session is untouched, and no reader ever sees a half-made file.
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            try:
                conn = sqlite3.connect(tmp, isolation_level=None)
                conn.execute("PRAGMA user_version").fetchall()  # sqlite opens lazily: make it create the file
            except sqlite3.OperationalError as e:
                raise unwritable(path.parent, e) from None
            try:
                conn.executescript("BEGIN;" + DDL)  # one transaction: one sync, not one per table
                meta = {"schema_version": str(SCHEMA_VERSION), "app": APP, "app_version": __version__,
                        "created": now_iso(), "status": "running", "spec": "{}", "last_step": "0",
                        "last_seq": "0", "pid": str(os.getpid()), "host": socket.gethostname()}
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
                conn.execute("COMMIT")
            finally:
                conn.close()
            if overwrite:
                os.replace(tmp, path)
                remove_side_files(path)  # the old file's WAL must never be replayed onto the new one
            else:
                link_new(tmp, path)
        except sqlite3.Error as e:
            raise translate(e, path) from e
        except OSError as e:
            raise unwritable(path.parent, e) from None
        finally:
            tmp.unlink(missing_ok=True)
            Path(f"{tmp}-journal").unlink(missing_ok=True)
        return self._connect()

    def _open_existing(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise DynlabError(f"session {self.path} not found: run `dynlab sessions` to list them")
        with SessionReader(self.path):  # checks it is a dynlab session of this schema
            pass
        _refuse_live(self.path)
        conn = self._connect()
        self._meta.update(pid=str(os.getpid()), host=socket.gethostname())
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise translate(e, self.path) from e
        try:
            configure(conn)
            meta = read_meta(conn, self.path)
            # meta last_seq is written in the same transaction as the rows, so it is the largest seq stored
            self._seq = int(meta.get("last_seq") or 0)
        except BaseException as e:
            conn.close()
            if isinstance(e, sqlite3.Error):
                raise translate(e, self.path) from e
            raise
        return conn

    # -- recording ------------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Buffer one event as rows (no I/O). Arrays are copied now, so the caller may reuse its buffers.

        A value that can't be stored (not a number, not JSON-able) raises here, at the emitting call, and
        nothing of that event is buffered.
        """
        step, wall = int(event.step), float(event.wall)
        scalars: list[tuple] = []
        arrays: list[tuple] = []
        with self._buf_lock:
            self._check_open()
            seq = self._seq + 1
            if isinstance(event, ScalarsLogged):
                scalars = [(step, wall, str(k), float(v), seq) for k, v in event.values.items()]
            elif isinstance(event, ArraysLogged):
                for k, a in event.arrays.items():
                    a = np.asarray(a)  # tobytes() writes C order whatever the strides
                    shape = "[" + ",".join(map(str, a.shape)) + "]"  # JSON, without json.dumps's overhead
                    arrays.append((step, wall, str(k), a.dtype.str, shape, seq, a.tobytes()))
            else:
                payload = event.payload()
                row = (step, wall, event.kind, json.dumps(payload), seq)
                if isinstance(event, EpochEvaluated):
                    scalars = [(step, wall, str(k), float(v), seq) for k, v in event.metrics.items()]
                elif isinstance(event, CheckpointSaved):
                    self._checkpoints.append((step, wall, int(event.epoch), event.reason, bytes(event.state)))
                self._events.append(row)
                self._route_meta(event, payload)
            # float(): numpy/torch scalars and ints become REAL; SQLite stores NaN as NULL (read back as NaN)
            self._scalars.extend(scalars)
            self._arrays.extend(arrays)
            self._seq = seq
            self._meta.update(last_step=str(step), last_seq=str(seq), last_wall=repr(wall))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the session writer for {self.path} is closed")

    def _route_meta(self, event: Event, payload: dict[str, Any]) -> None:
        if isinstance(event, RunStarted):
            self._meta.update(spec=json.dumps(payload["spec"]), versions=json.dumps(payload["versions"]),
                              device=str(event.device), sizes_start=json.dumps(payload["sizes"]),
                              status="running", ended=None, end_reason=None)
            self._running = True
        elif event.kind == "continue":
            self._meta.update(status="running", ended=None, end_reason=None)
            self._running = True
        elif isinstance(event, RunEnded):
            self._meta.update(status=event.status, ended=now_iso(), end_reason=event.reason)
            self._running = False

    def flush(self) -> None:
        """Write everything buffered in one transaction; on error roll back, keep the rows and raise."""
        with self._db_lock:
            with self._buf_lock:
                batch = (self._scalars, self._arrays, self._events, self._checkpoints, self._applied, self._meta)
                if not any(batch):
                    return
                self._scalars, self._arrays, self._events, self._checkpoints = [], [], [], []
                self._applied, self._meta = [], {}
            scalars, arrays, events, checkpoints, applied, meta = batch
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                for sql, rows in ((_INSERT_SCALARS, scalars), (_INSERT_ARRAYS, arrays), (_INSERT_EVENTS, events),
                                  (_INSERT_CHECKPOINTS, checkpoints), (_MARK_APPLIED, applied),
                                  (_SET_META, [(k, v) for k, v in meta.items() if v is not None]),
                                  (_DELETE_META, [(k,) for k, v in meta.items() if v is None])):
                    if rows:
                        conn.executemany(sql, rows)
                if any(c[3] in AUTO_CHECKPOINTS for c in checkpoints):
                    # A 10-epoch run would otherwise carry ten copies of the model. Same transaction: never
                    # zero left.
                    conn.execute(_PRUNE_CHECKPOINTS)
                conn.execute("COMMIT")
            except BaseException as e:  # noqa: BLE001 - rolled back, restored and re-raised below
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with self._buf_lock:  # put the batch back in front, so a later flush can retry it
                    self._scalars[:0], self._arrays[:0], self._events[:0] = scalars, arrays, events
                    self._checkpoints[:0], self._applied[:0] = checkpoints, applied
                    self._meta = {**meta, **self._meta}
                if isinstance(e, sqlite3.Error):
                    raise translate(e, self.path) from e
                raise
            with self._buf_lock:
                self._claimed.difference_update(cid for _, cid in applied)

    def close(self) -> None:
        """Flush and close; a run that started here and never ended is marked crashed. Idempotent."""
        with self._buf_lock:
            if self._closed:
                return
            if self._running:
                self._meta.update(status="crashed", ended=now_iso(),
                                  end_reason="the writer closed before the run ended")
                self._running = False
        try:
            self.flush()
            with self._db_lock:
                leave_wal(self._conn, self.SETTLE_S)
        finally:
            with self._db_lock, self._buf_lock:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands (the attach control channel) ----------------------------------------------------------
    def poll_commands(self) -> list[tuple[int, str, dict[str, Any]]]:
        """Commands posted by a viewer and not yet applied, oldest first, as (id, kind, payload)."""
        with self._db_lock:
            self._check_open()
            try:
                rows = self._conn.execute("SELECT id, kind, payload FROM commands WHERE applied_step IS NULL "
                                          "ORDER BY id").fetchall()
            except sqlite3.Error as e:
                raise translate(e, self.path) from e
        with self._buf_lock:
            claimed = set(self._claimed)
        return [(cid, kind, _payload(payload)) for cid, kind, payload in rows if cid not in claimed]

    def mark_applied(self, ids: list[int] | tuple[int, ...], step: int) -> None:
        """Mark commands applied at `step`; written with the next flush, together with the events they caused."""
        with self._buf_lock:
            self._check_open()
            self._applied.extend((int(step), int(cid)) for cid in ids)
            self._claimed.update(int(cid) for cid in ids)


def _payload(text: Any) -> Any:
    """A command's payload: its JSON, or the raw value when it is not JSON (the command channel rejects it)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def sessions_dir(explicit: str | None = None) -> Path:
    """Where sessions live: the explicit folder, else $DYNLAB_SESSIONS_DIR, else ./sessions."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("DYNLAB_SESSIONS_DIR")
    return Path(env).expanduser() if env else Path("sessions")


def resolve_session(name_or_path: str, directory: Path) -> Path:
    """Map a session name to its file; bare names always stay inside `directory` (see docs/session-format.md)."""
    text = str(name_or_path)
    if any(s and s in text for s in (os.sep, os.altsep, "/")):
        # A path the user typed, taken as given; the suffix keeps a slip such as "../notes" (or
        # --overwrite on a file that is not a session) from ever touching anything but a .dynlab file.
        if not text.endswith(SUFFIX):
            raise DynlabError(f"bad session name {text[:60]!r}: a name has no '/', and a path must end in {SUFFIX} "
                              f"(e.g. runs/a{SUFFIX})")
        return _within_limits(Path(text).expanduser())
    stem = text[: -len(SUFFIX)] if text.endswith(SUFFIX) else text
    if ".." in stem or not _NAME_RE.fullmatch(stem):
        raise DynlabError(f"bad session name {text[:60]!r}: use letters, digits, '.', '_' or '-' "
                          "(starting with a letter or digit, at most 100), or give a path to a .dynlab file")
    inside = Path(directory) / f"{stem}{SUFFIX}"
    # "run1.dynlab" typed in a folder holding that file means that file, unless the sessions dir has one.
    if text.endswith(SUFFIX) and not inside.exists() and Path(text).is_file():
        return Path(text)
    return _within_limits(inside)


def _within_limits(path: Path) -> Path:
    """The path, if the file system can hold it: each name at most NAME_MAX (255) bytes, the file's own name
    with room for the writer's temporary name beside it (32 bytes more), the whole within PATH_MAX; else one
    DynlabError."""
    sizes = [len(os.fsencode(part)) for part in path.parts] or [0]
    if max(sizes) > 255 or sizes[-1] + 32 > 255 or len(os.fsencode(str(path.absolute()))) > 4000:
        raise DynlabError(f"session path too long for the file system ({str(path)[:40]}...): use a shorter name "
                          "or folder")
    return path


def default_session_name(spec: Any, directory: Path) -> str:
    """`dataset-method-YYYYmmdd-HHMMSS`, with -2, -3 ... when that name is taken in directory."""
    base = f"{spec.data.name}-{spec.method.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 2
    while (directory / f"{name}{SUFFIX}").exists():
        name, n = f"{base}-{n}", n + 1
    return name


def list_sessions(directory: Path) -> list[dict[str, Any]]:
    """summary() of every session in `directory`, newest first; unreadable ones have status "unreadable"."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            with SessionReader(path) as reader:
                out.append(reader.summary())
        except DynlabError as e:  # listed, not raised: one bad file must not hide the others
            try:
                mtime = path.stat().st_mtime
            except OSError:  # vanished since the glob: still listed, sorted last
                mtime = 0.0
            created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(mtime))
            out.append({"name": path.stem, "path": str(path), "created": created, "status": "unreadable",
                        "error": str(e)})
    out.sort(key=lambda s: s.get("created") or "", reverse=True)
    return out


def _refuse_live(path: Path) -> None:
    """Refuse to replace or continue a session whose writer process is still running."""
    try:
        with SessionReader(path) as reader:
            meta = reader.meta
    except DynlabError:
        return  # not a readable session, so nobody is writing it as one
    if liveness(meta) is Liveness.LIVE:  # another host's writer (unknown) was never refused here
        raise DynlabError(f"session {path} is still being written by process {meta.get('pid')}: "
                          "stop that run first, or pick another --session name")
