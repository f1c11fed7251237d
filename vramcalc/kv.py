"""KV cache and recurrent state, per layer kind, engine-neutral (no paging, no block rounding): the
plain check's sums over the per-layer cache kinds of cache_kinds.py, at TP 1.

Engine memory models (vLLM pages and groups, llama.cpp cells) apply their own rules to the same kinds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .cache_kinds import cache_layers
from .errors import InputError
from .spec import ModelSpec, layer_kind

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise InputError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


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
    """Per layer kind, per sequence: KV bytes per token, KV bytes at `context`, state bytes.

    Attention bytes per token include the DeepSeek-V3.2 indexer cache; sliding-window layers hold the
    window, chunked-local layers the full context (cache_kinds.ChunkedLocal); a layer that reuses another
    layer's KV adds nothing. Conv and temporal state are both at `state_dtype` (default the model dtype)."""
    kvb = dtype_bytes(kv_dtype or spec.dtype)
    sb = dtype_bytes(state_dtype or spec.dtype)
    acc: dict[str, dict[str, int]] = {}
    for layer, c in zip(spec.layers, cache_layers(spec)):
        e = acc.setdefault(layer_kind(layer), {"layers": 0, "per_token": 0, "kv": 0, "held": 0, "state": 0})
        e["layers"] += 1
        if c.attention is not None:
            per_tok = c.attention.bytes_per_token(kvb) + c.attention.indexer_bytes_per_token()
            held = c.attention.tokens_held(context)
            e["per_token"] += per_tok
            e["kv"] += per_tok * held
            e["held"] = max(e["held"], held)
        if c.recurrent is not None:
            e["state"] += c.recurrent.state_bytes(sb, sb)
    return [
        LayerKindMemory(kind=k, layers=e["layers"], kv_bytes_per_token=e["per_token"], tokens_held=e["held"],
                        kv_bytes=e["kv"], state_bytes=e["state"])
        for k, e in acc.items()
    ]


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str | None = None) -> int:
    """KV bytes one token adds across all layers, before any window applies."""
    return sum(m.kv_bytes_per_token for m in kv_by_layer_kind(spec, 1, kv_dtype))
