"""Speed accuracy by slice, on the calibration split and on the held-out split (never used to fit):
median and p90 |error| of predicted against measured tokens/s (per-stream for one stream, aggregate
for batch >= 2) and of time to first token.

Serving runs: tests/data/serving_runs.json through tests/serving_cases.py (vLLM, H100 SXM
and B200 SXM; held-out = whole deployments whose id hashes to 0 mod 5, chosen before fitting
tools/calibrate_serving.py). Decode runs: tests/data/throughput_cases.json (`role` column, fitted by
tools/calibrate_speed.py). llama.cpp batched decode runs: tests/data/llamacpp_batched_runs.json (held-out by
source thread, tests/llamacpp_batched_cases.py; fitted by tools/calibrate_serving.py --llamacpp-batched). Run: PYTHONPATH=$PWD python3 benchmarks/speed_accuracy.py [--json] [--write-errors]
(--write-errors records the held-out errors per slice in data/serving.json: what estimates quote as
their uncertainty)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_eval import decode_rows, llamacpp_batched_rows, serving_rows  # noqa: E402

ORDER = ["single stream dense", "single stream MoE", "batch >= 2 aggregate", "batch >= 2 per-stream (1/ITL)",
         "TTFT", "prefill (prompt tok/s)", "TP > 1", "layer split"]


def slice_table() -> dict[tuple[str, str], list[float]]:
    groups: dict[tuple[str, str], list[float]] = {}
    for row in serving_rows() + decode_rows() + llamacpp_batched_rows():
        for s in row["slices"]:
            groups.setdefault((row["role"], s), []).append(abs(row["err"]))
    return groups


def write_errors() -> None:
    by_key: dict[str, list[float]] = {}
    for row in serving_rows() + decode_rows() + llamacpp_batched_rows():
        if row["role"] == "holdout" and "key" in row:
            by_key.setdefault(row["key"], []).append(abs(row["err"]))
    path = Path(__file__).resolve().parents[1] / "vramcalc" / "data" / "serving.json"
    data = json.loads(path.read_text())
    data["holdout_errors"] = {k: {"n": len(e), "median": round(float(np.median(e)), 4),
                                  "p90": round(float(np.percentile(e, 90)), 4)} for k, e in sorted(by_key.items())}
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(tabulate([[k, v["n"], v["median"], v["p90"]] for k, v in data["holdout_errors"].items()],
                   headers=["uncertainty slice (held-out)", "n", "median", "p90"]))


def main() -> None:
    groups = slice_table()
    names = ORDER + sorted({s for _, s in groups} - set(ORDER))
    table = []
    for s in names:
        line = [s]
        for role in ("calibrate", "holdout"):
            e = groups.get((role, s), [])
            line += [len(e), f"{np.median(e):.1%}" if e else "-", f"{np.percentile(e, 90):.1%}" if e else "-"]
        table.append(line)
    print(tabulate(table, headers=["slice", "calib n", "calib median", "calib p90", "held-out n",
                                   "held-out median", "held-out p90"]))
    if "--write-errors" in sys.argv:  # the held-out error each estimate's uncertainty quotes (never a fit input)
        write_errors()
    if "--json" in sys.argv:
        print(json.dumps({f"{r}|{s}": [float(np.median(e)), float(np.percentile(e, 90)), len(e)]
                          for (r, s), e in groups.items()}))


if __name__ == "__main__":
    main()
