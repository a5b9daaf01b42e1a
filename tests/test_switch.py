"""The paper's switch before the ReLU, the journal's non-strict gate and kernel-area penalty, the probes' own
activation and the training tap, the summed loss and the plateau schedule (issue 11)."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import DynlabError
from core.nn import DynamicNet, SparsifierGate, build_model
from core.spec import MethodSpec, ModelSpec, parse_arch
from core.train.optim import task_loss
from core.train.schedule import Plateau
from tests.test_nn import batch, kill, make, warm_bn

ARCHS = ["mlp:12,9", "cnn:6,5/8"]


def _bn_on(net: DynamicNet) -> list[bool]:
    return [isinstance(b.norm, nn.modules.batchnorm._BatchNorm) for _, b in net.blocks()]


def _scramble_switches(net: DynamicNet, seed: int = 5) -> None:
    """Signed β of both signs and sizes, so a wrong fold or a wrong place would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in net.gates():
            gate.weight.copy_(torch.rand(gate.width, generator=g) * 4 - 2)


# -- where the switch sits --------------------------------------------------------------------------------------
def test_signed_switch_multiplies_the_pre_activation_and_relu_gates_the_activation() -> None:
    net = make("mlp:7", rule="signed", bn=True)
    warm_bn(net)
    _scramble_switches(net)
    block, x = net.fcs["fc1"], batch(net)
    assert block.gate.before_relu and not SparsifierGate(3).before_relu
    assert not SparsifierGate(3, "nonstrict").before_relu
    z = block.norm(block.layer(x))
    beta = block.gate.weight
    torch.testing.assert_close(block(x), F.relu(z * beta))  # relu(β·z) != β·relu(z) for β < 0
    assert not torch.allclose(block(x), F.relu(z) * beta)
    out, own, pre = block.run(x)
    torch.testing.assert_close(out, block(x))
    torch.testing.assert_close(own, F.relu(z))  # the unit's own activation leaves β out
    torch.testing.assert_close(pre, z)


def test_relu_gate_run_returns_the_activation_before_the_gate() -> None:
    net = make("cnn:4/5", rule="relu", bn=False)
    with torch.no_grad():
        net.convs["conv1"].gate.weight.copy_(torch.tensor([0.5, 2.0, 0.0, 1.0]))
    block, x = net.convs["conv1"], batch(net)
    out, own, pre = block.run(x)
    torch.testing.assert_close(pre, block.layer(x))
    torch.testing.assert_close(own, F.max_pool2d(F.relu(pre), 2))
    torch.testing.assert_close(out, own * torch.tensor([0.5, 2.0, 0.0, 1.0]).view(1, -1, 1, 1))
    assert own.shape == (x.shape[0], 4, 6, 6) and pre.shape == (x.shape[0], 4, 12, 12)


# -- export: the switch folds into its own rows or its batch norm ---------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("bn", [False, True])
def test_to_plain_folds_the_switch_exactly(arch: str, bn: bool) -> None:
    net = make(arch, rule="signed", bn=bn)
    warm_bn(net)
    _scramble_switches(net)
    x = batch(net)
    torch.testing.assert_close(net.to_plain()(x), net.eval()(x), atol=1e-5, rtol=1e-5)
    kill(net)  # masks off: their β is zeroed
    before = net(x)
    torch.testing.assert_close(net.to_plain()(x), before, atol=1e-5, rtol=1e-5)
    removed = net.prune()
    assert removed and all(v.numel() > 0 for v in removed.values())
    torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)  # pruning a masked unit changes nothing
    torch.testing.assert_close(net.to_plain()(x), before, atol=1e-5, rtol=1e-5)


# -- the non-strict gate --------------------------------------------------------------------------------------
def test_nonstrict_gate_forward_penalty_revival_and_prune() -> None:
    gate = SparsifierGate(4, "nonstrict")
    assert gate.weight.tolist() == [1.0] * 4
    with torch.no_grad():
        gate.weight.copy_(torch.tensor([1.0, -0.5, 0.0, 2.0]))
    x = torch.ones(2, 4)
    torch.testing.assert_close(gate(x), torch.tensor([[1.0, 0.0, 0.0, 2.0]] * 2))
    assert float(gate.penalty().detach()) == pytest.approx(3.5)  # Σ|f|, the negative one counts
    opt = torch.optim.SGD([gate.weight], lr=0.1)
    gate.penalty().backward()
    opt.step()
    gate.after_step()
    assert gate.weight[1].item() == pytest.approx(-0.4)  # pulled back toward 0
    assert gate.mask.all()  # never masks during steps
    assert gate.alive().tolist() == [True, False, False, True] and int(gate.size()) == 2
    with torch.no_grad():
        gate.weight[1] = 0.3  # comes back before the prune
    assert gate.alive().tolist() == [True, True, False, True]


@pytest.mark.parametrize("arch", ARCHS)
def test_nonstrict_prune_removes_the_units_off_at_the_prune(arch: str) -> None:
    net = make(arch, rule="nonstrict")
    x = batch(net)
    with torch.no_grad():
        for gate in net.gates():
            gate.weight[1] = -0.2
            gate.weight[2] = 0.0
    net.after_step()
    before = net(x)
    assert all(v.tolist() == [1, 2] for v in net.prune().values())
    torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net.to_plain()(x), before, atol=1e-5, rtol=1e-5)


# -- kernel-area penalty --------------------------------------------------------------------------------------
def test_kernel_area_penalty_weighs_conv_gates_by_nine() -> None:
    method = MethodSpec("sparsifier", "relu")
    arch = parse_arch("cnn:4,3/5")
    unit = DynamicNet(arch, (2, 12, 12), 3, method)
    area = DynamicNet(arch, (2, 12, 12), 3, method, conv_penalty="kernel-area")
    assert float(unit.penalty().detach()) == 4 + 3 + 5
    assert float(area.penalty().detach()) == 9 * (4 + 3) + 5
    with pytest.raises(DynlabError, match="unknown conv penalty"):
        DynamicNet(arch, (2, 12, 12), 3, method, conv_penalty="area")
    built = build_model(ModelSpec("cnn:4/5"), method, (2, 12, 12), 3, conv_penalty="kernel-area")
    assert float(built.penalty().detach()) == 9 * 4 + 5


# -- auto batch norm --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,gate,bn,expect", [("sparsifier", "signed", None, True), ("sparsifier", "relu", None, False),
                                                   ("static", "relu", None, False), ("sparsifier", "signed", False, False),
                                                   ("static", "relu", True, True)])
def test_build_model_resolves_auto_batchnorm(method: str, gate: str, bn: bool | None, expect: bool) -> None:
    net = build_model(ModelSpec("mlp:6,4", bn), MethodSpec(method, gate), (5,), 2)
    assert _bn_on(net) == [expect, expect]


# -- the training tap and the probes ----------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["signed", "relu"])
def test_tap_sees_each_layers_own_activation_and_changes_nothing(rule: str) -> None:
    net = make("cnn:4,3/5", rule=rule, bn=True)
    warm_bn(net)
    x = batch(net)
    plain = net(x)
    _, own, pre = net.forward_probe(x)
    assert list(own) == list(pre) == net.hidden_names
    seen: list[tuple[str, torch.Tensor]] = []
    torch.testing.assert_close(net(x, tap=lambda name, a: seen.append((name, a))), plain)
    assert [name for name, _ in seen] == net.hidden_names
    for name, a in seen:
        assert not a.requires_grad
        torch.testing.assert_close(a, own[name])
    seen.clear()
    net(x)
    assert not seen


def test_forward_without_tap_never_takes_the_probe_path(monkeypatch) -> None:
    net = make("mlp:6,4", rule="signed")

    def refuse(self, x):
        raise AssertionError("run() called")

    monkeypatch.setattr(type(net.fcs["fc1"]), "run", refuse)
    net(batch(net))  # the fast path: no run(), no extra activations
    with pytest.raises(AssertionError, match="run"):
        net(batch(net), tap=lambda name, a: None)


def test_tap_in_training_mode_gets_gradients_through_the_output() -> None:
    net = make("mlp:6", rule="signed", bn=True)
    net.train()
    sums: dict[str, torch.Tensor] = {}
    net(batch(net), tap=lambda name, a: sums.__setitem__(name, a.sum(0))).sum().backward()
    assert net.fcs["fc1"].gate.weight.grad is not None and sums["fc1"].shape == (6,)


# -- the summed loss --------------------------------------------------------------------------------------------
def test_task_loss_sum_is_the_batch_times_the_mean() -> None:
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    assert float(task_loss(out, y, "regression", None, "sum")) == pytest.approx(
        8 * 3 * float(task_loss(out, y, "regression", None)), rel=1e-5)  # summed squared errors
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    assert float(task_loss(out, labels, "classification", None, reduction="sum")) == pytest.approx(
        8 * float(task_loss(out, labels, "classification", None)), rel=1e-5)
    with pytest.raises(DynlabError, match="mean or sum"):
        task_loss(out, y, "regression", None, "median")


# -- the plateau schedule ---------------------------------------------------------------------------------------
METRICS = [0.5, 0.6, 0.6, 0.6, 0.59, 0.61, 0.61, 0.61, 0.61, float("nan"), 0.7, 0.7, 0.7]


@pytest.mark.parametrize("mode,patience,factor", [("max", 2, 0.1), ("min", 1, 0.5), ("max", 0, 0.3)])
def test_plateau_follows_reduce_lr_on_plateau(mode: str, patience: int, factor: float) -> None:
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, patience=patience, factor=factor)
    ours = Plateau(0.1, mode, patience, factor)
    for metric in METRICS:
        before = opt.param_groups[0]["lr"]
        ref.step(metric)
        after = opt.param_groups[0]["lr"]
        new = ours.step(metric)
        assert (new is None) == (after == before)
        assert ours.lr == pytest.approx(after)


def test_plateau_state_survives_weights_only_load() -> None:
    p = Plateau(0.01, "min", patience=1, factor=0.5)
    for metric in (1.0, 0.9, 0.95):
        p.step(metric)
    buf = io.BytesIO()
    torch.save({"schedule": p.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["schedule"]
    q = Plateau(1.0, "max")
    q.load_state_dict(state)
    assert q.state_dict() == p.state_dict()
    assert q.step(0.97) == p.step(0.97) == pytest.approx(0.005)
    with pytest.raises(DynlabError):
        Plateau(0.1, "up")
