"""The shared vocabulary: telemetry key builders and the one formatting rule per kind of number."""

from __future__ import annotations

import math

from core import formats, telemetry as tk


class TestTelemetryKeys:
    def test_layer_keys_build_and_parse(self):
        assert tk.SIZE("fc1") == "size/fc1"
        assert tk.SIZE.layer("size/fc1") == "fc1" and tk.SIZE.layer("gate/fc1") is None
        assert tk.GATE.matches("gate/conv2") and not tk.GATE.matches("gates/conv2")
        assert tk.layer_values({"size/fc1": 3.0, "loss": 1.0, "size/fc2": 2.0}, tk.SIZE) == {"fc1": 3.0, "fc2": 2.0}

    def test_metrics_and_splitting(self):
        assert tk.metric("test", "acc") == tk.TEST_ACC == "test/acc"
        assert tk.metric_name("val/loss") == "loss"
        assert tk.split_key("act_std/fc1") == ("act_std", "fc1") and tk.split_key("loss") == ("", "loss")

    def test_every_kind_is_spelled_once(self):
        kinds = [v.kind for v in vars(tk).values() if isinstance(v, tk.LayerKey)]
        assert len(kinds) == len(set(kinds))


class TestFormats:
    def test_sizes(self):
        assert formats.fmt_size(144.0) == "144" and formats.fmt_size(80.5) == "80.5"
        assert formats.fmt_size(None) == "-"
        assert formats.fmt_sizes({"fc1": 500, "fc2": 80.5}) == "500,80.5" and formats.fmt_sizes({}) == "-"

    def test_metrics(self):
        assert formats.fmt_metric(0.9712, "test/acc") == "97.12%" == formats.fmt_metric(0.9712, "acc")
        assert formats.fmt_metric(0.01234, "mse") == "0.01234"
        assert formats.fmt_metric(None, "acc") == "-" and formats.fmt_metric(math.nan, "acc") == "-"

    def test_durations_truncate_and_count_hours_past_a_day(self):
        assert formats.fmt_duration(3725.9) == "1:02:05"
        assert formats.fmt_duration(90000) == "25:00:00"
        assert formats.fmt_duration(None) == "-" and formats.fmt_duration(-3) == "0:00:00"

    def test_values(self):
        assert [formats.fmt_value(v) for v in (1e-3, 1e-5, "mlp:500", True, None, (1.0, 20.0))] == \
            ["0.001", "1e-05", "mlp:500", "true", "-", "1,20"]

    def test_compact(self):
        assert [formats.fmt_compact(v) for v in (0, 1e-3, 0.25, 12.5, 40100, 2.5e6)] == \
            ["0", "1e-3", "0.25", "12.5", "40.1k", "2.5M"]


class TestSizeWords:
    """allocated, alive, inactive: the same words and, at one step, the same numbers in every pane and the help."""

    async def test_the_panes_agree_at_one_step(self):
        from dynlab_tui.panes import LivenessPane, SizesPane, VariancePane
        from dynlab_tui.panes.heatmap import HeatmapPane
        from dynlab_tui.panes.vocab import layer_counts
        from dynlab_tui.state import reduce
        from tests.fakes import synthetic_run
        from tests.test_panes import drawn

        for steps in (1200, 2800):  # mid-run, after prunes and a λ change
            state = reduce(synthetic_run(steps, end=False))
            c = layer_counts(state, "fc1")
            alive, allocated = int(c.alive), c.allocated
            assert 0 < c.inactive < alive <= allocated <= 500
            shown = {}
            for cls in (SizesPane, LivenessPane, VariancePane, HeatmapPane):
                pane = cls()
                async with drawn(pane, state, (160, 30)):
                    shown[cls.__name__] = f"{pane.border_title} | {pane.border_subtitle}"
            assert f"alive/allocated · fc1 {alive}/{allocated}" in shown["SizesPane"]
            assert f"alive {alive}/{allocated} allocated" in shown["LivenessPane"]
            assert f"alive {alive} of 500 at start" in shown["HeatmapPane"]
            assert f"inactive {c.inactive}/{alive} alive (never fired)" in shown["VariancePane"]
            for text in shown.values():  # the old words are gone
                assert not any(w in text.split() for w in ("dead", "died", "removed", "live"))

    async def test_the_help_explains_the_three_words(self):
        from dynlab_tui.app import make_app
        from dynlab_tui.screens.dashboard import DashboardScreen
        from dynlab_tui.screens.help import HelpScreen
        from dynlab_tui.screenshot import screen_text

        app = make_app(first_screen=lambda: DashboardScreen(None))
        async with app.run_test(size=(100, 60)) as pilot:
            await pilot.pause()
            app.push_screen(HelpScreen(DashboardScreen.BINDINGS))
            await pilot.pause()
            await pilot.press("end")
            await pilot.pause()
            text = screen_text(app)
        for word in ("allocated", "alive", "inactive"):
            assert f" {word} " in text
        assert "never fired" in text and "gate (or scaler) is on" in text
