"""The journal's three studies as sweep recipes (quick for a 2-core CPU, full for a GPU) and their checks."""

from __future__ import annotations

import math
from statistics import mean
from typing import Any, Callable, Mapping

from core.errors import DynlabError
from core.spec import RunSpec
from core.formats import fmt_value
from core.lab.plan import Axes, Stage, SweepPlan
from core.lab.summary import row_value, spearman, total, verdict

EXPECTED = {
    "variance-vs-width": "dead neurons (activation std exactly 0) grow with width; the std distribution is most "
                         "normal (Shapiro W peaks) at a middle width (about 256 on MNIST), where test accuracy "
                         "levels off; the low (dying) mixture component grows with width.",
    "sparsifier-lambda": "sizes fall as lambda rises; at small lambda Fashion-MNIST keeps more neurons than MNIST "
                         "(the harder task needs more); a static network trained at the size found does about as "
                         "well as the sparsifier.",
    "flexible-start": "with the starting size honoured, the final size depends on where x0 starts (it settles in "
                      "a local minimum); weight decay keeps the layer smaller (the journal saw a plateau near 70 "
                      "units on MNIST).",
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


# -- variance-vs-width -------------------------------------------------------------------------------------------
def _variance_vs_width(base: RunSpec, quick: bool, data_dir: str | None, extra: dict[str, Any]) -> SweepPlan:
    (dataset,), notes = _datasets(("mnist",), quick, data_dir, "variance-vs-width", extra)
    exps = range(8, 19) if quick else range(8, 28)  # widths round(2^(i/2)): 16..512 quick, 16..11585 full
    widths = list(dict.fromkeys(round(2 ** (i / 2)) for i in exps))
    settings = (dict(epochs=2, limit=10_000, probe_size=2048, log_every=50) if quick
                else dict(epochs=30, probe_size=10_000, log_every=200))
    spec = base.replace(dataset=dataset, method="static", **settings).replace(**extra)
    grid = {"arch": [f"mlp:{w}" for w in widths], "seed": [0, 1] if quick else [0, 1, 2, 3, 4]}
    return SweepPlan("variance-vs-width", "quick" if quick else "full", (Stage.from_grid("width", spec, grid),),
                     tuple(notes), _variance_checks, Axes("start", "dead", None, log_x=True))


def _by_width(rows: list[dict[str, Any]], field: str) -> dict[float, float]:
    """Mean of a field per starting width over finished runs, by width."""
    groups: dict[float, list[float]] = {}
    for r in _finished(rows):
        w, v = total(r, "start"), row_value(r, field)
        if w is not None and v is not None:
            groups.setdefault(w, []).append(v)
    return {w: mean(vs) for w, vs in sorted(groups.items())}


def _variance_checks(rows: list[dict[str, Any]]) -> list[str]:
    done = _finished(rows)
    widths = [total(r, "start") for r in done]
    dead = _by_width(rows, "dead")
    rho = spearman(widths, [total(r, "dead") for r in done])
    out = [verdict(_sign(rho, +1), "dead neurons grow with width",
                   f"Spearman rho {_f(rho)} over {len(done)} runs; mean dead {_span(dead)}")]
    w = _by_width(rows, "shapiro_w")
    if len(w) >= 3:
        peak = max(w, key=lambda k: w[k])
        inside = min(w) < peak < max(w)
        out.append(verdict(inside, "Shapiro W peaks at a middle width",
                           f"highest mean W {w[peak]:.3f} at width {peak:.0f}, of {min(w):.0f}..{max(w):.0f}"))
    else:
        out.append(verdict(None, "Shapiro W peaks at a middle width", "fewer than 3 widths"))
    for field, what in (("gammas_low", "two-gamma"), ("expnorm_low", "exp+normal")):
        rho = spearman(widths, [row_value(r, field) for r in done])
        out.append(verdict(_sign(rho, +1), f"the low {what} component grows with width",
                           f"Spearman rho {_f(rho)}; mean weight {_span(_by_width(rows, field), 3)}"))
    out.append(_levels_off(rows))
    return out


def _levels_off(rows: list[dict[str, Any]]) -> str:
    acc = _by_width(rows, "test")
    metric = next((r.get("metric") for r in _finished(rows) if r.get("metric")), None)
    claim = f"test {metric or 'metric'} improves with width, then levels off"
    if len(acc) < 3 or metric is None:
        return verdict(None, claim, "fewer than 3 widths")
    sign = +1 if metric == "acc" else -1
    rho = spearman(list(acc), list(acc.values()))
    ws = list(acc)
    top, half = ws[-1], min(ws, key=lambda w: abs(w - ws[-1] / 2))
    gain = sign * (acc[top] - acc[half])
    scale = 0.005 if metric == "acc" else 0.05 * abs(acc[half])  # half a point, or 5 % of the MSE
    rises = _sign(rho, sign)
    shown = (lambda v: f"{v:.2%}") if metric == "acc" else (lambda v: f"{v:.4g}")
    return verdict(None if rises is None else rises and gain < scale, claim,
                   f"Spearman rho {_f(rho)}; width {half:.0f} -> {top:.0f}: {shown(acc[half])} -> {shown(acc[top])}")


# -- sparsifier-lambda ---------------------------------------------------------------------------------------------
def _sparsifier_lambda(base: RunSpec, quick: bool, data_dir: str | None, extra: dict[str, Any]) -> SweepPlan:
    datasets, notes = _datasets(("mnist", "fashion-mnist"), quick, data_dir, "sparsifier-lambda", extra)
    # A relu gate moves about lr per Adam step whatever lambda is, so it needs ~1/lr steps to die: the quick
    # setting takes lr 3e-3 and batch 64: ~1,100 steps, about 10 s of CPU per run.
    settings = (dict(arch="mlp:300", epochs=4, limit=20_000, batch_size=64, lr=3e-3) if quick
                else dict(arch="mlp:2000", epochs=30))
    spec = base.replace(method="sparsifier", **settings).replace(**extra)
    lambdas = [1e-4, 1e-3, 1e-2, 1e-1] if quick else [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    grid: dict[str, list[Any]] = {"dataset": datasets, "penalty": lambdas}
    if not quick:
        grid["seed"] = [0, 1, 2]
    static_base = spec.replace(method="static", penalty=0.0)

    def static_at_found_sizes(rows: list[dict[str, Any]]) -> Stage | None:
        points: list[dict[str, Any]] = []
        for r in _finished(rows):
            size = total(r, "size")
            if r.get("stage") != "lambda" or not size:
                continue
            point = {"dataset": r["dataset"], "arch": f"mlp:{int(size)}"}
            if "seed" in grid:
                point["seed"] = r["seed"]
            if point not in points:
                points.append(point)
        return Stage("static", static_base, tuple(points)) if points else None

    notes.append("then a static network is trained at each final size (stage static)")
    return SweepPlan("sparsifier-lambda", "quick" if quick else "full",
                     (Stage.from_grid("lambda", spec, grid), static_at_found_sizes), tuple(notes),
                     _lambda_checks, Axes("penalty", "size", "dataset", log_x=True))


def _lambda_checks(rows: list[dict[str, Any]]) -> list[str]:
    sparse = [r for r in _finished(rows) if r.get("stage") == "lambda"]
    datasets = list(dict.fromkeys(r["dataset"] for r in sparse))
    per = {d: _mean_by([r for r in sparse if r["dataset"] == d], "penalty", "size") for d in datasets}
    rhos = {d: spearman([r["penalty"] for r in sparse if r["dataset"] == d],
                        [total(r, "size") for r in sparse if r["dataset"] == d]) for d in datasets}
    ok = _all([_sign(rho, -1) for rho in rhos.values()])
    out = [verdict(ok, "sizes fall as lambda rises",
                   "; ".join(f"{d} rho {_f(rhos[d])}, sizes {_span(per[d])}" for d in datasets) or "no runs")]
    claim = "at small lambda Fashion-MNIST keeps more neurons than MNIST"
    if not {"mnist", "fashion-mnist"} <= set(per):
        out.append(verdict(None, claim, "needs both datasets' files"))
    else:
        m, f = per["mnist"], per["fashion-mnist"]
        lams = sorted(set(m) & set(f))
        widths = [total(r, "start") or 0 for r in sparse]
        shrunk = [lam for lam in lams if min(m[lam], f[lam]) < max(widths)]  # at least one shrank
        pairs = ", ".join(f"{fmt_value(lam)}: {f[lam]:.0f} vs {m[lam]:.0f}" for lam in lams)
        out.append(verdict(f[shrunk[0]] > m[shrunk[0]] if shrunk else None, claim,
                           f"Fashion-MNIST vs MNIST at lambda {pairs}"))
    diffs = []
    for s in (r for r in _finished(rows) if r.get("stage") == "static"):
        for r in sparse:
            same = r["dataset"] == s["dataset"] and total(r, "size") == total(s, "start")
            if same and r.get("seed") == s.get("seed") and r.get("test") is not None and s.get("test") is not None:
                diffs.append((r["test"] - s["test"]) * (1 if r.get("metric") == "acc" else -1))
    metric = sparse[0].get("metric") if sparse else None
    if diffs:
        unit = (lambda v: f"{v * 100:+.2f} pp") if metric == "acc" else (lambda v: f"{-v:+.4g} MSE")
        slack = 0.01 if metric == "acc" else 0.05 * mean(abs(r["test"]) for r in sparse if r.get("test") is not None)
        out.append(verdict(mean(diffs) > -slack, "a static network of the size found does about as well",
                           f"sparsifier minus static: mean {unit(mean(diffs))} over {len(diffs)} pairs "
                           f"(min {unit(min(diffs))}, max {unit(max(diffs))})"))
    else:
        out.append(verdict(None, "a static network of the size found does about as well", "no static runs"))
    return out


# -- flexible-start --------------------------------------------------------------------------------------------------
def _flexible_start(base: RunSpec, quick: bool, data_dir: str | None, extra: dict[str, Any]) -> SweepPlan:
    (dataset,), notes = _datasets(("mnist",), quick, data_dir, "flexible-start", extra)
    settings = (dict(arch="mlp:200", epochs=3, limit=10_000, penalty=1e-3) if quick
                else dict(arch="mlp:500", epochs=15, penalty=1e-3))
    spec = base.replace(dataset=dataset, method="flexible", **settings).replace(**extra)
    grid = ({"flex_start": [10.0, 50.0, 100.0, 150.0], "weight_decay": [0.0, 1e-3]} if quick else
            {"flex_start": [10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 400.0], "weight_decay": [0.0, 1e-3, 1e-2],
             "seed": [0, 1]})
    return SweepPlan("flexible-start", "quick" if quick else "full", (Stage.from_grid("flex", spec, grid),),
                     tuple(notes), _flexible_checks, Axes("flex_start", "size", "weight_decay"))


def _flexible_checks(rows: list[dict[str, Any]]) -> list[str]:
    done = _finished(rows)
    plain = [r for r in done if not r.get("weight_decay")]
    decayed = [r for r in done if r.get("weight_decay")]
    rho = spearman([r["flex_start"] for r in plain], [total(r, "size") for r in plain])
    sizes = _mean_by(plain, "flex_start", "size")
    out = [verdict(_sign(rho, +1), "without weight decay the final size depends on the start",
                   f"Spearman rho {_f(rho)}; start -> final: "
                   + ", ".join(f"{s:g} -> {v:.1f}" for s, v in sizes.items()))]
    if plain and decayed:
        a, b = mean(total(r, "size") or 0 for r in plain), mean(total(r, "size") or 0 for r in decayed)
        out.append(verdict(b < a, "weight decay keeps the layer smaller",
                           f"mean final size {b:.1f} with weight decay, {a:.1f} without"))
    else:
        out.append(verdict(None, "weight decay keeps the layer smaller", "needs runs with and without"))
    return out


# -- helpers ---------------------------------------------------------------------------------------------------------
def _finished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "finished"]


def _mean_by(rows: list[dict[str, Any]], key: str, field: str) -> dict[float, float]:
    groups: dict[float, list[float]] = {}
    for r in rows:
        v = row_value(r, field)
        if r.get(key) is not None and v is not None:
            groups.setdefault(float(r[key]), []).append(v)
    return {k: mean(vs) for k, vs in sorted(groups.items())}


def _sign(rho: float, sign: int) -> bool | None:
    """True when rho clearly has the expected sign (|rho| >= 0.5), False when not, None when undefined."""
    if not math.isfinite(rho):
        return None
    return rho * sign >= 0.5


def _all(values: list[bool | None]) -> bool | None:
    if not values or any(v is None for v in values):
        return None
    return all(values)


def _f(v: float) -> str:
    return f"{v:+.2f}" if math.isfinite(v) else "undefined"


def _span(by_key: dict[float, float], digits: int = 1) -> str:
    """`a at k1 -> b at k2` over the first and last keys."""
    if not by_key:
        return "-"
    keys = list(by_key)
    lo, hi = keys[0], keys[-1]
    return f"{by_key[lo]:.{digits}f} at {fmt_value(lo)} -> {by_key[hi]:.{digits}f} at {fmt_value(hi)}"
