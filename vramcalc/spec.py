"""ModelSpec: the part of a model's architecture that inference memory depends on.

It is independent of where it was read from (config.json, GGUF metadata, the catalog): every
source builds one, and every memory model reads only this. Immutable and JSON-serialisable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# A size memory is computed from: never negative (sources/validate.py bounds each one from above
# and names the source's field; these constraints hold whoever builds a spec).
Count = Annotated[int, Field(ge=0)]
Size = Annotated[int, Field(ge=1)]


AttentionKind = Literal["full", "sliding", "chunked", "mla"]


class MLASpec(_Frozen):
    """Multi-head latent attention (DeepSeek-V2 paper, arXiv 2405.04434, section 2.1)."""

    kv_lora_rank: Size
    q_lora_rank: Size | None  # None: a plain q_proj (DeepSeek-V2-Lite)
    qk_nope_head_dim: Count
    qk_rope_head_dim: Count
    v_head_dim: Size
    # DeepSeek-V3.2 sparse-attention indexer (DSA); 0 when absent.
    index_n_heads: Count = 0
    index_head_dim: Count = 0
    index_topk: Count = 0  # tokens the indexer keeps per query (the width of vLLM's topk_indices_buffer)
    # config indexer_rope_interleave: the indexer's rope is the interleaved (non-NeoX) one, the attention's own
    # (vLLM 0.33.0 vllm/models/deepseek_v32/attention.py DeepseekV32Attention.__init__ indexer_rope_emb)
    indexer_rope_interleave: bool = False
    # config mla_use_nope (Kimi-Linear): no rotary embedding, so vLLM builds no cos/sin cache (vLLM v0.34.0
    # vllm/models/kimi_k3/nvidia/model.py: its MLA is NoPE-only); the cache still holds qk_rope_head_dim
    nope: bool = False
    # read from a GGUF: whether it carries attention.key_length_mla (files converted since llama.cpp PR #12801,
    # which llama.cpp runs on the compressed latent); None: not read from a GGUF
    gguf_mla_keys: bool | None = None


class AttentionSpec(_Frozen):
    kind: AttentionKind
    num_heads: Size
    num_kv_heads: Size  # for MLA: the logical heads; the cache holds one latent (see kv.py)
    head_dim_k: Size
    head_dim_v: Size
    window: Size | None = None  # sliding window, or the chunk of chunked-local attention, in tokens
    mla: MLASpec | None = None
    sinks: bool = False  # learned per-head sink logits (gpt-oss): weights only, no KV
    k_eq_v: bool = False  # Gemma 4 global layers: no v_proj, V is computed from K
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False  # per-head RMSNorm weights on q and k (Qwen3, Gemma 3)
    qk_norm_full: bool = False  # the q/k norms span all heads (MiniMax-M2 qk_norm_type per_layer)
    output_gate: bool = False  # Qwen3-Next / Qwen3.5 gated attention: q_proj is 2x wide
    input_size: Size | None = None  # attention input width when not hidden_size (Zamba2: 2x hidden)
    kv_shared_from: Count | None = None  # layer whose KV cache this layer reuses (no KV of its own)
    # MiniMax-M3 sparse (MSA) layers: the lightning indexer's query heads and head width (index_q_proj of
    # index_n_heads x index_head_dim, one index_k_proj head, their norms) and its key-only side cache of one
    # index_head_dim-wide head per token (vLLM v0.34.0 vllm/models/minimax_m3/nvidia/model.py
    # MiniMaxM3SparseAttention, common/indexer.py MiniMaxM3IndexerCache); 0: no indexer
    index_n_heads: Count = 0
    index_head_dim: Count = 0

    @property
    def latent_cache(self) -> bool:
        """Whether the cache holds MLA's one latent per token. MiniCPM3 has MLA's projections (mla set) but vLLM
        v0.34.0 caches whole heads for it (models/minicpm3.py MiniCPM3Attention: a plain Attention), kind full."""
        return self.mla is not None and self.kind == "mla"


# short_conv: LFM2's gated short convolution, a conv state only (vLLM v0.34.0 vllm/model_executor/layers/mamba/
# short_conv.py ShortConv); kda: Kimi delta attention (vLLM v0.34.0 vllm/model_executor/layers/mamba/gdn/
# kimi_gdn_linear_attn.py KimiGatedDeltaNetAttention), heads of one width for q, k and v (num_v_heads x head_v_dim)
SSMKind = Literal["mamba1", "mamba2", "gated_deltanet", "short_conv", "kda"]


class SSMSpec(_Frozen):
    """A recurrent mixer: its state is per sequence and does not grow with context."""

    kind: SSMKind
    # Mamba-1 / Mamba-2 (Gu & Dao arXiv 2312.00752; Dao & Gu arXiv 2405.21060); short_conv: its width (conv_dim)
    d_inner: Count = 0
    d_state: Count = 0
    d_conv: Size = 4
    n_heads: Count = 0  # Mamba-2 heads
    head_dim: Count = 0  # Mamba-2 head dim
    n_groups: Size = 1  # Mamba-2 B/C groups
    dt_rank: Count = 0  # Mamba-1
    # Gated DeltaNet (Yang et al. arXiv 2412.06464) as in Qwen3-Next / Qwen3.5; KDA: num_k_heads = num_v_heads
    num_k_heads: Count = 0
    num_v_heads: Count = 0
    head_k_dim: Count = 0
    head_v_dim: Count = 0
    conv_bias: bool = True
    proj_bias: bool = False
    bcdt_norms: bool = False  # Jamba: RMSNorm on dt, B and C
    gated_norm: bool = True  # Mamba-2 / GDN gated RMSNorm weight before out_proj

    @property
    def conv_channels(self) -> int:
        if self.kind in ("mamba1", "short_conv"):
            return self.d_inner
        if self.kind == "mamba2":
            return self.d_inner + 2 * self.n_groups * self.d_state
        return 2 * self.num_k_heads * self.head_k_dim + self.num_v_heads * self.head_v_dim


class MLPSpec(_Frozen):
    kind: Literal["dense", "moe", "none"]
    intermediate_size: Count = 0  # dense MLP width (also a dense branch beside experts, Gemma 4)
    gated: bool = True  # SwiGLU/GeGLU (gate, up, down) vs plain (up, down); experts too
    bias: bool = False
    num_experts: Count = 0
    experts_per_token: Count = 0
    expert_intermediate_size: Count = 0
    expert_bias: bool = False  # gpt-oss expert biases
    router_bias: bool = False
    shared_intermediate_size: Count = 0  # all shared experts together
    shared_expert_gate: bool = False  # Qwen2-MoE style sigmoid gate on the shared expert
    router_scales: bool = False  # Gemma 4 router: scale (hidden) and per_expert_scale (experts)
    router_score_bias: bool = False  # DeepSeek-V3 / GLM-4.5 noaux_tc e_score_correction_bias (a buffer)
    router_score_bias_param: bool = False  # the score bias a parameter, not a buffer (transformers 5.24 ERNIE-4.5-MoE)
    # Latent MoE (Nemotron 3 Super): the routed experts read and write this width, behind a hidden -> latent
    # and a latent -> hidden projection; 0: the experts work on hidden_size
    expert_input_size: Count = 0


class LayerSpec(_Frozen):
    attention: AttentionSpec | None = None
    ssm: SSMSpec | None = None  # both set: attention and SSM side by side (Falcon-H1)
    mlp: MLPSpec
    norms: Count = 2  # hidden-size norm weight vectors in this layer
    attention_weights_shared: bool = False  # Zamba2: attention weights live in shared blocks


class TensorSpec(_Frozen):
    """One weight tensor: name in the HF checkpoint style, shape, and accounting group."""

    name: str
    shape: tuple[Count, ...]
    group: str
    buffer: bool = False  # saved in the checkpoint and loaded, but not a parameter (transformers buffer)


class VisionSpec(_Frozen):
    kind: str  # the tower's model_type
    params: Count  # tower plus projector into the language model
    hidden_size: Size
    num_layers: Size
    # of `params`, what vLLM keeps whole on every TP rank when the tower is TP-sharded (patch and position
    # embeddings, norms, row-parallel biases); 0 where not counted
    replicated_params: Count = 0
    # of `params`, those vLLM creates in float32 whatever the model dtype (MiniMax-M3's patch embedding)
    fp32_params: Count = 0
    # the linear layers vLLM's LoRA manager wraps with --enable-tower-connector-lora (vLLM v0.33.0
    # vllm/model_executor/models/qwen3_vl.py Qwen3_VisionTransformer: blocks' qkv / proj / mlp, the patch merger and
    # each deepstack merger's linear_fc1 / linear_fc2); None: a tower whose linears are not read
    intermediate_size: Size | None = None
    merger_in: Size | None = None  # hidden x spatial_merge_size^2, the merger's input
    merger_out: Size | None = None  # out_hidden_size, the language model's width
    mergers: Count = 0  # the patch merger and the deepstack mergers
    # what vramcalc/vllm/mm_profile.py reads to size the encoder's profiling forward (None where not read): the
    # attention heads, one patch's input values (in_channels x temporal_patch_size x patch_size^2), the spatial
    # merge and, for a tower with windowed blocks, the window's side in merged patches
    num_heads: Size | None = None
    patch_dim: Size | None = None
    spatial_merge: Size | None = None
    window_units: Size | None = None


class ModelSpec(_Frozen):
    id: str
    source: str  # where it was read: "catalog:...", "config:PATH", "hub:REPO@REV", "gguf:PATH"
    model_type: str
    architecture: str | None = None
    approximate: bool = False  # read by a generic reader, or with a part not modelled exactly
    notes: tuple[str, ...] = ()

    hidden_size: Size
    vocab_size: Size
    tie_word_embeddings: bool
    dtype: str  # native checkpoint dtype: bfloat16, float16, float32
    layers: tuple[LayerSpec, ...]
    final_norm: Count = 1  # norm weight vectors after the last layer
    norm_bias: bool = False  # LayerNorm with bias (norm vectors count twice)
    extra_tensors: tuple[TensorSpec, ...] = ()  # outside the per-layer model (Zamba2 shared blocks)
    mtp_layers: Count = 0  # multi-token-prediction layers in the checkpoint, not loaded by default
    # An EAGLE-3 head's LM head rows (config draft_vocab_size; vLLM llama_eagle3.py Eagle3LlamaForCausalLM sizes
    # its ParallelLMHead and draft_id_to_target_id by it); None: not a field of the config
    draft_vocab_size: Size | None = None
    # The recurrent-state dtype the config names (mamba_ssm_dtype / mamba_ssm_cache_dtype); engines decide
    # whether they honour it (vLLM: per architecture, data/vllm.json ssm_state_dtype).
    ssm_state_dtype: str | None = None

    max_position_embeddings: Size | None = None
    rope_scaling: dict[str, Any] | None = None
    vision: VisionSpec | None = None
    quantization_config: dict[str, Any] | None = None
    # the config.json read (catalog, Hub, local file), kept for --hf-overrides, which vLLM applies to it before the
    # model is built (vramcalc/vllm/hf_overrides.py); None for a GGUF
    config: dict[str, Any] | None = Field(default=None, repr=False)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def is_moe(self) -> bool:
        return any(layer.mlp.kind == "moe" for layer in self.layers)

    def layer_kinds(self) -> dict[str, int]:
        """How many layers of each mixer kind: 'full', 'sliding', 'mla', 'mamba2', 'full+mamba2'..."""
        counts: dict[str, int] = {}
        for layer in self.layers:
            counts[layer_kind(layer)] = counts.get(layer_kind(layer), 0) + 1
        return counts


def layer_kind(layer: LayerSpec) -> str:
    parts: list[str] = []
    if layer.attention is not None:
        parts.append(layer.attention.kind)
    if layer.ssm is not None:
        parts.append(layer.ssm.kind)
    return "+".join(parts) or "mlp-only"
