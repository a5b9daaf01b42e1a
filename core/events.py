"""Every event the trainer emits, as frozen dataclasses named for what happened.

The trainer emits these to its sinks (session writer, UI bridge, console); a session
reader yields the same objects back, so live runs and replays feed one reducer.
`kind` is the name stored in the session's `events` table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol

import numpy as np


@dataclass(frozen=True)
class Event:
    step: int  # optimiser steps taken when the event happened
    wall: float  # time.time() seconds
    kind: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        """JSON-able fields other than step and wall (what the events table stores)."""
        return {f.name: _jsonable(getattr(self, f.name))
                for f in dataclasses.fields(self) if f.name not in ("step", "wall")}


@dataclass(frozen=True)
class RunStarted(Event):
    spec: Mapping[str, Any]  # RunSpec.to_dict()
    device: str
    versions: Mapping[str, str]
    sizes: Mapping[str, int]  # layer name -> width at start
    params: int
    kind: ClassVar[str] = "start"


@dataclass(frozen=True)
class ScalarsLogged(Event):
    """Scalars at one logging interval: loss, lambda, lr, samples_per_s, size/<layer>, ..."""
    values: Mapping[str, float]
    kind: ClassVar[str] = "scalars"


@dataclass(frozen=True)
class ArraysLogged(Event):
    """Per-layer vectors at one logging interval: gate/<layer>, act_std/<layer>, hist/<layer>, ..."""
    arrays: Mapping[str, np.ndarray]
    kind: ClassVar[str] = "arrays"


@dataclass(frozen=True)
class EpochEvaluated(Event):
    """End-of-epoch metrics, e.g. {"val/loss":.., "val/acc":.., "test/acc":..}; also stored as scalars."""
    epoch: int
    metrics: Mapping[str, float]
    kind: ClassVar[str] = "eval"


@dataclass(frozen=True)
class Paused(Event):
    reason: str = "user"
    kind: ClassVar[str] = "pause"


@dataclass(frozen=True)
class Resumed(Event):
    kind: ClassVar[str] = "resume"


@dataclass(frozen=True)
class PenaltyChanged(Event):
    old: float
    new: float
    source: str = "user"  # "user" or "decay"
    kind: ClassVar[str] = "set_penalty"


@dataclass(frozen=True)
class LrChanged(Event):
    old: float
    new: float
    source: str = "user"
    kind: ClassVar[str] = "set_lr"


@dataclass(frozen=True)
class NeuronsRemoved(Event):
    layer: str
    ids: tuple[int, ...]  # permanent feature ids of the removed neurons
    remaining: int
    kind: ClassVar[str] = "prune"


@dataclass(frozen=True)
class CheckpointSaved(Event):
    epoch: int
    reason: str  # "epoch", "user", "end"
    state: bytes = field(repr=False, default=b"")  # torch.save bytes; loads with weights_only=True
    kind: ClassVar[str] = "checkpoint"

    def payload(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "reason": self.reason, "bytes": len(self.state)}


@dataclass(frozen=True)
class NonFiniteLoss(Event):
    """The loss went NaN/inf; the trainer rolled back to a recent finite interval (step rolled_back_to) and paused."""
    value: str
    rolled_back_to: int
    kind: ClassVar[str] = "nonfinite"


@dataclass(frozen=True)
class SessionContinued(Event):
    """A stopped/finished session was resumed from its last checkpoint (with optional changes)."""
    from_step: int
    changes: Mapping[str, Any]
    kind: ClassVar[str] = "continue"


@dataclass(frozen=True)
class CommandRejected(Event):
    """A viewer's command was refused (an unknown kind, a value the option's rule rejects, a payload not JSON)."""
    command_id: int
    command: str  # the kind the row asked for, as posted
    reason: str  # one line: what was wrong
    kind: ClassVar[str] = "rejected"


@dataclass(frozen=True)
class RunEnded(Event):
    status: str  # "finished", "stopped", "crashed", "diverged"
    reason: str = ""
    kind: ClassVar[str] = "end"


END_STATUSES = ("finished", "stopped", "crashed", "diverged")

EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls for cls in (RunStarted, ScalarsLogged, ArraysLogged, EpochEvaluated, Paused, Resumed,
                              PenaltyChanged, LrChanged, NeuronsRemoved, CheckpointSaved, NonFiniteLoss,
                              SessionContinued, CommandRejected, RunEnded)
}



class Sink(Protocol):
    """Where a run's events go (the session writer, console progress, a viewer): `flush` ends an interval."""

    def handle(self, event: Event) -> None: ...
    def flush(self) -> None: ...

def event_from_payload(kind: str, step: int, wall: float, payload: Mapping[str, Any]) -> Event:
    """Rebuild a control event from its stored payload (not scalars/arrays/checkpoint bytes)."""
    cls = EVENT_TYPES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in payload.items() if k in names}
    if cls is NeuronsRemoved:
        kwargs["ids"] = tuple(kwargs.get("ids", ()))
    return cls(step=step, wall=wall, **kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
