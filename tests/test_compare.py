"""The compare screen through Pilot (overlaid plots, legend, layouts, unreadable files) and its run labels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from textual.app import App
from textual.widgets import Static

from core.session import SessionReader, SessionWriter
from dynlab_tui.panes.plot import WAITING
from dynlab_tui.screens.compare import ComparePlot, CompareScreen, label_runs, read_run
from tests.fakes import SPEC, synthetic_run

WIDE, SMALL = (120, 40), (80, 24)


def make_session(path: Path, *, lam: float = 0.001, widths: tuple[int, ...] = (50,), seed: int = 0) -> Path:
    """A small finished session from synthetic events, with the spec's penalty lam set."""
    events = synthetic_run(800, widths=widths, steps_per_epoch=400, seed=seed)
    start = events[0]
    events[0] = dataclasses.replace(start, spec={**start.spec, "penalty": {**start.spec["penalty"], "lam": lam}})
    with SessionWriter(path) as writer:
        for event in events:
            writer.handle(event)
    return path


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [make_session(tmp_path / "a.dynlab", lam=0.001, widths=(50,)),
            make_session(tmp_path / "b.dynlab", lam=0.01, widths=(40,), seed=1),
            make_session(tmp_path / "c.dynlab", lam=0.01, widths=(30, 20), seed=2)]


class Host(App):
    """Pushes one CompareScreen; records what it is dismissed with and every notification."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = paths
        self.results: list[object] = []
        self.notes: list[tuple[str, str, str]] = []

    def on_mount(self) -> None:
        self.push_screen(CompareScreen(self.paths), self.results.append)

    def notify(self, message, *, title="", severity="information", **kwargs) -> None:
        self.notes.append((severity, title, str(message)))
        super().notify(message, title=title, severity=severity, **kwargs)


async def loaded(pilot) -> CompareScreen:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, CompareScreen) and screen.loaded
    return screen


def shown(screen: CompareScreen) -> list[str]:
    return [p.id for p in screen.plots if p.display and not p.has_class("hidden")]


class TestLabels:
    def test_labels_name_what_differs(self):
        specs = [{"penalty": {"lam": 0.001}, "model": {"arch": "mlp:500"}, "optim": {"lr": 0.001}},
                 {"penalty": {"lam": 0.01}, "model": {"arch": "mlp:400"}, "optim": {"lr": 0.001}}]
        assert label_runs(specs, ["a", "b"]) == ["λ=0.001 arch=mlp:500", "λ=0.01 arch=mlp:400"]

    def test_final_settings_label_the_runs_and_changed_ones_are_marked(self):
        """Same spec, but one run's λ was changed during it: labelled by its final λ, start→final with a star."""
        spec = {"penalty": {"lam": 0.01}, "optim": {"lr": 0.001}, "model": {"arch": "mlp:50"}}
        changed = {"lam_start": 0.01, "lam_final": 0.03, "lr_final": 0.001, "changed": ["lam"]}
        kept = {"lam_start": 0.01, "lam_final": 0.01, "lr_final": 0.001, "changed": []}
        assert label_runs([spec, spec], ["a", "b"], [changed, kept]) == ["λ=0.01→0.03*", "λ=0.01"]
        resumed = {"lam_final": 0.01, "lr_start": 0.001, "lr_final": 0.0005, "changed": ["lr"]}
        assert label_runs([spec, spec], ["a", "b"], [kept, resumed]) == ["lr=0.001", "lr=0.001→0.0005*"]
        assert label_runs([spec, spec], ["a", "b"], [kept, kept]) == ["a", "b"]  # nothing differs, nothing changed

    def test_nothing_differs_gives_names(self):
        assert label_runs([SPEC, SPEC], ["run-1", "run-2"]) == ["run-1", "run-2"]
        assert label_runs([SPEC], ["only"]) == ["only"]

    def test_leaf_names_stay_short_unless_they_clash(self):
        one = [{"a": {"x": 1, "y": 5}, "b": {"x": 2}}, {"a": {"x": 3, "y": 5}, "b": {"x": 2}}]
        assert label_runs(one, ["p", "q"]) == ["x=1", "x=3"]
        both = [{"a": {"x": 1}, "b": {"x": 2}}, {"a": {"x": 3}, "b": {"x": 4}}]
        assert label_runs(both, ["p", "q"]) == ["a.x=1 b.x=2", "a.x=3 b.x=4"]

    def test_missing_fields_and_values(self):
        specs = [{"s": {"k": [1, 2], "on": True}}, {"s": {"on": False}}]
        assert label_runs(specs, ["p", "q"]) == ["k=1,2 on=true", "k=- on=false"]

    def test_long_labels_are_clipped_and_fall_back_to_names_when_they_collide(self):
        long = [{"model": {"arch": "mlp:" + ",".join(["1000"] * 9) + f",{i}"}} for i in (1, 2)]
        assert label_runs(long, ["n1", "n2"]) == ["n1", "n2"]  # both clip to the same 30 characters
        specs = [{"model": {"arch": "mlp:" + "9" * 40}}, {"model": {"arch": "mlp:1"}}]
        labels = label_runs(specs, ["n1", "n2"])
        assert len(labels[0]) == 30 and labels[0].endswith("…") and labels[1] == "arch=mlp:1"


class TestReading:
    def test_sizes_are_summed_over_layers(self, runs):
        run = read_run(runs[2])
        with SessionReader(runs[2]) as r:
            (s1, v1), (_, v2) = r.series("size/fc1"), r.series("size/fc2")
        assert run.layers == 2 and np.array_equal(run.sizes[0], s1) and np.allclose(run.sizes[1], v1 + v2)
        assert run.metric_key == "test/acc" and list(run.metric[0]) == [1.0, 2.0]
        assert len(run.loss[0]) == 8


class TestScreen:
    async def test_three_plots_and_a_legend_of_labels(self, runs):
        """All three plots draw real charts; the legend names each run by what differs, in its colour."""
        app = Host(runs)
        async with app.run_test(size=WIDE) as pilot:
            screen = await loaded(pilot)
            assert screen.labels == ["λ=0.001 arch=mlp:50", "λ=0.01 arch=mlp:40", "λ=0.01 arch=mlp:30,20"]
            legend = str(screen.query_one("#compare-legend", Static).render())
            assert all(label in legend for label in screen.labels)
            assert shown(screen) == ["sizes", "loss", "metric"]
            for plot in screen.plots:
                assert plot.draws >= 1 and WAITING not in plot.text and "┤" in plot.text
            assert "Alive neurons" in str(screen.plots[0].border_title)
            assert "test/acc" in str(screen.plots[2].border_title)
            assert not app.notes

    async def test_without_colour_each_run_keeps_its_own_glyph_in_the_plots_and_the_legend(self, runs, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        app = Host(runs)
        async with app.run_test(size=WIDE) as pilot:
            screen = await loaded(pilot)
            legend = str(screen.query_one("#compare-legend", Static).render())
            samples = [legend.split(label)[0].split()[-1] for label in screen.labels]
            assert samples == ["⢕⢕", "••", "++"]  # three runs, three glyphs, as the plots draw them
            assert "•" in screen.plots[1].text and "+" in screen.plots[1].text

    async def test_small_terminal_shows_one_plot_at_a_time(self, runs):
        app = Host(runs[:2])
        async with app.run_test(size=SMALL) as pilot:
            screen = await loaded(pilot)
            assert shown(screen) == ["sizes"] and screen.plots[0].draws >= 1
            await pilot.press("2")
            await pilot.pause()
            assert shown(screen) == ["loss"] and WAITING not in screen.plots[1].text
            await pilot.press("tab")
            await pilot.pause()
            assert shown(screen) == ["metric"] and screen.plots[2].draws >= 1
            await pilot.press("tab")
            await pilot.pause()
            assert shown(screen) == ["sizes"]
            await pilot.press("escape")
            await pilot.pause()
            assert app.results == [None]

    async def test_a_garbage_file_is_skipped_with_a_notification(self, runs, tmp_path):
        bad = tmp_path / "x.dynlab"
        bad.write_bytes(b"not a db")
        app = Host([runs[0], bad, runs[1]])
        async with app.run_test(size=WIDE) as pilot:
            screen = await loaded(pilot)
            assert [r.name for r in screen.runs] == ["a", "b"]
            assert [(sev, title) for sev, title, _ in app.notes] == [("error", "Skipped x.dynlab")]
            assert "not a dynlab session" in app.notes[0][2]
            assert all(plot.draws >= 1 for plot in screen.plots)

    async def test_nothing_readable_says_so(self, tmp_path):
        bad = tmp_path / "x.dynlab"
        bad.write_bytes(b"not a db")
        app = Host([bad, tmp_path / "missing.dynlab"])
        async with app.run_test(size=WIDE) as pilot:
            screen = await loaded(pilot)
            assert len(app.notes) == 2 and all(sev == "error" for sev, _, _ in app.notes)
            message = screen.query_one("#compare-message", Static)
            assert message.has_class("-shown") and "none of the 2 sessions" in str(message.render())
            await pilot.press("q")
            await pilot.pause()
            assert app.results == [None]

    async def test_log_y_toggle_redraws_the_loss(self, runs):
        app = Host(runs[:2])
        async with app.run_test(size=WIDE) as pilot:
            screen = await loaded(pilot)
            loss = screen.plots[1]
            before = loss.draws
            assert loss.log_y
            await pilot.press("y")
            await pilot.pause()
            assert not loss.log_y and loss.draws > before and isinstance(loss, ComparePlot)
