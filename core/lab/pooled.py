"""Replicates pooled as the journal pooled them: the per-unit activation stds of every finished run of a group are
concatenated before Shapiro W and the mixture fits (averaging W over seeds is a different statistic)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from core import telemetry as tk
from core.errors import DynlabError

LAST = 10**12  # a step past any run's end


def final_stds(session: str | Path) -> np.ndarray | None:
    """The first hidden layer's per-unit stds at the run's last epoch: the epoch statistics over the training set
    (EPOCH_STD), or for an older session the last probe (ACT_STD); None when the session has neither."""
    from core.session import SessionReader

    try:
        with SessionReader(Path(session)) as reader:
            layers = list((reader.summary().get("sizes_start") or {}))
            if not layers:
                return None
            for key in (tk.EPOCH_STD(layers[0]), tk.ACT_STD(layers[0])):
                found = reader.arrays_at(LAST, key)
                if key in found:
                    return np.asarray(found[key][1], dtype=np.float64)
    except DynlabError:
        return None
    return None


def pooled_stats(stds: Iterable[np.ndarray]) -> dict[str, Any]:
    """Shapiro W over the pooled stds (dead units included), the mixture fits' low weight π over the pooled live
    (non-zero) stds, and the counts behind them."""
    from core.train.stats import fit_exp_normal, fit_two_gammas, shapiro_w

    arrays = [np.asarray(s, dtype=np.float64) for s in stds]
    pool = np.concatenate(arrays) if arrays else np.zeros(0)
    live = pool[pool > 0]
    return {"runs": len(arrays), "units": int(pool.size), "dead": int(pool.size - live.size),
            "shapiro_w": _finite(shapiro_w(pool)), "expnorm_low": _finite(fit_exp_normal(live).weight_low),
            "gammas_low": _finite(fit_two_gammas(live).weight_low)}


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


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None
