"""llama.cpp's KV cache and recurrent state (llamacpp_rules.md sections 1-5; llama.cpp
src/llama-context.cpp llama_context, src/llama-kv-cache.cpp, src/llama-kv-cache-iswa.cpp,
src/llama-memory-recurrent.cpp).
"""

from __future__ import annotations

from math import ceil

from pydantic import BaseModel, ConfigDict

from ..errors import InputError
from ..ggml import row_bytes
from ..spec import ModelSpec

# llama.cpp's KV layout changed for MLA models twice (llamacpp_rules.md rule 4):
#   "per_head"  - GGUFs converted before PR #12801: full per-head K (nope + rope) and V
#   "latent_kv" - #12801 .. #19067: one latent K (kv_lora + rope) and a kv_lora-wide V
#   "latent_k"  - from PR #19067 (Jan 2026): K only
MLA_LAYOUTS = ("per_head", "latent_kv", "latent_k")


class LlamaKVOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    n_ctx: int
    n_seq_max: int = 1
    kv_unified: bool = False
    n_ubatch: int = 512
    type_k: str = "F16"
    type_v: str = "F16"
    swa_full: bool = False
    mla_layout: str = "latent_k"
    pad: int = 256  # current builds pad n_ctx to 256 (PR #17046)


class LlamaCache(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # "single" / "non-SWA" / "SWA" / "recurrent", as llama.cpp's log names them
    cells: int  # cells per stream
    streams: int
    layers: int
    k_bytes: int
    v_bytes: int


def _pad(n: int, to: int) -> int:
    return ceil(n / to) * to


def context_cells(o: LlamaKVOptions) -> tuple[int, int]:
    """(n_ctx_seq, n_stream): rule 1.2-1.3. Unified: one stream of n_ctx cells; otherwise n_seq_max
    streams of pad(n_ctx / n_seq_max) cells."""
    n_ctx = _pad(o.n_ctx, o.pad)
    if o.kv_unified or o.n_seq_max == 1:
        return n_ctx, 1
    return _pad(n_ctx // o.n_seq_max, o.pad), o.n_seq_max


class LayerMemory(BaseModel):
    """What llama.cpp's memory module allocates for one layer (on that layer's device, rule 2.7)."""
    model_config = ConfigDict(frozen=True)

    cache: str | None  # "full" / "SWA" / None when the layer has no KV of its own
    kv_bytes: int
    recurrent_bytes: int


def _swa_cells(o: LlamaKVOptions, n_ctx_seq: int, window: int) -> int:
    """llama_kv_cache_iswa: pad256(min(n_ctx_seq, n_swa * (unified ? n_seq_max : 1) + n_ubatch)),
    never above n_ctx_seq (rule 3.2); --swa-full gives the SWA layers the full size."""
    if o.swa_full:
        return n_ctx_seq
    return min(n_ctx_seq, _pad(min(n_ctx_seq, window * (o.n_seq_max if o.kv_unified else 1) + o.n_ubatch), o.pad))


def _kv_widths(a, o: LlamaKVOptions) -> tuple[int, int]:
    if a.mla is not None:
        m = a.mla
        if o.mla_layout == "per_head":
            return a.num_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim), a.num_heads * m.v_head_dim
        if o.mla_layout == "latent_kv":
            return m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank
        return m.kv_lora_rank + m.qk_rope_head_dim, 0
    return a.num_kv_heads * a.head_dim_k, a.num_kv_heads * a.head_dim_v


def layer_memory(spec: ModelSpec, o: LlamaKVOptions) -> list[LayerMemory]:
    """Per layer: K + V bytes (cells x streams x row bytes; no V for V-less MLA) and the F32
    recurrent state (r + s rows, one per sequence: llama-memory-recurrent.cpp)."""
    if o.mla_layout not in MLA_LAYOUTS:
        raise InputError(f"mla_layout must be one of {MLA_LAYOUTS}")
    n_ctx_seq, streams = context_cells(o)
    out = []
    for layer in spec.layers:
        a = layer.attention
        kv, cache = 0, None
        if a is not None and a.kv_shared_from is None:
            k_w, v_w = _kv_widths(a, o)
            sliding = a.kind == "sliding" and a.window
            cells = _swa_cells(o, n_ctx_seq, a.window or 0) if sliding else n_ctx_seq
            cache = "SWA" if sliding else "full"
            kv = (row_bytes(o.type_k, k_w) + (row_bytes(o.type_v, v_w) if v_w else 0)) * cells * streams
        rs = 0
        if layer.ssm is not None:
            conv, state = layer.ssm.state_elements()
            rs = (conv + state) * 4 * max(1, o.n_seq_max)
        out.append(LayerMemory(cache=cache, kv_bytes=kv, recurrent_bytes=rs))
    return out


def llama_caches(spec: ModelSpec, o: LlamaKVOptions) -> list[LlamaCache]:
    """The KV caches and recurrent state llama.cpp allocates for this model, whole model (the
    per-device split follows the layers: layer_memory)."""
    if o.mla_layout not in MLA_LAYOUTS:
        raise InputError(f"mla_layout must be one of {MLA_LAYOUTS}")
    n_ctx_seq, streams = context_cells(o)
    full = {"cells": n_ctx_seq, "layers": 0, "k": 0, "v": 0}
    swa = {"cells": 0, "layers": 0, "k": 0, "v": 0}
    rec = {"layers": 0, "bytes": 0}
    for layer in spec.layers:
        a = layer.attention
        if a is not None and a.kv_shared_from is None:
            k_w, v_w = _kv_widths(a, o)
            sliding = a.kind == "sliding" and a.window  # --swa-full: still its own cache, at full size
            target = swa if sliding else full
            if sliding:
                swa["cells"] = _swa_cells(o, n_ctx_seq, a.window or 0)
            target["layers"] += 1
            target["k"] += row_bytes(o.type_k, k_w)
            target["v"] += row_bytes(o.type_v, v_w) if v_w else 0
        if layer.ssm is not None:  # rule 5: F32 r and s states, one per sequence
            conv, state = layer.ssm.state_elements()
            rec["layers"] += 1
            rec["bytes"] += (conv + state) * 4
    caches = []
    names = ("non-SWA", "SWA") if swa["layers"] and full["layers"] else ("single", "SWA")
    if full["layers"]:
        caches.append(LlamaCache(name=names[0], cells=full["cells"], streams=streams, layers=full["layers"],
                                 k_bytes=full["k"] * full["cells"] * streams, v_bytes=full["v"] * full["cells"] * streams))
    if swa["layers"]:
        caches.append(LlamaCache(name="SWA", cells=swa["cells"], streams=streams, layers=swa["layers"],
                                 k_bytes=swa["k"] * swa["cells"] * streams, v_bytes=swa["v"] * swa["cells"] * streams))
    if rec["layers"]:
        cells = max(1, o.n_seq_max)
        caches.append(LlamaCache(name="recurrent", cells=cells, streams=1, layers=rec["layers"],
                                 k_bytes=rec["bytes"] * cells, v_bytes=0))
    return caches


def output_buffer_bytes(spec: ModelSpec, n_seq_max: int = 1, embeddings: bool = False) -> int:
    """llama_context::output_reserve: (n_vocab [+ n_embd with embeddings]) x max(1, n_seq_max) x 4 B,
    host memory (llamacpp_rules.md rule 7.1)."""
    return (spec.vocab_size + (spec.hidden_size if embeddings else 0)) * max(1, n_seq_max) * 4
