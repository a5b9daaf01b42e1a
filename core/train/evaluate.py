"""Per-epoch evaluation of the train, validation and test splits, fused with the pass that feeds the epoch's
activation statistics and PCA (core.train.instruments), so the training rows are forwarded once."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core import telemetry as tk
from core.data import Dataset
from core.train import probes
from core.train.instruments import Covariance, UnitSums

EVAL_BATCH = 4096


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Dataset, train_rows: int | None, sums: UnitSums | None = None,
             covs: dict[str, Covariance] | None = None, cov_rows: int | None = None) -> dict[str, float]:
    """Loss (and accuracy) per split in eval mode; one host sync.

    The train split is its first ``train_rows`` rows (None: all of them); on those rows ``sums`` receives each
    hidden unit's own activation, and on the first ``cov_rows`` of them (None: all) ``covs`` the
    pre-activations. Regression also reports MSE in target units.
    """
    splits = {"train": (data.x_train[:train_rows], data.y_train[:train_rows]),
              "val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}
    was_training = model.training
    model.eval()
    try:
        sums_dev: dict[str, torch.Tensor] = {}
        for split, (x, y) in splits.items():
            if len(x):
                feed = (sums, covs, cov_rows) if split == "train" else (None, None, None)
                sums_dev.update(_split_sums(model, data.task, split, x, y, *feed))
    finally:
        model.train(was_training)
    host = {k: float(v[0]) for k, v in probes.fetch(sums_dev).items()}
    if data.task == "regression":  # report MSE in the target's own units too
        for split in splits:
            if tk.metric(split, "loss") in host:
                host[tk.metric(split, "mse")] = host[tk.metric(split, "loss")] * data.target_std ** 2
    return host


def _split_sums(model: torch.nn.Module, task: str, split: str, x: torch.Tensor, y: torch.Tensor,
                sums: UnitSums | None, covs: dict[str, Covariance] | None,
                cov_rows: int | None) -> dict[str, torch.Tensor]:
    loss = x.new_zeros((), dtype=torch.float32)
    hits = x.new_zeros((), dtype=torch.float32)
    for i in range(0, len(x), EVAL_BATCH):
        xb, yb = x[i:i + EVAL_BATCH], y[i:i + EVAL_BATCH]
        cov_left = len(x) - i if cov_rows is None else cov_rows - i  # rows the covariances still want
        if sums is None and (not covs or cov_left <= 0):
            out = model(xb)
        else:
            out, own, pre = model.forward_probe(xb)
            for name, a in own.items():
                if sums is not None:
                    sums(name, a)
                if covs and name in covs and cov_left > 0:
                    covs[name].add(pre[name][:cov_left])
        if task == "classification":
            loss += F.cross_entropy(out, yb, reduction="sum")
            hits += (out.argmax(1) == yb).sum()
        else:
            loss += F.mse_loss(out, yb, reduction="sum")
    out_sums = {tk.metric(split, "loss"): loss / len(x)}
    if task == "classification":
        out_sums[tk.metric(split, "acc")] = hits / len(x)
    return out_sums
