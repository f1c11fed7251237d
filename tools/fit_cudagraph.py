"""Fit vramcalc's CUDA-graph terms (vLLM 0.20+, data/vllm.json) on the calibration half of
tests/data/vllm_cudagraph_estimates.json and report both halves.

The split is the file's own rule, fixed before any fitting: a log is held out when
int(sha256(url), 16) % 4 == 0.

- dense: GiB per decoder layer on the rank per PIECEWISE capture size, at TP 1, and one factor for TP > 1.
  vLLM v0.33.0 compiles the model into one piece per decoder layer (PIECEWISE splits at every attention op,
  vllm/config/compilation.py set_splitting_ops_for_v1) and records one CUDA graph per piece for every capture
  size (vllm/compilation/backends.py wraps each piecewise submodule in vllm/compilation/cuda_graph.py
  CUDAGraphWrapper), so the pool and the driver's graph
  objects grow with layers x sizes. Its estimate (vllm/v1/worker/gpu/cudagraph_utils.py profile_cudagraph_memory,
  the default Model Runner V2: every PIECEWISE size captured and measured, FULL decode graphs extrapolated as
  first + (n - 1) x second, one graph object per size) is dominated by the PIECEWISE part; the sizes follow
  vllm/config/vllm.py _set_cudagraph_sizes (vramcalc/vllm/engine.py cudagraph_capture_counts). The TP factor is
  the largest ratio of a TP > 1 log to the TP 1 log of the same model, release and figure (the all-reduce is
  captured in each piece); every TP > 1 log is divided by it. The estimate is the calibration median, the
  verdict's upper end the calibration maximum.
- moe / hybrid: GiB per GPU (their logs mix per-layer costs with transients that do not follow the layer
  count, vllm-project/vllm#50780); median and maximum are printed next to data/vllm.json's figures.

    python tools/fit_cudagraph.py          # prints the fit and the errors of data/vllm.json on both halves
"""

import hashlib
import json
import statistics
import sys
from typing import Any
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = json.loads((ROOT / "tests/data/vllm_cudagraph_estimates.json").read_text())["cases"]


def held_out(url: str) -> bool:
    return int(hashlib.sha256(url.encode()).hexdigest(), 16) % 4 == 0


def _per_size(c: dict) -> float:
    """A dense log's GiB per decoder layer per PIECEWISE capture size, at its own TP."""
    return float(c["estimated_gib"]) / (c["layers_per_rank"] * c["piecewise_sizes"])


def _dense(rows: list[dict]) -> list[dict]:
    return [c for c in rows if c["kind"] == "dense" and c.get("layers_per_rank") and c.get("piecewise_sizes")]


def tp_factor(rows: list[dict]) -> float:
    """The largest TP > 1 / TP 1 ratio over dense logs of one model, release and figure (1.0 without a pair)."""
    ratios = [_per_size(c) / _per_size(b) for c in _dense(rows) if c.get("tp", 1) > 1 for b in _dense(rows)
              if b.get("tp", 1) == 1 and (b["model"], b["vllm_version"], b["figure"]) ==
              (c["model"], c["vllm_version"], c["figure"])]
    return max(ratios, default=1.0)


def fit() -> dict[str, dict[str, Any]]:
    """{kind: {'estimate': ..., 'upper': ..., 'unit': ..., 'n': ...}} from calibration logs; dense adds
    'tp_factor'."""
    out: dict[str, dict[str, Any]] = {}
    calib_all = [c for c in CASES if not held_out(c["url"])]
    for kind in ("dense", "moe", "hybrid"):
        calib = [c for c in calib_all if c["kind"] == kind]
        if kind == "dense":
            f = tp_factor(calib)
            xs = [_per_size(c) / (f if c.get("tp", 1) > 1 else 1.0) for c in _dense(calib)]
            if xs:
                out[kind] = {"estimate": statistics.median(xs), "upper": max(xs), "n": len(xs), "tp_factor": f,
                             "unit": "per_layer_per_piecewise_size"}
            continue
        xs = [c["estimated_gib"] for c in calib]
        if xs:
            out[kind] = {"estimate": statistics.median(xs), "upper": max(xs), "n": len(xs), "unit": "per_gpu"}
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
        tp = f"  TP>1 factor {f['tp_factor']:.3f}" if "tp_factor" in f else ""
        print(f"  {kind:6s} n={f['n']:.0f}  estimate {f['estimate']:.6f}  upper {f['upper']:.6f} GiB {f['unit']}{tp}")
    print(f"data/vllm.json ({rules.default_version}): dense {est.dense_per_layer_size} / upper "
          f"{upper.dense_per_layer_size} GiB per layer per PIECEWISE size (x{est.dense_tp_factor} at TP > 1); "
          f"moe {est.moe} / {upper.moe}; hybrid {est.hybrid} / {upper.hybrid} GiB per GPU")
    for split in ("calib", "held-out"):
        rows = [c for c in CASES if held_out(c["url"]) == (split == "held-out")]
        errs, above = [], 0
        for c in rows:
            moe, hyb = c["kind"] == "moe", c["kind"] == "hybrid"
            layers = c.get("layers_per_rank")
            if c["kind"] == "dense" and not layers:
                e, u = est.of(moe, hyb), upper.of(moe, hyb)  # model not known: the flat figure
            else:
                n, tp = c.get("piecewise_sizes", 51), c.get("tp", 1)
                e, u = est.graphs_gib(moe, hyb, layers or 0, n, tp), upper.graphs_gib(moe, hyb, layers or 0, n, tp)
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
