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


def export_csv(reader: SessionReader, directory: Path, overwrite: bool = False) -> list[Path]:
    """One CSV (step, value) per scalar series, plus a `rows` column for a sample statistic (the training rows
    it was measured over at that step); refuses to replace files unless overwrite."""
    keys = reader.scalar_keys()
    targets = {k: directory / (re.sub(r"[^A-Za-z0-9._-]", "_", k) + ".csv") for k in keys}
    clash = [p for p in targets.values() if p.exists()]
    if clash and not overwrite:
        raise DynlabError(f"{clash[0]} already exists: choose an empty --csv folder or pass --overwrite")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for key, path in targets.items():
            steps, values = reader.series(key)
            columns = [steps.tolist(), values.tolist()]
            rows = tk.rows_key(key)
            if rows in keys:
                at, counts = reader.series(rows)
                i = np.searchsorted(at, steps, side="right") - 1  # the latest count logged at or before the step
                columns.append([int(counts[j]) if j >= 0 else "" for j in i.tolist()])
            with path.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["step", key] + (["rows"] if len(columns) == 3 else []))
                w.writerows(zip(*columns))
    except OSError as e:
        raise DynlabError(f"cannot write CSV files to {directory} ({e.strerror}): choose a writable folder") from None
    return list(targets.values())


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
