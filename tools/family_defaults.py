"""Record transformers' config-class defaults for each supported model_type into data/.

A Hub config.json is loaded by transformers on top of its config class's defaults, and sparse
files (Gemma 3's text_config, for one) rely on that. vramcalc reads the same way, from this table,
so that it needs no transformers at run time. Fields in REQUIRED are never defaulted: a config
without them is refused, because a real Hub file always has them and a missing one means a
truncated copy.

Run with transformers installed:  python tools/family_defaults.py > vramcalc/data/architectures.json
"""

import json
import sys

import transformers
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# model_type -> fields a config must carry (no default is taken for them).
CORE = ["hidden_size", "num_hidden_layers", "vocab_size"]
ATTN = ["num_attention_heads"]
DENSE = ["intermediate_size"]
REQUIRED = {
    "llama": CORE + ATTN + DENSE,
    "mistral": CORE + ATTN + DENSE,
    "mixtral": CORE + ATTN + DENSE + ["num_local_experts"],
    "qwen2": CORE + ATTN + DENSE,
    "qwen3": CORE + ATTN + DENSE,
    "qwen3_moe": CORE + ATTN + ["moe_intermediate_size", "num_experts"],
    "qwen3_next": CORE + ATTN + ["moe_intermediate_size", "num_experts"],
    "qwen3_5_text": CORE + ATTN + DENSE,
    "qwen3_5_moe_text": CORE + ATTN + ["moe_intermediate_size", "num_experts"],
    "gemma2": CORE + ATTN + DENSE,
    # Gemma 3 text configs on the Hub are sparse: heads and head_dim are often class defaults.
    "gemma3_text": ["hidden_size", "num_hidden_layers", "intermediate_size"],
    "gemma4_text": CORE + ATTN + DENSE,
    "diffusion_gemma_text": CORE + ATTN + DENSE,
    "phi3": CORE + ATTN + DENSE,
    "deepseek_v2": CORE + ATTN + DENSE + ["kv_lora_rank"],
    "deepseek_v3": CORE + ATTN + DENSE + ["kv_lora_rank"],
    "deepseek_v32": CORE + ATTN + DENSE + ["kv_lora_rank"],
    "gpt_oss": CORE + ATTN + DENSE + ["num_local_experts"],
    "llama4_text": CORE + ATTN + DENSE,
    "cohere": CORE + ATTN + DENSE,
    "glm4_moe": CORE + ATTN + DENSE + ["moe_intermediate_size", "n_routed_experts"],
    "jamba": CORE + ATTN + DENSE,
    "mamba2": CORE,
    "falcon_mamba": CORE,
    "falcon_h1": CORE + ATTN + DENSE,
    "nemotron_h": CORE + ATTN + DENSE,
    # Where attention sits decides the KV cache: never assume a layout.
    "granitemoehybrid": CORE + ATTN + DENSE + ["layer_types"],
    "zamba2": CORE + ATTN,
    "qwen3_vl_text": CORE + ATTN + DENSE,
    "qwen3_vl_moe_text": CORE + ATTN + ["moe_intermediate_size", "num_experts"],
    "minimax_m2": CORE + ATTN + DENSE + ["num_local_experts"],
    "minimax_m3": CORE + ATTN + DENSE + ["num_local_experts"],
    "olmoe": CORE + ATTN + DENSE + ["num_experts"],
    "ernie4_5_moe": CORE + ATTN + DENSE + ["moe_intermediate_size", "moe_num_experts"],
    "hunyuan_v1_moe": CORE + ATTN + DENSE + ["num_experts"],
    "lfm2": CORE + ATTN + DENSE,
    "minicpm3": CORE + ATTN + DENSE + ["kv_lora_rank"],
}
# model_types vramcalc reads that transformers registers under another name: the Hub's MiniMax-M3 text_config says
# minimax_m3, transformers' class is MiniMaxM3VLTextConfig (minimax_m3_vl_text); its layer_types and mlp_layer_types
# are computed for the default layer count, not defaults to fill in (Lfm2Config's layer_types and full_attn_idxs too)
CLASS_OF = {"minimax_m3": "minimax_m3_vl_text"}
NOT_DEFAULTS = {"minimax_m3": ("layer_types", "mlp_layer_types"), "lfm2": ("layer_types", "full_attn_idxs")}
# Towers whose defaults the readers need (configs often carry only their model_type).
VISION = ["siglip_vision_model", "gemma4_vision", "llama4_vision_model", "qwen3_5", "qwen3_vl", "kimi_k25_vision",
          "qwen2_5_vl", "qwen2_vl", "minimax_m3_vl"]
# Composite (vision-language) configs: transformers ties embeddings by the *outer* config's flag.
COMPOSITE = ["gemma3", "gemma4", "diffusion_gemma", "llama4", "qwen3_5", "qwen3_5_moe", "qwen3_vl", "qwen3_vl_moe", "kimi_k25", "qwen2_5_vl",
             "qwen2_vl", "minimax_m3_vl"]


def defaults(model_type: str) -> dict:
    cls = CONFIG_MAPPING[CLASS_OF.get(model_type, model_type)]
    if model_type in ("qwen3_5", "qwen3_vl", "qwen2_5_vl", "qwen2_vl", "minimax_m3_vl"):  # the composite class: take its vision sub-config
        return cls().vision_config.to_dict()
    d = cls().to_dict()
    for k in ("transformers_version", "architectures", "_name_or_path", "id2label", "label2id",
              *NOT_DEFAULTS.get(model_type, ())):
        d.pop(k, None)
    if "head_dim" in d and _derived_head_dim(cls):  # not a default: hidden_size // heads when unset
        d.pop("head_dim")
    return d


def _derived_head_dim(cls: type) -> bool:
    """Whether the class computes head_dim from hidden_size / num_attention_heads when a config
    omits it (LlamaConfig, MistralConfig): then the class's head_dim is no default to fill in."""
    try:
        return cls(hidden_size=1280, num_attention_heads=8).head_dim == 160
    except Exception:
        return False


def main() -> None:
    out = {
        "_source": f"transformers {transformers.__version__} config-class defaults "
        "(tools/family_defaults.py); 'required' fields are never defaulted",
        "text": {
            mt: {"class": CONFIG_MAPPING[CLASS_OF.get(mt, mt)].__name__, "required": req, "defaults": defaults(mt),
                 # transformers reads a config key under either name of its attribute_map
                 "aliases": dict(getattr(CONFIG_MAPPING[CLASS_OF.get(mt, mt)], "attribute_map", {}) or {})}
            for mt, req in REQUIRED.items()
        },
        "composite": {
            mt: {"class": CONFIG_MAPPING[mt].__name__,
                 "tie_word_embeddings": bool(getattr(CONFIG_MAPPING[mt](), "tie_word_embeddings", False))}
            for mt in COMPOSITE
        },
        "vision": {mt: {"class": CONFIG_MAPPING[mt].__name__, "defaults": defaults(mt)} for mt in VISION},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
