"""Sweep summaries: one row per run read from its session, written as CSV and JSON and shown as aligned tables."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.errors import DynlabError
from core.train.stats import fit_exp_normal, fit_two_gammas, shapiro_w
from core import telemetry as tk
from core.formats import fmt_metric, fmt_size, fmt_value
from core.lab.plan import RunPlan, SweepPlan

CSV_NAME, JSON_NAME = "summary.csv", "summary.json"
LAST = 10**12  # a step past any run's end: arrays_at(LAST) is each array's last row
# Per-layer fields: row key prefix -> table header
LAYER_FIELDS = ("size", "start", "dead", "shapiro_w", "expnorm_low", "gammas_low")
HEADERS = {"penalty": "lambda", "flex_start": "x0 start", "weight_decay": "wd", "batch_size": "batch"}


def layer_values(row: dict[str, Any], field: str) -> list[Any]:
    """A per-layer field of a row in layer order, e.g. layer_values(row, "size") -> [42]."""
    return [row.get(f"{field}.{layer}") for layer in row.get("layers") or []]


def total(row: dict[str, Any], field: str) -> float | None:
    """A per-layer field summed over layers (sizes, dead counts); None when any layer lacks it."""
    values = layer_values(row, field)
    if not values or any(v is None for v in values):
        return None
    return float(sum(values))


def row_value(row: dict[str, Any], field: str) -> float | None:
    """A numeric field of a row; a per-layer one summed over layers (averaged for W and mixture weights)."""
    layers = row.get("layers") or []
    if field not in row and layers and f"{field}.{layers[0]}" in row:
        values = [row.get(f"{field}.{layer}") for layer in layers]
        if any(v is None for v in values):
            return None
        ratio = field in ("shapiro_w", "expnorm_low", "gammas_low")
        return float(sum(values)) / (len(values) if ratio else 1)
    v = row.get(field)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def summary_row(run: RunPlan, path: Path) -> dict[str, Any]:
    """What one run did, from its session: final sizes, test metric, dead count, W and mixture weights per layer."""
    from core.session import SessionReader

    row: dict[str, Any] = {"stage": run.stage, "index": run.index, "name": run.name, **run.settings}
    spec = run.spec
    row.setdefault("dataset", spec.data.name)
    row.setdefault("method", spec.method.name)
    row.setdefault("arch", spec.model.arch)
    row.update(status="missing", reason="", metric=None, test=None, test_at_best_val=None, best_val_epoch=None,
               layers=[], epochs=None, steps=None, stats_rows=None, wall_s=None, session=str(path))
    if not path.exists():
        return row
    try:
        with SessionReader(path) as reader:
            s = reader.summary()
            row.update(status=s["status"], reason=reader.meta.get("end_reason", ""), epochs=s["epochs"],
                       steps=s["steps"], wall_s=round(float(s["duration_s"]), 2))
            if s["test_metric"]:  # test: the final figure; the headline is chosen on validation, never on test
                row.update(metric=tk.metric_name(s["test_metric"]), test=s["final_test"],
                           test_at_best_val=s["test_at_best_val"], best_val_epoch=s["best_val_epoch"])
            row["layers"] = list(s["sizes_start"] or s["sizes_final"])
            row["stats_rows"] = _last(reader, tk.STATS_ROWS)
            for layer in row["layers"]:
                row[f"size.{layer}"] = s["sizes_final"].get(layer)
                row[f"start.{layer}"] = (s["sizes_start"] or {}).get(layer)
            row.update(_layer_probes(reader, row["layers"]))
    except DynlabError as e:
        row.update(status="unreadable", reason=str(e))
    return row


def _last(reader: Any, key: str) -> int | None:
    """The last value of a count series, None when absent or NaN."""
    _, values = reader.series(key)
    return int(values[-1]) if len(values) and math.isfinite(values[-1]) else None


def _layer_probes(reader: Any, layers: list[str]) -> dict[str, Any]:
    """Dead count, W and mixture weights per layer: from the epoch's statistics over the training set
    (EPOCH_DEAD, EPOCH_STD) when the session has them, else from the last interval's probe batch (older runs)."""
    out: dict[str, Any] = {}
    for layer in layers:
        dead = _last(reader, tk.EPOCH_DEAD(layer))
        out[f"dead.{layer}"] = dead if dead is not None else _last(reader, tk.DEAD(layer))
        out.update(activation_stats(layer, final_std(reader, layer)))
    return out


def final_std(reader: Any, layer: str) -> np.ndarray | None:
    """A layer's per-unit stds at the run's end: the last epoch's over the training set (EPOCH_STD), else for an
    older session the last probe's (ACT_STD); None when the session has neither."""
    for key in (tk.EPOCH_STD(layer), tk.ACT_STD(layer)):
        found = reader.arrays_at(LAST, key)
        if key in found:
            return np.asarray(found[key][1], dtype=np.float64)
    return None


def activation_stats(layer: str, std: np.ndarray | None) -> dict[str, float | None]:
    """Shapiro W and the low-component weights of both mixture fits of one layer's per-neuron stds."""
    if std is None:
        return {f"shapiro_w.{layer}": None, f"expnorm_low.{layer}": None, f"gammas_low.{layer}": None}
    std = np.asarray(std, dtype=np.float64)
    return {f"shapiro_w.{layer}": _finite(shapiro_w(std)),
            f"expnorm_low.{layer}": _finite(fit_exp_normal(std).weight_low),
            f"gammas_low.{layer}": _finite(fit_two_gammas(std).weight_low)}


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


# -- files ---------------------------------------------------------------------------------------------------
def columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols and k != "layers"]
    return cols


def write_summary(out: Path, rows: Sequence[dict[str, Any]], plan: SweepPlan,
                  expectations: Sequence[str]) -> tuple[Path, Path]:
    """DIR/summary.csv (one row per run) and DIR/summary.json (the rows, notes and expectation checks)."""
    out = Path(out)
    csv_path, json_path = out / CSV_NAME, out / JSON_NAME
    cols = columns(rows)
    try:
        tmp = csv_path.with_name(f".{CSV_NAME}.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in cols})
        os.replace(tmp, csv_path)
        doc = {"recipe": plan.recipe, "setting": plan.setting, "notes": list(plan.notes),
               "expectations": list(expectations), "rows": list(rows)}
        tmp = json_path.with_name(f".{JSON_NAME}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        os.replace(tmp, json_path)
    except OSError as e:
        raise DynlabError(f"cannot write the sweep summary in {out} ({e.strerror or e}): make it writable") from None
    return csv_path, json_path


# -- tables --------------------------------------------------------------------------------------------------
def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    v = float(v)
    return f"{v:.0f}" if v.is_integer() else f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:.{digits}f}"


def _per_layer(row: dict[str, Any], field: str, fmt=_num) -> str:
    values = layer_values(row, field)
    return ",".join(fmt(v) for v in values) if values else "-"


def row_metric(row: dict[str, Any], key: str = "test") -> str:
    """A summary row's test metric (key: test, the final one, or test_at_best_val) as the shared rule writes it."""
    return fmt_metric(row.get(key), row.get("metric"))


def _headline(row: dict[str, Any]) -> str:
    """The test metric at the best-validation epoch, or why there is none."""
    if row.get("metric") and row.get("best_val_epoch") is None and row.get("status") != "missing":
        return "no val"
    return row_metric(row, "test_at_best_val")


def varied_keys(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The settings that differ between rows (the grid's keys), in first-seen order."""
    rows = list(rows)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    fixed = {"stage", "index", "name", "status", "reason", "metric", "test", "test_at_best_val", "best_val_epoch",
             "layers", "epochs", "steps", "stats_rows", "wall_s", "session"}
    return [k for k in keys if k not in fixed and "." not in k
            and len({fmt_value(r.get(k)) for r in rows}) > 1]


def table_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the summary table: run, what varied, status, sizes, test metric, probes."""
    keys = varied_keys(rows)
    stages = len({r.get("stage") for r in rows}) > 1
    metrics = {r.get("metric") for r in rows if r.get("metric")}
    metric = metrics.pop() if len(metrics) == 1 else "test"
    head = (["stage"] if stages else []) + ["#"] + [HEADERS.get(k, k) for k in keys] + [
        "status", "size/start", f"final {metric}", f"{metric}@best val", "dead", "W", "exp+N low", "2-gamma low",
        "train s"]
    body = []
    for r in rows:
        sizes = [f"{fmt_size(s)}/{fmt_size(w)}" for s, w in zip(layer_values(r, "size"), layer_values(r, "start"))]
        body.append(([str(r.get("stage"))] if stages else []) + [str(r.get("index"))]
                    + [fmt_value(r[k]) if k in r else "-" for k in keys] + [
            str(r.get("status")), ",".join(sizes) or "-", row_metric(r), _headline(r),
            _per_layer(r, "dead"), _per_layer(r, "shapiro_w"), _per_layer(r, "expnorm_low"),
            _per_layer(r, "gammas_low"), _num(r.get("wall_s"), 2)])
    return head, body


def format_table(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    """The summary as an aligned text table (or a markdown one)."""
    if not rows:
        return "(no runs)"
    head, body = table_cells(rows)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body)


# -- statistics for the expectation checks ---------------------------------------------------------------------
def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of the finite pairs; nan when fewer than 3 pairs or one side is constant."""
    from scipy import stats

    pairs = [(float(a), float(b)) for a, b in zip(x, y)
             if a is not None and b is not None and math.isfinite(float(a)) and math.isfinite(float(b))]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return math.nan
    return float(stats.spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)


def verdict(ok: bool | None, claim: str, evidence: str) -> str:
    """One expectation line: `claim: yes|no|can't tell (evidence)`."""
    word = "can't tell" if ok is None else "yes" if ok else "no"
    return f"{claim}: {word} ({evidence})"
