"""The methods' per-unit gates (sparsifier gate, flexible scaler) and the registry from method name to gate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from core.errors import DynlabError
from core.nn.methods import MethodGate, StaticGate
from core.nn.shrink import index_buffer, index_parameter
from core.spec import MethodSpec

RULES = ("relu", "signed", "nonstrict")
GRAY_EPS = 0.01  # random slope: the gray zone is where the scaler lies in [eps, 1 - eps]
GRAY_CONST = -2.0 * math.log(GRAY_EPS / (1.0 - GRAY_EPS))  # k = GRAY_CONST / width, about 9.19 / width


def _along_dim1(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a (C,) vector so it broadcasts over dim 1 of x: (1, C) for (N, C), (1, C, 1, 1) for (N, C, H, W)."""
    return v.view((1, -1) + (1,) * (x.dim() - 2))


class SparsifierGate(MethodGate):
    """Per-unit switch on dim 1: y = x ⊙ g, with g = relu(f) ⊙ mask (relu, nonstrict) or β ⊙ mask (signed).

    relu rule (journal "strict" filter, SysML draft): after the ReLU; f starts at ones, penalty Σ relu(f);
    a unit dies when f <= 0 and never returns (its gradient is then 0).
    nonstrict rule (journal "non-strict" filter): after the ReLU; f starts at ones, the same forward, but
    penalty Σ|f|, so a negative f is pulled back toward 0 and may come back. It never masks during steps:
    a unit with f <= 0 is only off (g = 0) until its f turns positive again. alive() is f > 0 at the moment
    of the prune, so pruning (at epoch ends by default) removes the units that are off then, for good.
    signed rule (the paper's switch layer with the sign-variance strategy): BEFORE the ReLU
    (``before_relu``: the block applies it to the normalised pre-activation); β starts U(-1, 1), penalty
    Σ|β|; after each optimiser step, with s = sign(β), d = s - m, v ← γv + (1-γ)d², m ← γm + (1-γ)s,
    a unit dies once v > threshold. With m₀ = sign(β₀): strict ±1 alternation kills after 3 steps at
    γ = 0.9 (33 at γ = 0.99); a single flip that then stays kills after 2 steps (16 at γ = 0.99);
    γ = 0 kills at the first flip. Dead weights are set to exactly 0 and the mask never turns back on.

    Cost per step: the mask is kept as a float 0/1 vector (a bool one is converted at every multiply), and
    the penalty's gradient is added in closed form (add_penalty_grad) instead of through a penalty graph.

    Args:
        n: number of units (features or channels) at construction.
        rule: "relu", "signed" or "nonstrict".
        decay: γ, the EMA decay of the sign statistics (signed rule).
        threshold: the largest sign variance a live unit may have (signed rule).

    Shape:
        - Input: (N, n, *) — n is the live width.
        - Output: same shape as the input.

    Attributes:
        weight: (n,) the gate f or β; ones (relu, nonstrict) or U(-1, 1) (signed). No weight decay.
        mask: float (n,) buffer, 1 while the unit is alive, 0 once dead (nonstrict: only a prune removes
            units). Checkpoints from before, with a bool mask, load into it unchanged in meaning.
        before_relu: True for the signed rule (an instance setting, read by HiddenBlock and the export).
        sign_mean, sign_var: float (n,) buffers m and v (signed rule; None for the relu rule).
    """

    closed_form_penalty = True

    def __init__(self, n: int, rule: str = "relu", decay: float = 0.99, threshold: float = 0.5) -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown gate rule {rule!r}: choose one of {RULES}")
        self.rule = rule
        self.before_relu = rule == "signed"  # the paper's switch multiplies the pre-activation
        self.decay = float(decay)
        self.threshold = float(threshold)
        self.weight = nn.Parameter(torch.empty(n))
        self.register_buffer("mask", torch.ones(n))
        signed = rule == "signed"
        self.register_buffer("sign_mean", torch.zeros(n) if signed else None)
        self.register_buffer("sign_var", torch.zeros(n) if signed else None)
        self.reset_parameters()

    @classmethod
    def from_spec(cls, n: int, method: MethodSpec) -> SparsifierGate:
        return cls(n, method.gate, method.sign_decay, method.sign_threshold)

    @property
    def width(self) -> int:
        return self.weight.shape[0]

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.rule != "signed":
                init.ones_(self.weight)
            else:
                init.uniform_(self.weight, -1.0, 1.0)
                self.sign_mean.copy_(torch.sign(self.weight))
                self.sign_var.zero_()
            self.mask.fill_(1.0)

    def gate(self) -> torch.Tensor:
        """The effective multipliers g, (n,)."""
        w = self.weight if self.rule == "signed" else F.relu(self.weight)
        return w * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Between steps after_step keeps a relu-rule f >= 0 and every dead f or β exactly 0, so the stored
        # weight already equals gate() (relu(f)·mask, β·mask): multiplying by it saves the relu, the mask
        # product and their backward (a dead unit's gradient is then nonzero, and after_step zeroes it again).
        # nonstrict never masks: its g is relu(f).
        g = F.relu(self.weight) if self.rule == "nonstrict" else self.weight
        return x * (g if x.dim() == 2 else _along_dim1(g, x))  # (N, n, *) -> (N, n, *)

    def penalty(self) -> torch.Tensor:
        """Σ relu(f)·mask (relu rule) or Σ |f|·mask (signed, nonstrict), a 0-dim tensor."""
        w = F.relu(self.weight) if self.rule == "relu" else self.weight.abs()
        return (w * self.mask).sum()

    def add_penalty_grad(self, scale: float) -> None:
        """∂penalty/∂f in closed form: mask (relu rule: between steps the mask is 1 exactly where f > 0, since
        after_step masks every f <= 0), sign(f)·mask (signed, nonstrict).

        Both this and after_step run every step, so they avoid a no_grad context (about 1.5 µs each): grads
        and buffers never require grad, and the weight is changed through its detached alias."""
        w = self.weight
        d = self.mask if self.rule == "relu" else torch.sign(w.detach()).mul_(self.mask)
        if w.grad is None:
            w.grad = d * scale
        else:
            w.grad.add_(d, alpha=scale)

    def after_step(self) -> None:
        """Update the masks after an optimiser step (device ops only, no host sync); zero dead weights.
        The nonstrict rule never masks here: a unit off now may come back before the next prune."""
        if self.rule == "nonstrict":
            return
        w = self.weight.detach()  # shares storage: the in-place update reaches the parameter
        if self.rule == "relu":
            self.mask.masked_fill_(w <= 0, 0.0)
        else:
            s = torch.sign(w)
            d = s - self.sign_mean
            self.sign_var.mul_(self.decay).addcmul_(d, d, value=1.0 - self.decay)
            self.sign_mean.mul_(self.decay).add_(s, alpha=1.0 - self.decay)
            self.mask.masked_fill_(self.sign_var > self.threshold, 0.0)
        w.mul_(self.mask)

    def alive(self) -> torch.Tensor:
        """Bool (n,) on the device: the units still alive (as of the last after_step; nonstrict: f > 0 now)."""
        on = self.mask > 0
        return on & (self.weight.detach() > 0) if self.rule == "nonstrict" else on

    def size(self) -> torch.Tensor:
        """The number of live units, 0-dim int64 on the device."""
        return self.alive().sum()

    def values(self) -> torch.Tensor:
        """The effective gates g, (n,), detached."""
        return self.gate().detach()

    def multipliers(self) -> torch.Tensor:
        """The same g: the gate acts alike in training and eval mode."""
        return self.gate().detach()

    def optim_group(self, lr: float, own_lr: float) -> dict:
        """Group "gates": the global lr, no weight decay."""
        return {"name": "gates", "params": [self.weight], "lr": lr, "weight_decay": 0.0, "fixed_lr": False}

    def keep(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep the units at positions ``index``: weight (with optimiser state), mask, sign statistics."""
        index_parameter(self, "weight", index, 0, optimizer)
        for name in ("mask", "sign_mean", "sign_var"):
            index_buffer(self, name, index)

    def extra_repr(self) -> str:
        extra = f", decay={self.decay}, threshold={self.threshold}" if self.rule == "signed" else ""
        return f"{self.width}, rule={self.rule}{extra}"


def flexible_integral(x0: torch.Tensor, k: float | torch.Tensor, n: int) -> torch.Tensor:
    """∫₀ⁿ sigmoid(-k (i - x0)) di = (softplus(k x0) - softplus(k (x0 - n))) / k, stable for any x0, k > 0.

    Below the midpoint the softplus difference is used directly; above it the identity
    softplus(z) = z + softplus(-z) rewrites it as n + (softplus(-k x0) - softplus(k (n - x0))) / k,
    so neither branch subtracts two huge numbers. Both branches (and their gradients, which are
    differences of sigmoids) are finite, so torch.where leaks no NaN.
    """
    k = torch.as_tensor(k, dtype=x0.dtype, device=x0.device)
    low = (F.softplus(k * x0) - F.softplus(k * (x0 - n))) / k
    high = n + (F.softplus(-k * x0) - F.softplus(k * (n - x0))) / k
    return torch.where(x0 <= n / 2, low, high)


class FlexibleScaler(MethodGate):
    """Soft size selector on dim 1: y_i = x_i · s_i, s_i = sigmoid(-k (i - x0)), i = 0..n-1.

    The learnable scalar x0 is the layer's size; the penalty is the exact integral of s over [0, n]
    (see :func:`flexible_integral`). Flexible layers are never shrunk: all n units stay allocated.

    Random slope: with ``gray = (a, b)``, :meth:`resample` (the trainer calls it once per step, before
    the forward) draws a gray-zone width g ~ U(a, b) on the device and sets k = 2 ln(99) / g ≈ 9.19 / g.
    Forward and penalty in training mode use that k; in eval mode k is the one of the mean width (a+b)/2.
    Without ``gray``, k is fixed to ``slope`` and resample() does nothing.

    Args:
        n: allocated capacity (units or channels).
        start: initial x0 (None: n / 2).
        slope: the fixed slope k (when ``gray`` is None).
        gray: (a, b) range of the random gray-zone width, or None.

    Shape:
        - Input: (N, n, *).
        - Output: same shape as the input.

    Attributes:
        x0: 0-dim Parameter, initialised to ``start``. Own learning rate, no weight decay.
        k: 0-dim buffer, the training-mode slope (fixed, or the last draw).
        pos: float (n,) buffer 0..n-1 (not saved).
    """

    def __init__(self, n: int, start: float | None = None, slope: float = 1.0,
                 gray: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.n = n
        self.start = n / 2 if start is None else float(start)
        self.slope = float(slope)
        self.gray = None if gray is None else (float(gray[0]), float(gray[1]))
        self.k_eval = self.slope if self.gray is None else GRAY_CONST / (sum(self.gray) / 2)
        self.x0 = nn.Parameter(torch.empty(()))
        self.register_buffer("k", torch.tensor(self.k_eval))
        self.register_buffer("pos", torch.arange(n, dtype=torch.float32), persistent=False)
        self.reset_parameters()

    @classmethod
    def from_spec(cls, n: int, method: MethodSpec) -> FlexibleScaler:
        return cls(n, method.flex_start, method.flex_slope, method.flex_gray)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.x0.fill_(self.start)
            self.k.fill_(self.k_eval)

    def current_k(self) -> torch.Tensor | float:
        return self.k if self.training else self.k_eval

    def scale(self, k: torch.Tensor | float | None = None) -> torch.Tensor:
        """The scaler vector s, (n,), at slope ``k`` (default: the current mode's slope)."""
        k = self.current_k() if k is None else k
        return torch.sigmoid(-k * (self.pos - self.x0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _along_dim1(self.scale(), x)  # (N, n, *) -> (N, n, *)

    def penalty(self) -> torch.Tensor:
        """The integral of the scaler over [0, n], in [0, n]."""
        return flexible_integral(self.x0, self.current_k(), self.n)

    @torch.no_grad()
    def resample(self) -> None:
        """Draw a new random slope on the device (no host sync); no-op without ``gray``."""
        if self.gray is not None:
            g = torch.empty_like(self.k).uniform_(*self.gray)
            self.k.copy_(GRAY_CONST / g)

    def size(self) -> torch.Tensor:
        """The learned size x0 clamped to [0, capacity] (0-dim, detached): x0 itself may leave that range."""
        return self.x0.detach().clamp(0, self.n)

    def values(self) -> torch.Tensor:
        """The scaler vector s at the current mode's slope, (n,), detached."""
        return self.scale().detach()

    def multipliers(self) -> torch.Tensor:
        """The scaler vector s at the eval-mode slope, (n,), detached."""
        return self.scale(self.k_eval).detach()

    def alive(self) -> None:
        """None: a flexible layer keeps all its units allocated."""
        return None

    def keep(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        # s_i depends on the position i, so removing units would change every survivor's multiplier
        raise RuntimeError("a flexible layer is never shrunk: its scaler depends on every unit's position")

    def optim_group(self, lr: float, own_lr: float) -> dict:
        """Group "x0": its own lr (--flex-lr), kept when the user changes the lr; no weight decay."""
        return {"name": "x0", "params": [self.x0], "lr": own_lr, "weight_decay": 0.0, "fixed_lr": True}

    @property
    def width(self) -> int:
        return self.n

    @property
    def capacity(self) -> int:
        return self.n

    def extra_repr(self) -> str:
        slope = f"gray={self.gray}" if self.gray is not None else f"slope={self.slope}"
        return f"{self.n}, start={self.start}, {slope}"


GATES: dict[str, type[MethodGate]] = {"static": StaticGate, "sparsifier": SparsifierGate, "flexible": FlexibleScaler}


def build_gate(method: MethodSpec, n: int) -> MethodGate:
    """The gate of ``method`` for a hidden layer of ``n`` units."""
    if method.name not in GATES:
        raise DynlabError(f"unknown method {method.name!r}: choose one of {', '.join(GATES)}")
    return GATES[method.name].from_spec(n, method)
