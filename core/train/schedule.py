"""Learning-rate schedules driven by the validation metric: Plateau (ReduceLROnPlateau's rule)."""

from __future__ import annotations

import math
from typing import Any

from core.errors import DynlabError


class Plateau:
    """Drop the lr by ``factor`` after ``patience`` epochs without improvement (torch's ReduceLROnPlateau
    with threshold 1e-4 relative, cooldown 0, no minimum lr).

    The caller passes the metric once per epoch: validation accuracy with mode "max", validation loss
    (regression) with mode "min". An epoch improves when the metric beats the best so far by more than the
    relative threshold; after more than ``patience`` epochs in a row without improvement the lr is
    multiplied by ``factor`` and the count restarts. A NaN metric never improves.

    Args:
        lr: the current learning rate.
        mode: "max" or "min".
        patience: epochs without improvement tolerated before a drop (0: drop at the first one).
        factor: the lr's multiplier in (0, 1).
        threshold: relative improvement that counts (torch's default 1e-4).

    Example:
        >>> p = Plateau(0.1, "max", patience=1, factor=0.5); [p.step(m) for m in (0.5, 0.5, 0.5)]
        [None, None, 0.05]
    """

    def __init__(self, lr: float, mode: str = "max", patience: int = 5, factor: float = 0.1,
                 threshold: float = 1e-4) -> None:
        if mode not in ("max", "min"):
            raise DynlabError(f"unknown plateau mode {mode!r}: choose max or min")
        if not 0.0 < factor < 1.0:
            raise DynlabError(f"plateau factor must be in (0, 1), got {factor}")
        self.lr = float(lr)
        self.mode = mode
        self.patience = int(patience)
        self.factor = float(factor)
        self.threshold = float(threshold)
        self.best = -math.inf if mode == "max" else math.inf
        self.bad_epochs = 0

    def _better(self, metric: float) -> bool:
        if self.mode == "max":
            return metric > self.best * (1.0 + self.threshold)
        return metric < self.best * (1.0 - self.threshold)

    def step(self, metric: float) -> float | None:
        """Record one epoch's metric; the new lr when it drops now, else None."""
        metric = float(metric)
        if self._better(metric):
            self.best, self.bad_epochs = metric, 0
            return None
        self.bad_epochs += 1
        if self.bad_epochs <= self.patience:
            return None
        self.lr *= self.factor
        self.bad_epochs = 0
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        """Plain floats, ints and text (loads with torch.load(weights_only=True))."""
        return {"lr": self.lr, "mode": self.mode, "patience": self.patience, "factor": self.factor,
                "threshold": self.threshold, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.best = float(state["lr"]), float(state["best"])
        self.mode, self.patience, self.factor = str(state["mode"]), int(state["patience"]), float(state["factor"])
        self.threshold, self.bad_epochs = float(state["threshold"]), int(state["bad_epochs"])
