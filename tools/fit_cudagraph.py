"""Fit vramcalc's CUDA-graph terms (vLLM 0.20+, data/vllm.json) on the calibration half of
tests/data/vllm_cudagraph_estimates.json and report both halves.

The split is the file's own rule, fixed before any fitting: a log is held out when
int(sha256(url), 16) % 4 == 0.

- dense: GiB per decoder layer on the rank. vLLM's estimate (vllm/v1/worker/gpu_model_runner.py
  profile_cudagraph_memory, v0.33.0) is the first capture plus the second capture's size times the other
  graphs, and each captured graph holds one piece per decoder layer (PIECEWISE splits at every attention
  layer; a FULL graph records every layer's kernels), so the pool grows with the layer count. The estimate
  is the calibration median, the verdict's upper end the calibration maximum.
- moe / hybrid: GiB per GPU (their logs mix per-layer costs with transients that do not follow the layer
  count, vllm-project/vllm#50780); median and maximum are printed next to data/vllm.json's figures.

    python tools/fit_cudagraph.py          # prints the fit and the errors of data/vllm.json on both halves
"""

import hashlib
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = json.loads((ROOT / "tests/data/vllm_cudagraph_estimates.json").read_text())["cases"]


def held_out(url: str) -> bool:
    return int(hashlib.sha256(url.encode()).hexdigest(), 16) % 4 == 0


def fit() -> dict[str, dict[str, float]]:
    """{kind: {'estimate': ..., 'upper': ..., 'unit': 'per_layer' | 'per_gpu', 'n': ...}} from calibration logs."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("dense", "moe", "hybrid"):
        calib = [c for c in CASES if c["kind"] == kind and not held_out(c["url"])]
        if kind == "dense":
            xs = [c["estimated_gib"] / c["layers_per_rank"] for c in calib if c.get("layers_per_rank")]
        else:
            xs = [c["estimated_gib"] for c in calib]
        if xs:
            out[kind] = {"estimate": statistics.median(xs), "upper": max(xs), "n": len(xs),
                         "unit": "per_layer" if kind == "dense" else "per_gpu"}
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from vramcalc.vllm.weights import vllm_rules

    rules = vllm_rules()
    est = rules.versions.by_version[rules.default_version].cudagraph_gib
    upper = rules.verdict_margin.cuda_graph_upper_gib
    assert est is not None
    fitted = fit()
    print("fit on the calibration logs:")
    for kind, f in fitted.items():
        print(f"  {kind:6s} n={f['n']:.0f}  estimate {f['estimate']:.4f}  upper {f['upper']:.4f} GiB {f['unit']}")
    print(f"data/vllm.json ({rules.default_version}): dense {est.dense_per_layer} / upper {upper.dense_per_layer} GiB per "
          f"layer; moe {est.moe} / {upper.moe}; hybrid {est.hybrid} / {upper.hybrid} GiB per GPU")
    for split in ("calib", "held-out"):
        rows = [c for c in CASES if held_out(c["url"]) == (split == "held-out")]
        errs, above = [], 0
        for c in rows:
            moe, hyb = c["kind"] == "moe", c["kind"] == "hybrid"
            layers = c.get("layers_per_rank")
            if c["kind"] == "dense" and not layers:
                e, u = est.of(moe, hyb), upper.of(moe, hyb)  # model not known: the flat figure
            else:
                e, u = est.graphs_gib(moe, hyb, layers or 0), upper.graphs_gib(moe, hyb, layers or 0)
            err = abs(e - c["estimated_gib"]) / c["estimated_gib"]
            errs.append(err)
            above += c["estimated_gib"] > u
            print(f"  {split:8s} {c['id']:18s} {c['kind']:6s} layers {layers or '?':>3}  logged {c['estimated_gib']:.2f}  "
                  f"vramcalc {e:.2f} (upper {u:.2f})  error {err:.0%}")
        if errs:
            print(f"  {split:8s} n={len(errs)} median error {statistics.median(errs):.0%} worst {max(errs):.0%}; "
                  f"above the upper end: {above}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
