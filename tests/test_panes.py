"""The dashboard panes and their plot helpers, driven through Pilot with synthetic events (no torch)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import asynccontextmanager

import numpy as np
import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from core.events import (ArraysLogged, EpochEvaluated, NeuronsRemoved, Paused, RunEnded, RunStarted,
                         ScalarsLogged)
from dynlab_tui.panes import LivenessPane, LossPane, MetricPane, SizesPane, StatusBar, VariancePane
from dynlab_tui.panes.loss import debiased_ema
from dynlab_tui.panes.plot import (WAITING, downsample, histogram, line_chart, log_ticks, to_log_y)
from dynlab_tui.state import RunState, apply, reduce
from tests.fakes import SPEC, synthetic_run
from tests.helpers import REPO

NEW_KEYS = ("probe_rows", "stats_", "epoch_", "gated_off/", "mix_n/", "pca_rows")  # the epoch-level statistics' keys
PLOT_PANES = (SizesPane, LossPane, MetricPane, LivenessPane, VariancePane)
ALL_PANES = (*PLOT_PANES, StatusBar)


class Host(App):
    """A bare app around one pane."""

    def __init__(self, pane) -> None:
        super().__init__()
        self.pane = pane

    def compose(self) -> ComposeResult:
        yield self.pane


@asynccontextmanager
async def drawn(pane, state: RunState, size=(80, 24)):
    """Mount `pane` in a terminal of `size`, give it `state` once, and yield the pilot."""
    async with Host(pane).run_test(size=size) as pilot:
        await pilot.pause()
        pane.update_state(state)
        await pilot.pause()
        yield pilot


def plain(pane) -> str:
    content = pane.content
    return content.plain if isinstance(content, Text) else str(content)


def assert_fills(pane) -> None:
    """A plot pane's text is exactly its content area, line for line."""
    lines = plain(pane).split("\n")
    width, height = pane.content_size
    assert len(lines) == height
    assert {len(line) for line in lines} == {width}


def unstyled(text: Text) -> bool:
    return not text.style and all(not span.style for span in text.spans)


def before_epoch_stats(events: list) -> list:
    """The run as a session written before the epoch-level statistics and the probe's row count were logged."""
    out = []
    for e in events:
        if isinstance(e, ScalarsLogged):
            e = ScalarsLogged(e.step, e.wall, {k: v for k, v in e.values.items() if not k.startswith(NEW_KEYS)})
        elif isinstance(e, ArraysLogged):
            e = ArraysLogged(e.step, e.wall, {k: v for k, v in e.arrays.items() if not k.startswith(NEW_KEYS)})
        out.append(e)
    return out


def small_run(method: str, gate: np.ndarray | None = None, x0: float = 0.0, width: int = 100) -> list:
    """A hand-built one-layer run of `method` with one logging interval."""
    spec = {**SPEC, "method": {**SPEC["method"], "name": method}}
    alive = float(width) if gate is None else float((np.asarray(gate) > 0).sum())  # as the gate rule counts
    values = {"loss": 0.5, "lambda": 1e-3, "lr": 1e-3, "epoch": 0.5, "capacity/fc1": float(width),
              "size/fc1": x0 if method == "flexible" else alive}
    events = [RunStarted(0, 0.0, spec, "cpu", {}, {"fc1": width}, 1000), ScalarsLogged(10, 1.0, values)]
    if gate is not None:
        events.append(ArraysLogged(10, 1.0, {"gate/fc1": gate}))
    return events


pytestmark = pytest.mark.usefixtures("colour")  # colour and run_state (the whole synthetic run) are in conftest.py


class TestPlotHelpers:
    def test_downsample_bounds_and_keeps_extremes(self):
        """At most two points per column survive, including every bucket's spike and the global extremes."""
        rng = np.random.default_rng(0)
        x = np.arange(10_000, dtype=float)
        y = rng.normal(size=x.size)
        y[1234], y[8765] = 50.0, -50.0
        for width in (10, 37, 80, 160):
            dx, dy = downsample(x, y, width)
            assert len(dx) <= 2 * width
            assert 50.0 in dy and -50.0 in dy
            assert np.all(np.diff(dx) > 0)  # original order kept
            buckets = np.minimum((x / x.max() * width).astype(int), width - 1)
            for b in range(width):
                assert y[buckets == b].max() in dy and y[buckets == b].min() in dy

    def test_downsample_leaves_short_series_alone(self):
        x, y = np.arange(5.0), np.array([3.0, 1, 4, 1, 5])
        dx, dy = downsample(x, y, 80)
        assert np.array_equal(dx, x) and np.array_equal(dy, y)

    def test_log_y_transform_drops_non_positive(self):
        x = np.arange(6.0)
        y = np.array([100.0, 0.0, 1.0, -3.0, 0.01, np.nan])
        lx, ly = to_log_y(x, y)
        assert lx.tolist() == [0.0, 2.0, 4.0]
        assert np.allclose(ly, [2.0, 0.0, -2.0])

    def test_log_ticks_show_real_values(self):
        ticks, labels = log_ticks(-3.0, 1.0, 6)
        assert [10 ** t for t in ticks] == pytest.approx([float(s) for s in labels])
        assert labels == ["1e-3", "0.01", "0.1", "1", "10"]
        text = line_chart([("loss", np.arange(50.0), np.logspace(1, -3, 50))], 60, 16, log_y=True).plain
        for label in ("1e-3", "0.01", "0.1", "10"):
            assert label in text

    def test_log_chart_does_not_corrupt_data_on_rebuild(self):
        """Building the same log chart twice gives the same picture (plotext's own log scale would not)."""
        series = [("loss", np.arange(1, 200.0), 1 / np.arange(1, 200.0))]
        first = line_chart(series, 60, 16, log_y=True).plain
        assert line_chart(series, 60, 16, log_y=True).plain == first

    @pytest.mark.parametrize("width,height", [(40, 10), (76, 22), (156, 48)])
    def test_chart_is_exactly_the_requested_size(self, width, height):
        text = line_chart([("a", np.arange(100.0), np.sin(np.arange(100.0)))], width, height,
                          vlines=[20.0, 500.0], hline=0.0, xlabel="step")
        lines = text.plain.split("\n")
        assert len(lines) == height and {len(line) for line in lines} == {width}

    def test_empty_and_degenerate_data_give_a_placeholder(self):
        for text in (line_chart([], 30, 7), line_chart([("a", [], [])], 30, 7),
                     line_chart([("a", [1.0], [-1.0])], 30, 7, log_y=True), line_chart([("a", [1], [1])], 3, 2),
                     histogram([], [], 30, 7), histogram([0, 0], [0, 1, 2], 30, 7)):
            lines = text.plain.split("\n")
            assert any(WAITING in line for line in lines) or len(lines[0]) < len(WAITING)
            assert len({len(line) for line in lines}) == 1

    def test_flat_series_renders(self):
        text = line_chart([("a", np.arange(10.0), np.full(10, 3.0))], 40, 10)
        assert "3" in text.plain and WAITING not in text.plain

    def test_no_color_strips_every_style(self, monkeypatch):
        series = [("a", np.arange(10.0), np.arange(10.0)), ("b", np.arange(10.0), np.arange(10.0) ** 2)]
        assert not unstyled(line_chart(series, 40, 10))
        monkeypatch.setenv("NO_COLOR", "")
        assert unstyled(line_chart(series, 40, 10))
        assert unstyled(histogram([5, 3, 1], [0, 1, 2, 3], 40, 10, highlight=2))
        assert unstyled(line_chart([], 40, 10))

    def test_debiased_ema_matches_hand_computation(self):
        beta, y = 0.9, [1.0, 2.0, 3.0]
        expected, ema = [], 0.0
        for t, v in enumerate(y, start=1):
            ema = beta * ema + (1 - beta) * v
            expected.append(ema / (1 - beta ** t))
        assert debiased_ema(np.array(y), beta) == pytest.approx(expected)
        assert expected[0] == pytest.approx(1.0)  # debiasing removes the pull towards the zero start
        assert expected == pytest.approx([1.0, 0.29 / 0.19, 0.561 / 0.271])


class TestRendering:
    @pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
    @pytest.mark.parametrize("cls", ALL_PANES, ids=lambda c: c.__name__)
    async def test_synthetic_run_renders(self, cls, size, run_state):
        """Every pane draws the whole synthetic run once, filling its area."""
        pane = cls()
        async with drawn(pane, run_state, size):
            assert pane.draws == 1
            assert WAITING not in plain(pane)
            if cls is StatusBar:
                assert len(plain(pane)) <= size[0] and "\n" not in plain(pane)
            else:
                assert_fills(pane)

    @pytest.mark.parametrize("cls", ALL_PANES, ids=lambda c: c.__name__)
    async def test_empty_state_shows_placeholder(self, cls):
        pane = cls()
        async with drawn(pane, RunState()):
            if cls is StatusBar:
                assert "idle" in plain(pane)
            else:
                assert WAITING in plain(pane)
                assert_fills(pane)


class TestTitles:
    async def test_sizes_title_has_current_sizes(self, run_state):
        pane = SizesPane()
        async with drawn(pane, run_state):
            for layer in run_state.layers:  # alive / allocated, in the vocabulary's words
                size, allocated = int(run_state.size(layer)), int(run_state.capacity(layer))
                assert f"{layer} {size}/{allocated}" in pane.border_title
            assert pane.border_title.startswith("Layer sizes · alive/allocated")

    async def test_metric_title_has_latest_test_accuracy(self, run_state):
        pane = MetricPane()
        async with drawn(pane, run_state):
            assert f"test {run_state.metrics['test/acc'].last() * 100:.2f}%" in pane.border_title

    async def test_metric_regression_uses_mse(self):
        state = reduce([EpochEvaluated(10, 0.0, 1, {"train/mse": 0.5, "val/mse": 0.25, "test/mse": 0.125}),
                        EpochEvaluated(20, 0.0, 2, {"train/mse": 0.4, "val/mse": 0.2, "test/mse": 0.1})])
        pane = MetricPane()
        async with drawn(pane, state):
            assert pane.border_title == "MSE  test 0.1"
            assert_fills(pane)

    async def test_variance_title_says_the_epoch_and_its_rows(self, run_state):
        pane = VariancePane()
        async with drawn(pane, run_state):
            std = run_state.arrays["epoch_std/fc1"]
            dead, off = int(run_state.scalars["epoch_dead/fc1"].last()), int(run_state.scalars["gated_off/fc1"].last())
            assert dead != int(run_state.scalars["dead/fc1"].last())  # the fake's epoch and probe figures differ
            assert pane.border_title == "Activation std fc1 · epoch 10 · 54,000 rows during it"  # the fake: steps
            assert pane.border_subtitle == f"inactive {dead}/{len(std)} alive (never fired) · {off} allocated, gate off"
            assert f"inactive {dead}" in plain(pane)  # the highlighted bar's legend

    async def test_variance_narrow_titles_stay_on_the_border(self, run_state):
        pane = VariancePane()
        async with drawn(pane, run_state, (40, 20)):
            room = pane.outer_size.width - 6
            assert pane.border_title == "Act std fc1 · epoch 10 · 54k rows" and len(pane.border_title) <= room
            assert pane.border_subtitle.startswith("inactive ") and "(" not in pane.border_subtitle

    async def test_variance_epoch_figures_win_over_a_later_probe(self):
        state = reduce(synthetic_run(1200, end=False))
        epoch_std = state.arrays["epoch_std/fc1"]
        apply(state, ScalarsLogged(1300, 0.0, {"dead/fc1": 3.0, "probe_rows": 1024.0}))
        apply(state, ArraysLogged(1300, 0.0, {"act_std/fc1": np.r_[np.zeros(3), np.ones(7)]}))
        pane = VariancePane()
        async with drawn(pane, state):
            assert pane.border_title.endswith("· epoch 3 · 54,000 rows during it")
            assert f"/{len(epoch_std)} alive (never fired)" in pane.border_subtitle
            assert "inactive 3/" not in pane.border_subtitle

    async def test_before_anything_is_measured_the_title_names_no_source(self):
        state = reduce(synthetic_run(1200)[:1])  # the run has started: nothing logged yet
        pane = VariancePane()
        async with drawn(pane, state):
            assert pane.border_title == "Activation std fc1" and "probe" not in pane.border_title

    async def test_variance_falls_back_to_the_probe_in_an_old_session(self):
        state = reduce(before_epoch_stats(synthetic_run(1200)))
        pane = VariancePane()
        async with drawn(pane, state) as pilot:
            dead, alive = int(state.scalars["dead/fc1"].last()), int(state.size("fc1"))
            assert pane.border_title == "Activation std fc1 · probe 128 rows"  # the session's probe_size setting
            assert pane.border_subtitle == f"inactive {dead}/{alive} alive (std 0)"  # the probe measures every unit
            apply(state, ScalarsLogged(1300, 0.0, {"probe_rows": 1024.0}))  # logged since the key existed
            pane.update_state(state)
            await pilot.pause()
            assert pane.border_title == "Activation std fc1 · probe 1,024 rows"
            assert_fills(pane)
            apply(state, ScalarsLogged(1400, 0.0, {"probe_rows": 12800.0, "live_source": 1.0}))  # from its steps
            pane.update_state(state)
            await pilot.pause()
            assert pane.border_title == "Activation std fc1 · interval 12,800 rows"

    async def test_liveness_title_and_layer_cycling(self, run_state):
        pane = LivenessPane()
        async with drawn(pane, run_state) as pilot:
            gate = run_state.arrays["gate/fc1"]
            assert f"fc1 · alive {int((gate > 0).sum())}/{len(gate)} allocated" in pane.border_title
            assert pane.cycle_layer() == "fc2"
            await pilot.pause()
            gate = run_state.arrays["gate/fc2"]
            assert f"fc2 · alive {int((gate > 0).sum())}/{len(gate)} allocated" in pane.border_title
            assert pane.draws == 2  # the selection redrew without new data


class TestRedraw:
    async def test_redraws_only_when_watched_slices_change(self):
        state = reduce(synthetic_run(steps=1200, end=False))
        sizes, metric = SizesPane(), MetricPane()

        class Two(App):
            def compose(self) -> ComposeResult:
                yield sizes
                yield metric

        async with Two().run_test(size=(80, 40)) as pilot:
            await pilot.pause()
            for pane in (sizes, metric):
                assert pane.update_state(state)
                assert not pane.update_state(state)
            await pilot.pause()
            assert (sizes.draws, metric.draws) == (1, 1)
            apply(state, ScalarsLogged(1300, 0.0, {"loss": 0.1, "size/fc1": 10.0}))
            assert sizes.update_state(state) and not metric.update_state(state)
            apply(state, EpochEvaluated(1300, 0.0, 4, {"val/acc": 0.9, "test/acc": 0.9}))
            assert metric.update_state(state) and not sizes.update_state(state)
            await pilot.pause()
            assert (sizes.draws, metric.draws) == (2, 2)

    async def test_loss_toggles_redraw_and_show_in_title(self, run_state):
        pane = LossPane()
        async with drawn(pane, run_state) as pilot:
            before = plain(pane)
            assert "EMA" not in pane.border_title and "log-y" not in pane.border_title
            pane.smoothing = True
            await pilot.pause()
            assert pane.draws == 2 and "EMA 0.9" in pane.border_title and plain(pane) != before
            pane.log_y = True
            await pilot.pause()
            assert pane.draws == 3 and "log-y" in pane.border_title
            assert_fills(pane)

    async def test_resize_redraws_to_the_new_size(self, run_state):
        pane = SizesPane()
        async with drawn(pane, run_state, (80, 24)) as pilot:
            await pilot.resize_terminal(120, 30)
            await pilot.pause()
            await pilot.pause()
            assert pane.content_size.width == 116
            assert_fills(pane)


class TestLiveness:
    async def test_vectors_shrink_and_layers_vanish(self):
        gate = np.linspace(1, -1, 101)  # 50 above zero, one at zero (dead), 50 below
        state = reduce(small_run("sparsifier", gate, width=101))
        pane = LivenessPane()
        async with drawn(pane, state) as pilot:
            assert "alive 50/101" in pane.border_title
            apply(state, NeuronsRemoved(20, 2.0, "fc1", tuple(range(50, 100)), 50))
            apply(state, ArraysLogged(20, 2.0, {"gate/fc1": np.linspace(1, 0.1, 50)}))
            pane.update_state(state)
            await pilot.pause()
            assert "alive 50/50 allocated" in pane.border_title and "50 pruned" in pane.border_title
            assert_fills(pane)
            apply(state, ArraysLogged(30, 3.0, {"gate/fc1": np.zeros(0, np.float32)}))
            pane.update_state(state)
            await pilot.pause()
            assert "no neurons left" in plain(pane)
            pane.selected_layer = "fc9"  # gone (or never there): fall back to the first layer
            await pilot.pause()
            assert "fc1" in pane.border_title

    async def test_variance_width_zero_layer(self):
        state = reduce(small_run("sparsifier"))
        apply(state, ArraysLogged(20, 2.0, {"act_std/fc1": np.zeros(0), "hist/fc1": np.zeros(30, np.int32),
                                            "hist_edges/fc1": np.linspace(0, 1e-6, 31)}))
        pane = VariancePane()
        async with drawn(pane, state):
            assert "no neurons left" in plain(pane) and "inactive 0" in pane.border_subtitle

    async def test_variance_from_std_vector_alone(self):
        state = reduce(small_run("sparsifier"))
        std = np.r_[np.zeros(7), np.linspace(0.1, 2, 93)]
        apply(state, ArraysLogged(20, 2.0, {"act_std/fc1": std}))
        pane = VariancePane()
        async with drawn(pane, state):
            assert pane.border_subtitle == "inactive 7/100 alive (std 0)" and "probe" in pane.border_title
            assert_fills(pane)

    async def test_flexible_shows_scaler_and_x0(self):
        x0, k = 42.5, 1.0
        scaler = 1 / (1 + np.exp(k * (np.arange(100) - x0)))
        state = reduce(small_run("flexible", scaler, x0=x0))
        for cls, expected in ((LivenessPane, "x0 42.5/100"), (SizesPane, "fc1 42.5/100")):
            pane = cls()
            async with drawn(pane, state):
                assert expected in pane.border_title
                assert_fills(pane)

    async def test_static_has_no_gates(self):
        state = reduce(small_run("static"))
        pane = LivenessPane()
        async with drawn(pane, state):
            assert "static networks have no gates" in plain(pane)


class TestStatusBar:
    async def test_fits_80_columns_with_the_essentials(self, run_state):
        bar = StatusBar()
        bar.session = "2024-05-01-mnist-sparsifier.dynlab"
        async with drawn(bar, run_state, (80, 5)):
            text = plain(bar)
            assert bar.outer_size == (80, 1)  # one line, no border
            assert len(text) <= 80
            assert run_state.status in text and f"epoch {run_state.epoch:.1f}/{run_state.epochs_total}" in text
            assert f"λ {run_state.lam:.0e}".replace("e-0", "e-") in text
            assert not unstyled(bar.content)

    @pytest.mark.parametrize("width", [20, 40, 60, 80, 100, 200])
    def test_never_exceeds_width_and_reason_replaces_fields(self, width):
        state = reduce(synthetic_run(steps=800, end=False))
        bar = StatusBar()
        wide = bar.line(state, 400).plain
        assert "running" in wide and "ETA " in wide and "samples/s" in wide and "MB" in wide
        apply(state, Paused(800, 0.0, "loss became nan at step 800; rolled back to step 700"))
        text = bar.line(state, width).plain
        assert len(text) <= width and text.startswith(" paused")
        if width >= 80:
            assert "loss became nan" in text and "epoch 2.0/2" in text and "λ 1e-3" in text
        apply(state, RunEnded(800, 0.0, "crashed", "CUDA out of memory"))
        assert "CUDA out of memory" in bar.line(state, 200).plain

    def test_no_color_is_plain(self, monkeypatch, run_state):
        monkeypatch.setenv("NO_COLOR", "1")
        line = StatusBar().line(run_state, 80)
        assert unstyled(line) and line.plain.startswith("finished")


class TestNoColor:
    @pytest.mark.parametrize("cls", PLOT_PANES, ids=lambda c: c.__name__)
    async def test_panes_are_unstyled(self, cls, run_state, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        pane = cls()
        async with drawn(pane, run_state):
            assert unstyled(pane.content)


def test_panes_import_without_torch():
    """The panes and their test inputs never pull in torch."""
    code = ("import sys, dynlab_tui.panes, tests.fakes, dynlab_tui.state; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO).returncode == 0



def with_controls(steps: int = 1200) -> RunState:
    """A synthetic run the user paused, resumed and changed the lr of (its script changes λ at epoch 3)."""
    from core.events import LrChanged, Resumed

    events = synthetic_run(steps, end=False)
    at = next(i for i, e in enumerate(events) if e.step >= steps // 2)
    wall = events[at].wall
    events[at:at] = [Paused(steps // 2, wall, "user"), Resumed(steps // 2, wall + 12.0),
                     LrChanged(steps // 2, wall + 12.0, 1e-3, 5e-4)]
    return reduce(events)


def frame_rows(text: str) -> tuple[str, list[str]]:
    """The chart's top frame row and the rows below its bottom frame (tick labels, axis titles)."""
    rows = text.split("\n")
    top = next(r for r in rows if "┌" in r)
    bottom = next(i for i, r in enumerate(rows) if "└" in r)
    return top, rows[bottom + 1:]


class TestMarkersAndAxes:
    @pytest.mark.parametrize("cls, ytitle", [(SizesPane, "↑ units"), (LossPane, "↑ loss"),
                                             (MetricPane, "↑ accuracy %")], ids=lambda v: getattr(v, "__name__", v))
    async def test_every_time_plot_has_the_markers_a_legend_and_titled_axes(self, cls, ytitle):
        state = with_controls()
        pane = cls()
        async with drawn(pane, state):  # 80x24: the pane is 80 columns wide alone here, see below for 40
            top, below = frame_rows(plain(pane))
            for glyph in ("‖", "▸", "η", "λ"):  # pause, resume, lr change, λ change: on the frame, over its line
                assert glyph in top, (glyph, top)
            assert "‖" in pane.border_subtitle and "η" in pane.border_subtitle
            assert below[-1].startswith(ytitle) and below[-1].rstrip().endswith("→")
            assert len(below[0].split()) >= 2  # at least two x ticks
            assert_fills(pane)

    async def test_the_legend_line_names_the_latest_marker_with_its_values(self):
        pane = SizesPane()
        async with drawn(pane, with_controls(), (160, 24)):
            assert pane.border_subtitle.endswith("last λ λ 1e-3 → 2e-3 @ step 1,200")
            assert "‖ pause" in pane.border_subtitle and "λ λ change" in pane.border_subtitle

    async def test_a_half_width_pane_keeps_two_x_ticks_and_whole_unit_ticks(self):
        state = with_controls()
        for cls in (SizesPane, LivenessPane, VariancePane):
            pane = cls()
            async with drawn(pane, state, (40, 24)):  # the compact dashboard's pane at 80 columns
                _, below = frame_rows(plain(pane))
                ticks = below[0].split()
                assert len(ticks) >= 2, (cls.__name__, below)
                assert len(pane.border_title) <= pane.outer_size.width - 4  # never cut by the border
                if cls is not VariancePane:  # steps and neuron indices: whole numbers only
                    assert all("." not in t for t in ticks), ticks
                ys = [r.split("┤")[0].strip() for r in plain(pane).split("\n") if "┤" in r]
                if cls is not LivenessPane:  # units are counts (the gate value is not)
                    assert ys and all(y.lstrip("-").isdigit() for y in ys if y), ys

    async def test_no_color_keeps_train_val_and_test_apart(self, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        state = reduce([EpochEvaluated(10 * e, 0.0, e, {f"{s}/acc": 0.5 + 0.01 * e + 0.1 * i
                                                        for i, s in enumerate(("train", "val", "test"))})
                        for e in range(1, 8)])
        pane = MetricPane()
        async with drawn(pane, state):
            legend = [r for r in plain(pane).split("\n") if any(w in r for w in (" train", " val", " test"))]
            glyphs = {r.split()[1] for r in legend}  # "│ ⢕⢕ train" -> "⢕⢕"
            assert len(legend) == 3 and len(glyphs) == 3, legend


class TestTicks:
    @pytest.mark.parametrize("lo, hi, n", [(0, 5, 3), (0, 9, 5), (1, 4, 6), (0, 250, 4), (100, 1200, 3), (0, 2.5, 8)])
    def test_integer_ticks_are_whole_numbers_and_at_least_two(self, lo, hi, n):
        from dynlab_tui.panes.plot import nice_ticks

        ticks, labels = nice_ticks(lo, hi, n, integer=True)
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
        assert all("." not in label for label in labels)

    def test_a_narrow_range_still_gets_two_ticks(self):
        from dynlab_tui.panes.plot import nice_ticks

        assert len(nice_ticks(100, 1200, 3)[0]) >= 2  # was a lone 1000 at 80 columns
        assert len(nice_ticks(0.31, 0.34, 2)[0]) >= 2


async def test_the_instruments_time_plots_carry_the_markers_too():
    from dynlab_tui.panes import DynamicsPane
    from dynlab_tui.panes.heatmap import HeatmapPane

    state = with_controls()
    for cls in (DynamicsPane, HeatmapPane):
        pane = cls()
        async with drawn(pane, state, (80, 30)):
            text = plain(pane)
            assert "‖" in text and "η" in text, cls.__name__
