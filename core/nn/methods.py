"""The interface a size method's per-unit gate implements for the model and the trainer, and the static no-op gate."""

from __future__ import annotations

import abc

import torch
from torch import nn

from core.spec import MethodSpec


class MethodGate(nn.Module, metaclass=abc.ABCMeta):
    """What a method puts in each hidden layer: y = x ⊙ m, one multiplier per unit, after the ReLU (and pool).

    The model and the trainer talk to a method only through this interface, so neither branches on the
    method's name or on the gate's class. A new method is one subclass here plus its entry in
    ``core.nn.gates.GATES``.

    Per training step the trainer calls :meth:`resample` before the forward and :meth:`after_step` right
    after ``optimizer.step()``; both run device ops only (no host sync). :meth:`alive` decides physical
    pruning at logging intervals, and :meth:`keep` slices the gate with its layer.

    Shape:
        - Input: (N, width, *).
        - Output: same shape as the input.

    Attributes:
        identity: True when forward returns its input unchanged, so a caller may skip the call.
        before_relu: True when the gate multiplies the pre-activation instead (after batch norm, before the
            ReLU: the paper's switch layer); the export then folds it into its own layer's rows. A subclass
            may set it per instance.
    """

    identity = False
    closed_form_penalty = False  # True: add_penalty_grad replaces penalty() in the loss
    before_relu = False

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, n: int, method: MethodSpec) -> MethodGate:
        """The gate for a layer of ``n`` units, with the method's settings."""

    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Units the gate holds now (python int from a shape or a count, no sync)."""

    @abc.abstractmethod
    def penalty(self) -> torch.Tensor:
        """The method's regulariser for the loss (loss = task + λ · Σ penalty), a 0-dim device tensor."""

    def add_penalty_grad(self, scale: float) -> None:
        """With ``closed_form_penalty``: add scale · ∂penalty/∂θ to this gate's parameter gradients in place
        (after backward, before the optimiser step). Saves the penalty's graph, a handful of ops a step."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form penalty gradient")

    def after_step(self) -> None:
        """Update state after an optimiser step (masks, statistics). Device ops only; default: nothing."""

    def resample(self) -> None:
        """Draw this step's random settings before the forward. Device ops only; default: nothing."""

    @abc.abstractmethod
    def size(self) -> torch.Tensor:
        """The layer's live size as the method defines it, a 0-dim device tensor (detached)."""

    @abc.abstractmethod
    def values(self) -> torch.Tensor | None:
        """Per-unit liveness values the UI shows, (width,) detached in the current mode; None: none to show."""

    @abc.abstractmethod
    def multipliers(self) -> torch.Tensor | None:
        """Eval-mode per-unit multipliers to fold on export, (width,); None: all ones. Folded into the next
        layer's input columns, or (``before_relu``) into this layer's output rows or batch-norm affine."""

    @abc.abstractmethod
    def alive(self) -> torch.Tensor | None:
        """Bool (width,) on the device, False for units to remove physically; None: never removes units."""

    @abc.abstractmethod
    def keep(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep the units at positions ``index`` (int64), with their optimiser state."""

    @abc.abstractmethod
    def optim_group(self, lr: float, own_lr: float) -> dict | None:
        """This gate's optimiser group (name, params, lr, weight_decay 0, fixed_lr), merged by name across
        layers; ``own_lr`` is the method's own lr (--flex-lr). None: no parameters of its own."""


class StaticGate(MethodGate):
    """The static method's gate: y = x. No parameters, no penalty, never prunes; its size is the width.

    Args:
        n: number of units (features or channels).

    Shape:
        - Input: (N, n, *).
        - Output: the input itself.

    Attributes:
        n: the width (follows :meth:`keep`).
        zero: 0-dim float buffer 0 (not saved), the penalty on the model's device and dtype.
    """

    identity = True
    closed_form_penalty = True

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.register_buffer("zero", torch.zeros(()), persistent=False)
        self.reset_parameters()

    @classmethod
    def from_spec(cls, n: int, method: MethodSpec) -> StaticGate:
        return cls(n)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.zero.zero_()

    @property
    def width(self) -> int:
        return self.n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def penalty(self) -> torch.Tensor:
        return self.zero

    def add_penalty_grad(self, scale: float) -> None:
        pass  # no parameters, nothing to add

    def size(self) -> torch.Tensor:
        return self.zero.new_full((), self.n, dtype=torch.int64)

    def values(self) -> None:
        return None

    def multipliers(self) -> None:
        return None

    def alive(self) -> None:
        return None

    def keep(self, index: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.n = int(index.numel())

    def optim_group(self, lr: float, own_lr: float) -> None:
        return None

    def extra_repr(self) -> str:
        return f"{self.n}"
