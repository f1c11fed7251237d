"""--cpu-offload-gb against the recorded runs (tests/data/vllm_feature_logs.json cpu_offload): the host-link
efficiency fitted on the run marked 'fit' and the held-out runs' errors, with vramcalc's serving estimate for the
rest of each decode step.

    PYTHONPATH=$PWD python3 benchmarks/vllm_cpu_offload.py
"""

from __future__ import annotations

import json
from pathlib import Path

from vramcalc.gpus import find_gpu
from vramcalc.serving import for_engine_check
from vramcalc.sources.catalog import load
from vramcalc.vllm.features import features

GIB = 2**30
RUNS = json.loads((Path(__file__).parent.parent / "tests" / "data" / "vllm_feature_logs.json").read_text())


def base_ms(run: dict) -> float:
    """One decode step without the offload, from vramcalc's serving estimate (one stream)."""
    est = for_engine_check(load(run["catalog_model"]), "vllm", find_gpu(run["gpu_for_step"]), quant=None)
    assert est is not None
    return est.itl_s * 1e3


def link_peak_gbs(run: dict) -> float:
    co = features().cpu_offload
    if run["link"] == "NVLink-C2C":
        return co.c2c_gbs
    gen, lanes = run["link"].removeprefix("PCIe ").split(".0 x")
    return co.pcie_gbs_per_lane[gen] * int(lanes)


def main() -> None:
    runs = [r for r in RUNS["cpu_offload"] if r["split"] in ("fit", "held_out")]
    fit = next(r for r in runs if r["split"] == "fit")
    offload_ms = 1e3 / fit["decode_tok_s"] - base_ms(fit)
    eff = fit["cpu_offload_gb"] * GIB / (offload_ms * 1e-3) / 1e9 / link_peak_gbs(fit)
    print(f"fit on {fit['id']}: efficiency {eff:.3f} (data/vllm_features.json has {features().cpu_offload.efficiency})")
    for r in runs:
        step = base_ms(r) + r["cpu_offload_gb"] * GIB / (link_peak_gbs(r) * features().cpu_offload.efficiency * 1e9) * 1e3
        pred = 1e3 / step
        print(f"{r['split']:9} {r['id']:10} {r['link']:12} measured {r['decode_tok_s']:.2f} tok/s, predicted "
              f"{pred:.2f} ({pred / r['decode_tok_s'] - 1:+.0%})")


if __name__ == "__main__":
    main()
