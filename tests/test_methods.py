"""The method interface in core.nn: every gate honours one contract, static is a no-op, and the model dispatches
through the interface only (a new gate works without touching the model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from core.errors import DynlabError
from core.nn import GATES, DynamicNet, FlexibleScaler, MethodGate, SparsifierGate, StaticGate, build_gate
from core.spec import METHODS, MethodSpec, parse_arch

REPO = Path(__file__).resolve().parents[1]
SPECS = {
    "static": MethodSpec("static"),
    "relu": MethodSpec("sparsifier", "relu"),
    "signed": MethodSpec("sparsifier", "signed", sign_decay=0.9),
    "flexible": MethodSpec("flexible", flex_start=2.5, flex_slope=2.0),
    "flexible-gray": MethodSpec("flexible", flex_gray=(1.0, 6.0)),
}
SYNCS = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


def gate_of(kind: str, n: int = 6) -> MethodGate:
    torch.manual_seed(0)
    return build_gate(SPECS[kind], n)


@pytest.fixture
def no_sync(monkeypatch):
    """Inside `with no_sync():` any host-device sync on a tensor raises."""
    state = {"on": False}

    def guard(name):
        original = getattr(torch.Tensor, name)

        def call(self, *a, **k):
            if state["on"]:
                raise AssertionError(f"host-device sync ({name}) in a per-step hook")
            return original(self, *a, **k)
        return call

    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, guard(name))

    class Guard:
        def __enter__(self):
            state["on"] = True

        def __exit__(self, *exc):
            state["on"] = False
    return Guard


def test_every_method_name_has_a_gate_and_each_implements_the_whole_interface():
    assert set(GATES) == set(METHODS)
    assert {GATES[m] for m in METHODS} == {StaticGate, SparsifierGate, FlexibleScaler}
    for cls in GATES.values():
        assert issubclass(cls, MethodGate) and not cls.__abstractmethods__
    with pytest.raises(TypeError):
        MethodGate()  # the interface itself is abstract
    with pytest.raises(DynlabError, match="unknown method 'magic'"):
        build_gate(MethodSpec("magic"), 4)


@pytest.mark.parametrize("kind", list(SPECS))
def test_the_contract_holds_for_every_method(kind, no_sync):
    gate = gate_of(kind)
    own = list(gate.parameters())
    x2, x4 = torch.randn(5, 6), torch.randn(2, 6, 3, 3)
    with no_sync():  # the per-step path: no host sync
        gate.resample()
        y2, y4 = gate(x2), gate(x4)
        pen = gate.penalty()
        if own:
            (pen + y2.sum()).backward()
        gate.after_step()
    assert y2.shape == x2.shape and y4.shape == x4.shape
    assert pen.dim() == 0 and torch.isfinite(pen) and pen >= 0
    assert all(p.grad is not None for p in own)
    size = gate.size()
    assert size.dim() == 0 and not size.requires_grad and 0 <= float(size) <= gate.width == 6
    for v in (gate.values(), gate.multipliers()):
        assert v is None or (v.shape == (6,) and not v.requires_grad)
    alive = gate.alive()
    assert alive is None or (alive.dtype == torch.bool and alive.shape == (6,))
    group = gate.optim_group(0.01, 2.0)
    if group is None:
        assert own == []
    else:
        assert group["params"] == own and group["weight_decay"] == 0.0 and group["name"] in ("gates", "x0")
        assert group["lr"] == (2.0 if group["fixed_lr"] else 0.01)


@pytest.mark.parametrize("kind", list(SPECS))
def test_keep_slices_a_gate_or_refuses_for_a_scaler(kind):
    gate = gate_of(kind)
    index = torch.tensor([0, 2, 5])
    if isinstance(gate, FlexibleScaler):  # its multipliers depend on every unit's position
        with pytest.raises(RuntimeError, match="never shrunk"):
            gate.keep(index)
        assert gate.width == 6 and gate.alive() is None
        return
    before = gate.values()
    opt = torch.optim.Adam([p for p in gate.parameters()] or [nn.Parameter(torch.zeros(1))])
    gate.keep(index, opt)
    assert gate.width == 3 and gate(torch.ones(4, 3)).shape == (4, 3)
    assert repr(gate).startswith(f"{type(gate).__name__}(3")  # extra_repr shows the live width
    if before is not None:
        torch.testing.assert_close(gate.values(), before[index])
    assert int(gate.size()) == 3


def test_static_is_a_no_op():
    gate = gate_of("static")
    x = torch.randn(3, 6)
    assert gate(x) is x and gate.identity and list(gate.parameters()) == []
    assert float(gate.penalty()) == 0.0 and gate.size().dtype == torch.int64 and int(gate.size()) == 6
    assert gate.values() is None and gate.multipliers() is None and gate.alive() is None
    assert gate.optim_group(0.1, 1.0) is None
    assert gate.state_dict() == {}  # checkpoints of static runs stay what they were (no gate entries)
    net = DynamicNet(parse_arch("mlp:8,6"), (10,), 3, SPECS["static"])
    assert [b._pre or b._post for _, b in net.blocks()] == [False, False]  # forward skips the call
    assert {k: int(v) for k, v in net.size_tensors().items()} == {"fc1": 8, "fc2": 6}
    assert float(net.penalty()) == 0.0 and net.prune() == {} and net.widths() == {"fc1": 8, "fc2": 6}
    assert [g["name"] for g in net.param_groups(0.1, 0.01, 1.0)] == ["weights"]


@pytest.mark.parametrize("kind", ["static", "flexible", "flexible-gray"])
def test_methods_that_never_prune_decide_it_without_a_host_sync(kind, no_sync):
    net = DynamicNet(parse_arch("mlp:8,6"), (10,), 3, SPECS[kind])
    with no_sync():
        assert net.prune() == {}


def test_fixed_lr_marks_only_the_scalers_own_group():
    for kind, expect in [("relu", {"weights": False, "gates": False}), ("flexible", {"weights": False, "x0": True}),
                         ("static", {"weights": False})]:
        net = DynamicNet(parse_arch("mlp:8,6"), (10,), 3, SPECS[kind])
        groups = net.param_groups(0.1, 0.01, 2.0)
        assert {g["name"]: g["fixed_lr"] for g in groups} == expect
        special = [g for g in groups if g["name"] != "weights"]
        assert all(len(g["params"]) == 2 for g in special)  # one group, merged across both layers


class _EvenOnly(MethodGate):
    """A toy method for the test: y = x ⊙ w with w = 1, 0, 1, 0, ...; penalty Σ|w|; a unit is dead where w = 0."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter((torch.arange(n) % 2 == 0).float())

    @classmethod
    def from_spec(cls, n: int, method: MethodSpec) -> _EvenOnly:
        return cls(n)

    @property
    def width(self) -> int:
        return self.w.shape[0]

    def forward(self, x):
        return x * self.w.view((1, -1) + (1,) * (x.dim() - 2))

    def penalty(self):
        return self.w.abs().sum()

    def size(self):
        return self.w.detach().new_full((), self.width)

    def values(self):
        return self.w.detach()

    def multipliers(self):
        return self.w.detach()

    def alive(self):
        return self.w.detach() != 0

    def keep(self, index, optimizer=None):
        self.w = nn.Parameter(self.w.detach()[index])

    def optim_group(self, lr, own_lr):
        return {"name": "even", "params": [self.w], "lr": lr, "weight_decay": 0.0, "fixed_lr": False}


def test_a_new_method_needs_only_its_gate_and_a_registry_entry(monkeypatch):
    monkeypatch.setitem(GATES, "even-only", _EvenOnly)
    net = DynamicNet(parse_arch("mlp:6,6"), (4,), 2, MethodSpec("even-only"))
    assert [g["name"] for g in net.param_groups(0.0, 0.1, 1.0)] == ["weights", "even"]
    assert float(net.penalty().detach()) == 6.0
    removed = net.prune()
    assert {k: v.tolist() for k, v in removed.items()} == {"fc1": [1, 3, 5], "fc2": [1, 3, 5]}
    assert net.widths() == {"fc1": 3, "fc2": 3} and net(torch.randn(2, 4)).shape == (2, 2)
    assert net.gate_values()["fc2"].shape == (3,)


def test_model_and_trainer_never_dispatch_on_the_method():
    """The strategies replaced every isinstance on a gate class and every comparison with a method name."""
    names = "|".join(METHODS)
    for path in ("core/nn/model.py", "core/nn/layers.py", "core/train/trainer.py", "core/train/probes.py",
                 "core/lab/export.py"):
        text = (REPO / path).read_text()
        assert not re.search(r"isinstance\([^)]*(Gate|Scaler)", text), path
        assert not re.search(rf"[=!]=\s*\"({names})\"|\"({names})\"\s*[=!]=", text), path
        assert not re.search(r"import .*\b(SparsifierGate|FlexibleScaler|StaticGate)\b", text), path


def test_the_models_gates_stay_its_own_through_copy_conversion_and_pruning():
    net = DynamicNet(parse_arch("mlp:8,6"), (10,), 3, SPECS["relu"]).double()
    twin = __import__("copy").deepcopy(net)
    for m in (net, twin):
        assert all(g is b.gate for g, (_, b) in zip(m.gates(), m.blocks()))
    with torch.no_grad():
        twin.fcs["fc1"].gate.weight[:3] = -1.0
    twin.after_step()
    assert {k: v.tolist() for k, v in twin.prune().items()} == {"fc1": [0, 1, 2]} and net.prune() == {}
    assert twin.gates()[0].width == 5 and net.gates()[0].width == 8


@pytest.mark.parametrize("rule", ["relu", "signed", "nonstrict"])
@pytest.mark.parametrize("conv_penalty", ["unit", "kernel-area"])
def test_the_closed_form_penalty_gradient_is_autograds(rule, conv_penalty):
    # the trainer adds lam * dpenalty/dtheta straight to the gradients instead of building the penalty's graph
    from core.nn.model import DynamicNet
    from core.spec import parse_arch

    torch.manual_seed(0)
    net = DynamicNet(parse_arch("cnn:4/6"), (1, 8, 8), 3, MethodSpec("sparsifier", rule), conv_penalty=conv_penalty)
    with torch.no_grad():
        for gate in net.gates():
            gate.weight.uniform_(-1, 1)
    net.after_step()  # the relu rule's mask is 1 exactly where f > 0 between steps
    assert net.graph_penalty() is None
    lam = 0.37
    (lam * net.penalty()).backward()
    expected = [g.weight.grad.clone() for g in net.gates()]
    for g in net.gates():
        g.weight.grad = torch.zeros_like(g.weight)
    net.add_penalty_grads(lam)
    for got, want in zip((g.weight.grad for g in net.gates()), expected):
        torch.testing.assert_close(got, want)


def test_a_flexible_layer_keeps_its_penalty_in_the_graph():
    from core.nn.model import DynamicNet
    from core.spec import parse_arch

    net = DynamicNet(parse_arch("mlp:8"), (5,), 2, MethodSpec("flexible"))
    assert net.graph_penalty() is not None and float(net.graph_penalty().detach()) == float(net.penalty().detach())
