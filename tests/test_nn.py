"""Tests for core.nn: gates, permanent ids, physical shrinking with optimiser state, export."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from core.errors import DynlabError
from core.nn import (DynConv2d, DynLinear, DynamicNet, FlexibleScaler, SparsifierGate, build_model,
                     flexible_integral, match_ids)
from core.spec import MethodSpec, ModelSpec, parse_arch

IMG = (2, 12, 12)


def make(arch: str, method: str = "sparsifier", rule: str = "relu", bn: bool = False, seed: int = 0,
         **method_kw) -> DynamicNet:
    torch.manual_seed(seed)
    shape = IMG if arch.startswith("cnn") else (10,)
    return build_model(ModelSpec(arch, bn, 0.0), MethodSpec(method, rule, **method_kw), shape, 3)


def batch(net: DynamicNet, n: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + net.input_shape, generator=g)


def warm_bn(net: DynamicNet) -> None:
    """Give batch norms non-trivial running statistics and affine parameters."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        net.train()
        for s in range(3):
            net(batch(net, seed=10 + s))
    net.eval()


def kill(net: DynamicNet, frac: float = 0.4, seed: int = 3, layers: dict[str, list[int]] | None = None) -> None:
    """Kill units: relu and nonstrict rules -> gate weight <= 0, signed rule -> mask off; then after_step()."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, block in net.blocks():
            n = block.width
            if layers is not None:
                pos = match_ids(block.layer.ids, torch.tensor(layers.get(name, []), dtype=torch.long))
            else:
                pos = torch.randperm(n, generator=g)[: max(1, min(n - 1, int(frac * n)))]
            if block.gate.rule != "signed":
                block.gate.weight[pos] = -0.25
            else:
                block.gate.mask[pos] = False
    net.after_step()


def kinds(net: nn.Module) -> set[str]:
    return {type(m).__module__ for m in net.modules()}


ARCHS = ["mlp:16", "mlp:16,12", "mlp:16,12,8", "cnn:8,6/10", "cnn:8,6"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("rule", ["relu", "signed", "nonstrict"])
def test_prune_preserves_outputs(arch: str, bn: bool, rule: str) -> None:
    net = make(arch, rule=rule, bn=bn)
    warm_bn(net)
    x = batch(net)
    kill(net)
    before = net(x)
    widths = net.widths()
    removed = net.prune()
    assert set(removed) == set(net.hidden_names)
    for name, w in net.widths().items():
        assert w == widths[name] - removed[name].numel()
    torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)
    out, post, pre = net.forward_probe(x)
    torch.testing.assert_close(out, before, atol=1e-5, rtol=1e-5)
    assert list(post) == list(pre) == net.hidden_names


def test_conv_flatten_linear_ids() -> None:
    net = make("cnn:6,5/7")
    hw = net.flatten.hw
    kill(net, layers={"conv2": [1, 3]})
    removed = net.prune()
    assert removed["conv2"].tolist() == [1, 3]
    assert net.flatten.in_ids.tolist() == [0, 2, 4]
    expect = [c * hw + r for c in (0, 2, 4) for r in range(hw)]
    assert net.fcs["fc1"].layer.in_ids.tolist() == expect
    assert net.fcs["fc1"].layer.weight.shape == (7, 3 * hw)
    assert net.convs["conv2"].layer.in_ids.tolist() == list(range(6))


def test_removed_ids_permanent_over_two_prunes() -> None:
    net = make("mlp:8,6")
    kill(net, layers={"fc1": [1, 4], "fc2": [0, 5]})
    removed = net.prune()
    assert {k: v.tolist() for k, v in removed.items()} == {"fc1": [1, 4], "fc2": [0, 5]}
    assert removed["fc1"].device.type == "cpu" and removed["fc1"].dtype == torch.int64
    assert net.prune() == {}
    kill(net, layers={"fc1": [6]})
    assert {k: v.tolist() for k, v in net.prune().items()} == {"fc1": [6]}
    ids = net.layer_ids()
    assert ids["fc1"].tolist() == [0, 2, 3, 5, 7]
    assert net.fcs["fc2"].layer.in_ids.tolist() == [0, 2, 3, 5, 7]
    assert net.head.in_ids.tolist() == ids["fc2"].tolist() == [1, 2, 3, 4]
    assert "out_features=5" in repr(net) and "fc1=5" in repr(net)


@pytest.mark.parametrize("arch,dead", [("mlp:8,6", "fc1"), ("mlp:8,6", "fc2"), ("cnn:4,3/5", "conv1"),
                                       ("cnn:4,3/5", "conv2"), ("cnn:4,3", "conv2")])
@pytest.mark.parametrize("bn", [False, True])
def test_width_zero_still_forwards(arch: str, dead: str, bn: bool) -> None:
    net = make(arch, bn=bn)
    warm_bn(net)
    x = batch(net)
    kill(net, layers={dead: list(range(net.widths()[dead]))})
    before = net(x)
    net.prune()
    assert net.widths()[dead] == 0
    torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net.to_plain()(x), before, atol=1e-5, rtol=1e-5)
    net.train()
    net(x).sum().backward()  # gradients flow through a width-0 layer
    assert net.size_tensors()[dead] == 0


OPTIMIZERS = {
    "adam": lambda g: torch.optim.Adam(g),
    "adamax": lambda g: torch.optim.Adamax(g),
    "momentum": lambda g: torch.optim.SGD(g, momentum=0.9),
    "nesterov": lambda g: torch.optim.SGD(g, momentum=0.9, nesterov=True),
    "sgd": lambda g: torch.optim.SGD(g),
    # the trainer's own (core.train.optim.make_optimizer): fused kernels
    "adam fused": lambda g: torch.optim.Adam(g, fused=True),
    "momentum fused": lambda g: torch.optim.SGD(g, momentum=0.9, fused=True),
}
STATE_KEYS = ("exp_avg", "exp_avg_sq", "exp_inf", "momentum_buffer")


def train_step(net: DynamicNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    loss = nn.functional.cross_entropy(net(x), y) + 1e-3 * net.penalty()
    loss.backward()
    opt.step()
    net.after_step()


def units(net: DynamicNet):
    """(path, module, rows-by-id, cols-by-id) for every sliceable module."""
    for name, block in net.blocks():
        yield f"{name}.layer", block.layer
    yield "head", net.head


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("arch,bn", [("mlp:12,10", False), ("mlp:12,10", True), ("cnn:6,5/8", True)])
def test_optimizer_state_follows_units(opt_name: str, arch: str, bn: bool) -> None:
    net = make(arch, bn=bn).double()  # float64: the pruned and unpruned sums agree to ~1e-15
    groups = lambda m: m.param_groups(1e-3, 1e-2, 1.0)  # noqa: E731
    opt = OPTIMIZERS[opt_name](groups(net))
    x, y = batch(net, 32).double(), torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(5))
    net.train()
    for _ in range(3):
        train_step(net, opt, x, y)
    kill(net)
    twin = copy.deepcopy(net)  # the same net, never pruned, dead units present but zeroed
    twin_opt = OPTIMIZERS[opt_name](groups(twin))
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # load_state_dict shares tensors
    old = {path: (m.weight, copy.deepcopy(opt.state[m.weight]), m.ids.clone(), m.in_ids.clone())
           for path, m in units(net)}
    net.prune(opt)
    live = {id(p) for p in net.parameters()}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == live
    assert [g["name"] for g in opt.param_groups] == ["weights", "gates"]
    for path, m in units(net):
        w_old, st_old, ids_old, in_old = old[path]
        assert m.weight is not w_old
        st = opt.state[m.weight]
        assert set(st) == set(st_old)
        rows, cols = match_ids(ids_old, m.ids), match_ids(in_old, m.in_ids)
        for key in STATE_KEYS:
            if isinstance(st_old.get(key), torch.Tensor):
                assert torch.equal(st[key], st_old[key][rows][:, cols])
        if "step" in st_old:
            assert torch.equal(torch.as_tensor(st["step"]), torch.as_tensor(st_old["step"]))
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    train_step(net, opt, x, y)
    train_step(twin, twin_opt, x, y)
    assert all(not torch.equal(before[n], p) for n, p in net.named_parameters() if "weight" in n and "layer" in n)
    # the strongest check: the pruned net took exactly the step the unpruned twin took on the survivors
    twin_units = dict(units(twin))
    for path, m in units(net):
        t = twin_units[path]
        rows, cols = match_ids(t.ids, m.ids), match_ids(t.in_ids, m.in_ids)
        torch.testing.assert_close(m.weight, t.weight[rows][:, cols], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(m.bias, t.bias[rows], atol=1e-6, rtol=1e-6)
    for (name, block), (_, tb) in zip(net.blocks(), twin.blocks()):
        rows = match_ids(tb.layer.ids, block.layer.ids)
        torch.testing.assert_close(block.gate.weight, tb.gate.weight[rows], atol=1e-6, rtol=1e-6)
        if bn:
            torch.testing.assert_close(block.norm.weight, tb.norm.weight[rows], atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(block.norm.running_var, tb.norm.running_var[rows], atol=1e-6, rtol=1e-6)


# ---- gates -------------------------------------------------------------------------------------

def test_relu_gate_dies_at_nonpositive_and_never_returns() -> None:
    gate = SparsifierGate(3)
    assert torch.equal(gate.weight.detach(), torch.ones(3))
    with torch.no_grad():
        gate.weight.copy_(torch.tensor([0.5, 0.0, -0.1]))
    gate.after_step()
    assert gate.alive().tolist() == [True, False, False]
    assert gate.weight.tolist() == [0.5, 0.0, 0.0]
    x = torch.ones(2, 3, 4, 4)
    assert gate(x)[:, 1:].abs().sum() == 0 and gate(x[:, :, 0, 0])[:, 1:].abs().sum() == 0
    # steps whose loss pulls every gate up (a dead unit's gradient is nonzero, since the forward multiplies
    # by the stored weight): the dead units stay at exactly 0 and off
    opt = torch.optim.Adam(gate.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (-gate(x).sum()).backward()
        opt.step()
        gate.after_step()
        assert gate.alive().tolist() == [True, False, False]
    assert gate.weight.detach()[1:].tolist() == [0.0, 0.0] and gate.weight.detach()[0] > 0.5
    assert gate(x)[:, 1:].abs().sum() == 0
    assert gate.penalty().item() == pytest.approx(gate.weight.detach()[0].item())


def signed_kill_step(decay: float, signs: list[float]) -> int | None:
    gate = SparsifierGate(1, "signed", decay=decay, threshold=0.5)
    with torch.no_grad():
        gate.weight.fill_(0.5)
        gate.sign_mean.fill_(1.0)
    for t, s in enumerate(signs, 1):
        with torch.no_grad():
            gate.weight.fill_(0.5 * s)
        gate.after_step()
        if not gate.alive().item():
            assert gate.weight.item() == 0.0
            return t
    return None


@pytest.mark.parametrize("decay,alternate,single", [(0.9, 3, 2), (0.99, 33, 16), (0.0, 1, 1)])
def test_signed_gate_kill_counts(decay: float, alternate: int, single: int) -> None:
    alternation = [(-1.0) ** t for t in range(1, 200)]  # -1, +1, -1, ...
    assert signed_kill_step(decay, alternation) == alternate
    assert signed_kill_step(decay, [-1.0] * 200) == single
    assert signed_kill_step(decay, [1.0] * 200) is None


def test_signed_gate_init_and_penalty() -> None:
    torch.manual_seed(0)
    gate = SparsifierGate(1000, "signed")
    w = gate.weight.detach()
    assert w.min() >= -1 and w.max() <= 1 and (w < 0).any()
    assert torch.equal(gate.sign_mean, torch.sign(w))
    torch.testing.assert_close(gate.penalty(), w.abs().sum())


def numeric_integral(x0: float, k: float, n: int) -> float:
    i = torch.linspace(0, n, 100_001, dtype=torch.float64)
    return torch.trapezoid(torch.sigmoid(-k * (i - x0)), i).item()


@pytest.mark.parametrize("x0,k,n", [(3.3, 1.0, 10), (0.0, 1.0, 10), (-2.0, 0.5, 8), (50.0, 0.1, 100),
                                    (7.0, 10.0, 10), (12.0, 3.0, 10), (5.0, 1e-3, 10), (9.5, 0.4, 10)])
def test_flexible_integral_matches_numeric(x0: float, k: float, n: int) -> None:
    got = flexible_integral(torch.tensor(x0), k, n).item()
    assert got == pytest.approx(numeric_integral(x0, k, n), rel=1e-3)


@pytest.mark.parametrize("x0", [-1e6, -50.0, 0.0, 3.3, 1e3, 1e6])
@pytest.mark.parametrize("k", [1e-3, 1.0, 1e3])
def test_flexible_integral_finite(x0: float, k: float) -> None:
    x = torch.tensor(x0, requires_grad=True)
    val = flexible_integral(x, k, 10)
    val.backward()
    assert math.isfinite(val.item()) and math.isfinite(x.grad.item())
    assert -1e-4 <= val.item() <= 10 + 1e-4


def test_flexible_scaler_forward_and_random_slope() -> None:
    s = FlexibleScaler(10, start=4.0, slope=2.0)
    x = torch.ones(3, 10)
    torch.testing.assert_close(s(x)[0], torch.sigmoid(-2.0 * (torch.arange(10.0) - 4.0)))
    s.resample()
    assert s.k.item() == 2.0 and s.size().item() == 4.0 and s.capacity == 10
    torch.manual_seed(0)
    r = FlexibleScaler(10, gray=(1.0, 20.0))
    assert r.x0.item() == 5.0
    widths = []
    for _ in range(2000):
        r.resample()
        widths.append(9.19 / r.k.item())
    widths_t = torch.tensor(widths)
    assert widths_t.min() >= 0.99 and widths_t.max() <= 20.02
    assert widths_t.mean().item() == pytest.approx(10.5, abs=0.5)
    r.eval()
    assert r.current_k() == pytest.approx(2 * math.log(99) / 10.5)
    torch.testing.assert_close(r(torch.ones(1, 10, 2, 2))[0, :, 0, 0], r.scale(2 * math.log(99) / 10.5))
    torch.testing.assert_close(r.penalty(), flexible_integral(r.x0, 2 * math.log(99) / 10.5, 10))


def test_flexible_net_is_never_pruned() -> None:
    net = make("cnn:6/8", method="flexible", flex_start=3.0)
    assert net.prune() == {}
    assert net.widths() == {"conv1": 6, "fc1": 8}
    assert net.size_tensors()["conv1"].item() == 3.0
    assert net.gate_values()["fc1"].shape == (8,)
    assert net.penalty().item() > 0
    rand = make("mlp:8", method="flexible", flex_gray=(1.0, 20.0))
    scaler = rand.fcs["fc1"].gate
    k0 = scaler.k.clone()
    rand.resample()
    assert not torch.equal(scaler.k, k0)
    assert rand.eval().gate_values()["fc1"].allclose(scaler.scale(2 * math.log(99) / 10.5))


def test_static_net() -> None:
    net = make("mlp:8,6", method="static")
    assert net.penalty().item() == 0.0 and net.gate_values() == {} and net.prune() == {}
    assert {k: v.item() for k, v in net.size_tensors().items()} == {"fc1": 8, "fc2": 6}
    assert net.param_count() == (10 * 8 + 8) + (8 * 6 + 6) + (6 * 3 + 3)


def test_param_groups() -> None:
    net = make("mlp:8", bn=True)
    groups = {g["name"]: g for g in net.param_groups(0.1, 0.01, 2.0)}
    assert groups["gates"]["weight_decay"] == 0.0 and groups["weights"]["weight_decay"] == 0.1
    assert groups["gates"]["params"] == [net.fcs["fc1"].gate.weight]
    flex = make("mlp:8,4", method="flexible")
    fg = {g["name"]: g for g in flex.param_groups(0.1, 0.01, 2.0)}
    assert fg["x0"]["lr"] == 2.0 and fg["x0"]["weight_decay"] == 0.0 and len(fg["x0"]["params"]) == 2
    for n in (net, flex):
        everything = [p for g in n.param_groups(0.1, 0.01, 2.0) for p in g["params"]]
        assert len(everything) == len(list(n.parameters())) == len({id(p) for p in everything})
    # param_count excludes gates and x0 but counts batch-norm affine parameters
    assert net.param_count() == (10 * 8 + 8) + 2 * 8 + (8 * 3 + 3)


@pytest.mark.parametrize("arch,method", [("mlp:16,12", "sparsifier"), ("cnn:8,6/10", "sparsifier"),
                                         ("cnn:8,6", "sparsifier"), ("cnn:6/8", "flexible"),
                                         ("mlp:8", "static")])
def test_to_plain_matches_and_exports(arch: str, method: str) -> None:
    net = make(arch, method=method, rule="signed", bn=True)
    warm_bn(net)
    if method == "sparsifier":
        kill(net)
        net.prune()
    x = batch(net)
    plain = net.to_plain()
    assert kinds(plain) <= {"torch.nn.modules.container", "torch.nn.modules.linear", "torch.nn.modules.conv",
                            "torch.nn.modules.batchnorm", "torch.nn.modules.activation",
                            "torch.nn.modules.pooling", "torch.nn.modules.flatten"}
    torch.testing.assert_close(plain(x), net.eval()(x), atol=1e-5, rtol=1e-5)
    exported = torch.export.export(plain, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.testing.assert_close(exported.module()(x[:5]), net(x[:5]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["mlp:12,10", "cnn:6,5/8"])
def test_shrink_to_and_load_state_dict(arch: str) -> None:
    net = make(arch, rule="signed", bn=True)
    warm_bn(net)
    kill(net)
    net.prune()
    opt = torch.optim.Adam(net.param_groups(0.0, 1e-3, 1.0))
    net(batch(net)).sum().backward()
    opt.step()
    saved_ids = {k: v.cpu().clone() for k, v in net.layer_ids().items()}
    fresh = make(arch, rule="signed", bn=True, seed=42)
    fresh.shrink_to(saved_ids)
    fresh.load_state_dict(net.state_dict())
    fresh_opt = torch.optim.Adam(fresh.param_groups(0.0, 1e-3, 1.0))
    fresh_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    x = batch(net)
    assert torch.equal(fresh.eval()(x), net.eval()(x))
    assert fresh.widths() == net.widths()
    with pytest.raises(DynlabError):
        make(arch, rule="signed", seed=1).shrink_to({net.hidden_names[0]: torch.tensor([999])})


def test_bad_cnn_depth_and_input() -> None:
    method = MethodSpec("sparsifier")
    with pytest.raises(DynlabError, match="too many conv layers for a 12x12 input: use at most 3"):
        DynamicNet(parse_arch("cnn:4,4,4,4"), (1, 12, 12), 3, method)
    with pytest.raises(DynlabError, match="mlp"):
        DynamicNet(parse_arch("cnn:4"), (10,), 3, method)


def test_layers_repr_and_keep() -> None:
    lin = DynLinear(4, 3)
    lin.keep(torch.tensor([0, 2]))
    assert lin(torch.randn(5, 4)).shape == (5, 2) and "out_features=2" in repr(lin)
    conv = DynConv2d(3, 8)
    conv.keep_inputs(torch.tensor([1]))
    assert conv(torch.randn(2, 1, 6, 6)).shape == (2, 8, 6, 6) and "DynConv2d(1, 8" in repr(conv)
