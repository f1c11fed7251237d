"""vLLM's own DFlash drafter, built on a CPU machine: the oracle for what vramcalc sizes for
--speculative-config '{"method": "dflash", ...}' (vramcalc/vllm/spec_decode.py).

Same venv and method as tools/vllm_spec_oracle.py, at vLLM 0.34.0:

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_dflash_oracle.py \
        --out tests/data/vllm_dflash_oracle_v0.34.0.json --tp 1
    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_dflash_oracle.py \
        --out tests/data/vllm_dflash_oracle_v0.34.0.json --tp 2

For each drafter config (written below into a folder whose name holds "dflash", as
DFlashSpeculatorConfig.matches reads it) and TP, it builds the VllmConfig with speculative_config
{"method": "dflash", "model": <folder>, ...} on a catalog target (EngineArgs.create_engine_config), builds the
drafter (DFlashQwen3ForCausalLM, vllm/model_executor/models/qwen3_dflash.py) on the meta device with the draft
model config, as load_dflash_model does (vllm/v1/worker/gpu/spec_decode/dflash/utils.py), and records per rank:
the bytes of every parameter, those of embed_tokens and lm_head apart (load_dflash_model replaces both with the
target's: maybe_share_target_embed, and the lm_head where the drafter has none of its own), and every draft
layer's KV cache spec (get_kv_cache_spec with FlashAttention as the CUDA backend).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

BASE = {"architectures": ["DFlashDraftModel"], "model_type": "qwen3", "hidden_size": 4096, "num_hidden_layers": 5,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 12288,
        "hidden_act": "silu", "vocab_size": 151936, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
        "max_position_embeddings": 40960, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "attention_bias": False, "block_size": 16,
        "dflash_config": {"target_layer_ids": [1, 9, 17, 25, 33], "mask_token_id": 151669}}
# the drafter configs: all full attention, and 4 sliding-window layers + 1 full (layer_types, sliding_window)
CONFIGS: dict[str, dict[str, Any]] = {
    "full5": BASE,
    "swa4_full1": {**BASE, "layer_types": ["sliding_attention"] * 4 + ["full_attention"],
                   "dflash_config": {**BASE["dflash_config"], "swa_window_size": 2048}},
    # the window as the top-level sliding_window: transformers' Qwen3Config keeps it only with use_sliding_window
    "swa4_full1_top": {**BASE, "layer_types": ["sliding_attention"] * 4 + ["full_attention"],
                       "use_sliding_window": True, "sliding_window": 1024},
    # ... and without use_sliding_window it is dropped: vLLM refuses the sliding layers
    "swa4_full1_top_unused": {**BASE, "layer_types": ["sliding_attention"] * 4 + ["full_attention"],
                              "sliding_window": 1024},
    "full3_aux3": {**BASE, "num_hidden_layers": 3, "num_key_value_heads": 4,
                   "dflash_config": {"target_layer_ids": [2, 18, 33], "mask_token_id": 151669}},
    # a draft vocabulary of its own (draft_id_to_target_id), biased attention (the fused K/V bias too) and a
    # target_hidden_size other than the drafter's hidden size (fc's input)
    "full2_dvocab_bias": {**BASE, "num_hidden_layers": 2, "draft_vocab_size": 32000, "attention_bias": True,
                          "target_hidden_size": 5120},
}


def _run(target: dict[str, Any], name: str, draft_cfg: dict[str, Any], tp: int, k: int) -> dict[str, Any]:
    import torch
    from vllm.engine.arg_utils import EngineArgs
    from vllm.model_executor.model_loader.utils import initialize_model

    with tempfile.TemporaryDirectory() as d:
        tdir, ddir = os.path.join(d, "target"), os.path.join(d, f"{name}-dflash")
        os.makedirs(tdir)
        os.makedirs(ddir)
        json.dump(target["config"], open(os.path.join(tdir, "config.json"), "w"))
        json.dump(draft_cfg, open(os.path.join(ddir, "config.json"), "w"))
        torch.cpu._is_avx512_bf16_supported = lambda: False
        ea = EngineArgs(model=tdir, skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                        max_model_len=8192, max_num_batched_tokens=8192, max_num_seqs=256,
                        distributed_executor_backend="uni" if tp == 1 else "mp",
                        speculative_config={"method": "dflash", "model": ddir, "num_speculative_tokens": k})
        cfg = ea.create_engine_config()
        vo._init_group(tp, cfg)
        vo.cuda_like(cfg)
        with vo.meta_models(cfg):
            draft = initialize_model(vllm_config=cfg, model_config=cfg.speculative_config.draft_model_config)
        vo._cuda_backends(cfg)
        specs = vo._specs(cfg)
        params: dict[str, int] = {}
        for pname, p in draft.named_parameters():
            params[pname] = p.numel() * p.element_size()
        # after loading, _build_fused_kv_buffers stacks every layer's K/V projection rows into one new tensor,
        # on a GPU with unquantized weights (_reads_raw_weights: not on the CPU platform; told here it is CUDA)
        import vllm.model_executor.models.qwen3_dflash as qd

        gpu_like = type("Cuda", (), {"is_cpu": staticmethod(lambda: False), "is_rocm": staticmethod(lambda: False)})
        old_platform, qd.current_platform = qd.current_platform, gpu_like
        try:
            with vo.meta_models(cfg):
                draft.model._build_context_kv_buffers([la.self_attn for la in draft.model.layers],
                                                      draft.model.layers[0].self_attn.qkv_proj.bias is not None)
        finally:
            qd.current_platform = old_platform
        fused = sum(t.numel() * t.element_size() for t in (draft.model._fused_kv_weight, draft.model._fused_kv_bias)
                    if t is not None)
        shared = {n: b for n, b in params.items() if n.startswith(("model.embed_tokens.", "lm_head."))}
        return {"draft_config": name, "target": target["repo_id"], "tp": tp, "num_speculative_tokens": k,
                "draft_architecture": cfg.speculative_config.draft_model_config.architecture,
                "param_bytes_per_rank": sum(params.values()),
                "shared_with_target_bytes_per_rank": sum(shared.values()),
                "own_param_bytes_per_rank": sum(params.values()) - sum(shared.values()),
                "fused_kv_buffer_bytes_per_rank": fused, "params": params, "layers": {n: vo._layer_row(s) for n, s in specs.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="Qwen__Qwen3-8B")
    ap.add_argument("--tp", type=int, nargs="*", default=[1])
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    vo._torchvision_stub()
    import vllm

    target = json.load(open(os.path.join(vo.MODELS, a.target + ".json")))
    doc: dict[str, Any] = {"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), tools/vllm_dflash_oracle.py: "
        "EngineArgs(speculative_config={'method': 'dflash', 'model': <drafter folder>, ...}).create_engine_config "
        "on the target, the drafter built on the meta device with the draft model config (initialize_model), its "
        "named_parameters per rank, the fused context K/V weight _build_fused_kv_buffers makes after loading on a GPU (qwen3_dflash.py, current_platform taken as CUDA there) and each draft layer's get_kv_cache_spec with FlashAttention as the CUDA backend"),
        "draft_configs": CONFIGS, "cases": [], "unsupported": []}
    if os.path.exists(a.out):  # one TP per run (a second TP group in one process fails): the runs add up
        old = json.load(open(a.out))
        doc["cases"], doc["unsupported"] = old["cases"], old["unsupported"]
    for name, dc in CONFIGS.items():
        for tp in a.tp:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    doc["cases"].append(_run(target, name, dc, tp, a.k))
                print(f"{name} tp{tp}: ok", file=sys.stderr)
            except Exception as e:
                import traceback
                traceback.print_exc()
                doc["unsupported"].append({"draft_config": name, "tp": tp, "error": f"{type(e).__name__}: {e}"[:400]})
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
