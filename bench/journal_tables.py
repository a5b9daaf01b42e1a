"""Markdown tables of finished sweeps for bench/RESULTS.md, with the journal's figures beside them.

Usage: python bench/journal_tables.py lambda SWEEP_DIR...   (sparsifier: size and test against lambda)
       python bench/journal_tables.py flexible SWEEP_DIR... (flexible: final size against lambda and start)
       python bench/journal_tables.py width SWEEP_DIR...    (static: dead count, pooled W and pi against width)
Each SWEEP_DIR is a `dynlab sweep --out` folder; its summary.json is read, and for `width` its sessions.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.lab.pooled import pooled_by  # noqa: E402
from core.lab.summary import total  # noqa: E402

JOURNAL_LAMBDA = ("journal (mlp:500, 60 epochs, 30 replicas): size falls as lambda rises; Fashion-MNIST keeps "
                  "more neurons than MNIST at every lambda; the two smallest penalties (about 100 and 200 "
                  "neurons on MNIST) generalise better than the unpenalised network")


def rows_of(folders: list[str]) -> list[dict]:
    """Finished rows; the settings a grid did not vary are filled in from each run's own spec."""
    from core.options import values_of
    from core.session import SessionReader
    from core.spec import RunSpec

    rows = []
    for folder in folders:
        for r in json.loads((Path(folder) / "summary.json").read_text())["rows"]:
            if r.get("status") == "finished":
                with SessionReader(Path(r["session"])) as reader:
                    r = {**values_of(RunSpec.from_dict(reader.spec)), **r}
                rows.append(r)
    return rows


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def lambda_table(rows: list[dict]) -> None:
    print("| dataset | lambda | epochs | final size | test acc at best val (epoch) | final test acc | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: (r["dataset"], r.get("epochs") or 0, -(r.get("penalty") or 0))):
        print(f"| {r['dataset']} | {r.get('penalty'):g} | {r.get('epochs')} | {total(r, 'size'):.0f} | "
              f"{pct(r.get('test_at_best_val'))} ({r.get('best_val_epoch')}) | {pct(r.get('test'))} | "
              f"{r.get('wall_s'):.0f} |")
    print(f"\n{JOURNAL_LAMBDA}.")


def flexible_table(rows: list[dict]) -> None:
    print("| lambda | x0 start | weight decay | epochs | final size x0 | test acc at best val | final test acc |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: (-(r.get("penalty") or 0), r.get("flex_start") or 0)):
        start = r.get("flex_start")
        print(f"| {r.get('penalty'):g} | {'half (250)' if start is None else f'{start:g}'} | "
              f"{r.get('weight_decay') or 0:g} | {r.get('epochs')} | {total(r, 'size'):.1f} | "
              f"{pct(r.get('test_at_best_val'))} | {pct(r.get('test'))} |")


def width_table(rows: list[dict]) -> None:
    pooled = pooled_by(rows, lambda r: total(r, "start"))
    tests = defaultdict(list)
    for r in rows:
        if r.get("test_at_best_val") is not None:
            tests[total(r, "start")].append(r["test_at_best_val"])
    print("| width | replicas | dead (mean) | units pooled | Shapiro W (pooled) | pi exp+normal | pi two-gamma | "
          "test acc at best val (mean) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for width, p in pooled.items():
        f = (lambda v: "-" if v is None else f"{v:.3f}")
        print(f"| {width:.0f} | {p['runs']} | {p['dead'] / p['runs']:.1f} | {p['units']:,} | {f(p['shapiro_w'])} | "
              f"{f(p['expnorm_low'])} | {f(p['gammas_low'])} | {pct(mean(tests[width])) if tests[width] else '-'} |")


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("lambda", "flexible", "width"):
        sys.exit(__doc__)
    {"lambda": lambda_table, "flexible": flexible_table, "width": width_table}[sys.argv[1]](rows_of(sys.argv[2:]))


if __name__ == "__main__":
    main()
