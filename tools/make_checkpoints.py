"""Write tiny real checkpoints with transformers' save_pretrained (random weights, bf16) into
tests/data/checkpoints/<name>/: config.json and model.safetensors as the Hub has them. The tests
compare vramcalc's predicted weight bytes with the bytes these real files hold.

    pip install torch transformers && python tools/make_checkpoints.py
"""

import json
import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "checkpoints"

# Each: a catalog model, shrunk to a few hundred KB by overriding its widths.
SMALL = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, vocab_size=256, max_position_embeddings=512)
CASES = {
    "llama": ("meta-llama__Llama-3.1-8B", {}),
    "qwen2": ("Qwen__Qwen2.5-7B", {}),
    "qwen3_moe": ("Qwen__Qwen3-30B-A3B", dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)),
    "gpt_oss": ("openai__gpt-oss-20b", dict(num_local_experts=4, num_experts_per_tok=2, sliding_window=8,
                                            layer_types=["sliding_attention", "full_attention"] * 2)),
    "deepseek_v3": ("deepseek-ai__DeepSeek-V3", dict(n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                                     first_k_dense_replace=1, kv_lora_rank=32, q_lora_rank=48,
                                                     qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
                                                     n_group=2, topk_group=1, num_key_value_heads=4)),
    "qwen3_next": ("Qwen__Qwen3-Next-80B-A3B-Thinking", dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                                             shared_expert_intermediate_size=32, linear_num_key_heads=2,
                                                             linear_num_value_heads=4, linear_key_head_dim=16,
                                                             linear_value_head_dim=16)),
    "gemma3_text": ("google__gemma-3-1b-it", dict(sliding_window=8)),
    "mamba2": ("mistralai__Mamba-Codestral-7B-v0.1", dict(num_heads=8, head_dim=16, state_size=16, n_groups=2,
                                                         expand=2)),
}


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for name, (stem, extra) in CASES.items():
        cfg = json.loads((ROOT / "vramcalc" / "data" / "models" / f"{stem}.json").read_text())["config"]
        cfg = {k: v for k, v in cfg.items() if k not in ("quantization_config", "layer_types", "rope_scaling")}
        cfg.update({k: v for k, v in SMALL.items() if k in cfg or k in ("head_dim",)}, **extra)
        cfg.pop("torch_dtype", None)
        cfg["dtype"] = "bfloat16"
        for tok in ("pad_token_id", "bos_token_id", "eos_token_id"):
            cfg.pop(tok, None)
        mt = cfg["model_type"]
        config = AutoConfig.for_model(mt, **{k: v for k, v in cfg.items() if k != "model_type"})
        torch.manual_seed(0)
        model = getattr(transformers, cfg["architectures"][0])._from_config(config, dtype=torch.bfloat16)
        dest = OUT / name
        model.save_pretrained(dest, safe_serialization=True)
        for extra_file in dest.glob("generation_config.json"):
            extra_file.unlink()
        size = sum(p.stat().st_size for p in dest.iterdir())
        print(f"{name:14s} {size:>10,d} bytes", file=sys.stderr)
    (OUT / "SOURCE.md").write_text(
        f"Written by tools/make_checkpoints.py with transformers {transformers.__version__}, "
        f"torch {torch.__version__}: save_pretrained of catalog configs shrunk to tiny widths, random bf16 weights.\n")


if __name__ == "__main__":
    main()
