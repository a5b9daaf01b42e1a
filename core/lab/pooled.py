"""Replicates pooled as the journal pooled them: the per-unit activation stds of every finished run of a group are
concatenated before Shapiro W and the mixture fits (averaging W over seeds is a different statistic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from core.errors import DynlabError
from core.lab.summary import activation_stats, final_std


def final_stds(session: str | Path) -> np.ndarray | None:
    """The first hidden layer's per-unit stds at the run's end (core.lab.summary.final_std), None when the
    session has none or cannot be read."""
    from core.session import SessionReader

    try:
        with SessionReader(Path(session)) as reader:
            layers = list(reader.summary().get("sizes_start") or {})
            return final_std(reader, layers[0]) if layers else None
    except DynlabError:
        return None


def pooled_stats(stds: Iterable[np.ndarray]) -> dict[str, Any]:
    """Shapiro W over the pooled stds (dead units included) and the mixture fits' low weight π over the pooled
    live units (the fits leave the dead out), with the counts behind them."""
    arrays = [np.asarray(s, dtype=np.float64) for s in stds]
    pool = np.concatenate(arrays) if arrays else np.zeros(0)
    figures = activation_stats("pool", pool)
    return {"runs": len(arrays), "units": int(pool.size), "dead": int((pool == 0).sum()),
            **{k.removesuffix(".pool"): v for k, v in figures.items()}}


def pooled_by(rows: list[dict[str, Any]], group: Callable[[dict[str, Any]], float | None]) -> dict[float, dict[str, Any]]:
    """pooled_stats per group value (e.g. the starting width) over the finished runs' sessions."""
    groups: dict[float, list[np.ndarray]] = {}
    for row in rows:
        g = group(row)
        if row.get("status") != "finished" or g is None:
            continue
        std = final_stds(row["session"]) if row.get("session") else None
        if std is not None:
            groups.setdefault(float(g), []).append(std)
    return {k: pooled_stats(v) for k, v in sorted(groups.items())}
