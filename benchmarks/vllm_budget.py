"""Replay real vLLM start-ups (../shared/ground_truth/vllm_dev.json, copied to tests/data) through
vramcalc's vLLM model and print, per figure, the median / p90 / worst absolute error, separately
for the calibration cases (Llama-3.1-8B-Instruct) and the held-out ones.

    python benchmarks/vllm_budget.py
"""

import hashlib
import json
import statistics
from pathlib import Path

from vramcalc.gpus import GPU, find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

GIB = 2**30
CASES = json.loads((Path(__file__).parent.parent / "tests/data/vllm_budget_cases.json").read_text())["cases"]
# the vllm_dev.json logs that are not budget cases (case "logN" replays vllm_dev id N), and why
NOT_BUDGET_CASES = {
    16: "Mistral-Small-3.2 (multimodal: its vision encoder's profile is in the activation, its config is not in "
        "the catalog); the KV pool from its logged memory is tests/test_vllm_kv.py (184,832 tokens, 11.55x)",
    32: "V0 engine (v0.6.5 pre-release): V0's profiler and block manager are not modelled (V0 left in 0.11)",
    33: "V0 engine (v0.6.5 pre-release), and its available memory is cut off in the excerpt",
    39: "dev build ~0.9.2, weights and utilization not in the excerpt; its KV pool (DeepSeek-V2-Lite MLA at "
        "TP 2 x PP 2, the minimum over stages) is tests/test_vllm_kv.py",
    48: "V0 engine (2023): block counts of a profiler fix, no budget figures",
    49: "V0 engine (2023): block counts of a profiler fix, no budget figures",
    55: "utilization not in the excerpt; its KV pool (hybrid GDN MoE, fp8 KV) is tests/test_vllm_kv.py",
    56: "Qwen3.8-27B-FP8: no config at hand, max_model_len not in the excerpt",
    59: "Qwen3.8-27B recipe: no config at hand (benchmarks/verdicts.py)",
    60: "Qwen3.8-27B recipe: no config at hand (benchmarks/verdicts.py)",
    61: "Qwen3.8-27B recipe: no config at hand (benchmarks/verdicts.py)",
}


def run(case):
    gpu = find_gpu(case["gpu"])
    if case.get("gpu_total_gib"):
        gpu = GPU(**{**gpu.model_dump(), "usable_bytes": int(case["gpu_total_gib"] * GIB),
                     "usable_source": "as logged"})
    opts = VLLMOptions(**case["options"])
    return check_vllm(load(case["model"]), gpu, opts)


def main():
    rows, errs = [], {}
    for c in CASES:
        r = run(c)
        d = r.devices[0] if r.devices else None
        got = {"weights": d and d.weights_bytes / GIB, "activation": d and d.activation_bytes / GIB,
               "non_torch": d and d.non_torch_bytes / GIB, "kv_gib": d and d.kv_cache_bytes / GIB,
               "kv_tokens": r.kv_cache_tokens or None, "concurrency": r.max_concurrency or None}
        split = "calib" if c.get("calibration") else "held-out"
        line = [c["id"], c["model"].split("/")[1][:26], c["options"].get("tp", 1), c["options"].get("pp", 1), split]
        for k, want in c["logged"].items():
            if k == "fits":  # the memory model at its estimate (benchmarks/verdicts.py: the conservative verdict)
                ok = r.fits_at_estimate == want
                errs.setdefault((split, "fits"), []).append(0 if ok else 1)
                line.append(f"fits {'ok' if ok else 'WRONG'}")
                continue
            if want is None or got.get(k) is None:
                continue
            e = abs(got[k] - want) / abs(want) if want else abs(got[k])
            errs.setdefault((split, k), []).append(e)
            line.append(f"{k} {want:g}/{got[k]:.3g}")
        rows.append(line)
    for row in rows:
        print(" ".join(str(x) for x in row))
    print()
    print(f"{'set':9s} {'figure':12s} {'n':>3s} {'median':>8s} {'p90':>8s} {'worst':>8s}")
    for (split, k), v in sorted(errs.items()):
        v = sorted(v)
        p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
        if k == "fits":
            print(f"{split:9s} {k:12s} {len(v):3d} {'':>8s} {'':>8s} wrong {sum(v)}")
        else:
            print(f"{split:9s} {k:12s} {len(v):3d} {statistics.median(v):8.2%} {p90:8.2%} {v[-1]:8.2%}")
    replayed = sorted(int(c["id"][3:]) for c in CASES if c["id"].startswith("log"))
    print()
    print(f"vllm_dev ids replayed as budget cases: {', '.join(map(str, replayed))} "
          f"(plus the {sum(c['id'].startswith('llmd') for c in CASES)} rows of its llm-d report)")
    for i, why in NOT_BUDGET_CASES.items():
        print(f"  id {i}: {why}")


GRAPH_CASES = json.loads((Path(__file__).parent.parent / "tests/data/vllm_cudagraph_estimates.json").read_text())["cases"]


def graph_estimates():
    """vLLM's own CUDA-graph estimate (0.20+: subtracted from the KV budget) against vramcalc's per-kind estimate and
    upper end (data/vllm.json); split by the file's rule (held out when sha256(url) % 4 == 0, chosen before fitting, or
    when the log was added after the fit: calibration: false)."""
    from vramcalc.vllm.weights import vllm_rules
    est = vllm_rules().versions.by_version[vllm_rules().default_version].cudagraph_gib
    upper = vllm_rules().verdict_margin.cuda_graph_upper_gib
    assert est is not None
    print()
    print("CUDA-graph estimate (vLLM's 'Estimated CUDA graph memory', or 'Graph capturing ... took' before 0.20; GiB per GPU)")
    rows: dict[str, list[tuple[float, bool]]] = {}
    for c in GRAPH_CASES:
        held = c.get("calibration") is False or int(hashlib.sha256(c["url"].encode()).hexdigest(), 16) % 4 == 0
        split = "held-out" if held else "calib"
        moe, hybrid = c["kind"] == "moe", c["kind"] == "hybrid"
        n = c.get("layers_per_rank")  # dense: per piece graph and FULL graph where known (tools/fit_cudagraph.py)
        sz, tp, nf = c.get("piecewise_sizes", 51), c.get("tp", 1), c.get("full_sizes", 0)
        e, u = ((est.graphs_gib(moe, hybrid, n, sz, tp, nf), upper.graphs_gib(moe, hybrid, n, sz, tp, nf)) if n
                else (est.of(moe, hybrid), upper.of(moe, hybrid)))
        err = abs(e - c["estimated_gib"]) / c["estimated_gib"]
        rows.setdefault(split, []).append((err, c["estimated_gib"] > u))
        print(f"  {c['id']:13s} {split:8s} {c['kind']:6s} TP {c.get('tp', 1)}  logged {c['estimated_gib']:.2f}  "
              f"vramcalc {e:.2f} (upper {u:.2f})  error {err:.0%}{'  ABOVE UPPER' if c['estimated_gib'] > u else ''}")
    for split, v in sorted(rows.items()):
        errs = sorted(x for x, _ in v)
        print(f"  {split:8s} n={len(v)} median error {statistics.median(errs):.0%} worst {errs[-1]:.0%}, "
              f"above the upper end: {sum(a for _, a in v)}")


def startup_failures():
    """Recorded failed start-ups (tests/data/vllm_startup_failures.json): none may be a 'fits'."""
    cases = json.loads((Path(__file__).parent.parent / "tests/data/vllm_startup_failures.json").read_text())["cases"]
    print()
    print("recorded start-up failures")
    for c in cases:
        gpu = find_gpu(c["gpu"])
        if c.get("gpu_total_gib"):
            gpu = GPU(**{**gpu.model_dump(), "usable_bytes": int(c["gpu_total_gib"] * GIB), "usable_source": "as logged"})
        r = check_vllm(load(c["model"]), gpu, VLLMOptions(**c["options"]))
        print(f"  {c['id']:30s} vLLM {c['vllm_version']}: {'FITS (false)' if r.fits else 'refused'}  "
              f"{', '.join(e.code for e in r.errors)}")


if __name__ == "__main__":
    main()
    graph_estimates()
    startup_failures()
