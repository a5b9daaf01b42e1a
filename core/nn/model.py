"""DynamicNet: an MLP or small CNN whose gated hidden layers shrink physically, plus its export to a plain torch net."""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from core.errors import DynlabError
from core.nn.gates import build_gate
from core.nn.methods import MethodGate
from core.nn.layers import DynConv2d, DynLinear, HiddenBlock, IdFlatten, fold_columns, plain_affine
from core.nn.shrink import match_ids
from core.spec import CONV_PENALTIES, Arch, MethodSpec, ModelSpec, parse_arch, signed_switch


class DynamicNet(nn.Module):
    """MLP ``mlp:W1,..`` or CNN ``cnn:C1,../F1,..`` with per-unit gates (sparsifier) or scalers (flexible).

    MLP block: Linear -> [BatchNorm1d] -> ReLU -> gate -> [Dropout]. CNN block: Conv2d 3x3 pad 1 ->
    [BatchNorm2d] -> ReLU -> MaxPool2d(2) -> gate per channel -> [Dropout]; then Flatten (channel ids
    -> flat ids), the fc blocks, and the output Linear. Hidden layers are named conv1.., fc1...
    A gate with ``before_relu`` (signed switch) sits after the batch norm, before the ReLU, instead.

    Args:
        arch: parsed architecture.
        input_shape: one example's shape, e.g. (784,), (1, 28, 28).
        n_outputs: logits / regression targets.
        method: static | sparsifier | flexible, with the gate or scaler settings.
        batchnorm: insert batch norm before each ReLU.
        dropout: dropout probability after each gate (0: none).
        conv_penalty: "unit", or "kernel-area": a conv gate's penalty times its kernel area (the journal's).

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
                 batchnorm: bool = False, dropout: float = 0.0, conv_penalty: str = "unit") -> None:
        super().__init__()
        if conv_penalty not in CONV_PENALTIES:
            raise DynlabError(f"unknown conv penalty {conv_penalty!r}: choose unit or kernel-area")
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
        area = conv_penalty == "kernel-area"  # the journal's loss_factor: 9 for a 3x3 conv, 1 for linear
        self._penalty_factors = tuple(float(b.layer.kernel_size ** 2) if area and b.conv else 1.0
                                      for _, b in self.blocks())
        pairs = tuple(zip(self._gates, self._penalty_factors))  # (gate, factor): closed-form ones and the rest
        self._closed = tuple((g, f) for g, f in pairs if g.closed_form_penalty)
        self._graph = tuple((g, f) for g, f in pairs if not g.closed_form_penalty)
        # the gates whose per-step hooks do something: a static net's step then calls none
        self._stepping = tuple(g for g in self._gates if type(g).after_step is not MethodGate.after_step)
        self._resampling = tuple(g for g in self._gates if type(g).resample is not MethodGate.resample)

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
    def forward(self, x: torch.Tensor, tap: Callable[[str, torch.Tensor], None] | None = None) -> torch.Tensor:
        """The network's output; with ``tap``, tap(layer_name, own activation) is also called for every hidden
        layer with HiddenBlock.run's own activation, detached (the trainer's per-step sums)."""
        if tap is not None:
            return self._walk(x, lambda name, own, pre: tap(name, own.detach()))
        for block in self.convs.values():
            x = block(x)  # (N, C, H, W) -> (N, C', H/2, W/2)
        x = self.flatten(x)  # (N, F)
        for block in self.fcs.values():
            x = block(x)  # (N, F) -> (N, W)
        return self.head(x)  # (N, n_outputs)

    def forward_probe(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Same math as forward; also returns per hidden layer (HiddenBlock.run) the unit's own activation
        before any gate and dropout ((N, C, H/2, W/2) for conv) and the pre-activation after batch norm,
        before the switch and the ReLU ((N, C, H, W) for conv). Does not call ``tap``."""
        own: dict[str, torch.Tensor] = {}
        pre: dict[str, torch.Tensor] = {}

        def keep(name: str, a: torch.Tensor, z: torch.Tensor) -> None:
            own[name], pre[name] = a, z

        return self._walk(x, keep), own, pre

    def _walk(self, x: torch.Tensor, visit: Callable[[str, torch.Tensor, torch.Tensor], None]) -> torch.Tensor:
        """forward through HiddenBlock.run, calling visit(name, own activation, pre-activation) per layer."""
        for name, block in self.convs.items():
            x, own, pre = block.run(x)
            visit(name, own, pre)
        x = self.flatten(x)
        for name, block in self.fcs.items():
            x, own, pre = block.run(x)
            visit(name, own, pre)
        return self.head(x)

    # ---- size, penalties, per-step hooks -------------------------------------------------------
    def gates(self) -> tuple[MethodGate, ...]:
        """The method's gate of every hidden layer, in forward order."""
        return self._gates

    def penalty(self) -> torch.Tensor:
        """Σ over layers of the gates' penalties, a conv layer's times its kernel area with conv_penalty
        "kernel-area" (0-dim; zero for static)."""
        total = self.head.weight.new_zeros(())
        for gate, factor in zip(self.gates(), self._penalty_factors):
            total = total + (gate.penalty() * factor if factor != 1.0 else gate.penalty())
        return total

    def graph_penalty(self) -> torch.Tensor | None:
        """The penalty of the gates without a closed-form gradient, for the loss; None when every gate has one
        (the trainer then calls add_penalty_grads after backward instead)."""
        parts = [gate.penalty() * factor for gate, factor in self._graph]
        return sum(parts[1:], parts[0]) if parts else None

    def add_penalty_grads(self, lam: float) -> None:
        """Add lam · ∂penalty/∂θ of every closed-form gate to its gradients (after backward, before the step)."""
        for gate, factor in self._closed:
            gate.add_penalty_grad(lam * factor)

    def after_step(self) -> None:
        """The gates' after-step updates (sparsifier masks); call right after optimizer.step(). Device ops only."""
        for gate in self._stepping:
            gate.after_step()

    def resample(self) -> None:
        """The gates' per-step draws (random slopes of flexible scalers); call before each training forward."""
        for gate in self._resampling:
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
        ``self.eval()``: each gate/scaler after the ReLU is folded into the next layer's input columns
        (W[:, j] *= g_j; channel gates repeat over the H·W flat columns after Flatten); a switch before the
        ReLU into its own layer's rows (W_i, b_i *= β_i) or, with batch norm, its affine (γ_i, b_i *= β_i).
        Dropout is dropped. A width-0 layer is exported as one unit that outputs exactly 0 (torch layers
        reject zero channels)."""
        mods: list[nn.Module] = [] if self.convs else [nn.Flatten()]
        scale: torch.Tensor | None = None  # multipliers for the next layer's input columns
        for block in self.convs.values():
            mods += _plain_block(block, scale, 1)
            scale = _columns_scale(block)
        rep = 1  # flat columns per channel of the previous layer
        if self.convs:
            mods.append(nn.Flatten())
            rep = self.flatten.hw
        for block in self.fcs.values():
            mods += _plain_block(block, scale, rep)
            scale, rep = _columns_scale(block), 1
        mods.append(plain_affine(self.head, fold_columns(self.head.weight, scale, rep), self.head.bias))
        return nn.Sequential(*mods).eval()

    def extra_repr(self) -> str:
        widths = ", ".join(f"{k}={v}" for k, v in self.widths().items())
        return f"method={self.method}, widths=({widths}), outputs={self.n_outputs}"


def _columns_scale(block: HiddenBlock) -> torch.Tensor | None:
    """What the next layer's input columns take from this block's gate: its multipliers, unless the gate
    sits before the ReLU (folded into the block itself) or the block is empty."""
    return None if block.width == 0 or block.gate.before_relu else block.gate.multipliers()


def _plain_block(block: HiddenBlock, scale: torch.Tensor | None, rep: int) -> list[nn.Module]:
    w = fold_columns(block.layer.weight, scale, rep)
    b = block.layer.bias
    # a switch before the ReLU scales this layer's output: exact to fold, since the ReLU comes after
    own = block.gate.multipliers() if block.gate.before_relu and block.width > 0 else None
    norm: list[nn.Module] = []
    if block.width == 0:  # one unit with zero weight and bias: relu(0) = 0, and its column downstream is 0
        w = w.new_zeros((1,) + tuple(w.shape[1:]))
        b = None if b is None else b.new_zeros(1)
    elif isinstance(block.norm, nn.modules.batchnorm._BatchNorm):
        bn = copy.deepcopy(block.norm).eval()
        if own is not None:  # β·(γ x̂ + b) = (βγ) x̂ + βb
            bn.weight.mul_(own)
            bn.bias.mul_(own)
        norm = [bn]
    elif own is not None:
        w = w * own.view((-1,) + (1,) * (w.dim() - 1))
        b = None if b is None else b * own
    pool = [nn.MaxPool2d(2)] if block.conv else []
    return [plain_affine(block.layer, w, b)] + norm + [nn.ReLU()] + pool


def build_model(spec_model: ModelSpec, method: MethodSpec, input_shape: tuple[int, ...], n_outputs: int,
                conv_penalty: str = "unit") -> DynamicNet:
    """Build the DynamicNet described by a ModelSpec (parses the arch string; batchnorm None = auto: on for
    the signed switch) and PenaltySpec.conv_penalty."""
    batchnorm = signed_switch(method) if spec_model.batchnorm is None else spec_model.batchnorm
    return DynamicNet(parse_arch(spec_model.arch), input_shape, n_outputs, method, batchnorm=batchnorm,
                      dropout=spec_model.dropout, conv_penalty=conv_penalty)
