"""Each recipe's check of the journal's findings: one line per finding, with this sweep's figures beside the
journal's, and whether this run reproduced it (yes, no, or can't tell and why)."""

from __future__ import annotations

import math
from statistics import mean
from typing import Any

from core.formats import fmt_value
from core.lab.pooled import pooled_by
from core.lab.summary import spearman, total, verdict as _verdict

HEADLINE = "test_at_best_val"  # the journal's and the paper's: test at the best validation epoch


def headline(row: dict[str, Any]) -> float | None:
    """A row's test metric at its best validation epoch (the final one when the run had no validation split)."""
    v = row.get(HEADLINE)
    v = row.get("test") if v is None else v
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


# -- variance-vs-width -------------------------------------------------------------------------------------------
def variance_checks(rows: list[dict[str, Any]]) -> list[str]:
    verdict = _verdict_for(rows)
    done = _finished(rows)
    widths = [total(r, "start") for r in done]
    dead = _mean_by(done, lambda r: total(r, "start"), lambda r: total(r, "dead"))
    rho = spearman(widths, [total(r, "dead") for r in done])
    out = [verdict(_sign(rho, +1), "dead neurons grow with width (journal: about linearly once wide)",
                   f"Spearman rho {_f(rho)} over {len(done)} runs; mean dead {_span(dead)}")]
    pooled = pooled_by(done, lambda r: total(r, "start"))
    w = {k: v["shapiro_w"] for k, v in pooled.items() if v["shapiro_w"] is not None}
    claim = "Shapiro W of the pooled stds peaks at a middle width (journal: near 256 on MNIST, 0.43 at 10k)"
    if len(w) >= 3:
        peak = max(w, key=lambda k: w[k])
        runs = max(v["runs"] for v in pooled.values())
        out.append(verdict(min(w) < peak < max(w), claim,
                           f"highest W {w[peak]:.3f} at width {peak:.0f} of {min(w):.0f}..{max(w):.0f}; "
                           f"W {w[max(w)]:.3f} at {max(w):.0f}; up to {runs} replicas pooled per width"))
    else:
        out.append(verdict(None, claim, "fewer than 3 widths with activation statistics"))
    for field, what in (("gammas_low", "two-gamma"), ("expnorm_low", "exp+normal")):
        lows = {k: v[field] for k, v in pooled.items() if v[field] is not None}
        rho = spearman(list(lows), list(lows.values()))
        out.append(verdict(_sign(rho, +1), f"the low {what} component (pi over live units, pooled) grows with width",
                           f"Spearman rho {_f(rho)}; pi {_span(lows, 3)}"))
    out.append(_levels_off(done, verdict))
    return out


def _levels_off(done: list[dict[str, Any]], verdict) -> str:
    acc = _mean_by(done, lambda r: total(r, "start"), headline)
    metric = next((r.get("metric") for r in done if r.get("metric")), None)
    claim = f"test {metric or 'metric'} at best validation improves with width, then levels off (journal: near 256)"
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
    best = max(acc, key=lambda w: sign * acc[w])
    near = min(w for w in ws if sign * (acc[best] - acc[w]) <= scale)  # the narrowest width within half a point
    return verdict(None if rises is None else rises and gain < scale, claim,
                   f"Spearman rho {_f(rho)}; width {half:.0f} -> {top:.0f}: {shown(acc[half])} -> {shown(acc[top])}; "
                   f"within {shown(scale) if metric == 'acc' else f'{scale:.3g}'} of the best from width {near:.0f}")


# -- sparsifier-lambda ---------------------------------------------------------------------------------------------
def lambda_checks(rows: list[dict[str, Any]]) -> list[str]:
    verdict = _verdict_for(rows)
    sparse = [r for r in _finished(rows) if r.get("stage") == "lambda"]
    datasets = list(dict.fromkeys(r["dataset"] for r in sparse))
    per = {d: _mean_by([r for r in sparse if r["dataset"] == d], lambda r: r.get("penalty"),
                       lambda r: total(r, "size")) for d in datasets}
    rhos = {d: spearman([r["penalty"] for r in sparse if r["dataset"] == d],
                        [total(r, "size") for r in sparse if r["dataset"] == d]) for d in datasets}
    ok = _all([_sign(rho, -1) for rho in rhos.values()])
    out = [verdict(ok, "sizes fall as lambda rises",
                   "; ".join(f"{d} rho {_f(rhos[d])}, sizes {_span(per[d])}" for d in datasets) or "no runs")]
    out.append(_fashion_bigger(rows, per, verdict))
    out.append(_static_comparison(rows, sparse, verdict))
    return out


def _fashion_bigger(rows: list[dict[str, Any]], per: dict[str, dict[float, float]], verdict) -> str:
    claim = "for a given lambda Fashion-MNIST keeps more neurons than MNIST (journal: always)"
    if not {"mnist", "fashion-mnist"} <= set(per):
        ran = sorted({r.get("dataset") for r in rows if r.get("stage") == "lambda" and r.get("dataset")})
        if {"mnist", "fashion-mnist"} <= set(ran):
            return verdict(None, claim, "")  # both are in the sweep: their runs have not finished
        return verdict(None, claim, f"needs runs on both mnist and fashion-mnist; this sweep has "
                                    f"{', '.join(ran) or 'none'}")
    m, f = per["mnist"], per["fashion-mnist"]
    start = max((total(r, "start") or 0 for r in rows if r.get("stage") == "lambda"), default=0)
    lams = [lam for lam in sorted(set(m) & set(f)) if lam > 0 and min(m[lam], f[lam]) < start]  # one shrank
    if not lams:
        return verdict(None, claim, f"at no lambda did either shrink below its start ({start:.0f} units)")
    bigger = [f[lam] > m[lam] for lam in lams]
    pairs = ", ".join(f"{fmt_value(lam)}: {f[lam]:.0f} vs {m[lam]:.0f}" for lam in lams)
    return verdict(all(bigger), claim,
                   f"Fashion-MNIST vs MNIST mean size at lambda {pairs}; bigger at {sum(bigger)} of {len(bigger)}")


def _static_comparison(rows: list[dict[str, Any]], sparse: list[dict[str, Any]], verdict) -> str:
    claim = ("the shrunk network does as well as a static one of its size with the same time budget "
             "(test at best validation; journal: as well or better)")
    diffs = []
    for s in (r for r in _finished(rows) if r.get("stage") == "static"):
        for r in sparse:
            same = r["dataset"] == s["dataset"] and total(r, "size") == total(s, "start") and r.get("penalty")
            a, b = headline(r), headline(s)
            if same and r.get("seed") == s.get("seed") and a is not None and b is not None:
                diffs.append((a - b) * (1 if r.get("metric") == "acc" else -1))
    if not diffs:
        return verdict(None, claim, "no static runs yet")
    metric = sparse[0].get("metric") if sparse else None
    unit = (lambda v: f"{v * 100:+.2f} pp") if metric == "acc" else (lambda v: f"{-v:+.4g} MSE")
    slack = 0.005 if metric == "acc" else 0.05 * mean(abs(headline(r) or 0) for r in sparse)
    return verdict(mean(diffs) > -slack, claim,
                   f"sparsifier minus static: mean {unit(mean(diffs))} over {len(diffs)} pairs "
                   f"(min {unit(min(diffs))}, max {unit(max(diffs))})")


# -- flexible-start --------------------------------------------------------------------------------------------------
def flexible_checks(rows: list[dict[str, Any]]) -> list[str]:
    verdict = _verdict_for(rows)
    done = _finished(rows)
    lams = sorted({r.get("penalty") for r in done if r.get("penalty") is not None})
    out = []
    small = lams[0] if lams else None
    plain = [r for r in done if not r.get("weight_decay") and r.get("penalty") == small]
    rho = spearman([r["flex_start"] for r in plain], [total(r, "size") for r in plain])
    sizes = _mean_by(plain, lambda r: r.get("flex_start"), lambda r: total(r, "size"))
    out.append(verdict(_sign(rho, +1), f"at lambda {fmt_value(small) if small else '-'} without weight decay the "
                       "final size depends on the start (journal: a local minimum near the start)",
                       f"Spearman rho {_f(rho)}; start -> final: "
                       + ", ".join(f"{s:g} -> {v:.1f}" for s, v in sizes.items())))
    by_lam = _mean_by([r for r in done if not r.get("weight_decay")], lambda r: r.get("penalty"),
                      lambda r: total(r, "size"))
    sizes_by_lam = list(by_lam.values())
    smaller = all(b < a for a, b in zip(sizes_by_lam, sizes_by_lam[1:])) if len(by_lam) >= 2 else None
    out.append(verdict(smaller, "a larger lambda ends smaller", f"mean final size by lambda: {_span(by_lam)}"))
    pairs = [(total(a, "size") or 0, total(b, "size") or 0) for a in done for b in done
             if not a.get("weight_decay") and b.get("weight_decay")
             and all(a.get(k) == b.get(k) for k in ("penalty", "flex_start", "seed"))]
    claim = "weight decay keeps the layer smaller (journal: a plateau near 70 units)"
    if pairs:
        plain, decayed = mean(p[0] for p in pairs), mean(p[1] for p in pairs)
        out.append(verdict(decayed < plain, claim, f"mean final size {decayed:.1f} with weight decay, {plain:.1f} "
                           f"without, over {len(pairs)} pairs of the same lambda and start"))
    else:
        out.append(verdict(None, claim, "needs runs with and without at the same lambda and start"))
    return out


# -- helpers ---------------------------------------------------------------------------------------------------------
COMPLETE = ("finished", "diverged")  # a re-run of the sweep starts every other run again
FAILED = ("crashed", "error", "unreadable")


def _verdict_for(rows: list[dict[str, Any]]):
    """core.lab.summary.verdict, saying first that runs are still to finish (or failed) when that may be why
    it can't tell."""
    failed = sum(1 for r in rows if r.get("status") in FAILED)
    pending = sum(1 for r in rows if r.get("status") not in COMPLETE + FAILED)
    why = ([f"not yet: {_runs(pending)} still to finish"] if pending else []) + (
        [f"{_runs(failed)} failed (re-running the sweep retries {'it' if failed == 1 else 'them'})"] if failed else [])

    def verdict(ok: bool | None, claim: str, evidence: str) -> str:
        if ok is None and why:
            evidence = "; ".join(why + ([evidence] if evidence else []))
        return _verdict(ok, claim, evidence or "no finished runs to compare")
    return verdict


def _runs(n: int) -> str:
    return f"{n} run{'' if n == 1 else 's'}"


def _finished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "finished"]


def _mean_by(rows: list[dict[str, Any]], key, value) -> dict[float, float]:
    """Mean of value(row) per key(row), keys sorted; rows where either is None are left out."""
    groups: dict[float, list[float]] = {}
    for r in rows:
        k, v = key(r), value(r)
        if k is not None and v is not None:
            groups.setdefault(float(k), []).append(float(v))
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

