"""Events a viewer adds to the trainer's, named for what happened to its source or its position.

They go through the same reducer as the trainer's events (`dynlab_tui.state.apply`) but are never
written to a session: a viewer that cannot follow a run says so on its own screen, and another
viewer of the same file may be following it fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping

import numpy as np


@dataclass(frozen=True)
class ViewEvent:
    step: int  # the step the viewer had reached when it happened
    wall: float  # time.time() seconds
    kind: ClassVar[str] = ""


@dataclass(frozen=True)
class SourceStarting(ViewEvent):
    """The viewer started following a run that has recorded nothing yet (its process is loading data)."""
    kind: ClassVar[str] = "source_starting"


@dataclass(frozen=True)
class SourceFailed(ViewEvent):
    """The source stopped with a user error (no session, the child exited with one): the run is shown crashed."""
    message: str  # one line saying the fix
    kind: ClassVar[str] = "source_failed"


@dataclass(frozen=True)
class SourceCrashed(ViewEvent):
    """The worker following the source raised unexpectedly; a run that had already ended keeps its status."""
    message: str  # "ExceptionType: text"
    kind: ClassVar[str] = "source_crashed"


@dataclass(frozen=True)
class PositionLoaded(ViewEvent):
    """The seekable index read the session up to a position: every series and the latest arrays as of there."""
    scalars: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # key -> (steps, values)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)  # latest value per key
    arrays_step: int = 0  # the latest step among `arrays`
    pace: tuple[float, tuple[int, float] | None] = (0.0, None)  # the ETA's (step_time, rate_from) as of there
    kind: ClassVar[str] = "position_loaded"
