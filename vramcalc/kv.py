"""KV cache and recurrent state, per layer kind, engine-neutral (no paging, no block rounding).

Engine memory models (vLLM pages and groups, llama.cpp cells) build on these figures.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .errors import InputError
from .spec import AttentionSpec, ModelSpec, SSMSpec, layer_kind

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise InputError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


def kv_elements_per_token(a: AttentionSpec) -> int:
    """Cache elements one token adds to one layer.

    - MLA: one latent of kv_lora_rank + qk_rope_head_dim, shared by all heads (DeepSeek-V2 paper
      section 2.1.2; vLLM MLAAttention.get_kv_cache_spec: head_size 576, one KV head).
    - Otherwise K and V per KV head, d_k + d_v (vLLM AttentionSpec.page_size_bytes). Gemma 4's
      k_eq_v global layers are counted with both K and V: no engine source we have shows V dropped.
    - A layer that reuses another layer's KV (kv_shared_from) adds nothing (vLLM skips its spec).
    """
    if a.kv_shared_from is not None:
        return 0
    if a.mla is not None:
        return a.mla.kv_lora_rank + a.mla.qk_rope_head_dim
    return a.num_kv_heads * (a.head_dim_k + a.head_dim_v)


def indexer_bytes_per_token(a: AttentionSpec) -> int:
    """DeepSeek-V3.2 sparse-attention indexer K cache: fp8 values plus one fp32 scale per 128
    (vLLM deepseek_v2.py DeepseekV32IndexerCache: 128 + 4 = 132 bytes for a 128-dim indexer)."""
    if a.mla is None or not a.mla.index_head_dim:
        return 0
    d = a.mla.index_head_dim
    return d + d // 128 * 4


def tokens_held(a: AttentionSpec, context: int) -> int:
    """Tokens one sequence keeps in this layer at `context`. Sliding-window layers keep the
    window; chunked-local layers are counted at full length, as vLLM allocates them (its hybrid
    KV cache manager is off by default for chunked attention: VllmConfig.__post_init__)."""
    if a.kind == "sliding" and a.window:
        return min(context, a.window)
    return context


def state_bytes(s: SSMSpec, dtype: str) -> int:
    conv, ssm = s.state_elements()
    return (conv + ssm) * dtype_bytes(dtype)


class LayerKindMemory(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str  # layer_kind(): "full", "sliding", "mla", "gated_deltanet", "full+mamba2" ...
    layers: int
    kv_bytes_per_token: int  # summed over these layers, at full context growth
    tokens_held: int  # per sequence at the context asked for (window for sliding layers)
    kv_bytes: int  # per sequence at that context
    state_bytes: int  # recurrent state per sequence (independent of context)


def kv_by_layer_kind(spec: ModelSpec, context: int, kv_dtype: str | None = None,
                     state_dtype: str | None = None) -> list[LayerKindMemory]:
    """Per layer kind, per sequence: KV bytes per token, KV bytes at `context`, state bytes."""
    kvb = dtype_bytes(kv_dtype or spec.dtype)
    sb = state_dtype or spec.dtype
    acc: dict[str, dict[str, int]] = {}
    for layer in spec.layers:
        k = layer_kind(layer)
        e = acc.setdefault(k, {"layers": 0, "per_token": 0, "kv": 0, "held": 0, "state": 0})
        e["layers"] += 1
        if layer.attention is not None:
            per_tok = kv_elements_per_token(layer.attention) * kvb + indexer_bytes_per_token(layer.attention)
            held = tokens_held(layer.attention, context)
            e["per_token"] += per_tok
            e["kv"] += per_tok * held
            e["held"] = max(e["held"], held)
        if layer.ssm is not None:
            e["state"] += state_bytes(layer.ssm, sb)
    return [
        LayerKindMemory(kind=k, layers=e["layers"], kv_bytes_per_token=e["per_token"], tokens_held=e["held"],
                        kv_bytes=e["kv"], state_bytes=e["state"])
        for k, e in acc.items()
    ]


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str | None = None) -> int:
    """KV bytes one token adds across all layers, before any window applies."""
    return sum(m.kv_bytes_per_token for m in kv_by_layer_kind(spec, 1, kv_dtype))
