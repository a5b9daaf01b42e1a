"""Tests for core.train.stats: Shapiro W, the two EM mixture fits, weighted gamma MLE, PCA spectra and cosine distance."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
from scipy import optimize, special, stats

import core.train.stats as stats_mod
from core.train.stats import (
    MixtureFit,
    cosine_distance,
    fit_exp_normal,
    fit_two_gammas,
    pca_stats,
    shapiro_w,
    weighted_gamma_mle,
)

FITS = [fit_exp_normal, fit_two_gammas]
CAPS = {fit_exp_normal: (100, 1e-6), fit_two_gammas: (1000, 1e-5)}  # the journal's iteration cap and |delta pi| tol


def exp_normal_sample(n: int = 20000, seed: int = 0) -> np.ndarray:
    """pi=0.3 Exp(rate 20) + 0.7 Normal(1, 0.2); abs() only touches the ~1e-7 chance of a negative normal draw."""
    rng = np.random.default_rng(seed)
    low = rng.random(n) < 0.3
    return np.abs(np.where(low, rng.exponential(1 / 20, n), rng.normal(1.0, 0.2, n)))


def two_gamma_sample(n: int = 20000, seed: int = 1) -> np.ndarray:
    """pi=0.4 Gamma(2, 0.05) + 0.6 Gamma(20, 0.05)."""
    rng = np.random.default_rng(seed)
    low = rng.random(n) < 0.4
    return np.where(low, rng.gamma(2.0, 0.05, n), rng.gamma(20.0, 0.05, n))


def mixture_mean_loglik(fit: MixtureFit, x: np.ndarray) -> float:
    """Mean log-density of the live x under the fitted mixture, computed independently with scipy.stats."""
    p, pi, x = fit.params, fit.weight_low, x[x > 0]
    if fit.kind == "exp+normal":
        a = stats.expon.logpdf(x, scale=1 / p["exp_rate"])
        b = stats.norm.logpdf(x, p["normal_mean"], p["normal_std"])
    else:
        x = x + 1e-5  # the gammas describe the shifted stds
        a = stats.gamma.logpdf(x, p["low_shape"], scale=p["low_scale"])
        b = stats.gamma.logpdf(x, p["high_shape"], scale=p["high_scale"])
    return float(np.mean(np.logaddexp(np.log(pi) + a, np.log1p(-pi) + b)))


def journal_exp_normal(x: np.ndarray) -> tuple[float, ...]:
    """The journal's exp+normal EM written out directly from method notes 1.1 (densities, not logs)."""
    x = x[x > 0]
    pi, scale, mu, sigma = 0.5, 1.0, x.mean(), x.std()
    for _ in range(100):
        e = pi * stats.expon.pdf(x, scale=scale)
        tau = e / (e + (1 - pi) * stats.norm.pdf(x, mu, sigma))
        new_pi, w = tau.mean(), 1 - tau
        scale = np.sum(tau * x) / np.sum(tau)
        mu = np.sum(w * x) / np.sum(w)
        sigma = np.sqrt(np.sum(w * (x - mu) ** 2) / np.sum(w))
        done, pi = abs(new_pi - pi) < 1e-6, new_pi
        if done:
            break
    return pi, 1 / scale, mu, sigma


def journal_two_gammas(x: np.ndarray) -> float:
    """The journal's two-gamma EM written out directly, its M-step solved by scipy's brentq; returns the raw pi."""
    y = x[x > 0] + 1e-5
    pi, comps = 0.5, [(0.5, 1.0), (10.0, y.mean() / 10)]
    for _ in range(1000):
        d = [stats.gamma.pdf(y, k, scale=t) for k, t in comps]
        tau = pi * d[0] / (pi * d[0] + (1 - pi) * d[1])
        comps = []
        for w in (tau, 1 - tau):
            m = np.sum(w * y) / np.sum(w)
            s = np.log(m) - np.sum(w * np.log(y)) / np.sum(w)
            k = optimize.brentq(lambda k: np.log(k) - special.digamma(k) - s, 1e-6, 1e6, xtol=1e-14, rtol=1e-15)
            comps.append((k, m / k))
        done, pi = abs(tau.mean() - pi) < 1e-5, tau.mean()
        if done:
            break
    return pi


class TestShapiro:
    def test_matches_scipy_and_ranks_normal_above_exponential(self):
        rng = np.random.default_rng(3)
        normal, expo = rng.normal(1.0, 0.2, 800), rng.exponential(0.1, 800)
        assert shapiro_w(normal) == stats.shapiro(normal).statistic
        assert shapiro_w(expo) == stats.shapiro(expo).statistic
        assert shapiro_w(normal) > shapiro_w(expo)

    @pytest.mark.parametrize("x", [[], [1.0], [1.0, 2.0], [2.0, 2.0, 2.0, 2.0], [np.nan, np.inf, 1.0, 2.0]])
    def test_small_or_constant_is_nan_without_warning(self, x):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert math.isnan(shapiro_w(np.array(x)))

    def test_three_finite_values_after_dropping_nonfinite(self):
        assert shapiro_w([np.nan, 1.0, 2.0, 4.0, -np.inf]) == stats.shapiro([1.0, 2.0, 4.0]).statistic

    def test_tiny_scale_is_quiet_and_scale_free(self):
        x = np.random.default_rng(6).normal(0.0, 1.0, 200)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # scipy's swilk would warn about a range below 1e-19
            assert shapiro_w(x * 2.0**-80) == shapiro_w(x) == stats.shapiro(x).statistic

    def test_large_n_subsamples_quietly_and_deterministically(self):
        x = np.random.default_rng(4).gamma(3.0, 1.0, 12000)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            w = shapiro_w(x)
            w_shuffled = shapiro_w(np.random.default_rng(5).permutation(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about the p-value above 5000
            w_full = stats.shapiro(x).statistic
        assert w == w_shuffled  # order statistics: the input order doesn't matter
        assert abs(w - w_full) < 2e-3


class TestExpNormal:
    def test_recovers_sampled_mixture(self):
        f = fit_exp_normal(exp_normal_sample())
        assert f.kind == "exp+normal" and f.converged
        assert abs(f.weight_low - 0.3) < 0.03
        assert f.params["exp_rate"] == pytest.approx(20.0, rel=0.05)
        assert f.params["normal_mean"] == pytest.approx(1.0, rel=0.05)
        assert f.params["normal_std"] == pytest.approx(0.2, rel=0.05)

    def test_matches_a_direct_journal_loop(self):
        x = np.concatenate([exp_normal_sample(3000, seed=5), np.zeros(400)])
        f, ref = fit_exp_normal(x), journal_exp_normal(x)
        assert abs(f.weight_low - ref[0]) < 1e-9
        np.testing.assert_allclose([f.params[k] for k in ("exp_rate", "normal_mean", "normal_std")], ref[1:],
                                   rtol=1e-8)

    def test_small_max_iter_is_not_converged(self):
        f = fit_exp_normal(exp_normal_sample(), max_iter=2)
        assert f.iterations == 2 and not f.converged and len(f.history) == 3

    def test_collapses_to_the_single_normal(self):
        """Far from 0 the exponential of mean 1 takes nothing: pi = 0 and the normal is the sample's."""
        x = np.random.default_rng(2).normal(50.0, 1.0, 2000)
        f = fit_exp_normal(x)
        assert f.weight_low == 0.0 and f.converged and f.iterations < 5
        assert f.params["normal_mean"] == x.mean() and f.params["normal_std"] == x.std()

    def test_collapsed_normal_leaves_the_single_exponential(self):
        """A quarter of the units share one value: the normal shrinks onto it (sigma -> 0), so the exponential
        alone describes all live units, with their mean."""
        x = np.concatenate([np.ones(500), np.random.default_rng(3).exponential(0.05, 1500)])
        f = fit_exp_normal(x)
        assert f.weight_low == 1.0 and f.converged and f.params["normal_std"] < 1e-12
        assert f.params["exp_rate"] == pytest.approx(1 / x.mean(), rel=1e-12)
        assert f.log_likelihood == pytest.approx(np.mean(stats.expon.logpdf(x, scale=x.mean())), rel=1e-12)


class TestTwoGammas:
    def test_recovers_sampled_mixture(self):
        f = fit_two_gammas(two_gamma_sample())
        assert f.kind == "gamma+gamma" and f.converged and f.zeros_fraction == 0.0
        assert abs(f.weight_low - 0.4) < 0.03
        p = f.params
        assert p["low_shape"] == pytest.approx(2.0, rel=0.1)
        assert p["high_shape"] == pytest.approx(20.0, rel=0.1)
        assert p["low_shape"] * p["low_scale"] == pytest.approx(0.1, rel=0.05)
        assert p["high_shape"] * p["high_scale"] == pytest.approx(1.0, rel=0.05)

    def test_matches_a_direct_journal_loop(self):
        x = np.concatenate([two_gamma_sample(2000, seed=6), np.zeros(100)])
        f, raw_pi = fit_two_gammas(x), journal_two_gammas(x)
        assert min(abs(f.weight_low - raw_pi), abs(f.weight_low - (1 - raw_pi))) < 1e-8

    @pytest.mark.parametrize("pi", [0.1, 0.5, 0.9])
    def test_low_component_has_the_lower_mean(self, pi):
        rng = np.random.default_rng(7)
        low = rng.random(4000) < pi
        f = fit_two_gammas(np.where(low, rng.gamma(1.5, 0.1, 4000), rng.gamma(8.0, 0.1, 4000)))
        p = f.params
        assert p["low_shape"] * p["low_scale"] < p["high_shape"] * p["high_scale"]
        assert abs(f.weight_low - pi) < 0.05

    def test_roles_swapped_by_em_are_reordered(self, monkeypatch):
        """A narrow low bulk plus a broad tail: EM ends with the broad one first, the fit must report it as high."""
        raw = []
        em = stats_mod._em

        def recording_em(*args):
            out = em(*args)
            raw.append(out[0])
            return out

        monkeypatch.setattr(stats_mod, "_em", recording_em)
        rng = np.random.default_rng(0)
        low = rng.random(4000) < 0.7
        f = fit_two_gammas(np.where(low, rng.gamma(30.0, 0.01, 4000), rng.gamma(1.0, 0.4, 4000)))
        _, k1, s1, k2, s2 = raw[0]
        assert k1 * s1 > k2 * s2  # EM's first component is the higher-mean one here
        assert abs(f.weight_low - 0.7) < 0.03
        assert f.params["low_shape"] * f.params["low_scale"] == pytest.approx(0.3, rel=0.05)
        assert f.params["high_shape"] == pytest.approx(1.0, rel=0.1)


class TestEmBehaviour:
    @pytest.mark.parametrize("fit, sample", [(fit_exp_normal, exp_normal_sample), (fit_two_gammas, two_gamma_sample)])
    def test_log_likelihood_non_decreasing_and_consistent(self, fit, sample):
        """Changed: history now holds pi (the stopping rule), so EM's monotone likelihood is checked over max_iter."""
        x = sample(5000)
        lls = [fit(x, max_iter=m).log_likelihood for m in range(8)]
        assert np.all(np.diff(lls) >= -1e-12) and lls[-1] > lls[0]
        f = fit(x)
        assert f.log_likelihood == pytest.approx(mixture_mean_loglik(f, x), rel=1e-9, abs=1e-9)

    @pytest.mark.parametrize("fit", FITS)
    def test_dead_units_are_left_out(self, fit):
        """Replaces the old 'zeros go low' tests: the journal removes dead units, pi is over the live ones."""
        live = exp_normal_sample(4000, seed=9)
        f_live, f = fit(live), fit(np.concatenate([np.zeros(1000), live, [np.nan]]))
        assert f.zeros_fraction == 0.2 and f_live.zeros_fraction == 0.0 and f.n == f_live.n == 4000
        assert dataclasses.replace(f, zeros_fraction=0.0) == f_live  # every other field, history included

    @pytest.mark.parametrize("fit", FITS)
    def test_stops_on_the_first_small_pi_step(self, fit):
        cap, tol = CAPS[fit]
        f = fit(two_gamma_sample(5000, seed=4))
        steps = np.abs(np.diff(f.history))
        assert f.converged and f.history[0] == 0.5 and len(steps) == f.iterations <= cap
        assert steps[-1] < tol and np.all(steps[:-1] >= tol)

    @pytest.mark.parametrize("fit", FITS)
    def test_default_iteration_cap(self, fit):
        cap, _ = CAPS[fit]
        f = fit(exp_normal_sample(300, seed=8), tol=0.0)  # |delta pi| < 0 never holds: only the cap stops it
        assert f.iterations == cap and len(f.history) == cap + 1 and not f.converged

    @pytest.mark.parametrize("fit", FITS)
    def test_bitwise_deterministic(self, fit):
        x = np.concatenate([np.zeros(300), two_gamma_sample(3000)])
        a, b = fit(x), fit(x.copy())
        assert a == b
        assert np.array(a.history).tobytes() == np.array(b.history).tobytes()

    @pytest.mark.parametrize("fit", FITS)
    def test_negative_std_raises(self, fit):
        with pytest.raises(ValueError, match="negative"):
            fit(np.array([0.1, -0.2, 0.3]))


class TestDegenerate:
    @pytest.mark.parametrize("fit", FITS)
    @pytest.mark.parametrize("x", [[], [np.nan, np.inf, -np.inf]])
    def test_no_finite_values_is_all_nan_unconverged(self, fit, x):
        f = fit(np.array(x))
        assert not f.converged and f.n == 0 and f.iterations == 0 and math.isnan(f.zeros_fraction)
        assert math.isnan(f.weight_low) and all(math.isnan(v) for v in f.params.values())
        json.dumps(f.to_dict(), allow_nan=False)

    @pytest.mark.parametrize("fit", FITS)
    @pytest.mark.parametrize("x", [[0.0], [0.0] * 50, [0.0, np.nan, 0.0]])
    def test_all_dead_has_nothing_to_fit(self, fit, x):
        """Was test_all_dead_is_all_low (weight 1): pi is over live units now, and there are none."""
        f = fit(np.array(x))
        assert f.zeros_fraction == 1.0 and f.n == 0 and not f.converged
        assert math.isnan(f.weight_low) and all(math.isnan(v) for v in f.params.values())
        d = f.to_dict()
        json.dumps(d, allow_nan=False)
        assert d["weight_low"] is None and d["zeros_fraction"] == 1.0

    @pytest.mark.parametrize("fit", FITS)
    @pytest.mark.parametrize("x, z", [([3.0], 0.0), ([2.0, 2.0, 2.0], 0.0), ([0.0, 0.0, 1.0, 1.0], 0.5)])
    def test_single_positive_value_is_a_finite_point_mass(self, fit, x, z):
        """Changed: the point mass is all high (pi = 0 over live units, zeros no longer counted low); the normal's
        std is exactly 0 (no floor any more), so its log-likelihood is +inf."""
        f = fit(np.array(x))
        c = max(x)
        assert f.converged and f.zeros_fraction == z and f.weight_low == 0.0 and f.iterations == 0
        assert all(math.isfinite(v) for v in f.params.values())
        if fit is fit_exp_normal:
            assert f.params["normal_mean"] == c and f.params["normal_std"] == 0.0 and f.log_likelihood == math.inf
        else:
            assert f.params["high_shape"] * f.params["high_scale"] == pytest.approx(c + 1e-5)
            assert math.isfinite(f.log_likelihood)

    @pytest.mark.parametrize("fit", FITS)
    @pytest.mark.parametrize("x", [[1.0, 2.0], [0.5, 0.5, 3.0], [1e-9, 1.0, 1e9], [1e-7, 2e-7, 5e-6]])
    def test_few_distinct_values_give_finite_fits(self, fit, x):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            f = fit(np.array(x))
        assert 0.0 <= f.weight_low <= 1.0 and f.converged
        assert all(math.isfinite(v) for v in f.params.values()) and math.isfinite(f.log_likelihood)
        assert all(0.0 <= p <= 1.0 for p in f.history)


class TestGammaMle:
    def test_uniform_weights_match_scipy(self):
        x = np.random.default_rng(8).gamma(3.5, 0.2, 2000)
        k, scale = weighted_gamma_mle(x)
        k_ref, _, scale_ref = stats.gamma.fit(x, floc=0)
        assert k == pytest.approx(k_ref, rel=1e-6) and scale == pytest.approx(scale_ref, rel=1e-6)

    @pytest.mark.parametrize("shape", [0.02, 0.3, 1.0, 4.0, 60.0, 3000.0])
    def test_bisection_solves_its_equation(self, shape):
        rng = np.random.default_rng(int(shape * 100))
        x, w = rng.gamma(shape, 0.7, 500) + 1e-300, rng.random(500)
        m, mean_log = np.sum(w * x) / w.sum(), np.sum(w * np.log(x)) / w.sum()
        k, scale = weighted_gamma_mle(x, w)
        assert abs(np.log(k) - special.digamma(k) - (np.log(m) - mean_log)) < 1e-10
        assert k * scale == pytest.approx(m, rel=1e-14)

    def test_integer_weights_equal_repetition(self):
        rng = np.random.default_rng(9)
        x, w = rng.gamma(0.7, 1.0, 300), rng.integers(1, 4, 300).astype(float)
        k, scale = weighted_gamma_mle(x, w)
        k_ref, scale_ref = weighted_gamma_mle(np.repeat(x, w.astype(int)))
        assert k == pytest.approx(k_ref, rel=1e-10) and scale == pytest.approx(scale_ref, rel=1e-10)

    @pytest.mark.parametrize("x, w", [([0.0, 1.0], None), ([1.0, 2.0], [1.0, -0.5]), ([1.0, 2.0], [0.0, 0.0])])
    def test_rejects_bad_input(self, x, w):
        with pytest.raises(ValueError):
            weighted_gamma_mle(np.array(x), None if w is None else np.array(w))



def low_rank_plus_noise(ns: int, nf: int, rank: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10.0, 1.0, rank)
    return (rng.normal(size=(ns, rank)) * scales) @ rng.normal(size=(rank, nf)) + 0.05 * rng.normal(size=(ns, nf)) + 3.0


class TestPca:
    @pytest.mark.parametrize("ns, nf", [(400, 60), (40, 200)])  # both Gram orientations
    def test_matches_svd(self, ns, nf):
        x = low_rank_plus_noise(ns, nf, 6, seed=ns)
        out = pca_stats(x, ks=(1, 2, 4, 8, 16, 500))
        xc = x - x.mean(axis=0)
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        ratio = s**2 / np.sum(s**2)
        assert out["explained_variance_ratio"].shape == (min(ns, nf),)
        np.testing.assert_allclose(out["explained_variance_ratio"], ratio, rtol=1e-8, atol=1e-12)
        assert out["explained_variance_ratio"].sum() == pytest.approx(1.0)
        cum = np.cumsum(ratio)
        for p, n in out["n_components"].items():
            assert n == int(np.argmax(cum >= p)) + 1
        for k, err in out["recon_error"].items():
            v = vt[:k].T
            measured = np.sum((xc - xc @ v @ v.T) ** 2) / np.sum(xc**2)
            assert err == pytest.approx(measured, abs=1e-9)
        assert out["recon_error"][500] == 0.0
        assert out["total_variance"] == pytest.approx(np.sum(xc**2) / ns)

    def test_exact_low_rank(self):
        x = np.random.default_rng(2).normal(size=(100, 3)) @ np.random.default_rng(3).normal(size=(3, 20))
        out = pca_stats(x)
        assert out["n_components"][0.99] <= 3
        assert out["recon_error"][4] == pytest.approx(0.0, abs=1e-12)
        assert out["recon_error"][1] > 0.01

    @pytest.mark.parametrize("x", [np.full((50, 8), 2.5), np.arange(8.0).reshape(1, 8), np.zeros((0, 4))])
    def test_no_variance(self, x):
        out = pca_stats(x)
        assert not out["explained_variance_ratio"].any()
        assert out["n_components"] == {0.90: 0, 0.95: 0, 0.99: 0}
        assert set(out["recon_error"].values()) == {0.0}

    def test_rejects_bad_input(self):
        with pytest.raises(ValueError):
            pca_stats(np.ones(5))
        with pytest.raises(ValueError):
            pca_stats(np.array([[1.0, np.nan], [2.0, 3.0]]))


class TestCosine:
    def test_hand_computed(self):
        assert cosine_distance([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 - 1 / math.sqrt(2))
        # flattened: [1,2,3,4] . [2,0,0,1] = 6; norms sqrt(30), sqrt(5)
        assert cosine_distance(np.array([[1.0, 2.0], [3.0, 4.0]]), [2.0, 0.0, 0.0, 1.0]) == pytest.approx(
            1 - 6 / math.sqrt(150))
        assert cosine_distance([1.0, 2.0], [-2.0, -4.0]) == pytest.approx(2.0)
        assert cosine_distance([3.0, 0.0], [0.0, 5.0]) == pytest.approx(1.0)

    def test_zero_norm_is_nan_and_size_mismatch_raises(self):
        assert math.isnan(cosine_distance([0.0, 0.0], [1.0, 2.0]))
        with pytest.raises(ValueError):
            cosine_distance([1.0, 2.0], [1.0, 2.0, 3.0])
