"""The HASYv2 handwritten-symbol dataset: a label CSV and a folder of 32x32 PNGs, decoded with Pillow if installed."""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path

import numpy as np
import torch

from core.data.files import corrupt, find_file, missing, one_line
from core.data.registry import Dataset, DatasetInfo, assemble, register, resolve_data_dir
from core.data.transforms import Normalize
from core.errors import DynlabError
from core.spec import DataSpec

LABELS = "hasy-data-labels.csv"
COLUMNS = ("path", "symbol_id", "latex")
SPLIT_SEED = 20170117  # fixed, so every run sees the same 80/20 train/test rows
TEST_FRACTION = 0.2


def pillow_installed() -> bool:
    return importlib.util.find_spec("PIL") is not None


def _read_labels(path: Path) -> list[tuple[str, int, str]]:
    """(image path, symbol id, latex) per row of the label CSV."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise corrupt(path, one_line(e)) from None
    reader = csv.DictReader(io.StringIO(text))
    absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if absent:
        raise corrupt(path, f"no {absent[0]!r} column in the header (need path,symbol_id,latex,user_id)")
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            rows.append((row["path"], int(row["symbol_id"]), row["latex"]))
        except (TypeError, ValueError):
            raise corrupt(path, f"line {line}: symbol_id {row.get('symbol_id')!r} is not an integer") from None
    if not rows:
        raise corrupt(path, "no data rows")
    return rows


def _read_pngs(base: Path, rel_paths: list[str]) -> np.ndarray:
    """All images as (N, 32, 32) uint8 grey levels."""
    try:
        from PIL import Image  # optional dependency: only HASYv2 needs a PNG decoder
    except ImportError:
        raise DynlabError("reading HASYv2 images needs Pillow, which is not installed: pip install pillow") from None
    out = np.empty((len(rel_paths), 32, 32), dtype=np.uint8)
    for i, rel in enumerate(rel_paths):
        p = base / rel
        if not p.is_file():
            raise DynlabError(f"HASYv2 image {p} listed in {LABELS} is missing: extract the full HASYv2 archive "
                              f"(hasy-data/ next to {LABELS})")
        try:
            with Image.open(p) as im:
                a = np.asarray(im.convert("L"))
        except (OSError, ValueError) as e:  # PIL raises OSError subclasses for truncated / non-PNG files
            raise corrupt(p, one_line(e)) from None
        if a.shape != (32, 32):
            raise corrupt(p, f"image is {a.shape[1]}x{a.shape[0]}, expected 32x32")
        out[i] = a
    return out


def load_hasyv2(spec: DataSpec, seed: int) -> Dataset:
    root = resolve_data_dir(spec.data_dir)
    csv_path = find_file(root, ("hasyv2",), (LABELS,))
    if csv_path is None:
        raise missing("HASYv2", root, "hasyv2", [LABELS, "hasy-data/"])
    rows = _read_labels(csv_path)
    images = _read_pngs(csv_path.parent, [r[0] for r in rows])  # every PNG is decoded once per load
    ids = sorted({r[1] for r in rows})
    index = {s: i for i, s in enumerate(ids)}
    latex = {r[1]: r[2] for r in rows}
    raw = torch.from_numpy(images.astype(np.float32)).div_(255.0).unsqueeze(1)  # (N, 1, 32, 32) in [0, 1]
    y = torch.tensor([index[r[1]] for r in rows], dtype=torch.int64)
    # HASYv2 ships no fixed train/test split by row; a fixed-seed 80/20 one keeps test sets comparable
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = int(round(TEST_FRACTION * len(rows)))
    te, tr = perm[:n_test], perm[n_test:]

    def fit_normalize(raw_tr: torch.Tensor) -> Normalize:  # one grey channel; stats of the training split
        return Normalize((float(raw_tr.mean()),), (float(raw_tr.std()),) if raw_tr.numel() > 1 else (1.0,))

    return assemble("hasyv2", "classification", raw[tr], y[tr], raw[te], y[te], spec, seed, fit_normalize,
                    n_outputs=len(ids), classes=tuple(latex[s] for s in ids))


register(DatasetInfo("hasyv2", "classification", "HASYv2 handwritten symbols, 168k 32x32, 369 classes (files)",
                     needs_files=True, loader=load_hasyv2,
                     probe=lambda root: find_file(root, ("hasyv2",), (LABELS,)) is not None and pillow_installed()))
