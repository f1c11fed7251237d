"""Conservative verdicts against every real start-up at hand: each vLLM run in
../shared/ground_truth/vllm_dev.json that vramcalc can replay (tests/data/vllm_budget_cases.json,
successes and failures) and the llama.cpp load logs with a GPU in the catalog. Prints the verdict
at the estimate and at its upper bound (what `fits` promises), and counts false "fits" (the
costly mistake: must be 0) and false "does not fit" (the price of the margin).

    python benchmarks/verdicts.py
"""

import json
from pathlib import Path

from vramcalc.gpus import GPU, find_gpu
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

GIB = 2**30
DATA = Path(__file__).parent.parent / "tests" / "data"
VLLM = json.loads((DATA / "vllm_budget_cases.json").read_text())["cases"]
# llama.cpp runs that loaded fully on a catalog GPU (../shared/ground_truth/llamacpp_dev.json)
LLAMACPP = [
    {"id": "c01", "model": "Qwen/Qwen3-30B-A3B", "gpu": "a100-40gb-pcie",  # Qwen3-Coder-30B-A3B: the same dims
     "options": {"ftype": "Q8_0", "n_ctx": 65536, "n_parallel": 4}, "fits": True},
]
# start-up failures in the ground truth that cannot be replayed, and why
NOT_REPLAYED = {
    "vllm_dev 59-61": "Qwen3.8-27B (FP8 / NVFP4 / BF16) on an RTX PRO 6000 Max-Q: the model's config is not "
                      "available (not in ../shared/model_configs), and the recipe's max_model_len, utilization "
                      "('default') and speculative settings are not in the excerpt. The refusal rule itself "
                      "(max_num_seqs above the Mamba block count) is modelled and tested on Qwen3.6-27B.",
}


def vllm_case(c):
    gpu = find_gpu(c["gpu"])
    if c.get("gpu_total_gib"):
        gpu = GPU(**{**gpu.model_dump(), "usable_bytes": int(c["gpu_total_gib"] * GIB), "usable_source": "logged"})
    r = check_vllm(load(c["model"]), gpu, VLLMOptions(**c["options"]))
    return r.fits_at_estimate, r.fits, max((d.uncertainty_bytes for d in r.devices), default=0) / GIB


def llamacpp_case(c):
    r = check_llamacpp(load(c["model"]), find_gpu(c["gpu"]), LlamaOptions(**c["options"]))
    return r.fits, r.fits, None


def main():
    rows = [("vllm", c["id"], c["model"].split("/")[-1], c["logged"]["fits"], *vllm_case(c)) for c in VLLM]
    rows += [("llama.cpp", c["id"], c["model"].split("/")[-1], c["fits"], *llamacpp_case(c)) for c in LLAMACPP]
    print(f"{'engine':10s} {'case':7s} {'model':32s} {'real':8s} {'estimate':9s} {'verdict':8s} margin GiB")
    for eng, cid, model, real, est, verdict, margin in rows:
        flag = "" if verdict == real else ("  FALSE FITS" if verdict else "  false does-not-fit")
        print(f"{eng:10s} {cid:7s} {model[:32]:32s} {'starts' if real else 'fails':8s} "
              f"{'fits' if est else 'no':9s} {'fits' if verdict else 'no':8s} "
              f"{'' if margin is None else f'{margin:.2f}'}{flag}")
    fails = [r for r in rows if not r[3]]
    oks = [r for r in rows if r[3]]
    print()
    print(f"real failures replayed: {len(fails)}; false 'fits': {sum(r[5] for r in fails)} "
          f"(at the estimate: {sum(r[4] for r in fails)})")
    print(f"real start-ups replayed: {len(oks)}; false 'does not fit': {sum(not r[5] for r in oks)} "
          f"(at the estimate: {sum(not r[4] for r in oks)})")
    for k, v in NOT_REPLAYED.items():
        print(f"not replayed: {k}: {v}")


if __name__ == "__main__":
    main()
