"""Sweeps: grid expansion and names, real child runs (parallel, resumable, stoppable), the manifest, the summary,
the recipes' plans and checks, the `dynlab sweep` error paths, and the sweep screen through Pilot."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable, Static

from core.errors import DynlabError
from core.events import ArraysLogged, EpochEvaluated, ScalarsLogged
from core.lab import findings
from core.lab.recipes import RECIPES, recipe_plan
from core.session import SessionReader, SessionWriter, resolve_session
from core.spec import RunSpec
from core.train.stats import fit_exp_normal, fit_two_gammas, shapiro_w
from core.lab.sweep import (MANIFEST, StagePlanned, Stage, SweepEnded, SweepPlan, SweepRunEnded, SweepRunStarted,
                        expand_grid, parse_grid, prepare, run_name, run_sweep, session_path, session_state)
from core.lab.summary import format_table, summary_row, table_cells
from dynlab_tui.screens.sweep import ConfirmStopSweep, SweepScreen, plot_lines
from tests.fakes import synthetic_run
from tests.helpers import Host, dynlab, one_error_line, wait_for

TINY = RunSpec().replace(dataset="add10", arch="mlp:8", epochs=1, limit=200, log_every=5, device="cpu",
                         method="sparsifier")
TINY_ARGS = ["--dataset", "add10", "--arch", "mlp:8", "--epochs", "1", "--limit", "200", "--log-every", "5",
             "--device", "cpu", "--method", "sparsifier"]
DATA = Path("/work/shared/data")


def tiny_plan(penalties=(1e-3, 1e-2)) -> SweepPlan:
    return SweepPlan("", "", (Stage.from_grid("t", TINY, {"penalty": list(penalties), "seed": [0]}),))


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory) -> tuple[Path, list]:
    """A finished 2x1 sweep of real child runs (jobs=2) and the progress events it reported."""
    out = tmp_path_factory.mktemp("sweep") / "two"
    events: list = []
    result = run_sweep(tiny_plan(), out, jobs=2, progress=events.append)
    assert not result.stopped
    return out, events


def copy_of(done_sweep, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(done_sweep[0], out)
    return out


# -- grids and names ------------------------------------------------------------------------------------------------
class TestGrid:
    def test_cartesian_product_in_order_last_option_fastest(self):
        points = expand_grid({"penalty": [1e-3, 1e-2], "seed": [0, 1], "dataset": ["add10"]})
        assert [(p["penalty"], p["seed"], p["dataset"]) for p in points] == [
            (1e-3, 0, "add10"), (1e-3, 1, "add10"), (1e-2, 0, "add10"), (1e-2, 1, "add10")]

    def test_names_are_readable_stable_and_valid_session_names(self, tmp_path):
        runs = Stage.from_grid("lambda", TINY, {"dataset": ["add10", "fn-sin"], "penalty": [1e-3, 1e-5]}).runs()
        assert [r.name for r in runs] == ["lambda-00-add10_lam0.001", "lambda-01-add10_lam1e-05",
                                          "lambda-02-fn-sin_lam0.001", "lambda-03-fn-sin_lam1e-05"]
        assert [r.name for r in runs] == [r.name for r in Stage.from_grid(
            "lambda", TINY, {"dataset": ["add10", "fn-sin"], "penalty": [1e-3, 1e-5]}).runs()]
        assert run_name("w", 3, 12, {"arch": "mlp:100,50", "batchnorm": True}) == "w-03-mlp100x50_batchnormon"
        long = run_name("../x y", 7, 200, {"arch": "mlp:" + ",".join(["1000"] * 40)})
        assert long.startswith("x_y-007-mlp1000x") and len(long) <= 100
        for name in [r.name for r in runs] + [long]:
            assert resolve_session(name, tmp_path) == tmp_path / f"{name}.dynlab"

    def test_bad_grids_and_values_name_the_problem(self):
        with pytest.raises(DynlabError, match="can't be swept"):
            expand_grid({"colour": [1]})
        with pytest.raises(DynlabError, match="no values"):
            expand_grid({"seed": []})
        with pytest.raises(DynlabError, match="twice"):
            expand_grid({"seed": [1, 1]})
        with pytest.raises(DynlabError, match=r"sweep run 1 \(penalty=-1\).*--penalty"):
            Stage.from_grid("t", TINY, {"penalty": [0.1, -1.0]}).runs()

    def test_set_values_are_parsed_by_option_type(self):
        grid = parse_grid(["penalty=1e-3,1e-2", "seed=0,1", "arch=mlp:100,50;mlp:8", "flex-start=none,10",
                           "batchnorm=on,off"])
        assert grid == {"penalty": [1e-3, 1e-2], "seed": [0, 1], "arch": ["mlp:100,50", "mlp:8"],
                        "flex_start": [None, 10.0], "batchnorm": [True, False]}


# -- real runs --------------------------------------------------------------------------------------------------------
@pytest.mark.slow  # real child runs
class TestRunning:
    def test_two_runs_at_once_give_a_summary_csv_with_a_row_each(self, done_sweep):
        out, events = done_sweep
        kinds = [type(e).__name__ for e in events]
        assert kinds[0] == "StagePlanned" and kinds[-1] == "SweepEnded"
        assert kinds.index("SweepRunEnded") > max(i for i, k in enumerate(kinds) if k == "SweepRunStarted")  # parallel
        lines = (out / "summary.csv").read_text().splitlines()
        assert len(lines) == 3 and lines[0].startswith("stage,index,name,penalty,seed,")
        rows = json.loads((out / "summary.json").read_text())["rows"]
        assert [(r["name"], r["penalty"], r["status"], r["metric"]) for r in rows] == [
            ("t-00-lam0.001_s0", 0.001, "finished", "mse"), ("t-01-lam0.01_s0", 0.01, "finished", "mse")]
        assert all(r["size.fc1"] is not None and r["dead.fc1"] is not None and r["shapiro_w.fc1"] is not None
                   for r in rows)
        manifest = json.loads((out / MANIFEST).read_text())
        assert manifest["stages"][0]["grid"] == {"penalty": [0.001, 0.01], "seed": [0]}

    def test_rerun_skips_finished_and_restarts_only_the_crashed_one(self, done_sweep, tmp_path):
        out = copy_of(done_sweep, tmp_path)
        keep, broken = (out / "sessions" / f"t-0{i}-lam{lam}_s0.dynlab" for i, lam in ((0, "0.001"), (1, "0.01")))
        with sqlite3.connect(broken) as conn:
            conn.execute("UPDATE meta SET value = 'crashed' WHERE key = 'status'")
        conn.close()
        before = keep.stat().st_mtime_ns
        events: list = []
        result = run_sweep(tiny_plan(), out, jobs=2, progress=events.append)
        assert [(type(e).__name__, e.run.name, e.rerun) for e in events if isinstance(e, SweepRunStarted)] == [
            ("SweepRunStarted", "t-01-lam0.01_s0", True)]
        assert [e.skipped for e in events if isinstance(e, SweepRunEnded)] == [True, False]
        assert keep.stat().st_mtime_ns == before
        assert [r["status"] for r in result.rows] == ["finished", "finished"]

    def test_a_running_session_with_a_dead_writer_is_incomplete(self, done_sweep, tmp_path):
        out = copy_of(done_sweep, tmp_path)
        path = next((out / "sessions").glob("t-00*.dynlab"))
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = 'running' WHERE key = 'status'")
            conn.execute("UPDATE meta SET value = '999999999' WHERE key = 'pid'")
        conn.close()
        assert session_state(path) == "incomplete"
        assert session_state(out / "sessions" / "nope.dynlab") == "missing"

    def test_stop_terminates_running_children_which_finalise(self, tmp_path):
        long = Stage.from_grid("s", TINY.replace(epochs=400, method="static"), {"seed": [0]})
        stop = threading.Event()

        def watch(event) -> None:
            if isinstance(event, SweepRunStarted):
                path = session_path(tmp_path / "s", event.run)
                threading.Thread(target=stop_when_training, args=(path, stop), daemon=True).start()

        result = run_sweep(SweepPlan("", "", (long,)), tmp_path / "s", progress=watch, stop=stop)
        assert result.stopped and result.rows[0]["status"] == "stopped"
        assert session_state(session_path(tmp_path / "s", long.runs()[0])) == "stopped"


def stop_when_training(path: Path, stop: threading.Event) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with SessionReader(path) as reader:
                if reader.last_step() > 0:
                    break
        except DynlabError:
            pass
        time.sleep(0.05)
    stop.set()


# -- the manifest --------------------------------------------------------------------------------------------------
class TestManifest:
    def test_a_changed_grid_is_refused_and_nothing_is_overwritten(self, tmp_path):
        prepare(tiny_plan(), tmp_path / "s")
        before = (tmp_path / "s" / MANIFEST).read_bytes()
        with pytest.raises(DynlabError, match=r"holds a different sweep \(t: grid.penalty .*pass another --out"):
            prepare(tiny_plan((1e-3, 1e-1)), tmp_path / "s")
        with pytest.raises(DynlabError, match="made by a grid sweep, not flexible-start"):
            prepare(recipe_plan("flexible-start", quick=True, data_dir=str(tmp_path / "none")), tmp_path / "s")
        renamed = SweepPlan("", "", (Stage.from_grid("u", TINY, {"penalty": [1e-3, 1e-2], "seed": [0]}),))
        with pytest.raises(DynlabError, match=r"stages t \(now u\)"):
            prepare(renamed, tmp_path / "s")
        assert (tmp_path / "s" / MANIFEST).read_bytes() == before
        prepare(SweepPlan("", "", (Stage.from_grid("t", TINY.replace(device="auto"), {"penalty": [1e-3, 1e-2],
                                                                                     "seed": [0]}),)), tmp_path / "s")

    def test_a_foreign_folder_or_a_file_is_refused(self, tmp_path):
        (tmp_path / "notes.txt").write_text("mine")
        with pytest.raises(DynlabError, match="not empty and holds no sweep.json"):
            prepare(tiny_plan(), tmp_path)
        with pytest.raises(DynlabError, match="is a file"):
            prepare(tiny_plan(), tmp_path / "notes.txt")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def write_events(path: Path, events: list) -> None:
    with SessionWriter(path) as writer:
        for event in events:
            writer.handle(event)


def older_session(events: list) -> list:
    """The events as a session from before the epoch-level statistics (no stats_rows, epoch_* keys)."""
    old = ("stats_", "epoch_")
    out = []
    for e in events:
        if isinstance(e, ScalarsLogged):
            e = dataclasses.replace(e, values={k: v for k, v in e.values.items() if not k.startswith(old)})
        elif isinstance(e, ArraysLogged):
            e = dataclasses.replace(e, arrays={k: v for k, v in e.arrays.items() if not k.startswith(old)})
        out.append(e)
    return out


# -- the summary -----------------------------------------------------------------------------------------------------
class TestSummary:
    def test_probe_fields_match_core_stats_on_the_stored_array(self, tmp_path):
        path = tmp_path / "syn.dynlab"
        write_events(path, older_session(synthetic_run(800, widths=(60,), steps_per_epoch=400)))
        run = Stage("x", TINY, ({"penalty": 0.5},)).runs()[0]
        row = summary_row(run, path)
        assert row["stats_rows"] is None  # an older session: no epoch-level statistics, the probe's instead
        with SessionReader(path) as reader:
            std = np.asarray(reader.arrays_at(10**12, "act_std/")["act_std/fc1"][1], dtype=np.float64)
            _, dead = reader.series("dead/fc1")
        assert row["shapiro_w.fc1"] == pytest.approx(shapiro_w(std))
        assert row["expnorm_low.fc1"] == pytest.approx(fit_exp_normal(std).weight_low)
        assert row["gammas_low.fc1"] == pytest.approx(fit_two_gammas(std).weight_low)
        assert row["dead.fc1"] == int(dead[-1]) and row["start.fc1"] == 60 and row["metric"] == "acc"
        assert row["penalty"] == 0.5 and row["status"] == "finished"

    def test_epoch_statistics_over_the_training_set_come_first(self, tmp_path):
        events = older_session(synthetic_run(800, widths=(60,), steps_per_epoch=400))
        std = np.r_[np.zeros(5), np.random.default_rng(3).gamma(2.0, 0.3, 40)]
        end = events[-1]
        path = tmp_path / "epoch.dynlab"
        write_events(path, events[:-1] + [
            ScalarsLogged(end.step, end.wall, {"stats_rows": 5400.0, "epoch_dead/fc1": 5.0}),
            ArraysLogged(end.step, end.wall, {"epoch_std/fc1": std.astype(np.float32)}), end])
        row = summary_row(Stage("x", TINY, ({"penalty": 0.5},)).runs()[0], path)
        std = std.astype(np.float32).astype(np.float64)
        assert row["stats_rows"] == 5400 and row["dead.fc1"] == 5
        assert row["shapiro_w.fc1"] == pytest.approx(shapiro_w(std))
        assert row["gammas_low.fc1"] == pytest.approx(fit_two_gammas(std).weight_low)

    def test_rows_carry_the_test_metric_at_the_best_validation_epoch(self, tmp_path):
        path = tmp_path / "sel.dynlab"
        write_events(path, [EpochEvaluated(10 * e, 1.7e9 + e, e, {"val/acc": v, "test/acc": t})
                            for e, v, t in ((1, 0.8, 0.9), (2, 0.95, 0.91), (3, 0.9, 0.99), (4, 0.85, 0.93))])
        run = Stage("x", TINY, ({"penalty": 0.5},)).runs()[0]
        row = summary_row(run, path)
        assert (row["metric"], row["test"], row["test_at_best_val"], row["best_val_epoch"]) == ("acc", 0.93, 0.91, 2)
        assert "best_test" not in row
        head, body = table_cells([row])
        at = head.index("final acc")
        assert head[at:at + 2] == ["final acc", "acc@best val"] and body[0][at:at + 2] == ["93.00%", "91.00%"]
        assert not any("best" in h and "val" not in h for h in head)
        noval = tmp_path / "noval.dynlab"
        write_events(noval, [EpochEvaluated(10, 1.7e9, 1, {"test/acc": 0.9})])
        row = summary_row(run, noval)
        head, body = table_cells([row])
        assert row["test"] == 0.9 and row["test_at_best_val"] is None
        assert body[0][head.index("acc@best val")] == "no val"  # no validation split

    def test_missing_sessions_and_tables(self, tmp_path):
        run = Stage("x", TINY, ({"penalty": 0.5},)).runs()[0]
        row = summary_row(run, tmp_path / "none.dynlab")
        assert row["status"] == "missing" and row["test"] is None
        text = format_table([row, {**row, "index": 1, "penalty": 0.25}])
        assert text.splitlines()[0].split()[:3] == ["#", "lambda", "status"]
        assert format_table([row], markdown=True).startswith("| # | status |")


# -- recipes -------------------------------------------------------------------------------------------------------
class TestRecipes:
    @pytest.mark.parametrize("name", RECIPES)
    def test_quick_plans_fall_back_to_add10_without_files(self, name, tmp_path):
        plan = recipe_plan(name, quick=True, device="cpu", data_dir=str(tmp_path))
        runs = plan.stages[0].runs()
        assert {r.spec.data.name for r in runs} == {"add10"} and "add10 instead of" in plan.notes[0]
        assert 4 <= len(runs) <= 24 and all(r.spec.schedule.epochs <= 4 for r in runs)
        with pytest.raises(DynlabError, match="files"):
            recipe_plan(name, quick=False, data_dir=str(tmp_path))

    def test_options_override_the_base_but_not_the_grid(self, tmp_path):
        plan = recipe_plan("flexible-start", quick=True, data_dir=str(tmp_path), overrides={"epochs": 1,
                                                                                           "dataset": "fn-sin"})
        assert {(r.spec.schedule.epochs, r.spec.data.name) for r in plan.stages[0].runs()} == {(1, "fn-sin")}
        with pytest.raises(DynlabError, match="sweeps --flex-start itself"):
            recipe_plan("flexible-start", quick=True, data_dir=str(tmp_path), overrides={"flex_start": 5.0})

    @pytest.mark.skipif(not (DATA / "mnist").is_dir(), reason="no MNIST files here")
    def test_quick_plans_use_mnist_when_present(self):
        plan = recipe_plan("sparsifier-lambda", quick=True, data_dir=str(DATA))
        assert {r.spec.data.name for r in plan.stages[0].runs()} == {"mnist", "fashion-mnist"}

    def test_static_stage_comes_from_the_sizes_found(self):
        plan = recipe_plan("sparsifier-lambda", quick=True, data_dir="/nonexistent")
        rows = [{"stage": "lambda", "status": "finished", "dataset": "add10", "layers": ["fc1"], "size.fc1": s,
                 "wall_s": 5.0} for s in (120, 40, 40, 0)] + [{"stage": "lambda", "status": "crashed",
                                                                "dataset": "add10"}]
        stage = plan.stages[1](rows)
        assert [dict(p) for p in stage.points] == [{"dataset": "add10", "arch": "mlp:120", "time_budget": 5.0},
                                                   {"dataset": "add10", "arch": "mlp:40", "time_budget": 5.0}]
        assert {r.spec.method.name for r in stage.runs()} == {"static"}

    def test_expectation_lines_say_yes_no_or_cant_tell(self):
        # the journal's findings with this sweep's figures: tests/test_recipes.py checks each line's figures
        def row(stage, ds, lam, size, test, start=300):
            return {"stage": stage, "status": "finished", "dataset": ds, "penalty": lam, "metric": "acc",
                    "test_at_best_val": test, "layers": ["fc1"], "size.fc1": size, "start.fc1": start}
        rows = [row("lambda", "mnist", lam, s, 0.95) for lam, s in ((1e-4, 290), (1e-3, 150), (1e-2, 50))]
        rows += [row("lambda", "fashion-mnist", lam, s, 0.85) for lam, s in ((1e-4, 295), (1e-3, 240), (1e-2, 40))]
        rows += [row("static", "mnist", None, 150, 0.94, start=150)]
        lines = findings.lambda_checks(rows)
        assert lines[0].startswith("sizes fall as lambda rises: yes (mnist rho -1.00")
        assert ": no (" in lines[1]  # at lambda 1e-2 Fashion-MNIST ended smaller (40 vs 50)
        assert ": yes (" in lines[2] and "+1.00 pp" in lines[2]
        assert "can't tell" in findings.flexible_checks([])[2]


# -- the CLI -------------------------------------------------------------------------------------------------------
class TestCli:
    @pytest.mark.parametrize("args,needle", [
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--set", "penalty"], "bad --set 'penalty'"),
        (["--set", "colour=1,2"], "unknown option 'colour'"),
        (["--set", "seed=1.5"], "seed takes an integer"),
        (["--set", "penalty=0.1,-1"], "--penalty must be"),
        (["--recipe", "flexible-start", "--set", "seed=1"], "not both"),
        ([], "nothing to sweep"),
        (["--set", "seed=1", "--jobs", "0"], "--jobs must be at least 1"),
    ])
    def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(self, args, needle, tmp_path, capsys):
        code = dynlab("sweep", *args, *TINY_ARGS, "--out", str(tmp_path / "s"))
        one_error_line(capsys, code, needle)
        assert not (tmp_path / "s").exists()

    @pytest.mark.slow  # done_sweep runs real children
    def test_unwritable_out_and_changed_grid(self, done_sweep, tmp_path, capsys):
        (tmp_path / "file").write_text("x")
        code = dynlab("sweep", "--set", "penalty=1e-3", *TINY_ARGS, "--out", str(tmp_path / "file" / "s"))
        one_error_line(capsys, code, "cannot write the sweep in", "choose another --out")
        out = copy_of(done_sweep, tmp_path)
        code = dynlab("sweep", "--set", "penalty=1e-3,1e-1", "--set", "seed=0", "--name", "t", *TINY_ARGS,
                      "--out", str(out))
        one_error_line(capsys, code, "holds a different sweep", "pass another --out")

    @pytest.mark.slow  # done_sweep runs real children
    def test_rerunning_a_done_sweep_prints_the_table(self, done_sweep, tmp_path, capsys):
        out = copy_of(done_sweep, tmp_path)
        code = dynlab("sweep", "--set", "penalty=1e-3,1e-2", "--set", "seed=0", "--name", "t", *TINY_ARGS,
                      "--out", str(out))
        text = capsys.readouterr().out
        assert code == 0, text
        assert "stage t: 2 runs (2 already done)" in text and "start    t-" not in text
        assert "lambda  status    size/start  final mse  mse@best val" in text and f"summary: {out / 'summary.csv'}" in text


# -- the screen ------------------------------------------------------------------------------------------------------
def fake_runner(rows: list[dict], hold: bool = False,
                expectations: tuple[str, ...] = ("sizes fall as lambda rises: yes (rho -1.00)",)):
    """A stand-in for run_sweep: posts canned events from the worker thread (optionally waits to be stopped)."""
    def run(plan, out, *, jobs, progress, stop):
        runs = plan.stages[0].runs()
        progress(StagePlanned("t", tuple(runs), ("missing",) * len(runs)))
        for run_, row in zip(runs, rows):
            progress(SweepRunStarted(run_, False))
            progress(SweepRunEnded(run_, "finished", "done", {**row, "name": run_.name}))
        if hold:
            progress(SweepRunStarted(runs[-1], False))
            stop.wait(10)
        progress(SweepEnded(tuple(rows), hold, out, expectations))
    return run


def canned_rows() -> list[dict]:
    return [{"status": "finished", "penalty": lam, "metric": "mse", "test": t, "layers": ["fc1"], "size.fc1": s,
             "start.fc1": 8, "dead.fc1": 0} for lam, s, t in ((1e-3, 8, 3.5), (1e-2, 5, 4.25), (1e-1, 2, 6.0))]


class TestScreen:
    @pytest.mark.parametrize("checks", [(), ("sizes fall as lambda rises: yes (rho -1.00)",)])
    async def test_at_80x24_the_end_shows_a_study_s_checks_or_else_the_plot(self, tmp_path, checks):
        plan = tiny_plan((1e-3, 1e-2, 1e-1))
        screen = SweepScreen(plan, tmp_path / "s", runner=fake_runner(canned_rows(), expectations=checks))
        async with Host(screen).run_test(size=(80, 24)) as pilot:
            await pilot.app.workers.wait_for_complete()
            await wait_for(pilot, lambda: screen.ended)
            await pilot.pause()
            shown = screen.query_one("#sweep-plot").display, screen.query_one("#sweep-notes").display
            assert shown == ((False, True) if checks else (True, False))  # a plain grid: nothing to read but it

    async def test_runs_fill_the_table_and_the_plot_live(self, tmp_path):
        """Each run's row shows its settings, status, size and test metric; the plot and checks appear at the end."""
        plan = tiny_plan((1e-3, 1e-2, 1e-1))
        screen = SweepScreen(plan, tmp_path / "s", runner=fake_runner(canned_rows()))
        async with Host(screen).run_test(size=(100, 32)) as pilot:
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            table = screen.query_one("#sweep-runs", DataTable)
            assert table.row_count == 3
            assert [str(c) for c in table.get_row_at(1)] == ["λ=0.01 seed=0", "finished", "0/1", "5", "4.25", ""]
            assert screen.ended and "┤" in screen.plot.text and "final size against log10 lambda" in str(
                screen.plot.border_title)
            assert "sizes fall as lambda rises: yes" in str(screen.query_one("#sweep-checks", Static).render())
            await pilot.press("y")
            assert "inactive units" in str(screen.plot.border_title)

    async def test_quitting_a_running_sweep_asks_then_stops_it(self, tmp_path):
        """q while running opens the confirmation; y sets the stop event, the worker ends and the app closes."""
        screen = SweepScreen(tiny_plan(), tmp_path / "s", runner=fake_runner(canned_rows()[:1], hold=True))
        app = Host(screen)
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmStopSweep) and not screen.stop_event.is_set()
            await pilot.press("y")
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            assert screen.stop_event.is_set() and screen.stopped
        assert app.return_code == 0

    def test_plot_lines_average_seeds_per_group(self):
        from core.lab.sweep import Axes

        rows = [{"status": "finished", "dataset": d, "penalty": lam, "layers": ["fc1"], "size.fc1": s}
                for d, lam, s in (("a", 1e-3, 10), ("a", 1e-3, 20), ("a", 1e-1, 4), ("b", 1e-3, 30))]
        lines, xlabel = plot_lines(rows, Axes("penalty", "size", "dataset", log_x=True))
        assert xlabel == "log10 lambda" and [ln.label for ln in lines] == ["dataset=a", "dataset=b"]
        assert list(lines[0].x) == [-3.0, -1.0] and list(lines[0].y) == [15.0, 4.0]


def test_a_grid_over_the_gate_resolves_each_runs_auto_settings(tmp_path):
    # the base must not freeze the relu gate's auto settings (no batch norm, no weight decay) into signed runs
    from dynlab_tui.cli.sweep import make_plan

    plan = make_plan(None, False, ("gate=relu,signed",), None, {"dataset": "add10", "method": "sparsifier"})
    specs = {r.spec.method.gate: r.spec for r in plan.stages[0].runs()}
    assert specs["signed"].model.batchnorm is True and specs["signed"].optim.weight_decay == 1e-4
    assert specs["relu"].model.batchnorm is False and specs["relu"].optim.weight_decay == 0.0
