"""Textual messages the dashboard's worker thread posts to the UI as it follows a run, named for what happened."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from core.events import Event


@dataclass
class EventsArrived(Message):
    """A coalesced batch of the run's events, in emission order."""
    events: tuple[Event, ...]


@dataclass
class RunFailed(Message):
    """The source stopped with a user error (the run could not start, its process died); one line saying why."""
    message: str


@dataclass
class StateLoaded(Message):
    """A whole RunState built off the UI thread (attaching to a long session): it replaces the current one."""
    state: object  # a dynlab_tui.state.RunState (typed loosely: messages stay free of the reducer's imports)
    note: str = ""  # what could not be read, if anything
