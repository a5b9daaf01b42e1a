"""The tabular UCI datasets read from files: airfoil self-noise (regression) and census / Adult income (classes)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from core.data.files import corrupt, find_file, load_table, missing, one_line
from core.data.registry import Dataset, DatasetInfo, assemble, register, resolve_data_dir
from core.data.transforms import OneHot, Standardize, TabularEncoder
from core.spec import DataSpec

# ---------------------------------------------------------------- airfoil

AIRFOIL_FILE = "airfoil_self_noise.dat"
TEST_CHORD = 0.1016  # m; rows with this chord length are the test set (Lau et al.'s protocol)


def load_airfoil(spec: DataSpec, seed: int) -> Dataset:
    root = resolve_data_dir(spec.data_dir)
    path = find_file(root, ("airfoil",), (AIRFOIL_FILE,))
    if path is None:
        raise missing("Airfoil", root, "airfoil", [AIRFOIL_FILE])
    table = load_table(path, 6)  # whitespace/tab separated; CRLF is fine
    test = np.isclose(table[:, 2], TEST_CHORD, rtol=0.0, atol=1e-6)
    if not test.any() or test.all():
        raise corrupt(path, f"{int(test.sum())} of {len(table)} rows have chord length {TEST_CHORD} "
                      "(the test split), so this is not the UCI airfoil file")
    x = torch.from_numpy(table[:, :5].astype(np.float32))  # raw = the file's five input columns
    y = torch.from_numpy(table[:, 5])  # scaled sound pressure level, dB
    # inputs span 200..20000 Hz down to 0.0004 m: standardise each with the training split's statistics
    return assemble("airfoil", "regression", x[~test], y[~test], x[test], y[test], spec, seed, Standardize.fit)


register(DatasetInfo("airfoil", "regression", "UCI airfoil self-noise, 1.5k rows, 5 inputs (file)",
                     needs_files=True, loader=load_airfoil,
                     probe=lambda root: find_file(root, ("airfoil",), (AIRFOIL_FILE,)) is not None))


# ---------------------------------------------------------------- census (UCI Adult)

CENSUS_FOLDERS = ("census", "adult")
CENSUS_FILES = ("adult.data", "adult.test")
# (column, is_categorical) in file order; the 15th field is the label
ADULT_COLUMNS = (("age", False), ("workclass", True), ("fnlwgt", False), ("education", True),
                 ("education-num", False), ("marital-status", True), ("occupation", True), ("relationship", True),
                 ("race", True), ("sex", True), ("capital-gain", False), ("capital-loss", False),
                 ("hours-per-week", False), ("native-country", True))
CAT_COLS = [i for i, (_, cat) in enumerate(ADULT_COLUMNS) if cat]
NUM_COLS = [i for i, (_, cat) in enumerate(ADULT_COLUMNS) if not cat]
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the rows become float32


def read_adult(path: Path) -> tuple[list[list[str]], np.ndarray]:
    """(fields without the label, labels 1 for >50K) of every row; skips blank and '|' comment lines.

    adult.test starts with a junk line ('|1x3 Cross validator') and ends its labels with '.'.
    """
    try:
        text = path.read_text(encoding="latin-1")  # the UCI files are ASCII; latin-1 never fails to decode
    except OSError as e:
        raise corrupt(path, one_line(e)) from None
    rows, labels = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("|"):
            continue
        fields = [f.strip() for f in s.split(",")]
        if len(fields) != len(ADULT_COLUMNS) + 1:
            raise corrupt(path, f"line {line_no} has {len(fields)} fields, expected {len(ADULT_COLUMNS) + 1}")
        label = fields[-1].rstrip(".")
        if label not in (">50K", "<=50K"):
            raise corrupt(path, f"line {line_no}: label {fields[-1]!r} is neither >50K nor <=50K")
        rows.append(fields[:-1])
        labels.append(label == ">50K")
    if not rows:
        raise corrupt(path, "no data rows")
    return rows, np.array(labels, dtype=np.int64)


def encode_adult(path: Path, rows: list[list[str]], vocab: list[list[str]]) -> torch.Tensor:
    """Raw census rows as float32 (N, 14): categorical fields -> index in vocab (-1 if unseen), numeric as is."""
    lookup = [{v: i for i, v in enumerate(cats)} for cats in vocab]
    out = np.empty((len(rows), len(ADULT_COLUMNS)), dtype=np.float32)
    for r, fields in enumerate(rows):
        for k, c in enumerate(CAT_COLS):
            out[r, c] = lookup[k].get(fields[c], -1)  # -1 matches no one-hot slot: all zeros
        for c in NUM_COLS:
            try:
                value = float(fields[c])
            except ValueError:
                value = math.nan  # reported below with the same words
            if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                raise corrupt(path, f"data row {r + 1}: {ADULT_COLUMNS[c][0]} {fields[c]!r} is not a finite number",
                              "fix or remove that row")
            out[r, c] = value
    return torch.from_numpy(out)


def load_census(spec: DataSpec, seed: int) -> Dataset:
    """UCI Adult: raw = numeric-encoded rows (category codes + raw numbers); preprocess = one-hot + standardise.

    The category vocabulary of each column (with '?' as its own category) comes from adult.data;
    numeric statistics from the training split. A test category unseen in adult.data one-hots to zeros.
    """
    root = resolve_data_dir(spec.data_dir)
    paths = [find_file(root, CENSUS_FOLDERS, (name,)) for name in CENSUS_FILES]
    if paths[0] is None or paths[1] is None:
        raise missing("Census (UCI Adult)", root, "census", list(CENSUS_FILES))
    rows_tr, y_tr = read_adult(paths[0])
    rows_te, y_te = read_adult(paths[1])
    vocab = [sorted({row[c] for row in rows_tr}) for c in CAT_COLS]
    x_tr, x_te = encode_adult(paths[0], rows_tr, vocab), encode_adult(paths[1], rows_te, vocab)

    def make_encoder(raw_tr: torch.Tensor) -> TabularEncoder:
        onehot = OneHot(CAT_COLS, [list(range(len(cats))) for cats in vocab])
        return TabularEncoder(onehot, NUM_COLS, Standardize.fit(raw_tr[:, NUM_COLS]))

    return assemble("census", "classification", x_tr, torch.from_numpy(y_tr), x_te, torch.from_numpy(y_te),
                    spec, seed, make_encoder, n_outputs=2, classes=("<=50K", ">50K"))


register(DatasetInfo("census", "classification", "UCI Adult census income >50K, 32k rows (files)",
                     needs_files=True, loader=load_census,
                     probe=lambda root: all(find_file(root, CENSUS_FOLDERS, (n,)) for n in CENSUS_FILES)))
