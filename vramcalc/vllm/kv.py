"""vLLM's KV cache pool on one rank: per-layer page sizes, groups, blocks, and what a request
takes (docs/vllm.md#kv-pool; vLLM v0.33.0 source: vllm/v1/kv_cache_interface.py,
vllm/v1/core/kv_cache_planning.py, vllm/platforms/interface.py _align_hybrid_block_size).
"""

from __future__ import annotations

from math import ceil, gcd
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..cache_kinds import ChunkedLocal, FullAttention, MLALatent, SharedKV, SlidingWindow, cache_layers
from ..data_files import load
from ..data_models import KVFormat, VllmKVFormats
from ..errors import NotModelledError
from ..kv import dtype_bytes
from ..spec import ModelSpec
from .weights import pp_layer_split, vllm_rules

# --kv-cache-dtype: each value vramcalc takes -> the dtype the cache is stored in (None: the model's; other
# names, such as float32 from the library, are stored as named)
KV_DTYPES = {"auto": None, "bfloat16": "bfloat16", "float16": "float16", "fp8": "fp8", "fp8_e4m3": "fp8",
             "fp8_e5m2": "fp8"}


def kv_formats() -> VllmKVFormats:
    """vLLM's packed KV cache dtypes (data/vllm_kv_formats.json): TurboQuant and the per-token-head modes."""
    return load("vllm_kv_formats.json", VllmKVFormats)


def packed_bytes_per_token(a: Any, fmt: KVFormat, tp: int) -> int:
    """One token of one layer on one rank in a packed format (data/vllm_kv_formats.json _source): TurboQuant's
    slot per KV head (TurboQuantConfig.slot_size_aligned), or K and V at the format's bits plus a float32 scale
    each (TritonAttentionBackend.customize_spec), vLLM v0.33.0."""
    f = kv_formats()
    if fmt.kind == "turboquant":
        hd = a.head_dim_k
        key = hd if fmt.key_bits == 8 else ceil(hd * fmt.key_bits / 8) + f.turboquant_key_norm_bytes
        slot = key + ceil(hd * fmt.value_bits / 8) + f.turboquant_value_meta_bytes
        return a.kv_heads(tp) * (slot + slot % 2)
    content = a.head_dim_k * fmt.key_bits // 8 + a.head_dim_v * fmt.value_bits // 8 + 2 * f.per_token_head_scale_bytes
    return a.kv_heads(tp) * content


def turboquant_boundary_layers(spec: ModelSpec) -> tuple[str, ...]:
    """The layers a TurboQuant KV cache keeps at the model dtype: the first and last two of a model without
    recurrent layers, none of a hybrid's (v0.33.0 TurboQuantConfig.get_boundary_skip_layers, n = min(2, L // 2))."""
    if any(la.ssm is not None for la in spec.layers):
        return ()
    n = min(kv_formats().turboquant_boundary_layers, spec.num_layers // 2)
    return tuple(str(i) for i in sorted(set(range(n)) | set(range(spec.num_layers - n, spec.num_layers))))


class KVSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    tp: int = 1
    pp: int = 1
    kv_cache_dtype: str = "auto"
    block_size: int = 16  # CacheConfig.DEFAULT_BLOCK_SIZE; backends may raise it (FlashMLA 64, ...)
    max_num_batched_tokens: int = 8192
    hybrid_manager: bool = True  # HMA: on by default on GPU, off with chunked-local attention
    async_scheduling: bool = True
    # 0.26+: a sliding window reserves its in-flight batches (data/vllm.json sliding_in_flight_since); before, one
    in_flight_batches: bool = True
    num_speculative_tokens: int = 0
    # --mamba-cache-dtype (the conv state, and the temporal state when the next is auto) and --mamba-ssm-cache-dtype
    # (the temporal state): auto keeps the model dtype, or the config's for the architectures data/vllm.json names
    mamba_cache_dtype: str = "auto"
    pp_partition: tuple[int, ...] | None = None  # VLLM_PP_LAYER_PARTITION (weights.pp_layer_split)
    mamba_ssm_cache_dtype: str = "auto"
    # None: vLLM's default, on unless the model is attention-free (vLLM 0.33.0 vllm/config/model.py
    # ModelConfig.is_prefix_caching_supported); Mamba layers are then in mamba_cache_mode "align"
    # (vllm/model_executor/models/config.py MambaModelConfig.verify_and_update_config), else "none"
    prefix_caching: bool | None = None
    # the Gated DeltaNet prefill kernel (vllm/rules.py gdn_prefill_backend): FlashInfer's, with prefix caching,
    # keeps a prefill checkpoint block per GDN layer on a 64-token grid (data/vllm_platforms.json gdn_prefill)
    gdn_prefill_backend: str = "triton"
    # --use-replayssm: the rows of the x / dt / B rings each Mamba-2 state keeps (--replayssm-buffer-len, + 1 +
    # speculative with FlashInfer's kernel; data/vllm_features.json replayssm); 0: off
    replayssm_rows: int = 0
    # 0.33: MambaMixer2.get_kv_cache_spec gives each Mamba-2 layer one prefill checkpoint block
    # (vllm/model_executor/layers/mamba/mamba_mixer2.py); data/vllm.json mamba2_checkpoint_block_since
    mamba2_checkpoint_block: bool = True
    # 0.33: one block (the null block) is held back before a request is checked against the memory
    # (data/vllm.json null_block_in_fit_since); before, the whole memory
    null_block_in_fit: bool = True
    # the fit check and its estimated length over the groups (padded to the group size); before
    # data/vllm.json group_fit_since, over the layers' own specs (kv_cache_utils.max_memory_usage_bytes)
    fit_by_groups: bool = True
    # `auto` takes the checkpoint's FP8 KV scheme (data/vllm.json checkpoint_kv_dtype_since); before, the model dtype
    checkpoint_kv_dtype: bool = True
    # VLLM_MLA_DISABLE=1: ModelConfig.use_mla is False (vLLM 0.33.0 vllm/config/model.py), so DeepSeek-style layers
    # are DeepseekV2Attention, an Attention of the rank's heads (num_heads // TP) with K and V both
    # qk_nope_head_dim + qk_rope_head_dim wide (V zero-padded to the K width; vllm/model_executor/models/
    # deepseek_v2.py DeepseekV2Attention): a full-attention spec instead of the one-head latent (no V3.2 indexer)
    mla_disabled: bool = False
    # --kv-cache-dtype-skip-layers: layer indices ("0") or "sliding_window"; those layers keep the model dtype in a
    # quantized KV cache (vllm/model_executor/layers/attention/attention.py Attention.__init__, 0.33.0), and a
    # non-empty list realigns the block size (kv_skip_alignment)
    kv_skip_layers: tuple[str, ...] = ()
    # --mamba-block-size: an attention-free model's block with prefix caching (MambaModelConfig; the default is the
    # block size); hybrid models' alignment sets it to the attention block, and "none" mode to max_model_len
    mamba_block_size: int | None = None
    # the request length; an attention-free model without prefix caching takes it as its block size
    # (MambaModelConfig: mamba_block_size = max_model_len). 0: not known, the block size stays as set
    max_model_len: int = 0
    # --decode-context-parallel-size: the full-attention KV of a request dealt over the DCP ranks, each holding
    # cdiv(max_model_len, dcp) of its tokens (vLLM 0.30.0 vllm/v1/kv_cache_interface.py
    # FullAttentionSpec.max_memory_usage_bytes); the page of a block is each rank's own
    dcp: int = 1


class KVGroup(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str  # full | sliding | chunked | mamba
    layers: int  # real layers (the group is padded to group_size)
    window: int | None = None  # the sliding window, or the attention chunk of a chunked-local group
    block_size: int = 16  # tokens per block of this group: a smaller page scaled up to the pool's page
    mamba_blocks: int = 1  # a Mamba group's blocks per request (MambaSpec.max_memory_usage_bytes / page)

class KVPool(BaseModel):
    """The KV layout of one rank (one PP stage)."""

    model_config = ConfigDict(frozen=True)

    block_size: int  # the smallest group block size (the scheduler's block size)
    attn_bytes_per_token_layer: int  # the largest attention page per token, one layer (after replication)
    page_bytes: int  # one block of one layer (Mamba pages padded to this)
    group_size: int
    groups: list[KVGroup]
    bytes_per_block: int  # group_size x page: what one block costs across the shared pool
    padding_layers: int
    notes: list[str]
    # each layer's own spec before the hybrid manager is off and unifies them to full attention (by kind,
    # window and block size, with their layer counts): what the fit check counts before group_fit_since
    layer_specs: list[KVGroup] = []
    # vLLM's own failure while grouping these specs (its words), where it cannot build the pool
    refusal: str | None = None

    def num_blocks(self, available_bytes: int) -> int:
        return max(0, available_bytes // self.bytes_per_block)

    def fits_request(self, max_model_len: int, available_bytes: int, s: KVSettings) -> bool:
        """_check_enough_kv_cache_memory: one request of max_model_len fits in the memory (less the null
        block where the release holds it back)."""
        held = self.bytes_per_block if s.null_block_in_fit else 0
        return self.request_bytes(max_model_len, s) <= available_bytes - held

    def request_bytes(self, max_model_len: int, s: KVSettings) -> int:
        """The memory the fit check asks for one request: its blocks x the pool's bytes per block (groups
        padded to the group size), or before group_fit_since each layer's own blocks x its page
        (vLLM 0.11.0 vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory, max_memory_usage_bytes)."""
        if s.fit_by_groups:
            return self.blocks_per_request(max_model_len, s) * self.bytes_per_block
        # 0.11-0.13 check the specs the layers report, before unify_hybrid_kv_cache_specs
        own = s.model_copy(update={"hybrid_manager": True})
        return sum(g.layers * self._group_blocks(g, max_model_len, own)
                   for g in (self.layer_specs or self.groups)) * self.page_bytes

    def blocks_per_request(self, max_model_len: int, s: KVSettings) -> int:
        """_max_memory_usage_bytes_from_groups: blocks one request of max_model_len tokens takes."""
        return sum(self._group_blocks(g, max_model_len, s) for g in self.groups)

    @staticmethod
    def _group_blocks(g: "KVGroup", max_model_len: int, s: KVSettings) -> int:
        batches = (2 if s.async_scheduling and s.pp == 1 else s.pp) if s.in_flight_batches else 1
        in_flight = batches * s.max_num_batched_tokens
        if g.kind == "mamba":  # MambaSpec.max_memory_usage_bytes
            return g.mamba_blocks
        if g.kind == "sliding" and s.hybrid_manager and g.window:  # SlidingWindowSpec: W - 1 + in-flight, + 1
            return ceil(min(g.window - 1 + in_flight, max_model_len) / g.block_size) + 1
        if g.kind == "chunked" and g.window:  # ChunkedLocalAttentionSpec: one chunk + in-flight
            return ceil(min(g.window + in_flight, max_model_len) / g.block_size)
        return ceil(ceil(max_model_len / s.dcp) / g.block_size)


FA_KERNEL_BLOCK = 16  # FlashAttentionBackend.get_supported_kernel_block_sizes: MultipleOf(16) (vLLM 0.33.0)


def kv_skip_alignment(primary_tok: int, padded_tok: int, block_size: int) -> tuple[int, int]:
    """(block size, shared page) with --kv-cache-dtype-skip-layers: vLLM 0.33.0 vllm/platforms/interface.py
    Platform._align_heterogeneous_kv_block_size raises the primary (quantized) block size until its page covers
    one smallest kernel block of the model-dtype page, and records that page (skip_page_size_padded), to which
    sliding-window layers then pad. With equal per-token pages nothing changes."""
    if padded_tok <= primary_tok:
        return block_size, 0
    align = max(FA_KERNEL_BLOCK, block_size)
    bs = max(block_size, align * ceil(padded_tok * FA_KERNEL_BLOCK / (align * primary_tok)))
    return bs, bs * primary_tok


def sliding_block_within(tok: int, shared_page: int) -> int:
    """The block a sliding-window layer takes within the shared page (vLLM 0.33.0 vllm/model_executor/layers/
    attention/attention.py Attention.get_kv_cache_spec, _largest_kernel_block_within over MultipleOf(16))."""
    return max(FA_KERNEL_BLOCK, shared_page // tok // FA_KERNEL_BLOCK * FA_KERNEL_BLOCK)


def per_head_mla(a: MLALatent) -> FullAttention:
    """An MLA layer with MLA off (VLLM_MLA_DISABLE=1): vLLM 0.33.0 vllm/model_executor/models/deepseek_v2.py
    DeepseekV2Attention builds Attention(num_local_heads, qk_head_dim, num_kv_heads=num_local_heads) and pads V to
    qk_head_dim (qk_nope_head_dim + qk_rope_head_dim), so K and V are each that wide for every head."""
    qk = a.qk_nope_head_dim + a.qk_rope_head_dim
    return FullAttention(a.num_heads, qk, qk)


def conv_state_dtype(spec: ModelSpec, mamba_cache_dtype: str = "auto") -> str:
    """vLLM 0.33.0 vllm/model_executor/layers/mamba/mamba_utils.py _mamba_state_dtype: the conv state takes
    --mamba-cache-dtype, auto the model dtype (get_kv_cache_torch_dtype)."""
    return spec.dtype if mamba_cache_dtype == "auto" else mamba_cache_dtype


def ssm_state_dtype(spec: ModelSpec, mamba_cache_dtype: str = "auto", mamba_ssm_cache_dtype: str = "auto") -> str:
    """The temporal-state dtype vLLM keeps: --mamba-ssm-cache-dtype when given; with auto, the config's for the
    architectures whose config hook reads it (data/vllm.json ssm_state_dtype: the hooks act only on auto), else
    the conv state's (_mamba_state_dtype: auto follows mamba_cache_dtype)."""
    if any(la.ssm is not None and la.ssm.kind == "kda" for la in spec.layers):
        # vLLM v0.34.0 kimi_gdn_linear_attn.py KimiGatedDeltaNetAttention.get_state_dtype hands kda_state_dtype
        # (mamba_utils.py) no --mamba-ssm-cache-dtype: its auto, a float32 recurrent state, whatever the flag
        return "float32"
    if mamba_ssm_cache_dtype != "auto":
        return mamba_ssm_cache_dtype
    conv = conv_state_dtype(spec, mamba_cache_dtype)
    rule = vllm_rules().ssm_state_dtype.architectures.get(spec.architecture or "")
    if rule is None:
        return conv
    return spec.ssm_state_dtype or rule.default or conv


def resolve_kv_dtype(spec: ModelSpec, kv_cache_dtype: str, checkpoint_kv: bool = True) -> tuple[str, str]:
    """(dtype, why when `auto` is not the model dtype). vllm/utils/torch_utils.py
    resolve_kv_cache_dtype_string: `auto` takes a ModelOpt checkpoint's kv_cache_quant_algo (or a
    compressed-tensors kv_cache_scheme), and DeepSeek-V3.2 defaults to fp8 (CacheConfig.cache_dtype).
    checkpoint_kv False: releases before data/vllm.json checkpoint_kv_dtype_since, where `auto` is the model
    dtype whatever the checkpoint says."""
    if kv_cache_dtype != "auto":
        return KV_DTYPES.get(kv_cache_dtype, kv_cache_dtype) or spec.dtype, ""
    qc = spec.quantization_config or {}
    algo = qc.get("kv_cache_quant_algo") or (qc.get("kv_cache_scheme") and "FP8")
    if checkpoint_kv and isinstance(algo, str) and "FP8" in algo.upper():
        return "fp8", "--kv-cache-dtype auto takes the checkpoint's FP8 KV cache (kv_cache_quant_algo)"
    if any(layer.attention is not None and layer.attention.mla is not None and layer.attention.mla.index_n_heads
           for layer in spec.layers):
        return "fp8", "--kv-cache-dtype auto is fp8 for DeepSeek-V3.2 (vLLM CacheConfig.cache_dtype)"
    return spec.dtype, ""


def _at_least(version: str, since: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split(".")[:3])
    return key(version) >= key(since)


def release_settings(spec: ModelSpec, version: str) -> dict[str, Any]:
    """The KVSettings fields that follow the vLLM release (data/vllm.json, each rule with its source):
    the sliding window's in-flight reservation, the hybrid manager for chunked local attention (off in
    VllmConfig.__post_init__ before chunked_local_hybrid_manager_since), the Mamba-2 checkpoint block, and
    prefix caching's default for hybrid attention + Mamba / GDN models (off before hybrid_prefix_caching_since),
    and the default block size (CacheConfig.DEFAULT_BLOCK_SIZE: 64 from block_size_64_since, 16 before)."""
    r = vllm_rules()
    chunked = any(layer.attention is not None and layer.attention.kind == "chunked" for layer in spec.layers)
    hybrid = any(layer.ssm is not None for layer in spec.layers) and \
        any(layer.attention is not None for layer in spec.layers)
    return {"in_flight_batches": _at_least(version, r.sliding_in_flight_since.version),
            "hybrid_manager": not chunked or _at_least(version, r.chunked_local_hybrid_manager_since.version),
            "mamba2_checkpoint_block": _at_least(version, r.mamba2_checkpoint_block_since.version),
            "null_block_in_fit": _at_least(version, r.null_block_in_fit_since.version),
            "fit_by_groups": _at_least(version, r.group_fit_since.version),
            "checkpoint_kv_dtype": _at_least(version, r.checkpoint_kv_dtype_since.version),
            "block_size": 64 if _at_least(version, r.block_size_64_since.version) else 16,
            "prefix_caching": False if hybrid and not _at_least(version, r.hybrid_prefix_caching_since.version)
            else None}


def _lcm(a: int, b: int) -> int:
    return a * b // gcd(a, b)


def kv_pool(spec: ModelSpec, s: KVSettings, stage: int = 0) -> KVPool:
    """The KV pool of one rank in PP stage `stage`."""
    split = pp_layer_split(spec.num_layers, s.pp, s.pp_partition)
    first = sum(split[:stage])
    caches = cache_layers(spec)[first:first + split[stage]]
    kv_dtype, why = resolve_kv_dtype(spec, s.kv_cache_dtype, s.checkpoint_kv_dtype)
    fmt = kv_formats().formats.get(kv_dtype)
    # a packed format is stored as uint8 / int8 (vllm/utils/torch_utils.py STR_DTYPE_TO_TORCH_DTYPE): what a
    # backend that does not pack it (FlashAttention, first in layer order beside TurboQuant's boundary layers)
    # sees in the skip-layer alignment
    kvb = 1 if fmt else dtype_bytes(kv_dtype)
    unchecked = (MLALatent, SlidingWindow, ChunkedLocal) if fmt and fmt.kind == "turboquant" else (MLALatent,)
    if fmt and any(isinstance(c.attention, unchecked) for c in cache_layers(spec)):
        raise NotModelledError(f"--kv-cache-dtype {kv_dtype} on a model with "
                               f"{'MLA, sliding-window or chunked' if fmt.kind == 'turboquant' else 'MLA'} attention "
                               "layers: not modelled (vLLM 0.33.0's own planning, the oracle, was checked on "
                               "full-attention and hybrid models, and stops on TurboQuant beside sliding windows); "
                               "remove the flag to check the rest")
    if fmt and fmt.kind == "per_token_head" and s.kv_skip_layers:
        raise NotModelledError(f"--kv-cache-dtype {kv_dtype} with --kv-cache-dtype-skip-layers: no oracle run checks "
                               "how vLLM aligns the two backends' pages (remove one of the flags to check the rest)")
    notes: list[str] = [why] if why else []
    # (kind, window, page bytes per token) -> layers: vLLM groups layers of equal specs
    buckets: dict[tuple[str, int | None, int], int] = {}
    own_kinds: dict[tuple[str, int | None], int] = {}  # each layer's own spec kind, the hybrid manager aside
    attn_pages = set()
    index_pages: dict[int, int] = {}  # MiniMax-M3's index-key caches: page bytes per token -> layers
    mamba_pages = []
    attention_free = all(c.attention is None for c in cache_layers(spec))
    prefix_caching = not attention_free if s.prefix_caching is None else s.prefix_caching
    # FlashInfer's GDN prefill in align mode (prefix caching): a checkpoint block per GDN layer and the hybrid block
    # on its 64-token grid, only where every recurrent layer of the model is GDN (vLLM 0.33.0
    # qwen_gdn_linear_attn.py GatedDeltaNetAttention.get_kv_cache_spec; mamba/abstract.py
    # get_mamba_prefill_checkpoint_alignment: a Mamba-2 mixer declares none)
    recurrent = [c.recurrent.kind for c in cache_layers(spec) if c.recurrent is not None]
    gdn_checkpoint = s.gdn_prefill_backend == "flashinfer" and prefix_caching and bool(recurrent) and \
        all(k == "gated_deltanet" for k in recurrent)
    model_bytes = dtype_bytes(spec.dtype)
    skipping = bool(s.kv_skip_layers) and kvb < model_bytes
    primary_tok = padded_tok = 0
    for i, c in enumerate(caches, start=first):
        a = c.attention
        if isinstance(a, MLALatent) and s.mla_disabled:
            a = per_head_mla(a)
        # GPUModelRunner.get_kv_cache_spec gives no spec to a layer that reuses another's KV
        if a is not None and not isinstance(a, SharedKV):
            # --kv-cache-dtype-skip-layers: by index, or every sliding-window layer (Attention.__init__: its
            # KV dtype becomes auto, the model dtype; MLAAttention takes indices only)
            skip = skipping and (str(i) in s.kv_skip_layers or (isinstance(a, SlidingWindow) and
                                                                "sliding_window" in s.kv_skip_layers))
            tok = a.bytes_per_token(model_bytes, s.tp) if skip else packed_bytes_per_token(a, fmt, s.tp) if fmt \
                else a.bytes_per_token(kvb, s.tp)  # one token of this layer on this rank
            if not primary_tok:  # the model-level page the alignment uses (ModelConfig head size and KV heads)
                primary_tok, padded_tok = a.bytes_per_token(kvb, s.tp), a.bytes_per_token(model_bytes, s.tp)
            if isinstance(a, SlidingWindow) and s.hybrid_manager:
                key: tuple[str, int | None, int] = ("sliding", a.window, tok)
            elif isinstance(a, ChunkedLocal) and a.chunk and s.hybrid_manager:
                key = ("chunked", a.chunk, tok)
            else:  # without the hybrid manager every attention layer is held at full length
                key = ("full", None, tok)
            buckets[key] = buckets.get(key, 0) + 1
            own = ("sliding", a.window) if isinstance(a, SlidingWindow) else \
                ("chunked", a.chunk) if isinstance(a, ChunkedLocal) and a.chunk else ("full", None)
            own_kinds[own] = own_kinds.get(own, 0) + 1
            attn_pages.add(tok)
            if isinstance(a, FullAttention) and a.index_dim:
                # MiniMax-M3's index-key cache: its own layer spec (one head, bf16 unless --attention-config
                # indexer_kv_dtype), a full-attention kind beside the layer's K/V (data/vllm.json minimax_m3_msa)
                itok = a.index_dim * vllm_rules().minimax_m3_msa.index_cache_bytes
                index_pages[itok] = index_pages.get(itok, 0) + 1
                own_kinds[("full", None)] = own_kinds.get(("full", None), 0) + 1
            if a.indexer_bytes_per_token():
                notes.append("the DeepSeek-V3.2 indexer cache is not in the pool yet")
        if c.recurrent is not None:  # MambaSpec: the conv state at the model dtype, the temporal state at
            # ssm_state_dtype (vLLM 0.33.0 vllm/model_executor/layers/mamba/mamba_utils.py MambaStateDtypeCalculator)
            mkey = ("mamba", None, int(c.recurrent.kind == "mamba2" and s.mamba2_checkpoint_block or
                                       c.recurrent.kind == "gated_deltanet" and gdn_checkpoint))
            buckets[mkey] = buckets.get(mkey, 0) + 1
            mamba_pages.append(c.recurrent.state_bytes(dtype_bytes(conv_state_dtype(spec, s.mamba_cache_dtype)),
                                                       dtype_bytes(ssm_state_dtype(spec, s.mamba_cache_dtype,
                                                                                   s.mamba_ssm_cache_dtype)),
                                                       s.tp, s.num_speculative_tokens) +
                               (c.recurrent.replayssm_ring_bytes(s.replayssm_rows, model_bytes, s.tp)
                                if s.replayssm_rows and c.recurrent.kind == "mamba2" else 0))
    attn_tok = max(attn_pages, default=0)
    bs = s.block_size
    if mamba_pages and not attn_tok and not prefix_caching and s.max_model_len:
        bs = s.max_model_len  # MambaModelConfig: mamba_block_size = max_model_len
    elif mamba_pages and not attn_tok and s.mamba_block_size:
        bs = s.mamba_block_size  # prefix caching on: the Mamba specs' block (MambaBase.get_kv_cache_spec)
    if mamba_pages:
        mamba_page = max(mamba_pages)
        if attn_tok:  # Platform._align_hybrid_block_size
            align = 128 if not s.mla_disabled and any(isinstance(c.attention, MLALatent) for c in caches) else bs
            if gdn_checkpoint:  # _align_hybrid_block_size: internal prefill checkpoints land on block boundaries
                from .rules import vllm_platforms

                align = _lcm(align, vllm_platforms().gdn_prefill.checkpoint_alignment)
            bs = align * ceil(mamba_page / (align * attn_tok))
            page = bs * attn_tok  # the Mamba page is padded up to the attention page
        else:
            page = mamba_page
    else:
        page = bs * attn_tok
    block_of: dict[tuple[str, int | None, int], int] = {}  # a group's own block, where it is not bs x page ratio
    refusal = None
    if skipping and primary_tok:
        if mamba_pages:
            raise NotModelledError("--kv-cache-dtype-skip-layers on a model with Mamba / linear-attention layers: "
                                   "vLLM 0.33.0 aligns the hybrid and the skip-layer block sizes in turn "
                                   "(vllm/platforms/interface.py), which vramcalc does not model (remove the flag to "
                                   "check the rest)")
        if any(isinstance(c.attention, MLALatent) for c in caches) and not s.mla_disabled:
            raise NotModelledError("--kv-cache-dtype-skip-layers on an MLA model: no oracle run checks how vLLM "
                                   "groups MLA layers of two dtypes (remove the flag to check the rest)")
        if not s.hybrid_manager and any(isinstance(c.attention, SlidingWindow) for c in caches):
            raise NotModelledError("--kv-cache-dtype-skip-layers with sliding-window layers and the hybrid KV cache "
                                   "manager off: vramcalc does not model how their padded pages are unified (remove "
                                   "one of the flags to check the rest)")
        bs, shared = kv_skip_alignment(primary_tok, padded_tok, bs)
        if any(kind == "sliding" for kind, _, _ in buckets):
            # full layers keep the raised block (page bs x their token bytes); sliding ones pad to the shared
            # page; unify_kv_cache_spec_page_size then scales a page that divides the largest up to it
            # (vllm/v1/core/kv_cache_planning.py, 0.33.0)
            natural = {k: (sliding_block_within(k[2], shared), shared) if k[0] == "sliding" else (bs, bs * k[2])
                       for k in buckets}
            page = max(pg for _, pg in natural.values())
            block_of = {k: blk * (page // pg) if page % pg == 0 else blk for k, (blk, pg) in natural.items()}
            if page > shared:  # a skipped full layer's page above the shared one: scaling a padded sliding spec's
                # block leaves its real page above its padding (kv_cache_interface.py SlidingWindowSpec.page_size_bytes)
                refusal = ("AssertionError: assert self.page_size_padded >= self.unpadded_page_size_bytes [vllm/v1/"
                           "core/kv_cache_planning.py unify_kv_cache_spec_page_size: a full-attention layer kept at the "
                           "model dtype has a page above the sliding-window layers' padded one]")
        else:
            page = bs * attn_tok
    if index_pages and not (all(kind == "full" for kind, _, _ in buckets) and not mamba_pages):
        raise NotModelledError("MiniMax-M3 index-key caches beside sliding-window, chunked or recurrent layers "
                               "(the hybrid manager off or layers of another kind): not modelled")
    if (len(buckets) > 1 or index_pages) and all(kind == "full" for kind, _, _ in buckets):
        # full-attention layers of different page sizes (a draft model's or EAGLE head's layers beside the
        # target's): one group whose page is the sum of its layers' pages (vLLM 0.33.0 kv_cache_interface.py
        # UniformTypeKVCacheSpecs; kv_cache_planning.py get_kv_cache_groups), so a block costs every layer's page
        # an index-key cache is an MLAAttentionSpec of its own beside the layer's FullAttentionSpec: the same group
        # even where its page equals the K/V page (tests/data/vllm_minimax_m3_oracle_v0.34.0.json, TP 4 fp8)
        n_layers = sum(buckets.values()) + sum(index_pages.values())
        page = bs * (sum(tok * n for (_, _, tok), n in buckets.items()) + sum(t * n for t, n in index_pages.items()))
        return KVPool(block_size=bs, attn_bytes_per_token_layer=attn_tok, page_bytes=page, group_size=1,
                      groups=[KVGroup(kind="full", layers=n_layers, block_size=bs)], bytes_per_block=page,
                      padding_layers=0, notes=notes)
    counts = sorted(buckets.values())
    if not counts:
        raise NotModelledError("no layer of this stage holds KV cache or state")
    smallest, largest = counts[0], counts[-1]
    group_size = largest if largest < 1.5 * smallest else smallest
    if len(counts) == 1:
        group_size = largest
    groups: list[KVGroup] = []
    padding = 0
    for (kind, window, tok), n in sorted(buckets.items(), key=lambda kv: (kv[0][0], -kv[0][2])):
        # vLLM 0.33.0 kv_cache_planning.py unify_kv_cache_spec_page_size: a smaller attention page that divides
        # the largest gets its block size scaled up by the ratio; one that does not is padded (Mamba pages too)
        g_bs = bs * (page // (bs * tok)) if tok and page % (bs * tok) == 0 and kind != "mamba" else bs
        g_bs = block_of.get((kind, window, tok), g_bs)
        if kind == "mamba" and not prefix_caching and s.max_model_len:
            # mamba_cache_mode "none": MambaModelConfig sets mamba_block_size = max_model_len, the Mamba specs'
            # block (vLLM 0.20.0 / 0.25.0 vllm/model_executor/models/config.py; tests/data/vllm_oracle)
            g_bs = s.max_model_len
        # MambaSpec.max_memory_usage_bytes: align mode keeps 2 + speculative + prefill-checkpoint blocks
        # (a Mamba-2 mixer's own one or FlashInfer GDN's, `tok` in its key), "none" 1 + speculative
        mb = (2 + s.num_speculative_tokens + tok if prefix_caching
              else 1 + s.num_speculative_tokens) if kind == "mamba" else 1
        k = ceil(n / group_size)
        for j in range(k):
            size = len(range(j, n, k))  # layers dealt out i::k
            groups.append(KVGroup(kind=kind, layers=size, window=window, block_size=g_bs, mamba_blocks=mb))
            padding += group_size - size
    # the scheduler's block size: the smallest group block, a Mamba one included (vLLM 0.20.0 v1/engine/core.py
    # _initialize_kv_caches: min over kv_cache_groups), e.g. Nemotron-H at 8K without prefix caching: Mamba 8192
    # below the aligned attention block 8256
    bs = min((g.block_size for g in groups if g.kind != "mamba"), default=bs)
    if not prefix_caching:
        bs = min([bs] + [g.block_size for g in groups if g.kind == "mamba"])
    layer_specs = [KVGroup(kind=k, layers=n, window=w, block_size=bs) for (k, w), n in sorted(
        own_kinds.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))]
    layer_specs += [g for g in groups if g.kind == "mamba"]
    return KVPool(block_size=bs, attn_bytes_per_token_layer=attn_tok, page_bytes=page, group_size=group_size,
                  groups=groups, bytes_per_block=group_size * page, padding_layers=padding, notes=notes,
                  layer_specs=layer_specs, refusal=refusal)


class KVCapacity(BaseModel):
    model_config = ConfigDict(frozen=True)

    num_blocks: int
    blocks_per_request: int
    max_concurrency: float
    kv_cache_tokens: int
    fits_one_request: bool


def capacity(pool: KVPool, available_bytes: int, max_model_len: int, s: KVSettings,
             logged_tokens: str = "current") -> KVCapacity:
    """num_blocks from the available KV bytes; the concurrency and token count vLLM logs.

    logged_tokens "current" (0.21+): int(num_blocks / blocks_per_request * L); "legacy" (up to 0.20):
    (num_blocks // n_groups) * block_size (data/vllm.json logged_tokens_from_concurrency_since). The fit check: KVPool.fits_request."""
    n = pool.num_blocks(available_bytes)
    per_req = pool.blocks_per_request(max_model_len, s)
    conc = n / per_req
    if logged_tokens == "legacy":
        tokens = n // len(pool.groups) * pool.block_size
    else:
        tokens = int(conc * max_model_len)
    fits = pool.fits_request(max_model_len, available_bytes, s)
    return KVCapacity(num_blocks=n, blocks_per_request=per_req, max_concurrency=conc, kv_cache_tokens=tokens,
                      fits_one_request=fits)
