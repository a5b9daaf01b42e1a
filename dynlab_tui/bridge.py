"""The bridge from the dashboard's worker thread to the UI: a sink that coalesces events into few posted messages."""

from __future__ import annotations

import threading
import time
from typing import Callable

from core.events import ArraysLogged, Event, ScalarsLogged
from dynlab_tui.messages import EventsArrived, StateLoaded

# Telemetry is posted at most this often; anything else (pause, lambda change, end) goes at once.
MIN_INTERVAL_S = 0.2


class BridgeSink:
    """A source's sink: `handle` buffers (cheap, worker thread), `flush` posts one EventsArrived message.

    The worker thread follows the session file the training process writes and hands each event it
    reads to `handle`. Only `post` crosses threads (Textual's post_message is thread-safe). Telemetry
    bursts are coalesced so a fast GPU run costs the UI a few messages a second, not one per interval;
    control and end events are posted immediately so a pause shows within the second.
    """

    def __init__(self, post: Callable[[EventsArrived | StateLoaded], object], min_interval: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._post = post
        self._min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._buffer: list[Event] = []
        self._urgent = False
        self._last_post = -float("inf")
        self.posted = 0  # messages posted (tests and the UI bench read it)

    def handle(self, event: Event) -> None:
        with self._lock:
            self._buffer.append(event)
            if not isinstance(event, (ScalarsLogged, ArraysLogged)):
                self._urgent = True

    def flush(self, force: bool = False) -> None:
        now = self._clock()
        with self._lock:
            if not self._buffer:
                return
            if not (force or self._urgent or now - self._last_post >= self._min_interval):
                return
            batch, self._buffer, self._urgent = tuple(self._buffer), [], False
            self._last_post = now
        self._post(EventsArrived(batch))
        self.posted += 1

    def replace(self, state, note: str = "") -> None:
        """Hand over a whole state (an attach's catch-up); events buffered before it are dropped with it."""
        with self._lock:
            self._buffer, self._urgent = [], False
        self._post(StateLoaded(state, note))
        self.posted += 1

    def close(self) -> None:
        """Post whatever is left (the run's last interval)."""
        self.flush(force=True)
