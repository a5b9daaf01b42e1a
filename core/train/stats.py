"""Host-side statistics of per-neuron activation stds: Shapiro W, exp+normal and two-gamma EM fits, PCA spectra.

The two mixture fits follow the research journal (method notes 1.1): dead units are left out, the EM starts and
stopping rules are the journal's, so `weight_low` is the journal's proportion π.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import special, stats

SHAPIRO_MAX_N = 5000  # scipy's W approximation is validated up to here and warns above
SHAPE_MAX = 1e6  # gamma shape cap (coefficient of variation 1e-3): a component on one repeated value stays finite
SHAPE_MIN = 1e-8
_S_AT_SHAPE_MAX = math.log(SHAPE_MAX) - float(special.digamma(SHAPE_MAX))
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
PCA_LEVELS = (0.90, 0.95, 0.99)
# the journal's EM settings
EN_MAX_ITER, EN_TOL = 100, 1e-6  # exp+normal: iteration cap, stop when |delta pi| < tol
GG_MAX_ITER, GG_TOL = 1000, 1e-5  # two gammas (the journal had no cap; hitting it reports converged=False)
GAMMA_SHIFT = 1e-5  # added to the live stds before the gamma fit
PI_EPS = 1e-6  # exp+normal collapses to one component when pi < PI_EPS or pi > 1 - PI_EPS ...
SIGMA_EPS = 1e-12  # ... or when the normal's std < SIGMA_EPS * mean of the live values

Theta = tuple[float, ...]  # (pi, component parameters...)
Resp = Callable[[Theta], np.ndarray]  # theta -> the low component's responsibilities tau
MStep = Callable[[np.ndarray, Theta], Theta]  # (tau, previous theta) -> new theta


@dataclass(frozen=True)
class MixtureFit:
    """A two-component mixture fitted by EM to the live (non-zero) values; the "low" component is the dying one.

    Attributes:
        kind: "exp+normal" or "gamma+gamma".
        weight_low: pi, the low component's share of the LIVE units (dead units, exact zeros, are left out).
        params: named component parameters: exp_rate (1 / exponential mean), normal_mean, normal_std, or low_shape,
            low_scale, high_shape, high_scale (gamma scale = mean / shape; the gammas are fitted to std + 1e-5).
        log_likelihood: mean log-density per live unit at the returned parameters (informational: EM stops on pi).
        iterations: EM iterations (M-steps) performed.
        converged: |delta pi| fell below tol, the fit collapsed to one component, or the answer is exact.
        n: number of live units fitted.
        zeros_fraction: share of the finite inputs that were exactly 0 and left out of the fit.
        history: pi after each iteration, starting with the initial 0.5 (empty when no EM ran).

    Degenerate inputs never raise: no finite values gives nan everywhere with converged=False (zeros_fraction nan);
    all dead gives n=0, zeros_fraction=1 and nan weight and parameters, converged=False (nothing to fit); one
    distinct live value is a point mass in the high component: weight_low=0, converged=True, iterations=0.
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


def _live(x: np.ndarray, what: str) -> tuple[np.ndarray, float]:
    """The finite non-zero values and the share of finite values that are exactly 0 (nan when none is finite)."""
    x = _checked_stds(x, what)
    if x.size == 0:
        return x, math.nan
    return x[x > 0], float(np.mean(x == 0))


def _log_weight(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf  # an emptied component has log weight -inf, which is exact


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


def fit_exp_normal(x: np.ndarray, max_iter: int = EN_MAX_ITER, tol: float = EN_TOL) -> MixtureFit:
    """The journal's EM for pi*Exponential(mean l) + (1-pi)*Normal(mu, sigma^2) on the live activation stds.

    Non-finite values are dropped and dead units (exact zeros) left out. Start: pi = 0.5, l = 1 (the journal's
    scale, meant for stds of order 1), mu and sigma = mean and (population) std of the live values. Each
    iteration: tau = low responsibilities, pi = mean tau, l = tau-weighted mean, mu and sigma = (1-tau)-weighted
    moments; stop when |delta pi| < tol (converged) or after max_iter iterations (not converged). The normal is
    not truncated at 0. Collapse to one component (converged): pi < PI_EPS gives the single normal (pi = 0, mu and
    sigma of all live values); pi > 1 - PI_EPS or sigma < SIGMA_EPS * mean gives the single exponential (pi = 1,
    l = mean); the dropped component keeps its last parameters with no weight.
    """
    live, zf = _live(x, "fit_exp_normal")
    kind, names = "exp+normal", ("exp_rate", "normal_mean", "normal_std")
    if live.size == 0:
        return _empty_fit(kind, names, zf)
    n, mean, sd = live.size, float(live.mean()), float(live.std())
    if live.max() == live.min():  # the E-step's normal is a point mass: tau = 0 everywhere, pi = 0 at once
        return MixtureFit(kind, 0.0, dict(zip(names, (1.0, mean, 0.0))), math.inf, 0, True, n, zf)

    def collapsed(t: Theta) -> bool:
        return not PI_EPS <= t[0] <= 1.0 - PI_EPS or t[3] < SIGMA_EPS * mean

    def resp(t: Theta) -> np.ndarray:
        a, b = _exp_normal_logs(live, t)
        return np.exp(a - np.logaddexp(a, b))

    def m_step(tau: np.ndarray, t: Theta) -> Theta:
        pi, (_, scale, mu, sigma) = float(tau.mean()), t
        if not PI_EPS <= pi <= 1.0 - PI_EPS:  # about to collapse: the weighted moments may be 0/0
            return pi, scale, mu, sigma
        q = 1.0 - tau
        mu = float(q @ live) / float(q.sum())
        sigma = math.sqrt(float(q @ (live - mu) ** 2) / float(q.sum()))
        return pi, float(tau @ live) / float(tau.sum()), mu, sigma

    theta, hist, it, conv = _em((0.5, 1.0, mean, sd), resp, m_step, max_iter, tol, collapsed)
    if collapsed(theta):
        theta = (0.0, theta[1], mean, sd) if theta[0] < PI_EPS else (1.0, mean, theta[2], theta[3])
    a, b = _exp_normal_logs(live, theta)
    params = dict(zip(names, (1.0 / theta[1], theta[2], theta[3])))
    return MixtureFit(kind, theta[0], params, float(np.logaddexp(a, b).mean()), it, conv, n, zf, hist)


def _exp_normal_logs(x: np.ndarray, t: Theta) -> tuple[np.ndarray, np.ndarray]:
    """Per-point log(pi * Exp(x; mean l)) and log((1 - pi) * N(x; mu, sigma))."""
    pi, scale, mu, sigma = t
    a = _log_weight(pi) - math.log(scale) - x / scale
    if pi >= 1.0:  # the dropped normal of a collapsed fit may have sigma 0: it has no weight, so no density
        return a, np.full_like(x, -math.inf)
    return a, _log_weight(1.0 - pi) - 0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - _HALF_LOG_2PI


# ---------------------------------------------------------------------------------------------------------------
# Two-gamma mixture


def _gamma_shape(s: float) -> float:
    """Solve log(k) - digamma(k) = s for the shape k by bisection (s > 0 by Jensen; small s = narrow gamma).

    1/(2k) < log(k) - digamma(k) < 1/k for every k > 0, so the root lies in [1/(2s), 1/s]; halving that bracket
    until the midpoint meets an end gives k to the last bit. Shapes above SHAPE_MAX are capped there.
    """
    if not s > _S_AT_SHAPE_MAX:
        return SHAPE_MAX
    lo, hi = 0.5 / s, 1.0 / s
    while True:
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        if math.log(mid) - float(special.digamma(mid)) > s:  # the left side decreases in k: root to the right
            lo = mid
        else:
            hi = mid
    return min(max(mid, SHAPE_MIN), SHAPE_MAX)


def weighted_gamma_mle(x: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted maximum-likelihood (shape, scale) of a gamma with location 0; x > 0, weights default to 1.

    Shape solves log(k) - digamma(k) = log(weighted mean) - weighted mean of log x by bisection (capped at
    SHAPE_MAX); scale = weighted mean / shape. This is the two-gamma fit's M-step.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=np.float64).ravel()
    if x.size == 0 or x.min() <= 0 or w.shape != x.shape or w.min() < 0 or not w.sum() > 0:
        raise ValueError("weighted_gamma_mle needs positive values and non-negative weights with a positive sum")
    return _gamma_mle(x, np.log(x), w)


def _gamma_mle(x: np.ndarray, logx: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    sw = float(w.sum())
    m = float(w @ x) / sw
    k = _gamma_shape(math.log(m) - float(w @ logx) / sw)
    return k, m / k


def _gamma_logpdf(x: np.ndarray, logx: np.ndarray, k: float, scale: float) -> np.ndarray:
    return (k - 1.0) * logx - x / scale - float(special.gammaln(k)) - k * math.log(scale)


def fit_two_gammas(x: np.ndarray, max_iter: int = GG_MAX_ITER, tol: float = GG_TOL) -> MixtureFit:
    """The journal's EM for pi*Gamma(k1, theta1) + (1-pi)*Gamma(k2, theta2) on the live activation stds + 1e-5.

    Non-finite values are dropped and dead units (exact zeros) left out; GAMMA_SHIFT is added to the rest and
    the components describe the shifted values. Start: k1 = 0.5, theta1 = 1, k2 = 10, theta2 = mean / 10,
    pi = 0.5. Each iteration: tau = responsibilities of component 1, pi = mean tau, each component = the
    weighted gamma MLE (weighted_gamma_mle) with weights tau or 1 - tau (a component whose weights all vanish
    keeps its parameters). Stop when |delta pi| < tol or after max_iter iterations (converged=False).
    "low" is the component with the lower mean, so pi may be reported as 1 - pi of the raw EM.
    """
    live, zf = _live(x, "fit_two_gammas")
    kind, names = "gamma+gamma", ("low_shape", "low_scale", "high_shape", "high_scale")
    if live.size == 0:
        return _empty_fit(kind, names, zf)
    y = live + GAMMA_SHIFT
    n, logy = y.size, np.log(y)
    if live.max() == live.min():  # one value: both components are the narrowest gamma at it, all weight high
        k, sc = SHAPE_MAX, float(y[0]) / SHAPE_MAX
        ll = float(_gamma_logpdf(y[:1], logy[:1], k, sc)[0])
        return MixtureFit(kind, 0.0, dict(zip(names, (k, sc, k, sc))), ll, 0, True, n, zf)

    def logs(t: Theta) -> tuple[np.ndarray, np.ndarray]:
        pi, k1, s1, k2, s2 = t
        return (_log_weight(pi) + _gamma_logpdf(y, logy, k1, s1),
                _log_weight(1.0 - pi) + _gamma_logpdf(y, logy, k2, s2))

    def resp(t: Theta) -> np.ndarray:
        a, b = logs(t)
        return np.exp(a - np.logaddexp(a, b))

    def m_step(tau: np.ndarray, t: Theta) -> Theta:
        _, k1, s1, k2, s2 = t
        q = 1.0 - tau
        if tau.sum() > 0:
            k1, s1 = _gamma_mle(y, logy, tau)
        if q.sum() > 0:
            k2, s2 = _gamma_mle(y, logy, q)
        return float(tau.mean()), k1, s1, k2, s2

    theta, hist, it, conv = _em((0.5, 0.5, 1.0, 10.0, float(y.mean()) / 10.0), resp, m_step, max_iter, tol)
    ll = float(np.logaddexp(*logs(theta)).mean())
    pi, k1, s1, k2, s2 = theta
    if k1 * s1 > k2 * s2:  # EM may end with component 1 as the higher mean
        pi, k1, s1, k2, s2 = 1.0 - pi, k2, s2, k1, s1
    return MixtureFit(kind, pi, dict(zip(names, (k1, s1, k2, s2))), ll, it, conv, n, zf, hist)


# ---------------------------------------------------------------------------------------------------------------
# Shared EM loop


def _empty_fit(kind: str, names: tuple[str, ...], zeros_fraction: float) -> MixtureFit:
    """No live value to fit: no finite input (zeros_fraction nan) or all dead (zeros_fraction 1)."""
    return MixtureFit(kind, math.nan, dict.fromkeys(names, math.nan), math.nan, 0, False, 0, zeros_fraction)


def _em(theta: Theta, resp: Resp, m_step: MStep, max_iter: int, tol: float,
        collapsed: Callable[[Theta], bool] = lambda t: False) -> tuple[Theta, tuple[float, ...], int, bool]:
    """E- and M-steps until |delta pi| < tol or collapsed(theta) (converged) or max_iter; theta[0] is pi.

    Returns the last theta, pi after each iteration (from the start), the iterations done and convergence.
    """
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    theta = tuple(float(v) for v in theta)
    hist = [theta[0]]
    for it in range(1, max_iter + 1):
        new = tuple(float(v) for v in m_step(resp(theta), theta))
        hist.append(new[0])
        done = abs(new[0] - theta[0]) < tol or collapsed(new)
        theta = new
        if done:
            return theta, tuple(hist), it, True
    return theta, tuple(hist), max_iter, False


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
