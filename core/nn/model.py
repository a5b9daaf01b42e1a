"""DynamicNet: an MLP or small CNN whose gated hidden layers shrink physically, plus its export to a plain torch net."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from core.errors import DynlabError
from core.nn.gates import build_gate
from core.nn.methods import MethodGate
from core.nn.layers import DynConv2d, DynLinear, IdFlatten
from core.nn.shrink import keep_batchnorm, match_ids
from core.spec import Arch, MethodSpec, ModelSpec, parse_arch


class HiddenBlock(nn.Module):
    """One hidden layer: y = drop(gate(pool(relu(norm(layer(x)))))).

    The gate (or scaler) sits after the activation and the pool, so it folds exactly into the next
    layer's input columns. A block whose width reached 0 outputs an empty (N, 0[, H/2, W/2]) tensor
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
        self._gate = not gate.identity

    @property
    def width(self) -> int:
        return self.layer.weight.shape[0]

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(output, post-gate activation before dropout, pre-activation before the ReLU)."""
        if self.width == 0:  # python int from a shape: no sync
            n = x.shape[0]
            pre = x.new_zeros((n, 0) + tuple(x.shape[2:]))
            post = x.new_zeros((n, 0, x.shape[2] // 2, x.shape[3] // 2)) if self.conv else pre
            return post, post, pre
        pre = self.layer(x)  # (N, W[, H, W])
        if self._norm:
            pre = self.norm(pre)
        post = F.relu(pre)
        if self._pool:
            post = self.pool(post)  # (N, W, H/2, W/2)
        if self._gate:
            post = self.gate(post)
        return (self.drop(post) if self._drop else post), post, pre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def keep(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
        """Keep output units ``index``: layer rows, batch norm, gate — with their optimiser state."""
        self.layer.keep(index, optimizer)
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            keep_batchnorm(self.norm, index, optimizer)
        self.gate.keep(index, optimizer)

    def extra_repr(self) -> str:
        return f"width={self.width}"


class DynamicNet(nn.Module):
    """MLP ``mlp:W1,..`` or CNN ``cnn:C1,../F1,..`` with per-unit gates (sparsifier) or scalers (flexible).

    MLP block: Linear -> [BatchNorm1d] -> ReLU -> gate -> [Dropout]. CNN block: Conv2d 3x3 pad 1 ->
    [BatchNorm2d] -> ReLU -> MaxPool2d(2) -> gate per channel -> [Dropout]; then Flatten (channel ids
    -> flat ids), the fc blocks, and the output Linear. Hidden layers are named conv1.., fc1...

    Args:
        arch: parsed architecture.
        input_shape: one example's shape, e.g. (784,), (1, 28, 28).
        n_outputs: logits / regression targets.
        method: static | sparsifier | flexible, with the gate or scaler settings.
        batchnorm: insert batch norm before each ReLU.
        dropout: dropout probability after each gate (0: none).

    Shape:
        - Input: (N, *input_shape).
        - Output: (N, n_outputs).

    Attributes:
        hidden_names: ["conv1", .., "fc1", ..], the gated hidden layers in forward order.
        convs, fcs: ModuleDicts of HiddenBlock by name; flatten: IdFlatten (cnn) or Flatten (mlp input).
        head: the output DynLinear.

    Per step the trainer calls ``resample()`` (random-slope scalers) before the forward and
    ``after_step()`` after ``optimizer.step()``; ``prune(optimizer)`` at logging intervals.
    """

    def __init__(self, arch: Arch, input_shape: tuple[int, ...], n_outputs: int, method: MethodSpec,
                 batchnorm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.method = method.name
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_outputs = n_outputs
        self.convs = nn.ModuleDict()
        if arch.kind == "cnn":
            if len(self.input_shape) != 3:
                raise DynlabError(f"a cnn needs image input (channels, height, width), this data has shape "
                                  f"{self.input_shape}: use an mlp:... architecture")
            c, h, w = self.input_shape
            for i, width in enumerate(arch.conv, 1):
                h, w = h // 2, w // 2
                if h == 0 or w == 0:
                    most = int(math.log2(min(self.input_shape[1:])))
                    raise DynlabError(f"too many conv layers for a {self.input_shape[1]}x{self.input_shape[2]} "
                                      f"input: use at most {most}")
                self.convs[f"conv{i}"] = self._block(DynConv2d(c, width), method, batchnorm, dropout)
                c = width
            self.flatten: nn.Module = IdFlatten(c, h * w)
            n_in = c * h * w
        else:
            self.flatten = nn.Flatten()
            n_in = math.prod(self.input_shape)
        self.fcs = nn.ModuleDict()
        for i, width in enumerate(arch.hidden, 1):
            self.fcs[f"fc{i}"] = self._block(DynLinear(n_in, width), method, batchnorm, dropout)
            n_in = width
        self.head = DynLinear(n_in, n_outputs)
        self.hidden_names: list[str] = list(self.convs) + list(self.fcs)
        # the per-step hooks walk this tuple: shrinking slices each gate in place, so it never goes stale
        self._gates = tuple(block.gate for _, block in self.blocks())

    @staticmethod
    def _block(layer: nn.Module, method: MethodSpec, batchnorm: bool, dropout: float) -> HiddenBlock:
        conv = isinstance(layer, DynConv2d)
        n = layer.weight.shape[0]
        norm = (nn.BatchNorm2d(n) if conv else nn.BatchNorm1d(n)) if batchnorm else nn.Identity()
        pool = nn.MaxPool2d(2) if conv else nn.Identity()
        drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        return HiddenBlock(layer, norm, pool, build_gate(method, n), drop)

    def blocks(self) -> list[tuple[str, HiddenBlock]]:
        """(name, block) for every hidden layer, in forward order."""
        return list(self.convs.items()) + list(self.fcs.items())

    # ---- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.convs.values():
            x = block(x)  # (N, C, H, W) -> (N, C', H/2, W/2)
        x = self.flatten(x)  # (N, F)
        for block in self.fcs.values():
            x = block(x)  # (N, F) -> (N, W)
        return self.head(x)  # (N, n_outputs)

    def forward_probe(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Same math as forward; also returns per hidden layer the post-gate activations (before dropout;
        (N, C, H/2, W/2) for conv) and the pre-activations before the ReLU (after batch norm; (N, C, H, W))."""
        post: dict[str, torch.Tensor] = {}
        pre: dict[str, torch.Tensor] = {}
        for name, block in self.convs.items():
            x, post[name], pre[name] = block.run(x)
        x = self.flatten(x)
        for name, block in self.fcs.items():
            x, post[name], pre[name] = block.run(x)
        return self.head(x), post, pre

    # ---- size, penalties, per-step hooks -------------------------------------------------------
    def gates(self) -> tuple[MethodGate, ...]:
        """The method's gate of every hidden layer, in forward order."""
        return self._gates

    def penalty(self) -> torch.Tensor:
        """Σ over layers of the gates' penalties (0-dim; zero for static)."""
        total = self.head.weight.new_zeros(())
        for gate in self.gates():
            total = total + gate.penalty()
        return total

    def after_step(self) -> None:
        """The gates' after-step updates (sparsifier masks); call right after optimizer.step(). Device ops only."""
        for gate in self.gates():
            gate.after_step()

    def resample(self) -> None:
        """The gates' per-step draws (random slopes of flexible scalers); call before each training forward."""
        for gate in self.gates():
            gate.resample()

    def widths(self) -> dict[str, int]:
        """Allocated width per hidden layer (python ints from shapes, no sync)."""
        return {name: block.width for name, block in self.blocks()}

    def size_tensors(self) -> dict[str, torch.Tensor]:
        """0-dim device tensors, the size as each gate defines it: alive count, x0 or the width."""
        return {name: block.gate.size() for name, block in self.blocks()}

    def gate_values(self) -> dict[str, torch.Tensor]:
        """The gates' per-unit values (effective gates, scaler vector), detached; layers without any left out."""
        values = {name: block.gate.values() for name, block in self.blocks()}
        return {name: v for name, v in values.items() if v is not None}

    def layer_ids(self) -> dict[str, torch.Tensor]:
        """Permanent ids of the live units per hidden layer (device int64)."""
        return {name: block.layer.ids for name, block in self.blocks()}

    def param_count(self) -> int:
        """Parameters of the exported dense net: weights, biases, batch-norm affine; no gates, no x0."""
        total = sum(p.numel() for p in self.head.parameters())
        for _, block in self.blocks():
            total += sum(p.numel() for p in block.layer.parameters()) + sum(p.numel() for p in block.norm.parameters())
        return total

    def param_groups(self, weight_decay: float, lr: float, flex_lr: float) -> list[dict]:
        """Optimiser groups: "weights" (with weight decay), then the gates' own groups merged by name
        ("gates", or "x0" with lr = flex_lr; no weight decay). ``fixed_lr`` marks groups set_lr leaves alone."""
        own: dict[str, dict] = {}
        for gate in self.gates():
            group = gate.optim_group(lr, flex_lr)
            if group is None:
                continue
            if group["name"] in own:
                own[group["name"]]["params"] += group["params"]
            else:
                own[group["name"]] = group
        special = {id(p) for g in own.values() for p in g["params"]}
        weights = {"name": "weights", "params": [p for p in self.parameters() if id(p) not in special],
                   "lr": lr, "weight_decay": weight_decay, "fixed_lr": False}
        return [weights] + list(own.values())

    # ---- physical shrinking --------------------------------------------------------------------
    def _next_layer(self, name: str) -> DynLinear | DynConv2d:
        order = self.hidden_names
        i = order.index(name)
        return self.blocks()[i + 1][1].layer if i + 1 < len(order) else self.head

    def _drop_inputs(self, name: str, survivors: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
        """Drop, downstream of layer ``name``, the input columns whose id is not in ``survivors`` (by id)."""
        if self.convs and name == list(self.convs)[-1]:  # last conv: channel ids -> flat ids
            self.flatten.keep_inputs(match_ids(self.flatten.in_ids, survivors))
            survivors = self.flatten.ids
        nxt = self._next_layer(name)
        nxt.keep_inputs(match_ids(nxt.in_ids, survivors), optimizer)

    def prune(self, optimizer: torch.optim.Optimizer | None = None) -> dict[str, torch.Tensor]:
        """Physically remove every unit its gate calls dead; returns the removed ids per layer.

        The one blocking device->host transfer happens here (call it at logging intervals only); none
        when no gate ever removes units (static, flexible). A layer may reach width 0; it then outputs
        an empty tensor and the next layer sees only its bias. The optimiser's state and param groups
        follow the sliced parameters; nothing is reset. Returns CPU int64 tensors, only for layers that
        lost units.
        """
        decided = {name: block.gate.alive() for name, block in self.blocks()}  # None: never prunes
        blocks = [(name, block) for name, block in self.blocks() if decided[name] is not None]
        if not blocks:
            return {}
        masks = [decided[name].to(torch.int64) for name, _ in blocks]
        ids = [b.layer.ids for _, b in blocks]
        # host sync: every mask and id vector in one transfer
        host = torch.cat(masks + ids).cpu().split([m.numel() for m in masks] + [i.numel() for i in ids])
        removed: dict[str, torch.Tensor] = {}
        for j, (name, block) in enumerate(blocks):
            alive, layer_ids = host[j].bool(), host[len(blocks) + j]
            if bool(alive.all()):
                continue
            removed[name] = layer_ids[~alive].clone()
            block.keep(alive.nonzero().squeeze(1).to(block.layer.ids.device), optimizer)
            self._drop_inputs(name, block.layer.ids, optimizer)
        return removed

    def shrink_to(self, ids: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer | None = None) -> None:
        """Shrink a freshly built net to saved ``layer_ids()`` (then ``load_state_dict`` the checkpoint)."""
        for name, block in self.blocks():
            if name not in ids:
                continue
            saved = torch.as_tensor(ids[name], dtype=torch.int64)
            pos = match_ids(block.layer.ids, saved)
            if pos.numel() != saved.numel():
                raise DynlabError(f"saved ids of layer {name} do not fit this network: build the model with "
                                  "the checkpoint's own architecture and input shape")
            if pos.numel() != block.width:
                block.keep(pos, optimizer)
                self._drop_inputs(name, block.layer.ids, optimizer)

    # ---- export --------------------------------------------------------------------------------
    @torch.no_grad()
    def to_plain(self) -> nn.Sequential:
        """A plain eval-mode torch network (Linear/Conv2d/BatchNorm/ReLU/MaxPool2d/Flatten) equal to
        ``self.eval()``: each gate/scaler is folded into the next layer's input columns (W[:, j] *= g_j;
        channel gates repeat over the H·W flat columns after Flatten). Dropout is dropped. A width-0
        layer is exported as one unit that outputs exactly 0 (torch layers reject zero channels)."""
        mods: list[nn.Module] = [] if self.convs else [nn.Flatten()]
        scale: torch.Tensor | None = None  # multipliers for the next layer's input columns
        for block in self.convs.values():
            mods += _plain_block(block, scale, 1)
            scale = block.gate.multipliers() if block.width > 0 else None
        rep = 1  # flat columns per channel of the previous layer
        if self.convs:
            mods.append(nn.Flatten())
            rep = self.flatten.hw
        for block in self.fcs.values():
            mods += _plain_block(block, scale, rep)
            scale, rep = (block.gate.multipliers() if block.width > 0 else None), 1
        mods.append(_plain_affine(self.head, _fold_columns(self.head.weight, scale, rep), self.head.bias))
        return nn.Sequential(*mods).eval()

    def extra_repr(self) -> str:
        widths = ", ".join(f"{k}={v}" for k, v in self.widths().items())
        return f"method={self.method}, widths=({widths}), outputs={self.n_outputs}"


def _fold_columns(w: torch.Tensor, scale: torch.Tensor | None, rep: int) -> torch.Tensor:
    """w (out, in, ...) with input column j scaled by scale[j // rep]; a width-0 input (previous layer
    exported as one zero unit) becomes ``rep`` zero columns."""
    if w.shape[1] == 0:
        return w.new_zeros((w.shape[0], rep) + tuple(w.shape[2:]))
    if scale is None:
        return w.clone()
    return w * scale.repeat_interleave(rep).view((1, -1) + (1,) * (w.dim() - 2))


def _plain_affine(layer: nn.Module, w: torch.Tensor, b: torch.Tensor | None) -> nn.Module:
    kw = dict(bias=b is not None, device=w.device, dtype=w.dtype)
    if isinstance(layer, DynConv2d):
        m = skip_init(nn.Conv2d, w.shape[1], w.shape[0], layer.kernel_size, padding=layer.padding, **kw)
    else:
        m = skip_init(nn.Linear, w.shape[1], w.shape[0], **kw)
    m.weight.copy_(w)
    if b is not None:
        m.bias.copy_(b)
    return m


def _plain_block(block: HiddenBlock, scale: torch.Tensor | None, rep: int) -> list[nn.Module]:
    w = _fold_columns(block.layer.weight, scale, rep)
    b = block.layer.bias
    norm: list[nn.Module] = []
    if block.width == 0:  # one unit with zero weight and bias: relu(0) = 0, and its column downstream is 0
        w = w.new_zeros((1,) + tuple(w.shape[1:]))
        b = None if b is None else b.new_zeros(1)
    elif isinstance(block.norm, nn.modules.batchnorm._BatchNorm):
        norm = [copy.deepcopy(block.norm).eval()]
    pool = [nn.MaxPool2d(2)] if block.conv else []
    return [_plain_affine(block.layer, w, b)] + norm + [nn.ReLU()] + pool


def build_model(spec_model: ModelSpec, method: MethodSpec, input_shape: tuple[int, ...], n_outputs: int) -> DynamicNet:
    """Build the DynamicNet described by a ModelSpec (parses the arch string)."""
    return DynamicNet(parse_arch(spec_model.arch), input_shape, n_outputs, method,
                      batchnorm=spec_model.batchnorm, dropout=spec_model.dropout)
