"""The published llama.cpp batched decode runs of tests/data/llamacpp_batched_runs.json as serving-model
inputs (shared by tests/test_serving.py, tools/calibrate_serving.py and benchmarks/serving_eval.py).

HELD-OUT SPLIT, fixed before anything was fitted (the data file's `_split`): a row is held out when sha256 of
its source URL is 0 mod 4, and every benches/dgx-spark.md row is held out (its batch rows are the held-out
rows of tests/data/throughput_cases.json). Whole source threads are held out, never single rows.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vramcalc.serving import Deployment

RUNS = Path(__file__).parent / "data" / "llamacpp_batched_runs.json"


def source_url(row: dict) -> str:
    return row["source"].split(" (")[0]


def role(row: dict) -> str:
    url = source_url(row)
    if url.endswith("benches/dgx-spark.md"):
        return "holdout"
    return "holdout" if int(hashlib.sha256(url.encode()).hexdigest(), 16) % 4 == 0 else "calibrate"


@lru_cache(maxsize=1)
def load_rows() -> tuple[dict, ...]:
    """Every row with `role`, the measured step in ms, and the context the step runs at."""
    out = []
    for r in json.loads(RUNS.read_text())["rows"]:
        if r["kind"] == "batched-bench":  # B sequences: one step = B / S_TG seconds, context PP + TG/2 on average
            step_ms, context = r["B"] / r["S_TG"] * 1e3, r["PP"] + r["TG"] // 2
        else:  # one sequence, B tokens a forward: its short KV is read once (left out), the weights once
            step_ms, context = r["B"] / r["tokens_per_s"] * 1e3, 1
        out.append({**r, "role": role(r), "step_ms": step_ms, "context": context})
    return tuple(out)


def deployment_of(row: dict) -> "Deployment":
    from vramcalc.gpus import find_gpu
    from vramcalc.serving import Deployment

    return Deployment(engine="llamacpp", backend=row["backend"], gpu=find_gpu(row["gpu"]), quant=row["quant"],
                      parallel=max(1, row["B"]))
