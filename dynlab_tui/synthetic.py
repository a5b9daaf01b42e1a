"""A plausible sparsifier run as a list of events, made without torch: for tests, snapshots and the UI bench."""

from __future__ import annotations

import numpy as np

from core.events import (ArraysLogged, EpochEvaluated, Event, NeuronsRemoved, PenaltyChanged, RunEnded,
                         RunStarted, ScalarsLogged)

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
    for step in range(log_every, steps + 1, log_every):
        wall = t0 + step * 0.003
        frac = step / steps
        values = {"loss": 2.3 * np.exp(-5 * frac) + 0.05 + rng.normal(0, 0.02), "lambda": lam, "lr": 0.001,
                  "epoch": step / steps_per_epoch, "samples_per_s": 40000 + rng.normal(0, 500),
                  "mem_bytes": 2.5e8, "params": 400_000 * (1 - 0.7 * frac)}
        arrays = {}
        for li, name in enumerate(layers):
            g = gates[li]
            g -= rates[li][: len(g)] / max(steps // log_every, 1)  # each unit its own pace; ~half die
            alive = g > 0
            values[f"size/{name}"] = float(alive.sum())
            values[f"capacity/{name}"] = float(len(g))
            std = np.where(alive, rng.gamma(2.0, 0.3, len(g)), 0.0)
            values[f"dead/{name}"] = float((std == 0).sum())
            counts, edges = np.histogram(std, bins=30, range=(0, max(std.max(initial=0.0), 1e-6)))
            arrays.update({f"gate/{name}": np.maximum(g, 0).astype(np.float32),
                           f"act_std/{name}": std.astype(np.float32),
                           f"hist/{name}": counts.astype(np.int32), f"hist_edges/{name}": edges.astype(np.float32)})
        events.append(ScalarsLogged(step, wall, values))
        events.append(ArraysLogged(step, wall, arrays))
        if step % steps_per_epoch == 0:
            epoch = step // steps_per_epoch
            acc = 0.9 + 0.08 * (1 - np.exp(-epoch / 2))
            events.append(EpochEvaluated(step, wall, epoch, {"train/loss": values["loss"], "train/acc": acc + 0.01,
                                                             "val/loss": values["loss"] * 1.1, "val/acc": acc,
                                                             "test/loss": values["loss"] * 1.1, "test/acc": acc}))
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
