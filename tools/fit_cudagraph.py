"""Fit vramcalc's CUDA-graph terms (vLLM 0.20+, data/vllm.json) on the calibration half of
tests/data/vllm_cudagraph_estimates.json and report both halves.

The split is the file's own rule, fixed before any fitting: a log is held out when
int(sha256(url), 16) % 4 == 0, and a log added after the fit carries calibration: false and is held out too.

- dense: the form of vLLM v0.33.0's own estimate. Model Runner V2 (the default;
  vllm/v1/worker/gpu/cudagraph_utils.py profile_cudagraph_memory) captures every PIECEWISE size and measures it,
  and captures the two largest FULL decode sizes and extrapolates them as first + (n - 1) x max(second, 1 MiB)
  (_extrapolate_full_graph_memory, _MIN_PER_GRAPH_BYTES: "driver overhead per graph"); the V1 runner of 0.19-0.2x
  (vllm/v1/worker/gpu_model_runner.py profile_cudagraph_memory) extrapolates both modes that way. PIECEWISE splits
  the model at every attention op (vllm/config/compilation.py set_splitting_ops_for_v1) and wraps each of the
  layers + 1 pieces in a CUDAGraphWrapper (vllm/compilation/backends.py), so a PIECEWISE size records layers + 1
  graphs; a FULL size records one. The estimate is therefore
      sizes_PIECEWISE x (layers + 1) x g  (x the TP factor at TP > 1)  +  sizes_FULL x f
  with f = 1 MiB, vLLM's own floor per FULL graph: the logs cannot tell f apart (every 0.19+ dense log captures
  51 and 35), nor the first capture's pool (the form's intercept), so neither is fitted. g per log is
  (logged - sizes_FULL x f) / (sizes_PIECEWISE x (layers + 1)); the TP factor is the largest ratio of a TP > 1 log
  to the TP 1 log of the same model, release and figure (the all-reduce is captured in each piece), and every
  TP > 1 log is divided by it. The estimate is the calibration median, the verdict's upper end the calibration
  maximum. A leave-one-out pass over the dense logs (each predicted from the others' median) is printed too.
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


def held_out(c: dict) -> bool:
    """The file's rule: held out when int(sha256(url), 16) % 4 == 0, or when the log was added after the fit
    (calibration: false)."""
    return c.get("calibration") is False or int(hashlib.sha256(c["url"].encode()).hexdigest(), 16) % 4 == 0


FULL_GRAPH_GIB = 1 / 1024  # vLLM v0.33.0 cudagraph_utils.py _MIN_PER_GRAPH_BYTES (1 MiB) per FULL decode graph


def _per_piece(c: dict) -> float:
    """A dense log's GiB per PIECEWISE piece graph (layers + 1 per size), at its own TP."""
    full = float(c.get("full_sizes", 0)) * FULL_GRAPH_GIB
    return (float(c["estimated_gib"]) - full) / ((c["layers_per_rank"] + 1) * c["piecewise_sizes"])


def _dense(rows: list[dict]) -> list[dict]:
    return [c for c in rows if c["kind"] == "dense" and c.get("layers_per_rank") and c.get("piecewise_sizes")]


def tp_factor(rows: list[dict]) -> float:
    """The largest TP > 1 / TP 1 ratio over dense logs of one model, release and figure (1.0 without a pair)."""
    ratios = [_per_piece(c) / _per_piece(b) for c in _dense(rows) if c.get("tp", 1) > 1 for b in _dense(rows)
              if b.get("tp", 1) == 1 and (b["model"], b["vllm_version"], b["figure"]) ==
              (c["model"], c["vllm_version"], c["figure"])]
    return max(ratios, default=1.0)


def _dense_fit(rows: list[dict]) -> dict[str, Any]:
    f = tp_factor(rows)
    xs = [_per_piece(c) / (f if c.get("tp", 1) > 1 else 1.0) for c in _dense(rows)]
    return {"estimate": statistics.median(xs), "upper": max(xs), "n": len(xs), "tp_factor": f,
            "per_full_graph": FULL_GRAPH_GIB, "unit": "per_piece_graph"}


def _dense_gib(fit: dict[str, Any], key: str, c: dict) -> float:
    tp = fit["tp_factor"] if c.get("tp", 1) > 1 else 1.0
    return (fit[key] * (c["layers_per_rank"] + 1) * c["piecewise_sizes"] * tp
            + fit["per_full_graph"] * c.get("full_sizes", 0))


def leave_one_out() -> list[tuple[str, float, float]]:
    """(id, logged, predicted) for every dense log, each predicted from the other dense logs' fit."""
    dense = _dense(CASES)
    out = []
    for c in dense:
        others = [b for b in dense if b is not c]
        out.append((c["id"], float(c["estimated_gib"]), _dense_gib(_dense_fit(others), "estimate", c)))
    return out


def fit() -> dict[str, dict[str, Any]]:
    """{kind: {'estimate': ..., 'upper': ..., 'unit': ..., 'n': ...}} from calibration logs; dense adds
    'tp_factor'."""
    out: dict[str, dict[str, Any]] = {}
    calib_all = [c for c in CASES if not held_out(c)]
    for kind in ("dense", "moe", "hybrid"):
        calib = [c for c in calib_all if c["kind"] == kind]
        if kind == "dense":
            if _dense(calib):
                out[kind] = _dense_fit(calib)
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
    print(f"data/vllm.json ({rules.default_version}): dense {est.dense_per_piece_graph} / upper "
          f"{upper.dense_per_piece_graph} GiB per PIECEWISE piece graph (x{est.dense_tp_factor} at TP > 1) + "
          f"{est.dense_per_full_graph:.6f} per FULL graph; moe {est.moe} / {upper.moe}; hybrid {est.hybrid} / "
          f"{upper.hybrid} GiB per GPU")
    for split in ("calib", "held-out"):
        rows = [c for c in CASES if held_out(c) == (split == "held-out")]
        errs, above = [], 0
        for c in rows:
            moe, hyb = c["kind"] == "moe", c["kind"] == "hybrid"
            layers = c.get("layers_per_rank")
            if c["kind"] == "dense" and not layers:
                e, u = est.of(moe, hyb), upper.of(moe, hyb)  # model not known: the flat figure
            else:
                n, tp, nf = c.get("piecewise_sizes", 51), c.get("tp", 1), c.get("full_sizes", 0)
                e = est.graphs_gib(moe, hyb, layers or 0, n, tp, nf)
                u = upper.graphs_gib(moe, hyb, layers or 0, n, tp, nf)
            err = abs(e - c["estimated_gib"]) / c["estimated_gib"]
            errs.append(err)
            above += c["estimated_gib"] > u
            print(f"  {split:8s} {c['id']:18s} {c['kind']:6s} layers {layers or '?':>3}  logged {c['estimated_gib']:.2f}  "
                  f"vramcalc {e:.2f} (upper {u:.2f})  error {err:.0%}")
        if errs:
            print(f"  {split:8s} n={len(errs)} median error {statistics.median(errs):.0%} worst {max(errs):.0%}; "
                  f"above the upper end: {above}")
    print("leave-one-out over the dense logs (each from the others' median and TP factor; not used for fitting):")
    loo = leave_one_out()
    for i, logged, pred in loo:
        print(f"  {i:20s} logged {logged:.2f}  predicted {pred:.2f}  error {abs(pred - logged) / logged:.0%}")
    errs = sorted(abs(p - g) / g for _, g, p in loo)
    print(f"  n={len(errs)} median error {statistics.median(errs):.0%} worst {errs[-1]:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
