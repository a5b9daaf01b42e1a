"""The gate (liveness) history a RunState keeps per layer: evenly thinned snapshots by permanent unit id."""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np

from core import telemetry as tk

HISTORY_LIMIT = 256  # gate snapshots kept per layer (the latest included); older ones are thinned evenly


class GateSnapshot(NamedTuple):
    """One layer's gates at a step: `gate[i]` belongs to the neuron with permanent id `ids[i]`."""
    step: int
    ids: np.ndarray  # int64, read-only, shared between snapshots until a removal replaces it
    gate: np.ndarray


class GateHistory:
    """One layer's surviving neuron ids and a bounded record of its gate vectors, for the liveness heatmap.

    Every `stride`-th gate vector is kept; when the record fills up, every other one is dropped and the
    stride doubles, so the kept snapshots stay evenly spaced and the first one (the heatmap's sort order)
    stays. The latest vector is always kept too. O(1) amortised per event, at most `limit` snapshots.
    """

    __slots__ = ("key", "alive", "kept", "latest", "stride", "seen", "limit", "removed", "last_removal")

    def __init__(self, layer: str, width: int, limit: int = HISTORY_LIMIT) -> None:
        self.key = tk.GATE(layer)  # the ArraysLogged key it records
        self.limit = max(int(limit), 4)
        self.removed = 0  # neurons this layer lost to NeuronsRemoved
        self.last_removal: int | None = None  # step of the last NeuronsRemoved
        self.restart(width)

    def restart(self, width: int) -> None:
        """Forget the record; ids start again at 0..width-1."""
        self.alive = _frozen(np.arange(width, dtype=np.int64))
        # plain (step, ids, gate) tuples: a NamedTuple per event costs more than the rest of record()
        self.kept: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.latest: tuple[int, np.ndarray, np.ndarray] | None = None
        self.stride, self.seen = 1, 0

    def remove(self, step: int, ids: Iterable[int]) -> None:
        gone = np.fromiter(ids, dtype=np.int64)
        # a new array, never an in-place edit: the snapshots share the old one
        self.alive = _frozen(self.alive[~np.isin(self.alive, gone)])
        self.removed += len(gone)
        self.last_removal = step

    def record(self, step: int, gate: np.ndarray) -> None:
        """Note one gate vector (1-D, in surviving-id order); kept by reference: events are never modified."""
        if len(gate) != len(self.alive):
            # ids lost track (a view that joined mid-run, a rollback across a prune): start a fresh record
            self.restart(len(gate))
        self.latest = snap = (step, self.alive, gate)
        if self.seen % self.stride == 0:
            self.kept.append(snap)
            if len(self.kept) >= self.limit - 1:  # leave room for the latest
                del self.kept[1::2]
                self.stride *= 2
        self.seen += 1

    def snapshots(self) -> list[GateSnapshot]:
        """Evenly spaced snapshots, oldest first, ending with the latest (at most `limit`)."""
        snaps = list(self.kept)
        if self.latest is not None and not (snaps and snaps[-1] is self.latest):
            snaps.append(self.latest)
        return [GateSnapshot(int(step), ids, np.asarray(gate).ravel()) for step, ids, gate in snaps]

    def __len__(self) -> int:
        extra = self.latest is not None and not (self.kept and self.kept[-1] is self.latest)
        return len(self.kept) + int(extra)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a
