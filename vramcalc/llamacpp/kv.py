"""llama.cpp's KV cache and recurrent state (docs/llamacpp.md#kv-cache; llama.cpp 4df29be
src/llama-context.cpp llama_context, src/llama-kv-cache.cpp, src/llama-kv-cache-iswa.cpp,
src/llama-memory-recurrent.cpp).
"""

from __future__ import annotations

from math import ceil

from pydantic import BaseModel, ConfigDict

from ..cache_kinds import MLA_LAYOUTS, SharedKV, SlidingWindow, cache_layers
from ..errors import InputError
from ..ggml import row_bytes
from ..spec import ModelSpec


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
    # recurrent-state snapshots per sequence for a partial rollback (engine.rs_snapshots; data/llamacpp_backends.json
    # rs_rollback_source): the r and s rows are mem_size x (1 + n_rs_seq)
    n_rs_seq: int = 0


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
    """(n_ctx_seq, n_stream): docs/llamacpp.md#context-and-slots. Unified: one stream of n_ctx cells; otherwise n_seq_max
    streams of pad(n_ctx / n_seq_max) cells."""
    n_ctx = _pad(o.n_ctx, o.pad)
    if o.kv_unified or o.n_seq_max == 1:
        return n_ctx, 1
    return _pad(n_ctx // o.n_seq_max, o.pad), o.n_seq_max


class LayerMemory(BaseModel):
    """What llama.cpp's memory module allocates for one layer (on that layer's device, docs/llamacpp.md#kv-placement)."""
    model_config = ConfigDict(frozen=True)

    cache: str | None  # "full" / "SWA" / None when the layer has no KV of its own
    cells: int  # cells per stream of that cache (0 without one)
    k_bytes: int
    v_bytes: int
    recurrent_bytes: int  # r + s state, all sequences

    @property
    def kv_bytes(self) -> int:
        return self.k_bytes + self.v_bytes


def _swa_cells(o: LlamaKVOptions, n_ctx_seq: int, window: int) -> int:
    """llama.cpp 2aef976 src/llama-kv-cache-iswa.cpp llama_kv_cache_iswa::llama_kv_cache_iswa:
    pad256(min(n_ctx_seq, n_swa * (unified ? n_seq_max : 1) + n_ubatch)), never above n_ctx_seq;
    --swa-full gives the SWA layers the full size."""
    if o.swa_full:
        return n_ctx_seq
    return min(n_ctx_seq, _pad(min(n_ctx_seq, window * (o.n_seq_max if o.kv_unified else 1) + o.n_ubatch), o.pad))


def layer_memory(spec: ModelSpec, o: LlamaKVOptions) -> list[LayerMemory]:
    """Per layer: K and V bytes, cells x streams x ggml row bytes of the layer's K and V widths
    (llama.cpp 3514e9f src/llama-kv-cache.cpp llama_kv_cache::llama_kv_cache; no V for V-less MLA), and
    the F32 recurrent state, r + s rows, one per sequence (llama.cpp 76d9439
    src/llama-memory-recurrent.cpp llama_memory_recurrent::llama_memory_recurrent)."""
    if o.mla_layout not in MLA_LAYOUTS:
        raise InputError(f"mla_layout must be one of {MLA_LAYOUTS}")
    n_ctx_seq, streams = context_cells(o)
    seqs = max(1, o.n_seq_max)
    out = []
    for c in cache_layers(spec):
        a = c.attention
        cache, cells, k, v = None, 0, 0, 0
        if a is not None and not isinstance(a, SharedKV):  # llama_hparams::has_kv: reused KV is not allocated
            k_w, v_w = a.row_widths(o.mla_layout)
            # the iSWA cache: the SWA layers in a cache of their own (--swa-full: still their own, at full size)
            if isinstance(a, SlidingWindow):
                cache, cells = "SWA", _swa_cells(o, n_ctx_seq, a.window)
            else:
                cache, cells = "full", n_ctx_seq
            k = row_bytes(o.type_k, k_w) * cells * streams
            v = row_bytes(o.type_v, v_w) * cells * streams if v_w else 0
        # r and s both F32 whatever -ctk/-ctv say (llama.cpp 4df29be src/llama-model.cpp create_memory)
        # n_rs_seq: src/llama-memory-recurrent.cpp n_rows = mem_size * (1 + n_rs_seq) (4df29be)
        rs = c.recurrent.state_bytes(4, 4) * seqs * (1 + o.n_rs_seq) if c.recurrent is not None else 0
        out.append(LayerMemory(cache=cache, cells=cells, k_bytes=k, v_bytes=v, recurrent_bytes=rs))
    return out


def llama_caches(spec: ModelSpec, o: LlamaKVOptions, layers: list[LayerMemory] | None = None) -> list[LlamaCache]:
    """The KV caches and recurrent state llama.cpp allocates for this model, whole model: the sums of
    layer_memory (given as `layers`, or worked out) by cache, named as llama.cpp's log names them."""
    mem = layer_memory(spec, o) if layers is None else layers
    _, streams = context_cells(o)
    full = [m for m in mem if m.cache == "full"]
    swa = [m for m in mem if m.cache == "SWA"]
    rec = [m for m in mem if m.recurrent_bytes]
    caches = []
    for name, group in ((("non-SWA" if swa else "single"), full), ("SWA", swa)):
        if group:
            caches.append(LlamaCache(name=name, cells=group[-1].cells, streams=streams, layers=len(group),
                                     k_bytes=sum(m.k_bytes for m in group), v_bytes=sum(m.v_bytes for m in group)))
    if rec:
        caches.append(LlamaCache(name="recurrent", cells=max(1, o.n_seq_max), streams=1, layers=len(rec),
                                 k_bytes=sum(m.recurrent_bytes for m in rec), v_bytes=0))
    return caches


def output_buffer_bytes(spec: ModelSpec, n_seq_max: int = 1, embeddings: bool = False) -> int:
    """llama_context::output_reserve: (n_vocab [+ n_embd with embeddings]) x max(1, n_seq_max) x 4 B,
    host memory (docs/llamacpp.md#output-buffer)."""
    return (spec.vocab_size + (spec.hidden_size if embeddings else 0)) * max(1, n_seq_max) * 4
