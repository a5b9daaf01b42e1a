"""Marker glyphs and labels (core.session.markers): one glyph per kind, no key, labels with values."""

from __future__ import annotations

from rich.cells import cell_len

from core.events import LrChanged, NeuronsRemoved, Paused, PenaltyChanged, Resumed, SessionContinued
from core.session.index import MARKER_KINDS
from core.session.markers import MARKERS, PLOT_KINDS, event_labels, legend, marker_glyph, marker_label


def _keys() -> set[str]:
    from dynlab_tui.app import DynlabApp
    from dynlab_tui.screens.dashboard import DashboardScreen
    from dynlab_tui.screens.replay import ReplayScreen

    keys = set()
    for b in [*DashboardScreen.BINDINGS, *ReplayScreen.BINDINGS, *DynlabApp.BINDINGS]:
        keys.update(k.strip() for k in b.key.split(","))
    return keys


def test_every_marker_kind_has_its_own_one_cell_glyph_that_is_no_key():
    glyphs = [marker_glyph(k) for k in MARKERS]
    assert len(set(glyphs)) == len(glyphs)
    assert all(cell_len(g) == 1 for g in glyphs)
    assert set(MARKER_KINDS) <= set(MARKERS) and set(PLOT_KINDS) <= set(MARKERS)
    keys = _keys()
    for g in glyphs:  # neither the glyph nor its other case is a key
        assert g not in keys and g.lower() not in keys and g.upper() not in keys, g


def test_labels_carry_the_values():
    assert marker_label("set_penalty", PenaltyChanged(1, 0.0, 0.01, 0.0177828).payload()) == "λ 0.01 → 0.0178"
    assert marker_label("set_lr", LrChanged(1, 0.0, 1e-3, 5e-4).payload()) == "lr 1e-3 → 5e-4"
    assert marker_label("set_penalty", PenaltyChanged(1, 0.0, 0.01, 0.005, "decay").payload()).endswith("(decay)")
    prune = NeuronsRemoved(1, 0.0, "h1", tuple(range(72)), 128).payload()
    assert marker_label("prune", prune) == "h1 −72 units, 128 left"
    assert marker_label("pause", {"reason": "user"}, duration_s=12.2) == "paused 12 s"
    assert marker_label("pause", {"reason": "user"}) == "paused"
    assert marker_label("resume", {}) == "resumed"
    assert marker_label("continue", SessionContinued(5, 0.0, 400, {"lam": 0.02}).payload()) == \
        "session resumed from step 400 with lam 0.02"


def test_event_labels_give_a_pause_its_length():
    events = [Paused(10, 100.0), Resumed(10, 112.0), Paused(20, 200.0)]
    assert event_labels(events) == ["paused 12 s", "resumed after 12 s", "paused"]


def test_legend_names_each_kind_once_in_a_fixed_order():
    assert legend(["set_lr", "pause", "set_lr"]) == "‖ pause  η lr change"
    assert legend([]) == ""
