"""--linear-backend on unquantized checkpoints and --sparse-indexer-topk-backend on models without the DSA indexer,
planned by vLLM's own code on CPU (tools/vllm_oracle.py's run_one with the EngineArgs field set): the weights, KV specs
and plans of each choice, to hold against `auto`'s.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_kernel_backend_oracle.py \
        --out tests/data/vllm_kernel_backend_oracle_v0.33.0.json

vLLM 0.33.0 reads KernelConfig.linear_backend only where a quantized linear layer picks its kernel
(vllm/model_executor/kernels/linear/__init__.py _get_linear_backend), and sparse_indexer_topk_backend only in the
DSA indexer's layers (vllm/model_executor/layers/sparse_attn_indexer.py, indexer_topk.py).
"""
import argparse
import contextlib
import glob
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

MODELS = ["Qwen__Qwen3-0.6B", "google__gemma-3-1b-it"]
BACKENDS = ["auto", "marlin", "cutlass", "triton", "torch", "emulation", "flashinfer_cutedsl", "machete", "xpu"]
TOPK = ["deep_select", "cooperative", "persistent", "per_row", "flashinfer", "torch", "aiter"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm

    seen: dict[str, Any] = {}
    orig_config = vo._config

    def config(*args: Any) -> Any:  # the KernelConfig vLLM built, to show the choice reached it
        cfg = orig_config(*args)
        seen["linear_backend"] = cfg.kernel_config.linear_backend
        seen["sparse_indexer_topk_backend"] = cfg.kernel_config.sparse_indexer_topk_backend
        return cfg

    vo._config = config
    paths = {os.path.basename(p)[:-5]: p for p in glob.glob(os.path.join(vo.MODELS, "*.json"))}
    rows = []
    cases = [(MODELS[0], {"linear_backend": b}) for b in BACKENDS]
    cases += [(MODELS[1], {"linear_backend": b}) for b in BACKENDS[:2] + ["emulation"]]
    cases += [(MODELS[0], {"sparse_indexer_topk_backend": b}) for b in TOPK]
    for stem, ea in cases:
        repo = json.load(open(paths[stem]))["repo_id"]
        vo.EXTRA_ARGS.clear()
        vo.EXTRA_ARGS.update(ea)
        t = time.time()
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            row: dict[str, Any] = vo.run_one(paths[stem], 1, "auto", [2.0], 8192)
        row.update(model=repo, engine_args=ea, kernel_config={k: seen.pop(k) for k in list(seen)})
        rows.append(row)
        print(f"{repo} {ea}: {time.time() - t:.1f}s weights {row.get('weights_bytes_rank0')}", file=sys.stderr)
    doc = {"release": vllm.__version__, "cases": rows,
           "produced_by": (f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), "
                           "tools/vllm_kernel_backend_oracle.py: tools/vllm_oracle.py run_one (EngineArgs."
                           "create_engine_config with linear_backend or sparse_indexer_topk_backend=<choice>, the model class on the meta device, "
                           "each layer's get_kv_cache_spec, the KV plan of a 2 GiB budget, the weights per rank) at "
                           "--max-model-len 8192, TP 1")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
