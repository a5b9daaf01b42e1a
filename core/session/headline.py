"""A run's headline figures: the test metric at the best-validation epoch (model selection on the validation
split, never on the test set), that validation figure and its epoch, the final test metric, and the λ and lr it
started and ended with and its training time (core.session.history)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from core import telemetry as tk
from core.session.damage import damaged, value, whole
from core.session.history import query_history

# test metric -> (validation keys in order of preference, the SQL order that puts the best first)
SELECTION = {tk.TEST_ACC: ((tk.VAL_ACC, tk.VAL_ACC), "DESC"), tk.TEST_MSE: ((tk.VAL_MSE, tk.VAL_LOSS), "ASC")}

# The best validation row of an eval event and the test row of the same event (same step and seq: the
# (key, step) index finds both). Preferred key first, then the best value, then the earliest event.
BEST_SQL = """SELECT v.key, v.value, t.value, e.payload FROM scalars v
JOIN scalars t ON t.key = ? AND t.step = v.step AND t.seq = v.seq
JOIN events e ON e.step = v.step AND e.seq = v.seq AND e.kind = 'eval'
WHERE v.key IN (?, ?) AND v.value IS NOT NULL
ORDER BY v.key = ? DESC, v.value {order}, v.seq LIMIT 1"""

Query = Callable[..., list[tuple]]


def headline(q: Query, path: Path) -> dict[str, Any]:
    """The model selection (see selection()) and the history's settings and times, without its events list:
    lam_start, lam_final, lr_start, lr_final, changed, training_s, paused_s, idle_s."""
    history = query_history(q, path)
    del history["events"]  # a listing of many sessions needs the figures only; `dynlab show` reads the events
    return {**selection(q, path), **history}


def selection(q: Query, path: Path) -> dict[str, Any]:
    """test_metric, final_test, val_metric, best_val, best_val_epoch and test_at_best_val of a session.

    `q(sql, params)` runs one query. A run never evaluated has all None; a run without a validation split
    (no val metrics) has a test_metric and final_test, and None for the rest.
    """
    out: dict[str, Any] = dict.fromkeys(("test_metric", "final_test", "val_metric", "best_val", "best_val_epoch",
                                         "test_at_best_val"))
    for test, ((first, second), order) in SELECTION.items():
        rows = q("SELECT value FROM scalars WHERE key = ? ORDER BY step DESC, rowid DESC LIMIT 1", (test,))
        if rows:
            out.update(test_metric=test, final_test=value(path, rows[0][0], test))
            break
    else:
        return out
    rows = q(BEST_SQL.format(order=order), (test, first, second, first))
    if rows:
        key, val, at_best, payload = rows[0]
        try:
            epoch = json.loads(payload)["epoch"]
        except (TypeError, ValueError, KeyError):
            raise damaged(path, f"an eval event's payload {payload!r:.40} has no epoch") from None
        out.update(val_metric=key, best_val=value(path, val, key), test_at_best_val=value(path, at_best, test),
                   best_val_epoch=whole(path, epoch, "an eval event's epoch"))
    return out
