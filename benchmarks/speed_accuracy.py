"""Decode-speed estimate against measured runs (tests/data/throughput_cases.json, from
../shared/ground_truth/throughput_dev.json): per-row prediction, then median / p90 absolute error by
engine and GPU family, for the held-out rows (never used to fit data/speed.json) and the calibration rows.

Run: python benchmarks/speed_accuracy.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from throughput_cases import load_cases, predict_prefill_tps, predict_step_ms  # noqa: E402

from vramcalc.speed import speed_data  # noqa: E402


def main() -> None:
    rows, groups = [], {}
    for c in load_cases():
        pred = predict_step_ms(c)
        err = pred / c["step_ms"] - 1
        tps = lambda ms: c["batch"] * 1000 / ms  # noqa: E731
        rows.append([c["id"], c["role"], c["engine"], c["backend"], c["model"][:24], c["quant"], c["batch"],
                     c.get("tp", 1), f"{tps(c['step_ms']):.1f}", f"{tps(pred):.1f}", f"{-err / (1 + err):+.0%}"])
        # error in tokens/s terms: predicted / measured - 1
        groups.setdefault((c["role"], c["engine"], c["family"]), []).append(abs(c["step_ms"] / pred - 1))
    print(tabulate(rows, headers=["case", "role", "engine", "backend", "model", "quant", "batch", "TP",
                                  "measured tok/s", "predicted tok/s", "error"]))
    print()
    table = []
    for role in ("holdout", "calibrate"):
        every = []
        for (r, engine, family), errs in sorted(groups.items()):
            if r != role:
                continue
            every += errs
            table.append([role, engine, family, len(errs), f"{np.median(errs):.1%}", f"{np.percentile(errs, 90):.1%}"])
        table.append([role, "all", "all", len(every), f"{np.median(every):.1%}", f"{np.percentile(every, 90):.1%}"])
    print(tabulate(table, headers=["rows", "engine", "GPU family", "n", "median |error|", "p90 |error|"]))
    print()
    pre = []
    for c in load_cases():
        if "prefill_tps" in c:
            prof = speed_data().profiles.get(f"{c['engine']}:{c['backend']}")
            mfu = prof.prefill_mfu if prof else 0.4
            p = predict_prefill_tps(c, mfu)
            pre.append([c["id"], c["prefill_role"], c["backend"], c["prefill_tps"], f"{p:.0f}", f"{p / c['prefill_tps'] - 1:+.0%}"])
    print(tabulate(pre, headers=["case", "role", "backend", "measured prompt tok/s", "predicted", "error"]))


if __name__ == "__main__":
    main()
