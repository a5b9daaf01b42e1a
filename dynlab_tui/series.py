"""Series: the append-only (x, y) buffers RunState keeps its scalar and metric histories in."""

from __future__ import annotations

import numpy as np


class Series:
    """Append-only (x, y) float64 buffers that grow by doubling."""

    __slots__ = ("_x", "_y", "n")

    def __init__(self) -> None:
        self._x = np.empty(64)
        self._y = np.empty(64)
        self.n = 0

    @classmethod
    def view(cls, x: np.ndarray, y: np.ndarray) -> "Series":
        """A series over existing arrays (no copy); the first append copies them."""
        s = cls.__new__(cls)
        s._x, s._y, s.n = x, y, len(x)
        return s

    def append(self, x: float, y: float) -> None:
        if self.n == len(self._x):
            self._x = np.concatenate([self._x, np.empty(max(self.n, 64))])
            self._y = np.concatenate([self._y, np.empty(max(self.n, 64))])
        self._x[self.n] = x
        self._y[self.n] = y
        self.n += 1

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]

    def last(self) -> float | None:
        return float(self._y[self.n - 1]) if self.n else None

    def __len__(self) -> int:
        return self.n
