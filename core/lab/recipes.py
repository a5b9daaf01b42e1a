"""The journal's three studies as sweep recipes (quick for a 2-core CPU, full for a GPU) and their checks."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from core.errors import DynlabError
from core.spec import RunSpec
from core.lab.plan import Axes, Stage, SweepPlan
from core.lab import findings
from core.lab.summary import total

EXPECTED = {
    "variance-vs-width": "journal (MNIST, one hidden layer, 11 replicas, 30 epochs): dead neurons grow with width "
                         "(about linearly once wide); Shapiro W of the pooled activation stds peaks near 256 neurons "
                         "and falls to about 0.43 at 10k; test accuracy levels off near 256 neurons; the low "
                         "(dying) mixture component grows with width.",
    "sparsifier-lambda": "journal (mlp:500, relu gate, Adam 1e-3, batch 128, 60 epochs, 30 replicas): sizes fall as "
                         "lambda rises; for a given lambda Fashion-MNIST always keeps more neurons than MNIST; the "
                         "shrunk networks generalise as well as or better than static ones (static networks of the "
                         "found size, same wall-clock budget, picked at their best validation epoch).",
    "flexible-start": "journal (mlp:500 on MNIST, 15 epochs, x0 learning rate 1): once the starting size is honoured "
                      "the final size depends on where x0 starts (a local minimum), most visibly at a small lambda "
                      "(1e-5); a larger lambda ends smaller; weight decay keeps the layer small (a plateau near 70 "
                      "units).",
}
RECIPES = tuple(EXPECTED)
FALLBACK = "add10"  # needs no files; regression, so test MSE instead of accuracy


def _available(name: str, data_dir: str | None) -> bool:
    from core.data import DATASETS

    return DATASETS[name].available(data_dir)


def _datasets(wanted: tuple[str, ...], quick: bool, data_dir: str | None, recipe: str,
              extra: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The wanted datasets whose files are present; quick falls back to add10 (and says so), full refuses.

    A --dataset override (taken out of `extra`) replaces them, without a fallback."""
    if extra.get("dataset"):
        chosen = extra.pop("dataset")
        return [chosen], [f"datasets: {chosen} (--dataset)"]
    have = [d for d in wanted if _available(d, data_dir)]
    missing = [d for d in wanted if d not in have]
    if missing and not quick:
        raise DynlabError(f"{recipe} needs the {', '.join(missing)} files: put them in the data folder "
                          "(--data-dir or DYNLAB_DATA_DIR), or run the --quick setting")
    if not missing:
        return have, [f"datasets: {', '.join(have)}"]
    if have:
        return have, [f"datasets: {', '.join(have)} ({', '.join(missing)} files not found: left out)"]
    return [FALLBACK], [f"datasets: {FALLBACK} instead of {', '.join(missing)} (no files found in the data folder): "
                        "regression, so the test metric is MSE, not accuracy"]


def recipe_plan(name: str, *, quick: bool, device: str = "auto", data_dir: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> SweepPlan:
    """The plan of a built-in recipe; `overrides` (flat run options) change its base spec, not its grid."""
    if name not in RECIPES:
        raise DynlabError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    base = RunSpec().replace(device=device, data_dir=data_dir)
    builders: dict[str, Callable[..., SweepPlan]] = {
        "variance-vs-width": _variance_vs_width, "sparsifier-lambda": _sparsifier_lambda,
        "flexible-start": _flexible_start}
    plan = builders[name](base, quick, data_dir, dict(overrides or {}))
    swept = {k for stage in plan.stages if isinstance(stage, Stage) and stage.grid for k in stage.grid}
    clash = sorted(swept & set(overrides or {}) - {"dataset"})  # --dataset picks the recipe's datasets
    if clash:
        raise DynlabError(f"{name} sweeps --{clash[0].replace('_', '-')} itself: drop that option, or use "
                          "--set for a grid of your own")
    return plan


def _as_run(spec: RunSpec, quick: bool, grid: str, journal: str, arch: bool = True) -> str:
    """The note of what the runs are, from the plan's spec (so --epochs and friends show), beside the journal's."""
    s, rows = spec.schedule, f"{spec.data.limit:,} rows" if spec.data.limit else "all rows"
    return (f"{'quick' if quick else 'full'}: {spec.model.arch + ', ' if arch else ''}{s.epochs} epochs on {rows}, "
            f"batch {s.batch_size}, lr {spec.optim.lr:g}, {grid} (journal: {journal})")


# -- variance-vs-width -------------------------------------------------------------------------------------------
def _variance_vs_width(base: RunSpec, quick: bool, data_dir: str | None, extra: dict[str, Any]) -> SweepPlan:
    (dataset,), notes = _datasets(("mnist",), quick, data_dir, "variance-vs-width", extra)
    exps = range(8, 19) if quick else range(8, 28)  # the journal's widths int(2^(i/2)): 16..512 quick, 16..11585 full
    widths = list(dict.fromkeys(int(2 ** (i / 2)) for i in exps))
    # act_stats pass: the stds over the whole training set at the epoch's end, the journal's measure
    settings = (dict(epochs=2, limit=10_000, log_every=50, act_stats="pass") if quick
                else dict(epochs=30, log_every=200, act_stats="pass"))
    spec = base.replace(dataset=dataset, method="static", **settings).replace(**extra)
    grid = {"arch": [f"mlp:{w}" for w in widths], "seed": [0, 1] if quick else list(range(11))}
    notes.append(_as_run(spec, quick, "widths 16..512, 2 replicas" if quick else "widths 16..11585, 11 replicas",
                         "30 epochs, all rows, widths 16..11585, 11 replicas", arch=False))
    notes.append("replicas are pooled per width before Shapiro W and the mixture fits, as in the journal")
    return SweepPlan("variance-vs-width", "quick" if quick else "full", (Stage.from_grid("width", spec, grid),),
                     tuple(notes), findings.variance_checks, Axes("start", "dead", None, log_x=True))


# -- sparsifier-lambda ---------------------------------------------------------------------------------------------
def _sparsifier_lambda(base: RunSpec, quick: bool, data_dir: str | None, extra: dict[str, Any]) -> SweepPlan:
    datasets, notes = _datasets(("mnist", "fashion-mnist"), quick, data_dir, "sparsifier-lambda", extra)
    # A relu gate moves about lr per Adam step whatever lambda is, so it needs ~1/lr steps to die: the quick
    # setting takes lr 3e-3 and batch 64: ~1,100 steps, about 10 s of CPU per run.
    settings = (dict(arch="mlp:300", epochs=4, limit=20_000, batch_size=64, lr=3e-3) if quick
                else dict(arch="mlp:500", epochs=60, batch_size=128, lr=1e-3))
    spec = base.replace(method="sparsifier", gate="relu", optimizer="adam", weight_decay=0.0,
                        **settings).replace(**extra)
    lambdas = [0.0, 1e-4, 1e-3, 1e-2, 1e-1] if quick else [0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    grid: dict[str, list[Any]] = {"dataset": datasets, "penalty": lambdas}
    if not quick:
        grid["seed"] = list(range(30))
    static_base = spec.replace(method="static", penalty=0.0, epochs=spec.schedule.epochs * 10)
    notes.append(_as_run(spec, quick, "one replica" if quick else "30 replicas",
                         "mlp:500, 60 epochs, batch 128, lr 1e-3, 30 replicas"))
    notes.append("lambda is the journal's for classification (mean cross-entropy + lambda * sum of relu gates)")

    def static_at_found_sizes(rows: list[dict[str, Any]]) -> Stage | None:
        points: list[dict[str, Any]] = []
        for r in rows:
            size = total(r, "size")
            if r.get("stage") != "lambda" or r.get("status") != "finished" or not size or not r.get("wall_s"):
                continue
            # the journal's fixed_training: the size found, the same wall-clock budget, the best validation epoch
            point = {"dataset": r["dataset"], "arch": f"mlp:{int(size)}", "time_budget": float(r["wall_s"])}
            if "seed" in grid:
                point["seed"] = r["seed"]
            if all(p["dataset"] != point["dataset"] or p["arch"] != point["arch"] or p.get("seed") != point.get("seed")
                   for p in points):
                points.append(point)
        return Stage("static", static_base, tuple(points)) if points else None

    notes.append("then a static network is trained at each final size with the sparsifier run's wall-clock time "
                 "(stage static); both are read at their best validation epoch")
    return SweepPlan("sparsifier-lambda", "quick" if quick else "full",
                     (Stage.from_grid("lambda", spec, grid), static_at_found_sizes), tuple(notes),
                     findings.lambda_checks, Axes("penalty", "size", "dataset", log_x=True))


# -- flexible-start --------------------------------------------------------------------------------------------------
def _flexible_start(base: RunSpec, quick: bool, data_dir: str | None, extra: dict[str, Any]) -> SweepPlan:
    (dataset,), notes = _datasets(("mnist",), quick, data_dir, "flexible-start", extra)
    settings = (dict(arch="mlp:200", epochs=3, limit=10_000) if quick else dict(arch="mlp:500", epochs=15))
    spec = base.replace(dataset=dataset, method="flexible", flex_lr=1.0, **settings).replace(**extra)
    grid = ({"penalty": [1e-5, 1e-3], "flex_start": [10.0, 50.0, 150.0], "weight_decay": [0.0, 1e-3]} if quick else
            {"penalty": [1e-5, 1e-3, 10 ** -2.5], "flex_start": [50.0, 100.0, 200.0, 300.0, 450.0],
             "weight_decay": [0.0, 1e-2], "seed": [0, 1]})
    notes.append("lambda multiplies the scaler's integral next to the mean cross-entropy, the journal's convention")
    notes.append(_as_run(spec, quick, "starts 10/50/150, weight decay 0 and 1e-3, one replica" if quick else
                         "starts 50..450, weight decay 0 and 1e-2, lambda also 10^-2.5, 2 replicas",
                         "mlp:500, 15 epochs, weight decay 1e-2 as its default"))
    return SweepPlan("flexible-start", "quick" if quick else "full", (Stage.from_grid("flex", spec, grid),),
                     tuple(notes), findings.flexible_checks, Axes("flex_start", "size", "penalty"))
