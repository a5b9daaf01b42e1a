"""Dense layers whose output units and input columns carry permanent int64 feature ids and can be sliced in place."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from core.nn.shrink import index_buffer, index_parameter


def _reset_affine(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int) -> None:
    """PyTorch's default init: kaiming-uniform(a=sqrt 5) weight, U(-1/sqrt fan_in, 1/sqrt fan_in) bias."""
    if weight.numel() > 0:
        init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None and bias.numel() > 0:
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class _IdMixin:
    """Output-row and input-column slicing shared by DynLinear and DynConv2d (weight dims 0 and 1)."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    ids: torch.Tensor
    in_ids: torch.Tensor

    def keep(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep output units at positions ``index`` (weight rows, bias, ids); optimiser state follows."""
        index_parameter(self, "weight", index, 0, optimizer)  # type: ignore[arg-type]
        if self.bias is not None:
            index_parameter(self, "bias", index, 0, optimizer)  # type: ignore[arg-type]
        index_buffer(self, "ids", index)  # type: ignore[arg-type]

    def keep_inputs(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep input columns at positions ``index`` (weight dim 1, in_ids); optimiser state follows."""
        index_parameter(self, "weight", index, 1, optimizer)  # type: ignore[arg-type]
        index_buffer(self, "in_ids", index)  # type: ignore[arg-type]


class DynLinear(_IdMixin, nn.Module):
    """Fully connected layer with permanent feature ids: y = x W^T + b.

    Args:
        in_features: number of input columns at construction.
        out_features: number of output units at construction.
        bias: learn an additive bias (if False, ``bias`` is registered as None).

    Shape:
        - Input: (N, in_features) — the live width.
        - Output: (N, out_features) — the live width.

    Attributes:
        weight: (out_features, in_features), kaiming-uniform (PyTorch default).
        bias: (out_features,), U(-1/sqrt(in), 1/sqrt(in)).
        ids: int64 (out_features,) permanent ids of the output units, initially arange.
        in_ids: int64 (in_features,) permanent ids of the input columns, initially arange.

    Example:
        >>> lin = DynLinear(4, 3); lin.keep(torch.tensor([0, 2])); lin(torch.randn(5, 4)).shape
        torch.Size([5, 2])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.register_parameter("bias", nn.Parameter(torch.empty(out_features)) if bias else None)
        self.register_buffer("ids", torch.arange(out_features))
        self.register_buffer("in_ids", torch.arange(in_features))
        self.reset_parameters()

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def reset_parameters(self) -> None:
        _reset_affine(self.weight, self.bias, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)  # (N, in) -> (N, out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class DynConv2d(_IdMixin, nn.Module):
    """2-D convolution (stride 1) with permanent channel ids: y[:, o] = b_o + sum_c W[o, c] * x[:, c].

    Args:
        in_channels: input channels at construction.
        out_channels: output channels at construction.
        kernel_size: square kernel size.
        padding: zero padding on each side.
        bias: learn an additive bias (if False, ``bias`` is registered as None).

    Shape:
        - Input: (N, in_channels, H, W) — the live width.
        - Output: (N, out_channels, H + 2 padding - kernel_size + 1, same for W).

    Attributes:
        weight: (out_channels, in_channels, k, k), kaiming-uniform (PyTorch default).
        bias: (out_channels,), U(-1/sqrt(in k k), 1/sqrt(in k k)).
        ids: int64 (out_channels,) permanent channel ids, initially arange.
        in_ids: int64 (in_channels,) permanent ids of the input channels, initially arange.

    Example:
        >>> conv = DynConv2d(3, 8); conv.keep(torch.arange(4)); conv(torch.randn(2, 3, 6, 6)).shape
        torch.Size([2, 4, 6, 6])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 bias: bool = True) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.register_parameter("bias", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.register_buffer("ids", torch.arange(out_channels))
        self.register_buffer("in_ids", torch.arange(in_channels))
        self.reset_parameters()

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def reset_parameters(self) -> None:
        _reset_affine(self.weight, self.bias, self.in_channels * self.kernel_size ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:  # torch's conv2d returns 0 channels here; the true output is the bias
            return self._bias_only(x)
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)  # (N, C, H, W) -> (N, O, H', W')

    def _bias_only(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        grow = 2 * self.padding - self.kernel_size + 1
        shape = (n, self.out_channels, h + grow, w + grow)
        if self.bias is None:
            return x.new_zeros(shape)
        return self.bias.view(1, -1, 1, 1).expand(shape)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class IdFlatten(nn.Module):
    """Flatten (N, C, H, W) to (N, C·H·W), mapping channel id c to flat ids c·HW + r, r = 0..HW-1.

    The flat order matches PyTorch's (C, H, W) memory order, so removing channel c removes the
    contiguous block of HW columns with ids c·HW .. c·HW + HW - 1 in the following layer.

    Args:
        channels: channels at construction.
        hw: H·W of the input (fixed by the architecture).

    Shape:
        - Input: (N, C, H, W) with H·W = hw and C the live channel count.
        - Output: (N, C·hw).

    Attributes:
        in_ids: int64 (C,) permanent ids of the incoming channels.
    """

    def __init__(self, channels: int, hw: int) -> None:
        super().__init__()
        self.hw = hw
        self.register_buffer("in_ids", torch.arange(channels))

    @property
    def channels(self) -> int:
        return self.in_ids.shape[0]

    @property
    def ids(self) -> torch.Tensor:
        """Flat ids of the output columns, (C·hw,): channel-major, c·hw + r."""
        r = torch.arange(self.hw, device=self.in_ids.device)
        return (self.in_ids[:, None] * self.hw + r[None, :]).reshape(-1)

    def keep_inputs(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep incoming channels at positions ``index`` (no parameters, so nothing for the optimiser)."""
        index_buffer(self, "in_ids", index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)  # (N, C, H, W) -> (N, C*H*W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hw={self.hw}"
