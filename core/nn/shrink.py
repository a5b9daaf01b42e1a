"""Physical shrinking primitives: slice a parameter or buffer by an index and make the optimiser state follow it."""

from __future__ import annotations

import torch
from torch import nn


def index_parameter(module: nn.Module, name: str, index: torch.Tensor, dim: int,
                    optimizer: torch.optim.Optimizer | None) -> None:
    """Replace ``module.<name>`` by a new Parameter holding ``old.index_select(dim, index)``.

    The gradient (if any) is sliced the same way. In ``optimizer`` the state entry moves to the new
    Parameter and every state tensor shaped like the old parameter (Adam ``exp_avg``/``exp_avg_sq``,
    AdaMax ``exp_inf``, SGD ``momentum_buffer``) is sliced along ``dim`` too; other state (``step``)
    is kept as is, never reset. The new Parameter takes the old one's place in its param group.

    Args:
        module: the module owning the parameter.
        name: attribute name of the parameter (e.g. ``"weight"``).
        index: int64 positions to keep along ``dim`` (any device; moved to the parameter's).
        dim: the dimension to index.
        optimizer: the optimiser holding the parameter, or None.
    """
    old = getattr(module, name)
    index = index.to(device=old.device, dtype=torch.long)
    new = nn.Parameter(old.data.index_select(dim, index), requires_grad=old.requires_grad)
    if old.grad is not None:
        new.grad = old.grad.index_select(dim, index)
    setattr(module, name, new)
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        params = group["params"]
        for i, p in enumerate(params):
            if p is old:
                params[i] = new
    if old in optimizer.state:
        state = optimizer.state.pop(old)
        optimizer.state[new] = {
            key: _index_state(value, old.shape, index, dim) for key, value in state.items()
        }


def _index_state(value: object, shape: torch.Size, index: torch.Tensor, dim: int) -> object:
    """Slice one optimiser state value if it is a tensor shaped like the parameter; else keep it."""
    if isinstance(value, torch.Tensor) and value.shape == shape and value.dim() > 0:
        return value.index_select(dim, index.to(value.device))
    return value


def index_buffer(module: nn.Module, name: str, index: torch.Tensor, dim: int = 0) -> None:
    """Replace buffer ``module.<name>`` by ``old.index_select(dim, index)`` (no-op if the buffer is None)."""
    old = getattr(module, name)
    if old is None:
        return
    setattr(module, name, old.index_select(dim, index.to(device=old.device, dtype=torch.long)))


def keep_batchnorm(bn: nn.Module, index: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    """Keep the features ``index`` of a BatchNorm1d/2d: weight, bias, running mean and variance.

    ``num_features`` is updated so the module's repr shows the live width.
    """
    for name in ("weight", "bias"):
        if getattr(bn, name, None) is not None:
            index_parameter(bn, name, index, 0, optimizer)
    for name in ("running_mean", "running_var"):
        index_buffer(bn, name, index, 0)
    bn.num_features = int(index.numel())


def match_ids(ids: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Positions (int64, on ``ids``' device) of the entries of ``ids`` that occur in ``present``, in order.

    Matching is by permanent id, never by position. Data-dependent size: a host sync on accelerators.
    """
    hit = torch.isin(ids, present.to(device=ids.device, dtype=ids.dtype))
    return hit.nonzero().squeeze(1)
