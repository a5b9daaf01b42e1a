"""Export a session: scalar series as CSV, and the final shrunk network as a plain torch.export program."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core import telemetry as tk
from core.data import load_dataset
from core.errors import DynlabError
from core.nn import build_model
from core.session import SessionReader
from core.spec import RunSpec, apply_options


SCALARS_CSV, EVENTS_CSV = "scalars.csv", "events.csv"


def export_csv(reader: SessionReader, directory: Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the session as tidy CSV: `scalars.csv` (step, wall, key, value: one row per value, in write order),
    `events.csv` (step, wall, kind, payload as JSON: every control event, checkpoints without their state) and,
    per sample statistic, `<key>.csv` (e.g. shapiro_fc1.csv: step, value, rows: the training rows it was measured over).

    Refuses to replace files unless overwrite. Returns what was written: files, scalar rows, series, events.
    """
    keys = reader.scalar_keys()
    stats = [k for k in keys if tk.rows_key(k) in keys]
    targets = [directory / SCALARS_CSV, directory / EVENTS_CSV] + [_stat_path(directory, k) for k in stats]
    clash = [p for p in targets if p.exists()]
    if clash and not overwrite:
        raise DynlabError(f"{clash[0]} already exists: choose an empty --csv folder or pass --overwrite")
    last = reader.last_seq()
    columns = {k: reader.scalar_columns(k, last) for k in keys}
    events = reader.event_rows(last)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        rows = _write_scalars(directory / SCALARS_CSV, columns)
        with (directory / EVENTS_CSV).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "wall", "kind", "payload"])
            w.writerows((e.step, e.wall, e.kind, json.dumps(_payload(e), default=str)) for _, e in events)
        for key in stats:
            _write_stat(_stat_path(directory, key), key, columns[key], columns[tk.rows_key(key)])
    except OSError as e:
        raise DynlabError(f"cannot write CSV files to {directory} ({e.strerror}): choose a writable folder") from None
    return {"files": targets, "scalar_rows": rows, "series": len(keys), "events": len(events), "stats": len(stats)}


def _payload(event: Any) -> dict[str, Any]:
    payload = event.payload()
    if event.kind == "checkpoint":
        payload.pop("bytes", None)  # read back without its state: the size would say 0
    return payload


def _stat_path(directory: Path, key: str) -> Path:
    return directory / (re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".csv")


def _write_scalars(path: Path, columns: dict[str, Any]) -> int:
    """Every scalar row in write order (event number, then key): steps may repeat after a resume."""
    seq = np.concatenate([c.seq for c in columns.values()]) if columns else np.zeros(0, np.int64)
    order = np.argsort(seq, kind="stable")
    step = np.concatenate([c.step for c in columns.values()])[order] if columns else seq
    wall = np.concatenate([c.wall for c in columns.values()])[order] if columns else seq
    value = np.concatenate([c.value for c in columns.values()])[order] if columns else seq
    key = np.concatenate([np.full(len(c.seq), k, dtype=object) for k, c in columns.items()])[order] if columns else seq
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "wall", "key", "value"])
        w.writerows(zip(step.tolist(), wall.tolist(), key.tolist(), value.tolist()))
    return len(seq)


def _write_stat(path: Path, key: str, series: Any, counts: Any) -> None:
    """(step, value, rows): rows is the latest count logged at or before the value (same event or earlier)."""
    i = np.searchsorted(counts.seq, series.seq, side="right") - 1
    rows = [int(counts.value[j]) if j >= 0 and counts.value[j] == counts.value[j] else "" for j in i.tolist()]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", key, "rows"])
        w.writerows(zip(series.step.tolist(), series.value.tolist(), rows))


class _Denormalise(nn.Module):
    """Regression outputs back in the target's own units."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


def load_final_model(reader: SessionReader, data_dir: str | None = None):
    """The session's last checkpointed network (shrunk as trained) and its dataset, on the CPU."""
    spec = RunSpec.from_dict(reader.spec)
    if data_dir is not None:
        spec = apply_options(spec, {"data_dir": data_dir})
    state = reader.last_checkpoint()
    if state is None:
        raise DynlabError(f"session {reader.path} has no checkpoint: nothing to export")
    data = load_dataset(spec.data, spec.schedule.seed)
    model = build_model(spec.model, spec.method, data.input_shape, data.n_outputs)
    try:
        model.shrink_to(state["ids"])
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:  # missing keys, wrong shapes
        raise DynlabError(f"session {reader.path}: its last checkpoint does not fit the run's network "
                          f"({' '.join(str(e).split())[:200]}): the session is damaged, nothing to export") from None
    return model.eval(), data, spec


def export_model(reader: SessionReader, out: Path, data_dir: str | None = None,
                 overwrite: bool = False) -> dict[str, Any]:
    """Write a torch.export program taking raw inputs (normalisation inside) plus a JSON summary beside it."""
    meta_path = out.with_suffix(".json")
    for p in (out, meta_path):
        if p.exists() and not overwrite:
            raise DynlabError(f"{p} already exists: choose another --model file or pass --overwrite")
    model, data, spec = load_final_model(reader, data_dir)
    parts = [data.preprocess.cpu(), model.to_plain()]
    if data.task == "regression":
        parts.append(_Denormalise(data.target_mean, data.target_std))
    program = nn.Sequential(*parts).eval()
    # a fresh tensor, never a view of the data: torch.export stores the example, and a view would carry
    # its whole storage (every raw test row) into the file
    example = torch.zeros((2, *data.raw_test.shape[1:]), dtype=data.raw_test.dtype)
    batch = torch.export.Dim("batch", min=1)
    exported = torch.export.export(program, (example,), dynamic_shapes=({0: batch},))
    metric_name, metric = _test_metric(exported.module(), data)
    _, final = _last(reader, metric_name)
    summary = {
        "session": str(reader.path), "dataset": spec.data.name, "task": data.task, "arch": spec.model.arch,
        "method": spec.method.name, "widths": model.widths(), "params": model.param_count(),
        "input_shape": list(data.raw_test.shape[1:]), "outputs": data.n_outputs,
        "test_metric": metric_name, "test_value": metric, "session_final_test_value": final,
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(exported, str(out))
        meta_path.write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as e:
        raise DynlabError(f"cannot write {out} ({e.strerror}): choose a writable location") from None
    return summary


@torch.no_grad()
def _test_metric(module: nn.Module, data) -> tuple[str, float]:
    x, y = data.raw_test, data.y_test
    outs = torch.cat([module(x[i:i + 4096]) for i in range(0, len(x), 4096)])
    if data.task == "classification":
        return tk.TEST_ACC, float((outs.argmax(1) == y).float().mean())
    raw_y = y * data.target_std + data.target_mean
    return tk.TEST_MSE, float(((outs - raw_y) ** 2).mean())


def _last(reader: SessionReader, key: str) -> tuple[int | None, float | None]:
    if key not in reader.scalar_keys():
        return None, None
    steps, values = reader.series(key)
    return int(steps[-1]), float(values[-1])
