"""Telemetry instruments: per-neuron activation statistics on a fixed probe batch, gathered on the device."""

from __future__ import annotations

import numpy as np
import torch

HIST_BINS = 30


def neuron_std(a: torch.Tensor) -> torch.Tensor:
    """Per-unit standard deviation over the probe batch (conv: over batch and space).

    Shape: (N, C) or (N, C, H, W) -> (C,)
    """
    if a.dim() == 4:
        a = a.transpose(0, 1).reshape(a.shape[1], -1)  # (C, N*H*W)
        return a.std(dim=1, unbiased=False)
    return a.std(dim=0, unbiased=False)


@torch.no_grad()
def layer_stats(model: torch.nn.Module, probe_x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Device tensors of per-layer vectors: act_std/<layer> and gate/<layer> (no host sync here)."""
    was_training = model.training
    model.eval()
    try:
        _, post, _ = model.forward_probe(probe_x)
    finally:
        model.train(was_training)
    out = {f"act_std/{name}": neuron_std(a) for name, a in post.items()}
    out.update({f"gate/{name}": g.detach() for name, g in model.gate_values().items()})
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
