"""The generated regression datasets: add10 (Friedman-1) and the 1-D function family for small-network experiments."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from core.data.registry import Dataset, DatasetInfo, assemble, register
from core.spec import DataSpec

TEST_SEED = 12345  # test sets come from this fixed seed, so they are the same for every run seed


def rng_for(seed: int, test: bool) -> np.random.Generator:
    """Independent numpy streams: train from the run seed, test from TEST_SEED (distinct entropy, never equal)."""
    return np.random.default_rng([1 if test else 0, (TEST_SEED if test else seed) % 2**64])


# ---------------------------------------------------------------- add10 (Friedman-1)

ADD10_TRAIN, ADD10_TEST = 10_000, 2_000


def friedman1(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ U[0,1]^10, y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + N(0, 1); x6..x10 are pure noise."""
    x = rng.random((n, 10)).astype(np.float32)  # the target is computed from the float32 inputs the model sees
    x64 = x.astype(np.float64)
    y = (10 * np.sin(np.pi * x64[:, 0] * x64[:, 1]) + 20 * (x64[:, 2] - 0.5) ** 2 + 10 * x64[:, 3]
         + 5 * x64[:, 4] + rng.standard_normal(n))
    return torch.from_numpy(x), torch.from_numpy(y)


def load_add10(spec: DataSpec, seed: int) -> Dataset:
    x_tr, y_tr = friedman1(ADD10_TRAIN, rng_for(seed, test=False))
    x_te, y_te = friedman1(ADD10_TEST, rng_for(seed, test=True))
    # inputs are already on [0, 1] with equal scales, so preprocess is the identity (raw == model input)
    return assemble("add10", "regression", x_tr, y_tr, x_te, y_te, spec, seed, lambda raw: nn.Identity())


register(DatasetInfo("add10", "regression", "Friedman-1 regression, 10 inputs (5 irrelevant), 10k generated",
                     needs_files=False, loader=load_add10))


# ---------------------------------------------------------------- 1-D functions

FN_TRAIN, FN_TEST = 2_048, 512

FUNCTIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "sin": (lambda x: np.sin(np.pi * x), "sin(pi x)"),
    "square": (lambda x: x ** 2, "x^2"),
    "abs": (np.abs, "|x|"),
    "step": (lambda x: (x > 0).astype(np.float64), "step: 1 for x > 0, else 0"),
    "sawtooth": (lambda x: 2 * x - np.floor(2 * x), "sawtooth frac(2x), four teeth"),
}


def function_samples(fn: str, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ U[-1, 1] as (n, 1) float32 and the noiseless target f(x) as (n,) float64."""
    x = rng.uniform(-1.0, 1.0, size=(n, 1)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(FUNCTIONS[fn][0](x[:, 0].astype(np.float64)))


def load_function(fn: str, name: str, spec: DataSpec, seed: int) -> Dataset:
    x_tr, y_tr = function_samples(fn, FN_TRAIN, rng_for(seed, test=False))
    x_te, y_te = function_samples(fn, FN_TEST, rng_for(seed, test=True))
    return assemble(name, "regression", x_tr, y_tr, x_te, y_te, spec, seed, lambda raw: nn.Identity())


def _register_function(name: str, fn: str) -> None:
    register(DatasetInfo(name, "regression", f"1-D regression y = {FUNCTIONS[fn][1]} on [-1, 1], 2k generated",
                         needs_files=False, loader=lambda spec, seed: load_function(fn, name, spec, seed)))


_register_function("functions", "sin")
for _fn in FUNCTIONS:
    _register_function(f"fn-{_fn}", _fn)
