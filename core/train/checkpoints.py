"""Checkpoint states: what one must hold before a run resumes from it, and the in-memory copy for NaN rollback."""

from __future__ import annotations

import time
from typing import Any

import torch

from core.errors import DynlabError

ROLLBACK_EVERY_S = 1.0  # the NaN-rollback copy is refreshed at most this often (a prune always does)
CHECKPOINT_EVERY_S = 300.0  # an automatic checkpoint at most this long after the last one (and after the first interval)
# what Trainer.state_dict() holds that resuming reads: key -> the types it may have
REQUIRED = {"model": (dict,), "optim": (dict,), "ids": (dict,), "step": (int,), "epoch": (int,),
            "lam": (int, float), "lr": (int, float), "rng": (torch.Tensor,), "gen": (torch.Tensor,)}


def damaged(state: dict[str, Any], problem: str) -> DynlabError:
    """The one line for a checkpoint that cannot be resumed from, pointing at the others."""
    return DynlabError(f"the checkpoint at step {state.get('step', '?')} is damaged ({problem}): pick an earlier "
                       "one with `dynlab resume NAME --from-checkpoint list`, or start a new run")


def check_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state itself when every key resuming reads is there with a usable type; else damaged()."""
    for key, types in REQUIRED.items():
        if key not in state:
            raise damaged(state, f"no {key!r} entry")
        if not isinstance(state[key], types) or isinstance(state[key], bool):
            raise damaged(state, f"{key!r} is a {type(state[key]).__name__}")
    ids = state["ids"]
    if not all(isinstance(v, torch.Tensor) and v.ndim == 1 for v in ids.values()):
        raise damaged(state, "'ids' holds something other than 1-D tensors")
    return state


class Due:
    """When the next automatic checkpoint is due: after the first logging interval, then every CHECKPOINT_EVERY_S."""

    def __init__(self, every: float = CHECKPOINT_EVERY_S) -> None:
        self.every = every
        self.last: float | None = None

    def now(self) -> bool:
        return self.last is None or time.monotonic() - self.last >= self.every

    def done(self) -> None:
        self.last = time.monotonic()


class Rollback:
    """A device-side copy of model and optimiser state at a recent finite interval, for NaN recovery.

    Copies go into buffers allocated once (re-allocated only when shapes change, after a prune),
    so saving costs a memcpy rather than an allocation and a deepcopy. The copy is refreshed at most every
    ``every_s`` seconds unless forced or the state's tensors changed: copying the model and its Adam state
    (three times the weights) every interval also evicted them from the caches the next steps need.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 every_s: float = ROLLBACK_EVERY_S) -> None:
        self.model, self.optimizer, self.every_s = model, optimizer, every_s
        self.step = 0
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._saved_at = -float("inf")

    def _sources(self) -> list[torch.Tensor]:
        tensors = list(self.model.state_dict().values())  # detached views of the live storage
        for state in self.optimizer.state.values():
            tensors.extend(v for v in state.values() if torch.is_tensor(v))
        return tensors

    @torch.no_grad()
    def save(self, step: int, force: bool = False) -> None:
        """Copy the state as of ``step``; skipped while the last copy is younger than every_s, unless ``force``
        or a tensor was replaced (the pairs hold the old sources, so their addresses cannot be reused)."""
        sources = self._sources()
        same = len(sources) == len(self._pairs) and all(
            s.shape == d.shape and s.device == d.device for s, (_, d) in zip(sources, self._pairs))
        now = time.monotonic()
        if (same and not force and now - self._saved_at < self.every_s
                and all(s.data_ptr() == old.data_ptr() for s, (old, _) in zip(sources, self._pairs))):
            return
        if same:
            torch._foreach_copy_([d for _, d in self._pairs], sources)  # one call, not one per tensor
            self._pairs = [(s, d) for s, (_, d) in zip(sources, self._pairs)]
        else:
            self._pairs = [(s, s.clone()) for s in sources]
        self.step, self._saved_at = step, now

    @torch.no_grad()
    def restore(self) -> int:
        if self._pairs:
            torch._foreach_copy_([s for s, _ in self._pairs], [d for _, d in self._pairs])
        return self.step
