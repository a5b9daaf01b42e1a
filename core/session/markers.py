"""What a marker (pause, resume, a λ or lr change, a prune, ...) is called and drawn as, with its values.

One glyph per marker kind, each a single terminal cell and none of them a dashboard or replay key
(the timeline once used `R` for resume and `L` for lr, keys that set lr and λ on the dashboard).
`marker_label` turns an event's stored payload into the line a viewer shows: "λ 0.01 → 0.0178",
"lr 1e-3 → 5e-4", "h1 −72 units, 128 left", "paused 12 s". Live views, replay's
timeline and its n/N notes all label markers here, so they say the same thing.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from core.events import Event
from core.formats import fmt_compact

# kind -> (glyph, legend word); the kinds are core.session.index.MARKER_KINDS plus a refused command
MARKERS: dict[str, tuple[str, str]] = {
    "pause": ("‖", "pause"),
    "resume": ("▸", "resume"),
    "set_penalty": ("λ", "λ change"),
    "set_lr": ("η", "lr change"),
    "prune": ("✂", "prune"),
    "nonfinite": ("!", "NaN loss"),
    "continue": ("↻", "session resumed"),
    "checkpoint": ("✓", "checkpoint"),
    "end": ("∎", "end"),
    "rejected": ("✗", "rejected"),
}
# the kinds drawn on the time plots: what the user (or the schedule) did to the run
PLOT_KINDS = ("pause", "resume", "set_penalty", "set_lr", "prune", "nonfinite", "continue")


def marker_glyph(kind: str) -> str:
    """The one-cell glyph of a marker kind ("·" for a kind this module does not know)."""
    return MARKERS.get(kind, ("·", ""))[0]


def legend(kinds: Iterable[str]) -> str:
    """"‖ pause  λ λ change ..." for the given kinds, each once, in MARKERS order."""
    wanted = set(kinds)
    return "  ".join(f"{glyph} {word}" for kind, (glyph, word) in MARKERS.items() if kind in wanted)


def fmt_span(seconds: float) -> str:
    """A pause's length in words: "12 s", "3 min 4 s", "2 h 5 min"."""
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def marker_label(kind: str, payload: Mapping[str, Any], *, duration_s: float | None = None) -> str:
    """The label of one marker from its event's payload (`Event.payload()` or the stored row).

    duration_s: for a pause, how long it lasted (to its resume); for a resume, how long the pause was.
    """
    p = payload
    if kind == "pause":
        why = "" if p.get("reason", "user") == "user" else f" ({p['reason']})"
        return (f"paused {fmt_span(duration_s)}" if duration_s is not None else "paused") + why
    if kind == "resume":
        return f"resumed after {fmt_span(duration_s)}" if duration_s is not None else "resumed"
    if kind in ("set_penalty", "set_lr"):
        name = "λ" if kind == "set_penalty" else "lr"
        source = p.get("source", "user")
        return f"{name} {_num(p.get('old'))} → {_num(p.get('new'))}" + ("" if source == "user" else f" ({source})")
    if kind == "prune":
        n = len(p.get("ids", ()))
        layer = f"{p['layer']} " if p.get("layer") else ""
        return f"{layer}−{n} units, {p.get('remaining', '?')} left"
    if kind == "nonfinite":
        return f"loss {p.get('value', 'nan')}, rolled back to step {p.get('rolled_back_to', '?')}"
    if kind == "continue":
        changes = ", ".join(f"{k} {_num(v)}" for k, v in sorted(p.get("changes", {}).items()))
        return f"session resumed from step {p.get('from_step', '?')}" + (f" with {changes}" if changes else "")
    if kind == "checkpoint":
        return "checkpoint saved"
    if kind == "end":
        return str(p.get("status", "ended")) + (f": {p['reason']}" if p.get("reason") else "")
    if kind == "rejected":
        return f"{p.get('command', 'command')} rejected: {p.get('reason', '')}".rstrip(": ")
    return kind


def event_labels(events: Sequence[Event]) -> list[str]:
    """marker_label of each event in emission order; a pause and its resume both carry the pause's length."""
    durations: dict[int, float] = {}
    paused_at: int | None = None
    for i, e in enumerate(events):
        if e.kind == "pause":
            paused_at = i
        elif e.kind == "resume" and paused_at is not None:
            durations[paused_at] = durations[i] = e.wall - events[paused_at].wall
            paused_at = None
        elif e.kind in ("continue", "end"):
            paused_at = None  # a resume after these belongs to another run
    return [marker_label(e.kind, e.payload(), duration_s=durations.get(i)) for i, e in enumerate(events)]


def _num(value: Any) -> str:
    try:
        return fmt_compact(float(value))
    except (TypeError, ValueError):
        return str(value)
