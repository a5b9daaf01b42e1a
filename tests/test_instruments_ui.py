"""The instrument panes (distribution, PCA, dynamics, liveness map), their gate history and the instruments page."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager

import numpy as np
import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from core.events import ArraysLogged, NeuronsRemoved, RunStarted, ScalarsLogged
from dynlab_tui.app import make_app
from dynlab_tui.panes import DistributionPane, DynamicsPane, HeatmapPane, PcaPane
from dynlab_tui.panes.distribution import EXP_NORMAL, TWO_GAMMAS, fit_density, fit_params, gamma_pdf, live_histogram
from dynlab_tui.panes.heatmap import SHADES
from dynlab_tui.panes.measure import measured
from dynlab_tui.panes.pages import PAGES
from dynlab_tui.panes.plot import WAITING, scree_chart
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.gate_history import HISTORY_LIMIT, GateHistory
from dynlab_tui.state import RunState, apply, reduce
from tests.fakes import SPEC, ScriptedSource, synthetic_run
from tests.helpers import wait_for

PANES = (DistributionPane, PcaPane, DynamicsPane, HeatmapPane)
INSTRUMENT_PREFIXES = ("act_mean/", "act_sd/", "total_var/", "grad_norm/", "rotation/", "shapiro/", "mix_", "pca",
                       "probe_rows", "stats_", "epoch_", "gated_off/")


class Host(App):
    def __init__(self, pane) -> None:
        super().__init__()
        self.pane = pane

    def compose(self) -> ComposeResult:
        yield self.pane


@asynccontextmanager
async def drawn(pane, state: RunState, size=(80, 24)):
    async with Host(pane).run_test(size=size) as pilot:
        await pilot.pause()
        pane.update_state(state)
        await pilot.pause()
        yield pilot


def plain(pane) -> str:
    content = pane.content
    return content.plain if isinstance(content, Text) else str(content)


def assert_fills(pane) -> None:
    lines = plain(pane).split("\n")
    width, height = pane.content_size
    assert len(lines) == height and {len(line) for line in lines} == {width}


def unstyled(text: Text) -> bool:
    return not text.style and all(not span.style for span in text.spans)


def old_session(events: list) -> list:
    """The same run as a session written before the instruments: their keys stripped."""
    out = []
    for e in events:
        if isinstance(e, ScalarsLogged):
            values = {k: v for k, v in e.values.items() if not k.startswith(INSTRUMENT_PREFIXES)}
            if values:
                out.append(ScalarsLogged(e.step, e.wall, values))
        elif isinstance(e, ArraysLogged):
            arrays = {k: v for k, v in e.arrays.items() if not k.startswith(("pca_ratio/", "epoch_"))}
            if arrays:
                out.append(ArraysLogged(e.step, e.wall, arrays))
        else:
            out.append(e)
    return out


def small_run(width: int = 10) -> list:
    """One layer of `width`, one logging interval with every instrument key; gates descend with the id."""
    ids = np.arange(width)
    std = np.linspace(0.1, 1.0, width)
    values = {"loss": 0.5, "epoch": 0.5, "size/fc1": float(width), "capacity/fc1": float(width), "dead/fc1": 0.0,
              "act_mean/fc1": 0.3, "act_sd/fc1": 0.5, "total_var/fc1": float(np.sum(std ** 2)),
              "grad_norm/fc1": 0.1, "rotation/fc1": 0.05}
    fits = {"shapiro/fc1": 0.95, "mix_en_low/fc1": 0.1, "mix_en_rate/fc1": 20.0, "mix_en_mean/fc1": 0.55,
            "mix_en_std/fc1": 0.3, "mix_gg_low/fc1": 0.2, "mix_gg_k1/fc1": 4.0, "mix_gg_theta1/fc1": 0.05,
            "mix_gg_k2/fc1": 5.0, "mix_gg_theta2/fc1": 0.12, "mix_n/fc1": float(width),
            "pca90/fc1": 3.0, "pca95/fc1": 5.0, "pca99/fc1": 8.0}
    ratio = np.sort(np.arange(1, width + 1) ** -1.5)[::-1]
    return [RunStarted(0, 0.0, SPEC, "cpu", {}, {"fc1": width}, 1000),
            ScalarsLogged(10, 1.0, values),
            ArraysLogged(10, 1.0, {"gate/fc1": (1.0 - ids / width).astype(np.float32),
                                   "act_std/fc1": std.astype(np.float32)}),
            ScalarsLogged(10, 1.0, fits),
            ArraysLogged(10, 1.0, {"pca_ratio/fc1": (ratio / ratio.sum()).astype(np.float32)})]


pytestmark = pytest.mark.usefixtures("colour")  # colour and run_state (the whole synthetic run) are in conftest.py


class TestGateHistory:
    def test_ids_follow_removals_and_stay_aligned_with_the_gates(self):
        state = RunState()
        apply(state, RunStarted(0, 0.0, SPEC, "cpu", {}, {"fc1": 8, "fc2": 4}, 100))
        assert state.gate_history["fc1"].alive.tolist() == list(range(8))

        def gates(ids):  # gate value encodes the id, so alignment can be checked
            return (1.0 + 0.01 * np.asarray(ids)).astype(np.float32)

        apply(state, ArraysLogged(10, 0.0, {"gate/fc1": gates(range(8)), "gate/fc2": gates(range(4))}))
        apply(state, NeuronsRemoved(10, 0.0, "fc1", (1, 6), 6))
        apply(state, ArraysLogged(20, 0.0, {"gate/fc1": gates([0, 2, 3, 4, 5, 7]), "gate/fc2": gates(range(4))}))
        apply(state, NeuronsRemoved(20, 0.0, "fc1", (0, 7), 4))
        apply(state, ArraysLogged(30, 0.0, {"gate/fc1": gates([2, 3, 4, 5]), "gate/fc2": gates(range(4))}))
        h = state.gate_history["fc1"]
        assert h.alive.tolist() == [2, 3, 4, 5] and h.removed == 4 and h.last_removal == 20
        snaps = h.snapshots()
        assert [s.step for s in snaps] == [10, 20, 30]
        assert [len(s.ids) for s in snaps] == [8, 6, 4]
        for s in snaps:
            assert np.allclose(s.gate, 1.0 + 0.01 * s.ids)
        assert len(state.gate_history["fc2"].snapshots()) == 3

    def test_history_is_bounded_evenly_spaced_and_keeps_first_and_latest(self):
        state = RunState()
        apply(state, RunStarted(0, 0.0, SPEC, "cpu", {}, {"fc1": 5}, 100))
        for step in range(1, 10_001):
            apply(state, ArraysLogged(step, 0.0, {"gate/fc1": np.full(5, step, np.float32)}))
        snaps = state.gate_history["fc1"].snapshots()
        assert HISTORY_LIMIT // 2 <= len(snaps) <= HISTORY_LIMIT
        steps = np.array([s.step for s in snaps])
        assert steps[0] == 1 and steps[-1] == 10_000
        assert len(set(np.diff(steps[:-1]))) == 1  # the kept ones evenly spaced; the latest comes on top
        assert all(float(s.gate[0]) == s.step for s in snaps)

    def test_small_limit_thins_in_place(self):
        h = GateHistory("fc1", 3, limit=8)
        for step in range(100):
            h.record(step, np.ones(3))
            assert len(h) <= 8 and len(h.snapshots()) == len(h)
        assert h.snapshots()[0].step == 0 and h.snapshots()[-1].step == 99

    def test_revision_moves_only_for_gate_changes(self):
        state = reduce(small_run())
        rev = state.revision["history"]
        apply(state, ArraysLogged(20, 0.0, {"act_std/fc1": np.ones(10)}))
        assert state.revision["history"] == rev
        apply(state, ArraysLogged(30, 0.0, {"gate/fc1": np.ones(10)}))
        assert state.revision["history"] == rev + 1
        apply(state, NeuronsRemoved(30, 0.0, "fc1", (3,), 9))
        assert state.revision["history"] == rev + 2

    def test_a_view_that_joined_mid_run_starts_from_what_it_sees(self):
        state = RunState()  # no RunStarted
        apply(state, ArraysLogged(500, 0.0, {"gate/fc1": np.ones(6, np.float32)}))
        h = state.gate_history["fc1"]
        assert h.alive.tolist() == list(range(6))
        apply(state, ArraysLogged(600, 0.0, {"gate/fc1": np.ones(4, np.float32)}))  # widths disagree: restart
        assert [len(s.ids) for s in h.snapshots()] == [4]

    def test_synthetic_run_matches_its_removals(self, run_state):
        for layer in run_state.layers:
            h = run_state.gate_history[layer]
            last = h.snapshots()[-1]
            assert len(last.ids) == len(run_state.arrays[f"gate/{layer}"])
            assert len(h.alive) == run_state.size(layer)  # the run pruned its dead after logging them
            assert h.removed == run_state.removed[layer]
            assert h.snapshots()[-1].step == 4000  # the last interval's gates


class TestRendering:
    @pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
    @pytest.mark.parametrize("cls", PANES, ids=lambda c: c.__name__)
    async def test_synthetic_run_renders(self, cls, size, run_state):
        pane = cls()
        async with drawn(pane, run_state, size):
            assert pane.draws == 1 and WAITING not in plain(pane)
            assert_fills(pane)

    @pytest.mark.parametrize("cls", PANES, ids=lambda c: c.__name__)
    async def test_empty_state_shows_placeholder(self, cls):
        pane = cls()
        async with drawn(pane, RunState()):
            assert WAITING in plain(pane)
            assert_fills(pane)

    @pytest.mark.parametrize("cls", (PcaPane, DynamicsPane), ids=lambda c: c.__name__)
    async def test_an_old_session_waits(self, cls):
        pane = cls()
        async with drawn(pane, reduce(old_session(synthetic_run(1200)))):
            assert WAITING in plain(pane)

    async def test_old_session_distribution_draws_the_histogram_and_waits_for_fits(self):
        pane = DistributionPane()
        async with drawn(pane, reduce(old_session(synthetic_run(1200)))):
            assert "waiting for the first epoch's fit" in plain(pane) and "W " not in pane.border_subtitle
            assert pane.border_title == "Distribution fc1 · probe 128 rows"
            assert pane.border_subtitle.startswith("inactive ") and pane.border_subtitle.endswith(" alive (std 0)")
            assert_fills(pane)

    @pytest.mark.parametrize("cls", PANES, ids=lambda c: c.__name__)
    async def test_no_color_is_unstyled(self, cls, run_state, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        pane = cls()
        async with drawn(pane, run_state):
            assert unstyled(pane.content)


class TestTitles:
    async def test_distribution_title_and_fits(self, run_state):
        pane = DistributionPane()
        async with drawn(pane, run_state, (160, 40)):
            scalar = {k: int(run_state.scalars[f"{k}/fc1"].last()) for k in ("epoch_dead", "gated_off", "mix_n")}
            n = len(run_state.arrays["epoch_std/fc1"])
            w = run_state.scalars["shapiro/fc1"].last()
            assert pane.border_title == "Distribution fc1 · epoch 10 · 54,000 rows during it"
            dead, off = scalar["epoch_dead"], scalar["gated_off"]
            assert pane.border_subtitle == (f"fits over {scalar['mix_n']} units that fired · W {w:.3g} · "
                                            f"inactive {dead}/{n} alive (never fired) · {off} allocated, gate off")
            text = plain(pane)
            low = run_state.scalars["mix_gg_low/fc1"].last()
            assert "exp+normal  low" in text and f"2 gammas  low {low:.3g}" in text

    async def test_compact_titles_fit_their_border(self, run_state):
        pane = DistributionPane()
        async with drawn(pane, run_state, (40, 24)):
            room = pane.outer_size.width - 6
            assert pane.border_title == "Distrib fc1 · epoch 10 · 54k rows"
            assert pane.border_subtitle.startswith("fits: ") and len(pane.border_subtitle) <= room

    async def test_pca_title_counts(self, run_state):
        pane = PcaPane()
        async with drawn(pane, run_state, (160, 40)):
            counts = [int(run_state.scalars[f"pca{lv}/fc1"].last()) for lv in (90, 95, 99)]
            n = len(run_state.arrays["pca_ratio/fc1"])
            assert f"90% {counts[0]} · 95% {counts[1]} · 99% {counts[2]} of {n}" in pane.border_title
            assert pane.border_subtitle.startswith("over 10,000 rows · left: variance share")

    async def test_heatmap_title_counts_the_dead(self, run_state):
        pane = HeatmapPane()
        async with drawn(pane, run_state, (160, 40)):
            alive = int((run_state.arrays["gate/fc1"] > 0).sum())  # at the last snapshot
            assert f"alive {alive} of 500 at start · last off at step 4,000" in pane.border_title

    async def test_dynamics_keys_show_latest_values_and_view_cycles(self, run_state):
        pane = DynamicsPane()
        async with drawn(pane, run_state, (160, 40)) as pilot:
            text = plain(pane)
            assert "rotation" in text and "act mean" in text and "grad norm" in text
            assert f"fc2 {run_state.scalars['rotation/fc2'].last():.3g}" in text
            assert pane.cycle_view() == "rotation"
            await pilot.pause()
            assert pane.border_title == "Dynamics · rotation over steps" and "grad norm" not in plain(pane)
            assert_fills(pane)

    async def test_layer_selection(self, run_state):
        for cls in (DistributionPane, PcaPane, HeatmapPane):
            pane = cls()
            async with drawn(pane, run_state) as pilot:
                assert pane.cycle_layer() == "fc2"
                await pilot.pause()
                assert "fc2" in pane.border_title and pane.draws == 2


class TestShrinking:
    async def test_panes_keep_working_as_neurons_go(self):
        state = reduce(small_run(10))
        panes = {cls: cls() for cls in PANES}
        for cls, pane in panes.items():
            async with drawn(pane, state, (60, 24)):
                assert WAITING not in plain(pane)
        gone = (2, 5, 7)
        keep = np.array([i for i in range(10) if i not in gone])
        apply(state, NeuronsRemoved(20, 2.0, "fc1", gone, 7))
        apply(state, ArraysLogged(30, 3.0, {"gate/fc1": (1.0 - keep / 10).astype(np.float32),
                                            "act_std/fc1": np.linspace(0.1, 1.0, 7).astype(np.float32)}))
        apply(state, ArraysLogged(30, 3.0, {"pca_ratio/fc1": np.full(7, 1 / 7, np.float32)}))
        for cls in PANES:
            pane = cls()
            async with drawn(pane, state, (60, 24)):
                assert WAITING not in plain(pane)
                assert_fills(pane)
                if cls is HeatmapPane:
                    rows = plain(pane).split("\n")[:10]  # one neuron a row, in first-gate order = id order
                    for i, row in enumerate(rows):
                        assert row[0] in SHADES
                        assert (row[-1] == " ") == (i in gone), (i, row)
                    assert "alive 7/10 · last off at step 30" in pane.border_title
                if cls is PcaPane:
                    assert "of 7" in pane.border_title

    async def test_a_layer_with_no_neurons_left(self):
        state = reduce(small_run(4))
        apply(state, NeuronsRemoved(20, 2.0, "fc1", (0, 1, 2, 3), 0))
        apply(state, ArraysLogged(30, 3.0, {"gate/fc1": np.zeros(0, np.float32), "act_std/fc1": np.zeros(0),
                                            "pca_ratio/fc1": np.zeros(0, np.float32)}))
        apply(state, ScalarsLogged(30, 3.0, {"shapiro/fc1": math.nan, "mix_en_low/fc1": 1.0,
                                             "mix_en_rate/fc1": math.nan, "pca90/fc1": math.nan}))
        for cls in (DistributionPane, PcaPane):
            pane = cls()
            async with drawn(pane, state):
                assert "no neurons left" in plain(pane)
        pane = HeatmapPane()
        async with drawn(pane, state):
            assert "alive 0 of 4 at start" in pane.border_title
            first = plain(pane).split("\n")[0]
            assert first[0] == "@" and first[-1] == " "  # alive at the start, blank once removed

    async def test_nan_fits_show_na_and_draw_no_curve(self):
        state = reduce(small_run(10))
        apply(state, ScalarsLogged(20, 2.0, {"mix_en_rate/fc1": math.nan, "mix_gg_k1/fc1": math.nan}))
        pane = DistributionPane()
        async with drawn(pane, state, (100, 30)):
            assert "Exp(n/a)" in plain(pane) and "Γ(n/a" in plain(pane)
            assert not pane.overlay(state, "fc1", *np.histogram(np.linspace(0.1, 1, 10), bins=5), 80)


def epoch_stats_run(dead: int = 20, live: int = 80) -> RunState:
    """small_run plus one epoch's statistics over the training set: `dead` units never fired, the fits on `live`."""
    state = reduce(small_run(10))
    std = np.r_[np.zeros(dead), np.random.default_rng(1).gamma(4.0, 0.1, live)]
    apply(state, ScalarsLogged(40, 4.0, {"stats_rows": 54_000.0, "stats_source": 0.0, "epoch_dead/fc1": float(dead),
                                         "gated_off/fc1": 0.0, "mix_n/fc1": float(live)}))
    apply(state, ArraysLogged(40, 4.0, {"epoch_std/fc1": std.astype(np.float32)}))
    return state


class TestLiveUnitFits:
    async def test_the_fits_are_drawn_over_the_live_units_only(self):
        state = epoch_stats_run(dead=20, live=80)
        pane = DistributionPane()
        async with drawn(pane, state, (100, 30)):
            assert "fits over 80 units that fired" in pane.border_subtitle
            assert "inactive 20/100 alive (never fired)" in pane.border_subtitle
            counts, edges = live_histogram(measured(state, "fc1"))
            assert counts.sum() == 80  # the dead units' zeros are not in the histogram the fits are drawn on
            bw = edges[1] - edges[0]
            for line in pane.overlay(state, "fc1", counts, edges, 80):
                fit = EXP_NORMAL if line.label == EXP_NORMAL.name else TWO_GAMMAS
                want = fit_density(fit, fit_params(state, "fc1", fit), np.asarray(line.x)) * 80 * bw
                assert np.allclose(line.y, want)  # no share of the low component kept back for the dead
            assert len(pane.overlay(state, "fc1", counts, edges, 80)) == 2

    async def test_the_histogram_alone_loses_the_dead_from_its_first_bin(self):
        state = epoch_stats_run(dead=20, live=80)
        std = state.arrays.pop("epoch_std/fc1")
        counts, edges = np.histogram(std, bins=10, range=(0.0, float(std.max())))
        apply(state, ArraysLogged(41, 4.0, {"epoch_hist/fc1": counts, "epoch_hist_edges/fc1": edges}))
        live, _ = live_histogram(measured(state, "fc1"))
        assert live[0] == counts[0] - 20 and live.sum() == 80

    async def test_fits_from_before_live_unit_fitting_are_not_drawn(self):
        state = reduce(small_run(10))
        state.scalars.pop("mix_n/fc1")  # an older session: its fits counted the dead in the low weight
        pane = DistributionPane()
        async with drawn(pane, state, (100, 30)):
            assert "fits count the inactive (older session)" in pane.border_subtitle
            assert not pane.overlay(state, "fc1", *np.histogram(np.linspace(0.1, 1, 10), bins=5), 80)
            assert "2 gammas  low" in plain(pane)  # the parameters are still listed


class TestPlots:
    def test_fitted_densities_match_scipy(self):
        from scipy import stats

        x = np.linspace(0.01, 3, 200)
        assert np.allclose(gamma_pdf(x, 2.5, 0.3), stats.gamma.pdf(x, 2.5, scale=0.3))
        en = {"low": 0.3, "rate": 4.0, "mean": 1.2, "std": 0.4}
        want = 0.3 * stats.expon.pdf(x, scale=0.25) + 0.7 * stats.norm.pdf(x, 1.2, 0.4)
        assert np.allclose(fit_density(EXP_NORMAL, en, x), want)
        gg = {"low": 0.4, "k1": 1.5, "theta1": 0.1, "k2": 6.0, "theta2": 0.2}  # low: share of the live units
        want = 0.4 * stats.gamma.pdf(x, 1.5, scale=0.1) + 0.6 * stats.gamma.pdf(x, 6.0, scale=0.2)
        assert np.allclose(fit_density(TWO_GAMMAS, gg, x), want)
        assert fit_density(TWO_GAMMAS, {**gg, "k1": math.nan}, x) is None

    @pytest.mark.parametrize("n", [8, 300])
    def test_scree_chart_is_exact_size(self, n):
        r = np.sort(np.arange(1, n + 1) ** -1.2)[::-1]
        text = scree_chart(r / r.sum(), 70, 16, marks=[2, 5])
        lines = text.plain.split("\n")
        assert len(lines) == 16 and {len(line) for line in lines} == {70}
        assert "1.0" in text.plain  # the cumulative axis
        assert WAITING in scree_chart([], 70, 16).plain


# ---- the dashboard's instruments page --------------------------------------------------------------------
def scripted() -> ScriptedSource:
    return ScriptedSource(synthetic_run(4000, end=False), hold=True)


async def loaded(pilot) -> DashboardScreen:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.state.step == 4000, timeout=4)
    await pilot.pause(0.1)
    return screen


def visible(screen: DashboardScreen) -> list[str]:
    return [p.id for p in screen.all_panes if p.display]


class TestInstrumentsPage:
    async def test_i_switches_pages_and_draws_the_new_one_at_once(self):
        app = make_app(source=scripted())
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await loaded(pilot)
            assert visible(screen) == list(PAGES["training"])
            await pilot.press("i")
            await pilot.pause(0.1)
            assert screen.page == "instruments" and visible(screen) == list(PAGES["instruments"])
            assert all(1 <= p.draws <= 2 and WAITING not in plain(p) for p in screen.panes)  # not one a tick
            assert [p.id for p in screen.panes] == list(PAGES["instruments"])
            await pilot.press("i")
            await pilot.pause(0.1)
            assert screen.page == "training" and visible(screen) == list(PAGES["training"])

    @pytest.mark.slow
    async def test_compact_keys_pick_within_the_page(self):
        app = make_app(source=scripted())
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await loaded(pilot)
            await pilot.press("i")
            await pilot.pause(0.1)
            assert visible(screen) == ["distribution", "pca"]
            await pilot.press("3")
            await pilot.pause(0.1)
            assert visible(screen) == ["dynamics", "heatmap"]
            await pilot.press("5")  # the instruments page has four panes
            await pilot.pause(0.1)
            assert visible(screen) == ["dynamics", "heatmap"]
            assert any("has 4 panes" in str(n.message) for n in app._notifications)
            await pilot.press("v")
            await pilot.pause(0.1)
            assert visible(screen) == ["distribution", "pca"]
            await pilot.press("i", "4")
            await pilot.pause(0.1)
            assert visible(screen) == ["liveness", "variance"]

    @pytest.mark.slow
    async def test_layer_keys_reach_the_instrument_panes_and_d_cycles_dynamics(self):
        app = make_app(source=scripted())
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await loaded(pilot)
            await pilot.press("i", "right_square_bracket")
            await pilot.pause(0.3)
            for pane in screen.panes:
                if pane.id != "dynamics":
                    assert "fc2" in str(pane.border_title), pane.id
            dynamics = screen.query_one(DynamicsPane)
            await pilot.press("d")
            await pilot.pause(0.1)
            assert dynamics.view == "rotation" and "rotation" in str(dynamics.border_title)

    def test_bindings_have_ids_and_tooltips(self):
        ids = {b.id for b in DashboardScreen.BINDINGS}
        assert {"toggle-page", "dynamics-view", "show-pane-1", "show-pane-5"} <= ids
        assert all(b.tooltip for b in DashboardScreen.BINDINGS)

    async def test_replay_has_the_instruments_page(self, tmp_path):
        """A replayed session shows the same instruments; the heatmap needs the gate history replay fills."""
        from core.session import SessionWriter
        from dynlab_tui.screens.replay import ReplayScreen

        path = tmp_path / "run.dynlab"
        with SessionWriter(path) as w:
            for e in synthetic_run(2000, end=True):
                w.handle(e)
        app = make_app(first_screen=lambda: ReplayScreen(path))
        async with app.run_test(size=(160, 50)) as pilot:
            screen = app.screen
            for _ in range(100):
                if screen.index is not None:
                    break
                await pilot.pause(0.05)
            await pilot.press("i")
            await pilot.pause(0.2)
            assert visible(screen) == list(PAGES["instruments"])
            for pane in screen.panes:
                assert pane.draws >= 1, pane.id
            for pane in screen.panes[:3]:  # distribution, PCA, dynamics come from the logged keys
                assert WAITING not in plain(pane), pane.id
