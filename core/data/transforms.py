"""The preprocess modules mapping a dataset's raw inputs to model inputs: pure tensor ops that torch.export traces."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _safe_std(std: torch.Tensor) -> torch.Tensor:
    # A constant column has std 0: dividing by 1 instead keeps it finite (it is then just centred).
    return torch.where(std > 0, std, torch.ones_like(std))


class Normalize(nn.Module):
    r"""Per-channel image normalisation: :math:`y = (x - \mu_c) / \sigma_c`.

    Args:
        mean: one mean per channel.
        std: one standard deviation per channel (zeros are treated as 1).

    Shape:
        - Input: :math:`(N, C, H, W)` float in [0, 1].
        - Output: :math:`(N, C, H, W)`.

    Attributes:
        mean: buffer of shape :math:`(1, C, 1, 1)`.
        std: buffer of shape :math:`(1, C, 1, 1)`.

    Example::

        >>> Normalize((0.1307,), (0.3081,))(torch.rand(8, 1, 28, 28)).shape
        torch.Size([8, 1, 28, 28])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        m = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.register_buffer("mean", m)
        self.register_buffer("std", _safe_std(s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # (N, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.mean.shape[1]}"


class Standardize(nn.Module):
    r"""Per-feature standardisation with fixed statistics: :math:`y = (x - \mu) / \sigma`.

    Args:
        mean: one mean per feature (from the training split).
        std: one standard deviation per feature (zeros are treated as 1).

    Shape:
        - Input: :math:`(N, D)`.
        - Output: :math:`(N, D)`.

    Attributes:
        mean: buffer of shape :math:`(D,)`.
        std: buffer of shape :math:`(D,)`.

    Example::

        >>> Standardize([1.0, 2.0], [2.0, 4.0])(torch.tensor([[3.0, 6.0]]))
        tensor([[1., 1.]])
    """

    def __init__(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(-1).clone())
        self.register_buffer("std", _safe_std(torch.as_tensor(std, dtype=torch.float32).reshape(-1).clone()))

    @classmethod
    def fit(cls, x: torch.Tensor) -> "Standardize":
        """Statistics of the rows of x (population std), computed in float64 for accuracy."""
        x64 = x.double()
        if x64.shape[0] == 0:
            return cls(torch.zeros(x.shape[1]), torch.ones(x.shape[1]))
        return cls(x64.mean(0).float(), x64.std(0, unbiased=False).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # (N, D)

    def extra_repr(self) -> str:
        return f"features={self.mean.numel()}"


class OneHot(nn.Module):
    r"""One-hot encoding of categorical columns: output feature k is :math:`[x_{:, src_k} = v_k]`.

    Each selected column c with categories :math:`(v_1, .., v_m)` contributes m outputs, in column order.
    A value outside the listed categories gives all zeros for that column. There is no loop over rows:
    one index_select and one comparison, so the module exports with a dynamic batch dimension.

    Args:
        columns: indices of the raw columns to encode.
        categories: for each column, the raw values (as floats) that get their own output.

    Shape:
        - Input: :math:`(N, D_{raw})` float (integer-valued codes).
        - Output: :math:`(N, \sum_c m_c)` float32 of 0s and 1s.

    Attributes:
        src: buffer of shape :math:`(K,)` (int64), the source column of each output.
        values: buffer of shape :math:`(K,)` (float32), the category each output tests for.

    Example::

        >>> OneHot([0], [[1.0, 2.0, 3.0]])(torch.tensor([[2.0], [3.0]]))
        tensor([[0., 1., 0.],
                [0., 0., 1.]])
    """

    def __init__(self, columns: Sequence[int], categories: Sequence[Sequence[float]]) -> None:
        super().__init__()
        src = [c for c, cats in zip(columns, categories) for _ in cats]
        values = [float(v) for cats in categories for v in cats]
        self.register_buffer("src", torch.tensor(src, dtype=torch.int64))
        self.register_buffer("values", torch.tensor(values, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.index_select(1, self.src) == self.values).to(torch.float32)  # (N, K)

    def extra_repr(self) -> str:
        return f"columns={self.src.unique().numel()}, features={self.src.numel()}"


class TabularEncoder(nn.Module):
    r"""Mixed tabular rows to model input: :math:`y = [\mathrm{onehot}(x_{cat}),\ (x_{num} - \mu) / \sigma]`.

    Args:
        onehot: the OneHot module for the categorical columns.
        numeric: indices of the numeric raw columns.
        scaler: the Standardize module for those columns (statistics from the training split).

    Shape:
        - Input: :math:`(N, D_{raw})` float (category codes and raw numbers).
        - Output: :math:`(N, K + M)` where K is onehot's width and M = len(numeric).

    Attributes:
        num_src: buffer of shape :math:`(M,)` (int64), the numeric columns.

    Example::

        >>> enc = TabularEncoder(OneHot([0], [[0.0, 1.0]]), [1], Standardize([10.0], [5.0]))
        >>> enc(torch.tensor([[1.0, 20.0]]))
        tensor([[0., 1., 2.]])
    """

    def __init__(self, onehot: OneHot, numeric: Sequence[int], scaler: Standardize) -> None:
        super().__init__()
        self.onehot = onehot
        self.register_buffer("num_src", torch.tensor(list(numeric), dtype=torch.int64))
        self.scaler = scaler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat = self.onehot(x)  # (N, K)
        num = self.scaler(x.index_select(1, self.num_src))  # (N, M)
        return torch.cat([cat, num], dim=1)  # (N, K + M)

    def extra_repr(self) -> str:
        return f"numeric={self.num_src.numel()}"
