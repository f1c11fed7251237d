"""vLLM's own KV-cache planning with an MTP drafter, run on a CPU machine: the oracle for the drafter's layers in
vramcalc's pool (vramcalc/vllm/spec_decode.py, vramcalc/vllm/kv.py).

Same venv and method as tools/vllm_oracle.py (the vllm 0.33.0 wheel --no-deps, torch 2.13.0+cpu); where the venv
has no torchvision, a stand-in package on PYTHONPATH whose every attribute is a dummy (vLLM's Qwen3.5 module imports
Qwen2-VL's image processor at module level; the KV specs never call it):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_spec_oracle.py \
        --out tests/data/vllm_spec_oracle.json

For each (catalog model, TP, KV dtype, num_speculative_tokens) it builds the VllmConfig with
speculative_config {"method": "mtp", ...} (EngineArgs.create_engine_config: SpeculativeConfig.__post_init__ makes
the draft model config), builds the target and then the MTP drafter on the meta device under the same config (as
EagleProposer.load_model does: get_model with the draft model config, so the drafter's attention layers register
in the same forward context), then takes every layer's KV cache spec as GPUModelRunner.get_kv_cache_spec does
(Mamba specs read num_speculative_tokens from the config) and plans the pool for each memory given.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

GIB = 2**30


def _run(entry: dict[str, Any], tp: int, kv_dtype: str, k: int, memories: list[float], max_len: int) -> dict[str, Any]:
    import torch
    from vllm.engine.arg_utils import EngineArgs
    from vllm.model_executor.model_loader.utils import initialize_model
    from vllm.platforms.interface import Platform

    config = {kk: v for kk, v in entry["config"].items() if kk != "quantization_config"}
    if isinstance(config.get("text_config"), dict):
        config["text_config"] = {kk: v for kk, v in config["text_config"].items() if kk != "quantization_config"}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        torch.cpu._is_avx512_bf16_supported = lambda: False
        ea = EngineArgs(model=d, skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                        kv_cache_dtype=kv_dtype, max_model_len=max_len, max_num_batched_tokens=8192,
                        max_num_seqs=256, async_scheduling=True,
                        distributed_executor_backend="uni" if tp == 1 else "mp",
                        speculative_config={"method": "mtp", "num_speculative_tokens": k})
        cfg = ea.create_engine_config()
        vo._init_group(tp, cfg)
        vo.cuda_like(cfg)
        with vo.meta_models(cfg):
            model = initialize_model(vllm_config=cfg)
            draft = initialize_model(vllm_config=cfg, model_config=cfg.speculative_config.draft_model_config)
        backends = vo._cuda_backends(cfg)
        cfg.cache_config.mamba_page_size_padded = None
        Platform.update_block_size_for_backend(cfg)
        specs = vo._specs(cfg)
        row: dict[str, Any] = {
            "model": entry["repo_id"], "tp": tp, "kv_cache_dtype": kv_dtype, "num_speculative_tokens": k,
            "max_model_len": cfg.model_config.max_model_len,
            "max_num_batched_tokens": cfg.scheduler_config.max_num_batched_tokens, "attention_backends": backends,
            "draft_architecture": cfg.speculative_config.draft_model_config.architecture,
            "attention_layers": sum(1 for s in specs.values() if "Mamba" not in type(s).__name__),
            "layers": {n: vo._layer_row(s) for n, s in specs.items()}, "plans": []}
        for gib in memories:
            row["plans"].append(vo._plan(cfg, specs, int(gib * GIB)))
        del model, draft
        return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["Qwen__Qwen3.6-27B", "Qwen__Qwen3.6-35B-A3B"])
    ap.add_argument("--tp", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--kv-dtypes", nargs="*", default=["auto", "fp8"])
    ap.add_argument("--k", type=int, nargs="*", default=[1, 3])
    ap.add_argument("--memory-gib", nargs="*", type=float, default=[4.0, 11.0])
    ap.add_argument("--max-model-len", type=int, default=65536)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo._torchvision_stub()
    import vllm

    doc: dict[str, Any] = {"cases": [], "unsupported": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    doc.update({"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), tools/vllm_spec_oracle.py: "
        "EngineArgs(speculative_config={'method': 'mtp', ...}).create_engine_config, the target and the MTP drafter "
        "built on the meta device under one config (initialize_model with the draft model config), every layer's "
        "get_kv_cache_spec with FlashAttention as the CUDA backend, Platform.update_block_size_for_backend, "
        "kv_cache_planning.get_global_kv_cache_groups / get_kv_cache_configs, kv_cache_utils.get_kv_cache_capacity"),
        "memory_note": "memory_bytes is the KV budget handed to get_kv_cache_configs for every rank"})
    for m in a.models:
        entry = json.load(open(os.path.join(vo.MODELS, m + ".json")))
        for tp in a.tp:
            for kv in a.kv_dtypes:
                for k in a.k:
                    t = time.time()
                    try:
                        with contextlib.redirect_stdout(io.StringIO()):
                            doc["cases"].append(_run(entry, tp, kv, k, a.memory_gib, a.max_model_len))
                        print(f"{m} tp{tp} {kv} k={k}: {time.time() - t:.1f}s", file=sys.stderr)
                    except Exception as e:
                        msg = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
                        doc["unsupported"].append({"model": entry["repo_id"], "tp": tp, "kv_cache_dtype": kv,
                                                   "num_speculative_tokens": k, "error": msg})
                        print(f"{m} tp{tp} {kv} k={k}: {msg}\n{str(e)[:1500]}", file=sys.stderr)
                    with open(a.out, "w") as f:
                        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
