"""Per-layer cache kinds, engine-neutral: what one layer keeps per token (attention K/V) or per
sequence (recurrent state), built once from a ModelSpec by cache_layers().

Modelled on vLLM's one frozen spec per layer kind (vLLM 0.33.0 vllm/v1/kv_cache_interface.py:
FullAttentionSpec, SlidingWindowSpec, ChunkedLocalAttentionSpec, MLAAttentionSpec, MambaSpec) and on
llama.cpp's iSWA cache as two instances of one cache class with layer filters (llama.cpp
src/llama-kv-cache-iswa.cpp llama_kv_cache_iswa::llama_kv_cache_iswa). Each kind knows its widths and
its bytes for an element size and a TP degree; the engines (kv.py: the plain check, vllm/kv.py: pages,
blocks and groups, llamacpp/kv.py: cells and streams) add only their own rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from .memo import Memo, layers_weight
from .spec import AttentionSpec, LayerSpec, ModelSpec, SSMKind, SSMSpec

# llama.cpp's KV layout changed for MLA models twice (PR #12801, PR #19067):
#   "per_head"  - GGUFs converted before PR #12801: full per-head K (nope + rope) and V
#   "latent_kv" - #12801 .. #19067: one latent K (kv_lora + rope) and a kv_lora-wide V
#   "latent_k"  - from PR #19067 (Jan 2026): K only
MLA_LAYOUTS = ("per_head", "latent_kv", "latent_k")


@dataclass(frozen=True)
class _Heads:
    """K and V per KV head, split over TP ranks."""

    num_kv_heads: int
    head_dim_k: int
    head_dim_v: int

    def kv_heads(self, tp: int = 1) -> int:
        # vLLM 0.33.0 vllm/config/model.py ModelConfig.get_num_kv_heads: max(1, kv_heads // TP),
        # replicated on the ranks past the KV head count
        return max(1, self.num_kv_heads // tp)

    def elements_per_token(self, tp: int = 1) -> int:
        # vLLM 0.33.0 vllm/v1/kv_cache_interface.py AttentionSpec.page_size_bytes: heads x (d_k + d_v)
        # per token. Gemma 4's k_eq_v layers keep both K and V: no engine source we have drops V.
        return self.kv_heads(tp) * (self.head_dim_k + self.head_dim_v)

    def bytes_per_token(self, elem_bytes: int, tp: int = 1) -> int:
        return self.elements_per_token(tp) * elem_bytes

    def indexer_bytes_per_token(self) -> int:
        return 0

    def row_widths(self, mla_layout: str = "latent_k") -> tuple[int, int]:
        """(K, V) elements per cell, whole layer, for ggml row_bytes: llama.cpp 8b1d44b
        src/llama-hparams.cpp llama_hparams::n_embd_k_gqa / n_embd_v_gqa."""
        return self.num_kv_heads * self.head_dim_k, self.num_kv_heads * self.head_dim_v

    def tokens_held(self, context: int) -> int:
        return context


@dataclass(frozen=True)
class FullAttention(_Heads):
    """vLLM 0.33.0 vllm/v1/kv_cache_interface.py FullAttentionSpec. index_dim: a MiniMax-M3 sparse (MSA) layer's
    lightning-indexer side cache beside it, one key of index_dim per token, whole on every TP rank (vLLM v0.34.0
    vllm/models/minimax_m3/common/indexer.py MiniMaxM3IndexerCache.get_kv_cache_spec: an MLAAttentionSpec of one
    head); 0: none."""

    index_dim: int = 0


@dataclass(frozen=True)
class SlidingWindow(_Heads):
    """vLLM 0.33.0 vllm/v1/kv_cache_interface.py SlidingWindowSpec: a sequence keeps the window."""

    window: int

    def tokens_held(self, context: int) -> int:
        return min(context, self.window)


@dataclass(frozen=True)
class ChunkedLocal(_Heads):
    """vLLM 0.33.0 vllm/v1/kv_cache_interface.py ChunkedLocalAttentionSpec. Held at full length, as vLLM
    allocates it: its hybrid KV cache manager is off for chunked attention (vllm/config/vllm.py
    VllmConfig.__post_init__). llamacpp/kv.py gives it a full-size cache too (llama.cpp's chunked iSWA
    cache, swa_type CHUNKED, is not modelled)."""

    chunk: int | None


@dataclass(frozen=True)
class MLALatent:
    """Multi-head latent attention: one latent per token, shared by every head (DeepSeek-V2 paper,
    arXiv 2405.04434, section 2.1.2), plus the DeepSeek-V3.2 indexer K cache where present."""

    kv_lora_rank: int
    qk_rope_head_dim: int
    num_heads: int
    qk_nope_head_dim: int
    v_head_dim: int
    index_head_dim: int = 0

    def elements_per_token(self, tp: int = 1) -> int:
        # vLLM 0.33.0 vllm/model_executor/layers/attention/mla_attention.py MLAAttention.get_kv_cache_spec:
        # head_size kv_lora_rank + qk_rope_head_dim, one KV head, replicated on every TP rank
        return self.kv_lora_rank + self.qk_rope_head_dim

    def bytes_per_token(self, elem_bytes: int, tp: int = 1) -> int:
        return self.elements_per_token(tp) * elem_bytes

    def indexer_bytes_per_token(self) -> int:
        # vLLM 0.33.0 vllm/model_executor/models/deepseek_v2.py DeepseekV32IndexerCache.get_kv_cache_spec:
        # fp8 values plus one fp32 scale per 128 (132 B for a 128-dim indexer)
        d = self.index_head_dim
        return d + d // 128 * 4 if d else 0

    def row_widths(self, mla_layout: str = "latent_k") -> tuple[int, int]:
        """(K, V) elements per cell in llama.cpp's three MLA layouts (MLA_LAYOUTS): llama.cpp 3514e9f
        src/llama-kv-cache.cpp llama_kv_cache::llama_kv_cache (V-less when is_mla(), PR #19067)."""
        if mla_layout == "per_head":
            return self.num_heads * (self.qk_nope_head_dim + self.qk_rope_head_dim), self.num_heads * self.v_head_dim
        if mla_layout == "latent_kv":
            return self.kv_lora_rank + self.qk_rope_head_dim, self.kv_lora_rank
        return self.kv_lora_rank + self.qk_rope_head_dim, 0

    def tokens_held(self, context: int) -> int:
        return context


@dataclass(frozen=True)
class SharedKV:
    """A layer that reads another layer's cache (Gemma 3n / Gemma 4 num_kv_shared_layers): no bytes of
    its own (vLLM 0.33.0 vllm/v1/worker/gpu_model_runner.py GPUModelRunner.get_kv_cache_spec skips
    layers with kv_sharing_target_layer_name; llama.cpp 8b1d44b src/llama-hparams.cpp
    llama_hparams::has_kv). `window` is the span it reads when it is a sliding layer."""

    source: int
    window: int | None = None

    def elements_per_token(self, tp: int = 1) -> int:
        return 0

    def bytes_per_token(self, elem_bytes: int, tp: int = 1) -> int:
        return 0

    def indexer_bytes_per_token(self) -> int:
        return 0

    def row_widths(self, mla_layout: str = "latent_k") -> tuple[int, int]:
        return 0, 0

    def tokens_held(self, context: int) -> int:
        return min(context, self.window) if self.window else context


AttentionCache = FullAttention | SlidingWindow | ChunkedLocal | MLALatent | SharedKV


@dataclass(frozen=True)
class Recurrent:
    """A recurrent mixer's state: a conv state and a temporal (SSM / delta-rule) state per sequence,
    whatever the context."""

    kind: SSMKind
    d_inner: int
    d_state: int
    d_conv: int
    n_heads: int
    head_dim: int
    n_groups: int
    num_k_heads: int
    num_v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_channels: int  # unsharded, SSMSpec.conv_channels

    def state_shapes(self, tp: int = 1, spec_tokens: int = 0) -> tuple[tuple[int, int], tuple[int, ...]]:
        """(conv state, temporal state) shapes on one of `tp` ranks, with `spec_tokens` speculative
        tokens: vLLM 0.33.0 vllm/model_executor/layers/mamba/mamba_utils.py MambaStateShapeCalculator
        mamba1_state_shape, mamba2_state_shape (n_groups padded up to a multiple of TP:
        extra_groups_for_head_shards), gated_delta_net_state_shape. At TP 1 these are also the r and s
        rows llama.cpp keeps (llama.cpp 8b1d44b src/llama-hparams.cpp n_embd_r, n_embd_s)."""
        if self.kind == "mamba1":
            return (self.d_inner // tp, self.d_conv - 1), (self.d_inner // tp, self.d_state)
        if self.kind == "short_conv":  # vLLM v0.34.0 mamba_utils.py short_conv_state_shape: no temporal state
            return (self.d_inner // tp, self.d_conv - 1 + spec_tokens), ()
        if self.kind == "kda":  # vLLM v0.34.0 mamba_utils.py kda_state_shape: q, k, v conv; (heads, d, d)
            return ((self.conv_channels // tp, self.d_conv - 1 + spec_tokens),
                    (self.num_v_heads // tp, self.head_v_dim, self.head_v_dim))
        if self.kind == "mamba2":
            groups = self.n_groups if self.n_groups % tp == 0 else self.n_groups + (tp - self.n_groups % tp)
            conv = (self.d_inner + 2 * groups * self.d_state) // tp
            return (conv, self.d_conv - 1 + spec_tokens), (self.n_heads // tp, self.head_dim, self.d_state)
        return ((self.conv_channels // tp, self.d_conv - 1 + spec_tokens),
                (self.num_v_heads // tp, self.head_k_dim, self.head_v_dim))

    def state_elements(self, tp: int = 1, spec_tokens: int = 0) -> tuple[int, int]:
        (c0, c1), temporal = self.state_shapes(tp, spec_tokens)
        t = 1 if temporal else 0
        for d in temporal:
            t *= d
        return c0 * c1, t

    def state_bytes(self, conv_bytes: int, temporal_bytes: int, tp: int = 1, spec_tokens: int = 0) -> int:
        """Bytes of one sequence's state: vLLM 0.33.0 vllm/v1/kv_cache_interface.py
        MambaSpec.page_size_bytes (the conv and temporal states at their own dtypes)."""
        conv, temporal = self.state_elements(tp, spec_tokens)
        return conv * conv_bytes + temporal * temporal_bytes

    def replayssm_ring_bytes(self, rows: int, act_bytes: int, tp: int = 1) -> int:
        """--use-replayssm: the x, dt and B rings of `rows` rows appended to a Mamba-2 state (vLLM 0.33.0
        vllm/model_executor/layers/mamba/mamba_utils.py MambaStateShapeCalculator.append_replayssm_ring: x
        (heads, rows, head_dim) and B (groups padded for the head shards, rows, d_state) at the activation dtype,
        dt (heads, rows) in float32)."""
        heads = self.n_heads // tp
        groups = (self.n_groups if self.n_groups % tp == 0 else tp) // tp  # extra_groups_for_head_shards
        return heads * rows * self.head_dim * act_bytes + heads * rows * 4 + groups * rows * self.d_state * act_bytes


@dataclass(frozen=True)
class LayerCache:
    """What one layer caches: attention K/V, recurrent state, both (Falcon-H1, Zamba2), or neither."""

    attention: AttentionCache | None
    recurrent: Recurrent | None


def attention_cache(a: AttentionSpec) -> AttentionCache:
    window = a.window if a.kind == "sliding" and a.window else None
    if a.kv_shared_from is not None:
        return SharedKV(source=a.kv_shared_from, window=window)
    if a.mla is not None and a.latent_cache:  # MiniCPM3's MLA projections cache whole heads (kind full)
        m = a.mla
        return MLALatent(kv_lora_rank=m.kv_lora_rank, qk_rope_head_dim=m.qk_rope_head_dim, num_heads=a.num_heads,
                         qk_nope_head_dim=m.qk_nope_head_dim, v_head_dim=m.v_head_dim, index_head_dim=m.index_head_dim)
    if window is not None:
        return SlidingWindow(a.num_kv_heads, a.head_dim_k, a.head_dim_v, window=window)
    if a.kind == "chunked":
        return ChunkedLocal(a.num_kv_heads, a.head_dim_k, a.head_dim_v, chunk=a.window)
    return FullAttention(a.num_kv_heads, a.head_dim_k, a.head_dim_v, index_dim=a.index_head_dim)


def recurrent_state(s: SSMSpec) -> Recurrent:
    return Recurrent(kind=s.kind, d_inner=s.d_inner, d_state=s.d_state, d_conv=s.d_conv, n_heads=s.n_heads,
                     head_dim=s.head_dim, n_groups=s.n_groups, num_k_heads=s.num_k_heads, num_v_heads=s.num_v_heads,
                     head_k_dim=s.head_k_dim, head_v_dim=s.head_v_dim, conv_channels=s.conv_channels)


def layer_cache(layer: LayerSpec) -> LayerCache:
    return LayerCache(attention=None if layer.attention is None else attention_cache(layer.attention),
                      recurrent=None if layer.ssm is None else recurrent_state(layer.ssm))


# keyed by the identity of a spec's layers (copies of a spec share them); bounded by the layers held (memo.py)
_CACHE_LAYERS: Memo[tuple[tuple[LayerSpec, ...], tuple[LayerCache, ...]]] = Memo()


def cache_layers(spec: ModelSpec) -> tuple[LayerCache, ...]:
    """One LayerCache per layer of `spec`, memoised on its (frozen) layers; the entry holds them so their
    id cannot be reused."""
    layers = spec.layers
    hit = _CACHE_LAYERS.get(id(layers))
    if hit is not None and hit[0] is layers:
        return hit[1]
    out = tuple(layer_cache(layer) for layer in layers)
    _CACHE_LAYERS.put(id(layers), (layers, out), layers_weight(len(layers)))
    return out
