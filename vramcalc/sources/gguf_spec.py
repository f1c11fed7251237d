"""GGUF metadata -> ModelSpec.

Keys are llama.cpp's (src/llama-arch.cpp LLM_KV_NAMES: "{arch}.block_count", ...); the sliding
pattern per architecture follows llama-model.cpp load_hparams (set_swa_pattern). Widths are read
from the tensors themselves where the metadata is silent (token_embd gives hidden and vocab).
"""

from __future__ import annotations

from typing import Any

from ..spec import AttentionSpec, LayerSpec, MLASpec, MLPSpec, ModelSpec
from .gguf_header import GGUFError, GGUFHeader

# llama.cpp architectures read exactly; others fall back to a generic GQA decoder (approximate).
# swa: how llama-model.cpp marks sliding layers (set_swa_pattern(n): layer il slides if il % n < n-1)
ARCHS: dict[str, dict[str, Any]] = {
    "llama": {}, "qwen2": {"qkv_bias": True}, "qwen3": {"qk_norm": True}, "qwen3moe": {"qk_norm": True},
    "phi3": {}, "gemma2": {"swa": 2, "norms": 4}, "gemma3": {"swa": 6, "norms": 4, "qk_norm": True},
    "gpt-oss": {"swa": 2, "sinks": True, "qkv_bias": True, "o_bias": True}, "deepseek2": {"mla": True},
}
MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3moe": "qwen3_moe", "phi3": "phi3",
               "gemma2": "gemma2", "gemma3": "gemma3_text", "gpt-oss": "gpt_oss", "deepseek2": "deepseek_v3"}


def _per_layer(value: Any, n: int, key: str, where: str) -> list[int]:
    if isinstance(value, list):
        if len(value) != n:
            raise GGUFError(f"{where}: {key} lists {len(value)} values for {n} layers")
        return [int(v) for v in value]
    if isinstance(value, int):
        return [value] * n
    raise GGUFError(f"{where}: metadata {key} is missing or not an integer")


def spec_from_gguf(h: GGUFHeader, *, model_id: str, source: str, where: str) -> ModelSpec:
    md = h.metadata
    arch = md.get("general.architecture")
    if not isinstance(arch, str):
        raise GGUFError(f"{where}: no general.architecture in the GGUF metadata")
    tensors = {t.name: t for t in h.tensors}

    def key(k: str, default: Any = None) -> Any:
        return md.get(f"{arch}.{k}", default)

    emb = tensors.get("token_embd.weight")
    if emb is None or len(emb.ne) != 2:
        raise GGUFError(f"{where}: no 2-D token_embd.weight tensor")
    hidden, vocab = emb.ne
    n = key("block_count")
    if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= 10_000:
        raise GGUFError(f"{where}: {arch}.block_count is missing or not a layer count ({n!r:.40})")
    traits = ARCHS.get(arch)
    notes: list[str] = []
    if traits is None:
        traits = {}
        notes.append(f"llama.cpp architecture {arch!r} is read as a generic decoder: approximate")
    heads = _per_layer(key("attention.head_count"), n, f"{arch}.attention.head_count", where)
    kv_heads = _per_layer(key("attention.head_count_kv", key("attention.head_count")), n,
                          f"{arch}.attention.head_count_kv", where)
    ffn = key("feed_forward_length", 0)
    ffn = _per_layer(ffn, n, f"{arch}.feed_forward_length", where) if ffn else [0] * n
    window = key("attention.sliding_window")
    swa = traits.get("swa")
    n_expert = key("expert_count", 0) or 0
    leading_dense = key("leading_dense_block_count", 0) or 0
    layers = []
    for i in range(n):
        if traits.get("mla"):
            rope = key("rope.dimension_count")
            k_len = key("attention.key_length_mla") or key("attention.key_length")
            v_len = key("attention.value_length_mla") or key("attention.value_length")
            mla = MLASpec(kv_lora_rank=key("attention.kv_lora_rank"), q_lora_rank=key("attention.q_lora_rank") or None,
                          qk_nope_head_dim=k_len - rope, qk_rope_head_dim=rope, v_head_dim=v_len)
            attn = AttentionSpec(kind="mla", num_heads=heads[i], num_kv_heads=heads[i], head_dim_k=k_len,
                                 head_dim_v=v_len, mla=mla)
        else:
            k_len = key("attention.key_length") or hidden // heads[i]
            v_len = key("attention.value_length") or k_len
            sliding = bool(swa and window and i % swa < swa - 1)
            attn = AttentionSpec(kind="sliding" if sliding else "full", num_heads=heads[i], num_kv_heads=kv_heads[i],
                                 head_dim_k=k_len, head_dim_v=v_len, window=window if sliding else None,
                                 sinks=traits.get("sinks", False), qkv_bias=traits.get("qkv_bias", False),
                                 o_bias=traits.get("o_bias", False), qk_norm=traits.get("qk_norm", False))
        if n_expert and i >= leading_dense and f"blk.{i}.ffn_gate_inp.weight" in tensors:
            shared = key("expert_shared_count", 0) or 0
            exp_ff = key("expert_feed_forward_length") or ffn[i]
            mlp = MLPSpec(kind="moe", num_experts=n_expert, experts_per_token=key("expert_used_count"),
                          expert_intermediate_size=exp_ff,
                          shared_intermediate_size=shared * exp_ff or (key("expert_shared_feed_forward_length") or 0),
                          expert_bias=f"blk.{i}.ffn_up_exps.bias" in tensors,
                          router_bias=f"blk.{i}.ffn_gate_inp.bias" in tensors,
                          router_score_bias=f"blk.{i}.exp_probs_b.bias" in tensors)
        else:
            mlp = MLPSpec(kind="dense", intermediate_size=ffn[i])
        layers.append(LayerSpec(attention=attn, mlp=mlp, norms=traits.get("norms", 2)))
    ctx = key("context_length")
    return ModelSpec(
        id=model_id, source=source, model_type=MODEL_TYPES.get(arch, arch), architecture=f"gguf:{arch}",
        approximate=bool(notes), notes=tuple(notes + ["read from GGUF metadata; KV cache counted in f16, "
                                                      "llama.cpp's default cache type"]),
        hidden_size=hidden, vocab_size=vocab, tie_word_embeddings="output.weight" not in tensors, dtype="float16",
        layers=tuple(layers), max_position_embeddings=ctx if isinstance(ctx, int) else None,
        quantization_config={"quant_method": "gguf", "file_type": md.get("general.file_type")},
    )
