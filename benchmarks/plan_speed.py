"""Wall time of `vramcalc.plan` over the whole search space for the plans issue 7 names (the model
already loaded; every engine, quant, KV dtype and layout tried). Target: well under a second.

Run: python benchmarks/plan_speed.py
"""

from __future__ import annotations

import statistics
import time

from tabulate import tabulate

import vramcalc
from vramcalc.plan import plan
from vramcalc.systems import parse_system

CASES = [("qwen3.6-27b", "2x4090", 32768), ("qwen3.6-27b", "2x4090", 131072), ("llama-3.3-70b", "4x3090", None),
         ("gemma-4-31b-it-nvfp4", "4x3090", None), ("qwen3-30b-a3b", "rtx4070", None),
         ("gpt-oss-120b", "ryzen-ai-max-plus-395(128GiB)", None), ("deepseek-v3", "2x8xH100", None)]


def main() -> None:
    rows = []
    for model, system, ctx in CASES:
        spec, sysm = vramcalc.load_model(model), parse_system(system)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            r = plan(spec, sysm, context=ctx)
            times.append(time.perf_counter() - t)
        top = r.recommendations[0] if r.recommendations else None
        rows.append([model, system, r.context, f"{min(times) * 1e3:.0f}", f"{statistics.median(times) * 1e3:.0f}",
                     len(r.recommendations), len(r.rejected),
                     f"{top.engine} {top.quant} {top.layout.tp}x{top.layout.pp}" if top else "-"])
    print(tabulate(rows, headers=["model", "system", "ctx", "best ms", "median ms", "shown", "rejected families", "top"]))


if __name__ == "__main__":
    main()
