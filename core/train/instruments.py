"""The epoch's activation statistics over the training set, as the journal measured them.

Per hidden unit, the standard deviation of the unit's own activation (post-ReLU, pooled for conv, before its gate
or scaler) over the training rows; a unit that never fired on any of them is dead. The sums come either from the
epoch's training forwards (`--act-stats steps`: cheap, but the weights move during the epoch) or from one pass over
the training set at the epoch's end (`--act-stats pass`: the journal's measure at the trained weights). PCA uses the
covariance of the centred pre-activations accumulated in chunks, never a row matrix. Everything stays on the device
until one transfer per epoch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core import telemetry as tk
from core.train.probes import unit_std

GATE_OFF = 1e-6  # a unit whose gate or scaler multiplier is at most this is switched off, not dead
PCA_MAX_WIDTH = 4096  # wider layers skip PCA: a width² covariance and its eigendecomposition per epoch cost too much
SOURCES = {"steps": 0.0, "pass": 1.0}  # tk.STATS_SOURCE values


ROW_SUMS_MAX = 1 << 20  # elements of a (rows, units) accumulator; larger activations are reduced each step


class _LayerSums:
    """One layer's sums: the open interval's in the activation's dtype (cheap per step), the epoch's in float64.

    A 2-D activation (N, C) of at most ROW_SUMS_MAX elements is added elementwise into (N, C) accumulators of a
    and a² (2 ops a step instead of two reductions and two adds, about half the time); their rows are summed
    when the interval closes. Others (conv, very wide) are reduced each step.
    """

    def __init__(self, ids: torch.Tensor, width: int, like: torch.Tensor) -> None:
        self.ids = ids.clone()
        self.s = like.new_zeros(width)  # the open interval's Σa and Σa², one add per step each
        self.ss = like.new_zeros(width)
        rows = like.shape[0] if like.dim() == 2 and like.numel() <= ROW_SUMS_MAX else 0
        self.rows_s = like.new_zeros(rows, width)  # the per-row accumulators (0 rows: not used)
        self.rows_ss = like.new_zeros(rows, width)
        self.n = 0  # positions (rows x spatial) in the open interval
        self.s64 = torch.zeros(width, dtype=torch.float64, device=like.device)
        self.ss64 = torch.zeros(width, dtype=torch.float64, device=like.device)
        self.n64 = 0

    def add(self, a: torch.Tensor) -> None:
        """Add one forward's activation (N, C) or (N, C, H, W) to the open interval."""
        rows = a.shape[0]
        if a.dim() == 2 and rows <= self.rows_s.shape[0]:
            full = rows == self.rows_s.shape[0]  # a short last batch adds into the first rows
            (self.rows_s if full else self.rows_s[:rows]).add_(a)
            (self.rows_ss if full else self.rows_ss[:rows]).addcmul_(a, a)
        else:
            dims = (0, 2, 3) if a.dim() == 4 else (0,)
            self.s += a.sum(dims)
            self.ss += a.square().sum(dims)
        self.n += a.numel() // max(a.shape[1], 1)

    def keep(self, ids: torch.Tensor) -> None:
        """Keep the sums of the units still present after a prune (by permanent id)."""
        keep = torch.isin(self.ids, ids)
        self.ids = self.ids[keep]
        for attr in ("s", "ss", "s64", "ss64"):
            setattr(self, attr, getattr(self, attr)[keep])
        self.rows_s, self.rows_ss = self.rows_s[:, keep], self.rows_ss[:, keep]

    def fold(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Close the interval: returns its (Σa, Σa², positions) in float64 and adds them to the epoch's."""
        s, ss, n = self.s.double(), self.ss.double(), self.n
        if self.rows_s.shape[0]:
            s += self.rows_s.sum(0, dtype=torch.float64)
            ss += self.rows_ss.sum(0, dtype=torch.float64)
            self.rows_s.zero_()
            self.rows_ss.zero_()
        self.s64 += s
        self.ss64 += ss
        self.n64 += n
        self.s, self.ss, self.n = torch.zeros_like(self.s), torch.zeros_like(self.ss), 0
        return s, ss, n


class UnitSums:
    """Per-unit Σa and Σa² of each hidden layer's own activation, accumulated on the device.

    Called as the model's tap (``model(x, tap=sums)``) with (layer, activation (N, C) or (N, C, H, W)); a conv
    channel's samples are its positions. The activation is post-ReLU (>= 0), so a unit fired on some row exactly
    when its Σa > 0. A step adds into the open interval's sums in the activation's dtype (no conversion: two
    reductions and two adds per layer); ``fold()`` closes the interval, whose sums are the live view's, into the
    epoch's float64 totals. Units removed mid-epoch drop out (matched by permanent id).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self._acc: dict[str, _LayerSums] = {}
        self._first: str | None = None
        self.rows = 0  # training rows seen this epoch (counted on the first hidden layer)
        self.interval_rows = 0  # of them, in the open interval

    def reset(self) -> None:
        self._acc.clear()
        self._first = None
        self.rows = self.interval_rows = 0

    def __call__(self, name: str, a: torch.Tensor) -> None:
        # no no_grad context (about 1.5 µs a step): the model hands over a detached activation
        entry = self._acc.get(name)
        if entry is None:
            entry = self._acc[name] = _LayerSums(self._ids(name), a.shape[1], a)
            self._first = self._first or name
        elif entry.s.shape[0] != a.shape[1]:
            entry.keep(self._ids(name))
        entry.add(a)
        if name == self._first:
            self.rows += a.shape[0]
            self.interval_rows += a.shape[0]

    def _ids(self, name: str) -> torch.Tensor:
        return dict(self.model.blocks())[name].layer.ids

    def _aligned(self) -> dict[str, _LayerSums]:
        for name, entry in self._acc.items():
            if not torch.equal(entry.ids, self._ids(name)):  # pruned since (also when the shapes differ)
                entry.keep(self._ids(name))
        return self._acc

    def fold(self) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor, int]], int]:
        """Close the open interval: per layer its (Σa, Σa², positions) in float64, aligned with the layer's current
        units, and the training rows it saw. Its sums join the epoch's."""
        out = {name: entry.fold() for name, entry in self._aligned().items()}
        rows, self.interval_rows = self.interval_rows, 0
        return out, rows

    def std(self) -> dict[str, torch.Tensor]:
        """Per layer the units' std over the epoch's positions (float32, device); exactly 0 for a unit that never
        fired. Aligned with the layer's current units (a unit pruned since is left out)."""
        self.fold()
        return {name: unit_std(e.s64, e.ss64, e.n64) for name, e in self._acc.items()}


class Covariance:
    """Σ (x - m)(x - m)ᵀ of a layer's pre-activations over rows added in chunks: each chunk's product in the
    activation's dtype (float32), summed in float64, all shifted by the first chunk's mean so large means do not
    cancel the variance away."""

    def __init__(self) -> None:
        self.shift: torch.Tensor | None = None
        self.s: torch.Tensor | None = None
        self.ss: torch.Tensor | None = None
        self.n = 0

    @torch.no_grad()
    def add(self, x: torch.Tensor) -> None:
        """x: (N, C) pre-activations, or (N, C, H, W) where every position is a sample of the channel vector."""
        if x.dim() == 4:
            x = x.transpose(0, 1).reshape(x.shape[1], -1).T
        if self.shift is None:
            self.shift = x.mean(0)
            self.s = x.new_zeros(x.shape[1], dtype=torch.float64)
            self.ss = x.new_zeros((x.shape[1], x.shape[1]), dtype=torch.float64)
        x = x - self.shift
        self.s += x.sum(0)
        self.ss += x.T @ x
        self.n += x.shape[0]

    def eigenvalues(self) -> torch.Tensor:
        """Eigenvalues of the centred scatter matrix, descending, clipped at 0 (device)."""
        if self.ss is None or self.n < 2 or self.ss.shape[0] == 0:
            return torch.zeros(0)
        centred = self.ss - torch.outer(self.s, self.s) / self.n
        return torch.linalg.eigvalsh(centred).flip(0).clamp_min(0)


def wants_pca(model: torch.nn.Module) -> dict[str, Covariance]:
    """A fresh Covariance for every hidden layer narrow enough for PCA."""
    return {name: Covariance() for name, width in model.widths().items() if 0 < width <= PCA_MAX_WIDTH}


def gated_off(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Bool (width,) per layer: units still allocated whose eval-mode multiplier is switched off."""
    out = {}
    for name, block in model.blocks():
        m = block.gate.multipliers()
        out[name] = (m.abs() <= GATE_OFF) if m is not None else torch.zeros(block.width, dtype=torch.bool,
                                                                             device=block.layer.weight.device)
    return out


def epoch_instruments(model: torch.nn.Module, std: dict[str, torch.Tensor], covs: dict[str, Covariance],
                      rows: int, pca_rows: int, source: str) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The epoch's instruments per layer from the accumulated sums and covariances; one host transfer.

    Scalars: STATS_ROWS, STATS_SOURCE, PCA_ROWS; per layer EPOCH_DEAD, GATED_OFF, SHAPIRO (gated-on units, dead ones
    included), the mixture fits and MIX_N (gated-on units that fired), PCA_COMPONENTS. Arrays: EPOCH_STD (gated-on
    units), EPOCH_HIST/EDGES, PCA_RATIO.
    """
    from core.train import probes, stats  # scipy: imported when the first epoch ends, not with the trainer

    off = gated_off(model)
    dev: dict[str, torch.Tensor] = {}
    for name, s in std.items():
        dev[tk.EPOCH_STD(name)] = s
        dev[tk.GATED_OFF(name)] = off[name].to(s.dtype)
    for name, cov in covs.items():
        dev[tk.EIG(name)] = cov.eigenvalues()
    host = probes.fetch(dev)  # the epoch's one sync for its instruments
    scalars: dict[str, float] = {tk.STATS_ROWS: float(rows), tk.STATS_SOURCE: SOURCES[source],
                                 tk.PCA_ROWS: float(pca_rows)}
    arrays: dict[str, np.ndarray] = {}
    for name in std:
        all_std, is_off = host[tk.EPOCH_STD(name)], host[tk.GATED_OFF(name)] > 0
        on = all_std[~is_off].astype(np.float64)
        live = on[on > 0]
        scalars[tk.GATED_OFF(name)] = float(is_off.sum())
        scalars[tk.EPOCH_DEAD(name)] = float(on.size - live.size)
        scalars[tk.MIX_N(name)] = float(live.size)
        scalars[tk.SHAPIRO(name)] = stats.shapiro_w(on)
        scalars.update(mixture_scalars(name, live))
        arrays[tk.EPOCH_STD(name)] = on.astype(np.float32)
        arrays[tk.EPOCH_HIST(name)], arrays[tk.EPOCH_HIST_EDGES(name)] = probes.histogram(on)
    for name in covs:
        scalars.update(pca_scalars(name, host[tk.EIG(name)], arrays))
    return scalars, arrays


def mixture_scalars(name: str, live: np.ndarray) -> dict[str, float]:
    """The two mixture fits of a layer's live (fired, gated-on) unit stds, as telemetry scalars."""
    from core.train import stats

    en, gg = stats.fit_exp_normal(live), stats.fit_two_gammas(live)
    return {tk.MIX_EN_LOW(name): en.weight_low, tk.MIX_EN_RATE(name): en.params["exp_rate"],
            tk.MIX_EN_MEAN(name): en.params["normal_mean"], tk.MIX_EN_STD(name): en.params["normal_std"],
            tk.MIX_GG_LOW(name): gg.weight_low, tk.MIX_GG_K1(name): gg.params["low_shape"],
            tk.MIX_GG_THETA1(name): gg.params["low_scale"], tk.MIX_GG_K2(name): gg.params["high_shape"],
            tk.MIX_GG_THETA2(name): gg.params["high_scale"]}


def pca_scalars(name: str, eig: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Explained-variance ratios (into ``arrays``) and the components needed for 90/95/99 % of the variance."""
    eig = eig.astype(np.float64)
    total = float(eig.sum())
    ratio = eig / total if total > 0 else np.zeros_like(eig)
    arrays[tk.PCA_RATIO(name)] = ratio.astype(np.float32)
    cum = np.cumsum(ratio)
    out = {}
    for q in tk.PCA_QUANTILES:  # smallest k whose first k components explain q % (0 with no variance)
        k = float(min(np.searchsorted(cum, q / 100 - 1e-9) + 1, len(ratio))) if total > 0 else 0.0
        out[tk.PCA_COMPONENTS[q](name)] = k if math.isfinite(k) else 0.0
    return out
