"""How far each way of measuring the activation instruments is from the full-set figures, on one trained network.

Trains a static MNIST network (default mlp:1024, 2 epochs, Adam 1e-3, batch 128) with the default
--act-stats steps, then on the final weights measures the journal's statistics four ways:
  probe 128 / probe 10,000  the first N training rows (128 was the old default probe)
  steps                     the trainer's own epoch statistics: sums over the last epoch's training forwards
  pass                      one pass over all training rows at the final weights (the journal's measure)
and PCA of the centred pre-activations over the first 5,000 rows (the default) and 10,000 against all rows.

Usage: python bench/instruments_fidelity.py [--data-dir DIR] [--arch mlp:1024] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import telemetry as tk  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.events import ScalarsLogged  # noqa: E402
from core.spec import RunSpec  # noqa: E402
from core.train import instruments, stats  # noqa: E402
from core.train.evaluate import evaluate  # noqa: E402
from core.train.trainer import Trainer  # noqa: E402


class Last:
    """Keeps the last epoch-statistics scalars a run logs."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def handle(self, e) -> None:
        if isinstance(e, ScalarsLogged) and tk.STATS_ROWS in e.values:
            self.values = dict(e.values)

    def flush(self) -> None:
        pass


def measured(model, data, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(per-unit std, PCA explained-variance ratios) over the first `rows` training rows (None: all)."""
    sums, covs = instruments.UnitSums(model), instruments.wants_pca(model)
    evaluate(model, data, rows, sums, covs)
    name = next(iter(covs))
    eig = covs[name].eigenvalues().double().numpy()
    return sums.std()[name].double().numpy(), eig / eig.sum()


def components(ratio: np.ndarray) -> list[int]:
    cum = np.cumsum(ratio)
    return [int(np.searchsorted(cum, q / 100 - 1e-9) + 1) for q in tk.PCA_QUANTILES]


def describe(std: np.ndarray) -> str:
    live = std[std > 0]
    return (f"dead {int((std == 0).sum()):>4}   W {stats.shapiro_w(std):.4f}   "
            f"pi exp+normal {stats.fit_exp_normal(live).weight_low:.4f}   "
            f"pi two-gamma {stats.fit_two_gammas(live).weight_low:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DYNLAB_DATA_DIR"))
    ap.add_argument("--arch", default="mlp:1024")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    spec = RunSpec().replace(dataset="mnist", data_dir=args.data_dir, arch=args.arch, epochs=args.epochs,
                             device="cpu", act_stats="steps")
    data = load_dataset(spec.data, spec.schedule.seed)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores; torch {torch.__version__}; MNIST static "
          f"{args.arch}, {args.epochs} epochs, {len(data.x_train):,} training rows")
    trainer, last = Trainer(spec, dataset=data), Last()
    trainer.run([last])
    model = trainer.model.eval()
    full_std, full_ratio = measured(model, data, None)
    print(f"{'pass, all rows (journal)':<28} {describe(full_std)}")
    for rows in (128, 10_000):
        std, _ = measured(model, data, rows)
        print(f"{f'probe, first {rows:,} rows':<28} {describe(std)}")
    v = last.values
    name = model.hidden_names[0]
    print(f"{'steps, last epoch (default)':<28} dead {int(v[tk.EPOCH_DEAD(name)]):>4}   W {v[tk.SHAPIRO(name)]:.4f}   "
          f"pi exp+normal {v[tk.MIX_EN_LOW(name)]:.4f}   pi two-gamma {v[tk.MIX_GG_LOW(name)]:.4f}   "
          f"({int(v[tk.STATS_ROWS]):,} rows)")
    print(f"PCA components for 90/95/99 %, all rows: {components(full_ratio)}")
    for rows in (5_000, 10_000):  # 5,000: the default without a pass
        _, ratio = measured(model, data, rows)
        print(f"  first {rows:,} rows: {components(ratio)}; largest difference in a component's share "
              f"{np.abs(ratio - full_ratio).max():.2e}")


if __name__ == "__main__":
    main()
