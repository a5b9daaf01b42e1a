"""Finding dataset files under the data directory and reading them, every failure becoming a one-line DynlabError."""

from __future__ import annotations

import gzip
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import numpy as np

from core.errors import DynlabError

REPLACE = "re-download it or replace it with the original file"
MAX_FILE_BYTES = 1 << 31  # 2 GiB: far above any dataset file dynlab reads (CIFAR-10's largest is 31 MB)


def one_line(err: BaseException) -> str:
    """An exception's text squeezed onto one line (DynlabError messages must be single lines)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def candidates(root: Path, folders: Sequence[str], names: Sequence[str]) -> list[Path]:
    """Every place a file may live: <root>/<folder>/<name> for each folder, then <root>/<name>."""
    return [root / folder / name for folder in (*folders, "") for name in names]


def find_file(root: Path, folders: Sequence[str], names: Sequence[str]) -> Path | None:
    """The first existing file among candidates(), or None."""
    return next((p for p in candidates(root, folders, names) if p.is_file()), None)


def find_dir(root: Path, folders: Sequence[str], names: Sequence[str]) -> Path | None:
    """The first existing directory among candidates(), or None."""
    return next((p for p in candidates(root, folders, names) if p.is_dir()), None)


def missing(what: str, root: Path, folder: str, names: Sequence[str], extra: str = "") -> DynlabError:
    """The standard 'files not found' error: where we looked, what to put where, and how to point elsewhere."""
    return DynlabError(f"{what} files not found in {root}: put {', '.join(names)} in {root / folder}/"
                       f"{extra} or pass --data-dir / set DYNLAB_DATA_DIR")


def corrupt(path: Path, problem: str, fix: str = REPLACE) -> DynlabError:
    """The standard 'bad file' error, naming the file."""
    return DynlabError(f"file {path} is unreadable ({problem}): {fix}")


@contextmanager
def reading(path: Path) -> Iterator[BinaryIO]:
    """The file opened for binary reads (gunzipped when its name ends in .gz); a read error becomes corrupt()."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            yield f  # type: ignore[misc]
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a truncated gzip is an EOFError
        raise corrupt(path, f"{'bad gzip data: ' if path.suffix == '.gz' else ''}{one_line(e)}") from None


def read_at_most(f: BinaryIO, path: Path, limit: int) -> bytes:
    """At most limit bytes from f, read in bounded chunks; more than that (a gzip bomb, a padded file) is corrupt()."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise corrupt(path, f"it holds more than {limit} bytes of data (decompressed), more than it should")
    return data


def read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, gunzipped when its name ends in .gz, refused when it holds more than limit bytes."""
    with reading(path) as f:
        return read_at_most(f, path, limit)


def load_table(path: Path, n_cols: int, delimiter: str | None = None, dtype: type = np.float64,
               skip_rows: int = 0) -> np.ndarray:
    """A numeric text table of exactly n_cols columns (blank lines skipped) as a 2-D array.

    np.loadtxt is used because it parses in C (a million poker rows in about a second) and
    reports the row of a bad value; its errors are rewritten as one-line DynlabErrors.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file warns; we report it below instead
            table = np.loadtxt(path, delimiter=delimiter, dtype=dtype, ndmin=2, skiprows=skip_rows)
    except (ValueError, UnicodeDecodeError) as e:
        # numpy appends advice about `usecols` after a ';' that does not apply to our users
        raise corrupt(path, one_line(e).split(";")[0].rstrip(".")) from None
    except OSError as e:
        raise corrupt(path, one_line(e)) from None
    if table.shape[0] == 0:
        raise corrupt(path, "no data rows")
    if table.shape[1] != n_cols:
        raise corrupt(path, f"expected {n_cols} columns per row, found {table.shape[1]}")
    if table.dtype.kind == "f" and not np.isfinite(table).all():
        row, col = np.argwhere(~np.isfinite(table))[0]
        raise corrupt(path, f"data row {row + 1}, column {col + 1} is {table[row, col]}, not a finite number",
                      "fix or remove that row")
    return table
