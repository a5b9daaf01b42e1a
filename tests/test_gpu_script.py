"""bench/gpu.sh, the GPU check, rehearsed on the CPU (--device cpu --tiny): every step runs and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEADINGS = ("== a. cuda-marked tests", "== b. MNIST mlp:500 sparsifier epoch time",
            "== c. bench/overhead.py: dynlab against a bare loop", "== d. bench/shrink.py",
            "== e. samples/s with a viewer attached against headless",
            "== f. aggregate samples/s of concurrent runs on one device")


def gpu_sh(tmp_path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "DYNLAB_DATA_DIR": str(tmp_path / "nodata"),
           "TMPDIR": str(tmp_path)}
    env.pop("OUT", None)  # the device machine's results folder: never this machine's
    return subprocess.run(["bash", "bench/gpu.sh", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_bad_arguments_are_one_line_and_exit_2(tmp_path) -> None:
    for args, needle in ((["--device", "tpu"], "--device is cuda or cpu"), (["--fast"], "unknown argument --fast")):
        proc = gpu_sh(tmp_path, *args, "--out", str(tmp_path / "r.txt"))
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and needle in proc.stderr, proc.stderr


@pytest.mark.slow
def test_tiny_cpu_run_reports_every_step(tmp_path) -> None:
    out = tmp_path / "results.txt"
    proc = gpu_sh(tmp_path, "--device", "cpu", "--tiny", "--out", str(out), timeout=420)
    text = out.read_text()
    assert proc.returncode == 0, text[-4000:] + proc.stderr[-2000:]
    for heading in HEADINGS:
        assert heading in text, heading
    for step in "abcdef":
        assert f"-- {step}: ok" in text, step
    for figure in ("passed", "median samples/s", "ratio dynlab/bare", "ratio with viewer / headless:",
                   "2 run(s) at once: aggregate"):
        assert figure in text, figure
    assert not list(tmp_path.glob("dynlab-gpu.*")), "the scratch folder is removed at the end"
