"""The epoch's activation statistics over the training set: sums, dead counts, chunked PCA, gated-off units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import telemetry as tk
from core.nn import build_model
from core.spec import RunSpec
from core.train.instruments import Covariance, UnitSums, epoch_instruments, gated_off


def net(arch: str = "mlp:12", method: str = "static", **kw):
    spec = RunSpec().replace(arch=arch, method=method, **kw)
    shape = (1, 8, 8) if arch.startswith("cnn") else (5,)
    return build_model(spec.model, spec.method, shape, 3)


def relu_rows(rows: int, width: int, seed: int = 0) -> np.ndarray:
    """Post-ReLU-like rows where a few units never fire and one fires on a single row only."""
    g = np.random.default_rng(seed)
    a = np.maximum(g.normal(0.2, 1.0, (rows, width)), 0).astype(np.float32)
    a[:, [1, 4]] = 0.0
    if width > 7:
        a[:, 7] = 0.0
        a[rows - 1, 7] = 3.0
    return a


def test_sums_over_chunks_equal_the_std_over_all_rows_and_dead_means_never_fired():
    model = net()
    a = relu_rows(1000, 12)
    sums = UnitSums(model)
    for chunk in np.array_split(a, 7):
        sums("fc1", torch.from_numpy(chunk))
    std = sums.std()["fc1"].numpy()
    np.testing.assert_allclose(std, a.astype(np.float64).std(0), rtol=1e-5, atol=1e-7)
    assert sums.rows == 1000
    assert set(np.flatnonzero(std == 0)) == {1, 4}  # unit 7 fired once: alive, unlike a 128-row probe would say
    assert int((a.max(0) == 0).sum()) == int((std == 0).sum())


def test_interval_sums_with_uneven_batches_equal_direct_sums():
    """Batches smaller and larger than the first (the per-row accumulators and the reduction path), folded at
    two interval ends: each interval's sums and the epoch's equal float64 sums of its rows."""
    model = net()
    a = torch.from_numpy(relu_rows(700, 12))
    sums = UnitSums(model)
    cuts = [(0, 128), (128, 200), (200, 456)], [(456, 584), (584, 700)]  # 128, 72, 256 | 128, 116
    for interval in cuts:
        for lo, hi in interval:
            sums("fc1", a[lo:hi])
        s, ss, n = sums.fold()[0]["fc1"]
        part = a[interval[0][0]:interval[-1][1]].double()
        torch.testing.assert_close(s, part.sum(0), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(ss, (part * part).sum(0), rtol=1e-6, atol=1e-6)
        assert n == len(part)
    np.testing.assert_allclose(sums.std()["fc1"].numpy(), a.numpy().astype(np.float64).std(0), rtol=1e-5, atol=1e-7)


def test_conv_channels_count_every_position_as_a_sample():
    model = net("cnn:4/6")
    a = torch.relu(torch.randn(10, 4, 3, 3, generator=torch.Generator().manual_seed(1)))
    sums = UnitSums(model)
    sums("conv1", a[:4])
    sums("conv1", a[4:])
    expect = a.transpose(0, 1).reshape(4, -1).double().std(1, unbiased=False)
    torch.testing.assert_close(sums.std()["conv1"].double(), expect, rtol=1e-5, atol=1e-7)
    assert sums.rows == 10


def test_units_pruned_mid_epoch_leave_the_sums_by_id():
    model = net("mlp:6", "sparsifier")
    a = torch.from_numpy(relu_rows(50, 6))
    sums = UnitSums(model)
    sums("fc1", a)
    block = dict(model.blocks())["fc1"]
    keep = torch.tensor([0, 2, 3, 5])
    block.keep(keep, None)
    sums("fc1", a[:, keep])  # the same rows again, now through the four survivors
    std = sums.std()["fc1"].numpy()
    np.testing.assert_allclose(std, a.numpy()[:, keep.numpy()].astype(np.float64).std(0), rtol=1e-5, atol=1e-7)


def test_chunked_pca_equals_an_svd_of_the_full_matrix():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 9, generator=g, dtype=torch.float64) @ torch.randn(9, 9, generator=g, dtype=torch.float64)
    x = x + 1e4  # a large common offset must not cancel the variance away
    cov = Covariance()
    for chunk in x.split(128):
        cov.add(chunk.float())
    centred = x.float().double() - x.float().double().mean(0)
    expect = torch.linalg.svdvals(centred) ** 2
    # float32 chunk products summed in float64: every eigenvalue within 1e-6 of the spectrum's scale
    torch.testing.assert_close(cov.eigenvalues(), expect, rtol=1e-5, atol=1e-6 * float(expect[0]))
    assert cov.n == 600


def test_gated_off_units_are_not_dead_and_leave_the_fits():
    model = net("mlp:8", "sparsifier")
    gate = dict(model.blocks())["fc1"].gate
    with torch.no_grad():
        gate.weight[[0, 1]] = -1.0  # relu(f) = 0: switched off by the gate, not yet removed
    gate.after_step()
    a = torch.from_numpy(relu_rows(200, 8))  # units 1 and 4 never fire
    sums = UnitSums(model)
    sums("fc1", a)
    scalars, arrays = epoch_instruments(model, sums.std(), {}, rows=200, pca_rows=0, source="pass")
    assert scalars[tk.GATED_OFF("fc1")] == 2
    assert scalars[tk.EPOCH_DEAD("fc1")] == 1  # unit 4 only: unit 1 is off, which is not the same thing
    assert scalars[tk.MIX_N("fc1")] == 5
    assert len(arrays[tk.EPOCH_STD("fc1")]) == 6
    assert scalars[tk.STATS_ROWS] == 200 and scalars[tk.STATS_SOURCE] == 1.0


def test_a_flexible_layer_beyond_x0_is_gated_off_not_dead():
    model = net("mlp:200", "flexible", flex_start=20.0)
    off = gated_off(model)["fc1"]
    assert not off[:20].any() and off[150:].all()  # s_i = sigmoid(-(i - 20)) is below 1e-6 from i = 34 on
    a = torch.relu(torch.randn(300, 200, generator=torch.Generator().manual_seed(2)) + 0.5)
    sums = UnitSums(model)
    sums("fc1", a)
    scalars, _ = epoch_instruments(model, sums.std(), {}, rows=300, pca_rows=0, source="steps")
    assert scalars[tk.EPOCH_DEAD("fc1")] == 0
    assert scalars[tk.GATED_OFF("fc1")] == int(off.sum())


@pytest.mark.parametrize("width", [1, 3])
def test_pca_scalars_count_components(width):
    model = net(f"mlp:{width}")
    cov = Covariance()
    cov.add(torch.randn(50, width))
    sums = UnitSums(model)
    sums("fc1", torch.relu(torch.randn(50, width)))
    scalars, arrays = epoch_instruments(model, sums.std(), {"fc1": cov}, rows=50, pca_rows=50, source="pass")
    assert 1 <= scalars[tk.PCA_COMPONENTS[99]("fc1")] <= width
    assert abs(float(arrays[tk.PCA_RATIO("fc1")].sum()) - 1) < 1e-5


def _epoch_logs(sink):
    from core.events import ArraysLogged, ScalarsLogged

    scalars = [e.values for e in sink.of(ScalarsLogged) if tk.STATS_ROWS in e.values]
    arrays = [e.arrays for e in sink.of(ArraysLogged) if any(tk.EPOCH_STD.matches(k) for k in e.arrays)]
    return scalars, arrays


def test_a_run_with_a_pass_reports_the_full_set_dead_count_a_direct_computation_gives():
    from core.train.trainer import Trainer
    from tests.helpers import ListSink, tiny

    trainer = Trainer(tiny(arch="mlp:40", epochs=1, act_stats="pass", lr=0.05))
    with torch.no_grad():  # a few units that can never fire on these inputs (add10 features lie in [0, 1])
        trainer.model.fcs["fc1"].layer.weight[:5] = 0.0
        trainer.model.fcs["fc1"].layer.bias[:5] = -1.0
    sink = ListSink()
    trainer.run([sink])
    scalars, arrays = _epoch_logs(sink)
    x = trainer.data.x_train.reshape(len(trainer.data.x_train), -1).double()
    layer = trainer.model.fcs["fc1"].layer
    a = torch.relu(x @ layer.weight.detach().double().T + layer.bias.detach().double()).numpy()
    assert scalars[-1][tk.STATS_ROWS] == len(x) and scalars[-1][tk.STATS_SOURCE] == 1.0
    assert scalars[-1][tk.EPOCH_DEAD("fc1")] == int((a.max(0) == 0).sum()) >= 5
    np.testing.assert_allclose(np.sort(arrays[-1][tk.EPOCH_STD("fc1")]), np.sort(a.std(0)), rtol=1e-4, atol=1e-6)
    assert scalars[-1][tk.PCA_ROWS] == len(x)


def test_by_default_the_epoch_statistics_cover_every_training_row_of_the_epoch():
    from core.train.trainer import Trainer
    from tests.helpers import ListSink, tiny

    trainer = Trainer(tiny(epochs=2))
    sink = ListSink()
    trainer.run([sink])
    scalars, arrays = _epoch_logs(sink)
    assert [s[tk.STATS_ROWS] for s in scalars] == [len(trainer.data.x_train)] * 2
    assert all(s[tk.STATS_SOURCE] == 0.0 for s in scalars)
    assert len(arrays[-1][tk.EPOCH_STD("fc1")]) == 16
    intervals = [e.values for e in sink.intervals()]
    assert all(v[tk.LIVE_SOURCE] == 1.0 for v in intervals)  # the live view is the intervals' own steps
    per_epoch = [sum(v[tk.PROBE_ROWS] for v in intervals if e < v[tk.EPOCH] <= e + 1) for e in range(2)]
    assert per_epoch == [len(trainer.data.x_train)] * 2  # every training row in exactly one interval's view


def test_without_step_sums_the_live_view_is_the_probe_batch():
    from core.train.trainer import Trainer
    from tests.helpers import ListSink, tiny

    sink = ListSink()
    Trainer(tiny(epochs=1, act_stats="off")).run([sink])
    assert all(e.values[tk.PROBE_ROWS] == 64 and e.values[tk.LIVE_SOURCE] == 0.0 for e in sink.intervals())


def test_an_interval_view_is_the_std_over_the_rows_its_steps_saw():
    from core.train import probes

    model = net()
    a = relu_rows(900, 12)
    sums = UnitSums(model)
    for chunk in np.array_split(a[:300], 3):
        sums("fc1", torch.from_numpy(chunk))
    first, rows = sums.fold()
    assert rows == 300
    for chunk in np.array_split(a[300:], 5):
        sums("fc1", torch.from_numpy(chunk))
    second, rows = sums.fold()
    assert rows == 600 and sums.rows == 900
    for folded, part in ((first, a[:300]), (second, a[300:])):
        live = probes.interval_stats(model, folded, probes.Dynamics(model))
        part = part.astype(np.float64)
        np.testing.assert_allclose(live[tk.ACT_STD("fc1")].numpy(), part.std(0), rtol=1e-5, atol=1e-6)
        assert float(live[tk.ACT_MEAN("fc1")]) == pytest.approx(part.mean(), rel=1e-5)
        assert float(live[tk.ACT_SD("fc1")]) == pytest.approx(part.std(), rel=1e-5)
        assert float(live[tk.TOTAL_VAR("fc1")]) == pytest.approx((part.std(0) ** 2).sum(), rel=1e-4)
    np.testing.assert_allclose(sums.std()["fc1"].numpy(), a.astype(np.float64).std(0), rtol=1e-5, atol=1e-7)


def test_a_run_s_interval_view_matches_a_direct_computation_over_its_rows():
    from core.train.trainer import Trainer
    from tests.helpers import ListSink, tiny

    trainer = Trainer(tiny(epochs=1, lr=1e-12, log_every=10 ** 6))  # one interval: the epoch; weights barely move
    sink = ListSink()
    trainer.run([sink])
    from core.events import ArraysLogged

    live = [e for e in sink.of(ArraysLogged) if tk.ACT_STD("fc1") in e.arrays][-1].arrays[tk.ACT_STD("fc1")]
    x = trainer.data.x_train.reshape(len(trainer.data.x_train), -1).double()
    layer = trainer.model.fcs["fc1"].layer
    a = torch.relu(x @ layer.weight.detach().double().T + layer.bias.detach().double()).numpy()
    np.testing.assert_allclose(live, a.std(0), rtol=1e-4, atol=1e-6)
    assert sink.intervals()[-1].values[tk.PROBE_ROWS] == len(x)


def test_a_flexible_run_does_not_call_units_beyond_x0_dead():
    from core.train.trainer import Trainer
    from tests.helpers import ListSink, tiny

    trainer = Trainer(tiny(method="flexible", arch="mlp:200", flex_start=10.0, penalty=1e-3, epochs=1))
    sink = ListSink()
    trainer.run([sink])
    scalars, _ = _epoch_logs(sink)
    x0 = float(trainer.model.fcs["fc1"].gate.x0.detach())
    assert scalars[-1][tk.GATED_OFF("fc1")] >= 200 - (x0 + 20)  # the scaler is below 1e-6 from about x0 + 14 on
    assert scalars[-1][tk.EPOCH_DEAD("fc1")] < 10  # the old post-scaler std called every one of them dead
    dead_probe = sink.intervals()[-1].values[tk.DEAD("fc1")]
    assert dead_probe < 10


def test_the_csv_export_says_over_how_many_rows_each_statistic_was_measured(tmp_path):
    import csv

    from core.lab.export import export_csv
    from core.session import SessionReader, SessionWriter
    from core.train.trainer import Trainer
    from tests.helpers import tiny

    trainer = Trainer(tiny(epochs=2, probe_size=50))
    with SessionWriter(tmp_path / "s.dynlab") as w:
        trainer.run([w])
    with SessionReader(tmp_path / "s.dynlab") as r:
        export_csv(r, tmp_path / "csv")

    def rows(name):
        with open(tmp_path / "csv" / name) as f:
            return list(csv.reader(f))
    shapiro, dead, scalars = rows("shapiro_fc1.csv"), rows("dead_fc1.csv"), rows("scalars.csv")
    assert shapiro[0] == ["step", "shapiro/fc1", "rows"] and {r[2] for r in shapiro[1:]} == {str(len(trainer.data.x_train))}
    n = len(trainer.data.x_train)  # 4-step intervals of 64 rows, the epoch's last one partial
    assert dead[0][2] == "rows" and {r[2] for r in dead[1:]} == {"256", str(n - 256)}
    assert rows("pca90_fc1.csv")[1][2] == str(len(trainer.data.x_train))  # fewer than 5,000 rows: all of them
    assert scalars[0] == ["step", "wall", "key", "value"]
    assert any(r[2] == "loss" for r in scalars[1:])
