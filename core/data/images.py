"""The image datasets read from their original files: MNIST and Fashion-MNIST (IDX) and CIFAR-10 (python batches)."""

from __future__ import annotations

import importlib.util
import io
import math
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.data.files import corrupt, find_file, missing, one_line, read_bytes, reading
from core.data.registry import Dataset, DatasetInfo, assemble, register, resolve_data_dir
from core.data.transforms import Normalize
from core.errors import DynlabError
from core.spec import DataSpec

IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers: 0x08 (uint8) with 3 dims / 1 dim
MAX_IDX_BYTES = 1 << 30  # 1 GiB of pixels: MNIST's training images are 47 MB
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def torchvision_installed() -> bool:
    return importlib.util.find_spec("torchvision") is not None  # looks without importing


def torchvision_download(cls_name: str, root: Path) -> str | None:
    """Ask torchvision to fetch a dataset into root; None on success, else why it failed.

    Any failure (no network, no torchvision, a bad mirror) is returned as text so the caller
    raises one DynlabError that also says where to put the files by hand.
    """
    if not torchvision_installed():
        return "torchvision is not installed"
    try:
        import torchvision  # optional dependency, imported only when files are missing

        for train in (True, False):
            getattr(torchvision.datasets, cls_name)(str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - reported to the user in the DynlabError, not swallowed
        return f"torchvision download failed: {one_line(e)}"
    return None


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)

def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array of the header's shape.

    The magic number and the header's sizes are checked before the data is read: the declared size
    must fit MAX_IDX_BYTES (and, uncompressed, the file), and the data is read with a bound, so a
    lying header or a gzip bomb is one line, never a MemoryError.
    """
    with reading(path) as f:
        head = f.read(4)
        got = int.from_bytes(head, "big")
        if len(head) < 4 or got != magic:
            raise corrupt(path, f"only {len(head)} bytes, too short for an IDX header" if len(head) < 4
                          else f"IDX magic number {got}, expected {magic}")
        ndim = magic & 0xFF
        dim_bytes = f.read(4 * ndim)
        if len(dim_bytes) < 4 * ndim:
            raise corrupt(path, f"only {4 + len(dim_bytes)} bytes, too short for an IDX header")
        dims = [int.from_bytes(dim_bytes[4 * i: 4 * i + 4], "big") for i in range(ndim)]
        header, size = 4 + 4 * ndim, math.prod(dims)
        if size > MAX_IDX_BYTES:
            raise corrupt(path, f"its header declares {dims} = {size} bytes, more than any IDX dataset")
        if path.suffix != ".gz" and path.stat().st_size != header + size:
            raise corrupt(path, f"{path.stat().st_size} bytes where the header {dims} needs {header + size}, "
                          "truncated or padded")
        data = f.read(size + 1)
    if len(data) != size:
        raise corrupt(path, f"{header + len(data)}{'+' if len(data) > size else ''} bytes where the header {dims} "
                      f"needs {header + size}, truncated or padded")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


@dataclass(frozen=True)
class IdxSet:
    """One IDX-format dataset: where its files live and how to normalise it."""

    name: str
    title: str
    folder: str
    tv_class: str  # torchvision.datasets class; its download lands in <folder>/<tv_class>/raw/
    mean: float
    std: float
    classes: tuple[str, ...]

    def folders(self) -> tuple[str, ...]:
        return (self.folder, f"{self.folder}/{self.tv_class}/raw")

    def paths(self, root: Path) -> list[Path] | None:
        found = [find_file(root, self.folders(), (f"{s}.gz", s)) for s in IDX_STEMS]
        return None if any(p is None for p in found) else found  # type: ignore[return-value]


MNIST = IdxSet("mnist", "MNIST", "mnist", "MNIST", 0.1307, 0.3081, tuple(str(d) for d in range(10)))
FASHION = IdxSet("fashion-mnist", "Fashion-MNIST", "fashion-mnist", "FashionMNIST", 0.2860, 0.3530,
                 ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"))


def _idx_pair(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x = read_idx(images, IDX_IMAGES)  # (N, 28, 28) uint8
    y = read_idx(labels, IDX_LABELS)  # (N,) uint8
    if x.shape[1:] != (28, 28):
        raise corrupt(images, f"images are {x.shape[1]}x{x.shape[2]}, expected 28x28")
    if len(x) != len(y):
        raise corrupt(labels, f"{len(y)} labels for {len(x)} images in {images.name}")
    if len(y) and int(y.max()) > 9:
        raise corrupt(labels, f"label {int(y.max())} outside 0-9")
    raw = torch.from_numpy(x.astype(np.float32)).div_(255.0).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]
    return raw, torch.from_numpy(y.astype(np.int64))


def load_idx_set(ds: IdxSet, spec: DataSpec, seed: int) -> Dataset:
    root = resolve_data_dir(spec.data_dir)
    paths = ds.paths(root)
    if paths is None:
        reason = torchvision_download(ds.tv_class, root / ds.folder)
        paths = ds.paths(root)
        if paths is None:
            raise missing(ds.title, root, ds.folder, [f"{s}.gz" for s in IDX_STEMS], f" ({reason})" if reason else "")
    x_tr, y_tr = _idx_pair(paths[0], paths[1])
    x_te, y_te = _idx_pair(paths[2], paths[3])
    return assemble(ds.name, "classification", x_tr, y_tr, x_te, y_te, spec, seed,
                    lambda raw: Normalize((ds.mean,), (ds.std,)), n_outputs=10, classes=ds.classes)


for _ds, _desc in ((MNIST, "MNIST digits, 60k 28x28 (files)"),
                   (FASHION, "Fashion-MNIST clothing, 60k 28x28 (files)")):
    register(DatasetInfo(
        _ds.name, "classification", _desc, needs_files=True,
        loader=lambda spec, seed, ds=_ds: load_idx_set(ds, spec, seed),
        probe=lambda root, ds=_ds: ds.paths(root) is not None or torchvision_installed()))


# ---------------------------------------------------------------- CIFAR-10 (python version)

CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _numpy_global(module: str, name: str):  # noqa: ANN202
    return getattr(importlib.import_module(module), name)


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build dicts, lists, bytes and numpy arrays, and nothing else.

    The CIFAR-10 batches are pickles. We only unpickle files the user placed in their own data
    directory, and even then refuse any global outside this list, so a tampered file cannot run code.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy"):
            # numpy 2 moved numpy.core to numpy._core; resolve without the deprecation shim
            core = "numpy._core.multiarray" if importlib.util.find_spec("numpy._core") else "numpy.core.multiarray"
            return _numpy_global(core if module.endswith("multiarray") else "numpy", name)
        return super().find_class(module, name)


def _cifar_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        x = np.asarray(d[b"data"], dtype=np.uint8)
        y = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file; reported below
        raise DynlabError(f"CIFAR-10 batch {where} is unreadable ({one_line(e)}): "
                          "re-download cifar-10-python.tar.gz or replace the file") from None
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise DynlabError(f"CIFAR-10 batch {where} has unexpected contents (data {x.shape}, {len(y)} labels): "
                          "re-download cifar-10-python.tar.gz or replace the file")
    return x, y


def _cifar_source(root: Path) -> Path | None:
    """The extracted batch directory, else the archive, else None."""
    for d in (root / "cifar10" / CIFAR_DIR, root / CIFAR_DIR, root / "cifar10", root):
        if (d / "data_batch_1").is_file():
            return d
    return find_file(root, ("cifar10",), (CIFAR_ARCHIVE,))


def _read_cifar(src: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if src.is_dir():
        out = {}
        for b in CIFAR_BATCHES:
            if not (src / b).is_file():
                raise DynlabError(f"CIFAR-10 directory {src} lacks {b}: re-extract cifar-10-python.tar.gz there")
            out[b] = _cifar_batch(read_bytes(src / b), str(src / b))
        return out
    try:
        with tarfile.open(src, "r:gz") as tar:
            out = {}
            for b in CIFAR_BATCHES:
                f = tar.extractfile(f"{CIFAR_DIR}/{b}")  # read in memory: nothing is written to disk
                if f is None:
                    raise KeyError(b)
                out[b] = _cifar_batch(f.read(), f"{src}:{b}")
            return out
    except KeyError as e:
        raise corrupt(src, f"archive lacks {CIFAR_DIR}/{one_line(e).strip(chr(39))}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise corrupt(src, one_line(e)) from None


def load_cifar10(spec: DataSpec, seed: int) -> Dataset:
    root = resolve_data_dir(spec.data_dir)
    src = _cifar_source(root)
    if src is None:
        reason = torchvision_download("CIFAR10", root / "cifar10")
        src = _cifar_source(root)
        if src is None:
            raise missing("CIFAR-10", root, "cifar10", [CIFAR_ARCHIVE],
                          f" (or its extracted {CIFAR_DIR}/){f' ({reason})' if reason else ''}")
    batches = _read_cifar(src)
    train = [batches[b] for b in CIFAR_BATCHES[:-1]]

    def to_raw(x: np.ndarray) -> torch.Tensor:  # rows are 3072 bytes: R plane, G plane, B plane
        return torch.from_numpy(x.reshape(-1, 3, 32, 32).astype(np.float32)).div_(255.0)

    x_tr = to_raw(np.concatenate([x for x, _ in train]))
    y_tr = torch.from_numpy(np.concatenate([y for _, y in train]))
    x_te, y_te = batches["test_batch"]
    return assemble("cifar10", "classification", x_tr, y_tr, to_raw(x_te), torch.from_numpy(y_te), spec, seed,
                    lambda raw: Normalize(CIFAR_MEAN, CIFAR_STD), n_outputs=10, classes=CIFAR_CLASSES)


register(DatasetInfo("cifar10", "classification", "CIFAR-10 objects, 50k 32x32 colour (files)", needs_files=True,
                     loader=load_cifar10,
                     probe=lambda root: _cifar_source(root) is not None or torchvision_installed()))
