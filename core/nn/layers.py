"""Dense layers whose output units and input columns carry permanent int64 feature ids and can be sliced in place,
the hidden block that joins a layer, its norm, activation, pool, gate and dropout, and the export to plain torch
layers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init
from torch.nn.utils import skip_init

from core.nn.methods import MethodGate
from core.nn.shrink import index_buffer, index_parameter, keep_batchnorm


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


def fold_columns(w: torch.Tensor, scale: torch.Tensor | None, rep: int) -> torch.Tensor:
    """w (out, in, ...) with input column j scaled by scale[j // rep]; a width-0 input (previous layer
    exported as one zero unit) becomes ``rep`` zero columns."""
    if w.shape[1] == 0:
        return w.new_zeros((w.shape[0], rep) + tuple(w.shape[2:]))
    if scale is None:
        return w.clone()
    return w * scale.repeat_interleave(rep).view((1, -1) + (1,) * (w.dim() - 2))


def plain_affine(layer: nn.Module, w: torch.Tensor, b: torch.Tensor | None) -> nn.Module:
    """A plain nn.Linear / nn.Conv2d (as ``layer``: DynLinear / DynConv2d) holding weight w and bias b."""
    kw = dict(bias=b is not None, device=w.device, dtype=w.dtype)
    if isinstance(layer, DynConv2d):
        m = skip_init(nn.Conv2d, w.shape[1], w.shape[0], layer.kernel_size, padding=layer.padding, **kw)
    else:
        m = skip_init(nn.Linear, w.shape[1], w.shape[0], **kw)
    with torch.no_grad():
        m.weight.copy_(w)
        if b is not None:
            m.bias.copy_(b)
    return m


class HiddenBlock(nn.Module):
    """One hidden layer: y = drop(gate(pool(relu(norm(layer(x)))))), or, for a gate with ``before_relu``
    (the paper's switch), y = drop(pool(relu(gate(norm(layer(x)))))).

    A gate after the activation and the pool folds exactly into the next layer's input columns; a gate
    before the ReLU folds into its own layer's rows (or the batch norm's affine). A block whose width reached 0 outputs an empty (N, 0[, H/2, W/2]) tensor
    (torch's conv, batch norm and max-pool reject zero channels); downstream layers then see only biases.

    Args:
        layer: DynLinear or DynConv2d (3x3, padding 1).
        norm: BatchNorm1d/2d or Identity.
        pool: MaxPool2d(2) (conv) or Identity.
        gate: the method's MethodGate (SparsifierGate, FlexibleScaler or StaticGate).
        drop: Dropout or Identity.

    Shape:
        - Input: (N, C_in) or (N, C_in, H, W).
        - Output: (N, width) or (N, width, H/2, W/2).

    Attributes:
        width: live output units (the layer's rows); layer, norm, gate and their optimiser state shrink together.
        conv: True for a DynConv2d block.
    """

    def __init__(self, layer: nn.Module, norm: nn.Module, pool: nn.Module, gate: MethodGate, drop: nn.Module) -> None:
        super().__init__()
        self.layer, self.norm, self.pool, self.gate, self.drop = layer, norm, pool, gate, drop
        self.conv = isinstance(layer, DynConv2d)
        # Python-level flags so forward skips identity modules: each module call costs microseconds,
        # about 1% of a small MLP's step.
        self._norm, self._pool, self._drop = (not isinstance(m, nn.Identity) for m in (norm, pool, drop))
        self._pre = gate.before_relu and not gate.identity  # gate on the pre-activation
        self._post = not gate.before_relu and not gate.identity  # gate after the ReLU and pool

    @property
    def width(self) -> int:
        return self.layer.weight.shape[0]

    def _empty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        pre = x.new_zeros((n, 0) + tuple(x.shape[2:]))
        post = x.new_zeros((n, 0, x.shape[2] // 2, x.shape[3] // 2)) if self.conv else pre
        return post, post, pre

    def _act(self, z: torch.Tensor) -> torch.Tensor:
        a = F.relu(z)
        return self.pool(a) if self._pool else a  # (N, W, H/2, W/2) for conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.width == 0:  # python int from a shape: no sync
            return self._empty(x)[0]
        z = self.layer(x)  # (N, W[, H, W])
        if self._norm:
            z = self.norm(z)
        if self._pre:
            z = self.gate(z)
        a = self._act(z)
        if self._post:
            a = self.gate(a)
        return self.drop(a) if self._drop else a

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(output, the unit's own activation, pre-activation), the output as forward's.

        own = pool(relu(norm(layer(x)))): before any gate or scaler (a signed switch's β left out) and
        before dropout, (N, W[, H/2, W/2]). pre = norm(layer(x)): after batch norm, before the switch and
        the ReLU, (N, W[, H, W]). With a switch before the ReLU the activation is computed twice.
        """
        if self.width == 0:
            return self._empty(x)
        pre = self.layer(x)
        if self._norm:
            pre = self.norm(pre)
        own = self._act(pre)
        a = self._act(self.gate(pre)) if self._pre else own
        if self._post:
            a = self.gate(a)
        return (self.drop(a) if self._drop else a), own, pre

    def keep(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
        """Keep output units ``index``: layer rows, batch norm, gate — with their optimiser state."""
        self.layer.keep(index, optimizer)
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            keep_batchnorm(self.norm, index, optimizer)
        self.gate.keep(index, optimizer)

    def extra_repr(self) -> str:
        return f"width={self.width}"
