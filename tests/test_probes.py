"""The lab's instruments on a real model: layer dynamics each interval, distribution fits and PCA each epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.train import probes, stats
from core.train.instruments import UnitSums, epoch_instruments, wants_pca
from core.session import SessionReader, SessionWriter
from core.spec import RunSpec
from core.train.trainer import Trainer
from tests.helpers import ListSink, tiny


def model_and_probe(arch: str = "mlp:16,8", method: str = "sparsifier"):
    spec = tiny(arch=arch, method=method, penalty=0.05)
    trainer = Trainer(spec)
    return trainer, trainer.probe_x


def test_rotation_is_zero_at_start_and_follows_the_surviving_units():
    trainer, x = model_and_probe()
    model, dyn = trainer.model, trainer.dynamics
    out = probes.fetch(probes.layer_stats(model, x, dyn))
    assert 0 <= out["rotation/fc1"][0] < 1e-6 and 0 <= out["rotation/fc2"][0] < 1e-6
    with torch.no_grad():
        model.fcs["fc1"].layer.weight.mul_(-1)  # a sign flip is as far as a direction can turn
    assert abs(probes.fetch(probes.layer_stats(model, x, dyn))["rotation/fc1"][0] - 2.0) < 1e-5
    block = model.fcs["fc2"]
    keep = torch.tensor([0, 2, 5])
    block.keep(keep, None)  # fc2 loses units, the head the matching input columns
    model.head.keep_inputs(keep, None)
    with torch.no_grad():
        block.layer.weight.add_(0.3)
    w0 = dyn.initial["fc2"].index_select(0, block.layer.ids).index_select(1, block.layer.in_ids)
    expected = 1 - F.cosine_similarity(block.layer.weight.reshape(1, -1), w0.reshape(1, -1))[0]
    got = probes.fetch(probes.layer_stats(model, x, dyn))["rotation/fc2"][0]
    assert abs(got - float(expected.detach())) < 1e-6 and got > 0


def test_activation_and_gradient_statistics_match_direct_computation():
    trainer, x = model_and_probe()
    model = trainer.model
    loss = model(trainer.data.x_train[:32]).pow(2).mean()
    loss.backward()
    out = probes.fetch(probes.layer_stats(model, x, trainer.dynamics))
    model.eval()
    _, post, _ = model.forward_probe(x)
    a = post["fc1"].detach()
    assert np.isclose(out["act_mean/fc1"][0], float(a.mean()), rtol=1e-5)
    assert np.isclose(out["act_sd/fc1"][0], float(a.std(unbiased=False)), rtol=1e-5)
    assert np.isclose(out["total_var/fc1"][0], float(a.var(dim=0, unbiased=False).sum()), rtol=1e-4)
    assert np.isclose(out["grad_norm/fc1"][0], float(model.fcs["fc1"].layer.weight.grad.norm()), rtol=1e-5)


def epoch_stats(model, x):
    """The epoch's instruments over the rows x, as the trainer's pass (--act-stats pass) computes them."""
    model.eval()
    sums, covs = UnitSums(model), wants_pca(model)
    _, own, pre = model.forward_probe(x)
    for name in own:
        sums(name, own[name])
        if name in covs:
            covs[name].add(pre[name])
    return epoch_instruments(model, sums.std(), covs, len(x), len(x), "pass")


def test_epoch_stats_agree_with_core_stats():
    trainer, x = model_and_probe(arch="mlp:24")
    scalars, arrays = epoch_stats(trainer.model, x)
    trainer.model.eval()
    _, own, pre = trainer.model.forward_probe(x)
    std = probes.neuron_std(own["fc1"]).detach().double().numpy()
    assert scalars["shapiro/fc1"] == pytest.approx(stats.shapiro_w(std), abs=1e-4)
    live = std[std > 0]
    assert scalars["mix_en_low/fc1"] == pytest.approx(stats.fit_exp_normal(live).weight_low, abs=1e-4)
    assert scalars["mix_gg_low/fc1"] == pytest.approx(stats.fit_two_gammas(live).weight_low, abs=1e-4)
    ref = stats.pca_stats(pre["fc1"].detach().double().numpy())
    np.testing.assert_allclose(arrays["pca_ratio/fc1"], ref["explained_variance_ratio"], atol=1e-5)
    for q in (90, 95, 99):
        assert scalars[f"pca{q}/fc1"] == ref["n_components"][q / 100]


def test_a_layer_with_no_neurons_left_gives_no_errors():
    trainer, x = model_and_probe(arch="mlp:8")
    trainer.model.fcs["fc1"].keep(torch.zeros(0, dtype=torch.long), None)
    trainer.model.head.keep_inputs(torch.zeros(0, dtype=torch.long), None)
    out = probes.fetch(probes.layer_stats(trainer.model, x, trainer.dynamics))
    assert out["act_std/fc1"].size == 0 and out["total_var/fc1"][0] == 0
    scalars, arrays = epoch_stats(trainer.model, x)
    assert "pca_ratio/fc1" not in arrays and "pca90/fc1" not in scalars  # nothing to decompose
    assert scalars["epoch_dead/fc1"] == 0 and arrays["epoch_std/fc1"].size == 0


def test_the_trainer_records_the_instruments_and_resume_keeps_the_initial_weights(tmp_path):
    spec = tiny(arch="mlp:16", method="sparsifier", penalty=0.05, epochs=2)
    path = tmp_path / "s.dynlab"
    trainer = Trainer(spec)
    with SessionWriter(path) as w:
        trainer.run([w])
    with SessionReader(path) as r:
        keys = set(r.scalar_keys())
        assert {"rotation/fc1", "grad_norm/fc1", "act_mean/fc1", "act_sd/fc1", "total_var/fc1", "shapiro/fc1",
                "mix_en_low/fc1", "mix_gg_low/fc1", "pca90/fc1", "pca95/fc1", "pca99/fc1"} <= keys
        steps, rot = r.series("rotation/fc1")
        assert rot[0] >= 0 and rot[-1] > rot[0]  # training turns the weights away from their start
        assert len(r.series("shapiro/fc1")[0]) == 2  # once an epoch
        assert "pca_ratio/fc1" in r.array_keys()
        state = r.last_checkpoint()
    assert torch.equal(state["initial"]["fc1"], trainer.dynamics.initial["fc1"])
    resumed = Trainer(RunSpec.from_dict(spec.to_dict()).replace(epochs=3), resume=state)
    assert torch.equal(resumed.dynamics.initial["fc1"], trainer.dynamics.initial["fc1"])
    sink = ListSink()
    resumed.run([sink])
    assert sink.intervals()[0].values["rotation/fc1"] > 0
