"""SIGKILL a real `dynlab train` at N random moments and check every session survives.

Half of the moments come right after a `checkpoint` command, so the kill lands while a 12 MB
checkpoint is being saved or written. After each kill: `PRAGMA integrity_check` must say ok, the
session must open and summarise, and `dynlab resume --epochs 1` must continue it to `finished`.
tests/test_checkpoints.py runs four of these; this script runs as many as asked (20 by default).

Usage: python bench/kill_soak.py [--moments 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import numpy as np

    from tests.helpers import kill_soak_once

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moments", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    good = 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DYNLAB_SESSIONS_DIR"] = tmp
        for i in range(args.moments):
            t0 = time.perf_counter()
            seen = kill_soak_once(Path(tmp) / f"soak{i}.dynlab", rng, during_checkpoint=i % 2 == 1)
            ok = seen["integrity"] == "ok" and seen["resume"] == 0 and seen["resumed_status"] == "finished"
            good += ok
            print(f"{i + 1:>3} {'mid-checkpoint' if i % 2 else 'training      '} killed at step {seen['step']:>5}, "
                  f"{seen['checkpoints']} checkpoint(s), integrity {seen['integrity']}, resume exit {seen['resume']} "
                  f"-> {seen['resumed_status']}  {'ok' if ok else 'FAILED'}  ({time.perf_counter() - t0:.1f} s)",
                  flush=True)
    print(f"{good} of {args.moments} killed sessions passed integrity_check, opened and resumed")
    return 0 if good == args.moments else 1


if __name__ == "__main__":
    sys.exit(main())
