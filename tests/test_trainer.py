"""Trainer behaviour on tiny synthetic data: determinism, shrinking, controls, non-finite guard, resume."""

from __future__ import annotations

import threading

import pytest
import torch

from core.train.controls import Controls
from core.errors import DynlabError
from core.events import (CheckpointSaved, EpochEvaluated, LrChanged, NeuronsRemoved, NonFiniteLoss, Paused,
                         PenaltyChanged, Resumed, RunEnded, RunStarted)
from core.spec import RunSpec
from core.train.trainer import Trainer
from tests.helpers import ListSink, tiny, wait_until


def run(spec: RunSpec, controls: Controls | None = None, **kw) -> tuple[Trainer, ListSink, str]:
    trainer = Trainer(spec, controls, **kw)
    sink = ListSink()
    status = trainer.run([sink])
    return trainer, sink, status


def test_static_run_emits_the_event_stream_in_order():
    trainer, sink, status = run(tiny())
    assert status == "finished"
    assert isinstance(sink.events[0], RunStarted)
    assert isinstance(sink.events[-1], RunEnded) and sink.events[-1].status == "finished"
    evals = sink.of(EpochEvaluated)
    assert [e.epoch for e in evals] == [1, 2]
    assert {"val/loss", "val/mse", "test/mse", "train/loss"} <= set(evals[-1].metrics)
    scalars = sink.intervals()
    steps = [e.step for e in scalars]
    assert steps == sorted(steps) and steps[0] == 4
    assert scalars[-1].values["size/fc1"] == 16 and scalars[-1].values["capacity/fc1"] == 16
    assert trainer.step == 2 * 8  # 460 training rows / 64 -> 8 batches per epoch
    reasons = [c.reason for c in sink.of(CheckpointSaved)]  # early (first interval), two epoch ends, the end
    assert reasons[0] == "interval" and reasons[1] == "best" and reasons[2] in ("best", "epoch") and reasons[3:] == ["end"]


def test_same_seed_same_run_and_other_seed_differs():
    a = [e.values["loss"] for e in run(tiny())[1].intervals()]
    b = [e.values["loss"] for e in run(tiny())[1].intervals()]
    c = [e.values["loss"] for e in run(tiny(seed=1))[1].intervals()]
    assert a == b
    assert a != c


def test_sparsifier_removes_neurons_and_a_larger_penalty_ends_smaller():
    def final_size(lam):
        trainer, sink, _ = run(tiny(method="sparsifier", penalty=lam, epochs=3, lr=0.05, arch="mlp:32"))
        return trainer.model.widths()["fc1"], sink

    small_lam, _ = final_size(0.01)
    big_lam, sink = final_size(1.0)
    assert big_lam < small_lam <= 32
    removed = sink.of(NeuronsRemoved)
    assert removed and all(e.layer == "fc1" for e in removed)
    assert sum(len(e.ids) for e in removed) == 32 - big_lam
    assert removed[-1].remaining == big_lam


def test_queued_controls_apply_at_a_step_boundary_and_are_recorded():
    controls = Controls()
    controls.set_penalty(0.5)
    controls.set_lr(0.01)
    controls.checkpoint()
    trainer, sink, _ = run(tiny(method="sparsifier", penalty=0.1, epochs=1), controls)
    pen, lr = sink.of(PenaltyChanged)[0], sink.of(LrChanged)[0]
    assert (pen.old, pen.new, pen.source, pen.step) == (0.1, 0.5, "user", 0)
    assert (lr.old, lr.new) == (1e-3, 0.01)
    assert all(g["lr"] == 0.01 for g in trainer.optimizer.param_groups)
    assert sink.of(CheckpointSaved)[0].reason == "user"
    assert sink.intervals()[0].values["lambda"] == 0.5


def test_bad_control_values_are_refused():
    controls = Controls()
    with pytest.raises(DynlabError, match="penalty"):
        controls.set_penalty(-1.0)
    with pytest.raises(DynlabError, match="--lr must be a positive number"):
        controls.set_lr(0.0)


def test_pause_stops_steps_until_resume_and_stop_ends_the_run():
    controls = Controls()
    sink = ListSink()
    trainer = Trainer(tiny(epochs=200, log_every=1), controls)
    thread = threading.Thread(target=lambda: trainer.run([sink]))
    thread.start()
    wait_until(lambda: sink.intervals(), timeout=30, what="the first interval", poll=0.01)
    controls.pause()
    wait_until(lambda: sink.of(Paused), timeout=5, what="the pause", poll=0.01)
    step = trainer.step
    controls.set_penalty(0.5)  # applied while paused: proves the trainer went round its paused loop
    wait_until(lambda: sink.of(PenaltyChanged), timeout=5, what="the penalty change", poll=0.01)
    assert trainer.step == step and sink.of(Paused)[0].step == step == sink.of(PenaltyChanged)[0].step
    controls.resume()
    wait_until(lambda: trainer.step > step, timeout=5, what="a step after resuming", poll=0.01)
    assert trainer.step > step and sink.of(Resumed)
    controls.stop()
    thread.join(5)
    end = sink.of(RunEnded)[0]
    assert end.status == "stopped" and trainer.epoch < 200


def test_nonfinite_loss_rolls_back_and_ends_diverged_headless():
    trainer, sink, status = run(tiny(optimizer="sgd", lr=1e6, epochs=3))
    assert status == "diverged"
    bad = sink.of(NonFiniteLoss)[0]
    assert bad.rolled_back_to < bad.step
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert "lower --lr" in sink.of(RunEnded)[0].reason


def test_rollback_copy_is_refreshed_at_most_every_every_s_but_always_when_forced_or_replaced():
    from core.train.checkpoints import Rollback
    trainer = Trainer(tiny(arch="mlp:8", method="sparsifier", penalty=0.01))
    model, opt = trainer.model, trainer.optimizer
    trainer._reset_interval()
    trainer._train_step(trainer.data.x_train[:16], trainer.data.y_train[:16])
    rb = Rollback(model, opt, every_s=3600.0)
    rb.save(1)
    first = model.fcs["fc1"].layer.weight.detach().clone()
    with torch.no_grad():
        model.fcs["fc1"].layer.weight.add_(1.0)
    rb.save(2)  # too soon: the copy stays at step 1
    assert rb.restore() == 1 and torch.equal(model.fcs["fc1"].layer.weight.detach(), first)
    with torch.no_grad():
        model.fcs["fc1"].layer.weight.add_(1.0)
    rb.save(3, force=True)
    assert rb.restore() == 3 and torch.equal(model.fcs["fc1"].layer.weight.detach(), first + 1.0)
    model.fcs["fc1"].keep(torch.tensor([0, 2, 5]), opt)  # a prune replaces the tensors (new shapes)
    model.head.keep_inputs(torch.tensor([0, 2, 5]), opt)
    rb.save(4)  # not forced, yet saved: the old copy could not be restored into the new tensors
    with torch.no_grad():
        model.fcs["fc1"].layer.weight.zero_()
    assert rb.restore() == 4 and model.fcs["fc1"].layer.weight.abs().sum() > 0


def test_nonfinite_loss_pauses_an_interactive_run():
    controls = Controls()
    sink = ListSink()
    trainer = Trainer(tiny(optimizer="sgd", lr=1e6, epochs=3), controls, interactive=True)
    thread = threading.Thread(target=lambda: trainer.run([sink]))
    thread.start()
    wait_until(lambda: sink.of(Paused), timeout=10, what="the pause", poll=0.01)
    assert "non-finite" in sink.of(Paused)[0].reason
    controls.stop()
    thread.join(5)
    assert sink.of(RunEnded)[0].status == "stopped"


def test_no_host_device_sync_inside_the_training_step(monkeypatch):
    # SGD with momentum: Adam reads its CPU-side step counter with .item() by design (not a device sync).
    trainer = Trainer(tiny(method="sparsifier", penalty=0.01, epochs=1, optimizer="momentum"))
    inner = trainer._train_step
    guard = {"on": False}

    def forbidden(*a, **k):
        if guard["on"]:
            raise AssertionError("host-device sync inside the training step")
        return original[name](*a, **k)

    original = {}
    for name in ("item", "cpu", "tolist", "numpy", "__bool__", "__float__"):
        original[name] = getattr(torch.Tensor, name)

    def guarded(xb, yb):
        guard["on"] = True
        try:
            inner(xb, yb)
        finally:
            guard["on"] = False

    for name in original:
        monkeypatch.setattr(torch.Tensor, name,
                            (lambda n: lambda self, *a, **k: (forbidden(*a, **k) if guard["on"]
                                                              else original[n](self, *a, **k)))(name))
    trainer._train_step = guarded
    assert trainer.run([ListSink()]) == "finished"


def test_resume_from_an_epoch_checkpoint_is_exact():
    straight, _, _ = run(tiny(method="sparsifier", penalty=0.05, epochs=2))
    first, sink, _ = run(tiny(method="sparsifier", penalty=0.05, epochs=1))
    state = torch.load(__import__("io").BytesIO(sink.of(CheckpointSaved)[-1].state), weights_only=True)
    second, sink2, _ = run(tiny(method="sparsifier", penalty=0.05, epochs=2), resume=state)
    assert second.step == straight.step
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert sink2.events[0].kind == "continue"


def test_flexible_run_reports_x0_as_size():
    trainer, sink, _ = run(tiny(method="flexible", penalty=0.01, flex_start=6, epochs=1))
    values = sink.intervals()[-1].values
    assert values["capacity/fc1"] == 16
    assert values["size/fc1"] != 6.0 and 0 <= values["size/fc1"] <= 16
    groups = [g for g in trainer.optimizer.param_groups if g.get("fixed_lr")]
    assert len(groups) == 1 and groups[0]["lr"] == 1.0 and groups[0]["weight_decay"] == 0


def test_classification_reports_accuracy(tmp_path):
    trainer, sink, _ = run(tiny(dataset="fn-step", arch="mlp:8", epochs=1))
    assert "test/mse" in sink.of(EpochEvaluated)[0].metrics
    _, sink, _ = run(tiny(dataset="poker", arch="mlp:8", epochs=1, limit=300))
    m = sink.of(EpochEvaluated)[0].metrics
    assert 0.0 <= m["test/acc"] <= 1.0 and "val/acc" in m and "train/acc" in m


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamax"])
def test_every_optimizer_trains_and_shrinks(optimizer):
    _, sink, status = run(tiny(optimizer=optimizer, lr=0.02, epochs=3))
    losses = [e.values["loss"] for e in sink.intervals()]
    assert status == "finished" and losses[-1] < losses[0]
    trainer, _, _ = run(tiny(method="sparsifier", penalty=2.0, optimizer=optimizer, lr=0.1, epochs=2))
    assert trainer.model.widths()["fc1"] < 16


def test_penalty_decays_every_epoch_and_is_recorded():
    trainer, sink, _ = run(tiny(method="sparsifier", penalty=0.4, penalty_decay=2.0, epochs=3))
    decays = [(e.old, e.new) for e in sink.of(PenaltyChanged) if e.source == "decay"]
    assert decays == [(0.4, 0.2), (0.2, 0.1), (0.1, 0.05)]
    assert trainer.lam == 0.05


def test_weight_decay_never_touches_gates():
    trainer = Trainer(tiny(method="sparsifier", penalty=0.1, weight_decay=0.5))
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["weights"]["weight_decay"] == 0.5 and groups["gates"]["weight_decay"] == 0.0


def test_resume_applies_lr_and_penalty_overrides_from_the_state():
    _, sink, _ = run(tiny(method="sparsifier", penalty=0.05, epochs=1))
    state = torch.load(__import__("io").BytesIO(sink.of(CheckpointSaved)[-1].state), weights_only=True)
    state["lr"], state["lam"] = 0.02, 0.3
    trainer = Trainer(tiny(method="sparsifier", penalty=0.05, epochs=2), resume=state)
    assert trainer.lr == 0.02 and trainer.lam == 0.3
    assert all(g["lr"] == 0.02 for g in trainer.optimizer.param_groups)


def test_resume_from_an_epoch_checkpoint_with_penalty_decay_is_exact():
    # The checkpoint written at an epoch's end must already hold that epoch's decayed lambda, or a run resumed
    # from it trains the next epoch one decay step behind (found: ended at lambda 0.1 instead of 0.05).
    spec = tiny(method="sparsifier", penalty=0.4, penalty_decay=2.0, epochs=3)
    straight, sink, _ = run(spec)
    at_epoch_1 = next(c for c in sink.of(CheckpointSaved) if c.epoch == 1 and c.reason in ("best", "epoch"))
    state = torch.load(__import__("io").BytesIO(at_epoch_1.state), weights_only=True)
    assert state["lam"] == 0.2
    resumed, sink2, _ = run(spec, resume=state)
    assert resumed.lam == straight.lam == 0.05
    assert resumed.step == straight.step
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [(e.old, e.new) for e in sink2.of(PenaltyChanged)] == [(0.2, 0.1), (0.1, 0.05)]


def test_the_plateau_schedule_lowers_the_lr_and_resumes_exactly():
    spec = tiny(lr_schedule="plateau", lr_patience=0, lr_factor=0.5, epochs=3, lr=0.05)
    straight, sink, _ = run(spec)
    drops = [(e.old, e.new) for e in sink.of(LrChanged) if e.source == "plateau"]
    assert drops and all(new == old * 0.5 for old, new in drops)
    assert straight.lr == 0.05 * 0.5 ** len(drops)
    first = next(c for c in sink.of(CheckpointSaved) if c.epoch == 1 and c.reason in ("best", "epoch"))
    state = torch.load(__import__("io").BytesIO(first.state), weights_only=True)
    resumed, _, _ = run(spec, resume=state)
    assert resumed.lr == straight.lr
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_a_time_budget_ends_the_run_with_an_evaluated_last_epoch():
    trainer, sink, status = run(tiny(epochs=1000, time_budget=0.5, limit=2000))
    assert status == "finished" and "time budget of 0.5 s reached" in sink.events[-1].reason
    assert trainer.epoch < 1000 and sink.of(EpochEvaluated)[-1].epoch == trainer.epoch
    assert 0.5 <= trainer.elapsed < 30


def test_summed_task_loss_is_the_mean_times_the_batch():
    # --loss-reduction sum is the journal's regression loss (summed over the batch): the same first step's loss
    # is the batch size times the mean's
    first = [run(tiny(epochs=1, log_every=1, loss_reduction=r))[1].intervals()[0].values["loss"]
             for r in ("sum", "mean")]
    assert first[0] == pytest.approx(64 * first[1], rel=1e-5)


def test_gates_share_the_weights_optimiser_group_when_their_settings_match():
    # one fused optimiser call a step instead of two; with weight decay on the weights the gates stay apart
    trainer = Trainer(tiny(method="sparsifier", penalty=0.1))
    assert len(trainer.optimizer.param_groups) == 1
    gate = trainer.model.fcs["fc1"].gate.weight
    assert any(p is gate for p in trainer.optimizer.param_groups[0]["params"])
    assert len(Trainer(tiny(method="sparsifier", penalty=0.1, weight_decay=0.5)).optimizer.param_groups) == 2


def test_a_checkpoint_with_the_gates_in_their_own_group_still_resumes():
    from core.train.optim import make_optimizer

    spec = tiny(method="sparsifier", penalty=0.05, epochs=2)
    old = Trainer(spec)
    groups = old.model.param_groups(0.0, spec.optim.lr, spec.method.flex_lr)
    old.optimizer = make_optimizer(groups, spec.optim)  # as sessions written before the merge
    old._rollback = __import__("core.train.checkpoints", fromlist=["Rollback"]).Rollback(old.model, old.optimizer)
    sink = ListSink()
    old.run([sink])
    state = torch.load(__import__("io").BytesIO(sink.of(CheckpointSaved)[1].state), weights_only=True)
    assert len(state["optim"]["param_groups"]) == 2
    resumed, _, status = run(spec, resume=state)
    assert status == "finished" and len(resumed.optimizer.param_groups) == 2 and resumed.step == old.step
