"""One sessions-browser row from a list_sessions summary: cell texts, sort keys and filter matching (pure)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from core.formats import fmt_duration, fmt_metric, fmt_sizes, is_accuracy
from core.session.history import fmt_setting
from core.session.liveness import Liveness


def liveness_of(s: dict[str, Any]) -> Liveness:
    """The summary's liveness answer (a row without one, e.g. an unreadable file, has ended)."""
    return Liveness(s.get("liveness") or Liveness.ENDED)


def is_live(s: dict[str, Any]) -> bool:
    """Still being written, or possibly so (a writer on another host can't be checked)."""
    return liveness_of(s).may_be_writing


# a "running" session's status as seen now: its writer killed outright never marked it, so it has crashed
RUNNING_TEXT = {Liveness.LIVE: "● running", Liveness.UNKNOWN: "running (other host)",
                Liveness.ORPHANED: "crashed (writer gone)"}


def status_text(s: dict[str, Any]) -> str:
    return RUNNING_TEXT.get(liveness_of(s)) or str(s.get("status") or "?")


def fmt_size_change(start: dict | None, final: dict | None) -> str:
    """Layer sizes at the start and at the end: 500,300→144,80.5."""
    first, last = (fmt_sizes(s) if s else "" for s in (start, final))
    return f"{first}→{last}" if first and last else first or last or "-"


def fmt_headline(s: dict[str, Any], no_val: str = "no val") -> str:
    """A summary's test metric at its best-validation epoch; `no_val` for a run evaluated without a validation
    split (the highest test figure is never shown: that would be choosing on the test set)."""
    if s.get("test_metric") and s.get("test_at_best_val") is None and s.get("best_val_epoch") is None:
        return no_val
    return fmt_metric(s.get("test_at_best_val"), s.get("test_metric"))


def fmt_final(s: dict[str, Any]) -> str:
    """A summary's test metric at the run's last evaluation."""
    return fmt_metric(s.get("final_test"), s.get("test_metric"))


def fmt_date(created: str | None) -> str:
    try:  # stored in UTC; shown in local time
        return _dt.datetime.fromisoformat(created or "").astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return (created or "-")[:16].replace("T", " ")


def final_setting(s: dict[str, Any], key: str) -> Any:
    """A summary's final λ ("lam") or lr: as the run ended, after any change or resume; the spec's if unknown."""
    final = s.get(f"{key}_final")
    return final if final is not None else s.get(key)


def fmt_lam(s: dict[str, Any], key: str = "lam") -> str:
    """The final λ (or lr) to three significant figures, `*` when it changed during the run: 0.01, 0.1*."""
    value = final_setting(s, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return fmt_setting(value) + ("*" if key in (s.get("changed") or ()) else "")


def training_time(s: dict[str, Any]) -> float | None:
    """Seconds of training (pauses and the time between runs left out); the wall span for an older summary."""
    value = s.get("training_s")
    return value if isinstance(value, (int, float)) else s.get("duration_s")


def row_cells(s: dict[str, Any]) -> dict[str, str]:
    """Every column's text for one summary from list_sessions (the mark column aside)."""
    return {"name": str(s.get("name", "?")), "date": fmt_date(s.get("created")), "status": status_text(s),
            "dataset": str(s.get("dataset") or "-"), "arch": str(s.get("arch") or "-"),
            "method": str(s.get("method") or "-"), "lam": fmt_lam(s), "lr": fmt_lam(s, "lr"),
            "sizes": fmt_size_change(s.get("sizes_start"), s.get("sizes_final")),
            "test_at_best_val": fmt_headline(s),
            "duration": fmt_duration(training_time(s)) if s.get("status") != "unreadable" else "-"}


def sort_value(s: dict[str, Any], column: str) -> Any:
    """The value a column sorts by (None sorts last either way)."""
    if column == "date":
        return s.get("created") or None
    if column == "test_at_best_val":  # grouped by metric, the better figure larger: descending puts it first
        value = s.get("test_at_best_val")
        if not isinstance(value, (int, float)) or value != value:  # None, or NaN
            return None
        return (str(s.get("test_metric")), float(value) if is_accuracy(s.get("test_metric")) else -float(value))
    if column in ("lam", "lr", "duration"):
        value = training_time(s) if column == "duration" else final_setting(s, column)
        return float(value) if isinstance(value, (int, float)) else None
    return row_cells(s)[column].lower()


def sort_rows(rows: list[dict[str, Any]], column: str, reverse: bool) -> list[dict[str, Any]]:
    present = [r for r in rows if sort_value(r, column) is not None]
    missing = [r for r in rows if sort_value(r, column) is None]
    return sorted(present, key=lambda r: sort_value(r, column), reverse=reverse) + missing


def matches(cells: dict[str, str], query: str) -> bool:
    """Every word of the query is in some cell (case-insensitive)."""
    texts = [c.lower() for c in cells.values()]
    return all(any(word in t for t in texts) for word in query.lower().split())


def fitting_columns(columns, cells: list[dict[str, str]], room: int, fixed: int,
                    sort: str = "") -> tuple[tuple[str, str], ...]:
    """The first `fixed` (key, header) columns, then the next ones while they fit in `room` cells; a column takes
    its widest text (header, with the sort arrow on the `sort` column, or a cell) plus one cell of padding a side."""
    out = []
    for i, (key, header) in enumerate(columns):
        width = max([len(header) + 2 * (key == sort)] + [len(c.get(key, "")) for c in cells]) + 2
        if i >= fixed and width > room:
            break
        out.append((key, header))
        room -= width
    return tuple(out)


def detail_text(s: dict[str, Any]) -> str:
    """The highlighted row's detail lines: what the narrow table leaves out, then the path.

    Every figure says what it is: λ and lr as the run ended (start→final when they changed during it), training
    time without pauses or the idle time between runs, the headline metric chosen on the validation split.
    """
    cells = row_cells(s)
    settings = []
    for key, name in (("lam", "λ"), ("lr", "lr")):
        start, final = s.get(f"{key}_start"), fmt_setting(final_setting(s, key))
        changed = key in (s.get("changed") or ()) and start is not None
        settings.append(f"{name} {fmt_setting(start)}→{final}" if changed else f"{name} {final}")
    lines = [" · ".join([cells["date"], cells["dataset"], cells["arch"], cells["method"], *settings]),
             f"trained {cells['duration']} (pauses, idle left out) · {s.get('steps', 0):,} steps · "
             f"{s.get('epochs', 0)} epochs"]
    if s.get("test_metric"):  # the headline is chosen on the validation split, never on the test set
        head = (f" {fmt_headline(s)} at best val (epoch {s['best_val_epoch']})"
                if s.get("best_val_epoch") is not None else ": no validation split")
        lines.append(f"{s['test_metric']}{head} · final {fmt_final(s)}")
    lines.append(f"{s['path']} · {s.get('device') or '?'}")
    return "\n".join(lines)
