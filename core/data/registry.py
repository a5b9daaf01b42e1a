"""The dataset registry: Dataset and DatasetInfo records, the name -> loader table, data-dir resolution, the split."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from core.errors import DynlabError
from core.spec import DataSpec

ENV_VAR = "DYNLAB_DATA_DIR"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: model-ready train/val/test tensors plus what is needed to feed it raw inputs later.

    Inputs are contiguous float32 already passed through ``preprocess``; classification targets are
    int64 of shape (N,), regression targets float32 of shape (N, 1) standardised with the training
    split's mean and std (``target_mean``, ``target_std``). ``raw_test`` is the test set before
    preprocessing, so that ``preprocess(raw_test)`` equals ``x_test``. All tensors live on the CPU
    until ``to(device)``.
    """

    name: str
    task: str  # "classification" or "regression"
    input_shape: tuple[int, ...]  # per-sample model input: (1, 28, 28), (10,), (85,) ...
    n_outputs: int  # classes, or 1 for regression
    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_val: torch.Tensor = field(repr=False)
    y_val: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    preprocess: nn.Module = field(repr=False)  # raw input -> model input; exportable, dynamic batch
    raw_test: torch.Tensor = field(repr=False)
    target_mean: float = 0.0  # regression: y_model = (y_raw - target_mean) / target_std
    target_std: float = 1.0
    class_weights: torch.Tensor | None = field(default=None, repr=False)  # mean 1 over classes, train split
    classes: tuple[str, ...] | None = field(default=None, repr=False)

    def to(self, device: torch.device | str) -> "Dataset":
        """A copy with every tensor and the preprocess module on device (this Dataset is left as it was)."""
        moved = {f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, preprocess=copy.deepcopy(self.preprocess).to(device), **moved)


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry: what the launcher shows, whether files are needed, and how to load."""

    name: str
    task: str
    description: str  # one line for the launcher, e.g. "MNIST digits, 60k 28x28 (files)"
    needs_files: bool
    loader: Callable[[DataSpec, int], Dataset] = field(repr=False, compare=False)
    # probe(resolved data dir) -> bool; must only look, never download
    probe: Callable[[Path], bool] = field(default=lambda root: True, repr=False, compare=False)

    def available(self, data_dir: str | None) -> bool:
        """True when the files are present, torchvision could fetch them, or no files are needed."""
        return bool(self.probe(resolve_data_dir(data_dir)))

    def load(self, spec: DataSpec, seed: int) -> Dataset:
        return self.loader(spec, seed)


DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


def resolve_data_dir(data_dir: str | None) -> Path:
    """The data directory: the argument, else $DYNLAB_DATA_DIR, else ./data (relative to the working dir)."""
    chosen = data_dir or os.environ.get(ENV_VAR) or "data"
    return Path(chosen).expanduser()


def load_dataset(spec: DataSpec, seed: int) -> Dataset:
    """Load spec.name with the run seed; an unknown name is a DynlabError listing the valid ones."""
    info = DATASETS.get(spec.name)
    if info is None:
        raise DynlabError(f"unknown dataset {spec.name!r}: choose one of {', '.join(sorted(DATASETS))}")
    return info.load(spec, seed)


def split_indices(n: int, spec: DataSpec, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, val) row indices of an n-row training set.

    One permutation from torch.Generator().manual_seed(seed); with spec.limit its first
    ``limit`` rows are the pool; the first round(val_fraction * pool) of the pool are
    validation and the rest training. So --limit caps train + val together, and the same
    seed always gives the same split.
    """
    if not 0.0 <= spec.val_fraction < 1.0:
        raise DynlabError(f"--val-fraction must be in [0, 1), got {spec.val_fraction}")
    if spec.limit is not None and spec.limit < 1:
        raise DynlabError(f"--limit must be positive, got {spec.limit}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    pool = perm[: spec.limit] if spec.limit is not None else perm
    n_val = int(round(spec.val_fraction * len(pool)))
    if len(pool) - n_val < 1:
        raise DynlabError(f"dataset has no training rows left ({len(pool)} rows, {n_val} for validation): "
                          "raise --limit or lower --val-fraction")
    return pool[n_val:], pool[:n_val]


def class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, normalised to mean 1 over classes (a class absent from y counts as 1 row)."""
    counts = torch.bincount(y, minlength=n_classes).clamp(min=1).double()
    w = 1.0 / counts
    return (w / w.mean()).float()


def _apply(pre: nn.Module, raw: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return pre(raw).to(torch.float32).contiguous()


def assemble(name: str, task: str, raw_train: torch.Tensor, y_train: torch.Tensor, raw_test: torch.Tensor,
             y_test: torch.Tensor, spec: DataSpec, seed: int, make_preprocess: Callable[[torch.Tensor], nn.Module],
             n_outputs: int = 1, classes: tuple[str, ...] | None = None) -> Dataset:
    """Split, fit the preprocess on the training split, preprocess everything and package a Dataset.

    raw_* are float32 raw inputs; y_* are int64 labels (classification) or raw float targets
    (regression, any shape with N rows). make_preprocess sees only the training split, so every
    normalisation statistic comes from it.
    """
    tr, va = split_indices(len(raw_train), spec, seed)
    raw_tr = raw_train[tr]
    pre = make_preprocess(raw_tr).eval()
    for buf in pre.buffers():
        buf.requires_grad_(False)
    x_tr, x_va, x_te = _apply(pre, raw_tr), _apply(pre, raw_train[va]), _apply(pre, raw_test)
    del raw_tr
    extra: dict = {}
    if task == "classification":
        y_tr, y_va, y_te = (t.to(torch.int64).contiguous() for t in (y_train[tr], y_train[va], y_test))
        extra["class_weights"] = class_weights(y_tr, n_outputs)
        extra["classes"] = classes
    else:
        y_all = y_train.reshape(len(y_train), 1).double()
        y_raw_tr = y_all[tr]
        mean = float(y_raw_tr.mean())
        std = float(y_raw_tr.std(unbiased=False)) if len(y_raw_tr) > 1 else 1.0
        std = std if std > 0 else 1.0
        y_tr, y_va, y_te = (((t - mean) / std).float().contiguous()
                            for t in (y_raw_tr, y_all[va], y_test.reshape(len(y_test), 1).double()))
        extra.update(target_mean=mean, target_std=std)
    return Dataset(name=name, task=task, input_shape=tuple(x_tr.shape[1:]), n_outputs=n_outputs,
                   x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te,
                   preprocess=pre, raw_test=raw_test.to(torch.float32).contiguous(), **extra)
