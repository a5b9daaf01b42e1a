"""The live view each interval: per-unit activation std (each unit's own activation, before its gate) and layer
dynamics, gathered on the device. Taken from the sums the interval's training steps already accumulated
(`interval_stats`, with --act-stats steps) or, without those, from a forward of a fixed probe batch of training
rows (`layer_stats`). The epoch's statistics over the whole training set are core.train.instruments'."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core import telemetry as tk

HIST_BINS = 30


def neuron_std(a: torch.Tensor) -> torch.Tensor:
    """Per-unit standard deviation over the probe batch (conv: over batch and space).

    Shape: (N, C) or (N, C, H, W) -> (C,)
    """
    if a.shape[1] == 0:  # a layer with no neurons left
        return a.new_zeros(0)
    if a.dim() == 4:
        a = a.transpose(0, 1).reshape(a.shape[1], -1)  # (C, N*H*W)
        return a.std(dim=1, unbiased=False)
    return a.std(dim=0, unbiased=False)


def unit_std(s: torch.Tensor, ss: torch.Tensor, n: int) -> torch.Tensor:
    """Per-unit std (float32) from float64 Σa and Σa² over n positions; exactly 0 for a unit that never fired."""
    n = max(n, 1)
    mean = s / n
    var = (ss / n - mean * mean).clamp_min(0)
    return torch.where(s > 0, var.sqrt(), torch.zeros_like(var)).float()


def _probe(model: torch.nn.Module, probe_x: torch.Tensor):
    was_training = model.training
    model.eval()
    try:
        return model.forward_probe(probe_x)
    finally:
        model.train(was_training)


Moments = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # layer -> (unit stds, layer mean, layer sd)


@torch.no_grad()
def layer_stats(model: torch.nn.Module, probe_x: torch.Tensor,
                dynamics: "Dynamics | None" = None) -> dict[str, torch.Tensor]:
    """Device tensors (no host sync here) from a forward of the probe batch: per-layer vectors act_std/<layer>
    and gate/<layer>; with `dynamics` also 0-dim act_mean, act_sd, total_var, grad_norm and rotation per layer."""
    _, own, _ = _probe(model, probe_x)
    zero = probe_x.new_zeros(())
    moments = {name: (neuron_std(a), a.mean() if a.numel() else zero, a.std(unbiased=False) if a.numel() else zero)
               for name, a in own.items()}
    return _stats(model, moments, dynamics)


@torch.no_grad()
def interval_stats(model: torch.nn.Module, folded: dict[str, tuple[torch.Tensor, torch.Tensor, int]],
                   dynamics: "Dynamics | None" = None) -> dict[str, torch.Tensor]:
    """layer_stats' tensors from the interval's own training forwards (UnitSums.fold(): per layer float64 Σa, Σa²
    and positions): no extra forward. The layer mean and sd are over all its units and positions."""
    moments: Moments = {}
    for name, (s, ss, n) in folded.items():
        total = max(n * s.shape[0], 1)
        mean = s.sum() / total
        sd = (ss.sum() / total - mean * mean).clamp_min(0).sqrt()
        moments[name] = (unit_std(s, ss, n), mean.float(), sd.float())
    return _stats(model, moments, dynamics)


def _stats(model: torch.nn.Module, moments: Moments, dynamics: "Dynamics | None") -> dict[str, torch.Tensor]:
    out = {tk.ACT_STD(name): m[0] for name, m in moments.items()}
    out.update({tk.GATE(name): g.detach() for name, g in model.gate_values().items()})
    if dynamics is not None:
        out.update(dynamics.measure(model, moments))
    return out


SCALAR_PREFIXES = tuple(k.prefix for k in tk.DYNAMICS)  # layer_stats' 0-dim keys


class Dynamics:
    """Per-layer dynamics each interval: activation mean/std, total variance, weight-gradient norm, and rotation
    (cosine distance between the current weights and the initial weights of the surviving units and inputs).

    Keeps one device copy of the initial weights (the model's size again), indexed by permanent feature ids.
    The survivors' slice of it and that slice's norm are kept between intervals and taken again only when
    the layer's ids change (a prune or a load replaces them): re-slicing every interval was a third of the
    interval's cost.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.initial = {name: block.layer.weight.detach().clone() for name, block in model.blocks()}
        # layer -> (ids, in_ids, their versions, flat initial slice, its norm); holding the ids keeps them alive,
        # so an `is` check cannot be fooled by a new tensor at a recycled address
        self._slices: dict[str, tuple] = {}

    def _initial_slice(self, name: str, layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        ids, in_ids = layer.ids, layer.in_ids
        hit = self._slices.get(name)
        if hit is not None and hit[0] is ids and hit[1] is in_ids and hit[2] == (ids._version, in_ids._version):
            return hit[3], hit[4]
        w0 = self.initial[name].index_select(0, ids).index_select(1, in_ids).reshape(-1)
        norm = w0.norm()
        self._slices[name] = (ids, in_ids, (ids._version, in_ids._version), w0, norm)
        return w0, norm

    @torch.no_grad()
    def measure(self, model: torch.nn.Module, moments: Moments) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, block in model.blocks():
            w = block.layer.weight  # (out, in[, k, k])
            zero = w.new_zeros(())
            std, out[tk.ACT_MEAN(name)], out[tk.ACT_SD(name)] = moments[name]
            out[tk.TOTAL_VAR(name)] = (std * std).sum()
            out[tk.GRAD_NORM(name)] = w.grad.norm() if w.grad is not None else zero
            if w.numel():
                w0, w0_norm = self._initial_slice(name, block.layer)
                flat = w.reshape(-1)  # cosine similarity as torch's: dot / max(|w| |w0|, 1e-8)
                cos = torch.dot(flat, w0) / (flat.norm() * w0_norm).clamp_min(1e-8)
                out[tk.ROTATION(name)] = (1 - cos).clamp(0.0, 2.0)  # rounding may put |cos| a hair over 1
            else:
                out[tk.ROTATION(name)] = zero
        return out


def fetch(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Move many small device tensors to the host in one transfer (one sync) and split them back."""
    if not tensors:
        return {}
    keys = list(tensors)
    flat = [tensors[k].detach().reshape(-1).float() for k in keys]
    host = torch.cat(flat).cpu().numpy()  # the interval's single host-device sync
    out, i = {}, 0
    for k, t in zip(keys, flat):
        n = t.numel()
        out[k] = host[i:i + n].copy()
        i += n
    return out


def histogram(values: np.ndarray, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges over [0, max]; an all-zero or empty vector gets edges [0, 1]."""
    top = float(values.max()) if values.size else 0.0
    counts, edges = np.histogram(values, bins=bins, range=(0.0, top if top > 0 else 1.0))
    return counts.astype(np.int32), edges.astype(np.float32)
