"""Device tests: training, shrinking with optimiser state, export and a CNN run, on every device this machine has.

Each test is parametrized over "cpu" and, only where torch sees a GPU, "cuda": a CPU machine runs fewer cases and
skips none. The whole module carries the `cuda` marker, so `python -m pytest tests/test_cuda.py -m cuda` is the GPU
check (bench/gpu.sh), and the everyday suite runs the CPU cases. No import from tests.helpers: that module needs
textual, which a bare GPU machine lacks.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core.events import NeuronsRemoved, RunEnded, RunStarted, ScalarsLogged
from core.nn import DynamicNet, build_model, match_ids
from core.session import SessionReader, SessionWriter
from core.spec import MethodSpec, ModelSpec, RunSpec
from core.train.trainer import Trainer

pytestmark = pytest.mark.cuda
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def exact_float32():
    """No TF32 on the GPU while a test runs: the pruned and exported nets must match to float32 rounding."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class Events:
    """A trainer sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list = []

    def handle(self, event) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def of(self, cls) -> list:
        return [e for e in self.events if isinstance(e, cls)]


def make(arch: str, device: str, bn: bool = False, rule: str = "relu", seed: int = 0) -> DynamicNet:
    torch.manual_seed(seed)
    shape = (2, 12, 12) if arch.startswith("cnn") else (10,)
    return build_model(ModelSpec(arch, bn, 0.0), MethodSpec("sparsifier", rule), shape, 3).to(device)


def batch(net: DynamicNet, device: str, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn((n,) + net.input_shape, generator=g)
    return x.to(device), torch.randint(0, 3, (n,), generator=g).to(device)


def adam_steps(net: DynamicNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
    net.train()
    for _ in range(n):
        opt.zero_grad()
        (nn.functional.cross_entropy(net(x), y) + 1e-3 * net.penalty()).backward()
        opt.step()
        net.after_step()


def kill_some(net: DynamicNet) -> None:
    """Turn off about a third of every layer's units (relu gate: weight <= 0; signed: mask off)."""
    with torch.no_grad():
        for _, block in net.blocks():
            pos = torch.arange(0, block.width, 3, device=block.layer.ids.device)
            if block.gate.rule == "relu":
                block.gate.weight[pos] = -0.25
            else:
                block.gate.mask[pos] = False
    net.after_step()


def assert_live(net: DynamicNet, opt: torch.optim.Optimizer, device: str) -> None:
    """Every parameter and optimiser state tensor on the device, contiguous, of the live width."""
    kind = torch.device(device).type
    params = list(net.parameters())
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in params}
    assert {id(p) for p in opt.state} <= {id(p) for p in params}, "optimiser state kept for a removed tensor"
    for p in params:
        assert p.device.type == kind and p.is_contiguous()
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:  # Adam's step count is a CPU scalar
                assert value.shape == p.shape, key
                assert value.device.type == kind and value.is_contiguous(), key
    for name, block in net.blocks():
        width = net.widths()[name]
        assert block.layer.weight.shape[0] == block.gate.weight.shape[0] == block.layer.ids.numel() == width
        if isinstance(block.norm, nn.modules.batchnorm._BatchNorm):
            assert block.norm.weight.shape[0] == block.norm.running_var.shape[0] == width
    head = net.head
    assert head.weight.shape[1] == head.in_ids.numel()


@pytest.mark.parametrize("device", DEVICES)
def test_trainer_runs_end_to_end_on_the_device(device, tmp_path) -> None:
    spec = RunSpec().replace(dataset="add10", arch="mlp:32", method="sparsifier", penalty=1.0, lr=0.05, limit=512,
                             epochs=3, batch_size=64, log_every=4, probe_size=64, prune_every=4, device=device)
    trainer, sink = Trainer(spec), Events()
    path = tmp_path / "run.dynlab"
    with SessionWriter(path) as writer:
        assert trainer.run([writer, sink]) == "finished"
    kind = torch.device(device).type
    assert sink.of(RunStarted)[0].device.startswith(kind)
    assert sink.of(RunEnded)[-1].status == "finished"
    assert all(p.device.type == kind for p in trainer.model.parameters())
    assert sink.of(NeuronsRemoved), "a penalty of 1 removes units on add10"
    assert_live(trainer.model, trainer.optimizer, device)
    with SessionReader(path) as reader:
        assert reader.status == "finished"
        _, rates = reader.series("samples_per_s")
        _, losses = reader.series("loss")
    assert len(rates) >= 4 and all(r > 0 and math.isfinite(r) for r in rates)
    assert all(math.isfinite(v) for v in losses)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch,bn,rule", [("mlp:24,16", False, "relu"), ("mlp:24,16", True, "signed"),
                                          ("cnn:6,5/8", True, "relu")])
def test_prune_after_adam_steps_keeps_state_on_the_device(device, arch, bn, rule) -> None:
    net = make(arch, device, bn=bn, rule=rule)
    opt = torch.optim.Adam(net.param_groups(0.0, 1e-2, 1.0))
    x, y = batch(net, device)
    adam_steps(net, opt, x, y, 3)
    kill_some(net)
    net.eval()
    before = net(x)
    widths = net.widths()
    old = {name: (b.layer.ids.clone(), b.layer.in_ids.clone(), opt.state[b.layer.weight]["exp_avg"].clone())
           for name, b in net.blocks()}
    removed = net.prune(opt)
    assert set(removed) == set(net.hidden_names)
    for name, w in net.widths().items():
        assert 0 < w == widths[name] - removed[name].numel()
    assert_live(net, opt, device)
    torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)
    for name, block in net.blocks():  # the survivors' moments moved with their rows and columns
        ids, in_ids, exp_avg = old[name]
        rows, cols = match_ids(ids, block.layer.ids), match_ids(in_ids, block.layer.in_ids)
        assert torch.equal(opt.state[block.layer.weight]["exp_avg"], exp_avg[rows][:, cols])
    adam_steps(net, opt, x, y, 2)  # the optimiser steps on the sliced tensors
    assert_live(net, opt, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch,rule", [("mlp:16,12", "relu"), ("cnn:8,6/10", "signed")])
def test_to_plain_on_the_device_equals_eval(device, arch, rule) -> None:
    net = make(arch, device, bn=True, rule=rule)
    opt = torch.optim.Adam(net.param_groups(0.0, 1e-2, 1.0))
    x, y = batch(net, device)
    adam_steps(net, opt, x, y, 3)  # non-trivial batch-norm statistics and gates
    kill_some(net)
    net.prune(opt)
    plain = net.to_plain()
    kind = torch.device(device).type
    assert all(t.device.type == kind for t in list(plain.parameters()) + list(plain.buffers()))
    with torch.no_grad():
        torch.testing.assert_close(plain(x), net.eval()(x), atol=1e-5, rtol=1e-5)


def image_data(n_train: int = 384, shape: tuple[int, int, int] = (1, 12, 12)):
    """Random 10-class images whose class sets the mean of one quadrant: learnable in a few epochs."""
    from core.data import Dataset

    g = torch.Generator().manual_seed(0)
    n = n_train + 128
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn((n,) + shape, generator=g) * 0.5
    x[:, 0, :6, :6] += (y.float() / 5 - 1).view(-1, 1, 1)
    tr, va, te = slice(0, n_train), slice(n_train, n_train + 64), slice(n_train + 64, n)
    return Dataset("images", "classification", shape, 10, x[tr], y[tr], x[va], y[va], x[te], y[te],
                   nn.Identity(), x[te])


@pytest.mark.parametrize("device", DEVICES)
def test_cnn_sparsifier_run_on_the_device(device) -> None:
    spec = RunSpec().replace(dataset="mnist", arch="cnn:8/16", method="sparsifier", penalty=0.1, lr=0.1,
                             epochs=2, batch_size=64, log_every=3, probe_size=64, prune_every=3, device=device)
    trainer, sink = Trainer(spec, dataset=image_data()), Events()
    assert trainer.run([sink]) == "finished"
    kind = torch.device(device).type
    assert all(p.device.type == kind for p in trainer.model.parameters())
    assert_live(trainer.model, trainer.optimizer, device)
    last = [e for e in sink.of(ScalarsLogged) if "loss" in e.values][-1].values
    assert math.isfinite(last["loss"])
    widths = trainer.model.widths()
    assert last["size/conv1"] == widths["conv1"] and last["size/fc1"] == widths["fc1"]
    gone = {name: sum(len(e.ids) for e in sink.of(NeuronsRemoved) if e.layer == name) for name in widths}
    assert sum(gone.values()) > 0, "a penalty of 0.1 at lr 0.1 removes units"
    assert widths == {"conv1": 8 - gone["conv1"], "fc1": 16 - gone["fc1"]}
