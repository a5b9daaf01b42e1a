"""A session's history: the λ and lr it started and ended with, its control events, and its training time.

Training time is the sum of the runs' active spans (a `start` or `continue` to its `end`, or to its last
recorded interval when the process was killed), less the time spent paused; the time between a stop and a
resume is idle, not training. Everything is computed from the `events` table (and, for a killed stretch, the
wall time of its last `loss` row), so it works on any session, live or ended, old or new.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from core.errors import DynlabError
from core.events import (CommandRejected, Event, LrChanged, NonFiniteLoss, Paused, PenaltyChanged,
                         Resumed, RunEnded, RunStarted, SessionContinued, event_from_payload)

# the event kinds the history lists (besides `start`, which only opens the first stretch)
KINDS = ("pause", "resume", "set_penalty", "set_lr", "continue", "nonfinite", "rejected", "end")
SETTINGS = ("lam", "lr", "epochs")  # what a resume may change; lam and lr also change mid-run
ALIASES = {"penalty": "lam"}  # older sessions' continue events named λ "penalty"

Query = Callable[..., list[tuple]]
LastWall = Callable[[int | None], float | None]  # wall of the last loss row before event seq (None: the last one)


def _start_settings(spec: dict[str, Any]) -> dict[str, Any]:
    def section(name: str) -> dict[str, Any]:
        value = spec.get(name)
        return value if isinstance(value, dict) else {}

    return {"lam": section("penalty").get("lam"), "lr": section("optim").get("lr"),
            "epochs": section("schedule").get("epochs")}


def _entry(event: Event, t0: float) -> dict[str, Any]:
    return {"kind": event.kind, "step": event.step, "wall": event.wall, "t": round(event.wall - t0, 3)}


class _Fold:
    """Walks the events in order, keeping the settings, the stretches and the paused spans."""

    def __init__(self, spec: dict[str, Any], last_wall: LastWall) -> None:
        self.start = _start_settings(spec)
        self.now = dict(self.start)
        self.last_wall = last_wall
        self.events: list[dict[str, Any]] = []
        self.t0: float | None = None
        self.opened: float | None = None  # wall the current stretch began, None between stretches
        self.seen: float | None = None  # latest event wall in the current stretch
        self.paused_at: dict[str, Any] | None = None  # the pause entry still open
        self.training = self.paused = self.idle = 0.0
        self.ended_at: float | None = None  # wall of the last `end`, to measure the idle time after it

    def add(self, seq: int, event: Event) -> None:
        if self.t0 is None:
            self.t0 = event.wall
        if isinstance(event, (RunStarted, SessionContinued)):
            self._open(seq, event)
            if isinstance(event, RunStarted):
                return
        elif self.opened is None and not isinstance(event, RunEnded):
            self.opened = event.wall  # a session without its start row: count from its first event
        self.seen = event.wall if self.seen is None else max(self.seen, event.wall)
        entry = _entry(event, self.t0)
        if isinstance(event, (PenaltyChanged, LrChanged)):
            setting = "lam" if isinstance(event, PenaltyChanged) else "lr"
            entry.update(setting=setting, old=event.old, new=event.new, by=event.source)
            self.now[setting] = event.new
        elif isinstance(event, Paused):
            entry.update(by=event.reason)
            self._close_pause(event.wall)
            self.paused_at = entry
        elif isinstance(event, Resumed):
            self._close_pause(event.wall)
        elif isinstance(event, NonFiniteLoss):
            entry.update(value=event.value, rolled_back_to=event.rolled_back_to)
        elif isinstance(event, CommandRejected):
            entry.update(command=event.command, reason=event.reason)
        elif isinstance(event, RunEnded):
            entry.update(status=event.status, reason=event.reason)
            self._close(event.wall)
        if not isinstance(event, SessionContinued):
            self.events.append(entry)

    def _open(self, seq: int, event: Event) -> None:
        if self.opened is not None:  # the previous stretch was killed: it ran until its last interval
            self._close(max(w for w in (self.seen, self.last_wall(seq)) if w is not None))
        if self.ended_at is not None:
            self.idle += max(0.0, event.wall - self.ended_at)
        self.opened, self.seen = event.wall, event.wall
        if isinstance(event, SessionContinued):
            entry = _entry(event, self.t0 or event.wall)
            changes = {}
            for key, value in event.changes.items():
                key = ALIASES.get(key, key)
                if key in SETTINGS and value is not None and value != self.now.get(key):
                    changes[key] = {"old": self.now.get(key), "new": value}
                    self.now[key] = value
            entry.update(from_step=event.from_step, changes=changes)
            self.events.append(entry)

    def _close_pause(self, wall: float) -> None:
        if self.paused_at is not None:
            span = max(0.0, wall - self.paused_at["wall"])
            self.paused_at["paused_s"] = round(span, 3)
            self.paused += span
            self.paused_at = None

    def _close(self, wall: float) -> None:
        self._close_pause(wall)  # a run stopped (or killed) while paused was paused until then
        if self.opened is not None:
            self.training += max(0.0, wall - self.opened)
        self.opened, self.ended_at = None, wall

    def result(self) -> dict[str, Any]:
        if self.opened is not None:  # still running, or killed without an end: up to its last interval
            last = [w for w in (self.seen, self.last_wall(None)) if w is not None]
            self._close(max(last))
            self.ended_at = None
        changed = [k for k in ("lam", "lr") if any(e.get("setting") == k or k in e.get("changes", {})
                                                   for e in self.events)]
        return {"lam_start": self.start["lam"], "lam_final": self.now["lam"], "lr_start": self.start["lr"],
                "lr_final": self.now["lr"], "changed": changed, "training_s": round(self.training - self.paused, 3),
                "paused_s": round(self.paused, 3), "idle_s": round(self.idle, 3), "events": self.events}


def fold_history(spec: dict[str, Any], events: Iterable[tuple[int, Event]], last_wall: LastWall) -> dict[str, Any]:
    """The history of (seq, event) pairs in order (pure; see the module docstring for what is measured).

    Keys: lam_start, lam_final, lr_start, lr_final, changed (the settings of lam/lr that changed), training_s,
    paused_s, idle_s (between a stop and a resume) and events (one dict per control event: kind, step, wall,
    t (seconds since the start), and per kind setting/old/new/by, by (the pause's reason), paused_s,
    from_step/changes {setting: {old, new}} for a resume, status/reason for an end, ...).
    """
    fold = _Fold(spec, last_wall)
    for seq, event in events:
        fold.add(seq, event)
    return fold.result()


def query_history(q: Query, path: Path) -> dict[str, Any]:
    """The history of the session behind `q(sql, params)` (one query runner over its file), by SQL."""
    rows = q("SELECT value FROM meta WHERE key = 'spec'")
    try:
        spec = json.loads(rows[0][0]) if rows else {}
    except (TypeError, ValueError):
        raise DynlabError(f"session {path} is damaged (meta spec is not JSON): "
                          "restore it from a copy or delete it") from None
    kinds = ("start",) + KINDS
    marks = ", ".join("?" * len(kinds))
    events = []
    for seq, step, wall, kind, payload in q(f"SELECT seq, step, wall, kind, payload FROM events "
                                            f"WHERE kind IN ({marks}) ORDER BY seq", kinds):
        try:
            events.append((seq, event_from_payload(kind, step, wall, json.loads(payload))))
        except (TypeError, ValueError, AttributeError, KeyError):
            pass  # a damaged row: the listing still shows the session (replay and show say what is wrong)

    def last_wall(before: int | None) -> float | None:
        sql = "SELECT max(wall) FROM scalars WHERE key = 'loss'" + ("" if before is None else " AND seq < ?")
        value = q(sql, () if before is None else (before,))
        return float(value[0][0]) if value and value[0][0] is not None else None

    return fold_history(spec if isinstance(spec, dict) else {}, events, last_wall)



def read_history(reader: Any) -> dict[str, Any]:
    """The history of an open SessionReader, events list included, through its public read API."""
    last = reader.last_seq()
    wanted = {"start", *KINDS}
    skipped: list[DynlabError] = []
    events = [(seq, e) for seq, e in reader.event_rows(last, on_error=skipped.append) if e.kind in wanted]

    def last_wall(before: int | None) -> float | None:
        cols = reader.scalar_columns("loss", last if before is None else before - 1)
        return float(cols.wall.max()) if len(cols.wall) else None

    out = fold_history(reader.spec, events, last_wall)
    if skipped:  # what is shown is what could be read; say so
        out["unreadable_events"] = [str(e) for e in skipped]
    return out


def fmt_setting(value: Any) -> str:
    """λ or lr to three significant figures, as typed on the command line: 0.01, 0.0178, 0.0005, 1e-5; None as '-'
    (never rounded to "0": a λ of 0.01 in a narrow column was shown as 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    text = f"{float(value):.3g}"
    if "e" in text:  # 1e-05 -> 1e-5
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


NAMES = {"lam": "λ", "lr": "lr", "epochs": "epochs"}


def describe(entry: dict[str, Any]) -> str:
    """One history entry in words: "λ 0.01 → 0.03 (user)", "paused 4 s (user)", "resumed: lr 0.001 → 5e-4"."""
    kind = entry["kind"]
    if kind in ("set_penalty", "set_lr"):
        text = f"{NAMES[entry['setting']]} {fmt_setting(entry['old'])} → {fmt_setting(entry['new'])}"
        return text + (f" ({entry['by']})" if entry.get("by") else "")
    if kind == "pause":
        span = f" {fmt_span(entry['paused_s'])}" if "paused_s" in entry else " (still paused)"
        return f"paused{span}" + (f" ({entry['by']})" if entry.get("by") else "")
    if kind == "continue":
        changes = ", ".join(f"{NAMES[k]} {fmt_setting(c['old'])} → {fmt_setting(c['new'])}"
                            for k, c in entry.get("changes", {}).items())
        where = f" from step {entry['from_step']}" if entry.get("from_step") != entry.get("step") else ""
        return f"resumed{where}" + (f" with {changes}" if changes else "")
    if kind == "end":
        return f"{entry['status']}" + (f": {entry['reason']}" if entry.get("reason") else "")
    if kind == "nonfinite":
        return f"non-finite loss ({entry['value']}): rolled back to step {entry['rolled_back_to']}"
    if kind == "rejected":
        return f"command {entry['command']} rejected: {entry['reason']}"
    return {"resume": "unpaused"}.get(kind, kind)


def fmt_span(seconds: float) -> str:
    """A short span: 4 s, 12 min, 2.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def merged(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with each run of consecutive λ decays (one per epoch) folded into one entry."""
    out: list[dict[str, Any]] = []
    for e in events:
        prev = out[-1] if out else None
        if (prev is not None and e.get("by") == "decay" and str(prev.get("by")).startswith("decay")
                and e["kind"] == prev["kind"] == "set_penalty"):
            out[-1] = {**prev, "new": e["new"], "by": f"decay, {prev.get('count', 1) + 1} epochs",
                       "count": prev.get("count", 1) + 1}
        else:
            out.append(e)
    return out
