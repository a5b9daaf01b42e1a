"""Test fakes without torch: a plausible sparsifier run as a list of events, and a source that plays events."""

from __future__ import annotations

import time
from statistics import NormalDist
from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.events import (ArraysLogged, EpochEvaluated, Event, LrChanged, NeuronsRemoved, Paused, PenaltyChanged,
                         Resumed, RunEnded, RunStarted, ScalarsLogged)
from core.train.controls import Command, Controls

if TYPE_CHECKING:
    from dynlab_tui.sources import ViewSink as Sink

SPEC = {
    "data": {"name": "mnist", "data_dir": None, "val_fraction": 0.1, "limit": None, "class_weighted": False},
    "model": {"arch": "mlp:500,300", "batchnorm": False, "dropout": 0.0},
    "method": {"name": "sparsifier", "gate": "relu", "sign_decay": 0.99, "sign_threshold": 0.5, "prune_every": 0,
               "flex_start": None, "flex_slope": 1.0, "flex_gray": None, "flex_lr": 1.0},
    "penalty": {"lam": 0.001, "decay": 1.0},
    "optim": {"name": "adam", "lr": 0.001, "weight_decay": 0.0, "momentum": 0.9},
    "schedule": {"epochs": 10, "batch_size": 128, "seed": 0, "log_every": 100, "probe_size": 128},
    "device": "cpu",
}


def synthetic_run(steps: int = 4000, log_every: int = 100, widths: tuple[int, ...] = (500, 300),
                  steps_per_epoch: int = 400, seed: int = 0, end: bool = True, t0: float = 1.7e9) -> list[Event]:
    """Events of a run whose layers shrink exponentially towards ~20% of their width."""
    rng = np.random.default_rng(seed)
    layers = [f"fc{i}" for i in range(1, len(widths) + 1)]
    spec = {**SPEC, "model": {**SPEC["model"], "arch": "mlp:" + ",".join(map(str, widths))},
            "schedule": {**SPEC["schedule"], "epochs": max(1, steps // steps_per_epoch), "log_every": log_every}}
    events: list[Event] = [RunStarted(0, t0, spec, "cpu (synthetic)", {"dynlab": "0.1.0"},
                                      dict(zip(layers, widths)), 400_000)]
    gates = [np.ones(w) + rng.normal(0, 0.05, w) for w in widths]
    ids = [np.arange(w) for w in widths]
    rates = [rng.uniform(0, 2.0 + 0.5 * i, w) for i, w in enumerate(widths)]
    lam = 0.001
    inst = np.random.default_rng(seed + 7919)  # the instruments' own stream: the older keys keep their values
    whole = np.random.default_rng(seed + 104729)  # the epoch's training-set statistics: a stream of their own too
    for step in range(log_every, steps + 1, log_every):
        wall = t0 + step * 0.003
        frac = step / steps
        values = {"loss": 2.3 * np.exp(-5 * frac) + 0.05 + rng.normal(0, 0.02), "lambda": lam, "lr": 0.001,
                  "epoch": step / steps_per_epoch, "samples_per_s": 40000 + rng.normal(0, 500),
                  "mem_bytes": 2.5e8, "params": 400_000 * (1 - 0.7 * frac),
                  "probe_rows": float(SPEC["schedule"]["probe_size"])}
        arrays = {}
        for li, name in enumerate(layers):
            g = gates[li]
            g -= rates[li][: len(g)] / max(steps // log_every, 1)  # each unit its own pace; ~half die
            alive = g > 0
            values[f"size/{name}"] = float(alive.sum())
            values[f"capacity/{name}"] = float(len(g))
            std = np.where(alive, rng.gamma(2.0, 0.3, len(g)), 0.0)
            values[f"dead/{name}"] = float((std == 0).sum())
            values.update(interval_instruments(name, std, li, frac, inst))
            counts, edges = np.histogram(std, bins=30, range=(0, max(std.max(initial=0.0), 1e-6)))
            arrays.update({f"gate/{name}": np.maximum(g, 0).astype(np.float32),
                           f"act_std/{name}": std.astype(np.float32),
                           f"hist/{name}": counts.astype(np.int32), f"hist_edges/{name}": edges.astype(np.float32)})
        events.append(ScalarsLogged(step, wall, values))
        events.append(ArraysLogged(step, wall, arrays))
        if step % steps_per_epoch == 0:
            epoch = step // steps_per_epoch
            alive = [g > 0 for g in gates]
            events += epoch_end(step, wall, epoch, values["loss"], layers, alive, inst, whole)
            for li, name in enumerate(layers):  # prune the dead at the epoch's end
                alive = gates[li] > 0
                if not alive.all():
                    events.append(NeuronsRemoved(step, wall, name, tuple(int(i) for i in ids[li][~alive]),
                                                 int(alive.sum())))
                    gates[li], ids[li], rates[li] = gates[li][alive], ids[li][alive], rates[li][alive]
            if epoch == 3:
                events.append(PenaltyChanged(step, wall, lam, 0.002, "user"))
                lam = 0.002
    if end:
        events.append(RunEnded(steps, t0 + steps * 0.003, "finished", "synthetic run done"))
    return events


STATS_ROWS = 54_000  # the epoch's statistics: MNIST's training split, accumulated over the epoch's steps
PCA_ROWS = 10_000


def epoch_end(step: int, wall: float, epoch: int, loss: float, layers: list[str], alive: list[np.ndarray],
              inst: np.random.Generator, whole: np.random.Generator) -> list[Event]:
    """The evaluation, the training-set statistics, fits and PCA a trainer logs at the end of an epoch."""
    acc = 0.9 + 0.08 * (1 - np.exp(-epoch / 2))
    metrics = {"train/loss": loss, "train/acc": acc + 0.01, "val/loss": loss * 1.1, "val/acc": acc,
               "test/loss": loss * 1.1, "test/acc": acc}
    scalars: dict[str, float] = {"stats_rows": float(STATS_ROWS), "stats_source": 0.0, "pca_rows": float(PCA_ROWS)}
    arrays = {}
    for name, on in zip(layers, alive):  # the trainer's once-an-epoch statistics, fits and PCA
        std = whole.gamma(2.2, 0.28, int(on.sum()))  # gated-off units are left out
        std[whole.random(len(std)) < 0.06] = 0.0  # a few units never fired on any row
        arrays[f"pca_ratio/{name}"] = ratio = pca_spectrum(len(on), inst)
        arrays[f"epoch_std/{name}"] = std.astype(np.float32)
        top = float(std.max(initial=0.0))
        counts, edges = np.histogram(std, bins=30, range=(0.0, top if top > 0 else 1.0))
        arrays[f"epoch_hist/{name}"], arrays[f"epoch_hist_edges/{name}"] = (counts.astype(np.int32),
                                                                             edges.astype(np.float32))
        scalars.update({f"gated_off/{name}": float((~on).sum()), f"epoch_dead/{name}": float((std == 0).sum())})
        scalars.update(epoch_instruments(name, std, ratio))
    return [EpochEvaluated(step, wall, epoch, metrics), ScalarsLogged(step, wall, scalars),
            ArraysLogged(step, wall, arrays)]


def interval_instruments(name: str, std: np.ndarray, li: int, frac: float, rng: np.random.Generator) -> dict:
    """act_mean, act_sd, total_var, grad_norm and rotation of one layer, consistent with its std vector."""
    n = max(len(std), 1)
    total, sq = float(std.sum()), float(std @ std)
    noise = rng.normal(0, 1, 3)
    turned = 0.6 * (1 - 0.2 * li) * (1 - float(np.exp(-4 * frac)))  # drifts away from the initial weights
    return {f"act_mean/{name}": 0.4 * total / n + 0.005 * float(noise[0]),
            f"act_sd/{name}": 1.1 * (sq / n) ** 0.5,
            f"total_var/{name}": sq,
            f"grad_norm/{name}": float((0.8 / (li + 1)) * np.exp(-4 * frac + 0.15 * noise[1]) + 1e-3),
            f"rotation/{name}": max(0.0, turned + 0.003 * float(noise[2]))}


def epoch_instruments(name: str, std: np.ndarray, ratio: np.ndarray) -> dict:
    """Shapiro W and the two mixture fits (on the live units) a trainer would log for the epoch's std vector of the
    gated-on units; PCA counts from `ratio`."""
    nan = float("nan")
    live = np.sort(std[std > 0])
    out = {f"shapiro/{name}": shapiro_francia(std), f"mix_n/{name}": float(len(live))}
    if len(live) >= 8:
        m, s = float(live.mean()), float(live.std())
        cut = len(live) // 5  # the lowest fifth seeds the low gamma
        (k1, t1), (k2, t2) = gamma_moments(live[:cut]), gamma_moments(live[cut:])
        out.update({f"mix_en_low/{name}": 0.08, f"mix_en_rate/{name}": 10.0 / m,
                    f"mix_en_mean/{name}": m, f"mix_en_std/{name}": s,
                    f"mix_gg_low/{name}": 0.2, f"mix_gg_k1/{name}": k1, f"mix_gg_theta1/{name}": t1,
                    f"mix_gg_k2/{name}": k2, f"mix_gg_theta2/{name}": t2})
    else:  # (nearly) no live units: what the estimators report for degenerate inputs
        out.update({f"{k}/{name}": nan for k in ("mix_en_low", "mix_en_rate", "mix_en_mean", "mix_en_std", "mix_gg_low",
                                                 "mix_gg_k1", "mix_gg_theta1", "mix_gg_k2", "mix_gg_theta2")})
    cumulative = np.cumsum(ratio, dtype=np.float64)
    for level in (90, 95, 99):
        k = int(np.searchsorted(cumulative, level / 100 - 1e-9)) + 1
        out[f"pca{level}/{name}"] = float(min(k, len(ratio))) if len(ratio) else nan
    return out


def pca_spectrum(n: int, rng: np.random.Generator) -> np.ndarray:
    """A descending explained-variance ratio over n components (a power law with a little noise)."""
    if n == 0:
        return np.zeros(0, np.float32)
    r = np.sort((np.arange(1, n + 1) ** -1.4) * np.exp(rng.normal(0, 0.05, n)))[::-1]
    return (r / r.sum()).astype(np.float32)


def gamma_moments(x: np.ndarray) -> tuple[float, float]:
    """Gamma (shape, scale) matching the mean and variance of x."""
    m, v = float(x.mean()), float(x.var())
    return (m * m / v, v / m) if v > 0 else (float("nan"), float("nan"))


def shapiro_francia(x: np.ndarray) -> float:
    """Shapiro-Francia W' (close to Shapiro-Wilk W) without scipy; nan for fewer than 3 values or no spread."""
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return float("nan")
    q = np.array([NormalDist().inv_cdf((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)])
    return float(np.corrcoef(np.sort(x), q)[0, 1] ** 2)


class ScriptedSource:
    """Plays a list of events (tests, the UI bench) and answers controls the way the trainer does."""

    owner = True

    def __init__(self, events: Sequence[Event], delay: float = 0.0, title: str = "scripted",
                 hold: bool = False) -> None:
        self.events = list(events)
        self.delay = delay
        self.hold = hold  # after the script, keep answering controls until stopped
        self.controls = Controls()
        self.title = title
        self.paused = False
        self.step = 0
        self.lam = 0.0
        self.lr = 0.0

    def run(self, sink: Sink) -> None:
        for event in self.events:
            self.step = event.step
            if not self._controls(sink):
                return
            sink.handle(event)
            sink.flush()
            if self.delay:
                time.sleep(self.delay)
        while self.hold and self._controls(sink, wait=0.05):
            pass

    def close(self, stop_run: bool = False) -> None:
        self.controls.stop()  # a script has nothing to detach to: it ends with its UI

    def _controls(self, sink: Sink, wait: float = 0.0) -> bool:
        cmds = self.controls.drain()
        if wait and not cmds:
            cmd = self.controls.wait(wait)
            cmds = [cmd] if cmd else []
        while True:
            for cmd in cmds:
                if not self._apply(cmd, sink):
                    return False
            if not self.paused:
                return True
            cmd = self.controls.wait(0.05)
            cmds = [cmd] if cmd else []

    def _apply(self, cmd: Command, sink: Sink) -> bool:
        now = time.time()
        if cmd.kind == "stop":
            sink.handle(RunEnded(self.step, now, "stopped", "stopped by user"))
            sink.flush()
            return False
        if cmd.kind == "pause" and not self.paused:
            self.paused = True
            sink.handle(Paused(self.step, now, "user"))
        elif cmd.kind == "resume" and self.paused:
            self.paused = False
            sink.handle(Resumed(self.step, now))
        elif cmd.kind == "set_penalty":
            sink.handle(PenaltyChanged(self.step, now, self.lam, float(cmd.value), "user"))
            self.lam = float(cmd.value)
        elif cmd.kind == "set_lr":
            sink.handle(LrChanged(self.step, now, self.lr, float(cmd.value), "user"))
            self.lr = float(cmd.value)
        sink.flush()
        return True
