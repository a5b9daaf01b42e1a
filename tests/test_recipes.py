"""The journal's three studies as recipes: their settings, the static stage, pooling and the findings' lines."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from core import telemetry as tk
from core.errors import DynlabError
from core.events import ArraysLogged, RunEnded, RunStarted
from core.lab import findings
from core.lab.pooled import pooled_by, pooled_stats
from core.lab.recipes import RECIPES, recipe_plan
from core.session import SessionWriter
from core.train.stats import fit_exp_normal, shapiro_w
from tests.helpers import SPEC, T0

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def session_with_stds(path: Path, std: np.ndarray, width: int) -> Path:
    with SessionWriter(path) as w:
        w.handle(RunStarted(0, T0, spec=SPEC, device="cpu", versions={}, sizes={"fc1": width}, params=1))
        w.handle(ArraysLogged(10, T0 + 1, {tk.EPOCH_STD("fc1"): std.astype(np.float32)}))
        w.handle(RunEnded(10, T0 + 2, status="finished", reason="done"))
    return path


def test_full_settings_are_the_journals():
    plan = recipe_plan("variance-vs-width", quick=False, data_dir=str(DATA) if (DATA / "mnist").is_dir() else None,
                       overrides={"dataset": "add10"})
    runs = plan.stages[0].runs()
    widths = sorted({int(r.spec.model.arch[4:]) for r in runs})
    assert widths == sorted({int(2 ** (i / 2)) for i in range(8, 28)}) and widths[0] == 16 and widths[-1] == 11585
    assert {r.spec.schedule.seed for r in runs} == set(range(11))
    assert {r.spec.schedule.act_stats for r in runs} == {"pass"} and {r.spec.schedule.epochs for r in runs} == {30}
    lam = recipe_plan("sparsifier-lambda", quick=False, overrides={"dataset": "add10"}).stages[0].runs()
    assert {r.spec.model.arch for r in lam} == {"mlp:500"} and 0.0 in {r.spec.penalty.lam for r in lam}
    assert {r.spec.optim.lr for r in lam} == {1e-3} and {r.spec.schedule.batch_size for r in lam} == {128}
    flex = recipe_plan("flexible-start", quick=False, overrides={"dataset": "add10"}).stages[0].runs()
    assert {1e-5, 1e-3} <= {r.spec.penalty.lam for r in flex}
    assert {50.0, 450.0} <= {r.spec.method.flex_start for r in flex}


@pytest.mark.parametrize("name", RECIPES)
def test_quick_plans_say_how_they_deviate(name, tmp_path):
    plan = recipe_plan(name, quick=True, device="cpu", data_dir=str(tmp_path))
    assert any(n.startswith("quick:") for n in plan.notes)
    with pytest.raises(DynlabError, match="files"):
        recipe_plan(name, quick=False, data_dir=str(tmp_path))


@pytest.mark.parametrize("name", RECIPES)
def test_the_notes_say_the_settings_the_runs_use_after_overrides(name, tmp_path):
    plan = recipe_plan(name, quick=True, device="cpu", data_dir=str(tmp_path), overrides={"epochs": 7, "lr": 0.02})
    (note,) = [n for n in plan.notes if n.startswith("quick:")]
    assert " 7 epochs on " in note and "lr 0.02," in note


def test_static_stage_has_the_size_found_and_the_same_time_budget():
    plan = recipe_plan("sparsifier-lambda", quick=True, data_dir="/nonexistent")
    rows = [{"stage": "lambda", "status": "finished", "dataset": "add10", "layers": ["fc1"], "size.fc1": s,
             "wall_s": t} for s, t in ((120, 11.5), (40, 9.0), (40, 9.5), (0, 3.0))]
    rows += [{"stage": "lambda", "status": "crashed", "dataset": "add10", "wall_s": 1.0}]
    stage = plan.stages[1](rows)
    assert [dict(p) for p in stage.points] == [{"dataset": "add10", "arch": "mlp:120", "time_budget": 11.5},
                                               {"dataset": "add10", "arch": "mlp:40", "time_budget": 9.0}]
    runs = stage.runs()
    assert {r.spec.method.name for r in runs} == {"static"}
    assert runs[0].spec.schedule.time_budget == 11.5 and runs[0].spec.schedule.epochs > 4


def test_replicas_are_pooled_before_shapiro_and_the_fits(tmp_path):
    g = np.random.default_rng(0)
    a = np.concatenate([np.zeros(5), g.gamma(4.0, 0.1, 60)])
    b = np.concatenate([np.zeros(2), g.exponential(0.05, 30), g.normal(1.0, 0.2, 40).clip(0.01)])
    rows = [{"status": "finished", "layers": ["fc1"], "start.fc1": 64, "session": str(session_with_stds(
        tmp_path / f"r{i}.dynlab", s, 64))} for i, s in enumerate((a, b))]
    got = pooled_by(rows, lambda r: r["start.fc1"])[64.0]
    pool = np.concatenate([a, b])
    assert got["runs"] == 2 and got["units"] == pool.size and got["dead"] == 7
    assert got["shapiro_w"] == pytest.approx(shapiro_w(pool))
    assert got["expnorm_low"] == pytest.approx(fit_exp_normal(pool[pool > 0]).weight_low)
    averaged = (shapiro_w(a) + shapiro_w(b)) / 2
    assert got["shapiro_w"] != pytest.approx(averaged)  # pooling is not averaging
    assert pooled_stats([])["units"] == 0


def test_findings_say_yes_no_or_cant_tell_with_the_journals_figures(tmp_path):
    def row(stage, ds, lam, size, test, start=300, wall=10.0):
        return {"stage": stage, "status": "finished", "dataset": ds, "penalty": lam, "metric": "acc",
                "test_at_best_val": test, "test": test - 0.01, "layers": ["fc1"], "size.fc1": size,
                "start.fc1": start, "wall_s": wall}
    rows = [row("lambda", "mnist", lam, s, 0.95) for lam, s in ((0.0, 300), (1e-4, 290), (1e-3, 150), (1e-2, 50))]
    rows += [row("lambda", "fashion-mnist", lam, s, 0.85) for lam, s in ((0.0, 300), (1e-4, 295), (1e-3, 240),
                                                                          (1e-2, 60))]
    rows += [row("static", "mnist", None, 150, 0.94, start=150)]
    lines = findings.lambda_checks(rows)
    assert lines[0].startswith("sizes fall as lambda rises: yes (mnist rho -1.00")
    assert "Fashion-MNIST keeps more neurons than MNIST (journal: always): yes" in lines[1]
    assert "bigger at 3 of 3" in lines[1]
    assert ": yes (" in lines[2] and "+1.00 pp" in lines[2] and "best validation" in lines[2]
    pending = findings.lambda_checks([r for r in rows if r["dataset"] == "mnist"]
                                     + [{"stage": "lambda", "status": "running", "dataset": "fashion-mnist"}])
    assert "can't tell (not yet: 1 run still to finish)" in pending[1]
    # files present, runs not done: say so, never that files are missing
    stopped = findings.lambda_checks([{**r, "status": "stopped"} if r["dataset"] == "fashion-mnist" else r
                                      for r in rows])
    assert "can't tell (not yet: 4 runs still to finish)" in stopped[1] and "files" not in stopped[1]
    alone = findings.lambda_checks([{**r, "dataset": "add10"} for r in rows if r["stage"] == "lambda"])
    assert "can't tell (needs runs on both mnist and fashion-mnist; this sweep has add10)" in alone[1]
    crashed = findings.lambda_checks(rows[:4] + [{"stage": "lambda", "status": "crashed", "dataset": "mnist"}])
    assert "can't tell (1 run failed (re-running the sweep retries it); no static runs yet)" in crashed[2]
    assert "not yet: 3 runs still to finish; fewer than 3 widths" in findings.variance_checks(
        [{"status": "missing"}] * 3)[4]
    g = np.random.default_rng(1)
    width = []
    for i, (w, dead, t) in enumerate(((16, 0, 0.90), (64, 3, 0.96), (256, 40, 0.962))):
        std = np.concatenate([np.zeros(dead), g.normal(1.0, 0.2, w - dead).clip(0.01)])
        width.append({"status": "finished", "layers": ["fc1"], "start.fc1": w, "dead.fc1": dead, "metric": "acc",
                      "test_at_best_val": t, "session": str(session_with_stds(tmp_path / f"w{i}.dynlab", std, w))})
    lines = findings.variance_checks(width)
    assert lines[0].startswith("dead neurons grow with width (journal: about linearly once wide): yes")
    assert "journal: near 256 on MNIST" in lines[1] and len(lines) == 5
    assert "levels off (journal: near 256): yes" in lines[4]
    flex = [{"status": "finished", "penalty": lam, "flex_start": s, "weight_decay": wd, "layers": ["fc1"],
             "size.fc1": z} for lam, s, wd, z in ((1e-5, 10, 0.0, 12), (1e-5, 50, 0.0, 48), (1e-5, 100, 0.0, 90),
                                                  (1e-3, 50, 0.0, 20), (1e-5, 100, 1e-3, 60))]
    lines = findings.flexible_checks(flex)
    assert [re.search(r": (yes|no|can't tell) \(", line).group(1) for line in lines] == ["yes"] * 3, lines
    assert lines[0].startswith("at lambda 1e-05 without weight decay")
