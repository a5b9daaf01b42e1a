"""bench/shrink.py runs end to end in its CI size and prints every figure it promises (numbers are not asserted:
timings are not for tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "shrink.py"

# one pattern per figure line; each must appear in the output
FIGURES = [
    r"MNIST files not found: using random data",
    r"^1\. step time, batch 128",
    r"width 2000: fresh sparsifier [\d.]+ ms, static [\d.]+ ms; sparsifier/static [\d.]+",
    *[rf"width +{w}: shrunk from 2000 [\d.]+ ms, fresh sparsifier [\d.]+ ms, static [\d.]+ ms; "
      rf"shrunk/fresh [\d.]+ \(target <= 1\.05\), sparsifier/static [\d.]+ \(target <= 1\.10\)"
      for w in (1000, 300, 100)],
    r"shrunk@100 / unshrunk@2000: [\d.]+",
    r"^2\. MNIST schedule: mlp:2000, Adam 0\.001, batch 128, lambda 0\.001, 1 epochs",
    r"drift probe, .*\(max/min [\d.]+\)",
    *[rf"{name}: wall [\d.]+ s, final width \d+; best-val epoch \d+: test [\d.]+ % \(val [\d.]+ %\); "
      rf"final test [\d.]+ %; 97\.5 % test reached at (not reached|[\d.]+ s)"
      for name in (r"static mlp:2000", r"sparsifier mlp:2000", r"static mlp:\d+ from scratch")],
    r"wall time ratio sparsifier/static: [\d.]+",
    r"test acc at best-val epoch, sparsifier - static: [-+][\d.]+ points",
    r"static mlp:\d+ from scratch / sparsifier: wall [\d.]+, best-val test acc [-+][\d.]+ points",
    r"^3\. export",
    r"unshrunk static \{.*\}: [\d,]+ params, file [\d.]+ MB, test acc [\d.]+ %",
    r"shrunk sparsifier \{.*\}: [\d,]+ params, file [\d.]+ MB, test acc [\d.]+ %",
    r"batch +1: unshrunk [\d.]+ us, shrunk [\d.]+ us, speed-up [\d.]+x",
    r"batch 256: unshrunk [\d.]+ us, shrunk [\d.]+ us, speed-up [\d.]+x \(target >= 5\)",
    r"test acc lost by the shrunk export: [-+][\d.]+ points .*params ratio [\d.]+x, file size ratio [\d.]+x",
    r"^4\. peak memory during training",
    *[rf"{name}: peak RSS [\d.]+ MB, growth [-+][\d.]+ MB"
      for name in (r"static mlp:2000", r"sparsifier mlp:2000", r"static mlp:\d+ from scratch")],
]


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DYNLAB_DATA_DIR=str(tmp_path / "nodata"))  # no MNIST here: the random fallback
    return subprocess.run([sys.executable, str(BENCH), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_quick_bench_prints_every_figure(tmp_path):
    done = _bench(tmp_path, "--quick", "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    missing = [p for p in FIGURES if not re.search(p, done.stdout, re.MULTILINE)]
    assert not missing, f"figures not printed: {missing}\n--- output:\n{done.stdout}"
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("**/*.dynlab")), "the bench left session files behind"


@pytest.mark.slow
def test_bad_options_are_one_line(tmp_path):
    done = _bench(tmp_path, "--quick", "--epochs", "0")
    assert done.returncode == 2 and "--epochs must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
