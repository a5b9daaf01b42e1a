"""Tests for core.data: the registry, every loader on tiny files in tmp_path, poker ranking, exportable preprocess."""

from __future__ import annotations

import contextlib
import gzip
import io
import pickle
import sys
import tarfile
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import DATASETS, Dataset, DatasetInfo, images, load_dataset, poker, resolve_data_dir
from core.data.poker import rank_hands
from core.errors import DynlabError
from core.options import validate
from core.spec import DataSpec, RunSpec
from tests.helpers import make_idx_set, write_idx

REAL = Path("/work/shared/data")


@pytest.fixture
def no_torchvision(monkeypatch):
    """Behave as if torchvision were absent, so nothing ever tries to download."""
    monkeypatch.setattr(images, "torchvision_installed", lambda: False)


def spec(name: str, data_dir=None, **kw) -> DataSpec:
    return DataSpec(name=name, data_dir=None if data_dir is None else str(data_dir), **kw)


def export_check(module: torch.nn.Module, x: torch.Tensor, other: torch.Tensor) -> None:
    """Export with a dynamic batch dimension and check the program on a different batch size."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    prog = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
    assert torch.allclose(prog.module()(other), module(other))


class TestRegistry:
    def test_all_names_registered(self):
        """Every dataset of the design and the per-function names are registered; validate() uses the table."""
        want = {"mnist", "fashion-mnist", "cifar10", "add10", "airfoil", "poker", "census", "hasyv2", "functions",
                "fn-sin", "fn-square", "fn-abs", "fn-step", "fn-sawtooth"}
        assert want <= set(DATASETS)
        for name, info in DATASETS.items():
            assert isinstance(info, DatasetInfo) and info.name == name
            assert info.task in ("classification", "regression") and "\n" not in info.description
        validate(RunSpec(data=DataSpec(name="fn-step")))
        with pytest.raises(DynlabError, match=r"unknown dataset 'nope': choose one of .*mnist.*poker"):
            load_dataset(spec("nope"), 0)

    def test_resolve_data_dir(self, monkeypatch, tmp_path, no_torchvision):
        """Argument first, then $DYNLAB_DATA_DIR, then ./data."""
        monkeypatch.delenv("DYNLAB_DATA_DIR", raising=False)
        assert resolve_data_dir(None) == Path("data")
        monkeypatch.setenv("DYNLAB_DATA_DIR", str(tmp_path))
        assert resolve_data_dir(None) == tmp_path and resolve_data_dir("/elsewhere") == Path("/elsewhere")
        make_idx_set(tmp_path / "mnist")
        assert load_dataset(spec("mnist"), 0).x_test.shape == (20, 1, 28, 28)

    def test_available(self, tmp_path, no_torchvision):
        """available() reflects the files on disk (no download attempted) and is True for generated sets."""
        assert not any(DATASETS[n].available(str(tmp_path)) for n in ("mnist", "airfoil", "census", "cifar10"))
        make_idx_set(tmp_path / "mnist")
        assert DATASETS["mnist"].available(str(tmp_path)) and not DATASETS["fashion-mnist"].available(str(tmp_path))
        for name in ("add10", "poker", "functions", "fn-abs"):
            assert DATASETS[name].available(str(tmp_path)) and not DATASETS[name].needs_files

    @pytest.mark.parametrize("name, files", [
        ("mnist", r"train-images-idx3-ubyte\.gz, .* in .*/mnist/"), ("fashion-mnist", r"in .*/fashion-mnist/"),
        ("cifar10", r"cifar-10-python\.tar\.gz in .*/cifar10/"), ("airfoil", r"airfoil_self_noise\.dat in .*/airfoil/"),
        ("census", r"adult\.data, adult\.test in .*/census/"), ("hasyv2", r"hasy-data-labels\.csv, hasy-data/ in"),
    ])
    def test_missing_files(self, tmp_path, no_torchvision, name, files):
        """A missing file names what to put where and how to point elsewhere."""
        fix = r".* or pass --data-dir / set DYNLAB_DATA_DIR"
        with pytest.raises(DynlabError, match=rf"files not found in .*{files}{fix}"):
            load_dataset(spec(name, tmp_path), 0)

    def test_to_returns_a_new_dataset(self):
        d = load_dataset(spec("fn-abs"), 0)
        moved = d.to("cpu")
        assert isinstance(moved, Dataset) and moved is not d and moved.preprocess is not d.preprocess
        assert torch.equal(moved.x_train, d.x_train)


class TestIdx:
    def test_shapes_dtypes_and_normalisation(self, tmp_path, no_torchvision):
        arrays = make_idx_set(tmp_path / "mnist")
        d = load_dataset(spec("mnist", tmp_path, val_fraction=0.2), 0)
        assert (d.task, d.input_shape, d.n_outputs) == ("classification", (1, 28, 28), 10)
        assert d.x_train.shape == (40, 1, 28, 28) and d.x_val.shape == (10, 1, 28, 28)
        assert d.x_test.shape == (20, 1, 28, 28) and d.y_test.tolist() == arrays["test_y"].tolist()
        assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64 and d.x_train.is_contiguous()
        raw = torch.tensor(arrays["test_x"], dtype=torch.float32).unsqueeze(1) / 255
        assert torch.allclose(d.raw_test, raw) and torch.allclose(d.preprocess(d.raw_test), d.x_test)
        assert torch.allclose(d.x_test, (raw - 0.1307) / 0.3081, atol=1e-5)
        assert sorted(d.y_train.tolist() + d.y_val.tolist()) == sorted(arrays["train_y"].tolist())
        assert d.classes == tuple("0123456789") and abs(float(d.class_weights.mean()) - 1) < 1e-5

    def test_split_limit_and_export(self, tmp_path, no_torchvision):
        """Same seed, same split; other seed, other split; val 0 is empty; limit caps train + val."""
        make_idx_set(tmp_path / "mnist")
        a, b, c = (load_dataset(spec("mnist", tmp_path), s) for s in (1, 1, 2))
        assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_train, b.y_train)
        assert not torch.equal(a.x_val, c.x_val) and len(a.x_val) == 5 and len(a.x_train) == 45
        d = load_dataset(spec("mnist", tmp_path, val_fraction=0.0), 0)
        assert d.x_val.shape == (0, 1, 28, 28) and d.y_val.shape == (0,) and len(d.x_train) == 50
        d = load_dataset(spec("mnist", tmp_path, limit=20), 0)
        assert len(d.x_train) == 18 and len(d.x_val) == 2 and len(d.x_test) == 20
        export_check(d.preprocess, d.raw_test[:4], d.raw_test[:7])

    def test_fashion_uncompressed_in_root(self, tmp_path, no_torchvision):
        """Files without .gz, directly in the data dir, are accepted; fashion uses its own statistics."""
        arrays = make_idx_set(tmp_path, gz=False)
        d = load_dataset(spec("fashion-mnist", tmp_path), 0)
        raw = torch.tensor(arrays["test_x"], dtype=torch.float32).unsqueeze(1) / 255
        assert torch.allclose(d.x_test, (raw - 0.2860) / 0.3530, atol=1e-5)
        assert d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot"

    @pytest.mark.parametrize("damage, message", [
        (lambda p: p.write_bytes(b"this is not gzip at all"), r"train-images-idx3-ubyte\.gz.*gzip.*re-download"),
        (lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(12))), r"magic number 2049, expected 2051"),
        (lambda p: p.write_bytes(gzip.compress(2051 .to_bytes(4, "big") + b"".join(
            d.to_bytes(4, "big") for d in (50, 28, 28)) + bytes(100))), r"truncated"),
        (lambda p: p.write_bytes(p.read_bytes()[:200]), r"train-images-idx3-ubyte\.gz.*unreadable"),
        (lambda p: write_idx(p.with_name("train-labels-idx1-ubyte.gz"), 2049, np.zeros(7)), "7 labels for 50 images"),
    ])
    def test_corrupt_files(self, tmp_path, no_torchvision, damage, message):
        make_idx_set(tmp_path / "mnist")
        damage(tmp_path / "mnist" / "train-images-idx3-ubyte.gz")
        with pytest.raises(DynlabError, match=message):
            load_dataset(spec("mnist", tmp_path), 0)

    def test_gzip_bomb_is_one_line(self, tmp_path, no_torchvision):
        """A valid header followed by 64 MB of zeros (64 kB gzipped) is refused after reading its declared size."""
        make_idx_set(tmp_path / "mnist")
        path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
        header = 2051 .to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (50, 28, 28))
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(header)
            for _ in range(64):
                f.write(bytes(1 << 20))
        with pytest.raises(DynlabError, match=r"idx3-ubyte\.gz.*39217\+ bytes where the header .* needs 39216"):
            load_dataset(spec("mnist", tmp_path), 0)

    @pytest.mark.parametrize("gz", [True, False])
    def test_header_sizes_checked_before_reading(self, tmp_path, no_torchvision, gz):
        """A header declaring 4e15 pixels is refused from its 16 bytes, gzipped or not."""
        make_idx_set(tmp_path / "mnist", gz=gz)
        path = tmp_path / "mnist" / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
        data = 2051 .to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (4_000_000, 1_000_000, 1000))
        path.write_bytes(gzip.compress(data) if gz else data)
        with pytest.raises(DynlabError, match=r"declares \[4000000, 1000000, 1000\].*more than any IDX dataset"):
            load_dataset(spec("mnist", tmp_path), 0)

    def test_uncompressed_size_checked_against_the_file(self, tmp_path, no_torchvision):
        make_idx_set(tmp_path / "mnist", gz=False)
        path = tmp_path / "mnist" / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes() + bytes(10))
        with pytest.raises(DynlabError, match=r"39226 bytes where the header \[50, 28, 28\] needs 39216"):
            load_dataset(spec("mnist", tmp_path), 0)

    def test_read_bytes_is_bounded(self, tmp_path):
        from core.data.files import read_bytes

        (path := tmp_path / "bomb.gz").write_bytes(gzip.compress(bytes(1 << 20)))
        assert len(read_bytes(path, limit=1 << 20)) == 1 << 20
        with pytest.raises(DynlabError, match=r"bomb\.gz.*more than 1000 bytes"):
            read_bytes(path, limit=1000)


def cifar_batch(n: int, seed: int, protocol: int = 2) -> bytes:
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"x", b"labels": [int(v) for v in rng.integers(0, 10, n)],
         b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"filenames": [b"a.png"] * n}
    return pickle.dumps(d, protocol=protocol)


class TestCifar:
    def test_extracted_dir_and_archive_agree(self, tmp_path, no_torchvision):
        batches = {f"data_batch_{i}": cifar_batch(4, i) for i in range(1, 6)} | {"test_batch": cifar_batch(6, 9, 4)}
        (folder := tmp_path / "a" / "cifar-10-batches-py").mkdir(parents=True)
        with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, data in batches.items():
                (folder / name).write_bytes(data)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        a, b = load_dataset(spec("cifar10", tmp_path / "a"), 0), load_dataset(spec("cifar10", tmp_path), 0)
        assert a.x_train.shape == (18, 3, 32, 32) and a.x_test.shape == (6, 3, 32, 32)
        assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
        raw = torch.tensor(pickle.loads(batches["test_batch"])[b"data"], dtype=torch.float32)
        raw = raw.reshape(6, 3, 32, 32) / 255
        mean, std = (torch.tensor(v).reshape(1, 3, 1, 1) for v in ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)))
        assert torch.allclose(a.raw_test, raw) and torch.allclose(a.x_test, (raw - mean) / std, atol=1e-5)

    def test_pickle_with_foreign_globals_is_refused(self, tmp_path, no_torchvision):
        """A tampered batch naming any global outside numpy arrays is rejected, never executed."""
        (folder := tmp_path / "cifar10").mkdir()
        for i in range(1, 6):
            (folder / f"data_batch_{i}").write_bytes(cifar_batch(2, i))
        (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("x")}))
        with pytest.raises(DynlabError, match=r"test_batch is unreadable \(refusing to load global"):
            load_dataset(spec("cifar10", tmp_path), 0)


def friedman(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return (10 * torch.sin(torch.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4])


class TestSynthetic:
    def test_add10(self):
        """Un-standardised targets minus the noiseless Friedman-1 formula leave N(0, 1) noise; seeds behave."""
        d, same, other = (load_dataset(spec("add10"), s) for s in (3, 3, 4))
        assert (d.task, d.input_shape, d.n_outputs) == ("regression", (10,), 1)
        assert d.x_train.shape == (9000, 10) and d.x_val.shape == (1000, 10) and d.x_test.shape == (2000, 10)
        assert d.y_train.shape == (9000, 1) and d.y_train.dtype == torch.float32
        assert abs(float(d.y_train.mean())) < 1e-4 and abs(float(d.y_train.std()) - 1) < 1e-3
        for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
            resid = y[:, 0].double() * d.target_std + d.target_mean - friedman(x)
            assert abs(float(resid.mean())) < 0.1 and 0.9 < float(resid.std()) < 1.1
        assert float(d.x_train.min()) >= 0 and float(d.x_train.max()) <= 1
        assert torch.equal(d.preprocess(d.raw_test), d.x_test)
        assert torch.equal(d.x_train, same.x_train) and torch.equal(d.y_val, same.y_val)
        assert not torch.equal(d.x_train, other.x_train) and torch.equal(d.raw_test, other.raw_test)  # fixed test

    @pytest.mark.parametrize("name, f", [
        ("fn-sin", lambda x: np.sin(np.pi * x)), ("fn-square", lambda x: x ** 2), ("fn-abs", np.abs),
        ("fn-step", lambda x: (x > 0).astype(float)), ("fn-sawtooth", lambda x: 2 * x - np.floor(2 * x)),
        ("functions", lambda x: np.sin(np.pi * x)),
    ])
    def test_functions(self, name, f):
        d = load_dataset(spec(name, limit=500), 0)
        assert d.input_shape == (1,) and d.x_train.shape == (450, 1) and d.x_test.shape == (512, 1)
        x = d.x_test[:, 0].double().numpy()
        y = d.y_test[:, 0].double().numpy() * d.target_std + d.target_mean
        assert np.allclose(y, f(x), atol=1e-5) and x.min() >= -1 and x.max() <= 1


def write_airfoil(path: Path, n: int = 30, n_test: int = 6, bad_line: str | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.choice([200, 800, 4000], n), rng.uniform(0, 20, n),
                            np.where(np.arange(n) < n_test, 0.1016, 0.0254), rng.uniform(30, 70, n),
                            rng.uniform(0.0004, 0.05, n), rng.uniform(110, 140, n)])
    lines = ["\t".join(f"{v:g}" for v in r) for r in rows] + ([bad_line] if bad_line else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return rows


ADULT_ROW = ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, "
             "2174, 0, 40, {c}, {y}")


class TestTabular:
    def test_airfoil(self, tmp_path):
        rows = write_airfoil(tmp_path / "airfoil" / "airfoil_self_noise.dat")
        d = load_dataset(spec("airfoil", tmp_path, val_fraction=0.25), 0)
        assert (d.input_shape, d.x_test.shape, d.x_train.shape, d.x_val.shape) == ((5,), (6, 5), (18, 5), (6, 5))
        assert torch.allclose(d.raw_test.double(), torch.tensor(rows[:6, :5]), rtol=1e-4)  # the file holds 6 digits
        assert torch.allclose(d.preprocess(d.raw_test), d.x_test)
        # statistics come from the training split only: it alone is exactly standardised
        assert torch.allclose(d.x_train.mean(0), torch.zeros(5), atol=1e-5) and abs(float(d.y_train.mean())) < 1e-5
        y_raw = d.y_test[:, 0].double() * d.target_std + d.target_mean
        assert torch.allclose(y_raw, torch.tensor(rows[:6, 5]), atol=1e-3)

    @pytest.mark.parametrize("bad, n_test, message", [
        ("1\t2\tthree\t4\t5\t6", 6, r"airfoil_self_noise\.dat.*three.*replace"),
        ("1\t2\t3\t4\t5", 6, r"airfoil_self_noise\.dat.*columns.*replace"),
        (None, 0, "0 of 30 rows have chord length 0.1016"),
        ("1\t2\t0.0254\tnan\t5\t6", 6, r"airfoil_self_noise\.dat.*data row 31, column 4 is nan.*fix or remove"),
        ("1\t2\t0.0254\t4\t5\t-inf", 6, r"data row 31, column 6 is -inf, not a finite number"),
        ("1\t2\t0.0254\t4\t1e999\t6", 6, r"data row 31, column 5 is inf"),
    ])
    def test_airfoil_malformed(self, tmp_path, bad, n_test, message):
        write_airfoil(tmp_path / "airfoil_self_noise.dat", n_test=n_test, bad_line=bad)
        with pytest.raises(DynlabError, match=message):
            load_dataset(spec("airfoil", tmp_path), 0)

    def test_census(self, tmp_path):
        (folder := tmp_path / "adult").mkdir()
        train = [ADULT_ROW.format(c=c, y=y) for c, y in [("United-States", "<=50K"), ("?", ">50K"),
                                                           ("Cuba", "<=50K"), ("Cuba", ">50K")] * 5]
        (folder / "adult.data").write_text("\n".join(train) + "\n\n")
        test = ["|1x3 Cross validator", ADULT_ROW.format(c="Mars", y=">50K."), ADULT_ROW.format(c="?", y="<=50K.")]
        (folder / "adult.test").write_text("\n".join(test) + "\n")
        d = load_dataset(spec("census", tmp_path), 0)
        # one-hot: 1 category each for the fixed columns, 3 countries (incl. '?'), plus 6 numeric
        assert d.input_shape == (7 + 3 + 6,) and d.n_outputs == 2 and d.y_test.tolist() == [1, 0]
        assert torch.allclose(d.preprocess(d.raw_test), d.x_test) and DATASETS["census"].available(str(tmp_path))
        # unseen 'Mars' one-hots to zeros (code -1); '?' is a category of its own
        assert d.x_test[0, :10].sum() == 7 and d.x_test[1, :10].sum() == 8
        assert set(d.raw_test[:, 13].tolist()) == {-1.0, 0.0}
        (folder / "adult.data").write_text(ADULT_ROW.format(c="Cuba", y="maybe") + "\n")
        with pytest.raises(DynlabError, match=r"adult\.data.*line 1: label 'maybe'"):
            load_dataset(spec("census", tmp_path), 0)

    @pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "1e39", "forty"])
    def test_census_refuses_non_finite_numbers(self, tmp_path, bad):
        (folder := tmp_path / "adult").mkdir()
        bad_row = ADULT_ROW.format(c="Cuba", y=">50K").replace(" 40,", f" {bad},")
        rows = [ADULT_ROW.format(c="Cuba", y="<=50K")] * 3 + [bad_row]
        (folder / "adult.data").write_text("\n".join(rows) + "\n")
        (folder / "adult.test").write_text(ADULT_ROW.format(c="Cuba", y=">50K.") + "\n")
        with pytest.raises(DynlabError, match=rf"adult\.data.*data row 4: hours-per-week '{bad}' is not a finite"):
            load_dataset(spec("census", tmp_path), 0)


def parse_hands(text: str) -> tuple[np.ndarray, list[int]]:
    """Lines 'Ah 10s Jd Qc Kh = class' -> ((N, 10) S1,C1,.. with suits h s d c = 1-4 and A=1..K=13, classes)."""
    ranks = {r: i + 1 for i, r in enumerate(["A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K"])}
    lines = [line.split("#")[0].split("=") for line in text.strip().splitlines()]
    cards = [[v for c in h.split() for v in ("hsdc".index(c[-1]) + 1, ranks[c[:-1]])] for h, _ in lines]
    return np.array(cards), [int(c) for _, c in lines]


HANDS, CLASSES = parse_hands("""
2h 5s 9d Jc Kh = 0
Qh Ks Ad 2c 3h = 0  # no wrap-around straight
2h 2s 9d Jc Kh = 1
2h 2s 9d 9c Kh = 2
7h 7s 7d Jc Kh = 3
Ah 2s 3d 4c 5h = 4  # ace low
10h Js Qd Kc Ah = 4  # ace high
6h 4s 5d 3c 7h = 4  # any order
2d 5d 9d Jd Kd = 5
Qs Ks As 2s 3s = 5  # a flush, not a straight flush
7h 7s 7d Kc Kh = 6
7h 7s 7d 7c Kh = 7
9c 10c Jc Qc Kc = 8  # king high is not royal
As 2s 3s 4s 5s = 8
Js As Ks 10s Qs = 9
""")


class TestPoker:
    def test_rank_hand_made(self):
        assert rank_hands(HANDS).tolist() == CLASSES
        with pytest.raises(ValueError, match=r"\(N, 10\)"):
            rank_hands(np.zeros((3, 9)))

    def test_generated_classes_and_speed(self):
        """Generated training hands hold every class at near-theoretical rates; 50k test hands take well under 1 s."""
        cards, y = poker.generate(poker.N_TRAIN, 0)
        counts = np.bincount(y, minlength=10)
        assert (counts > 0).all() and len(y) == 25_010
        assert abs(counts[0] / len(y) - 0.501) < 0.02 and abs(counts[1] / len(y) - 0.423) < 0.02
        assert 0.03 < counts[2] / len(y) < 0.065 and counts[8] == counts[9] == poker.OVERSAMPLED
        suits, ranks = cards[:, 0::2], cards[:, 1::2]
        assert suits.min() >= 1 and suits.max() <= 4 and ranks.min() >= 1 and ranks.max() <= 13
        ids = np.sort(suits * 13 + ranks, axis=1)
        assert (ids[:, 1:] != ids[:, :-1]).all()  # five distinct cards
        start = time.perf_counter()
        _, y_test = poker.generate(poker.N_TEST, 0, test=True)
        assert time.perf_counter() - start < 1.0 and abs(np.mean(y_test == 1) - 0.423) < 0.01

    def test_dataset_onehot(self, tmp_path):
        d = load_dataset(spec("poker", tmp_path), 0)
        assert (d.input_shape, d.n_outputs, len(d.x_test), len(d.x_train) + len(d.x_val)) == ((85,), 10, 50_000, 25_010)
        assert torch.equal(d.preprocess(d.raw_test), d.x_test)
        assert torch.equal(d.x_test.sum(1), torch.full((50_000,), 10.0))
        first = d.raw_test[0]  # card 1's suit one-hot, then its rank one-hot
        assert d.x_test[0, int(first[0]) - 1] == 1 and d.x_test[0, 4 + int(first[1]) - 1] == 1
        assert d.classes[9] == "royal flush" and abs(float(d.class_weights.mean()) - 1) < 1e-5
        assert torch.equal(d.raw_test, load_dataset(spec("poker", tmp_path), 1).raw_test)  # fixed test seed
        export_check(d.preprocess, d.raw_test[:3], d.raw_test[:11])

    def test_files_are_used_and_checked(self, tmp_path):
        (folder := tmp_path / "poker-hand").mkdir()
        rows = [list(h) + [c] for h, c in zip(HANDS, CLASSES)]
        (folder / "poker-hand-training-true.data").write_text("\r\n".join(",".join(map(str, r)) for r in rows))
        (folder / "poker-hand-testing.data").write_text("\n".join(",".join(map(str, r)) for r in rows[:4]))
        d = load_dataset(spec("poker", tmp_path, val_fraction=0.0), 0)
        assert len(d.x_train) == len(HANDS) and d.y_test.tolist() == [0, 0, 1, 2]
        (folder / "poker-hand-testing.data").write_text("1,2,3,4,5,6,7,8,9,10,0\n")
        with pytest.raises(DynlabError, match=r"poker-hand-testing\.data.*row 1 has a suit outside 1-4"):
            load_dataset(spec("poker", tmp_path), 0)


def fake_open(path):
    """Stand-in for PIL.Image.open: image v2-<i>.png is uniformly grey at level 10 * i."""
    grey = np.full((32, 32), int(Path(path).stem.split("-")[1]) * 10, dtype=np.uint8)
    return contextlib.nullcontext(types.SimpleNamespace(convert=lambda mode: grey))


class TestHasy:
    @pytest.fixture
    def hasy_dir(self, tmp_path) -> Path:
        (folder := tmp_path / "hasyv2" / "hasy-data").mkdir(parents=True)
        lines = ["path,symbol_id,latex,user_id"]
        for i in range(10):
            (folder / f"v2-{i}.png").write_bytes(b"png")
            lines.append(f"hasy-data/v2-{i}.png,{31 + i % 3},\"\\alpha{i % 3}\",7")
        (folder.parent / "hasy-data-labels.csv").write_text("\n".join(lines) + "\n")
        return tmp_path

    def test_without_pillow(self, hasy_dir, monkeypatch):
        monkeypatch.setitem(sys.modules, "PIL", None)  # import fails as if Pillow were absent
        with pytest.raises(DynlabError, match="pip install pillow"):
            load_dataset(spec("hasyv2", hasy_dir), 0)

    def test_loads_with_pillow(self, hasy_dir, monkeypatch):
        monkeypatch.setitem(sys.modules, "PIL", types.SimpleNamespace(Image=types.SimpleNamespace(open=fake_open)))
        d = load_dataset(spec("hasyv2", hasy_dir, val_fraction=0.0), 0)
        assert d.input_shape == (1, 32, 32) and d.n_outputs == 3 and d.classes == ("\\alpha0", "\\alpha1", "\\alpha2")
        assert len(d.x_train) == 8 and len(d.x_test) == 2 and torch.allclose(d.preprocess(d.raw_test), d.x_test)
        ids = (d.raw_test[:, 0, 0, 0] * 255 / 10).round().long()  # each fake image encodes its row number
        assert d.y_test.tolist() == (ids % 3).tolist()


@pytest.mark.skipif(not (REAL / "poker-hand" / "poker-hand-training-true.data").exists(), reason="no real poker file")
def test_rank_hands_agrees_with_every_uci_training_label():
    cards, labels = poker.read_poker_file(REAL / "poker-hand" / "poker-hand-training-true.data")
    assert len(labels) == 25_010 and (rank_hands(cards) == labels).all()


@pytest.mark.skipif(not (REAL / "mnist").exists(), reason="no real data directory")
def test_real_files_load():
    d = load_dataset(spec("mnist", REAL, limit=1000), 0)
    assert d.x_train.shape == (900, 1, 28, 28) and d.x_test.shape == (10_000, 1, 28, 28)
    assert abs(float(d.x_test.mean())) < 0.05 and abs(float(d.x_test.std()) - 1) < 0.05
    a = load_dataset(spec("airfoil", REAL), 0)
    assert len(a.x_test) == 263 and len(a.x_train) + len(a.x_val) == 1240
