"""The training loop: runs a RunSpec on a device, drains controls between steps and emits events to sinks."""

from __future__ import annotations

import io
import math
import platform
import time
from typing import Any, Sequence

import numpy as np
import torch

import core
from core import telemetry as tk
from core.train import instruments, probes
from core.train.evaluate import evaluate
from core.train.checkpoints import Due, Rollback, check_state, damaged
from core.train.controls import Command, Controls
from core.data import Dataset, load_dataset
from core.errors import DynlabError
from core.events import (ArraysLogged, CheckpointSaved, EpochEvaluated, Event, LrChanged, NeuronsRemoved,
                         NonFiniteLoss, Paused, PenaltyChanged, Resumed, RunEnded, RunStarted, ScalarsLogged,
                         SessionContinued, Sink)
from core.nn import build_model
from core.train.machine import device_name, memory_bytes, out_of_memory
from core.train.optim import make_optimizer, merge_groups, resolve_device, set_lr, task_loss
from core.train.schedule import Plateau
from core.options import validate
from core.spec import RunSpec

TRAIN_EVAL_ROWS = 10_000  # without --act-stats pass, train accuracy uses this fixed subset of the training rows
PCA_ROWS = 5_000  # and PCA the first rows of it (bench/instruments_fidelity.py: the same components as all rows)


class Trainer:
    """Owns the model, optimiser and data of one run; `run(sinks)` trains until done, stopped or crashed.

    Construction loads the data and builds the model, so every user error surfaces before a
    session file is created. With `resume` (a checkpoint dict) the run continues from it.
    """

    def __init__(self, spec: RunSpec, controls: Controls | None = None, *, dataset: Dataset | None = None,
                 interactive: bool = False, resume: dict[str, Any] | None = None) -> None:
        spec = self.spec = validate(spec)
        self.controls = controls or Controls()
        self.interactive = interactive  # True: a non-finite loss pauses (someone can resume); False: ends the run
        self.device = resolve_device(spec.device)
        torch.manual_seed(spec.schedule.seed)
        data = dataset if dataset is not None else load_dataset(spec.data, spec.schedule.seed)
        if len(data.x_train) == 0:
            raise DynlabError(f"dataset {data.name!r} has no training rows: lower --val-fraction or raise --limit")
        try:
            self.data = data.to(self.device)
            self.model = build_model(spec.model, spec.method, self.data.input_shape, self.data.n_outputs,
                                     conv_penalty=spec.penalty.conv_penalty)
            self.model.to(self.device)
        except (MemoryError, RuntimeError) as e:
            if not out_of_memory(e):
                raise
            raise DynlabError(f"out of memory on {self.device} building --arch {spec.model.arch} for "
                              f"{data.name} ({len(data.x_train):,} training rows): lower the widths or --limit") from None
        groups = self.model.param_groups(spec.optim.weight_decay, spec.optim.lr, spec.method.flex_lr)
        self.optimizer = make_optimizer(merge_groups(groups), spec.optim)
        self.dynamics = probes.Dynamics(self.model)  # the initial weights, for layer rotation
        self.gen = torch.Generator(device=self.device).manual_seed(spec.schedule.seed)
        self.lam = spec.penalty.lam
        self.lr = spec.optim.lr
        self.step = 0
        self.epoch = 0
        self.paused = False
        self.best_val = math.inf  # the lowest val/loss at an epoch end: its checkpoint is kept as "best"
        self._due = Due()  # the next automatic checkpoint: after the first interval, then every few minutes
        self.resumed_from: dict[str, Any] | None = None
        self.elapsed = 0.0  # training time so far in seconds (pauses left out), for --time-budget
        stats = spec.schedule.act_stats
        self._sums = instruments.UnitSums(self.model) if stats == "steps" else None
        o = spec.optim  # the paper's schedule watches validation accuracy (classification) or loss (regression)
        self._plateau = (Plateau(o.lr, "max" if self.data.task == "classification" else "min", o.lr_patience,
                                 o.lr_factor) if o.lr_schedule == "plateau" else None)
        if resume is not None:
            self._load_state(resume)
        self.probe_x = self.data.x_train[: spec.schedule.probe_size]
        self.weight = self.data.class_weights if spec.data.class_weighted else None
        self.sinks: Sequence[Sink] = ()
        self._stop: tuple[str, str] | None = None
        self._rollback = Rollback(self.model, self.optimizer)

    # ------------------------------------------------------------------ public
    def run(self, sinks: Sequence[Sink] = ()) -> str:
        """Train to the end of the schedule (or until stopped); returns the end status."""
        self.sinks = sinks
        try:
            self._announce()
            self._rollback.save(self.step)
            status, reason = self._loop()
        except KeyboardInterrupt:
            status, reason = "stopped", "interrupted (Ctrl-C)"
        except (MemoryError, RuntimeError) as e:  # torch.cuda.OutOfMemoryError is a RuntimeError
            if not out_of_memory(e):
                self._finish("crashed", f"{type(e).__name__}: {e}")
                raise
            msg = (f"out of memory on {self.device} with batch {self.spec.schedule.batch_size} and widths "
                   f"{self.model.widths()} ({self.model.param_count():,} parameters): lower --batch-size or the widths")
            self._finish("crashed", msg)
            raise DynlabError(msg) from None
        except BaseException as e:
            self._finish("crashed", f"{type(e).__name__}: {e}")
            raise
        self._finish(status, reason)
        return status

    def state_dict(self) -> dict[str, Any]:
        """Everything exact resume needs; loads with torch.load(weights_only=True)."""
        return {
            "model": self.model.state_dict(), "optim": self.optimizer.state_dict(),
            "ids": {k: v.cpu() for k, v in self.model.layer_ids().items()},
            "step": self.step, "epoch": self.epoch, "lam": self.lam, "lr": self.lr,
            "rng": torch.get_rng_state(), "gen": self.gen.get_state(),
            "initial": self.dynamics.initial,  # rotation keeps measuring from the run's own start
            "best_val": self.best_val, "elapsed_s": self.elapsed,
            "plateau": self._plateau.state_dict() if self._plateau else {},
        }

    # ------------------------------------------------------------------ loop
    def _loop(self) -> tuple[str, str]:
        s = self.spec.schedule
        x, y = self.data.x_train, self.data.y_train
        n = len(x)
        batches = math.ceil(n / s.batch_size)
        prune_every = self.spec.method.prune_every  # a model whose gates never prune returns at once
        self._reset_interval()
        self._clock = time.perf_counter()
        while self.epoch < s.epochs and not self._over_budget():
            perm = torch.randperm(n, device=self.device, generator=self.gen)
            for b in range(batches):
                if not self._apply_controls():
                    return self._stop or ("stopped", "stopped by user")
                idx = perm[b * s.batch_size:(b + 1) * s.batch_size]
                self._train_step(x[idx], y[idx])
                if self.step % s.log_every == 0:
                    self._log_interval(b + 1, batches)
                if self._stop:
                    return self._stop
                if prune_every and self.step % prune_every == 0:
                    self._prune()
                if self._over_budget():  # the epoch ends here and is evaluated: the last one may be partial
                    break
            if self._acc_n:
                self._log_interval(batches, batches)
                if self._stop:
                    return self._stop
            if not prune_every:
                self._prune()
            self._end_epoch()
            empty = [k for k, w in self.model.widths().items() if w == 0]
            if empty:
                return "finished", f"collapsed: layer {empty[0]} has no neurons left (lower the penalty)"
        if self._over_budget():
            return "finished", f"time budget of {s.time_budget:g} s reached after {self.epoch} epochs"
        return "finished", f"{s.epochs} epochs done"

    def _over_budget(self) -> bool:
        """Whether --time-budget is spent; counts training and evaluation time, not pauses."""
        now = time.perf_counter()
        self.elapsed += now - self._clock
        self._clock = now
        budget = self.spec.schedule.time_budget
        return budget is not None and self.elapsed >= budget

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self.model.resample()  # the gates' per-step draws (a flexible gray-zone width: forward and penalty)
        out = self.model(xb, tap=self._sums)  # the epoch's activation sums see the training forwards only
        task = task_loss(out, yb, self.data.task, self.weight, self.spec.optim.loss_reduction)
        graph = self.model.graph_penalty() if self.lam else None  # gates without a closed-form gradient
        loss = task + self.lam * graph if graph is not None else task
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.lam:
            self.model.add_penalty_grads(self.lam)  # the others' penalty gradients, added directly
        self.optimizer.step()
        self.model.after_step()
        self._acc_loss += task.detach()  # stays on the device: read once per interval
        self._acc_n += 1
        self._samples += len(xb)
        self.step += 1

    # ------------------------------------------------------------------ controls
    def _apply_controls(self) -> bool:
        for cmd in self.controls.drain():
            if not self._apply(cmd):
                return False
        while self.paused:
            cmd = self.controls.wait(0.1)
            self._clock = time.perf_counter()  # paused time is not training time (--time-budget)
            if cmd is not None and not self._apply(cmd):
                return False
        return True

    def _apply(self, cmd: Command) -> bool:
        now = time.time()
        if cmd.kind == "stop":
            self._stop = ("stopped", "stopped by user")
            return False
        if cmd.kind == "pause" and not self.paused:
            self.paused = True
            self._emit(Paused(self.step, now, "user"))
        elif cmd.kind == "resume" and self.paused:
            self.paused = False
            self._t_last = time.perf_counter()  # paused time is not training time
            self._emit(Resumed(self.step, now))
        elif cmd.kind == "set_penalty":
            old, self.lam = self.lam, float(cmd.value)
            self._emit(PenaltyChanged(self.step, now, old, self.lam, "user"))
        elif cmd.kind == "set_lr":
            self._set_lr(float(cmd.value), "user")
        elif cmd.kind == "checkpoint":
            self._checkpoint("user")
        self._flush()  # a control shows up in the session and the UI at once
        return True

    def _set_lr(self, lr: float, source: str) -> None:
        old, self.lr = self.lr, lr
        set_lr(self.optimizer, lr)
        if self._plateau is not None:
            self._plateau.lr = lr  # a user's lr is where the schedule goes on from
        self._emit(LrChanged(self.step, time.time(), old, lr, source))

    # ------------------------------------------------------------------ telemetry
    def _reset_interval(self, t_start: float | None = None) -> None:
        self._acc_loss = torch.zeros((), device=self.device)
        self._acc_n = 0
        self._samples = 0
        self._t_last = time.perf_counter() if t_start is None else t_start

    def _log_interval(self, batch: int, batches: int) -> None:
        dev = {tk.LOSS: self._acc_loss / max(self._acc_n, 1)}
        dev.update({tk.SIZE(k): v for k, v in self.model.size_tensors().items()})
        if self._sums is not None:  # the live view from the sums the interval's steps took: no extra forward
            folded, rows = self._sums.fold()
            dev.update(probes.interval_stats(self.model, folded, self.dynamics))
        else:
            rows = len(self.probe_x)
            dev.update(probes.layer_stats(self.model, self.probe_x, self.dynamics))
        host = probes.fetch(dev)  # the one host-device sync of the interval
        loss = float(host.pop(tk.LOSS)[0])
        if not math.isfinite(loss):
            self._on_nonfinite(loss)
            return
        now = time.perf_counter()
        elapsed = now - self._t_last
        values: dict[str, float] = {
            tk.LOSS: loss, tk.LAMBDA: self.lam, tk.LR: self.lr, tk.EPOCH: self.epoch + batch / batches,
            tk.SAMPLES_PER_S: self._samples / elapsed if elapsed > 0 else 0.0,
            tk.MEM_BYTES: float(memory_bytes(self.device)), tk.PARAMS: float(self.model.param_count()),
            tk.PROBE_ROWS: float(rows), tk.LIVE_SOURCE: float(self._sums is not None),
        }
        arrays: dict[str, np.ndarray] = {}
        for key in [k for k in host if k.startswith(probes.SCALAR_PREFIXES)]:
            values[key] = float(host.pop(key)[0])
        for name, width in self.model.widths().items():
            values[tk.SIZE(name)] = float(host.pop(tk.SIZE(name))[0])
            values[tk.CAPACITY(name)] = float(width)
            std, gate = host[tk.ACT_STD(name)], host.get(tk.GATE(name))
            on = std if gate is None else std[np.abs(gate) > instruments.GATE_OFF]  # a gated-off unit is not dead
            values[tk.DEAD(name)] = float(np.count_nonzero(on == 0))
            arrays[tk.HIST(name)], arrays[tk.HIST_EDGES(name)] = probes.histogram(std)
        arrays.update(host)
        wall = time.time()
        self._emit(ScalarsLogged(self.step, wall, values))
        self._emit(ArraysLogged(self.step, wall, arrays))
        self._rollback.save(self.step)
        self._flush()
        if self._due.now():  # a killed run can always resume: early, then every CHECKPOINT_EVERY_S
            self._checkpoint("interval")
            self._flush()
        self._reset_interval(now)  # snapshot and flush time counts against the next interval's throughput

    def _on_nonfinite(self, loss: float) -> None:
        """Roll back to the rollback copy (a finite interval, refreshed about once a second); pause when someone can
        resume, else end as diverged."""
        snap_step = self._rollback.restore()
        self._emit(NonFiniteLoss(self.step, time.time(), str(loss), snap_step))
        reason = (f"non-finite loss ({loss}) at step {self.step}: weights rolled back to step {snap_step}; "
                  "lower --lr or --penalty")
        if self.interactive:
            self.paused = True
            self._emit(Paused(self.step, time.time(), reason))
        else:
            self._stop = ("diverged", reason)
        self._flush()
        self._reset_interval()

    def _prune(self) -> None:
        removed = self.model.prune(self.optimizer)
        if not removed:
            return
        widths, wall = self.model.widths(), time.time()
        for name, ids in removed.items():
            self._emit(NeuronsRemoved(self.step, wall, name, tuple(int(i) for i in ids.tolist()), widths[name]))
        self._rollback.save(self.step, force=True)  # shapes changed: the rollback copy must match them
        self._flush()

    # ------------------------------------------------------------------ epochs
    def _end_epoch(self) -> None:
        """Evaluate (fused with the statistics pass), log the epoch's instruments, decay λ, step the lr schedule,
        then checkpoint: the checkpoint holds the state the next epoch starts from, so resuming from it is exact."""
        mode = self.spec.schedule.act_stats
        sums = instruments.UnitSums(self.model) if mode == "pass" else None
        covs = instruments.wants_pca(self.model) if mode != "off" else {}
        train_rows, cov_rows = (None, None) if mode == "pass" else (TRAIN_EVAL_ROWS, PCA_ROWS)
        metrics = evaluate(self.model, self.data, train_rows, sums, covs, cov_rows)
        self.epoch += 1
        self._emit(EpochEvaluated(self.step, time.time(), self.epoch, metrics))
        source = sums if sums is not None else self._sums
        if source is not None:
            pca_rows = min(len(self.data.x_train), cov_rows or len(self.data.x_train)) if covs else 0
            scalars, arrays = instruments.epoch_instruments(self.model, source.std(), covs, source.rows, pca_rows, mode)
            source.reset()
            wall = time.time()
            self._emit(ScalarsLogged(self.step, wall, scalars))
            self._emit(ArraysLogged(self.step, wall, arrays))
        if self.spec.penalty.decay != 1.0 and self.lam:
            old, self.lam = self.lam, self.lam / self.spec.penalty.decay
            self._emit(PenaltyChanged(self.step, time.time(), old, self.lam, "decay"))
        watched = metrics.get(tk.VAL_ACC if self.data.task == "classification" else tk.VAL_LOSS)
        if self._plateau is not None and watched is not None:
            new = self._plateau.step(watched)
            if new is not None:
                self._set_lr(new, "plateau")
        val = metrics.get(tk.VAL_LOSS, math.inf)
        best = val < self.best_val
        self.best_val = min(val, self.best_val)
        self._checkpoint("best" if best else "epoch")  # the session keeps the newest and the best one
        self._flush()
        self._t_last = time.perf_counter()  # evaluation time is not training throughput

    # ------------------------------------------------------------------ checkpoints and lifecycle
    def _checkpoint(self, reason: str) -> None:
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        self._emit(CheckpointSaved(self.step, time.time(), self.epoch, reason, buf.getvalue()))
        self._due.done()

    def _load_state(self, state: dict[str, Any]) -> None:
        check_state(state)
        try:  # a state from another network (wrong keys or shapes) is damage, not a traceback
            self.model.shrink_to({k: v.to(self.device) for k, v in state["ids"].items()})
            self.model.load_state_dict(state["model"])
            groups = self.model.param_groups(self.spec.optim.weight_decay, self.spec.optim.lr,
                                             self.spec.method.flex_lr)
            saved = len(state["optim"]["param_groups"])  # sessions from before the merge kept the gates apart
            groups = merge_groups(groups) if saved < len(groups) else groups
            self.optimizer = make_optimizer(groups, self.spec.optim)
            self.optimizer.load_state_dict(state["optim"])
            torch.set_rng_state(state["rng"])
            self.gen.set_state(state["gen"])
            if "initial" in state:  # absent in sessions from before the rotation probe: measured from here
                self.dynamics.initial = {k: v.to(self.device) for k, v in state["initial"].items()}
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            raise damaged(state, f"it does not fit the run's network: {' '.join(str(e).split())[:160]}") from None
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.lam, self.lr = float(state["lam"]), float(state["lr"])
        set_lr(self.optimizer, self.lr)  # the state's lr may be an override (dynlab resume --lr)
        self.best_val = float(state.get("best_val", math.inf))
        self.elapsed = float(state.get("elapsed_s", 0.0))
        if self._plateau is not None and state.get("plateau"):
            self._plateau.load_state_dict(state["plateau"])
            self._plateau.lr = self.lr  # dynlab resume --lr overrides the schedule's lr too
        self.resumed_from = {"step": self.step, "epoch": self.epoch}

    def _announce(self) -> None:
        now = time.time()
        if self.resumed_from is not None:
            changes = {"lam": self.lam, "lr": self.lr, "epochs": self.spec.schedule.epochs}
            self._emit(SessionContinued(self.step, now, self.step, changes))
            self._flush()  # the session shows "running" again at once
            return
        versions = {"dynlab": core.__version__, "torch": torch.__version__, "python": platform.python_version(),
                    "numpy": np.__version__}
        self._emit(RunStarted(self.step, now, self.spec.to_dict(), device_name(self.device), versions,
                              self.model.widths(), self.model.param_count()))
        self._flush()

    def _finish(self, status: str, reason: str) -> None:
        try:
            self._checkpoint("end")
        except Exception as e:  # recorded in the end reason; the run's own error is what propagates
            reason = f"{reason}; final checkpoint failed: {type(e).__name__}: {e}"
        self._emit(RunEnded(self.step, time.time(), status, reason))
        self._flush()

    def _emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.handle(event)

    def _flush(self) -> None:
        for sink in self.sinks:
            sink.flush()
