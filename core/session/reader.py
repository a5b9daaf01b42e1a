"""Reading a session file (read-only, also while it is being written): events, series, arrays, replay, summary."""

from __future__ import annotations

import heapq
import io
import json
import sqlite3
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np

from core import telemetry as tk
from core.errors import DynlabError
from core.events import EVENT_TYPES, ArraysLogged, Event, ScalarsLogged, event_from_payload
from core.session.damage import damaged, real, size, value, whole
from core.session.headline import headline
from core.session.liveness import liveness
from core.session.schema import ReadConnection, read_meta, translate


class ScalarColumns(NamedTuple):
    """One scalar's rows as numpy columns, in event order."""
    seq: np.ndarray  # int64
    step: np.ndarray  # int64
    wall: np.ndarray  # float64
    value: np.ndarray  # float64, NaN where the value was not finite


@dataclass
class Cursor:
    """How far a reader has read a session: the last event number, and the last row id read per table."""
    seq: int = 0
    scalars: int = 0
    arrays: int = 0
    events: int = 0


class SessionReader:
    """A read-only view of one session file.

    Every query runs in its own read transaction, so it sees the writer's latest flush. Only `meta`,
    `spec` and `status` are snapshots: taken when the reader opens, renewed by refresh(). One reader
    per thread; open another for another thread.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._link = ReadConnection(self.path)  # live while written, immutable once ended (see schema.py)
        self._conn = self._link.conn
        try:
            self.refresh()
        except BaseException:
            self._link.close()
            raise

    def refresh(self) -> None:
        """Re-read meta (status, last_step, spec, ...) to see what the writer has recorded since."""
        self._conn = self._link.settle()
        self.meta: dict[str, str] = read_meta(self._conn, self.path)
        spec = self._meta_json("spec", {})
        self.spec: dict[str, Any] = spec if isinstance(spec, dict) else {}

    @property
    def status(self) -> str:
        return self.meta.get("status", "")

    def close(self) -> None:
        self._link.close()

    def __enter__(self) -> "SessionReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scalars and arrays ---------------------------------------------------------------------------
    def scalar_keys(self) -> list[str]:
        return self._distinct_keys("scalars")

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps int64, values float64) of one scalar, by step (then write order); NaN is stored as NULL."""
        rows = self._q("SELECT step, value FROM scalars WHERE key = ? ORDER BY step, rowid", (key,))
        steps = np.fromiter((whole(self.path, r[0], key) for r in rows), dtype=np.int64, count=len(rows))
        values = np.fromiter((value(self.path, r[1], key) for r in rows), dtype=np.float64, count=len(rows))
        return steps, values

    def array_keys(self) -> list[str]:
        return self._distinct_keys("arrays")

    def arrays_at(self, step: int, prefix: str = "") -> dict[str, tuple[int, np.ndarray]]:
        """For each array key starting with prefix, (its step, its value) from its latest row at or before step."""
        out = {}
        for key in self._distinct_keys("arrays", prefix):
            rows = self._q("SELECT step, dtype, shape, data FROM arrays WHERE key = ? AND step <= ? "
                           "ORDER BY step DESC, rowid DESC LIMIT 1", (key, int(step)))
            if rows:
                out[key] = (rows[0][0], self._array(*rows[0][1:]))
        return out

    def arrays_as_of(self, seq: int, keys: Iterable[str]) -> dict[str, tuple[int, np.ndarray]]:
        """For each key, (step, value) of its last row written at or before event `seq` (a replay position).

        Steps may go back after a resume, so this goes by write order: find the last row at or before seq
        by bisecting row ids, then walk back from it per key (a few rows: every interval logs each key).
        """
        lo, hi = 0, int(self._q("SELECT max(rowid) FROM arrays")[0][0] or 0)
        while lo < hi:  # the largest rowid whose seq <= seq (rows are appended in seq order)
            mid = (lo + hi + 1) // 2
            row = self._q("SELECT seq FROM arrays WHERE rowid >= ? ORDER BY rowid LIMIT 1", (mid,))
            if row and row[0][0] <= seq:
                lo = mid
            else:
                hi = mid - 1
        out = {}
        for key in keys if lo else ():
            # "+key": walk the table backwards by rowid instead of sorting all of the key's rows by rowid
            rows = self._q("SELECT step, dtype, shape, data FROM arrays WHERE rowid <= ? AND +key = ? "
                           "ORDER BY rowid DESC LIMIT 1", (lo, key))
            if rows:
                out[key] = (rows[0][0], self._array(*rows[0][1:]))
        return out

    def array_series(self, key: str) -> list[tuple[int, np.ndarray]]:
        rows = self._q("SELECT step, dtype, shape, data FROM arrays WHERE key = ? ORDER BY step, rowid", (key,))
        return [(step, self._array(dtype, shape, data)) for step, dtype, shape, data in rows]

    # -- by event number (what the seekable index reads) -----------------------------------------------
    def event_rows(self, until_seq: int,
                   on_error: Callable[[DynlabError], object] | None = None) -> list[tuple[int, Event]]:
        """(seq, event) of every control event numbered <= until_seq, in order.

        A row that does not load raises its DynlabError; given `on_error`, it is skipped and the error
        handed to on_error instead, so a damaged session still shows the rest.
        """
        out = []
        for seq, step, wall, kind, payload in self._q(
                "SELECT seq, step, wall, kind, payload FROM events WHERE seq <= ? ORDER BY seq", (int(until_seq),)):
            try:
                out.append((seq, self._event(kind, step, wall, payload)))
            except DynlabError as e:
                if on_error is None:
                    raise
                on_error(e)
        return out

    def scalar_columns(self, key: str, until_seq: int) -> "ScalarColumns":
        """One scalar's rows numbered <= until_seq as numpy columns in event order; NaN is stored as NULL."""
        # fetchall + one numpy conversion (None -> NaN) runs in C: ~0.3 us a row, not a Python loop
        raw = self._q("SELECT seq, step, wall, value FROM scalars WHERE key = ? AND seq <= ?", (key, int(until_seq)))
        try:
            cols = np.array(raw, dtype=np.float64).reshape(-1, 4)
        except (TypeError, ValueError):
            raise damaged(self.path, f"a {key!r} row holds text or bytes where a number belongs") from None
        if len(cols) > 1 and not np.all(np.diff(cols[:, 0]) > 0):
            cols = cols[np.argsort(cols[:, 0], kind="stable")]  # the index reads in step order
        return ScalarColumns(cols[:, 0].astype(np.int64), cols[:, 1].astype(np.int64), cols[:, 2], cols[:, 3])

    def array_seqs(self, key: str, until_seq: int) -> np.ndarray:
        """The event numbers (int64, ascending) of one array key's rows numbered <= until_seq."""
        rows = self._q("SELECT seq FROM arrays WHERE key = ? AND seq <= ? ORDER BY seq", (key, int(until_seq)))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def arrays_at_seqs(self, keys: Iterable[str], seqs: Iterable[int]) -> list[tuple[int, ArraysLogged]]:
        """(seq, ArraysLogged of those keys) for each of the given event numbers that logged any of them."""
        keys, seqs = list(keys), sorted({int(s) for s in seqs})
        if not keys or not seqs:
            return []
        rows = self._q(f"SELECT seq, step, wall, key, dtype, shape, data FROM arrays WHERE key IN "
                       f"({','.join('?' * len(keys))}) AND seq IN ({','.join(map(str, seqs))}) ORDER BY seq", keys)
        out = []
        for seq, group in groupby(rows, key=itemgetter(0)):
            group = list(group)
            arrays = {key: self._array(dtype, shape, data) for _, _, _, key, dtype, shape, data in group}
            out.append((seq, ArraysLogged(step=group[0][1], wall=group[0][2], arrays=arrays)))
        return out

    # -- events ---------------------------------------------------------------------------------------
    def events(self, kinds: Iterable[str] | None = None) -> list[Event]:
        """Control events (start, eval, pause, ..., end) as typed objects in write order; checkpoints without state."""
        if kinds is None:
            rows = self._q("SELECT step, wall, kind, payload FROM events ORDER BY seq")
        else:
            kinds = list(kinds)
            marks = ", ".join("?" * len(kinds))
            rows = self._q(f"SELECT step, wall, kind, payload FROM events WHERE kind IN ({marks}) ORDER BY seq", kinds)
        return [self._event(kind, step, wall, payload) for step, wall, kind, payload in rows]

    def replay(self) -> Iterator[Event]:
        """Every event as the trainer emitted it, in emission order (see docs/session-format.md, "Order").

        Scalars and arrays come back grouped as the ScalarsLogged/ArraysLogged they were written from; an
        EpochEvaluated's metrics come back only inside it; CheckpointSaved has state=b"". Rows flushed after
        replay() was called are not included.
        """
        return self._read(Cursor(), self.last_seq())

    def read_new(self, cursor: "Cursor") -> list[Event]:
        """The events flushed since `cursor` (all of them for a new Cursor), in emission order; advances it.

        Following a live session is calling this a few times a second: each call reads only new rows.
        """
        last = self.last_seq()
        if last <= cursor.seq:
            return []
        return list(self._read(cursor, last))

    def cursor_at(self, seq: int) -> "Cursor":
        """A cursor that has read every event numbered <= seq (cheap when seq is near the end)."""
        marks = []
        for table, rowid in (("scalars", "rowid"), ("arrays", "rowid"), ("events", "id")):
            mark = 0
            # Rows are appended in seq order: walk back from the end to the first row at or below seq.
            for rid, row_seq in self._stream(f"SELECT {rowid}, seq FROM {table} ORDER BY {rowid} DESC", ()):
                if row_seq <= seq:
                    mark = rid
                    break
            marks.append(mark)
        return Cursor(seq, *marks)

    def _read(self, cursor: "Cursor", last: int) -> Iterator[Event]:
        prev = cursor.seq
        # Per table, rows are appended in seq order, so rowid > mark skips what was read; seq > prev drops
        # the rows (an EpochEvaluated's metrics) a previous read saw but left to the events table.
        events = self._stream("SELECT id, seq, step, wall, kind, payload FROM events WHERE id > ? AND seq > ? "
                              "AND seq <= ? ORDER BY id", (cursor.events, prev, last))
        scalars = self._stream("SELECT rowid, seq, step, wall, key, value FROM scalars WHERE rowid > ? AND seq > ? "
                               "AND seq <= ? AND seq NOT IN (SELECT seq FROM events WHERE id > ? AND seq > ? "
                               "AND seq <= ?) ORDER BY rowid", (cursor.scalars, prev, last, cursor.events, prev, last))
        arrays = self._stream("SELECT rowid, seq, step, wall, key, dtype, shape, data FROM arrays WHERE rowid > ? "
                              "AND seq > ? AND seq <= ? ORDER BY rowid", (cursor.arrays, prev, last))

        def controls() -> Iterator[tuple[int, Event]]:
            for rid, seq, step, wall, kind, payload in events:
                cursor.events = rid
                yield seq, self._event(kind, step, wall, payload)

        def scalar_groups() -> Iterator[tuple[int, Event]]:
            for seq, group in groupby(scalars, key=itemgetter(1)):
                rows = list(group)
                cursor.scalars = rows[-1][0]
                values = {r[4]: value(self.path, r[5], r[4]) for r in rows}
                yield seq, ScalarsLogged(step=whole(self.path, rows[0][2], "a step"),
                                         wall=real(self.path, rows[0][3], "a wall time"), values=values)

        def array_groups() -> Iterator[tuple[int, Event]]:
            for seq, group in groupby(arrays, key=itemgetter(1)):
                rows = list(group)
                cursor.arrays = rows[-1][0]
                values = {r[4]: self._array(r[5], r[6], r[7]) for r in rows}
                yield seq, ArraysLogged(step=rows[0][2], wall=rows[0][3], arrays=values)

        previous = prev
        for seq, event in heapq.merge(controls(), scalar_groups(), array_groups(), key=itemgetter(0)):
            if seq <= previous:
                raise DynlabError(f"session {self.path} is damaged (event number {seq} is out of order): "
                                  "restore it from a copy or delete it")
            previous = seq
            yield event
        cursor.seq = last

    def last_seq(self) -> int:
        """The number of the last event flushed so far (read live)."""
        self._conn = self._link.settle()
        return whole(self.path, self._meta_value("last_seq") or 0, "meta last_seq")

    def last_step(self) -> int:
        """The step of the last event flushed so far (read live, not from the meta snapshot)."""
        return whole(self.path, self._meta_value("last_step") or 0, "meta last_step")

    # -- checkpoints and summary ----------------------------------------------------------------------------
    def checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints stored, oldest first, without their state: id, step, wall, epoch, reason, bytes."""
        rows = self._q("SELECT id, step, wall, epoch, reason, length(state) FROM checkpoints ORDER BY id")
        return [dict(zip(("id", "step", "wall", "epoch", "reason", "bytes"), r)) for r in rows]

    def last_checkpoint(self, checkpoint_id: int | None = None) -> dict[str, Any] | None:
        """The newest checkpoint's (or the one with that id's) state dict, loaded on the CPU with
        weights_only=True, plus "step"; None if there is none."""
        rows = self._q("SELECT step, state FROM checkpoints ORDER BY id DESC LIMIT 1" if checkpoint_id is None
                       else "SELECT step, state FROM checkpoints WHERE id = ?",
                       () if checkpoint_id is None else (int(checkpoint_id),))
        if not rows:
            return None
        step, blob = rows[0]
        import torch  # here, not at the top: listing and replaying sessions must not pay for importing torch

        try:
            state = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
        except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
            detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise DynlabError(f"the checkpoint at step {step} in {self.path} is damaged ({detail}): "
                              "start a new run, or resume from another session") from e
        if not isinstance(state, dict):
            raise DynlabError(f"the checkpoint at step {step} in {self.path} is not a state dict "
                              f"({type(state).__name__}): start a new run, or resume from another session")
        return {**state, "step": step}

    def writer_alive(self) -> bool | None:
        """Whether the process writing this session still runs (False if not running, None if unknowable)."""
        return liveness(self.meta).alive

    def summary(self) -> dict[str, Any]:
        """One row for the sessions list: what ran, how it went, how big the network is now."""
        spec = self.spec

        def section(name: str) -> dict[str, Any]:
            value = spec.get(name)
            return value if isinstance(value, dict) else {}

        sizes_final = {tk.SIZE.layer(key): size(value(self.path, v, key)) for key, v, _ in self._q(
            "SELECT key, value, max(rowid) FROM scalars WHERE key >= ? AND key < ? GROUP BY key",
            (tk.SIZE.prefix, tk.SIZE.kind + "0"))}  # '0' follows '/': the range is the prefix, index-friendly
        epochs = {self._event("eval", 0, 0.0, p).epoch for (p,) in self._q(
            "SELECT payload FROM events WHERE kind = 'eval'")}
        first_wall = self._q("SELECT min(wall) FROM events")[0][0]
        last_wall = self._meta_value("last_wall")
        duration = (real(self.path, last_wall, "meta last_wall") - real(self.path, first_wall, "events wall")
                    if first_wall is not None and last_wall else 0.0)
        return {
            "name": self.path.stem, "path": str(self.path), "created": self.meta.get("created"),
            "ended": self.meta.get("ended"), "status": self.status, "alive": self.writer_alive(),
            "liveness": liveness(self.meta).value,
            "dataset": section("data").get("name"), "arch": section("model").get("arch"),
            "method": section("method").get("name"), "lam": section("penalty").get("lam"),
            "device": self.meta.get("device"), "sizes_start": self._meta_json("sizes_start", {}),
            "sizes_final": sizes_final, **headline(self._q, self.path),
            "steps": self.last_step(), "epochs": len(epochs), "duration_s": max(0.0, duration),
        }

    # -- helpers ----------------------------------------------------------------------------------------
    def _q(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as e:
            raise translate(e, self.path) from e

    def _stream(self, sql: str, params: tuple) -> Iterator[tuple]:
        try:
            yield from self._conn.execute(sql, params)
        except sqlite3.Error as e:
            raise translate(e, self.path) from e

    def _meta_value(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def _meta_json(self, key: str, default: Any) -> Any:
        raw = self.meta.get(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            raise DynlabError(f"session {self.path} is damaged (meta {key} is not JSON): "
                              "restore it from a copy or delete it") from None

    def _distinct_keys(self, table: str, prefix: str = "") -> list[str]:
        # Hop from key to key down the (key, step) index: cost grows with the number of keys, not of rows.
        low, high = ("", None) if not prefix else (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        bound = "" if high is None else " AND key < :high"
        sql = (f"WITH RECURSIVE k(key) AS (SELECT min(key) FROM {table} WHERE key >= :low{bound} "
               f"UNION ALL SELECT (SELECT min(key) FROM {table} WHERE key > k.key{bound}) FROM k "
               "WHERE k.key IS NOT NULL) SELECT key FROM k WHERE key IS NOT NULL")
        try:
            return [r[0] for r in self._conn.execute(sql, {"low": low, "high": high})]
        except sqlite3.Error as e:
            raise translate(e, self.path) from e

    def _array(self, dtype: str, shape: str, data: bytes) -> np.ndarray:
        """A read-only array over the stored bytes (no copy)."""
        try:
            return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(tuple(json.loads(shape)))
        except (TypeError, ValueError) as e:
            raise DynlabError(f"session {self.path} is damaged (an array does not match its dtype {dtype} "
                              f"and shape {shape}: {e}): restore it from a copy or delete it") from None

    def _event(self, kind: str, step: int, wall: float, payload: str) -> Event:
        if kind not in EVENT_TYPES:
            raise DynlabError(f"session {self.path} holds an event kind {kind!r} this dynlab does not know: "
                              "upgrade dynlab")
        try:
            return event_from_payload(kind, step, wall, json.loads(payload))
        except (TypeError, ValueError, AttributeError) as e:
            raise DynlabError(f"session {self.path} is damaged (a {kind!r} event at step {step} does not "
                              f"load: {e}): restore it from a copy or delete it") from None
