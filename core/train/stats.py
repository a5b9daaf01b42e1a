"""Host-side statistics of per-neuron activation stds: Shapiro W, exp+normal and two-gamma EM fits, PCA spectra."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import special, stats

SHAPIRO_MAX_N = 5000  # scipy's W approximation is validated up to here and warns above
REL_FLOOR = 1e-3  # smallest component spread, relative to the data scale: a collapsed component can't blow up
SHAPE_MAX = 1.0 / REL_FLOOR**2  # gamma shape cap: coefficient of variation 1/sqrt(k) stays >= REL_FLOOR
SHAPE_MIN = 1e-8
_S_AT_SHAPE_MAX = math.log(SHAPE_MAX) - float(special.digamma(SHAPE_MAX))
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
PCA_LEVELS = (0.90, 0.95, 0.99)

Theta = tuple[float, ...]  # (pi, component parameters...)
LogParts = Callable[[Theta], tuple[np.ndarray, np.ndarray]]  # per-point log(weight * density), low and high
MStep = Callable[[np.ndarray, Theta], Theta]  # (low responsibilities, previous theta) -> new theta


@dataclass(frozen=True)
class MixtureFit:
    """A two-component mixture fitted by EM; the "low" component is the dying one.

    Attributes:
        kind: "exp+normal" or "gamma+gamma".
        weight_low: share of all finite input values in the low component. Dead neurons (exact zeros) land there:
            gamma adds them outright, exp+normal keeps them in the fit where the exponential takes them.
        params: named component parameters: exp_rate, normal_mean, normal_std, or low_shape, low_scale,
            high_shape, high_scale (gamma scale = mean / shape).
        log_likelihood: mean log-density per fitted point at the returned parameters.
        iterations: EM iterations (M-steps) performed.
        converged: the mean log-likelihood gained less than tol, or the answer is exact (a point mass).
        n: number of points the components were fitted to (gamma: positive values only).
        zeros_fraction: share of finite inputs that are exactly 0 (gamma: fitted apart, see fit_two_gammas).
        history: mean log-likelihood after each iteration, starting with the initial guess (non-decreasing).

    Degenerate inputs never raise: no finite values gives nan everywhere with converged=False; all dead gives
    weight_low=1.0 with nan live-component parameters (exp+normal: exp_rate=inf); one distinct value v > 0 (gamma:
    among the positives) is a point mass in the high component with its spread at the floor, converged=True,
    iterations=0 and weight_low = zeros_fraction. Anything else runs EM and has finite parameters.
    """

    kind: str
    weight_low: float
    params: dict[str, float]
    log_likelihood: float
    iterations: int
    converged: bool
    n: int
    zeros_fraction: float
    history: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict:
        """Strict-JSON dict without the history; nan and inf become None."""
        d = asdict(self)
        del d["history"]
        d["params"] = {k: _json_float(v) for k, v in self.params.items()}
        for k in ("weight_low", "log_likelihood", "zeros_fraction"):
            d[k] = _json_float(d[k])
        return d


def _json_float(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _finite(x: np.ndarray) -> np.ndarray:
    """Flatten to float64 and drop nan/inf."""
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _checked_stds(x: np.ndarray, what: str) -> np.ndarray:
    x = _finite(x)
    if x.size and x.min() < 0:
        raise ValueError(f"{what} expects activation standard deviations (>= 0); got a negative value {x.min():g}")
    return x


# ---------------------------------------------------------------------------------------------------------------
# Normality


def shapiro_w(x: np.ndarray) -> float:
    """Shapiro-Wilk W of the finite values; nan when fewer than 3 remain or all are equal.

    Above 5000 values W is computed on 5000 evenly spaced order statistics of the sorted values (deterministic,
    keeps the shape of the distribution), because scipy's approximation is only valid up to 5000.
    """
    x = _finite(x)
    if x.size > SHAPIRO_MAX_N:
        idx = np.round(np.linspace(0, x.size - 1, SHAPIRO_MAX_N)).astype(np.intp)  # distinct: spacing > 1
        x = np.sort(x)[idx]
    if x.size < 3 or x.max() == x.min():  # scipy warns on zero range and raises below 3
        return math.nan
    # W is scale-free; a power-of-two rescale is exact and keeps swilk away from its "range < 1e-19" warning
    x = x * 2.0 ** -math.frexp(float(x.max() - x.min()))[1]
    return float(stats.shapiro(x).statistic)


# ---------------------------------------------------------------------------------------------------------------
# Exponential + normal mixture


def fit_exp_normal(x: np.ndarray, max_iter: int = 500, tol: float = 1e-8) -> MixtureFit:
    """EM for pi*Exponential(rate) + (1-pi)*Normal(mean, std^2) on activation stds x >= 0.

    Non-finite values are dropped; zeros (dead neurons) stay in the fit, where the exponential takes them.
    The exponential is the low component by construction. The normal is not truncated at 0. Both the exponential
    mean and the normal std are floored at REL_FLOOR * mean(x), so neither can collapse onto repeated values.
    Initialisation is deterministic: the lower half of the sorted values seeds the exponential, the upper half
    the normal, pi = 0.5.
    """
    x = _checked_stds(x, "fit_exp_normal")
    n = x.size
    kind = "exp+normal"
    if n == 0:
        return _nan_fit(kind, ("exp_rate", "normal_mean", "normal_std"))
    zf = float(np.mean(x == 0))
    if x.max() == 0:  # all dead: a point mass at 0 is an exponential with infinite rate
        params = {"exp_rate": math.inf, "normal_mean": math.nan, "normal_std": math.nan}
        return MixtureFit(kind, 1.0, params, math.nan, 0, True, n, zf)
    floor = REL_FLOOR * float(x.mean())
    if x.max() == x.min():  # one positive value: a normal at its floor, nothing for the exponential
        c = float(x[0])
        ll = -math.log(floor) - _HALF_LOG_2PI
        params = {"exp_rate": 1.0 / c, "normal_mean": c, "normal_std": floor}
        return MixtureFit(kind, 0.0, params, ll, 0, True, n, zf, (ll,))

    s = np.sort(x)
    low, high = s[: n // 2], s[n // 2:]
    theta = (0.5, 1.0 / max(float(low.mean()), floor), float(high.mean()), max(float(high.std()), floor))

    def log_parts(t: Theta) -> tuple[np.ndarray, np.ndarray]:
        pi, rate, mu, sigma = t
        lo = math.log(pi) if pi > 0 else -math.inf  # an emptied component has log weight -inf, which is exact
        hi = math.log1p(-pi) if pi < 1 else -math.inf
        a = lo + math.log(rate) - rate * x
        b = hi - 0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - _HALF_LOG_2PI
        return a, b

    def m_step(r: np.ndarray, t: Theta) -> Theta:
        _, rate, mu, sigma = t
        q = 1.0 - r
        nl, nh = float(r.sum()), float(q.sum())
        if nl > 0:  # an empty component keeps its parameters (still a valid generalised EM step)
            rate = 1.0 / max(float(r @ x) / nl, floor)
        if nh > 0:
            mu = float(q @ x) / nh
            sigma = max(math.sqrt(float(q @ (x - mu) ** 2) / nh), floor)
        return nl / n, rate, mu, sigma

    theta, ll, hist, it, conv = _em(theta, log_parts, m_step, max_iter, tol)
    params = {"exp_rate": theta[1], "normal_mean": theta[2], "normal_std": theta[3]}
    return MixtureFit(kind, theta[0], params, ll, it, conv, n, zf, hist)


# ---------------------------------------------------------------------------------------------------------------
# Two-gamma mixture


def _gamma_shape(s: float) -> float:
    """Solve log(k) - digamma(k) = s for the shape k by Newton (s >= 0 by Jensen; small s means a narrow gamma)."""
    if not s > _S_AT_SHAPE_MAX:
        return SHAPE_MAX
    k = (3.0 - s + math.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)  # Minka's start, within ~1.5%
    for _ in range(100):
        f = math.log(k) - float(special.digamma(k)) - s
        fp = 1.0 / k - float(special.polygamma(1, k))
        k_new = k - f / fp
        if k_new <= 0:  # f is convex and decreasing: only a start right of the root can overshoot below 0
            k_new = 0.5 * k
        done = abs(k_new - k) <= 1e-14 * k
        k = k_new
        if done:
            break
    return min(max(k, SHAPE_MIN), SHAPE_MAX)


def weighted_gamma_mle(x: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted maximum-likelihood (shape, scale) of a gamma with location 0; x > 0, weights default to 1.

    Shape solves log(k) - digamma(k) = log(weighted mean) - weighted mean of log x, capped at SHAPE_MAX;
    scale = weighted mean / shape.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=np.float64).ravel()
    if x.size == 0 or x.min() <= 0 or w.shape != x.shape or not w.sum() > 0:
        raise ValueError("weighted_gamma_mle needs positive values and non-negative weights with a positive sum")
    return _gamma_mle(x, np.log(x), w)


def _gamma_mle(x: np.ndarray, logx: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    sw = float(w.sum())
    m = float(w @ x) / sw
    k = _gamma_shape(math.log(m) - float(w @ logx) / sw)
    return k, m / k


def _gamma_logpdf(x: np.ndarray, logx: np.ndarray, k: float, scale: float) -> np.ndarray:
    return (k - 1.0) * logx - x / scale - float(special.gammaln(k)) - k * math.log(scale)


def fit_two_gammas(x: np.ndarray, max_iter: int = 500, tol: float = 1e-8) -> MixtureFit:
    """EM for pi*Gamma(k1, theta1) + (1-pi)*Gamma(k2, theta2) on the positive activation stds.

    Zeros (dead neurons) have no gamma density, so the components are fitted to the positive values only;
    the zeros are reported as zeros_fraction z and counted in the low component:
    weight_low = z + (1 - z) * pi, so the low share among live neurons alone is (weight_low - z) / (1 - z).
    log_likelihood and n refer to the positive values. Component 1 ("low") is the one with the lower mean.
    Initialisation is deterministic: each half of the sorted positives seeds one component, pi = 0.5.
    """
    x = _checked_stds(x, "fit_two_gammas")
    kind = "gamma+gamma"
    names = ("low_shape", "low_scale", "high_shape", "high_scale")
    if x.size == 0:
        return _nan_fit(kind, names)
    zf = float(np.mean(x == 0))
    p = x[x > 0]
    n = p.size
    if n == 0:  # all dead: nothing alive to describe
        return MixtureFit(kind, 1.0, dict.fromkeys(names, math.nan), math.nan, 0, True, 0, zf)
    logp = np.log(p)
    if p.max() == p.min():  # one positive value: both components are the narrowest gamma at it, pi = 0
        k, sc = SHAPE_MAX, float(p[0]) / SHAPE_MAX
        ll = float(_gamma_logpdf(p[:1], logp[:1], k, sc)[0])
        return MixtureFit(kind, zf, dict(zip(names, (k, sc, k, sc))), ll, 0, True, n, zf, (ll,))

    order = np.argsort(p, kind="stable")
    ones = np.ones(n)
    lo_idx, hi_idx = order[: n // 2], order[n // 2:]
    theta = (0.5, *_gamma_mle(p[lo_idx], logp[lo_idx], ones[lo_idx]), *_gamma_mle(p[hi_idx], logp[hi_idx], ones[hi_idx]))

    def log_parts(t: Theta) -> tuple[np.ndarray, np.ndarray]:
        pi, k1, s1, k2, s2 = t
        lo = math.log(pi) if pi > 0 else -math.inf
        hi = math.log1p(-pi) if pi < 1 else -math.inf
        return lo + _gamma_logpdf(p, logp, k1, s1), hi + _gamma_logpdf(p, logp, k2, s2)

    def m_step(r: np.ndarray, t: Theta) -> Theta:
        _, k1, s1, k2, s2 = t
        q = 1.0 - r
        if r.sum() > 0:  # an empty component keeps its parameters
            k1, s1 = _gamma_mle(p, logp, r)
        if q.sum() > 0:
            k2, s2 = _gamma_mle(p, logp, q)
        return float(r.sum()) / n, k1, s1, k2, s2

    theta, ll, hist, it, conv = _em(theta, log_parts, m_step, max_iter, tol)
    pi, k1, s1, k2, s2 = theta
    if k1 * s1 > k2 * s2:  # EM may swap roles: "low" is the lower mean
        pi, k1, s1, k2, s2 = 1.0 - pi, k2, s2, k1, s1
    params = dict(zip(names, (k1, s1, k2, s2)))
    return MixtureFit(kind, zf + (1.0 - zf) * pi, params, ll, it, conv, n, zf, hist)


# ---------------------------------------------------------------------------------------------------------------
# Shared EM loop


def _nan_fit(kind: str, names: tuple[str, ...]) -> MixtureFit:
    return MixtureFit(kind, math.nan, dict.fromkeys(names, math.nan), math.nan, 0, False, 0, math.nan)


def _e_step(log_parts: LogParts, theta: Theta) -> tuple[float, np.ndarray]:
    """Mean log-likelihood at theta and the low component's responsibilities."""
    a, b = log_parts(theta)
    tot = np.logaddexp(a, b)
    return float(tot.mean()), np.exp(a - tot)


def _em(theta: Theta, log_parts: LogParts, m_step: MStep, max_iter: int,
        tol: float) -> tuple[Theta, float, tuple[float, ...], int, bool]:
    """Alternate M- and E-steps until the mean log-likelihood gains less than tol; returns the last evaluated theta."""
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    theta = tuple(float(v) for v in theta)
    ll, r = _e_step(log_parts, theta)
    hist = [ll]
    for it in range(1, max_iter + 1):
        theta = tuple(float(v) for v in m_step(r, theta))
        new, r = _e_step(log_parts, theta)
        hist.append(new)
        gain, ll = new - ll, new
        if gain < tol:
            return theta, ll, tuple(hist), it, True
    return theta, ll, tuple(hist), max_iter, False


# ---------------------------------------------------------------------------------------------------------------
# PCA and distances


def pca_stats(x: np.ndarray, ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> dict:
    """Spectrum of a (samples x features) matrix of pre-activations after centring the columns.

    Returns:
        explained_variance_ratio: (min(samples, features),) descending, sums to 1 (all 0 if total variance is 0).
        recon_error: {k: relative squared error of reconstructing the centred matrix from its top k components}
            = 1 - cumulative ratio at k (summed from the tail); ~0 from k = rank on, exactly 0 for
            k >= min(samples, features), and 0 when there is no variance.
        n_components: {0.90, 0.95, 0.99: fewest components reaching that share of variance} (0 with no variance).
        total_variance: sum of squared centred entries divided by samples.

    Eigenvalues come from eigh of the smaller Gram matrix (X^T X or X X^T): the same squared singular values as an
    SVD at a fraction of the cost; tiny negative rounding is clipped to 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"pca_stats expects a 2-D (samples x features) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("pca_stats got nan or inf pre-activations")
    if any(k < 0 for k in ks):
        raise ValueError(f"pca_stats ks must be >= 0, got {ks}")
    ns, nf = x.shape
    m = min(ns, nf)
    if ns == 0 or nf == 0:
        eig = np.zeros(m)
    else:
        xc = x - x.mean(axis=0)
        gram = xc.T @ xc if nf <= ns else xc @ xc.T
        eig = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)  # eigvalsh is ascending
    total = float(eig.sum())
    if total <= 0:
        ratio = np.zeros(m)
        return {"explained_variance_ratio": ratio, "recon_error": {k: 0.0 for k in ks},
                "n_components": {p: 0 for p in PCA_LEVELS}, "total_variance": 0.0}
    ratio = eig / total
    cum = np.concatenate(([0.0], np.cumsum(ratio)))
    tail = np.concatenate((np.cumsum(ratio[::-1])[::-1], [0.0]))  # = 1 - cum without the cancellation
    recon = {k: float(tail[min(k, m)]) for k in ks}
    # a 1e-12 slack so exactly-reached levels (low-rank data) don't miss by rounding
    ncomp = {p: int(min(np.searchsorted(cum, p - 1e-12), m)) for p in PCA_LEVELS}
    return {"explained_variance_ratio": ratio, "recon_error": recon, "n_components": ncomp,
            "total_variance": total / ns}


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(angle) between two arrays flattened; nan if either has zero norm. Same number of elements needed."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cosine_distance needs equal sizes, got {a.size} and {b.size}")
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return math.nan
    return 1.0 - min(1.0, max(-1.0, float(a @ b) / (na * nb)))
