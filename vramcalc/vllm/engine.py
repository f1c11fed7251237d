"""`vllm serve` on a set of GPUs: the per-GPU budget, what vLLM would log, and whether it starts.

budget (docs/vllm.md#budget):     requested = ceil(T x u)   [v0.33.0 vllm/v1/worker/utils.py request_memory]
                                  available_kv = requested - weights - activation - non_torch
                                                 [- cuda_graphs, from 0.20]
activation (calibrated, data/vllm.json): max(forward, sampler) where
    forward = forward_coef x max_num_batched_tokens x intermediate_per_rank x dtype bytes
    sampler = copies(path) x max_num_seqs x vocab x 4 bytes + sampler_const  (last PP stage only)
              path: the top-k/top-p implementation this release and install samples with (data/vllm.json sampler)
non-torch (calibrated): tp1 / pp_multi, or tp_multi while vLLM's custom all-reduce is on
"""

from __future__ import annotations

import bisect

import json
import math
import shlex
from math import ceil
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..serving import ServingEstimate
from ..errors import CheckedOptions, InputError, NotModelledError
from ..gpus import GPU
from ..kv import dtype_bytes
from ..limits import MAX_BLOCK_SIZE, MAX_CONTEXT, MAX_GPUS, MAX_SEQUENCES
from ..messages import Message, error, warning
from ..params import count_params
from ..data_models import VllmVersion
from ..results import Result, Row
from ..quant import QuantScheme, quant_targets, scheme_from_config, stand_in_messages, target_scheme
from ..spec import ModelSpec
from .kv import (KVCapacity, KVPool, KVSettings, _at_least, capacity, kv_formats, kv_pool, release_settings, resolve_kv_dtype,
                 turboquant_boundary_layers)
from .rules import (attention_backend, runs_flashinfer, dtype_messages, gdn_prefill_backend, kda_prefill_refusal,
                    kda_state_dtype_refusal, parallel_messages, platform_messages,
                    quant_messages, source_messages, vllm_platforms)
from .result_types import Layout, ModelSummary
from .hf_overrides import apply_hf_overrides, json_object_arg, parse_hf_overrides
from .diffusion import DIFFUSION_GEMMA, plan_diffusion, sampler_warning
from .spec_decode import (SpecPlan, SpecSummary, acceptance_warning, parse_speculative_config, plan_speculative,
                          summary)
from .weights import (MXFP4_MOE_BACKENDS, MoEShards, RankWeights, moe_shards, mxfp4_moe_backend, pp_layer_split,
                      fp8_moe_requant_per_rank, gfx11_row_pad_per_rank, mxfp4_emulation_dequant_per_rank,
                      mxfp8_dequant_per_rank, rdna_int4_pad_per_rank,
                      rdna_prefill_copy_applies, rdna_prefill_copy_per_rank, rocm_fp8_padding_per_rank, rotary_cache_bytes,
                      sharding_switches,
                      transformers_rope_bytes, vllm_rules, weights_per_rank)
from ..trace import TraceTerm, term
from .mm_embeds import EmbedsCache, embedding_only, embeds_cache, embeds_on
from .weight_transfer import transfer_buffers, transfer_message

GIB = 2**30
MIB = 2**20
STARTUP_MARGIN_GIB = 0.25
DTYPES = ("auto", "bfloat16", "float16", "float32")  # --dtype as vramcalc takes it (vLLM also: half, float)


# vLLM 0.33.0 vllm/config/cache.py CacheDType: the unpacked ones (vllm/kv.py KV_DTYPES), the packed ones
# (data/vllm_kv_formats.json formats) and those vramcalc does not model (its not_modelled: refused by name)
KVCacheDtype = Literal["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla",
                       "nvfp4_ds_mla", "turboquant_k8v4", "turboquant_4bit_nc", "turboquant_k3v4_nc",
                       "turboquant_3bit_nc", "octave_k3v4", "octave_k3v3", "octave_k3v3_compact", "ultraquant_4bit",
                       "int4_per_token_head", "int8_per_token_head", "fp8_per_token_head", "nvfp4", "nvfp4_4over6"]


# vllm/config/kernel.py LinearBackend, 0.33.0 (--linear-backend choices)
LinearBackend = Literal["auto",
                        "cutlass",
                        "flashinfer_cutlass",
                        "flashinfer_cutedsl",
                        "flashinfer_trtllm",
                        "flashinfer_cudnn",
                        "flashinfer_b12x",
                        "b12x",
                        "marlin",
                        "humming",
                        "triton",
                        "deep_gemm",
                        "torch",
                        "aiter",
                        "machete",
                        "fbgemm",
                        "conch",
                        "exllama",
                        "emulation",
                        "xpu",
                        "xpu_woq"]


class VLLMOptions(CheckedOptions):
    """vLLM's options. An invalid value is an InputError naming the field and what it accepts."""
    model_config = ConfigDict(frozen=True)

    tp: int = Field(default=1, ge=1, le=MAX_GPUS)
    pp: int = Field(default=1, ge=1, le=MAX_GPUS)
    engine_version: str | None = None  # default: the newest modelled release
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = Field(default=None, ge=1, le=MAX_CONTEXT)
    max_num_seqs: int | None = Field(default=None, ge=1, le=MAX_SEQUENCES)
    max_num_batched_tokens: int | None = Field(default=None, ge=1, le=MAX_CONTEXT)
    kv_cache_dtype: KVCacheDtype = "auto"
    block_size: int | None = Field(default=None, ge=1, le=MAX_BLOCK_SIZE)
    quantization: str | None = None  # a vramcalc target (fp8, awq, ...) for --quantization, or online / an online
    #                                  shorthand (vllm/quant_config.py is_online)
    # --quantization-config's JSON as given (vllm/quant_config.py): with --quantization online or a shorthand it
    # names the online weight formats; without one vLLM builds no online method on an unquantized checkpoint
    quantization_config: str | None = None
    # VLLM_HUMMING_ONLINE_QUANT_CONFIG / VLLM_HUMMING_INPUT_QUANT_CONFIG as given (JSON): the weight schema
    # --quantization humming quantizes an unquantized checkpoint to as it loads, and the activation schema
    # (vllm/humming.py)
    humming_online_quant_config: str | None = None
    humming_input_quant_config: str | None = None
    dtype: str | None = None  # DTYPES, or half / float
    enforce_eager: bool = False
    moe_backend: str | None = None  # --moe-backend (MXFP4_MOE_BACKENDS); None: vLLM's choice
    # VLLM_USE_FLASHINFER_SAMPLER: True/False as set; None: the release's default (up to 0.11.0: FlashInfer when
    # installed, which vramcalc cannot see, so the larger PyTorch-sort peak is planned for)
    flashinfer_sampler: bool | None = None
    # VLLM_ALLOW_LONG_MAX_MODEL_LEN=1: a --max-model-len above the model's derived length starts, with a warning
    # (vllm/config/model.py _get_and_verify_max_len); the KV cache is sized for the length given either way
    allow_long_max_model_len: bool = False
    # VLLM_ROCM_FP8_PADDING (default 1): on ROCm, a pre-quantized FP8 checkpoint's linear weights are padded by
    # 256 bytes a row (weights.py rocm_fp8_padding_per_rank); 0 (False) keeps them unpadded
    rocm_fp8_padding: bool = True
    # VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD (default true): where an MXFP8 checkpoint runs on the emulation kernels
    # (ROCm below gfx950), its weights are dequantized to bf16 at load (weights.py mxfp8_dequant_per_rank); False
    # keeps them at one byte and dequantizes every step
    mxfp8_emulation_dequant: bool = True
    # --kernel-config '{"rdna_hybrid_w4a16_prefill_dequant": "enable"}' (vLLM 0.34.0): the RDNA hybrid W4A16 kernel
    # keeps a dense 16-bit copy of each of its int4 weights for prefill (weights.py rdna_prefill_copy_per_rank)
    rdna_w4a16_prefill_dequant: bool = False
    # VLLM_FP8_MOE_REQUANT=mxfp4 (0.34, ROCm): a block-FP8 checkpoint's routed experts re-quantized to MXFP4 at load
    # (weights.py fp8_moe_requant_per_rank; _fp8_moe_requant); VLLM_FP8_MOE_REQUANT_ACT (lower-cased as vLLM does);
    # rocm_aiter_moe: VLLM_ROCM_USE_AITER=1 with VLLM_ROCM_USE_AITER_MOE not off, read beside them (AITER's MoE kernels)
    fp8_moe_requant: bool = False
    # VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1: compressed-tensors MXFP4 linear weights on the emulation kernel held at
    # bf16 (weights.py mxfp4_emulation_dequant_per_rank; _mxfp4_emulation_dequant)
    mxfp4_emulation_dequant: bool = False
    # VLLM_RELOAD_MODE (0.34): direct's refusals (VllmConfig._verify_direct_reload_compat) and, on a quantized
    # checkpoint, a warning that its post-load processing may keep more (_reload_mode_messages)
    reload_mode: Literal["layerwise", "direct"] = "layerwise"
    fp8_moe_requant_act: Literal["a8w4", "a4w4", "a16w4"] = "a8w4"
    rocm_aiter_moe: bool = False
    # --monokernel / --kernel-config '{"monokernel": true}' (KernelConfig.monokernel, vLLM 0.34.0): read only by
    # MiniMax-M3's ROCm class (_minimax_m3_monokernel); no effect elsewhere
    monokernel: bool = False
    # VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE in bytes (None: the default, 394 MiB): FlashInfer's workspace floor and
    # the TRT-LLM kernels' buffer (_flashinfer_workspace)
    flashinfer_workspace_bytes: int | None = Field(default=None, ge=0, le=2**40)
    # VLLM_KV_CACHE_LAYOUT (vllm/envs.py, v0.34.0; None: unset, the backends' preference): refused in vLLM's words
    # where the attention backends it picks do not all accept it, else noted (vllm/kv_layout.py); the KV figures are
    # the default layout's (tests/data/vllm_kv_layout_oracle_v0.33.0.json)
    kv_cache_layout: Literal["LBNHC", "LBHNC", "LHBNC", "NHD", "HND", "BLHNC", "BLNHC", "BHLNC"] | None = None
    # VLLM_SPARSE_INDEXER_MAX_LOGITS_MB (None: the default, 512): the DSA sparse indexer's dummy logits tensor in the
    # profile run (_sparse_indexer)
    sparse_indexer_max_logits_mb: int | None = Field(default=None, ge=0, le=2**20)
    # VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB (None: the default, 2048; 0 off; vLLM 0.34.0): the decode logits budget
    # on SM 10.x, which caps the decode rows of the indexer's profile-run dummy (_sparse_indexer)
    sparse_indexer_max_decode_logits_mb: int | None = Field(default=None, ge=0, le=2**20)
    # VLLM_USE_FUSED_MQA_TOPK (default on; vLLM 0.34.0): the fused MQA-logits + top-k prefill kernel on SM 10.x,
    # whose scratch the profile run allocates ahead of the dummy (_sparse_indexer)
    use_fused_mqa_topk: bool = True
    # VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE (None: the default, 163840): the rows of the CUTLASS FP4 MoE kernels'
    # block-scale tensor, a forward transient with --moe-backend cutlass on NVFP4 experts (_fp4_moe_blockscale)
    max_tokens_per_expert_fp4_moe: int | None = Field(default=None, ge=1, le=2**31)
    disable_custom_all_reduce: bool = False  # --disable-custom-all-reduce
    # --model-impl (vllm/config/model.py ModelImpl, 0.33.0): transformers builds vLLM's Transformers backend, whose
    # parameters are the vLLM class's and whose rotary buffers are transformers' (weights.py transformers_rope_bytes);
    # terratorch (geospatial pooling models) is not modelled; auto and vllm build vLLM's own class for these models
    model_impl: Literal["auto", "vllm", "transformers", "terratorch"] = "auto"
    # --speculative-config as the JSON object vLLM takes (vramcalc/vllm/spec_decode.py parse_speculative_config)
    speculative_config: dict[str, Any] | None = None
    spec_acceptance: float | None = None  # a stated per-token acceptance rate for the speed estimate

    @field_validator("speculative_config", mode="before")
    @classmethod
    def _spec_json(cls, v: Any) -> Any:
        """The JSON text vLLM takes, or the dict it parses to; keys checked against SpeculativeConfig's fields."""
        return parse_speculative_config(v) if v is not None else None

    # --diffusion-config as the JSON object vLLM takes (vllm/config/diffusion.py DiffusionConfig; vramcalc/vllm/
    # diffusion.py): canvas_length and max_denoising_steps
    diffusion_config: dict[str, Any] | None = None

    @field_validator("diffusion_config", mode="before")
    @classmethod
    def _diffusion_json(cls, v: Any) -> Any:
        """The JSON text or dict; refused as EngineArgs.create_diffusion_config refuses it."""
        from .json_flags import diffusion_object

        return diffusion_object(v) if v is not None else None

    # LoRA (vllm/config/lora.py LoRAConfig; None: its defaults, data/vllm_features.json lora)
    enable_lora: bool = False
    max_loras: int | None = Field(default=None, ge=1, le=1024)
    max_lora_rank: int | None = Field(default=None, ge=1, le=4096)
    max_cpu_loras: int | None = Field(default=None, ge=1, le=1_000_000)  # host memory only
    lora_extra_vocab_size: int | None = Field(default=None, ge=0, le=MAX_CONTEXT)  # before 0.12.0
    fully_sharded_loras: bool = False
    lora_dtype: Literal["auto", "float16", "bfloat16"] = "auto"  # LoRADType; auto: the model's dtype
    # --hf-config-path: the config vLLM builds the model from (the caller reads the spec from it, api.py
    # config_source); written back into the command
    hf_config_path: str | None = Field(default=None, min_length=1, max_length=4096)
    enable_moe_shared_loras: bool = False  # MoE expert slots in the shared-outer layout (vllm/lora/layers/fused_moe.py)
    enable_mixed_moe_lora_format: bool = False  # FusedMoEWithLoRA for is_3d_moe_weight classes too
    specialize_active_lora: bool = False  # CUDA graphs per active-adapter count (vllm/lora/utils.py)
    # --enable-tower-connector-lora: LoRA slots on the vision tower and connector too (vllm/config/lora.py)
    enable_tower_connector_lora: bool = False
    cpu_offload_gb: float = Field(default=0.0, ge=0, le=1_000_000)  # per GPU
    # --cpu-offload-params: the parameter-name segments --cpu-offload-gb may move (vllm/config/offload.py
    # UVAOffloadConfig.cpu_offload_params; empty: any decoder-layer parameter); `experts` is sized (the routed experts)
    cpu_offload_params: tuple[str, ...] = ()
    # VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1: the UVA offloader's parameters stay host tensors and each layer holding
    # any is copied to the GPU for its forward (vllm/model_executor/offloader/uva.py; vramcalc/vllm/offload.py
    # uva_largest_layer_copy): the largest such layer copy joins the forward's activation peak
    weight_offloading_disable_uva: bool = False
    # VLLM_CONFIDENTIAL_COMPUTE=1 (0.34; NVIDIA GPUs): NVIDIA Confidential Computing on, so vLLM takes UVA as
    # unavailable (vllm/utils/platform_utils.py is_uva_available): the model runner's UVA buffers get device copies
    # (_conf_compute_bytes, persistent) and the UVA offloader copies layers as weight_offloading_disable_uva does
    confidential_compute: bool = False
    # --offload-backend and the prefetch offloader's --offload-group-size / --offload-num-in-group /
    # --offload-prefetch-step / --offload-params (vllm/config/offload.py OffloadConfig, PrefetchOffloadConfig;
    # vramcalc/vllm/offload.py): auto takes prefetch when offload_group_size > 0, then UVA (--cpu-offload-gb)
    offload_backend: Literal["auto", "uva", "prefetch"] = "auto"
    offload_group_size: int = Field(default=0, ge=0, le=1_000_000)
    offload_num_in_group: int = Field(default=1, ge=1, le=1_000_000)
    offload_prefetch_step: int = Field(default=1, ge=0, le=1_000_000)
    offload_params: tuple[str, ...] = ()

    @property
    def offloader(self) -> Literal["uva", "prefetch"] | None:
        """The offloader vLLM installs (vllm/model_executor/offloader/base.py create_offloader); None: nothing moves."""
        from .offload import offload_backend

        return offload_backend(self.offload_backend, self.offload_group_size, self.cpu_offload_gb)

    @property
    def uva_offload_gb(self) -> float:
        """--cpu-offload-gb as it acts: 0 unless the UVA offloader is the one installed."""
        return self.cpu_offload_gb if self.offloader == "uva" else 0.0
    kv_cache_memory_bytes: int | None = Field(default=None, ge=1, le=2**50)  # replaces the utilization budget
    # --enable- / --disable-extensible-kv-cache (0.34): None is vLLM's default (on for CUDA and ROCm where allowed)
    enable_extensible_kv_cache: bool | None = None
    enable_elastic_ep: bool = False  # --enable-elastic-ep: only its effect on the extensible KV cache (0.34) is modelled
    language_model_only: bool = False  # --language-model-only: no vision encoder, no encoder profiling
    # --enable-mm-embeds: precomputed embeddings taken; with every modality at 0 the run-time encoder cache holds them
    # outside the KV budget (vramcalc/vllm/mm_embeds.py, data/vllm_features.json multimodal mm_embeds, 0.34.0)
    enable_mm_embeds: bool = False
    # --ec-transfer-config ec_role: an ec_consumer (or ec_both) takes precomputed embeddings as --enable-mm-embeds
    # (vllm/config/vllm.py VllmConfig._resolve_mm_embedding_inputs); an ec_producer is warned as not modelled
    ec_role: Literal["ec_producer", "ec_consumer", "ec_both"] | None = None
    # --weight-transfer-config backend: the engine built after the weights load holds nothing at start-up; each weight
    # update's receive buffers come out of what the KV cache leaves (vramcalc/vllm/weight_transfer.py, 0.34.0)
    weight_transfer_backend: str | None = Field(default=None, max_length=200)
    # --mm-ipc-gpu-memory-gb: GiB per GPU carved out of the KV cache for the frontend's GPU-side multimodal work, on a
    # multimodal model (vllm/multimodal/gpu_ipc_memory.py reserve_mm_ipc_gpu_memory, 0.33.0)
    mm_ipc_gpu_memory_gb: float = Field(default=0.0, ge=0, le=1_000_000)
    # --video-pruning-rate: above 0, Qwen3-VL / Qwen3.5's M-RoPE cache holds 4x the positions (data/vllm.json
    # rotary_cache mrope_pruning_*); vLLM refuses values outside [0, 1) (vllm/config/multimodal.py, 0.33.0)
    video_pruning_rate: float | None = Field(default=None, allow_inf_nan=False)
    # --mm-encoder-attn-dtype fp8: refused at model build where no encoder backend can run it (data/vllm_features.json
    # multimodal encoder_fp8, vllm/model_executor/layers/attention/mm_encoder_attention.py, 0.33.0)
    mm_encoder_attn_dtype: Literal["fp8"] | None = None
    # --mm-encoder-attn-backend: the vision encoder's attention kernel, parsed, checked and picked as vLLM 0.34.0 does
    # (vramcalc/vllm/vit_attn.py; data/vllm_features.json multimodal.encoder_attn_backend); None: the platform's pick
    mm_encoder_attn_backend: str | None = None

    @field_validator("mm_encoder_attn_backend", mode="before")
    @classmethod
    def _vit_backend(cls, v: Any) -> Any:
        from .vit_attn import parse

        return parse(v) if isinstance(v, str) else v
    # --num-gpu-blocks-override: the KV pool holds this many blocks whatever the profile found (vllm/v1/core/
    # kv_cache_planning.py get_kv_cache_configs: available_memory = override x bytes per block, 0.33.0)
    num_gpu_blocks_override: int | None = Field(default=None, ge=1, le=2**40)
    # --mamba-cache-dtype / --mamba-ssm-cache-dtype (vllm/config/cache.py MambaDType): the recurrent state's dtypes
    # (vllm/model_executor/layers/mamba/mamba_utils.py MambaStateDtypeCalculator, 0.33.0)
    mamba_cache_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # --disable-hybrid-kv-cache-manager: every attention layer at full length where full and local attention mix
    # (vllm/v1/core/kv_cache_planning.py unify_hybrid_kv_cache_specs, 0.33.0)
    disable_hybrid_kv_cache_manager: bool = False
    # --mm-encoder-tp-mode data: every TP rank holds the whole vision tower (vllm/config/multimodal.py
    # mm_encoder_tp_mode, 0.33.0); models whose encoder lacks it fall back to weights (checked as data: conservative)
    mm_encoder_tp_mode: Literal["weights", "data"] = "weights"
    # VLLM_PP_LAYER_PARTITION: the layers of each PP stage (vllm/distributed/utils.py get_pp_indices, 0.33.0)
    pp_layer_partition: tuple[int, ...] | None = None
    mamba_ssm_cache_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    limit_mm_per_prompt: dict[str, int] | None = None  # --limit-mm-per-prompt; None: vLLM's default (all allowed)
    # --mm-processor-kwargs: the processor's options; for the towers data/vllm_features.json multimodal.encoder_peak
    # processors lists they size the profiled dummy item (vramcalc/vllm/mm_profile.py dummy_under_kwargs, vLLM 0.34.0
    # qwen2_vl.py / qwen3_vl.py processing info); None: the checkpoint processor's defaults
    mm_processor_kwargs: dict[str, Any] | None = None
    # --disable-chunked-mm-input: vLLM refuses a multimodal item larger than max_num_batched_tokens
    # (vllm/v1/core/encoder_cache_manager.py compute_mm_encoder_budget, v0.34.0); checked where the item is sized
    disable_chunked_mm_input: bool = False
    # --enable-prefix-caching / off: None is vLLM's default (on unless attention-free); memory changes only for Mamba /
    # linear-attention state (mamba_cache_mode align or none: kv.KVSettings.prefix_caching)
    enable_prefix_caching: bool | None = None

    # --data-parallel-size: engines of TP x PP GPUs each, checked as one of them (the budget is per GPU); on an
    # MoE model their routed experts are split over all TP x DP ranks (weights.moe_shards)
    data_parallel_size: int = Field(default=1, ge=1, le=MAX_GPUS)
    enable_expert_parallel: bool = False  # --enable-expert-parallel / -ep: whole experts per rank (weights.moe_shards)
    # --disable-chunked-prefill: one step holds a whole prompt, so max_num_batched_tokens defaults to
    # max(max_model_len, the default) (v0.33.0 vllm/engine/arg_utils.py _set_default_max_num_seqs_and_batched_tokens_args)
    enable_chunked_prefill: bool = True
    # --cudagraph-capture-sizes / --max-cudagraph-capture-size (or their compilation-config keys): the capture sizes
    # replace / cap vLLM's default list (vllm/config/vllm.py VllmConfig._set_cudagraph_sizes, 0.25.0 and 0.30.0)
    cudagraph_capture_sizes: tuple[int, ...] | None = Field(default=None, min_length=1)
    max_cudagraph_capture_size: int | None = Field(default=None, ge=1, le=MAX_CONTEXT)
    # --performance-mode: interactivity captures every size 1-32; throughput doubles the default max_num_seqs and
    # max_num_batched_tokens (vllm/config/vllm.py _set_cudagraph_sizes, vllm/engine/arg_utils.py, 0.25.0 and 0.30.0)
    performance_mode: Literal["balanced", "interactivity", "throughput"] = "balanced"
    # --kv-offloading-size: GiB of pinned host memory for offloaded KV blocks, summed over the TP ranks (vllm/config/
    # cache.py CacheConfig, 0.30.0); nothing on the GPU budget: the native connectors keep the hybrid manager
    # (vllm/config/vllm.py _post_init_kv_transfer_config; OffloadingConnector / SimpleCPUOffloadConnector SupportsHMA)
    kv_offloading_size: float | None = Field(default=None, gt=0, le=1_000_000)
    # --kv-offloading-backend lmcache: vLLM's own LMCacheMPConnectorUpstream lacks SupportsHMA, so vLLM turns the
    # hybrid manager off (vllm/config/vllm.py VllmConfig.__post_init__, 0.30.0): as --disable-hybrid-kv-cache-manager
    # (the lmcache package's connector, preferred where installed, may keep it: the larger KV pool per token is taken)
    kv_offloading_backend: Literal["native", "lmcache"] = "native"
    # VLLM_USE_SIMPLE_KV_OFFLOAD=1: the native backend's connector is SimpleCPUOffloadConnector instead of
    # OffloadingConnector (vllm/config/vllm.py _post_init_kv_transfer_config, 0.33.0); nothing without
    # --kv-offloading-size
    simple_kv_offload: bool = False

    @property
    def kv_offloading_connector(self) -> str | None:
        """The connector --kv-offloading-size installs (VllmConfig._post_init_kv_transfer_config); None: none."""
        if self.kv_offloading_size is None:
            return None
        if self.kv_offloading_backend == "lmcache":
            return "LMCacheMPConnector"
        return "SimpleCPUOffloadConnector" if self.simple_kv_offload else "OffloadingConnector"
    # --disable-sliding-window: the derived max_model_len capped at the window, then the config's sliding_window set
    # to None, so the models' layers that read it attend in full (vllm/config/model.py ModelConfig.__post_init__,
    # _get_and_verify_max_len; e.g. models/gemma3.py Gemma3Attention, 0.30.0)
    disable_sliding_window: bool = False
    # --hf-overrides: a JSON object applied onto the model's config before it is built (vllm/config/model.py
    # ModelConfig.__post_init__ / _apply_dict_overrides, 0.30.0; vramcalc/vllm/hf_overrides.py)
    hf_overrides: dict[str, Any] | None = None
    # --decode-context-parallel-size: each request's full-attention KV dealt over DCP ranks carved out of the TP
    # ranks (vllm/config/parallel.py ParallelConfig; vllm/v1/kv_cache_interface.py FullAttentionSpec, 0.30.0)
    decode_context_parallel_size: int = Field(default=1, ge=1, le=MAX_GPUS)
    # --dcp-q-replicate (or VLLM_DCP_Q_REPLICATE=1, which wins where it is set): with DCP above 1 the MLA query
    # projection is sharded over TP / DCP ranks, whole within each DCP group (vllm/model_executor/models/
    # deepseek_v2.py DeepseekV2MLAAttention, vllm/model_executor/layers/linear.py DCPGroupColumnParallelLinear, 0.33.0)
    dcp_q_replicate: bool = False
    # VLLM_REPLICATE_EMBED=1: DeepSeek-V3.2's CUDA class builds its embedding whole on every TP rank
    # (vllm/model_executor/layers/fused_embed_norm.py make_input_embedding, 0.33.0)
    replicate_embed: bool = False
    # --prefill-context-parallel-size: PCP ranks beside the TP ranks (world size PP x TP x PCP); vLLM 0.33's
    # refusals are modelled, a PCP layout that starts (MLA models) is refused as not modelled (pcp_messages)
    prefill_context_parallel_size: int = Field(default=1, ge=1, le=MAX_GPUS)

    # --enable-eplb / --eplb-config: expert load balancing, with num_redundant_experts physical experts beyond the
    # model's spread over the EP ranks (vllm/config/parallel.py EPLBConfig, ParallelConfig; fused_moe/layer.py, 0.30.0)
    enable_eplb: bool = False
    eplb_config: dict[str, Any] | None = None

    @field_validator("eplb_config", mode="before")
    @classmethod
    def _eplb_json(cls, v: Any) -> Any:
        """--eplb-config as vLLM takes it: a JSON object of EPLBConfig's fields."""
        return parse_eplb_config(v) if v is not None else None

    # --enable-return-routed-experts / --aux-output-config: the routed experts of every token returned with the
    # output; a device buffer beside the KV cache and a host store sized from it (vramcalc/vllm/aux_output.py, 0.33.0)
    enable_return_routed_experts: bool = False
    aux_output_config: dict[str, Any] | None = None

    @field_validator("aux_output_config", mode="before")
    @classmethod
    def _aux_output_json(cls, v: Any) -> Any:
        """--aux-output-config as vLLM takes it: a JSON object of AuxOutputConfig's fields."""
        from .aux_output import parse_aux_output_config

        return parse_aux_output_config(v) if v is not None else None

    # --attention-backend / --attention-config '{"backend": ...}': the backend vLLM is told to use instead of the one its
    # selector picks (vramcalc/vllm/rules.py attention_backend; vllm/engine/arg_utils.py, vllm/config/attention.py, 0.33.0)
    attention_backend: str | None = None
    attention_config: dict[str, Any] | None = None

    @field_validator("attention_backend", mode="before")
    @classmethod
    def _backend_auto(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.lower() == "auto" else v  # AttentionConfig.validate_backend_before

    @field_validator("attention_config", mode="before")
    @classmethod
    def _attention_json(cls, v: Any) -> Any:
        """--attention-config as vLLM takes it: a JSON object of AttentionConfig's fields; `backend` is modelled."""
        if v is None:
            return None
        return json_object_arg("--attention-config", v, "AttentionConfig fields")

    def selected_backend(self) -> str | None:
        """--attention-backend and attention_config.backend are one setting: both given is vLLM's error
        (vllm/engine/arg_utils.py EngineArgs.create_engine_config)."""
        known = {"backend", "sparse_mla_prefill_workspace_factor"}
        # indexer_logits_dtype: an AttentionConfig field from 0.34.0 (the DSA indexer's logits, _dummy_034)
        if _key(self.engine_version or vllm_rules().default_version) >= \
                _key(vllm_rules().sparse_indexer.dummy_since.version):
            known.add("indexer_logits_dtype")
            v = (self.attention_config or {}).get("indexer_logits_dtype", "auto")
            if v not in ("auto", "float32", "bfloat16"):
                raise InputError(f"--attention-config indexer_logits_dtype: {v!r}: Input should be 'auto', 'float32' "
                                 "or 'bfloat16' (v0.34.0 vllm/config/attention.py AttentionConfig)")
        other = sorted(set(self.attention_config or {}) - known)
        if other:
            raise NotModelledError(f"--attention-config {', '.join(other)}: not modelled (vramcalc models its "
                                   "`backend`, `sparse_mla_prefill_workspace_factor` and, from 0.34.0, "
                                   "`indexer_logits_dtype`; vllm/config/attention.py AttentionConfig)")
        b = (self.attention_config or {}).get("backend")
        b = None if isinstance(b, str) and b.lower() == "auto" else b
        if self.attention_backend is not None and b is not None:
            raise InputError("ValueError: attention_backend and attention_config.backend are mutually exclusive")
        return self.attention_backend if self.attention_backend is not None else b

    @property
    def sparse_mla_prefill_workspace_factor(self) -> int | None:
        """--attention-config sparse_mla_prefill_workspace_factor (vllm/config/attention.py: an int, at least 2;
        None: VllmConfig.__post_init__ picks it from max_model_len)."""
        f = (self.attention_config or {}).get("sparse_mla_prefill_workspace_factor")
        if f is None:
            return None
        if isinstance(f, bool) or not isinstance(f, int) or f < 2:
            raise InputError(f"--attention-config sparse_mla_prefill_workspace_factor: {f!r}: Input should be an "
                             "integer greater than or equal to 2 (vllm/config/attention.py AttentionConfig)")
        return f

    # --enable-dbo / --ubatch-size: micro-batching, which vLLM takes only with the DeepEP / NIXL EP all-to-all
    # backends (data/vllm_features.json ubatch, 0.33.0)
    enable_dbo: bool = False
    ubatch_size: int = Field(default=0, ge=0, le=MAX_SEQUENCES)
    # --all2all-backend (None: vLLM's default, allgather_reducescatter): DeepEP's buffer per GPU, the batched DP MoE
    # default of max_num_batched_tokens (vramcalc/vllm/all2all.py; data/vllm_features.json all2all, 0.33.0)
    all2all_backend: str | None = None
    # VLLM_DEEPEP_BUFFER_SIZE_MB: DeepEP's NVLink (and high throughput's RDMA) buffer, MiB a rank (vllm/envs.py)
    deepep_buffer_size_mb: int = Field(default=1024, ge=0, le=2**20)
    # VLLM_DEEPEP_HIGH_THROUGHPUT_FORCE_INTRA_NODE=1: high throughput's RDMA buffer not built across machines
    deepep_force_intra_node: bool = False
    # whether the EP group spans machines (DeepEP's `internode`; set from the system by vllm_on_system)
    ep_internode: bool = False

    # --load-format: how the weights are read (data/vllm_features.json load_format, 0.33.0); lower-cased as
    # LoadConfig._lowercase_load_format does
    load_format: str = "auto"

    @field_validator("load_format", mode="before")
    @classmethod
    def _load_format_lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    # --kv-transfer-config: a KV connector; the hybrid KV cache manager off where it does not support it
    # (vramcalc/vllm/kv_transfer.py, data/vllm_features.json kv_transfer, 0.33.0)
    kv_transfer_config: dict[str, Any] | None = None

    @field_validator("kv_transfer_config", mode="before")
    @classmethod
    def _kv_transfer_json(cls, v: Any) -> Any:
        """--kv-transfer-config as vLLM takes it: a JSON object of KVTransferConfig's fields."""
        from .kv_transfer import parse_kv_transfer_config

        return parse_kv_transfer_config(v) if v is not None else None

    @property
    def num_redundant_experts(self) -> int:
        return int((self.eplb_config or {}).get("num_redundant_experts", 0))

    @field_validator("hf_overrides", mode="before")
    @classmethod
    def _overrides_json(cls, v: Any) -> Any:
        """The JSON text vLLM takes, or the dict it parses to."""
        return parse_hf_overrides(v) if v is not None else None
    # VLLM_MLA_DISABLE=1: MLA models (DeepSeek-V2/V3, Kimi-K2) keep full per-head K and V instead of the latent
    # (vllm/config/model.py ModelConfig.use_mla; vllm/model_executor/models/deepseek_v2.py DeepseekV2Attention, 0.33.0)
    mla_disable: bool = False
    # --kv-cache-dtype-skip-layers: layer indices or "sliding_window", kept at the model dtype in a quantized KV cache;
    # the block size is realigned to them (vllm/config/cache.py kv_cache_dtype_skip_layers, vllm/platforms/
    # interface.py _align_heterogeneous_kv_block_size, 0.33.0)
    kv_cache_dtype_skip_layers: tuple[str, ...] = ()
    # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0: the CUDA-graph estimate is left out of the KV budget (the KV cache takes
    # it) and the graphs are captured afterwards, outside the budget (vllm/v1/worker/gpu_worker.py
    # determine_available_memory; default 1 from 0.20, vllm/envs.py, 0.33.0)
    estimate_cudagraphs: bool = True
    # --mamba-block-size: the Mamba state's block with prefix caching; hybrid models' alignment replaces it with the
    # attention block (vllm/platforms/interface.py _align_hybrid_block_size), attention-free ones keep it as their
    # block (vllm/model_executor/models/config.py MambaModelConfig); pages and blocks per request do not depend on it
    # (vllm/v1/kv_cache_interface.py MambaSpec.max_memory_usage_bytes, 0.33.0). Without prefix caching vLLM refuses it
    mamba_block_size: int | None = Field(default=None, ge=1, le=MAX_CONTEXT)
    # --gdn-prefill-backend: the Gated DeltaNet prefill kernel; None is vLLM's auto (FlashInfer's on SM 9.0, and on
    # SM 10.x / 12.x with head_k_dim 128: a prefill checkpoint block per GDN layer with prefix caching; rules.py
    # gdn_prefill_backend, data/vllm_platforms.json gdn_prefill, vLLM 0.33.0)
    gdn_prefill_backend: Literal["flashinfer", "triton", "cutedsl", "aiter_flydsl", "sycl"] | None = None
    # --kda-prefill-backend: vLLM's refusal of flashkda off CUDA and fused off ROCm, and of any choice but auto / triton
    # on Kimi-Linear's KDA layers (rules.py kda_prefill_refusal, data/vllm_platforms.json kda_prefill)
    kda_prefill_backend: Literal["auto", "triton", "flashkda", "flashinfer", "fused"] | None = None
    # --linear-backend: the kernel family quantized linear layers prefer (vllm/config/kernel.py KernelConfig); an
    # unquantized checkpoint never reads it (vllm/model_executor/kernels/linear/__init__.py _get_linear_backend is asked
    # only by quantized kernels' init): no change there; a quantized one is warned about (linear_backend_messages)
    linear_backend: LinearBackend | None = None
    # --kernel-config's linear_backend_per_quant: linear_backend for the quantization schemes it names (vLLM 0.34.0
    # kernels/linear/__init__.py _get_linear_backend), warned about on a quantized checkpoint as linear_backend is
    linear_backend_per_quant: dict[str, LinearBackend] | None = None
    # --sparse-indexer-topk-backend: the DSA indexer's decode top-k kernel; read only by DSA indexer layers, and not in
    # the profile run's branch (vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer): no change to
    # the budget; on a model with the indexer its decode transients are warned about as not sized
    sparse_indexer_topk_backend: Literal["auto", "deep_select", "cooperative", "persistent", "per_row", "flashinfer", "torch", "aiter"] | None = None
    # --use-replayssm / --replayssm-buffer-len / --mamba-backend / --mamba-ssu-algorithm: ReplaySSM's x / dt / B
    # rings in each Mamba-2 state, and vLLM's refusals (replayssm_messages; data/vllm_features.json replayssm)
    use_replayssm: bool = False
    replayssm_buffer_len: int = Field(default=16, ge=1, le=MAX_CONTEXT)
    mamba_backend: Literal["triton", "flashinfer"] = "triton"
    mamba_ssu_algorithm: Literal["auto", "simple", "vertical", "horizontal"] | None = None
    # --runner / --convert: a pooling runner (runner pooling, or convert embed / classify with runner auto) adapts a
    # causal LM into a pooling model (vllm/model_executor/models/adapters.py _create_pooling_model_cls): no lm_head,
    # classify adds a float32 score head, async scheduling off by default (vllm/config/vllm.py), the same KV cache
    # (its attention stays causal: vllm/model_executor/layers/attention/attention.py get_kv_cache_spec), 0.33.0
    runner: Literal["auto", "generate", "pooling", "draft"] = "auto"
    convert: Literal["auto", "none", "embed", "classify"] = "auto"

    @field_validator("cudagraph_capture_sizes")
    @classmethod
    def _positive_sizes(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and any(x < 1 for x in v):
            raise ValueError("every CUDA graph capture size is at least 1")
        return v


class DeviceBudget(BaseModel):
    model_config = ConfigDict(frozen=True)

    rank: int
    gpu: str
    total_bytes: int
    budget_bytes: int
    weights_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    kv_cache_bytes: int  # available for the KV pool (negative: vLLM refuses)
    lora_bytes: int = 0  # the LoRA adapter slots, inside weights_bytes (as 'Model loading took' counts them)
    cpu_offload_bytes: int = 0  # weights moved to host memory by --cpu-offload-gb (already out of weights_bytes)
    # the prefetch offloader's GPU buffers the offloaded layers are copied into (inside weights_bytes)
    prefetch_buffer_bytes: int = 0
    uncertainty_bytes: int = 0  # how much more the non-KV terms may take (data/vllm.json verdict_margin)
    # VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1: the largest decoder layer's offloaded bytes, copied to the GPU for its
    # forward (inside activation_bytes)
    uva_layer_copy_bytes: int = 0
    # vramcalc's estimate of the KV the multimodal encoder's profiling peak costs on this rank (vramcalc/vllm/
    # mm_profile.py; first PP stage only): in activation_bytes and kv_cache_bytes only where data/vllm_features.json
    # multimodal.encoder_peak says the estimate is applied, else given in the vllm.mm.encoder_profile warning; 0: none
    encoder_profile_bytes: int = 0


class VLLMResult(Result):
    model_config = ConfigDict(frozen=True)

    fits: bool
    engine: str = "vllm"
    engine_version: str
    model: ModelSummary
    layout: Layout
    devices: list[DeviceBudget]
    kv_cache_tokens: int
    num_gpu_blocks: int  # KV-cache blocks in the pool (vLLM's kv_cache_config.num_blocks), fewest over PP stages
    max_concurrency: float
    max_model_len: int
    max_model_len_fits: bool
    estimated_max_model_len: int
    safe_max_model_len: int = 0  # the longest max_model_len that fits with the uncertainty margin
    fits_at_estimate: bool = False  # the point estimate fits; `fits` also needs the upper bound to
    errors: list[Message]
    warnings: list[Message]
    command: str
    # what would work instead, from the planner (vramcalc.plan.alternatives); filled by the CLI
    alternatives: list[str] = []
    # when it does not start: the smallest change that makes it start, re-checked by the engine model (None: it
    # starts, or no single change was found), and the engine command with it (vramcalc/pasted_command.py)
    fix: str | None = None
    corrected_command: str | None = None
    sources: list[str]
    trace: list[TraceTerm] = []
    speed: ServingEstimate | None = None  # at --concurrency / --prompt / --output (vramcalc/serving.py)
    speculative: SpecSummary | None = None  # --speculative-config as planned (vramcalc/vllm/spec_decode.py)
    cpu_offload_bytes: int = 0  # the most any rank reads from host memory per forward step (--cpu-offload-gb, prefetch)
    # vLLM 0.34+: the KV cache is sized from memory measured after warmup (vllm/v1/worker/extensible_kv_cache.py)
    extensible_kv_cache: bool = False

    def table(self) -> list[Row]:
        """One row per rank: its budget and each term of it."""
        return [d.model_dump(mode="json") for d in self.devices]


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".")[:3])


def _version(v: str | None) -> tuple[str, VllmVersion, list[Message]]:
    versions = vllm_rules().versions.by_version
    key = _key
    notes = []
    if v is None:
        v = vllm_rules().default_version
    if not all(part.isdigit() for part in v.split(".")[:3]):
        raise InputError(f"--engine-version {v!r} is not a release number such as 0.33.0")
    want = key(v)
    known = sorted(versions, key=key)
    lower = [k for k in known if key(k) <= want] or known[:1]
    chosen = lower[-1]
    if chosen != v:
        notes.append(warning("vllm.version.nearest", f"vLLM {v}: the calibrated constants and defaults of {chosen} are "
                             f"used; the sampling path, the logged token count and the sliding-window reserve follow "
                             f"{v}'s rules"))
    prof = versions[chosen]
    if prof.uncalibrated:
        notes.append(warning("vllm.version.uncalibrated", f"vLLM {chosen}: {prof.uncalibrated}"))
    return v, prof, notes


class SamplerPath(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # torch_sort, triton or flashinfer
    copies: float
    env: str | None  # the VLLM_USE_FLASHINFER_SAMPLER setting the command needs, if any
    note: str | None  # what vramcalc assumed where the release's choice depends on the install


def sampler_path(version: str, gpu: GPU, seqs: int, flashinfer: bool | None) -> SamplerPath:
    """TopKTopPSampler.__init__ / apply_top_k_top_p of the release (data/vllm.json sampler)."""
    sam = vllm_rules().sampler
    rule = [r for r in sam.defaults if _key(r.since) <= _key(version)][-1]

    def need(value: str | None, field: str) -> str:
        if value is None:
            raise RuntimeError(f"data/vllm.json sampler rule since {rule.since} (path {rule.path}) needs {field}")
        return value

    env, note = None, None
    path = rule.path
    if path == "flashinfer_if_installed":
        path = "flashinfer" if flashinfer else need(rule.assumed, "assumed")
        if flashinfer is None:
            note = (f"vLLM {version} samples with FlashInfer when it is installed (the vllm/vllm-openai image has it, "
                    "`pip install vllm` does not; the log then says 'Using FlashInfer for top-p & top-k sampling'): "
                    "planned for the PyTorch sort, the larger activation peak; --flashinfer-sampler on if yours does")
    elif flashinfer is True and rule.opt_in:
        path, env = rule.opt_in, "VLLM_USE_FLASHINFER_SAMPLER=1"
    elif flashinfer is False and rule.opt_out:
        path, env = rule.opt_out, "VLLM_USE_FLASHINFER_SAMPLER=0"
    elif path == "flashinfer" and _key(gpu.compute_capability or "0.0") < _key(need(rule.min_compute_capability,
                                                                                      "min_compute_capability")):
        path = need(rule.opt_out, "opt_out")  # FlashInfer unsupported on this GPU: vLLM falls back
    if path == "triton" and seqs < 8:
        path = sam.below_8_seqs
    return SamplerPath(path=path, copies=sam.paths[path].copies, env=env, note=note)


def custom_all_reduce(gpu: GPU, tp: int, disabled: bool) -> bool:
    """CustomAllreduce.__init__ (vllm/distributed/device_communicators/custom_all_reduce.py): off for a world size
    it does not support, more than two GPUs without NVLink, or GPUs without P2P (GeForce cards)."""
    if tp == 1 or disabled or tp not in (2, 4, 6, 8, 16):
        return False
    if gpu.segment == "consumer":  # GeForce / Radeon: no P2P, so the P2P check turns it off
        return False
    return tp == 2 or gpu.nvlink


def cuda_total(gpu: GPU) -> int:
    """The total CUDA reports: memory other processes hold (a desktop, systems.py reservations) is inside it."""
    return (gpu.usable_bytes or gpu.memory_bytes) + gpu.reserved_bytes


def default_utilization(engine_version: str | None, extensible: bool | None = None) -> float:
    """--gpu-memory-utilization when the command gives none, for the release (data/vllm.json versions): 1.0 where
    the release's extensible KV cache is on (`extensible` None: its default), its own default otherwise."""
    prof = _version(engine_version)[1]
    ext = prof.extensible_kv_cache
    return ext.gpu_memory_utilization if ext is not None and extensible is not False else prof.gpu_memory_utilization


def _extensible_kv(opts: VLLMOptions, version: str, prof: VllmVersion, gpu: GPU
                   ) -> tuple[bool, list[Message], list[Message]]:
    """Whether the release sizes an extensible KV cache (v0.34.0 vllm/config/vllm.py
    VllmConfig._resolve_extensible_kv_cache), with vLLM's refusal where it is asked for and cannot be used, and a
    warning where vramcalc takes it off for a KV connector (vLLM keeps it on for some connectors: NIXL within a host
    needs an IMEX channel, connectors sharing the cache through legacy CUDA IPC or a custom pool turn it off)."""
    asked = opts.enable_extensible_kv_cache
    if prof.extensible_kv_cache is None:
        if asked is not None:
            raise InputError(f"--{'enable' if asked else 'disable'}-extensible-kv-cache: vLLM {version} has no such "
                             "option (vLLM 0.34.0 added the extensible KV cache); pass --engine-version 0.34.0 or drop "
                             "it")
        return False, [], []
    unsupported = None
    if gpu.vendor not in ("nvidia", "amd"):
        unsupported = "it is only supported on CUDA and ROCm"
    elif opts.kv_cache_memory_bytes is not None:
        unsupported = "it sizes the KV cache from measured memory, which kv_cache_memory_bytes overrides"
    elif opts.num_gpu_blocks_override is not None:
        unsupported = "it sizes the KV cache from measured memory, which num_gpu_blocks_override overrides"
    elif opts.enable_elastic_ep:
        unsupported = ("elastic EP scale-up skips warmup and reuses the profiled KV cache size, so no measurement "
                       "would size the cache")
    if unsupported is not None:
        if asked:
            return False, [error("vllm.extensible_kv.unsupported", f"ValueError: enable_extensible_kv_cache: "
                                 f"{unsupported}.", fix="drop --enable-extensible-kv-cache",
                                 source="vllm/config/vllm.py VllmConfig._resolve_extensible_kv_cache (0.34.0)")], []
        return False, [], []
    if opts.kv_transfer_config is not None and asked is None:
        return False, [], [warning("vllm.extensible_kv.connector", "a KV connector: vLLM 0.34.0 keeps the extensible "
                                   "KV cache off for connectors that share the cache through legacy CUDA IPC or a "
                                   "custom memory pool, and for NIXL within a host without an IMEX channel, and on "
                                   "for others; vramcalc sizes the cache without it (the profile's estimate, "
                                   "gpu_memory_utilization 0.92 unless given)",
                                   fix="--enable-extensible-kv-cache or --disable-extensible-kv-cache, to say which",
                                   source="vllm/config/vllm.py VllmConfig._resolve_extensible_kv_cache (0.34.0)")]
    return asked is not False, [], []


def _extensible_kv_bytes(prof: VllmVersion, gpu: GPU, requested: int, startup_free: int, resident: int,
                         transient: int, reserve_growth: int = 0) -> int:
    """The KV cache an extensible KV cache commits after warmup and CUDA-graph capture (v0.34.0
    vllm/v1/worker/extensible_kv_cache.py measure_kv_cache_bytes): the budget less what stays resident, capped by the
    free memory less a margin, less the transient kept free. `resident`: weights, non-torch, persistent workspaces
    and the captured graphs; `transient`: the profiled activation peak and vLLM's CUDA-graph estimate
    (gpu_worker.py determine_available_memory peak_activation_memory, the extensible cache's reserved headroom);
    `reserve_growth`: the growth of torch's reservation during warmup, kept free where larger than `transient`
    (measured at run time; vramcalc has no estimate of it and passes 0)."""
    margin = _extensible_margin(prof, gpu, transient)
    return max(0, min(requested - resident, startup_free - resident - margin) - max(transient, reserve_growth))


def _extensible_margin(prof: VllmVersion, gpu: GPU, transient: int) -> int:
    """v0.34.0 vllm/v1/worker/extensible_kv_cache.py measure_kv_cache_bytes: max(KV_CACHE_MARGIN_FLOOR_BYTES (1 GiB,
    3 on ROCm), KV_CACHE_MARGIN_FRACTION x the transient peak)."""
    ext = prof.extensible_kv_cache
    assert ext is not None
    floor = ext.margin_floor_gib_rocm if gpu.vendor == "amd" else ext.margin_floor_gib
    return max(int(floor * GIB), int(transient * ext.margin_fraction))


def _extensible_trace(prof: VllmVersion, gpu: GPU, estimate: int, measured: int, resident: int, transient: int,
                      startup_free: int, requested: int) -> TraceTerm:
    return term("KV cache, extensible (rank 0)", min(estimate, measured),
                "min(the profile's estimate, min(budget - resident, free at start-up - resident - margin) - transient); "
                "margin = max(floor, fraction x transient); resident = weights, non-torch, workspaces and the captured "
                "graphs, transient = the activation peak and vLLM's CUDA-graph estimate",
                source="vllm/v1/worker/extensible_kv_cache.py measure_kv_cache_bytes (0.34.0)",
                profile_estimate=estimate, measured=measured, budget=requested, startup_free=startup_free,
                resident=resident, transient=transient,
                margin=_extensible_margin(prof, gpu, transient))


def _rdna_prefill_copy_refusal(spec: ModelSpec, opts: VLLMOptions, gpu: GPU, version: str, u: float, L: int,
                               kvs: Any, pool_spec: ModelSpec, weights: list[tuple[RankWeights, int]],
                               nccl_before: bool, car: bool) -> list[Message]:
    """--kernel-config rdna_hybrid_w4a16_prefill_dequant=enable refuses to start when its copies leave less free
    than the unrequested memory, a 4 GiB activation headroom and one max_model_len request's KV cache: each copy is
    checked against the memory free when it is made, all or nothing, so the last one decides (vLLM 0.34.0
    rdna_hybrid_w4a16.py _fits_in_memory_budget: free - (total x (1 - utilization) + 4 GiB + max_memory_usage_bytes)
    >= the copy's bytes)."""
    if not (opts.rdna_w4a16_prefill_dequant and rdna_prefill_copy_applies(gpu.gfx_arch or "", version)):
        return []
    total = cuda_total(gpu)
    free = _startup_free(gpu, opts.tp, opts.pp, nccl_before, car)[0]
    need = total * (1 - u) + 4 * GIB + kv_pool(pool_spec, kvs).request_bytes(L, kvs)
    if all(free - w_bytes >= need for _, w_bytes in weights):
        return []
    return [error("vllm.rdna.prefill_dequant_budget",
                  "ValueError: Not enough room in the gpu_memory_utilization budget to cache a dequantized W4A16 "
                  "prefill weight (kernel_config.rdna_hybrid_w4a16_prefill_dequant) while keeping KV cache for one "
                  "max_model_len request. Increase `gpu_memory_utilization`, lower `max_model_len`, or disable it.",
                  source="vllm/model_executor/kernels/linear/mixed_precision/rdna_hybrid_w4a16.py "
                         "RDNAHybridW4A16LinearKernel._cache_dequant_weight, _fits_in_memory_budget (v0.34.0)",
                  fix="drop rdna_hybrid_w4a16_prefill_dequant from --kernel-config (its dense prefill copies take "
                      "about four times the int4 weights)")]


def _startup_free(gpu: GPU, tp: int, pp: int, nccl_before: bool = True, car: bool = True) -> tuple[int, float]:
    """Free memory at init_device's snapshot: the CUDA total less other processes and vLLM's own CUDA
    context (and NCCL under TP/PP, where the release takes the snapshot after NCCL init: `nccl_before`);
    returns (free bytes, vLLM's share in GiB). `car`: vLLM's custom all-reduce is on (its buffers count too)."""
    total = cuda_total(gpu)
    su = vllm_rules().startup_used_gib
    multi = su.tp_multi if car or su.tp_multi_no_custom_all_reduce is None else su.tp_multi_no_custom_all_reduce
    used = multi if (tp > 1 or pp > 1) and nccl_before else su.tp1
    return total - gpu.reserved_bytes - int(used * GIB), used


def max_startup_utilization(gpu: GPU, tp: int = 1, pp: int = 1) -> float:
    """The largest --gpu-memory-utilization (in hundredths) that passes vLLM's free-memory gate, keeping
    STARTUP_MARGIN_GIB back: vLLM's own share at the snapshot was measured on H100s only."""
    total = cuda_total(gpu)
    car = custom_all_reduce(gpu, tp, False)
    return int((_startup_free(gpu, tp, pp, car=car)[0] - STARTUP_MARGIN_GIB * GIB) / total * 100) / 100


def _batch_defaults(gpu: GPU, version: str | None = None) -> tuple[int, int]:
    """EngineArgs.get_batch_defaults of the release (data/vllm.json batch_defaults; None: the default release)."""
    total = cuda_total(gpu) / GIB  # arg_utils.py: the device's total memory, not what is free
    v = _key(version or vllm_rules().default_version)
    for r in vllm_rules().batch_defaults.rules:
        if v < _key(r.since):
            continue
        names = [n for n in (r.not_names or []) if v >= _key(r.not_names_since.get(n, "0.0.0"))]
        if total >= r.min_total_gib and not any(n.lower() in gpu.name.lower() for n in names):
            return r.max_num_batched_tokens, r.max_num_seqs
    raise RuntimeError("data/vllm.json batch_defaults needs a catch-all last rule")


# rope types whose max_position_embeddings already counts the scaling (vllm/config/model.py _get_and_verify_max_len,
# v0.30.0 and v0.33.0); any other type multiplies it by its factor, except on Gemma 3, whose length is scaled already
_ROPE_PRESCALED = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


def derived_max_model_len(spec: ModelSpec) -> int:
    """ModelConfig._get_and_verify_max_len: the config's max positions (2048 where the config names none), times the
    rope factor of the types that do not already count it."""
    n = float(spec.max_position_embeddings or 2048)
    rope = spec.rope_scaling or {}
    per_kind = [rope] if ("rope_type" in rope or "type" in rope) else [r for r in rope.values() if isinstance(r, dict)]
    if per_kind and "gemma3" not in spec.model_type:
        factor = 1.0
        for r in per_kind:
            if r.get("rope_type", r.get("type")) not in _ROPE_PRESCALED:
                factor = r.get("factor", factor) or 1.0  # a null factor falls back to 1.0, as vLLM does
        n *= factor
    return int(n)


def _scheme(spec: ModelSpec, opts: VLLMOptions) -> tuple[QuantScheme, bool]:
    """The weight format vLLM loads (and whether it is a GGUF's own type mix: the shapes as unquantized, the bytes
    scaled to the file's). vLLM 0.33.0 vllm/config/model.py ModelConfig._verify_quantization."""
    gguf = not opts.quantization and (spec.quantization_config or {}).get("quant_method") == "gguf"
    if gguf:
        return scheme_from_config(None), True
    if opts.quantization and _online(opts):
        from .quant_config import shard_ignore_refusal

        scheme = _online_scheme(spec, opts)[0]
        refusal = shard_ignore_refusal(spec, scheme)
        if refusal is not None:
            raise refusal
        return _online_router(spec, scheme, True), False
    if opts.quantization == "humming":
        return _humming_scheme(spec, opts)[0], False
    if opts.quantization == "fp8" and not spec.quantization_config:  # online FP8 at load (quant_targets.json fp8)
        return _online_router(spec, target_scheme(opts.quantization, spec), False), False
    if opts.quantization:
        return target_scheme(opts.quantization, spec), False
    return scheme_from_config(spec.quantization_config, spec), False


def _online_router(spec: ModelSpec, scheme: QuantScheme, has: bool) -> QuantScheme:
    """An online method quantizes a MoE router only where the model builds it with the quant config
    (data/vllm.json router_quant_config: vLLM 0.34.0 vllm/model_executor/models/qwen3_moe.py and lfm2_moe.py pass it
    to their GateLinear, the others do not). has: whether the scheme's groups include the router."""
    takes = spec.model_type in vllm_rules().router_quant_config.model_types
    if scheme.method == "none" or takes == has:
        return scheme
    groups = (*scheme.quantize_groups, "router") if takes else tuple(g for g in scheme.quantize_groups if g != "router")
    return scheme.model_copy(update={"quantize_groups": groups})


def _humming_scheme(spec: ModelSpec, opts: VLLMOptions) -> tuple[QuantScheme, list[str]]:
    """`--quantization humming` (vLLM 0.34.0 quantization/humming.py HummingConfig): on an unquantized checkpoint the
    schema of VLLM_HUMMING_ONLINE_QUANT_CONFIG (vllm/humming.py scheme); on a quantized one the checkpoint's own
    format, converted to Humming's layout after loading (and with force_requant requantized to the variable's
    schema), which is not sized: counted as the checkpoint's. (scheme, what is not sized)."""
    from .humming import read_json, scheme, weight_schema, ONLINE

    version = opts.engine_version or vllm_rules().default_version
    from .humming import rules as humming_rules

    if not _at_least(version, humming_rules().since):
        raise InputError(f"--quantization humming is not modelled for vLLM {version} (from "
                         f"{humming_rules().since}: vllm/model_executor/layers/quantization/humming.py)")
    if spec.quantization_config:
        unsized = ["--quantization humming on a quantized checkpoint: its weights converted to Humming's layout "
                   "after loading (padded, repacked) are counted as the checkpoint stores them"]
        if opts.humming_online_quant_config is not None:
            cfg = read_json(ONLINE, opts.humming_online_quant_config)
            if isinstance(cfg, dict) and cfg.get("force_requant"):
                weight_schema(cfg)  # vLLM builds it for every layer the checkpoint quantizes
                unsized.append(f"{ONLINE} force_requant: the requantized weights are not sized")
        return scheme_from_config(spec.quantization_config, spec), unsized
    # the model dtype Humming's scales take: --dtype as given, else the checkpoint's 16-bit dtype (a float32 one
    # runs in bfloat16: vllm/config/model.py _resolve_auto_dtype)
    asked = "float16" if opts.dtype == "half" else opts.dtype
    dtype = asked if asked in ("bfloat16", "float16") else spec.dtype if spec.dtype in ("bfloat16", "float16") \
        else "bfloat16"
    return scheme(opts.humming_online_quant_config, opts.humming_input_quant_config, dtype)


def _humming_messages(spec: ModelSpec, opts: VLLMOptions) -> list[Message]:
    """What vramcalc does not size of --quantization humming, and its variables where nothing reads them."""
    out = []
    if opts.quantization == "humming":
        out += [warning("vllm.humming.not_sized", f"{part}; sized at the base schema or as stored, an estimate",
                        source="vllm/model_executor/layers/quantization/humming.py (v0.34.0)")
                for part in _humming_scheme(spec, opts)[1]]
    else:
        for name, val in (("VLLM_HUMMING_ONLINE_QUANT_CONFIG", opts.humming_online_quant_config),
                          ("VLLM_HUMMING_INPUT_QUANT_CONFIG", opts.humming_input_quant_config)):
            if val is not None:
                out.append(warning("vllm.humming.unused", f"{name}: read only by the Humming quantization method "
                                   "(--quantization humming); without it the weights load as they are",
                                   fix="--quantization humming",
                                   source="vllm/model_executor/layers/quantization/humming.py (v0.34.0)"))
    return out


def _online(opts: VLLMOptions) -> bool:
    from .quant_config import is_online

    return is_online(opts.quantization, opts.quantization_config is not None, opts.engine_version)


def _online_scheme(spec: ModelSpec, opts: VLLMOptions) -> tuple[QuantScheme, list[str]]:
    """The linear layers' scheme and the parts not sized of `--quantization online / SHORTHAND
    [--quantization-config JSON]` (vllm/quant_config.py online_scheme, merged as vLLM merges them)."""
    from .quant_config import merged, online_scheme

    assert opts.quantization is not None
    values = [opts.quantization_config] if opts.quantization_config is not None else []
    experts = any(la.mlp.kind == "moe" for la in spec.layers)
    return online_scheme(merged(opts.quantization, values, opts.engine_version), opts.engine_version, experts)


def _pre_start_messages(spec: ModelSpec, gpu: GPU, opts: VLLMOptions, scheme: QuantScheme
                        ) -> tuple[str | None, list[Message], list[Message]]:
    """(the weight dtype, refusals, warnings) vLLM raises before it allocates anything: platform, checkpoint
    source, dtype, the parallel layout and the quantization method (rules.py; each message names its function)."""
    wdtype, dtype_msgs = dtype_messages(spec, gpu, opts.dtype)
    msgs = platform_messages(gpu) + source_messages(spec) + dtype_msgs + parallel_messages(spec, opts.tp, opts.pp)
    msgs += quant_messages(spec, scheme, opts.tp, gpu.compute_capability)
    msgs += _online_messages(spec, opts, gpu) + _humming_messages(spec, opts)
    if opts.quantization and not _online(opts) and opts.quantization != "humming":
        msgs += stand_in_messages(spec, opts.quantization)
    errors: list[Message] = []
    warnings: list[Message] = []
    for m in msgs:  # printed as before: an error names where vLLM raises it, and both say what to do instead
        line = m.text + (f" [{m.source}]" if m.level == "error" else "") + (f" Instead: {m.fix}" if m.fix else "")
        (errors if m.level == "error" else warnings).append(m.model_copy(update={"text": line}))
    return wdtype, errors, warnings


def _online_messages(spec: ModelSpec, opts: VLLMOptions, gpu: GPU) -> list[Message]:
    """What vramcalc does not size of an online quantization, and a --quantization-config vLLM does not use."""
    if opts.quantization and _online(opts):
        scheme, unsized = _online_scheme(spec, opts)
        out: list[Message] = []
        cc = float(gpu.compute_capability or 0)
        if scheme.method == "fp8_channel" and gpu.vendor != "amd" and cc < 8.9:
            # online/fp8.py Fp8PtpcOnlineLinearMethod.create_weights: below SM 8.9 CUDA's FP8 GEMM is Marlin (W8A16)
            out.append(error("vllm.online_quant.ptpc_kernel", "FP8 PTPC online quant requires a kernel that honors "
                             "per-token activation quantization; MarlinFP8ScaledMMLinearKernel is W8A16 weight-only. "
                             "Requires SM89+ for Cutlass FP8 or ROCm MI3xx for rowwise scaled_mm. "
                             "[vllm/model_executor/layers/quantization/online/fp8.py Fp8PtpcOnlineLinearMethod]",
                             fix="--quantization-config '{\"linear\": \"fp8_per_tensor_static\"}'",
                             source="vllm/model_executor/layers/quantization/online/fp8.py (v0.34.0)"))
        elif scheme.method != "none" and (gpu.vendor == "amd" or cc < 8.9):
            out.append(warning("vllm.online_quant.not_sized", "online FP8 linear layers on this GPU take another GEMM "
                               f"kernel than CUDA SM 8.9+'s Cutlass ({'ROCm' if gpu.vendor == 'amd' else 'Marlin'}), "
                               "whose post-load layout is not checked: sized as Cutlass keeps them",
                               source="vllm/model_executor/kernels/linear/__init__.py _POSSIBLE_FP8_KERNELS (v0.34.0)"))
        return out + [warning("vllm.online_quant.not_sized", f"online quantization: {part} is not sized (its post-load "
                        "layout is not checked against vLLM's own code); sized at the checkpoint dtype, an upper bound",
                        source="vllm/model_executor/layers/quantization/online/base.py (v0.34.0)")
                for part in unsized]
    if opts.quantization_config is not None and not opts.quantization:
        if spec.quantization_config:
            return [warning("vllm.online_quant.not_sized", "--quantization-config on a quantized checkpoint: "
                            "online quantization of the layers its method leaves unquantized is not sized",
                            source="vllm/model_executor/model_loader/weight_utils.py get_quant_config (v0.34.0)")]
        return [warning("vllm.online_quant.unused", "--quantization-config without --quantization online (or an "
                        "online shorthand): ModelConfig.quantization stays unset on an unquantized checkpoint, so "
                        "vLLM builds no quantization config and the weights load unquantized",
                        fix="--quantization online",
                        source="vllm/config/vllm.py VllmConfig._get_quantization_config (v0.34.0)")]
    return []


def _unchunked_refusal(mnbt: int, L: int) -> Message:
    """v0.33.0 vllm/config/scheduler.py SchedulerConfig.verify_max_model_len, without chunked prefill."""
    return error("vllm.scheduler.unchunked_batch", f"max_num_batched_tokens ({mnbt}) is smaller than max_model_len "
                 f"({L}). This effectively limits the maximum sequence length to max_num_batched_tokens and makes "
                 "vLLM reject longer sequences. Please increase max_num_batched_tokens or decrease max_model_len. "
                 "[vllm/config/scheduler.py SchedulerConfig.verify_max_model_len]",
                 fix=f"--max-num-batched-tokens {L}", source="vllm/config/scheduler.py SchedulerConfig.verify_max_model_len")


def without_sliding_window(spec: ModelSpec) -> ModelSpec:
    """--disable-sliding-window (v0.30.0 vllm/config/model.py _get_and_verify_max_len, ModelConfig.__post_init__):
    where the window is below the config's max positions it becomes them (the rope factor still applies after), and
    the sliding-window layers attend in full, as the model code reading config.sliding_window = None builds them."""
    windows = [la.attention.window for la in spec.layers if la.attention is not None
               and la.attention.kind == "sliding" and la.attention.window]
    if not windows:
        return spec
    w = min(windows)
    mpe = spec.max_position_embeddings
    layers = [la.model_copy(update={"attention": la.attention.model_copy(update={"kind": "full", "window": None})})
              if la.attention is not None and la.attention.kind == "sliding" else la for la in spec.layers]
    return spec.model_copy(update={"layers": layers, "max_position_embeddings": w if mpe is None or w < mpe else mpe})


def pcp_messages(spec: ModelSpec, opts: VLLMOptions) -> list[Message]:
    """--prefill-context-parallel-size above 1, as vLLM 0.33.0 meets it (data/vllm_features.json pcp): DCP's sizes
    with PCP (ParallelConfig), then the attention backend (only MLA implementations support PCP: a model without
    MLA finds none). A PCP layout that starts (MLA) is refused as not modelled: its ranks' weights, KV cache and
    the PCP manager's buffers are not sized."""
    from .features import features

    pcp, tp, dcp = opts.prefill_context_parallel_size, opts.tp, opts.decode_context_parallel_size
    if pcp == 1:
        return []
    pc = features().pcp
    flag = f"--prefill-context-parallel-size {pcp}"
    valid = sorted({1, pcp, tp * pcp})
    if dcp not in valid:
        src = "vllm/config/parallel.py ParallelConfig (0.33.0)"
        return [error("vllm.pcp.dcp_size", "ValueError: " + pc.dcp_refusal.format(tp=tp, pcp=pcp, dcp=dcp, valid=valid)
                      + f" [{src}]", fix=f"--decode-context-parallel-size one of {', '.join(map(str, valid))}",
                      source=src)]
    attn = [la.attention for la in spec.layers if la.attention is not None]
    if not attn or any(not a.latent_cache for a in attn):
        src = "vllm/platforms/cuda.py CudaPlatform.get_attn_backend_cls; vllm/v1/attention/backend.py (0.33.0)"
        reasons = ", ".join(f"{b}: [PCP not supported]" for b in pc.non_mla_backends)
        return [error("vllm.pcp.backend", "ValueError: " + pc.backend_refusal.format(reasons=reasons) +
                      f" [{src}: only MLA attention supports PCP; raised when the model's attention is built]",
                      fix=f"drop {flag} (or --decode-context-parallel-size to split the KV cache)", source=src)]
    raise NotModelledError(f"{flag} on an MLA model: vLLM 0.33 starts it (world size {opts.pp * tp * pcp} per "
                           "engine), but vramcalc does not size the PCP ranks' weights, KV cache and the PCP "
                           "manager's buffers (data/vllm_features.json pcp; remove the flag to check the rest)")


def dcp_messages(spec: ModelSpec, opts: VLLMOptions) -> list[Message]:
    """vLLM 0.30.0's refusals of a --decode-context-parallel-size, in the order it meets them: ParallelConfig
    (vllm/config/parallel.py: DCP reuses the TP ranks), ModelConfig.verify_with_parallel_config (vllm/config/
    model.py: GQA/MQA needs KV heads replicated over the DCP ranks), and the planner's assertion on sliding-window
    layers (vllm/v1/kv_cache_interface.py SlidingWindowSpec.max_memory_usage_bytes)."""
    dcp, tp = opts.decode_context_parallel_size, opts.tp
    if dcp == 1:
        return []
    flag = f"--decode-context-parallel-size {dcp}"

    def refuse(code: str, text: str, fix: str, source: str) -> list[Message]:
        return [error(code, text, fix=fix, source=source)]

    if opts.prefill_context_parallel_size == 1 and tp % dcp:  # with PCP, pcp_messages checks DCP's size
        return refuse("vllm.dcp.tp_divisible", f"ValueError: tp_size={tp} must be divisible by dcp_size={dcp}.",
                      f"a {flag} that divides --tensor-parallel-size {tp}", "vllm/config/parallel.py ParallelConfig")
    attn = [la.attention for la in spec.layers if la.attention is not None]
    if any(la.ssm is not None for la in spec.layers) or any(a.kind == "chunked" for a in attn):
        raise NotModelledError(f"{flag} on a model with recurrent (Mamba / GDN) or chunked-local layers: vramcalc "
                               "models DCP for full attention and MLA only (remove the flag to check the rest)")
    if attn and not attn[0].latent_cache:
        kv, q = attn[0].num_kv_heads, attn[0].num_heads
        src = "vllm/config/model.py ModelConfig.verify_with_parallel_config"
        if tp <= kv:
            return refuse("vllm.dcp.kv_heads", "ValueError: Decode context parallelism for GQA/MQA requires "
                          f"`--tensor-parallel-size` ({tp}) to be greater than the model's total number of KV heads "
                          f"({kv}). Increase `--tensor-parallel-size` or set `--decode-context-parallel-size 1`.",
                          f"--tensor-parallel-size above {kv}, or --decode-context-parallel-size 1", src)
        if dcp > tp // kv:
            return refuse("vllm.dcp.max_size", f"ValueError: `--decode-context-parallel-size` ({dcp}) exceeds the maximum "
                          f"supported value ({tp // kv}) for `--tensor-parallel-size` ({tp}) and {kv} model KV heads.",
                          f"--decode-context-parallel-size {tp // kv}", src)
        if (q // kv) % dcp:
            return refuse("vllm.dcp.q_per_kv", f"ValueError: The model's number of query heads per KV head ({q // kv}) must be "
                          f"divisible by `--decode-context-parallel-size` ({dcp}) for GQA/MQA.",
                          "a --decode-context-parallel-size that divides the query heads per KV head", src)
    if any(a.kind == "sliding" for a in attn) and hma_off(opts):
        raise NotModelledError(f"{flag} with sliding-window layers held at full length (the hybrid KV cache manager "
                               "off): vramcalc does not model it (remove one of the flags to check the rest)")
    if any(a.kind == "sliding" for a in attn):
        return refuse("vllm.dcp.sliding_window", "AssertionError: DCP not support sliding window.",
                      "--decode-context-parallel-size 1", "vllm/v1/kv_cache_interface.py SlidingWindowSpec")
    return []


# EPLBConfig's fields and defaults (v0.30.0 vllm/config/parallel.py EPLBConfig)
EPLB_FIELDS = {"window_size": 1000, "step_interval": 3000, "num_redundant_experts": 0, "log_balancedness": False,
               "log_balancedness_interval": 1, "use_async": True, "policy": "default", "communicator": None}


def parse_eplb_config(v: Any) -> dict[str, Any]:
    v = json_object_arg("--eplb-config", v, "EPLBConfig's fields")
    unknown = sorted(set(v) - set(EPLB_FIELDS))
    if unknown:
        raise InputError(f"argument --eplb-config: unknown field(s) {', '.join(unknown)} (EPLBConfig has "
                         f"{', '.join(EPLB_FIELDS)})")
    for k in ("window_size", "num_redundant_experts"):
        n = v.get(k, EPLB_FIELDS[k])
        if isinstance(n, bool) or not isinstance(n, int) or n < (1 if k == "window_size" else 0) or n > 2**20:
            raise InputError(f"argument --eplb-config: {k} must be an integer >= {1 if k == 'window_size' else 0}, "
                             f"got {n!r:.40}")
    return v


def eplb_messages(spec: ModelSpec, opts: VLLMOptions) -> list[Message]:
    """vLLM 0.30.0's refusals of --enable-eplb / num_redundant_experts: ParallelConfig.__post_init__ (vllm/config/
    parallel.py), then FusedMoE's even split of the physical experts (vllm/model_executor/layers/fused_moe/layer.py)."""
    src = "vllm/config/parallel.py ParallelConfig"
    r = opts.num_redundant_experts
    if not opts.enable_eplb:
        if r:
            return [error("vllm.eplb.not_enabled", f"ValueError: num_redundant_experts is set to {r} but EPLB is not "
                          "enabled. Either enable EPLB or unset num_redundant_experts.", fix="--enable-eplb",
                          source=src)]
        return []
    if not opts.enable_expert_parallel:
        return [error("vllm.eplb.needs_ep", "ValueError: enable_expert_parallel must be True to use EPLB.",
                      fix="--enable-expert-parallel", source=src)]
    if opts.tp * opts.data_parallel_size <= 1:
        return [error("vllm.eplb.needs_parallel", "ValueError: EPLB requires tensor, prefill-context, or data "
                      f"parallelism, but got TP={opts.tp}, PCP=1, DP={opts.data_parallel_size}.",
                      fix="drop --enable-eplb on one GPU", source=src)]
    experts = next((la.mlp.num_experts for la in spec.layers if la.mlp.kind == "moe"), 0)
    ep = opts.tp * opts.data_parallel_size
    if experts and (experts + r) % ep:
        return [error("vllm.eplb.uneven", "ValueError: EPLB currently only supports even distribution of experts "
                      f"across ranks. Got {experts + r} experts and {ep} EP ranks.",
                      fix="a num_redundant_experts that makes the experts divide by the EP ranks",
                      source="vllm/model_executor/layers/fused_moe/layer.py FusedMoEFactory")]
    return []


def eplb_state_bytes(spec: ModelSpec, opts: VLLMOptions, w: RankWeights) -> int:
    """The device memory EplbState.add_model allocates on each rank while the model loads (inside 'Model loading
    took'; v0.30.0 vllm/distributed/eplb/eplb_state.py): a buffer of one MoE layer's local experts
    (expert_buffer, empty_like of model.expert_weights[0]), the logical-to-physical map (MoE layers x experts x
    (MAX_EXPERT_REDUNDANCY 1023 + 1) int64), the replica counts (int64), the physical-to-logical map (int64), the
    load pass (int32) and the load window (window_size x MoE layers x physical experts, int32)."""
    if not opts.enable_eplb or not spec.is_moe:
        return 0
    experts = next(la.mlp.num_experts for la in spec.layers if la.mlp.kind == "moe")
    physical = experts + opts.num_redundant_experts
    window = int((opts.eplb_config or {}).get("window_size", EPLB_FIELDS["window_size"]))
    per_layer = experts * 1024 * 8 + experts * 8 + physical * 8 + physical * 4 + window * physical * 4
    return w.expert_layer_bytes + w.moe_layers * per_layer

def per_head_attention(spec: ModelSpec) -> ModelSpec:
    """The attention VLLM_MLA_DISABLE=1 builds, for the backend selector: each MLA layer as DeepseekV2Attention's
    Attention, every head its own K and V of qk_nope_head_dim + qk_rope_head_dim (vLLM 0.33.0
    vllm/model_executor/models/deepseek_v2.py; kv.per_head_mla sizes its pages). Only the selector reads it."""
    layers = []
    for la in spec.layers:
        a = la.attention
        if a is not None and a.mla is not None and a.latent_cache:
            qk = a.mla.qk_nope_head_dim + a.mla.qk_rope_head_dim
            a = a.model_copy(update={"mla": None, "num_kv_heads": a.num_heads, "head_dim_k": qk, "head_dim_v": qk})
            la = la.model_copy(update={"attention": a})
        layers.append(la)
    return spec.model_copy(update={"layers": layers})


def pooling_convert(opts: VLLMOptions) -> str | None:
    """The adapter a pooling runner applies to a causal LM, or None for the generate runner (vLLM 0.33.0
    vllm/config/model.py ModelConfig._get_runner_type / _get_convert_type: convert embed or classify implies the pooling
    runner; runner pooling with convert auto takes embed for a *ForCausalLM). A checkpoint that is itself a pooling
    model, or a Sentence Transformers repo that vLLM turns to pooling by its modules.json, is not seen offline."""
    if opts.runner == "draft":
        raise NotModelledError("--runner draft: a model served as a speculative draft, which vramcalc sizes only "
                               "through --speculative-config (remove the flag to check the rest)")
    if opts.runner == "generate":
        if opts.convert in ("embed", "classify"):
            raise NotModelledError(f"--runner generate with --convert {opts.convert}: vramcalc does not model a "
                                   "generate runner on a converted model (remove one of the flags)")
        return None
    if opts.runner == "pooling" or opts.convert in ("embed", "classify"):
        return opts.convert if opts.convert in ("embed", "classify") else "embed"
    return None


# transformers' PretrainedConfig default: id2label of two labels, which sizes as_seq_cls_model's score head
DEFAULT_NUM_LABELS = 2


def _pooling_head_delta(spec: ModelSpec, opts: VLLMOptions, wdtype: str | None, w: RankWeights, convert: str) -> int:
    """Bytes a pooling model's last stage holds more (negative: fewer) than the causal LM (vLLM 0.33.0
    vllm/model_executor/models/adapters.py): ParallelLMHead is not built (no_init_weights: StageMissingLayer), so an
    untied lm_head (vocab padded to 64, / TP) goes, and with PP > 1 a tied one's copy on the last stage too; classify
    adds ReplicatedLinear(hidden, num_labels) in the pooling head dtype, float32 (ModelConfig.head_dtype)."""
    if w.pp_stage != opts.pp - 1:
        return 0
    rows = ceil(ceil(spec.vocab_size / 64) * 64 / opts.tp)
    head = rows * spec.hidden_size * dtype_bytes(wdtype or spec.dtype) if not spec.tie_word_embeddings or opts.pp > 1 \
        else 0
    score = DEFAULT_NUM_LABELS * spec.hidden_size * 4 if convert == "classify" else 0
    return score - head


def _prefix_caching_on(spec: ModelSpec, opts: VLLMOptions, version: str) -> bool:
    """Prefix caching as vLLM resolves it: as given, else its default (on unless the model is attention-free, vLLM
    0.33.0 vllm/config/model.py ModelConfig.is_prefix_caching_supported; off for hybrid models before
    data/vllm.json hybrid_prefix_caching_since)."""
    if opts.enable_prefix_caching is not None:
        return opts.enable_prefix_caching
    default = release_settings(spec, version)["prefix_caching"]
    return any(la.attention is not None for la in spec.layers) if default is None else default


def hma_off(opts: VLLMOptions) -> bool:
    """The hybrid KV cache manager off: --disable-hybrid-kv-cache-manager, or KV offloading / a --kv-transfer-config
    connector without SupportsHMA (lmcache; v0.30.0 vllm/config/vllm.py VllmConfig.__post_init__,
    KVConnectorFactory.supports_hma_config; 0.33.0 for --kv-transfer-config). With --enable-hybrid-kv-cache-manager
    vLLM keeps it on (which vramcalc does not read: the larger footprint)."""
    from .kv_transfer import hma_off as connector_hma_off

    if opts.kv_offloading_connector is not None:  # it replaces --kv-transfer-config's (_post_init_kv_transfer_config)
        return opts.disable_hybrid_kv_cache_manager or connector_hma_off({"kv_connector": opts.kv_offloading_connector,
                                                                          "kv_role": "kv_both"})
    return opts.disable_hybrid_kv_cache_manager or connector_hma_off(opts.kv_transfer_config)


def _kv_settings(spec: ModelSpec, opts: VLLMOptions, version: str, mnbt: int, L: int,
                 spec_tokens: int = 0, gdn_backend: str = "triton", replayssm_rows: int = 0) -> KVSettings:
    """The cache settings the KV pool is sized with (vLLM 0.33.0 vllm/config/cache.py CacheConfig; the rules
    that follow the release: kv.release_settings)."""
    rel = release_settings(spec, version)
    default_block = rel.pop("block_size")
    # MiniMax-M3's MSA backends take 128-token blocks only (data/vllm.json minimax_m3_msa)
    msa_block = vllm_rules().minimax_m3_msa.block_size if any(
        la.attention is not None and la.attention.index_n_heads for la in spec.layers) else 0
    if msa_block and opts.block_size and opts.block_size % msa_block:
        # a cache block is split into kernel blocks only by a size that divides it (vLLM v0.34.0
        # vllm/v1/worker/utils.py select_common_block_size), else the worker stops: "No common block size for ..."
        raise NotModelledError(f"--block-size {opts.block_size} on MiniMax-M3: its MSA attention and indexer "
                               f"backends take {msa_block}-token kernel blocks only, which a {opts.block_size}-token "
                               "block cannot be split into; vLLM 0.34.0 then fails at worker setup "
                               "(select_common_block_size), which vramcalc does not reproduce (use a multiple of "
                               f"{msa_block}, or leave it unset: {msa_block})")
    if hma_off(opts):
        kinds = {layer.attention.kind for layer in spec.layers if layer.attention is not None}
        if any(layer.ssm is not None for layer in spec.layers) and kinds:
            raise NotModelledError("--disable-hybrid-kv-cache-manager (or lmcache KV offloading) on a model with both "
                               "attention and recurrent "
                                   "(Mamba / GDN) layers: vLLM 0.33.0 keeps their specs apart "
                                   "(vllm/v1/core/kv_cache_planning.py unify_hybrid_kv_cache_specs) and says such "
                                   "models need the hybrid manager (vllm/config/vllm.py); vramcalc does not model it "
                                   "(remove the flag to check the rest)")
        # unify_hybrid_kv_cache_specs / _promote_local_kv_cache_specs: with full attention beside sliding-window or
        # chunked-local layers, those are allocated as full attention; a model of one kind keeps its own spec
        if "full" in kinds and kinds & {"sliding", "chunked"}:
            rel["hybrid_manager"] = False
    if opts.enable_prefix_caching is not None:  # as given; None keeps vLLM's default (kv.release_settings)
        rel["prefix_caching"] = opts.enable_prefix_caching
    # a pooling runner turns async scheduling off by default (v0.33.0 vllm/config/vllm.py VllmConfig.__post_init__),
    # so a sliding window reserves one batch in flight, not two
    return KVSettings(tp=opts.tp, pp=opts.pp, kv_cache_dtype=opts.kv_cache_dtype, max_num_batched_tokens=mnbt,
                      async_scheduling=pooling_convert(opts) is None,
                      block_size=opts.block_size or msa_block or default_block, max_model_len=L, num_speculative_tokens=spec_tokens,
                      mamba_cache_dtype=opts.mamba_cache_dtype, mamba_ssm_cache_dtype=opts.mamba_ssm_cache_dtype,
                      pp_partition=opts.pp_layer_partition, dcp=opts.decode_context_parallel_size,
                      mla_disabled=opts.mla_disable, kv_skip_layers=_skip_layers(spec, opts),
                      mamba_block_size=opts.mamba_block_size, gdn_prefill_backend=gdn_backend,
                      replayssm_rows=replayssm_rows, **rel)


def replayssm_messages(spec: ModelSpec, opts: VLLMOptions, prefix_caching: bool,
                       spec_tokens: int) -> tuple[int, list[Message]]:
    """The ring rows --use-replayssm adds to each Mamba-2 state (0 without it) and vLLM 0.33.0's refusals of the
    Mamba kernel flags, in its words: vllm/config/mamba.py MambaConfig.validate_ssu_algorithm, vllm/config/vllm.py
    VllmConfig.validate_mamba_cached_kernel (data/vllm_features.json replayssm)."""
    from .features import features

    r = features().replayssm
    out: list[Message] = []

    def refuse(key: str, fix: str, **kw: Any) -> None:
        src = "vllm/config/mamba.py MambaConfig" if key == "ssu_algorithm" else \
            "vllm/config/vllm.py VllmConfig.validate_mamba_cached_kernel"
        out.append(error("vllm.replayssm.refused", r.refusals[key].format(**kw) + f" [{src}]", fix=fix,
                         source=src))

    if opts.mamba_ssu_algorithm is not None and opts.mamba_backend != "flashinfer":
        refuse("ssu_algorithm", "--mamba-backend flashinfer, or drop --mamba-ssu-algorithm")
    if not opts.use_replayssm:
        return 0, out
    if spec.architecture not in r.architectures:
        refuse("architecture", "drop --use-replayssm", arch=spec.architecture or spec.model_type)
        return 0, out
    if spec_tokens:
        raise NotModelledError("--use-replayssm with speculative decoding: its FlashInfer kernel's rings and "
                               "checks are not modelled (remove one of them to check the rest)")
    flashinfer = opts.mamba_backend == "flashinfer"
    if flashinfer and opts.replayssm_buffer_len > r.flashinfer_max_buffer_len:
        refuse("flashinfer_buffer_len", f"--replayssm-buffer-len {r.flashinfer_max_buffer_len}")
    elif flashinfer and prefix_caching:
        refuse("flashinfer_prefix_caching", "--disable-prefix-caching")
    elif not flashinfer:
        refuse("triton_v2", "--mamba-backend flashinfer --disable-prefix-caching (Model Runner V2 is vLLM 0.33.0's "
               "default and 0.34.0's only runner: 0.34.0 removed V1 and refuses VLLM_USE_V2_MODEL_RUNNER=0, under "
               "which 0.33.0 ran Triton's; vramcalc does not model that)")
    kt = opts.kv_transfer_config or {}
    if not out and (opts.kv_offloading_size is not None or (kt.get("kv_connector") and kt.get("kv_role") in
                                                             ("kv_producer", "kv_consumer", "kv_both"))):
        refuse("kv_connector", "drop --use-replayssm, or the KV connector (--kv-transfer-config / "
               "--kv-offloading-size)")
    return opts.replayssm_buffer_len + (1 + spec_tokens if flashinfer else 0), out


def _skip_layers(spec: ModelSpec, opts: VLLMOptions) -> tuple[str, ...]:
    """--kv-cache-dtype-skip-layers, with TurboQuant's boundary layers added as vLLM 0.33.0 adds them
    (vllm/engine/arg_utils.py create_engine_config: sorted as strings)."""
    given = tuple(opts.kv_cache_dtype_skip_layers)
    if not opts.kv_cache_dtype.startswith("turboquant_"):
        return given
    return tuple(sorted(set(given) | set(turboquant_boundary_layers(spec))))


def _kv_format_gate(spec: ModelSpec, opts: VLLMOptions, version: str, gpu: GPU | None = None) -> Message | None:
    """A KV dtype the release does not have is its error; a packed one on a release whose rules vramcalc has not
    checked, off NVIDIA GPUs (its pages, backend and workspace are checked on the CUDA platform's rules only), or one
    vramcalc does not model, is refused as not modelled (data/vllm_kv_formats.json)."""
    f = kv_formats()
    name = opts.kv_cache_dtype
    since = f.accepted_since.get(name)
    if since and _key(version) < _key(since):
        return error("vllm.kv_cache_dtype.unknown", f"vLLM {version} has no --kv-cache-dtype {name} (vllm/config/"
                     f"cache.py CacheDType takes it from {since})", fix=f"--engine-version {since} or later, or "
                     "--kv-cache-dtype fp8", source="vllm/config/cache.py CacheDType")
    if name in f.not_modelled:
        raise NotModelledError(f"--kv-cache-dtype {name} ({f.not_modelled[name]}): not modelled; vramcalc models "
                               f"{', '.join(['auto', 'bfloat16', 'float16', 'fp8', *f.formats])}")
    if name in f.formats and gpu is not None and (gpu.vendor or "nvidia") != "nvidia":
        raise NotModelledError(f"--kv-cache-dtype {name} is modelled on NVIDIA GPUs (vLLM {f.checked_on[-1]}'s CUDA "
                               f"platform); on {gpu.vendor} GPUs its backend and workspace are not checked")
    if name in f.formats and version not in f.checked_on:
        raise NotModelledError(f"--kv-cache-dtype {name} is modelled on vLLM {' and '.join(f.checked_on)} (its page "
                               f"sizes equal those releases' own code); vLLM {version}'s rules for it are not checked")
    return None


def _turboquant_workspace(spec: ModelSpec, opts: VLLMOptions, seqs: int, mnbt: int, L: int, block: int) -> int:
    """TurboQuant's decode and continuation-prefill buffers in the shared workspace (v0.33.0
    vllm/v1/attention/backends/turboquant_attn.py TurboQuantMetadataBuilder._reserve_workspace; the workspace
    grows to the larger request, vllm/v1/worker/workspace.py, each piece 256-byte aligned). Reserved when the
    metadata builders are built; counted in the activation, a conservative place."""
    attn = next(la.attention for la in spec.layers if la.attention is not None)
    heads, kv, hd = max(1, attn.num_heads // opts.tp), max(1, attn.num_kv_heads // opts.tp), attn.head_dim_k
    splits = kv_formats().turboquant_max_kv_splits

    def al(n: int) -> int:
        return -(-n // 256) * 256
    decode = al(seqs * heads * splits * (hd + 1) * 4) + al(seqs * heads * hd * dtype_bytes(spec.dtype)) + \
        al(seqs * heads * 4)
    cont = 2 * al(kv * (-(-(L - 1) // block) * block) * hd * 2) if mnbt > 128 else 0
    return max(decode, cont)


class _SparseIndexer(BaseModel):
    """The DSA sparse indexer's buffers on one rank (data/vllm.json sparse_indexer)."""

    model_config = ConfigDict(frozen=True)

    factor: int  # sparse_mla_prefill_workspace_factor as vLLM resolves it
    rows: int  # K-gather rows (get_max_prefill_buffer_size)
    workspace: int  # what the profile run asks of the shared workspace (persistent)
    index_buffer: int  # topk_indices_buffer (persistent, allocated with the model)
    logits: int  # the dummy logits tensor (transient, per indexer call)
    exchange: int  # the TP row-shard exchange transient (held with the logits; up to 0.33)
    fused_scratch: int = 0  # the fused MQA + top-k kernel's scratch, dropped before the dummy (0.34)
    release_034: bool = False  # sized by 0.34.0's rule (data/vllm.json sparse_indexer dummy_034)
    logits_dtype: str = "float32"  # the indexer's MQA logits (0.34)
    decode_rows: int = 0  # the decode rows the dummy counts (0.34)
    decode_chunked: bool = False  # decode chunked to VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB (0.34)
    sm_count: int = 0  # the SMs the fused scratch is sized for (0: not used)
    sm_count_recorded: bool = True

    @property
    def persistent(self) -> int:
        return self.workspace + self.index_buffer

    @property
    def transient(self) -> int:
        """The peak at the indexer call: the fused scratch is dropped before the dummy (and the exchange) is
        allocated (v0.34.0 sparse_attn_indexer), so the larger of the two."""
        return max(self.logits + self.exchange, self.fused_scratch)


def msa_score_bytes(index_heads: int, tokens: int, max_seq_len: int) -> int:
    """The Triton indexer's prefill score tensor: float32 [index heads, tokens, round_up(cdiv(max_seq_len, 128), 16)]
    (data/vllm.json minimax_m3_msa score_source; tests/data/vllm_minimax_m3_oracle_v0.34.0.json score_cases)."""
    blocks = -(-max_seq_len // vllm_rules().minimax_m3_msa.block_size)
    return index_heads * tokens * (-(-blocks // 16) * 16) * 4


def _msa_score_warning(index_heads: int, tp: int, mnbt: int, L: int) -> Message:
    """MiniMax-M3's indexer scores at run time, outside the profile run (data/vllm.json minimax_m3_msa score_source):
    the Triton indexer's float32 [index heads per rank, prefill tokens, blocks rounded up to 16] score tensor."""
    r = vllm_rules().minimax_m3_msa
    nbytes = msa_score_bytes(max(1, index_heads // tp), mnbt, L)
    return warning("vllm.minimax_m3.indexer_scores",
                   f"MiniMax-M3's sparse-attention indexer scores each prefill chunk's tokens against every "
                   f"{r.block_size}-token block at run time: on its Triton indexer a float32 tensor of index heads x "
                   f"tokens x blocks, {nbytes / MIB:,.0f} MiB on each rank at {mnbt:,} tokens and max_model_len "
                   f"{L:,}; vLLM's profile run skips the indexer, so it reserves none of it, and vramcalc does not "
                   "count it (the SM 10.x fmha path and the NVFP4 / AITER indexers size their own)",
                   source=r.score_source)


def _indexer_logits_dtype(spec: ModelSpec, opts: VLLMOptions, sm100: bool) -> str:
    """The DSA indexer's MQA logits dtype (v0.34.0 vllm/config/attention.py indexer_logits_dtype, resolved by
    vllm/model_executor/models/config.py _set_deepseek_indexer_logits_dtype; data/vllm.json sparse_indexer
    dummy_034 bf16_logits_source)."""
    given = (opts.attention_config or {}).get("indexer_logits_dtype", "auto")
    if given != "auto":
        return str(given)
    r = vllm_rules().sparse_indexer.dummy_034
    return "bfloat16" if sm100 and spec.architecture in r.bf16_logits_architectures else "float32"


def _dummy_034(spec: ModelSpec, mla: Any, opts: VLLMOptions, gpu: GPU, mnbt: int, L: int, seqs: int,
               spec_tokens: int) -> dict[str, Any]:
    """vLLM 0.34.0's profile-run dummy logits tensor and fused MQA + top-k scratch on a CUDA GPU (v0.34.0
    vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer; vllm/model_executor/kernels/attention/
    dsa/fused_mqa_topk.py use_fused_mqa_topk, get_fused_mqa_topk_workspaces; data/vllm.json sparse_indexer
    dummy_034)."""
    r = vllm_rules().sparse_indexer.dummy_034
    cc = str(gpu.compute_capability or "0").split(".")[0]
    sm100 = gpu.vendor == "nvidia" and cc.isdigit() and int(cc) == r.chunk_cc_major
    logits_dtype = _indexer_logits_dtype(spec, opts, sm100)
    item = 2 if logits_dtype == "bfloat16" else 4
    copy = 0 if item == 4 else r.fp32_copy_bytes
    pcp = opts.prefill_context_parallel_size > 1
    dcp = opts.decode_context_parallel_size
    topk_backend = opts.sparse_indexer_topk_backend or "auto"
    decode_copy = copy if topk_backend != "deep_select" or dcp != 1 else 0
    dec_mb = r.max_decode_logits_mb if opts.sparse_indexer_max_decode_logits_mb is None else \
        opts.sparse_indexer_max_decode_logits_mb
    budget = dec_mb * MIB
    chunked = budget > 0 and sm100 and not pcp and dcp == 1 and topk_backend in r.chunk_topk_backends and \
        mla.index_topk in r.topks
    rows = min(seqs, mnbt) * (1 + spec_tokens)
    if chunked:
        rows = min(rows, budget // (item * L))
        decode_copy = 0
    align = math.lcm(r.split_kv_sm100 if sm100 else r.split_kv_other, r.row_stride_bytes // item)
    mb = vllm_rules().sparse_indexer.max_logits_mb if opts.sparse_indexer_max_logits_mb is None else \
        opts.sparse_indexer_max_logits_mb
    dummy = max(mb * MIB // 4 * (item + copy), rows * (-(-L // align) * align) * (item + decode_copy))
    fused = opts.use_fused_mqa_topk and sm100 and (pcp or dcp == 1) and mla.index_topk in r.topks and \
        (mla.index_n_heads, mla.index_head_dim) == (r.fused_heads, r.fused_head_dim)
    scratch, sms, recorded = 0, 0, True
    if fused:
        recorded = gpu.id in r.sm_count
        sms = r.sm_count.get(gpu.id, r.sm_count_max)
        blocks = -(-mnbt // r.fused_block_rows)
        slot_rows = r.fused_block_rows * r.fused_slots_per_sm * min(blocks, sms)
        scratch = r.fused_counter_bytes + slot_rows * r.fused_slot_row_bytes + blocks * r.fused_block_bytes
    return {"logits": dummy, "fused_scratch": scratch, "logits_dtype": logits_dtype, "decode_rows": rows,
            "decode_chunked": chunked, "sm_count": sms, "sm_count_recorded": recorded}


def _sparse_indexer(spec: ModelSpec, opts: VLLMOptions, gpu: GPU, mnbt: int, L: int, seqs: int = 0,
                    spec_tokens: int = 0) -> _SparseIndexer | None:
    """The DSA sparse indexer buffers on one rank (data/vllm.json sparse_indexer): the profile run's K-gather and
    radix top-k workspace and the max_num_batched_tokens x index_topk int32 index buffer, persistent; at each
    indexer call, up to vLLM 0.33.0 the dummy logits tensor of VLLM_SPARSE_INDEXER_MAX_LOGITS_MB MiB and, under TP
    on CUDA, the row-shard exchange transient, held together; from 0.34.0 (on CUDA) the larger of the fused MQA +
    top-k scratch and a dummy sized from the prefill and decode logits (_dummy_034)
    (vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer). None: no indexer."""
    mla = next((la.attention.mla for la in spec.layers if la.attention is not None and la.attention.mla is not None
                and la.attention.mla.index_n_heads), None)
    if mla is None:
        return None
    r = vllm_rules().sparse_indexer
    factor = opts.sparse_mla_prefill_workspace_factor or (
        r.workspace_factor_default if L <= r.workspace_factor_long_above else r.workspace_factor_long)
    rows = L * r.gather_rows_per_len * factor

    def al(n: int) -> int:
        return -(-n // r.workspace_alignment) * r.workspace_alignment
    pair = al(rows * mla.index_head_dim) + al(rows * r.scale_bytes_per_row)
    pcp_dcp = opts.prefill_context_parallel_size > 1 and opts.decode_context_parallel_size > 1
    workspace = pair * (3 if pcp_dcp else 1) + al(r.radix_topk_workspace_bytes)
    index_buffer = mnbt * mla.index_topk * 4
    mb = r.max_logits_mb if opts.sparse_indexer_max_logits_mb is None else opts.sparse_indexer_max_logits_mb
    version = opts.engine_version or vllm_rules().default_version
    if _key(version) >= _key(r.dummy_since.version) and gpu.vendor == "nvidia":
        # 0.34.0 reserves no row-shard exchange (sparse_attn_indexer's profile branch)
        return _SparseIndexer(factor=factor, rows=rows, workspace=workspace, index_buffer=index_buffer, exchange=0,
                              release_034=True, **_dummy_034(spec, mla, opts, gpu, mnbt, L, seqs or mnbt,
                                                             spec_tokens))
    # tp_prefill_row_sharding_supported (vllm/v1/attention/backends/mla/indexer.py, 0.33.0); the variables and
    # cudagraph modes that turn it off are not read here: the transient is counted (an upper bound)
    sharded = gpu.vendor == "nvidia" and opts.tp > 1 and opts.decode_context_parallel_size == 1 and \
        opts.prefill_context_parallel_size == 1
    return _SparseIndexer(factor=factor, rows=rows, workspace=workspace, index_buffer=index_buffer, logits=mb * MIB,
                          exchange=2 * index_buffer if sharded else 0)


def _minimax_m3_mega_moe_refusal(spec: ModelSpec, opts: VLLMOptions) -> list[Message]:
    """--moe-backend deep_gemm_mega_moe (or --kernel-config's moe_backend) on MiniMax-M3: vLLM v0.34.0
    vllm/models/minimax_m3/nvidia/model.py _use_mega_moe refuses a checkpoint without NVFP4 routed experts, then one
    without expert parallelism, in these words (tests/data/vllm_minimax_m3_oracle_v0.34.0.json mega_moe_refusals); with
    both, MegaMoE's expert layout and sequence parallelism are not modelled."""
    if spec.model_type != "minimax_m3" or opts.moe_backend != "deep_gemm_mega_moe":
        return []
    src = "vllm/models/minimax_m3/nvidia/model.py _use_mega_moe (v0.34.0)"
    algo = (spec.quantization_config or {}).get("moe_quant_algo")
    if algo != "NVFP4":
        return [error("vllm.minimax_m3.mega_moe", "NotImplementedError: MiniMax M3 MegaMoE requires a checkpoint with "
                      f"NVFP4 routed experts (moe_quant_algo: NVFP4), got moe_quant_algo={algo!r}. Pick a different "
                      "moe backend for this checkpoint.", source=src, fix="--moe-backend auto")]
    if not opts.enable_expert_parallel:
        return [error("vllm.minimax_m3.mega_moe", "NotImplementedError: MiniMax M3 MegaMoE requires expert parallel. "
                      "Enable it with --enable-expert-parallel.", source=src, fix="--enable-expert-parallel")]
    raise NotModelledError("--moe-backend deep_gemm_mega_moe on MiniMax-M3 (NVFP4 routed experts, expert parallel): "
                           "MegaMoE's expert layout (DeepGemmMegaMoEExperts) and the sequence parallelism it turns on "
                           "are not modelled")



def _monokernel_deployment_reasons(spec: ModelSpec, opts: VLLMOptions) -> list[str]:
    """vLLM v0.34.0 vllm/models/minimax_m3/amd/specialized_decode/runtime/spec.py DecodeConfig.refusal_reasons, in its
    order and words, for what vramcalc reads (tests/data/vllm_monokernel_oracle_v0.34.0.json). The block size is the
    one the model is built with: vllm/v1/executor/multiproc_executor.py WorkerProc loads the model before
    Platform.update_block_size_for_backend, so without --block-size it is CacheConfig.DEFAULT_BLOCK_SIZE (64). Not
    read here: sleep mode, stock torch.compile (CompilationConfig mode 1), use_index_cache / index_topk_freq."""
    r = vllm_rules().minimax_m3_monokernel
    why: list[str] = []
    if opts.tp != r.tp_size:
        why.append(f"requires tensor parallel size {r.tp_size}")
    if opts.pp != 1:
        why.append("does not support pipeline parallelism")
    if opts.data_parallel_size != 1:
        why.append("does not support data parallelism")
    if opts.decode_context_parallel_size != 1:
        why.append("does not support decode context parallelism")
    if opts.prefill_context_parallel_size != 1:
        why.append("does not support prefill context parallelism")
    if opts.enable_dbo or opts.ubatch_size > 1:  # ParallelConfig.use_ubatching
        why.append("does not support DBO or ubatching")
    if opts.enable_expert_parallel:
        why.append("does not support expert parallelism")
    if opts.enable_eplb:
        why.append("does not support EPLB")
    if opts.kv_cache_dtype not in ("fp8", "fp8_e4m3"):
        why.append("requires an FP8 KV cache")
    if (opts.block_size or 64) != r.block_size:
        why.append(f"requires KV cache block size {r.block_size}")
    if opts.kv_offloading_size is not None:
        why.append("does not support KV cache offloading")
    indexer = str((opts.attention_config or {}).get("indexer_kv_dtype") or "auto")
    if (indexer if indexer != "auto" else "bf16") != "fp8":  # AttentionConfig.resolve_indexer_kv_dtype("bf16")
        why.append('requires indexer_kv_dtype "fp8"')
    if opts.enable_lora:
        why.append("does not support LoRA")
    # --kv-offloading-size sets an offloading KV connector (vllm/config/vllm.py), as the oracle shows
    if opts.kv_offloading_size is not None or (opts.kv_transfer_config or {}).get("kv_connector") is not None:
        why.append("does not support a KV connector")
    if opts.speculative_config is not None and opts.speculative_config.get("method") != "eagle3":
        why.append("supports only EAGLE3 speculative decoding")
    if opts.weight_transfer_backend is not None:
        why.append("does not support weight transfer or updates")
    if opts.cpu_offload_gb > 0 or opts.offload_group_size > 0:
        why.append("does not support model weight offloading")
    if opts.enable_return_routed_experts or (opts.aux_output_config or {}).get("enable_return_routed_experts"):
        why.append("does not support routed-expert capture")
    if opts.moe_backend != "aiter":
        why.append("requires --moe-backend aiter")
    sparse = [i for i, la in enumerate(spec.layers) if la.attention is not None and la.attention.index_n_heads]
    if len(spec.layers) <= r.first_layer or sparse != list(range(r.first_layer, len(spec.layers))):
        why.append(f"requires sparse attention on layers {r.first_layer} through the last")
    return why


def _minimax_m3_monokernel(spec: ModelSpec, opts: VLLMOptions, gpu: GPU, scheme: QuantScheme,
                           version: str) -> tuple[list[Message], list[Message], int, int]:
    """--monokernel (KernelConfig.monokernel) on MiniMax-M3: (errors, warnings, torch bytes, non-torch bytes per
    rank). vLLM v0.34.0 reads it only in MiniMax-M3's ROCm class (vllm/models/minimax_m3/amd/model.py MiniMaxM3Model
    -> specialized_decode/runtime/spec.py specialized_decode_config) and in DeepSeek-V4.x / Muse Spark's ROCm classes,
    which vramcalc does not read: on NVIDIA GPUs and every other family it changes nothing. On ROCm it refuses, as the
    model is built, a deployment DecodeConfig does not take; then, as amd/model_state.py MiniMaxM3ModelState builds
    runtime/decode.py SpecializedDecode, a loaded model or a GPU runtime/guards.py model_refusals does not take. Where
    it is taken, the buffers runtime/executor.py FfnExecutor allocates (data/vllm.json minimax_m3_monokernel) are
    held from before the profile run, which measures them."""
    r = vllm_rules().minimax_m3_monokernel
    if not opts.monokernel or spec.model_type != "minimax_m3" or gpu.vendor != "amd" or not _at_least(version, r.since):
        return [], [], 0, 0
    def refused(code: str, text: str, src: str) -> tuple[list[Message], list[Message], int, int]:
        return [error(code, text, source=src, fix="without --monokernel (or --kernel-config's monokernel)")], [], 0, 0

    why = _monokernel_deployment_reasons(spec, opts)
    if why:
        return refused("vllm.minimax_m3.monokernel", "ValueError: MiniMax-M3 specialized decode unsupported: "
                       + "; ".join(why),
                       "vllm/models/minimax_m3/amd/specialized_decode/runtime/spec.py specialized_decode_config (v0.34.0)")
    # model_refusals: each sparse layer through MonoLayerWeights.from_layer (runtime/weights.py), whose first check is
    # MiniMaxM3MoE's fused shared expert through AITER (is_fused_shared_expert_enabled and use_aiter_moe_fse): off
    # unless VLLM_ROCM_USE_AITER=1, VLLM_ROCM_USE_AITER_MOE and VLLM_ROCM_USE_AITER_FUSION_SHARED_EXPERTS=1, and
    # use_aiter_moe_fse also needs gfx950 (amd/model.py _aiter_moe_fused_shared_experts_enabled); then the
    # AITER_MXFP4_MXFP4 expert layout, which only an MXFP4 checkpoint on AITER's MXFP4 MoE has
    src = ("vllm/models/minimax_m3/amd/specialized_decode/runtime/guards.py model_refusals, runtime/weights.py "
           "MonoLayerWeights.from_layer, runtime/decode.py SpecializedDecode (v0.34.0)")
    gfx950 = gpu.gfx_arch == r.gfx_arch
    layers = range(r.first_layer, len(spec.layers))
    device: list[str] = []
    if not gfx950:
        device.append("requires CDNA4/gfx950")
    if gpu.compute_units != r.compute_units:
        device.append(f"requires {r.compute_units} compute units, found {gpu.compute_units}" if gpu.compute_units
                      else f"requires {r.compute_units} compute units (this GPU's count, not in data/gpus.json, "
                      f"is taken as another)")
    head = "ValueError: MiniMax-M3 specialized decode model unsupported: "
    mxfp4 = scheme.method in ("mxfp4", "ct_mxfp4") or opts.fp8_moe_requant
    if not opts.rocm_aiter_moe or not gfx950:  # no fused shared expert through AITER: every layer refused alike
        text = "; ".join([f"--monokernel layer {i} requires the AITER fused shared expert." for i in layers] + device)
        return refused("vllm.minimax_m3.monokernel_model", head + text, src)
    if not mxfp4:  # refused whatever VLLM_ROCM_USE_AITER_FUSION_SHARED_EXPERTS is; vramcalc does not read which
        text = (f"each of layers {layers[0]} to {layers[-1]}: '--monokernel layer N requires the AITER fused shared "
                "expert.' (VLLM_ROCM_USE_AITER_FUSION_SHARED_EXPERTS unset) or '--monokernel layer N requires the "
                f"AITER_MXFP4_MXFP4 expert layout.' (set to 1): this checkpoint's experts are {scheme.method}, not "
                "MXFP4" + "".join("; " + d for d in device))
        return refused("vllm.minimax_m3.monokernel_model", head + text, src)
    if device:
        text = ("the per-layer reasons (which follow the MoE kernel AITER loaded, not read here); "
                + "; ".join(device))
        return refused("vllm.minimax_m3.monokernel_model", head + text, src)
    total = r.peer_bytes + r.torch_bytes
    return [], [warning("vllm.minimax_m3.monokernel_runner", f"--monokernel on MiniMax-M3: the specialized decode's "
                        f"buffers are counted ({total:,} bytes per rank: a {r.peer_bytes:,}-byte peer buffer outside "
                        f"torch and {r.torch_bytes:,} bytes of scratch); vLLM still refuses each layer at start-up "
                        "('MiniMax-M3 specialized decode model unsupported: ...') unless its experts loaded in "
                        "AITER's AITER_MXFP4_MXFP4 layout with the fused shared expert "
                        "(VLLM_ROCM_USE_AITER_FUSION_SHARED_EXPERTS=1) and effective BF16 activations, which vramcalc "
                        "does not tell", source=src + "; " + r.source)], r.torch_bytes, r.peer_bytes


def _cutlass_fp4_experts_asked(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme) -> bool:
    """NVFP4 W4A4 routed experts with --moe-backend cutlass: vLLM runs CutlassExpertsFp4 or refuses (v0.33.0
    vllm/model_executor/layers/fused_moe/oracle/nvfp4.py select_nvfp4_moe_backend, explicit moe_backend)."""
    return (spec.is_moe and scheme.method in ("nvfp4", "modelopt_nvfp4") and scheme.static_input_scale
            and "routed_experts" in scheme.quantize_groups
            and opts.moe_backend == vllm_rules().fp4_moe_blockscale.moe_backend)


def _cutlass_fp4_device(gpu: GPU) -> bool:
    """CutlassExpertsFp4._supports_current_device (fused_moe/experts/cutlass_moe.py, v0.33.0): CUDA, SM 10.x / 11.x /
    12.x (data/vllm.json fp4_moe_blockscale cc_families)."""
    cc = gpu.compute_capability
    return gpu.vendor == "nvidia" and bool(cc) and int(str(cc).split(".")[0]) in \
        vllm_rules().fp4_moe_blockscale.cc_families


def _fp4_moe_blockscale(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme, gpu: GPU) -> int:
    """The block-scale tensor the CUTLASS FP4 MoE kernels allocate at each MoE layer's forward, on one rank: the
    larger of the expert input's and the down projection's, VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE x top-k rows by
    ceil((K // 16) / 4) int32, K the hidden size and the rank's expert intermediate (data/vllm.json
    fp4_moe_blockscale; v0.33.0 vllm/model_executor/layers/fused_moe/experts/cutlass_moe.py run_cutlass_moe_fp4).
    Counted where vLLM certainly runs it: NVFP4 W4A4 experts with --moe-backend cutlass on a CUDA GPU of the SM
    10.x / 11.x / 12.x families, the experts in the standard layout (no all-to-all kernels, or
    allgather_reducescatter); 0 elsewhere (vLLM's own choice, FlashInfer first, is not modelled)."""
    from . import all2all

    r = vllm_rules().fp4_moe_blockscale
    if not (_cutlass_fp4_experts_asked(spec, opts, scheme) and _cutlass_fp4_device(gpu)
            and (not all2all.kernels_on(spec, opts) or all2all.backend(opts) == "allgather_reducescatter")):
        return 0
    rows = r.max_tokens_per_expert if opts.max_tokens_per_expert_fp4_moe is None else \
        opts.max_tokens_per_expert_fp4_moe
    moe = _moe(spec, opts)
    split = opts.tp if moe is None else moe.tp  # the experts' intermediate split (1 under EP)

    def scale_bytes(k: int, topk: int) -> int:
        return rows * topk * -(-(k // r.block) // r.scales_per_int32) * 4

    return max((max(scale_bytes(spec.hidden_size, la.mlp.experts_per_token),
                    scale_bytes(la.mlp.expert_intermediate_size // split, la.mlp.experts_per_token))
                for la in spec.layers if la.mlp.kind == "moe"), default=0)


def _fp4_moe_blockscale_messages(spec: ModelSpec, opts: VLLMOptions, blockscale: int, mnbt: int,
                                 errors: list[Message]) -> list[Message]:
    """What vramcalc says of the CUTLASS FP4 MoE block-scale tensor (_fp4_moe_blockscale): its size where counted,
    and vLLM's assertion where the profile run's tokens pass VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE (appended to
    errors; one DP rank, whose MoE layers see max_num_batched_tokens); where it is not counted and the variable is
    set, why."""
    src = "vllm/model_executor/layers/fused_moe/experts/cutlass_moe.py run_cutlass_moe_fp4, vllm/_custom_ops.py " \
          "scaled_fp4_experts_quant (v0.33.0)"
    rows = opts.max_tokens_per_expert_fp4_moe or vllm_rules().fp4_moe_blockscale.max_tokens_per_expert
    if not blockscale:
        if opts.max_tokens_per_expert_fp4_moe is None:
            return []
        return [warning("vllm.moe.fp4_blockscale_unsized", f"VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE={rows}: its "
                        "block-scale tensor is counted only where vLLM certainly runs the CUTLASS FP4 MoE kernels "
                        "(NVFP4 W4A4 experts, --moe-backend cutlass, CUDA SM 10.x / 11.x / 12.x); vLLM's own choice "
                        "(FlashInfer's kernels first, by the installed package) is not modelled, so nothing is added",
                        source=src)]
    if opts.data_parallel_size == 1 and mnbt > rows:
        topk = max(la.mlp.experts_per_token for la in spec.layers if la.mlp.kind == "moe")
        errors.append(error("vllm.moe.fp4_max_tokens", f"AssertionError: m_numtopk must be less than "
                            f"MAX_TOKENS_PER_EXPERT({rows}) for cutlass_moe_fp4, observed m_numtopk = {mnbt * topk}. "
                            "Use VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE to set this value. (the profile run's "
                            f"{mnbt} tokens)", source=src,
                            fix=f"VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE={mnbt} or a lower --max-num-batched-tokens"))
    return [warning("vllm.moe.fp4_blockscale", f"CUTLASS FP4 MoE: each MoE layer's forward holds a "
                    f"{blockscale / MIB:.0f} MiB block-scale tensor (VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE {rows} x top-k "
                    "rows, whatever the batch), counted on top of the forward peak", source=src,
                    fix="a lower VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE, at least max_num_batched_tokens, returns memory "
                        "to the KV cache")]


def _sparse_indexer_messages(spec: ModelSpec, opts: VLLMOptions, gpu: GPU, idx: _SparseIndexer | None
                             ) -> list[Message]:
    """What vramcalc says of the sparse indexer's buffers (counted in the activation), or of the variable and the
    factor where the model has no indexer."""
    if idx is None:
        given = [n for n, v in (("VLLM_SPARSE_INDEXER_MAX_LOGITS_MB", opts.sparse_indexer_max_logits_mb),
                                ("VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB", opts.sparse_indexer_max_decode_logits_mb),
                                ("VLLM_USE_FUSED_MQA_TOPK=0", None if opts.use_fused_mqa_topk else 0),
                                ("--attention-config sparse_mla_prefill_workspace_factor",
                                 opts.sparse_mla_prefill_workspace_factor)) if v is not None]
        if not given:
            return []
        factor = " (the FlashMLA sparse backend's workspace the factor also sizes is not modelled)" \
            if opts.sparse_mla_prefill_workspace_factor is not None else ""
        return [warning("vllm.sparse_indexer.absent", f"{' and '.join(given)}: {spec.id} has no DSA sparse-attention "
                        f"indexer, so no indexer buffer is allocated{factor}",
                        source="vllm/model_executor/layers/sparse_attn_indexer.py (v0.33.0, v0.34.0)")]
    if idx.release_034:
        dummy = (f"the profile run's {idx.logits / MIB:.0f} MiB dummy logits tensor ({idx.logits_dtype} logits; the "
                 f"larger of the VLLM_SPARSE_INDEXER_MAX_LOGITS_MB prefill budget's and {idx.decode_rows:,} decode "
                 "rows'" + (", chunked to VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB" if idx.decode_chunked else "")
                 + ")")
        if idx.fused_scratch:
            dummy += (f", or the fused MQA + top-k kernel's {idx.fused_scratch / MIB:.0f} MiB scratch allocated "
                      f"before it where larger (VLLM_USE_FUSED_MQA_TOPK; {idx.sm_count} SMs"
                      + ("" if idx.sm_count_recorded else ", the family's largest: this GPU's count is not recorded, "
                         "an upper bound") + ")")
        sized, src = "vLLM 0.34.0", "vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer (v0.34.0)"
        fix = ("a lower VLLM_SPARSE_INDEXER_MAX_LOGITS_MB or VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB, or "
               "--attention-config '{\"sparse_mla_prefill_workspace_factor\": 2}', returns memory to the KV cache")
    else:
        dummy = (f"the profile run's {idx.logits / MIB:.0f} MiB dummy logits tensor (VLLM_SPARSE_INDEXER_MAX_LOGITS_MB)"
                 + (f" with the {idx.exchange / MIB:.0f} MiB TP row-shard exchange transient" if idx.exchange else ""))
        sized, src = "vLLM 0.33.0", "vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer (v0.33.0)"
        fix = ("a lower VLLM_SPARSE_INDEXER_MAX_LOGITS_MB or --attention-config "
               "'{\"sparse_mla_prefill_workspace_factor\": 2}' returns memory to the KV cache")
    out = [warning("vllm.sparse_indexer.buffers", f"DSA sparse indexer: {idx.workspace / MIB:.0f} MiB of K-gather and "
                   f"top-k workspace ({idx.rows:,} rows: max_model_len x 8 x sparse_mla_prefill_workspace_factor "
                   f"{idx.factor}) and a {idx.index_buffer / MIB:.0f} MiB index buffer are counted as persistent, and "
                   f"{dummy} on top of the forward peak; vLLM's shared workspace grows to the largest request, which "
                   "the FlashMLA sparse and fused-MoE kernels may already exceed, so this is an upper bound (sized as "
                   f"{sized} sizes them)", source=src, fix=fix)]
    if gpu.vendor == "amd":
        out.append(warning("vllm.sparse_indexer.rocm", "ROCm's sparse indexer (vllm/v1/attention/ops/"
                           "rocm_aiter_mla_sparse.py) also reserves a decode-logits workspace of up to max_num_seqs x "
                           "max_model_len fp32 in the profile run, which vramcalc does not size; the CUDA path's "
                           "buffers are counted", source="vllm/v1/attention/ops/rocm_aiter_mla_sparse.py (v0.33.0)"))
    return out


def _startup_gate(gpu: GPU, opts: VLLMOptions, prof: VllmVersion, u: float, total: int, requested: int
                  ) -> Message | None:
    """vLLM 0.33.0 vllm/v1/worker/gpu_worker.py Worker.init_device: free memory at the snapshot must cover
    gpu_memory_utilization x total (from 0.9.1: data/vllm.json versions startup_gate; before 0.11 the snapshot
    precedes NCCL init, snapshot_after_nccl)."""
    if not prof.startup_gate:
        return None
    car = custom_all_reduce(gpu, opts.tp, opts.disable_custom_all_reduce)
    free, used = _startup_free(gpu, opts.tp, opts.pp, prof.snapshot_after_nccl, car)
    if free >= requested:
        return None
    return error("vllm.startup.free_memory", f"Free memory on device cuda:0 ({free / GIB:.2f}/{total / GIB:.2f} GiB) "
                 f"on startup is less than desired GPU memory utilization ({u}, {requested / GIB:.2f} GiB). Decrease "
                 "GPU memory utilization or reduce GPU memory used by other processes. [vllm/v1/worker/gpu_worker.py "
                 f"init_device; free = total - {gpu.reserved_bytes / GIB:.2f} GiB held by other processes - "
                 f"{used:.2f} GiB vLLM holds at the snapshot, data/vllm.json startup_used_gib]",
                 fix="decrease --gpu-memory-utilization", source="vllm/v1/worker/gpu_worker.py init_device")


def _mxfp4_kernel(scheme: QuantScheme, opts: VLLMOptions, gpu: GPU) -> tuple[str | None, list[Message]]:
    """The MXFP4 expert kernel whose padded layout sets the expert bytes (vLLM 0.33.0
    vllm/model_executor/layers/fused_moe/oracle/mxfp4.py _get_priority_backends_for_gpt_oss); None: not MXFP4,
    or a layout vramcalc does not model."""
    if scheme.method != "mxfp4":
        return None, []
    mxfp4: str | None
    if opts.moe_backend:
        mxfp4 = MXFP4_MOE_BACKENDS.get(opts.moe_backend, opts.moe_backend)
        if mxfp4 not in vllm_rules().mxfp4_moe.backends:
            names = list(MXFP4_MOE_BACKENDS)
            raise InputError(f"--moe-backend {opts.moe_backend}: vramcalc models {', '.join(names[:-1])} and "
                             f"{names[-1]} for MXFP4 experts")
    else:
        mxfp4 = mxfp4_moe_backend(gpu.compute_capability)
    if mxfp4 is not None:
        return mxfp4, []
    return None, [warning("vllm.weights.mxfp4_layout", "MXFP4 experts: the kernel layout vLLM uses on this GPU is "
                          "not modelled; the checkpoint's size is used (CUDA kernels pad gpt-oss's experts by 6-8%)")]


def _moe(spec: ModelSpec, opts: VLLMOptions) -> MoEShards | None:
    """The routed experts' split under DP / EP (None: by TP like every other layer)."""
    return moe_shards(opts.tp, opts.data_parallel_size, opts.enable_expert_parallel,
                      opts.num_redundant_experts if opts.enable_eplb else 0) if spec.is_moe else None


def transformers_backend(spec: ModelSpec, opts: VLLMOptions) -> bool:
    """Whether vLLM builds the model with its Transformers backend: --model-impl transformers, or an architecture its
    registry maps to the backend (data/vllm.json transformers_backend_default), under --model-impl auto or vllm alike
    (vLLM v0.34.0 registry.py _ModelRegistry.inspect_model_cls: those mappings are entries of _VLLM_MODELS)."""
    if opts.model_impl in ("transformers", "terratorch"):
        return opts.model_impl == "transformers"
    since = vllm_rules().transformers_backend_default.architectures.get(spec.architecture or "")
    return since is not None and _key(opts.engine_version or vllm_rules().default_version) >= _key(since)


def _from_files(opts: VLLMOptions, file_weight_bytes: int | None, spec: ModelSpec | None = None) -> bool:
    """Whether rank 0's weight bytes are the file headers' exact bytes (one GPU, the checkpoint as it is)."""
    return (file_weight_bytes is not None and opts.tp == 1 and opts.pp == 1 and not opts.quantization
            and (spec is None or _moe(spec, opts) is None))


def _weights_term(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme, wdtype: str | None, mxfp4: str | None,
                  gguf: bool, file_weight_bytes: int | None, rocm: bool = False, native_mx: bool = False,
                  gfx_arch: str = "") -> list[tuple[RankWeights, int]]:
    """Each rank's weights and their bytes in the budget: vLLM's linear layers sharded by TP
    (vllm/model_executor/layers/linear.py), VocabParallelEmbedding, get_pp_indices (vllm/distributed/utils.py),
    as modelled in weights.py; the file headers' bytes where they are exact."""
    q_group, embed = sharding_switches(spec, opts.tp, opts.decode_context_parallel_size, opts.dcp_q_replicate,
                                       opts.replicate_embed, opts.mla_disable, rocm)
    weights = weights_per_rank(spec, opts.tp, opts.pp, scheme, wdtype, mxfp4, _moe(spec, opts), opts.pp_layer_partition,
                               version=opts.engine_version, q_group=q_group, replicate_embed=embed,
                               kv_colwise=transformers_backend(spec, opts))
    if transformers_backend(spec, opts):  # transformers' rotary buffers replace vLLM's cos/sin cache
        hf = transformers_rope_bytes(spec)
        weights = [w.model_copy(update={"bytes": w.bytes - w.rotary_cache_bytes + hf, "rotary_cache_bytes": hf})
                   for w in weights]
    elif opts.video_pruning_rate and spec.vision is not None and 0 < opts.video_pruning_rate < 1:
        # pruning keeps the dropped tokens' positions: M-RoPE's cache 4x for the classes that honour it
        # (vllm/model_executor/models/qwen3_vl.py mrope_positions_factor, v0.33.0)
        rope = rotary_cache_bytes(spec, opts.engine_version, video_pruning=True)
        weights = [w.model_copy(update={"bytes": w.bytes - w.rotary_cache_bytes + rope, "rotary_cache_bytes": rope})
                   for w in weights]
    if gguf and file_weight_bytes:  # each rank's share of the file's tensor bytes
        scale = file_weight_bytes / weights_per_rank(spec, 1, 1, scheme, wdtype)[0].bytes
        weights = [w.model_copy(update={"bytes": int(w.bytes * scale)}) for w in weights]
    out = []
    for w in weights:
        w_bytes = w.bytes
        if file_weight_bytes is not None and _from_files(opts, file_weight_bytes, spec):
            w_bytes = file_weight_bytes + w.rotary_cache_bytes  # exact bytes from the file headers
            if mxfp4:  # plus what the MoE kernel's padded layout adds to the checkpoint's experts
                w_bytes += w.bytes - weights_per_rank(spec, 1, 1, scheme, wdtype)[0].bytes
        convert = pooling_convert(opts)
        if convert:
            w_bytes += _pooling_head_delta(spec, opts, wdtype, w, convert)
        out.append((w, w_bytes))
    if rocm and opts.mxfp8_emulation_dequant and not gguf and not native_mx:  # no native MXFP8 kernel below gfx950
        # (kernels/linear/mxfp8/rocm_native.py RocmDotScaledMxfp8LinearKernel.is_supported: supports_mx)
        extra = mxfp8_dequant_per_rank(spec, opts.tp, opts.pp, scheme, _moe(spec, opts), opts.pp_layer_partition)
        out = [(w, b + extra[i]) for i, (w, b) in enumerate(out)]
    if rocm and opts.rocm_fp8_padding and not gguf:  # the checkpoint's own FP8 weights (an online --quantization
        # fp8 quantizes at load without the padding: online/fp8.py)
        pad = rocm_fp8_padding_per_rank(spec, opts.tp, opts.pp, scheme_from_config(spec.quantization_config, spec),
                                        _moe(spec, opts), opts.pp_layer_partition)
        out = [(w, b + pad[i]) for i, (w, b) in enumerate(out)]
    version = opts.engine_version or vllm_rules().default_version
    if gfx_arch.startswith("gfx11") and not gguf and _key(version) >= _key(vllm_rules().gfx11_row_pad_since.version):
        # RDNA3 / RDNA3.5: unquantized linear weights' rows one cache line wider where they alias
        pad = gfx11_row_pad_per_rank(spec, opts.tp, opts.pp, scheme, wdtype, _moe(spec, opts), opts.pp_layer_partition)
        out = [(w, b + pad[i]) for i, (w, b) in enumerate(out)]
    if gfx_arch == "gfx1151" and not gguf and _key(version) >= _key(vllm_rules().rdna_int4_pad_since.version):
        # Strix Halo: the RDNA hybrid W4A16 kernel's int4 rows one cache line wider where they alias
        pad = rdna_int4_pad_per_rank(spec, opts.tp, opts.pp, scheme, _moe(spec, opts), opts.pp_layer_partition)
        out = [(w, b + pad[i]) for i, (w, b) in enumerate(out)]
    if opts.rdna_w4a16_prefill_dequant and rdna_prefill_copy_applies(gfx_arch, version) and not gguf:
        copy = rdna_prefill_copy_per_rank(spec, opts.tp, opts.pp, scheme, wdtype, gfx_arch.startswith("gfx11"),
                                          _moe(spec, opts), opts.pp_layer_partition)
        out = [(w, b + copy[i]) for i, (w, b) in enumerate(out)]
    return out


def _embed_head_bytes(spec: ModelSpec, opts: VLLMOptions, wdtype: str | None, w: RankWeights) -> int:
    """The embedding and lm_head a rank holds (VocabParallelEmbedding, vocab padded to 64): never offloaded."""
    rows = ceil(ceil(spec.vocab_size / 64) * 64 / opts.tp)
    n = int(w.pp_stage == 0) + int(w.pp_stage == opts.pp - 1 and not (spec.tie_word_embeddings and opts.pp == 1))
    return rows * spec.hidden_size * dtype_bytes(wdtype or spec.dtype) * n


def _tower_lora(spec: ModelSpec, opts: VLLMOptions, s: Any, wdtype: str | None, built: bool, stages: list[int],
                warnings: list[Message]) -> list[int]:
    """--enable-tower-connector-lora: the vision tower's and connector's LoRA slots per rank, on the first PP stage
    (vLLM v0.33.0 vllm/lora/model_manager.py LoRAModelManager._maybe_init_mm; vramcalc/vllm/features.py
    tower_lora_bytes). Skipped where vLLM skips it: no multimodal class, --language-model-only, no tower built."""
    from .features import tower_lora_bytes

    where = "vllm/lora/model_manager.py LoRAModelManager._maybe_init_mm"
    if spec.vision is None:
        warnings.append(warning("vllm.lora.tower_ignored", f"--enable-tower-connector-lora: {spec.id} has no vision "
                                "tower, so the flag changes nothing (vLLM's LoRA manager runs _maybe_init_mm for "
                                "multimodal classes only)", source=where))
        return [0] * len(stages)
    if opts.language_model_only:
        warnings.append(warning("vllm.lora.tower_ignored", "Disabling `enable_tower_connector_lora` because the "
                                "multimodal model is configured to initialize the language model only.",
                                source=where))
        return [0] * len(stages)
    if not built:  # images and videos at 0: the tower is not built (StageMissingLayer), so nothing to wrap
        return [0] * len(stages)
    tp = 1 if opts.mm_encoder_tp_mode == "data" else opts.tp  # the tower whole on each rank (checked as data)
    one = tower_lora_bytes(spec, s, tp, wdtype if opts.lora_dtype == "auto" else opts.lora_dtype)
    if one is None:
        warnings.append(warning("vllm.lora.tower_not_counted", f"--enable-tower-connector-lora: the LoRA slots on "
                                f"{spec.id}'s vision tower ({spec.vision.kind}) and connector are not counted; "
                                "vramcalc reads the per-layer shapes of Qwen3-VL and Qwen3.5 towers only, so the "
                                "weights shown are low by those slots where vLLM's class supports tower LoRA",
                                source=where))
        return [0] * len(stages)
    return [one if stage == 0 else 0 for stage in stages]


def _encoder_fp8_refusal(spec: ModelSpec, gpu: GPU, warnings: list[Message], backend: str | None = None,
                         dtype: str | None = None) -> list[Message]:
    """--mm-encoder-attn-dtype fp8 (vLLM v0.33.0 MMEncoderAttention._init_fp8, data/vllm_features.json multimodal
    encoder_fp8): refused on a GPU where no encoder attention backend runs it, and on one where the backend the
    encoder runs (--mm-encoder-attn-backend, else vLLM's pick: vramcalc/vllm/vit_attn.py default_pick) is not the
    one that runs fp8 there; built even for a skipped tower."""
    from .features import features

    r = features().multimodal.encoder_fp8
    where = "vllm/model_executor/layers/attention/mm_encoder_attention.py MMEncoderAttention._init_fp8"
    assert spec.vision is not None
    if spec.vision.kind not in r.kinds:
        warnings.append(warning("vllm.mm.encoder_fp8_unchecked", f"--mm-encoder-attn-dtype fp8: whether {spec.id}'s "
                                f"vision tower ({spec.vision.kind}) builds vLLM's MMEncoderAttention is not checked; "
                                "where it does, vLLM refuses fp8 unless the encoder runs FlashInfer's cuDNN backend "
                                "(SM 100 or newer) or ROCM_AITER_FA (MI300 / MI350)", source=where))
        return []
    nvidia = gpu.vendor == "nvidia" and _key(gpu.compute_capability or "0.0") < _key(r.nvidia_min_compute_capability)
    amd = gpu.vendor == "amd" and gpu.gfx_arch not in r.amd_gfx
    if nvidia or amd:
        said = (r.backend_refusal.format(backend="the encoder's backend") + " With --mm-encoder-attn-backend "
                + ("FLASHINFER: " + r.flashinfer_refusal if nvidia else "ROCM_AITER_FA: " + r.aiter_refusal))
        return [error("vllm.mm.encoder_fp8", f"ValueError: {said} [{where}]",
                      fix="drop --mm-encoder-attn-dtype fp8 (the encoder's attention in the model dtype)",
                      source=where)]
    from .vit_attn import default_pick

    v = spec.vision
    picked = backend or (default_pick(gpu, v.hidden_size // v.num_heads, dtype)
                         if v.num_heads and dtype in ("float16", "bfloat16", "float32") else None)
    runs_fp8 = "FLASHINFER" if gpu.vendor == "nvidia" else "ROCM_AITER_FA"
    if picked is not None and picked != runs_fp8:  # _init_fp8's else branch, whatever the GPU
        said = r.backend_refusal.format(backend=f"AttentionBackendEnum.{picked}")
        return [error("vllm.mm.encoder_fp8", f"ValueError: {said} [{where}]",
                      fix=f"add --mm-encoder-attn-backend {runs_fp8}, or drop --mm-encoder-attn-dtype fp8",
                      source=where)]
    warnings.append(warning("vllm.mm.encoder_fp8_backend", "--mm-encoder-attn-dtype fp8 starts only with the encoder "
                            "on " + ("FlashInfer's cuDNN backend (--mm-encoder-attn-backend FLASHINFER, cuDNN >= "
                                     "9.17.1)" if gpu.vendor == "nvidia" else "ROCM_AITER_FA with an AITER build that "
                                     "has flash_attn_varlen_fp8_pertensor_func") + ", which vramcalc does not check", source=where))
    return []


def _vit_backend_refusal(spec: ModelSpec, name: str, gpu: GPU, warnings: list[Message]) -> list[Message]:
    """--mm-encoder-attn-backend outside the platform's get_supported_vit_attn_backends: the assertion every
    MMEncoderAttention raises at model build (vLLM v0.34.0, vramcalc/vllm/vit_attn.py), for the towers built of it
    (built even for a skipped tower, as --mm-encoder-attn-dtype's check)."""
    from .features import features
    from .vit_attn import WHERE, refusal

    r = features().multimodal.encoder_attn_backend
    assert spec.vision is not None
    if spec.vision.kind not in r.kinds:
        warnings.append(warning("vllm.mm.encoder_attn_backend_unchecked", f"--mm-encoder-attn-backend {name}: whether "
                                f"{spec.id}'s vision tower ({spec.vision.kind}) builds vLLM's MMEncoderAttention, which "
                                "refuses a backend the platform does not offer, is not checked", source=WHERE))
        return []
    said = refusal(gpu, name)
    if said is None:
        return []
    return [error("vllm.mm.encoder_attn_backend", f"{said} [{WHERE}]", source=WHERE,
                  fix="drop --mm-encoder-attn-backend (vLLM picks one this GPU runs)")]


def _reload_mode_messages(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme, gpu: GPU, version: str
                          ) -> list[Message]:
    """VLLM_RELOAD_MODE=direct (vLLM 0.34.0): the first refusal of VllmConfig._verify_direct_reload_compat
    (vllm/config/vllm.py, in its order) among what vramcalc reads, checked against
    tests/data/vllm_direct_reload_oracle_v0.34.0.json; then the online MoE method of VLLM_FP8_MOE_REQUANT, which
    record_checkpoint_layout refuses while the model loads (model_loader/reload/direct.py _check_supported_modules).
    Memory: the modes differ only where post-load processing replaces a weight (model_executor/utils.py
    replace_parameter -> _in_own_storage(whole_storage=direct_reload_enabled())): direct lets the new tensor use the
    rest of the loaded storage and keeps an emptied weight's checkpoint bytes. An unquantized checkpoint's post-load
    processing empties none and repacks to the same bytes or to a padded tensor that fits neither way (linear.py
    UnquantizedLinearMethod, fused_moe/unquantized_fused_moe_method.py _setup_kernel): no change. A quantized
    checkpoint's repacking is not sized: warned."""
    if opts.reload_mode != "direct":
        return []
    src = "vllm/config/vllm.py VllmConfig._verify_direct_reload_compat (v0.34.0)"
    if not _at_least(version, vllm_rules().fp8_moe_requant.version):  # both variables came with 0.34.0
        return [warning("vllm.reload_mode.ignored", f"VLLM_RELOAD_MODE=direct: vLLM {version} does not read it (from "
                        f"{vllm_rules().fp8_moe_requant.version}): no effect", source="vllm/envs.py (v0.34.0)")]
    from .quant_config import is_online

    spec_cfg = opts.speculative_config or {}
    checks = [
        (opts.offload_backend != "auto" or opts.offload_group_size > 0 or opts.cpu_offload_gb > 0,
         "Direct reload does not support weight offloading.", "drop the offload flags"),
        (opts.quantization == "torchao", "Direct reload does not support torchao quantization.", None),
        # --quantization fp8 on an unquantized checkpoint quantizes at load too (Fp8Config's online config)
        (is_online(opts.quantization, opts.quantization_config is not None, version) or
         (opts.quantization == "fp8" and not spec.quantization_config),
         "Direct reload does not support online quantization.", "a checkpoint quantized ahead of time"),
        (opts.enable_lora, "Direct reload does not support LoRA.", "drop --enable-lora"),
        (spec_cfg.get("draft_lm_head_quantization") is not None,
         "Direct reload does not support draft_lm_head_quantization.", None),
        (opts.weight_transfer_backend == "sharded_rdt", "Direct reload does not support the sharded_rdt "
         "weight-transfer backend. Use VLLM_RELOAD_MODE=layerwise or another backend.", None),
    ]
    for hit, text, fix in checks:
        if hit:
            return [error("vllm.reload_mode.refused", f"ValueError: {text}", source=src,
                          fix=fix or "VLLM_RELOAD_MODE=layerwise (the default)")]
    qc = spec.quantization_config or {}
    if opts.fp8_moe_requant and gpu.vendor == "amd" and spec.is_moe and scheme.method == "fp8_block" and \
            str(qc.get("quant_method", "")).lower() == "fp8":  # Fp8BlockExpertsAsMxfp4FusedMoE: an online MoE method
        return [error("vllm.reload_mode.refused", "RuntimeError: direct reload: online quantization is not supported "
                      "(the first MoE layer's experts: Fp8BlockExpertsAsMxfp4FusedMoE)",
                      source="vllm/model_executor/model_loader/reload/direct.py _check_supported_modules (v0.34.0)",
                      fix="VLLM_RELOAD_MODE=layerwise, or unset VLLM_FP8_MOE_REQUANT")]
    if scheme.method != "none":
        return [warning("vllm.reload_mode.not_sized", f"VLLM_RELOAD_MODE=direct: the {scheme.method} checkpoint's "
                        "post-load processing may keep more of its loaded storage than in layerwise mode (a repacked "
                        "weight may use the rest of its loaded storage, an emptied one keeps its checkpoint bytes: "
                        "vllm/model_executor/utils.py _in_own_storage with whole_storage), which vramcalc does not "
                        "size: the weights may be larger than shown", source="vllm/model_executor/model_loader/reload/"
                        "direct.py, vllm/model_executor/utils.py replace_parameter (v0.34.0)")]
    return []


def _mxfp4_emulation_dequant(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme, gpu: GPU,
                             weights: list[tuple[RankWeights, int]]) -> tuple[list[tuple[RankWeights, int]],
                                                                             list[Message]]:
    """VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1 on a compressed-tensors MXFP4 checkpoint (CompressedTensorsW4A4Mxfp4):
    where init_mxfp4_linear_kernel reaches EmulationMxfp4LinearKernel (vLLM 0.34.0 vllm/model_executor/kernels/
    linear/__init__.py _POSSIBLE_MXFP4_KERNELS), the linear weights are held at bf16. On ROCm below gfx950 it is the
    only kernel for them (Rdna3W4A8MxFp4LinearKernel takes int8 activations only, AiterMxfp4LinearKernel needs
    supports_mx: gfx95x), so where vLLM starts it runs them (it needs amd-quark): counted. On gfx950 AITER's kernel
    comes first where aiter is installed, which a command does not show: warned with the figure, not counted. On
    CUDA FlashInfer / Marlin take them first: only --linear-backend emulation reaches it, counted there."""
    if not opts.mxfp4_emulation_dequant:
        return weights, []
    src = "vllm/model_executor/kernels/linear/mxfp4/emulation.py EmulationMxfp4LinearKernel (v0.34.0)"
    name = "VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1"
    if scheme.method != "ct_mxfp4":
        return weights, [warning("vllm.mxfp4_emulation.ignored", f"{name}: only MXFP4 linear layers on vLLM's "
                                 "emulation kernel read it; this checkpoint has none vramcalc sizes (gpt-oss's MXFP4 "
                                 "leaves the linear layers unquantized, its experts take the MoE kernels): no effect",
                                 source=src)]
    extra = mxfp4_emulation_dequant_per_rank(spec, opts.tp, opts.pp, scheme, _moe(spec, opts),
                                             opts.pp_layer_partition)
    gfx = gpu.gfx_arch or ""
    counted = (gpu.vendor == "amd" and not gfx.startswith(("gfx95", "gfx1250"))) or \
        (gpu.vendor == "nvidia" and opts.linear_backend == "emulation")
    if counted:
        return [(w, b + extra[i]) for i, (w, b) in enumerate(weights)], [warning(
            "vllm.mxfp4_emulation.dequant", f"{name}: the MXFP4 linear layers run on vLLM's emulation kernel here "
            f"(which needs amd-quark) and are dequantized to bf16 at load, 2 bytes a weight instead of 0.5: "
            f"{extra[0] / GIB:.2f} GiB more on GPU 0, as counted", source=src, fix="unset it (dequantized every step "
            "instead: slower, a quarter of the weight memory)")]
    if gpu.vendor == "amd":
        return weights, [warning("vllm.mxfp4_emulation.not_sized", f"{name}: on {gfx} AITER's MXFP4 kernel takes the "
                                 "linear layers where aiter is installed (AiterMxfp4LinearKernel), which the command "
                                 "does not show; on the emulation kernel they would be dequantized to bf16, "
                                 f"{extra[0] / GIB:.2f} GiB more on GPU 0, not counted", source=src)]
    return weights, [warning("vllm.mxfp4_emulation.ignored", f"{name}: on this GPU FlashInfer, Marlin, Humming or "
                             "B12x take the MXFP4 linear layers before the emulation kernel (_POSSIBLE_MXFP4_KERNELS): "
                             "no effect without --linear-backend emulation", source=src)]


def _fp8_moe_requant(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme, gpu: GPU, version: str,
                     weights: list[tuple[RankWeights, int]]) -> tuple[list[tuple[RankWeights, int]], list[Message]]:
    """VLLM_FP8_MOE_REQUANT=mxfp4 (vLLM 0.34.0 quantization/fp8.py Fp8Config.get_quant_method: an `fp8` checkpoint
    with weight_block_size, on ROCm; online/fp8_requant.py Fp8BlockExpertsAsMxfp4FusedMoE): each rank's weights with
    the routed experts in the MXFP4 layout of AITER_MXFP4_MXFP4, the backend select_mxfp4_moe_backend takes for it on
    gfx950 with AITER's MoE on (a8w4 and a4w4 alike: the parent Mxfp4OnlineMoEMethod asks for MXFP4 activations), and
    vLLM's refusals; elsewhere (another backend, whose pick and layout follow the packages installed) the FP8 sizes
    are kept as an upper bound and said so. Checked against tests/data/vllm_fp8_moe_requant_oracle_v0.34.0.json."""
    if not opts.fp8_moe_requant:
        return weights, []
    r = vllm_rules().fp8_moe_requant
    name = "VLLM_FP8_MOE_REQUANT=mxfp4" + (f" VLLM_FP8_MOE_REQUANT_ACT={opts.fp8_moe_requant_act}"
                                           if opts.fp8_moe_requant_act != "a8w4" else "")
    src = "vllm/model_executor/layers/quantization/fp8.py Fp8Config.get_quant_method, online/fp8_requant.py (v0.34.0)"
    qc = spec.quantization_config or {}
    if not _at_least(version, r.version):
        return weights, [warning("vllm.fp8_moe_requant.ignored", f"{name}: vLLM {version} does not read it (from "
                                 f"{r.version}): no effect", source=src)]
    if gpu.vendor != "amd":
        return weights, [warning("vllm.fp8_moe_requant.ignored", f"{name}: read on ROCm only (Fp8Config."
                                 "get_quant_method: current_platform.is_rocm()): on this GPU no effect", source=src)]
    if not spec.is_moe or scheme.method != "fp8_block" or str(qc.get("quant_method", "")).lower() != "fp8":
        return weights, [warning("vllm.fp8_moe_requant.ignored", f"{name}: only the routed experts of a block-FP8 "
                                 "checkpoint (quant_method fp8 with weight_block_size) are re-quantized; this "
                                 "checkpoint has none: no effect", source=src)]
    a16 = opts.fp8_moe_requant_act == "a16w4"
    asked = opts.moe_backend if opts.moe_backend not in (None, "auto") else ("aiter_triton_mxfp4_bf16" if a16 else None)
    gfx, aiter = gpu.gfx_arch or "", opts.rocm_aiter_moe
    backend: str | None = None
    why = ""
    if asked == "aiter_triton_mxfp4_bf16" or (a16 and asked == "aiter"):
        if aiter and gfx in r.triton_gfx:
            backend = "aiter_triton_mxfp4_bf16"
        else:
            why = ("a16w4 asks for moe_backend aiter_triton_mxfp4_bf16, AITER's Triton W4A16 kernel, which needs "
                   "gfx942 / gfx950 and VLLM_ROCM_USE_AITER=1 (experts/aiter_mxfp4_w4a16_moe.py): vLLM refuses the "
                   "requested backend here")
    elif asked not in (None, "aiter", "aiter_mxfp4_mxfp4"):
        why = f"--moe-backend {asked} is asked for (its layout is not sized)"
    elif aiter and gfx in r.native_gfx:
        backend = "aiter_mxfp4_mxfp4"
    elif aiter and gfx in r.triton_gfx:
        backend = "emulation"  # or AITER_TRITON_MXFP4_BF16 without amd-quark: the same bytes
    else:
        why = ("AITER's MXFP4 MoE kernels need VLLM_ROCM_USE_AITER=1 (on gfx950 for the CK kernel, gfx942 / gfx950 for "
               "the Triton one: rocm_aiter_moe.py, aiter_mxfp4_w4a16_moe.py); here vLLM takes the emulation backend "
               "where amd-quark is installed, else the OAI Triton kernels where triton_kernels is, else refuses "
               "('No MXFP4 MoE backend supports the deployment configuration'), which the command does not show")
    delta, peak, refused = fp8_moe_requant_per_rank(spec, opts.tp, opts.pp, scheme, _moe(spec, opts),
                                                    opts.pp_layer_partition, backend or "emulation")
    if backend and refused:
        return weights, [error("vllm.fp8_moe_requant.refused", "ValueError: FP8 -> MXFP4 re-quant does not pad expert "
                               "dims (the FP8 loader writes the unpadded checkpoint shapes): got "
                               f"{refused[0]}x{refused[1]}", source="vllm/model_executor/layers/quantization/online/"
                               "fp8_requant.py Fp8BlockExpertsAsMxfp4FusedMoE.create_weights; fused_moe/oracle/mxfp4.py "
                               "mxfp4_round_up_hidden_size_and_intermediate_size (v0.34.0)",
                               fix="unset VLLM_FP8_MOE_REQUANT, or a TP size whose expert shards are aligned")]
    if backend is None:
        return weights, [warning("vllm.fp8_moe_requant.not_sized", f"{name}: the routed experts are re-quantized to "
                                 f"MXFP4 at load, but {why}: their FP8 bytes are counted, an upper bound (MXFP4 takes "
                                 "about half; the load peak, the MXFP4 model plus one layer's FP8 experts, stays "
                                 "below the FP8 model)", source=src + "; fused_moe/oracle/mxfp4.py "
                                 "select_mxfp4_moe_backend")]
    if backend == "emulation":
        tri = fp8_moe_requant_per_rank(spec, opts.tp, opts.pp, scheme, _moe(spec, opts), opts.pp_layer_partition,
                                       "aiter_triton_mxfp4_bf16")[2]
        if tri:
            why = (f"; without amd-quark (no emulation backend) AITER's Triton W4A16 backend takes them and vLLM "
                   f"refuses: 'ValueError: FP8 -> MXFP4 re-quant does not pad expert dims (the FP8 loader writes the "
                   f"unpadded checkpoint shapes): got {tri[0]}x{tri[1]}'")
    out = [(w, b + delta[i]) for i, (w, b) in enumerate(weights)]
    layout = {"aiter_mxfp4_mxfp4": "AITER_MXFP4_MXFP4 (AITER's CK MXFP4 MoE)",
              "aiter_triton_mxfp4_bf16": "AITER_TRITON_MXFP4_BF16 (AITER's Triton W4A16 MoE)",
              "emulation": "emulation (where amd-quark is installed, else AITER_TRITON_MXFP4_BF16: the same bytes)"}
    msgs = [warning("vllm.fp8_moe_requant.sized", f"{name}: the routed experts held as MXFP4 by the {layout[backend]} "
                    f"backend (e2m1 values, e8m0 scales per 32), {-delta[0] / GIB:.2f} GiB less on GPU 0 than their FP8 "
                    f"bytes, as counted; while loading, each MoE layer's FP8 experts ({peak[0] / MIB:.0f} MiB on GPU "
                    "0) are held until that layer is re-quantized" + why, source=src)]
    car = custom_all_reduce(gpu, opts.tp, opts.disable_custom_all_reduce)
    free = _startup_free(gpu, opts.tp, opts.pp, True, car)[0]
    load = max(b + peak[i] for i, (_, b) in enumerate(out))
    if load > free:
        msgs.append(error("vllm.fp8_moe_requant.load_oom", "torch.OutOfMemoryError: HIP out of memory while loading: "
                          f"the MXFP4 model plus one MoE layer's FP8 experts take {load / GIB:.2f} GiB on a GPU, "
                          f"{free / GIB:.2f} GiB free at start-up", source=src, fix="a larger TP size"))
    return out, msgs


def _feature_terms(spec: ModelSpec, opts: VLLMOptions, version: str, scheme: QuantScheme, wdtype: str | None,
                   mxfp4: str | None, weights: list[tuple[RankWeights, int]]
                   ) -> tuple[list[tuple[int, int, int, int]], list[Message], list[Message]]:
    """Per rank (LoRA slot bytes added, vision-tower bytes not loaded (negative: more loaded, --mm-encoder-tp-mode
    data), weight bytes moved to the host, the prefetch offloader's GPU buffers), refusals and warnings of the optional
    features (vramcalc/vllm/features.py; data/vllm_features.json names each rule's source). The vision tower's
    bytes leave the weights with --language-model-only (vllm/config/multimodal.py)."""
    from .features import features, lora_bytes, lora_refusals, lora_settings, offloaded_bytes

    errors: list[Message] = []
    warnings: list[Message] = []
    vision = [0] * len(weights)
    # --limit-mm-per-prompt with every modality of the vision tower at 0: the tower is not built either (vLLM
    # v0.33.0 SupportsMultiModal._mark_tower_model makes it a StageMissingLayer, --enable-mm-embeds or not;
    # data/vllm.json zero_limits_skip_tower_since: the modalities per class, the release checked)
    zero, rule = opts.limit_mm_per_prompt or {}, vllm_rules().zero_limits_skip_tower_since
    marked = rule.tower_modalities.get(spec.architecture or "") if _key(version) >= _key(rule.version) else None
    tower_off = opts.language_model_only or bool(marked and all(zero.get(m) == 0 for m in marked))
    rate = opts.video_pruning_rate
    if rate is not None and spec.vision is not None and not 0 <= rate < 1:  # MultiModalConfig's Field(ge=0, lt=1)
        bound, kind = ("less than 1", "less_than") if rate >= 1 else ("greater than or equal to 0", "greater_than_equal")
        errors.append(error("vllm.mm.video_pruning_rate", "1 validation error for MultiModalConfig video_pruning_rate: "
                            f"Input should be {bound} [type={kind}, input_value={rate!r}, input_type=float]",
                            fix="--video-pruning-rate in [0, 1): the fraction of each video's tokens pruned",
                            source="vllm/config/multimodal.py MultiModalConfig.video_pruning_rate"))
    if tower_off and spec.vision is not None:
        text = weights_per_rank(spec.model_copy(update={"vision": None}), opts.tp, opts.pp, scheme, wdtype, mxfp4,
                                partition=opts.pp_layer_partition)
        full = weights_per_rank(spec, opts.tp, opts.pp, scheme, wdtype, mxfp4, partition=opts.pp_layer_partition)
        vision = [f.bytes - t.bytes for f, t in zip(full, text)]
    elif opts.mm_encoder_tp_mode == "data" and spec.vision is not None and opts.tp > 1:
        # the tower built without TP on each rank: its sharded bytes replaced by the whole (a negative "not loaded")
        no_tower = spec.model_copy(update={"vision": None})
        full = weights_per_rank(spec, opts.tp, opts.pp, scheme, wdtype, mxfp4, partition=opts.pp_layer_partition)
        text = weights_per_rank(no_tower, opts.tp, opts.pp, scheme, wdtype, mxfp4, partition=opts.pp_layer_partition)
        full1 = weights_per_rank(spec, 1, opts.pp, scheme, wdtype, mxfp4, partition=opts.pp_layer_partition)
        text1 = weights_per_rank(no_tower, 1, opts.pp, scheme, wdtype, mxfp4, partition=opts.pp_layer_partition)
        whole = [f.bytes - t.bytes for f, t in zip(full1, text1)]  # one entry per PP stage
        vision = [(f.bytes - t.bytes) - whole[w.pp_stage] for f, t, (w, _) in zip(full, text, weights)]
        warnings.append(warning("vllm.mm.encoder_tp_data", f"--mm-encoder-tp-mode data: each of the {opts.tp} TP "
                                f"ranks holds the whole vision tower ({max(whole) / GIB:.2f} GiB); vLLM falls back "
                                "to weights (the tower sharded) for models whose encoder does not support data "
                                "parallelism (vllm/config/model.py ModelConfig; supports_encoder_tp_data), which "
                                "then need less than this"))
    # a modality not named keeps vLLM's default limit (vllm/config/multimodal.py), so the encoder is skipped only
    # when images and videos (and anything else named) are all at 0
    limits = opts.limit_mm_per_prompt
    mm_on = spec.vision is not None and not tower_off and not (
        limits is not None and {"image", "video"} <= set(limits) and all(v == 0 for v in limits.values()))
    if mm_on and opts.mm_processor_kwargs:
        _mm_processor_kwargs_messages(spec, opts, errors, warnings)
    if mm_on:
        o = features().multimodal.oracle_pr_25631
        warnings.append(warning("vllm.mm.encoder_profile", f"{spec.id} is multimodal: vLLM's profile run also "
                                "encodes the largest dummy image or video allowed by --limit-mm-per-prompt (at the "
                                "processor's size limits, --mm-processor-kwargs) and holds its embeddings in the encoder "
                                "cache; that peak is not modelled, so the KV cache shown is an upper bound and may be "
                                f"several GiB smaller (vLLM PR #25631: {o['model']} on an A100-40GB, "
                                f"{o['kv_gib_image_and_video']} GiB of KV with images and videos profiled against "
                                f"{o['kv_gib_video_off']} GiB with video at 0)",
                                fix="--limit-mm-per-prompt '{\"video\": 0}' for modalities you do not serve, or "
                                    "--language-model-only for text only",
                                source="vllm/v1/worker/gpu_model_runner.py profile_run"))
    lora = [0] * len(weights)
    if opts.enable_lora:
        s = lora_settings(version, opts.max_loras, opts.max_lora_rank, opts.fully_sharded_loras,
                          opts.lora_extra_vocab_size, opts.enable_moe_shared_loras, opts.enable_mixed_moe_lora_format)
        errors += lora_refusals(spec, s, opts.max_cpu_loras, version, opts.lora_extra_vocab_size is not None)
        split = pp_layer_split(spec.num_layers, opts.pp, opts.pp_layer_partition)
        starts = [sum(split[:i]) for i in range(opts.pp)]
        shards = _moe(spec, opts)
        if shards is not None and shards.ep > 1:  # vllm/lora/layers/fused_moe.py FusedMoEWithLoRA, v0.33.0
            where = "vllm/lora/layers/fused_moe.py"
            if opts.fully_sharded_loras:  # _verify_ep_fs
                errors.append(error("vllm.lora.ep_fully_sharded", "AssertionError: Fused MoE LoRA does not support "
                                    "enable_expert_parallel=True together with fully_sharded_loras=True. Disable one "
                                    f"of them. [{where} FusedMoEWithLoRA._verify_ep_fs]",
                                    fix="drop --fully-sharded-loras", source=where))
            from . import all2all

            backend = all2all.backend(opts)  # as ParallelConfig resolves it (removed backends fall back, aliases)
            if backend != "allgather_reducescatter":  # _ep_check
                errors.append(error("vllm.lora.ep_all2all", "AssertionError: Fused MoE LoRA with EP currently only "
                                    f"supports all2all_backend='allgather_reducescatter', got '{backend}'. "
                                    f"[{where} FusedMoEWithLoRA._ep_check]",
                                    fix="--all2all-backend allgather_reducescatter", source=where))
        lora = [lora_bytes(spec, s, opts.tp, starts[w.pp_stage], starts[w.pp_stage] + split[w.pp_stage],
                           w.pp_stage == 0, w.pp_stage == opts.pp - 1,
                           wdtype if opts.lora_dtype == "auto" else opts.lora_dtype, shards) for w, _ in weights]
        if opts.enable_tower_connector_lora:
            lora = [x + t for x, t in zip(lora, _tower_lora(spec, opts, s, wdtype, not tower_off,
                                                            [w.pp_stage for w, _ in weights], warnings))]
        odd = [k for k, present in (("MoE experts", spec.is_moe),
                                    ("MLA attention", any(x.attention is not None and x.attention.latent_cache
                                                          for x in spec.layers)),
                                    ("recurrent (SSM) mixers", any(x.ssm is not None for x in spec.layers))) if present]
        if odd:
            warnings.append(warning("vllm.lora.unchecked_layers", f"LoRA slots for {', '.join(odd)} follow vLLM's "
                                    "LoRA layer classes (vllm/lora/layers/fused_moe.py and the linear wrappers) but no "
                                    "start-up log checks them yet"))
        if not opts.enforce_eager:
            from .features import lora_graph_cases

            n = lora_graph_cases(opts.max_loras, opts.specialize_active_lora)
            times = "twice" if n == 2 else f"{n} times (no adapter, and each active-adapter count captured)"
            warnings.append(warning("vllm.lora.cuda_graphs", "with LoRA vLLM captures its CUDA graphs for the LoRA "
                                    "batch shapes too (compilation_config cudagraph_specialize_lora): the dense graph "
                                    f"estimate counts each capture size {times}, which no LoRA start-up log checks "
                                    "yet", fix="--enforce-eager removes the graphs"))
    offload = [0] * len(weights)
    buffers = [0] * len(weights)
    errors += _offload_config_refusals(opts)
    warnings += _offload_config_warnings(opts)
    if opts.offloader == "prefetch" and not errors:
        offload, buffers = _prefetch_terms(spec, opts, scheme, wdtype, mxfp4, [w for w, _ in weights])
    elif opts.uva_offload_gb and opts.cpu_offload_params:
        # UVAOffloader._maybe_offload_to_cpu takes only parameters whose name has a segment named here: `experts`
        # is every routed-expert tensor of the FusedMoE layers (w13 / w2, their scales and biases; not
        # shared_experts), which vramcalc holds per rank (RankWeights.expert_layer_bytes x moe_layers)
        other = sorted(set(opts.cpu_offload_params) - {"experts"})
        if other:
            raise NotModelledError(f"--cpu-offload-params {' '.join(other)}: not modelled (vramcalc sizes the "
                                   "`experts` segment, the routed experts; vllm/config/offload.py cpu_offload_params)")
        offload = [offloaded_bytes(opts.cpu_offload_gb, w.expert_layer_bytes * w.moe_layers, 0) for w, _ in weights]
    elif opts.uva_offload_gb:
        offload = [offloaded_bytes(opts.cpu_offload_gb, b - v, _embed_head_bytes(spec, opts, wdtype, w))
                   for (w, b), v in zip(weights, vision)]
    return list(zip(lora, vision, offload, buffers)), errors, warnings


def _conf_compute_on(opts: VLLMOptions, gpu: GPU, version: str) -> bool:
    """VLLM_CONFIDENTIAL_COMPUTE=1 as vLLM reads it: from 0.34.0 (data/vllm.json confidential_compute.since), on
    CUDA only (vllm/platforms/cuda.py CudaPlatformBase.is_confidential_compute; the interface answers False)."""
    return opts.confidential_compute and gpu.vendor == "nvidia" and \
        _key(version) >= _key(vllm_rules().confidential_compute.since)


def _no_uva_cause(opts: VLLMOptions) -> str:
    return "VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1" if opts.weight_offloading_disable_uva else \
        "VLLM_CONFIDENTIAL_COMPUTE=1 (no UVA)"


def _conf_compute_pools(opts: VLLMOptions, rows: int, staged: int, backed: int, pooling: bool) -> int:
    """The device copies of a runner state's UVA pool slots without UVA (vllm/v1/worker/gpu/buffer_utils.py
    NonUvaBuffer): c slots each, c = max(2, max_concurrent_batches); a StagedWriteTensor's three row pools and
    one-entry contents pool, a UvaBackedTensor's rows (data/vllm.json confidential_compute)."""
    cc = vllm_rules().confidential_compute
    batches = opts.pp + 1 if not pooling else opts.pp  # vllm/config/vllm.py max_concurrent_batches
    c = max(cc.min_concurrency, batches)
    return (staged * c * (cc.staged_row_pools * rows + cc.staged_contents_initial) + backed * c * rows) \
        * cc.element_bytes


def _conf_compute_bytes(spec: ModelSpec, opts: VLLMOptions, seqs: int, L: int, pooling: bool) -> int:
    """Per rank: what VLLM_CONFIDENTIAL_COMPUTE=1 adds to the GPU model runner's device tensors, persistent and built
    before the profile (data/vllm.json confidential_compute): RequestState's all_token_ids (seqs x L int32, unless
    the speculator keeps it dense on the GPU anyway), M-RoPE's prefill_positions (seqs x channels x L int32), and
    the device copy of every UVA pool slot of those two states and of the Sampler's (_conf_compute_pools; the
    sampler's on every PP stage, vLLM's on the last). Checked against vLLM 0.34.0's own RequestState, RopeState and
    Sampler (tests/data/vllm_conf_compute_oracle_v0.34.0.json)."""
    cc = vllm_rules().confidential_compute
    e = cc.element_bytes
    method = (opts.speculative_config or {}).get("method")
    dense = method in cc.dense_token_history_methods
    out = (0 if dense else seqs * L * e) + _conf_compute_pools(opts, seqs, cc.request_staged_tensors,
                                                               cc.request_uva_backed_tensors, pooling)
    if not pooling:  # the Sampler's states (data/vllm.json confidential_compute sampler_source; last PP rank in vLLM)
        out += _conf_compute_pools(opts, seqs, cc.sampler_staged_tensors, 0, pooling) \
            + _conf_compute_pools(opts, seqs, 0, 1, pooling) * cc.sampler_backed_row_bytes // e
    section = (spec.rope_scaling or {}).get("mrope_section")
    if isinstance(section, (list, tuple)):  # vllm/transformers_utils/config.py mrope_num_dims
        dims = max(len(section), 3)
        out += seqs * dims * L * e + _conf_compute_pools(opts, seqs * dims, cc.rope_staged_tensors, 0, pooling) \
            + _conf_compute_pools(opts, seqs, 0, cc.rope_uva_backed_tensors, pooling)
    return out


def _conf_compute_trace_replay_bytes(opts: VLLMOptions, seqs: int, L: int, pooling: bool) -> int:
    """What --enable-trace-replay's TraceReplayState would add without UVA (data/vllm.json confidential_compute
    trace_replay_source): its seqs x L int32 trace table and its pools. vramcalc does not read --enable-trace-replay,
    so this is named in the warning, not counted."""
    cc = vllm_rules().confidential_compute
    return seqs * L * cc.element_bytes + _conf_compute_pools(opts, seqs, cc.trace_replay_staged_tensors,
                                                             cc.trace_replay_uva_backed_tensors, pooling)


def _conf_compute_warning(spec: ModelSpec, added: int, replay: int) -> Message:
    """What VLLM_CONFIDENTIAL_COMPUTE=1 adds, and what of it vramcalc does not size."""
    mrope = "" if spec.vision is None or "mrope_section" in (spec.rope_scaling or {}) else (
        " M-RoPE's prefill positions are counted where the config's rope parameters name an mrope_section, which "
        "this model's config as read does not: if vLLM builds M-RoPE for it, max_num_seqs x 3 x max_model_len x 4 "
        "bytes more.")
    return warning(
        "vllm.conf_compute.buffers", f"VLLM_CONFIDENTIAL_COMPUTE=1: vLLM takes UVA as unavailable, so the model "
        f"runner's request state (all_token_ids, max_num_seqs x max_model_len int32), M-RoPE's prefill positions and "
        f"the UVA buffer pools of those states and of the sampler's get device copies: {added / MIB:.1f} MiB per GPU, "
        "persistent, counted before the KV cache. Not sized: a reasoning config's thinking-budget pool and the block "
        "tables' pools (built with the KV cache, after the profile, GPUModelRunner.initialize_kv_cache; c x "
        "max_num_seqs-sized slots, KiB each), the pools' growth when one "
        "step stages more entries than a slot holds (the next power of two, on the GPU too), and the staging tensors "
        "of non-blocking host-to-device copies into existing tensors (up to 32 MiB each, freed after the copy). With "
        f"--enable-trace-replay (not read by vramcalc) the sampler's trace table and its pools add {replay / MIB:.1f} "
        "MiB more (max_num_seqs x max_model_len int32, vllm/v1/worker/gpu/sample/trace_replay.py), not counted."
        + mrope, source="vllm/v1/worker/gpu/buffer_utils.py NonUvaBuffer, UvaBufferPool; vllm/v1/conf_compute_utils.py "
               "_MAX_STAGED_BYTES (v0.34.0)")


def _uva_copy_warning(opts: VLLMOptions, copy: int) -> Message:
    """What VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 adds, and what of it vramcalc leaves out."""
    graphs = "" if opts.enforce_eager else (" The copies a captured CUDA graph makes of them are not in vramcalc's "
                                            "CUDA-graph estimate (--enforce-eager leaves none).")
    return warning("vllm.cpu_offload.no_uva", f"{_no_uva_cause(opts)}: the offloaded weights stay in "
                   "host memory as plain tensors and each decoder layer holding any copies them to the GPU for its "
                   f"forward: up to {copy / GIB:.2f} GiB (the largest layer's share, rank 0) more at the activation "
                   "peak, counted there, and explicit copies each step in place of zero-copy reads." + graphs,
                   source="vllm/model_executor/offloader/uva.py UVAOffloader._maybe_offload_to_cpu (0.33.0)")


def _offload_config_refusals(opts: VLLMOptions) -> list[Message]:
    """OffloadConfig.validate_offload_config's ValueErrors, in its words (vllm/config/offload.py, 0.33.0; the
    config is refused before anything loads)."""
    from .features import features

    pf = features().prefetch_offload
    src = "vllm/config/offload.py OffloadConfig.validate_offload_config (0.33.0)"
    if not (opts.offload_backend == "prefetch" or opts.offload_group_size > 0):
        return []
    out = []
    if opts.offload_num_in_group > opts.offload_group_size:
        out.append(error("vllm.offload.refused", "ValueError: " + pf.refusals["num_in_group"].format(
            num_in_group=opts.offload_num_in_group, group_size=opts.offload_group_size) + f" [{src}]",
            fix=f"--offload-group-size {max(opts.offload_num_in_group, 1)}" if opts.offload_group_size else
            "--offload-group-size N (the layers of each group; the last --offload-num-in-group are offloaded)",
            source=src))
    if opts.offload_prefetch_step < 1:
        out.append(error("vllm.offload.refused", "ValueError: " + pf.refusals["prefetch_step"].format(
            prefetch_step=opts.offload_prefetch_step) + f" [{src}]", fix="--offload-prefetch-step 1", source=src))
    return out


def _offload_config_warnings(opts: VLLMOptions) -> list[Message]:
    """The warning OffloadConfig gives when both offloaders' fields are set: the one it drops (vllm/config/offload.py)."""
    from .features import features

    pf = features().prefetch_offload
    uva, prefetch = opts.cpu_offload_gb > 0, opts.offload_group_size > 0
    key = ("uva_ignores_prefetch" if opts.offload_backend == "uva" and prefetch else
           "prefetch_ignores_uva" if opts.offload_backend == "prefetch" and uva else
           "auto_takes_prefetch" if opts.offload_backend == "auto" and uva and prefetch else None)
    if key is None:
        return []
    return [warning("vllm.offload.ignored", pf.warnings[key], source="vllm/config/offload.py OffloadConfig (0.33.0)")]


def _prefetch_terms(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme, wdtype: str | None, mxfp4: str | None,
                    ranks: list[RankWeights]) -> tuple[list[int], list[int]]:
    """Per rank: the bytes the prefetch offloader moves to pinned host memory and its GPU buffer pool (vramcalc/vllm/
    offload.py prefetch_plan on the rank's PP stage, numbered from 0 as make_layers hands them to wrap_modules)."""
    from .offload import prefetch_plan
    from .weights import layer_tensors

    other = sorted(set(opts.offload_params) - {"experts"})
    if other:
        raise NotModelledError(f"--offload-params {' '.join(other)}: not modelled (vramcalc sizes the `experts` "
                               "segment, the routed experts; vllm/config/offload.py PrefetchOffloadConfig.offload_params)")
    tensors = layer_tensors(spec, opts.tp, scheme, wdtype, mxfp4, _moe(spec, opts), transformers_backend(spec, opts))
    split = pp_layer_split(spec.num_layers, opts.pp, opts.pp_layer_partition)
    plans = {}
    for st in range(opts.pp):
        start = sum(split[:st])
        plans[st] = prefetch_plan(tensors, start, start + split[st], opts.offload_group_size,
                                  opts.offload_num_in_group, opts.offload_prefetch_step, opts.offload_params)
    return [plans[w.pp_stage].offloaded_bytes for w in ranks], [plans[w.pp_stage].buffer_bytes for w in ranks]


def _uva_layer_copies(spec: ModelSpec, opts: VLLMOptions, scheme: QuantScheme, wdtype: str | None, mxfp4: str | None,
                      ranks: list[RankWeights], conf_compute: bool = False) -> list[int]:
    """Per rank: VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 with the UVA offloader, the largest decoder layer's offloaded
    bytes, which its forward copies to the GPU (vramcalc/vllm/offload.py uva_largest_layer_copy on the rank's PP
    stage; the request in bytes as create_offloader sets it: int(cpu_offload_gb x 1024^3), vLLM 0.33.0
    vllm/model_executor/offloader/base.py). conf_compute: VLLM_CONFIDENTIAL_COMPUTE=1 as read, which does the same
    (v0.34.0 vllm/model_executor/offloader/uva.py UVAOffloader.__init__: uva_offloading = is_uva_available() and not
    VLLM_WEIGHT_OFFLOADING_DISABLE_UVA)."""
    if not ((opts.weight_offloading_disable_uva or conf_compute) and opts.uva_offload_gb):
        return [0] * len(ranks)
    if spec.vision is not None and not opts.language_model_only:
        # SupportsMultiModal._mark_tower_model hands each tower to wrap_modules as one module (interfaces.py)
        raise NotModelledError(f"{_no_uva_cause(opts)} with --cpu-offload-gb on a multimodal model: "
                               "not modelled (vLLM's UVA offloader also takes the vision tower, whole, as one module: "
                               "vllm/model_executor/models/interfaces.py)")
    from .offload import uva_largest_layer_copy
    from .weights import layer_tensors

    tensors = layer_tensors(spec, opts.tp, scheme, wdtype, mxfp4, _moe(spec, opts), transformers_backend(spec, opts))
    split = pp_layer_split(spec.num_layers, opts.pp, opts.pp_layer_partition)
    most = int(opts.uva_offload_gb * GIB)
    return [uva_largest_layer_copy(tensors, sum(split[:w.pp_stage]), sum(split[:w.pp_stage + 1]), most,
                                   opts.cpu_offload_params) for w in ranks]


def ubatch_messages(opts: VLLMOptions, gpu: GPU) -> list[Message]:
    """--enable-dbo / --ubatch-size: vLLM's refusal of an all-to-all backend that does not micro-batch, in its words;
    with one that does, what micro-batching adds is named as not sized."""
    from .features import features

    if not (opts.enable_dbo or opts.ubatch_size > 1):  # ParallelConfig.use_ubatching
        return []
    u = features().ubatch
    flag = "--enable-dbo" if opts.enable_dbo else f"--ubatch-size {opts.ubatch_size}"
    ok = u.backends["rocm" if gpu.vendor == "amd" else "cuda"]
    from . import all2all

    backend = all2all.backend(opts)
    src = "vllm/config/vllm.py VllmConfig.__post_init__ (0.33.0)"
    if backend not in ok:
        text = u.refusal.format(backends=", ".join(ok), backend=backend,
                                fixes=", ".join(f"--all2all-backend={b}" for b in ok))
        return [error("vllm.ubatch.refused", f"AssertionError: {text} [{src}]", fix=f"drop {flag}", source=src)]
    return [warning("vllm.ubatch.unsized", f"{flag}: {2 if opts.enable_dbo else opts.ubatch_size} micro-batches a "
                    "step; their CUDA graphs and per-micro-batch buffers are not sized", source=src)]


def load_format_messages(value: str) -> list[Message]:
    """--load-format: a format whose loader builds the model as the default one changes no resident byte; the
    load-time staging of the GPU-direct readers and the loaders with their own path are named as not sized; a
    format the release does not register is refused as vLLM refuses it when it loads the model."""
    from .features import features

    lf = features().load_format
    src = "vllm/model_executor/model_loader/__init__.py get_model_loader (0.33.0)"
    if value in lf.staging:
        return [warning("vllm.load_format.unsized", f"--load-format {value}: the weights on the GPU are those the "
                        "default loader holds; the buffers it reads the files into on the GPU while loading (its "
                        "package's) are not sized, so a start-up that fits with little room to spare may still run out "
                        "of memory while loading", fix="--load-format auto", source="vllm/model_executor/model_loader/"
                        "weight_utils.py (0.33.0)")]
    if value in lf.own_path:
        return [warning("vllm.load_format.unsized", f"--load-format {value}: this loader builds or maps the weights "
                        "its own way; vramcalc sizes them as the default loader holds them, which it does not check",
                        fix="--load-format auto", source=src)]
    if value in lf.same_model:
        return []
    return [error("vllm.load_format.unsupported", f"ValueError: {lf.refusal.format(value=value)} [{src}; raised when "
                  "the model is loaded, unless a plugin registers the format]",
                  fix="--load-format auto (bitsandbytes / GGUF checkpoints: the format follows --quantization or the "
                      "file, with the plugin installed)", source=src)]


def _aux_output_terms(spec: ModelSpec, gpu: GPU, opts: VLLMOptions, prof: VllmVersion, car: bool, total: int,
                      requested: int, freed: int, cap: KVCapacity, pool: KVPool, kvs: KVSettings, mnbt: int,
                      seqs: int) -> tuple[list[Message], list[TraceTerm]]:
    """--enable-return-routed-experts: the capturer's device buffer, allocated with the KV cache's connectors after
    the KV cache (vllm/v1/worker/gpu/model_runner.py initialize_kv_cache), from what the budget leaves, as the
    graphs before 0.20 (_graph_headroom_refusal); its host store and buffer (vramcalc/vllm/aux_output.py)."""
    from .aux_output import device_bytes, host_bytes

    src = "vllm/model_executor/layers/fused_moe/routed_experts_capturer.py RoutedExpertsCapturer (0.33.0)"
    dev = device_bytes(spec, mnbt)
    max_bytes = (opts.aux_output_config or {}).get("max_bytes")
    host = host_bytes(spec, num_blocks=cap.num_blocks, block_size=pool.block_size, max_num_batched_tokens=mnbt,
                      max_num_seqs=seqs, batches=2 if kvs.async_scheduling and opts.pp == 1 else 1,
                      max_bytes=max_bytes)
    out: list[Message] = []
    if max_bytes is not None and max_bytes < host.object:
        out.append(error("vllm.aux_output.refused", "ValueError: auxiliary output store must fit at least one object "
                         f"[vllm/distributed/aux_output_connector/store.py BlockObjectStore: max_bytes {max_bytes} < "
                         f"{host.object} bytes a block]", fix=f'--aux-output-config \'{{"max_bytes": {host.object}}}\'',
                         source="vllm/distributed/aux_output_connector/store.py BlockObjectStore"))
    # one block size and no Mamba group: the hash block is the KV block (kv_cache_utils.py resolve_kv_cache_block_sizes)
    uniform = len({g.block_size for g in pool.groups}) == 1 and all(g.kind != "mamba" for g in pool.groups)
    outside = _startup_free(gpu, opts.tp, opts.pp, prof.snapshot_after_nccl, car)[0]
    free = outside - requested + freed
    if opts.kv_cache_memory_bytes is None and free < dev:
        out.append(error("vllm.aux_output.oom", f"torch.OutOfMemoryError: CUDA out of memory: the routed-experts "
                         f"buffer ({dev / MIB:.1f} MiB) is allocated after the KV cache, and the budget leaves "
                         f"{max(free, 0) / MIB:.1f} MiB of the GPU [{src}]", source=src,
                         fix="a lower --gpu-memory-utilization or --max-num-batched-tokens"))
    host_text = (f"{host.store / MIB:.1f} MiB store + {host.buffer / MIB:.1f} MiB buffer" if uniform else
                 "a store sized from the KV cache's blocks (not sized for several KV cache groups)")
    out.append(warning("vllm.aux_output.buffers", f"--enable-return-routed-experts: {dev / MIB:.1f} MiB of device "
                       "memory per GPU outside the gpu_memory_utilization budget (int32 x max_num_batched_tokens x "
                       f"layers x experts per token), and host memory on the first GPU of each engine: {host_text}",
                       source="vLLM v0.33.0 vllm/distributed/aux_output_connector/worker.py AuxOutputWorkerConnector"))
    terms = [term("routed experts buffer (each rank)", dev, "int32 x max_num_batched_tokens x layers x experts per "
                  "token, allocated after the KV cache (outside the budget)", source=src, max_num_batched_tokens=mnbt)]
    return out, terms


def _kv_bytes_oom(asked: int, room: int) -> Message:
    return error("vllm.kv_bytes.oom", f"vramcalc: --kv-cache-memory-bytes {asked} ({asked / GIB:.2f} GiB) is more than "
                 f"the {max(0, room) / GIB:.2f} GiB left on the GPU after weights, activations, non-torch and CUDA-graph "
                 "memory: vLLM takes the size as given (vllm/v1/worker/gpu_worker.py determine_available_memory, which "
                 "then skips the gpu_memory_utilization budget) and the cache allocation runs out of memory",
                 fix=f"--kv-cache-memory-bytes {max(0, room) // MIB * MIB}")


def _kv_blocks_oom(blocks: int, asked: int, room: int) -> Message:
    return error("vllm.kv_blocks.oom", f"vramcalc: --num-gpu-blocks-override {blocks} is {asked / GIB:.2f} GiB of KV "
                 f"cache, more than the {max(0, room) / GIB:.2f} GiB left on the GPU after weights, activations, "
                 "non-torch and CUDA-graph memory: vLLM allocates the blocks as given (vllm/v1/core/kv_cache_planning.py "
                 "get_kv_cache_configs, may_override_num_blocks) and the cache allocation runs out of memory",
                 fix="a smaller --num-gpu-blocks-override, or drop it")


def _offload_messages(devices: list[DeviceBudget], pools: list[tuple[KVPool, int]], kvs: KVSettings, L: int,
                      gpu: GPU, opts: VLLMOptions) -> list[Message]:
    """The offloader's price per forward step, and whether the weights would fit without it."""
    from .features import host_link_gbs, offload_step_ms

    most = max(d.cpu_offload_bytes for d in devices)
    gbs, link = host_link_gbs(gpu)
    prefetch = opts.offloader == "prefetch"
    if prefetch:
        flag = "--offload-group-size"
        text = (f"--offload-group-size {opts.offload_group_size}: {most / GIB:.2f} GiB of weights per GPU are copied "
                f"from host memory into the prefetch buffers at every forward step, about "
                f"{offload_step_ms(most, gpu):.0f} ms a step at {gbs:.1f} GB/s ({link}, data/vllm_features.json "
                "cpu_offload), on a side stream ahead of each layer; the speed estimate adds it whole (the overlap "
                "with compute is not modelled, so it errs slow)")
        src = "vllm/model_executor/offloader/prefetch.py PrefetchOffloader (0.33.0)"
    else:
        flag = "--cpu-offload-gb"
        text = (f"--cpu-offload-gb: {most / GIB:.2f} GiB of weights per GPU are read from host memory at every forward "
                f"step, about {offload_step_ms(most, gpu):.0f} ms a step at {gbs:.1f} GB/s ({link}, "
                "data/vllm_features.json cpu_offload); the speed estimate includes it")
        src = "vllm/model_executor/offloader/uva.py UVAOffloader._maybe_offload_to_cpu"
    out = [warning("vllm.cpu_offload.speed", text, source=src)]
    margins = {d.rank: d for d in devices}
    lead = [margins[d.rank] for d in devices if d.rank in margins and d.rank % max(1, len(devices) // len(pools)) == 0]
    fits_without = all(avail - d.cpu_offload_bytes + d.prefetch_buffer_bytes - d.uncertainty_bytes
                       >= p.request_bytes(L, kvs) for (p, avail), d in zip(pools, lead))
    if most and fits_without:
        out.append(warning("vllm.cpu_offload.not_needed", "the weights and one max_model_len request fit without "
                           f"{flag}: leaving it on only slows every step (vLLM issue #57771 measured 19x with "
                           "--cpu-offload-gb)", fix=f"drop {flag}"))
    return out


def _feature_trace(opts: VLLMOptions, d0: DeviceBudget) -> list[TraceTerm]:
    out = []
    if opts.enable_lora:
        from .features import features

        lo = features().lora
        out.append(term("lora slots (rank 0)", d0.lora_bytes, "max_loras x (rank x in + out x rank) per projection "
                        "slice, TP-sharded as the base layer; embed_tokens / lm_head where the architecture lists "
                        "them (inside the weights above)",
                        source="vLLM v0.33.0 vllm/lora/layers/*.py create_lora_weights (data/vllm_features.json lora)",
                        max_loras=opts.max_loras or lo.max_loras, max_lora_rank=opts.max_lora_rank or lo.max_lora_rank,
                        fully_sharded=opts.fully_sharded_loras))
    if opts.offloader == "prefetch":
        what = "their routed experts (--offload-params experts)" if opts.offload_params else "every parameter"
        src = "vllm/model_executor/offloader/prefetch.py PrefetchOffloader.wrap_modules / post_init (0.33.0)"
        out.append(term("prefetch offload (rank 0)", -d0.cpu_offload_bytes, "the last offload_num_in_group layers of "
                        f"every offload_group_size of the stage, {what}, moved to pinned host memory (already out of "
                        "the weights above)", source=src, offload_group_size=opts.offload_group_size,
                        offload_num_in_group=opts.offload_num_in_group))
        out.append(term("prefetch buffers (rank 0)", d0.prefetch_buffer_bytes, "offload_prefetch_step slots of each "
                        "distinct offloaded parameter (name, shape, dtype): StaticBufferPool, in the weights above",
                        source=src, offload_prefetch_step=opts.offload_prefetch_step))
    if opts.uva_offload_gb:
        what = "the routed experts (--cpu-offload-params experts)" if opts.cpu_offload_params else \
            "decoder-layer weights"
        out.append(term("cpu offload (rank 0)", -d0.cpu_offload_bytes, f"min(cpu_offload_gb, {what}) "
                        "moved to pinned host memory (already out of the weights above)", source="vllm/model_executor/offloader/uva.py UVAOffloader._maybe_offload_to_cpu",
                        cpu_offload_gb=opts.cpu_offload_gb))
    if d0.uva_layer_copy_bytes:
        out.append(term("layer copy without UVA (rank 0)", d0.uva_layer_copy_bytes, "the largest decoder layer's "
                        "offloaded bytes, copied to the GPU for its forward (VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1; "
                        "inside the activation below)", source="vllm/model_executor/offloader/uva.py "
                        "UVAOffloader._maybe_offload_to_cpu (0.33.0); vramcalc/vllm/offload.py uva_largest_layer_copy"))
    if opts.kv_cache_memory_bytes:
        out.append(term("kv cache memory bytes", opts.kv_cache_memory_bytes, "as given: replaces budget - other terms",
                        source="vllm/v1/worker/gpu_worker.py determine_available_memory"))
    return out


def _mm_processor_kwargs_messages(spec: ModelSpec, opts: VLLMOptions, errors: list[Message],
                                  warnings: list[Message]) -> None:
    """--mm-processor-kwargs on a tower whose processor vramcalc sizes (vramcalc/vllm/mm_profile.py
    dummy_under_kwargs): what vLLM 0.34.0 raises building the dummy (its words), and the keys that do not move the
    dummy or move it in a way not sized; other multimodal models keep the vllm.mm.encoder_profile "not sized" path."""
    from .mm_profile import ProcessorKwargsError, dummy_under_kwargs

    kw = opts.mm_processor_kwargs or {}
    src = ("vllm/model_executor/models/qwen2_vl.py Qwen2VLProcessingInfo.get_image_size_with_most_features, "
           "vllm/multimodal/processing/context.py _resolve_mm_processor_kwargs (v0.34.0)")
    try:
        d = dummy_under_kwargs(spec.id, kw, 1 << 20, (opts.limit_mm_per_prompt or {}).get("video", 1) > 0)
    except ProcessorKwargsError as exc:
        errors.append(error("vllm.mm.processor_kwargs", f"vLLM's start-up (the encoder budget's dummy item) raises "
                            f"{exc}", fix="--mm-processor-kwargs: max_pixels (size.longest_edge) of at least one "
                            "merged patch (patch_size x merge_size squared pixels), images_kwargs / videos_kwargs "
                            "as JSON objects", source=src))
        return
    if d is None:
        return
    if d.ignored:
        warnings.append(warning("vllm.mm.processor_kwargs_no_dummy", f"--mm-processor-kwargs {', '.join(d.ignored)}: "
                                "these keys do not change the dummy item vLLM's profile run encodes (its size comes "
                                "from min_pixels, max_pixels and size, and for Qwen3-VL-style videos "
                                "temporal_patch_size; the frames from max_model_len), so they do not change the "
                                "memory planned here", source=src))
    if d.not_sized:
        warnings.append(warning("vllm.mm.processor_kwargs_not_sized", f"--mm-processor-kwargs {', '.join(d.not_sized)}:"
                                " vLLM spreads the video dummy over more frames with it (qwen3_vl.py "
                                "Qwen3VLDummyInputsBuilder.get_dummy_mm_data); the encoder's profiling estimate is "
                                "not sized", source=src))


def _chunked_mm_input_refusal(spec: ModelSpec, opts: VLLMOptions, mnbt: int, max_len: int) -> list[Message]:
    """--disable-chunked-mm-input: compute_mm_encoder_budget (vLLM v0.34.0 vllm/v1/core/encoder_cache_manager.py)
    raises where the largest item of the modalities allowed exceeds max_num_batched_tokens; the item sized by
    vramcalc/vllm/mm_profile.py max_item_tokens (None, not checked, for a processor vramcalc does not record)."""
    from .mm_profile import ProcessorKwargsError, max_item_tokens

    try:
        tokens = max_item_tokens(spec.id, opts.mm_processor_kwargs, opts.limit_mm_per_prompt, max_len)
    except ProcessorKwargsError:
        return []  # refused already (vllm.mm.processor_kwargs)
    if tokens is None or tokens <= mnbt:
        return []
    return [error("vllm.mm.chunked_mm_input", f"ValueError: Chunked MM input disabled but max_tokens_per_mm_item "
                  f"({tokens}) is larger than max_num_batched_tokens ({mnbt}). Please increase "
                  "max_num_batched_tokens.", fix=f"--max-num-batched-tokens {tokens} or more, a smaller "
                  "--mm-processor-kwargs max_pixels, or chunked multimodal input (without --disable-chunked-mm-input)",
                  source="vllm/v1/core/encoder_cache_manager.py compute_mm_encoder_budget (v0.34.0)")]


# whether the encoder's profiling estimate enters the KV figure: only where its held-out replay met the bound
# (data/vllm_features.json multimodal.encoder_peak: replay, applied_bound; tests/test_vllm_mm_profile_logs.py)
MM_ESTIMATE_APPLIED = False


def _mm_encoder_estimate(spec: ModelSpec, opts: VLLMOptions, act: "_Activation", mnbt: int, seqs: int, max_len: int,
                         wdtype: str | None, warnings: list[Message], gpu: GPU | None = None) -> Any:
    """vramcalc/vllm/mm_profile.py estimate for a start whose encoder is profiled (the vllm.mm.encoder_profile
    warning is there), the warning rewritten to give it; None where the tower or its dummy item is not sized."""
    from .features import features
    from .mm_profile import estimate

    at = [i for i, m in enumerate(warnings) if m.code == "vllm.mm.encoder_profile"]
    if not at:
        return None
    lm = act.on_stage(opts.pp == 1) - act.workspace  # the LM dummy run's (and sampler's) transient on stage 0
    # the vision attention backend: --mm-encoder-attn-backend, else the platform's pick (vramcalc/vllm/vit_attn.py;
    # off NVIDIA, where ROCm's pick is not read, FLASH_ATTN's allocations are assumed)
    from .vit_attn import default_pick

    vdt = wdtype or spec.dtype
    backend = opts.mm_encoder_attn_backend or (default_pick(gpu, spec.vision.hidden_size // spec.vision.num_heads, vdt)
                                               if gpu is not None and spec.vision is not None and spec.vision.num_heads
                                               and vdt in ("float16", "bfloat16", "float32") else None) or "FLASH_ATTN"
    e = estimate(spec.vision, spec.id, opts.tp, opts.limit_mm_per_prompt, opts.mm_encoder_tp_mode, mnbt, seqs,
                 max_len, opts.enable_chunked_prefill, lm, int(dtype_bytes(wdtype or spec.dtype)),
                 opts.mm_processor_kwargs, backend)
    from .mm_profile import SIZED_BACKENDS

    if e is None and backend not in SIZED_BACKENDS:
        old = warnings[at[0]]
        warnings[at[0]] = warning(old.code, old.text + f"; with --mm-encoder-attn-backend {backend} the encoder's "
                                  "attention (FlashInfer's cuDNN prefill, its 128 MiB workspace allocated at the model's "
                                  "build and cuDNN's own allocations) is not sized either", fix=old.fix, source=old.source)
    if e is None:
        return None
    r = features().multimodal.encoder_peak.replay
    cal, held = (", ".join([f"{v:+.1%}" for v in r.get(k, {}).get("records", {}).values()]
                           + [f"a refused start at {v:+.2f} GiB" for v in r.get(k, {}).get("refused_kv_gib", {}).values()])
                 or "none" for k in ("calibrate", "held_out"))
    old = warnings[at[0]]
    items = f"{e.items} {e.modality} item{'s' if e.items > 1 else ''} of {'x'.join(map(str, e.grid))} patches"
    applied = "applied to the KV shown" if MM_ESTIMATE_APPLIED else (
        f"not applied (its held-out error is outside the bound): the KV shown stays the upper bound and the KV cache may "
        f"be up to {e.kv_cost / GIB:.2f} GiB smaller")
    under = f" under --mm-processor-kwargs, {e.tokens} tokens each" if opts.mm_processor_kwargs is not None else ""
    warnings[at[0]] = warning(old.code, f"{spec.id} is multimodal: vLLM's profile run encodes {items} (the largest "
                              f"dummy --limit-mm-per-prompt allows{under}) and holds the outputs in the encoder cache through "
                              "the language model's dummy run. vramcalc's estimate from vLLM 0.34.0's tower code "
                              f"(vramcalc/vllm/mm_profile.py, vision attention {e.backend}): a forward peak of {e.peak.forward_peak / GIB:.2f} GiB "
                              f"per rank ({e.peak.phase} phase), {e.peak.held / GIB:.2f} GiB held after, costing "
                              f"{e.kv_cost / GIB:.2f} GiB of KV beside the language model's "
                              f"{lm / GIB:.2f} GiB profile peak; {applied}. Against logged starts "
                              f"(tests/data/vllm_mm_profile_logs.json) the KV with the estimate stood {cal} "
                              f"(calibration) and {held} (held out) from the logged figure",
                              fix=old.fix, source=old.source)
    return e


class _Activation(BaseModel):
    """The profile run's activation peak: the forward pass over max_num_batched_tokens or, on the last PP stage,
    the sampler over max_num_seqs, whichever is larger; plus a persistent attention workspace."""

    model_config = ConfigDict(frozen=True)

    forward: float
    sampler: float
    workspace: int  # FlashInfer's workspace buffer (0 for other backends)
    intermediate: int

    def on_stage(self, last: bool, layer_copy: int = 0) -> int:
        """layer_copy: what one decoder layer's forward copies in from the host (VLLM_WEIGHT_OFFLOADING_DISABLE_UVA),
        held with the forward pass's activations, not the sampler's."""
        return int(max(self.forward + layer_copy, self.sampler if last else 0)) + self.workspace


def _flashinfer_workspace(spec: ModelSpec, opts: VLLMOptions, gpu: GPU, mnbt: int) -> int:
    """FlashInfer's persistent buffers on one rank (data/vllm_platforms.json attention.FLASHINFER._workspace_source):
    the metadata builder's workspace, max(VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE, max_num_batched_tokens x query heads
    per rank x head size x 16) (v0.33.0 vllm/v1/attention/backends/flashinfer.py
    FlashInferMetadataBuilder._get_workspace_buffer; the widest attention layer's, one buffer as Model Runner V2
    shares it), and where the TRT-LLM kernels run (SM 9.0, 10.x, 12.x) their own buffer of the variable's size
    (_get_trtllm_workspace_buffer)."""
    fi = vllm_platforms().attention.FLASHINFER
    size = fi.workspace_mib * MIB if opts.flashinfer_workspace_bytes is None else opts.flashinfer_workspace_bytes
    heads = max((max(1, la.attention.num_heads // opts.tp) * la.attention.head_dim_k for la in spec.layers
                 if la.attention is not None and not la.attention.latent_cache), default=0)
    builder = max(size, mnbt * heads * fi.prefill_workspace_bytes_per_elem)
    return builder + (size if flashinfer_trtllm(gpu.compute_capability) else 0)


def flashinfer_trtllm(cc: str | None) -> bool:
    """The TRT-LLM attention kernels run here (v0.33.0 vllm/utils/flashinfer.py supports_trtllm_attention for decode:
    SM 9.0 and the SM 10.x / 12.x families; data/vllm_platforms.json attention.FLASHINFER.trtllm_cc)."""
    trt = vllm_platforms().attention.FLASHINFER.trtllm_cc
    return cc is not None and (cc in trt or cc.split(".")[0] in trt)


def _activation_term(spec: ModelSpec, opts: VLLMOptions, prof: VllmVersion, sam: SamplerPath, wdtype: str | None,
                     backend: str | None, mnbt: int, seqs: int, gpu: GPU,
                     sampler_rows: int | None = None) -> _Activation:
    """vLLM 0.33.0 vllm/v1/worker/gpu_model_runner.py profile_run (_dummy_run, then _dummy_sampler_run on the last
    PP stage), calibrated (data/vllm.json activation)."""
    act = prof.activation
    # FlashInfer's workspaces are persistent buffers; calibrated runs used FlashAttention
    # (TRITON_ATTN's split-KV softmax scratch and FLASH_ATTN's scheduler metadata, a few MiB, are not counted)
    workspace = _flashinfer_workspace(spec, opts, gpu, mnbt) if runs_flashinfer(backend) else 0
    # Dense: the MLP intermediate. MoE: experts_per_token x expert width per token, an assumption the logs
    # cannot test yet (every logged MoE start-up is dominated by the sampler term).
    inter = max((layer.mlp.intermediate_size or layer.mlp.expert_intermediate_size * layer.mlp.experts_per_token
                 for layer in spec.layers), default=spec.hidden_size * 4)
    forward = act.forward_coef * mnbt * inter / opts.tp * dtype_bytes(wdtype or spec.dtype)
    sampler = sam.copies * (sampler_rows or seqs) * spec.vocab_size * 4 + act.sampler_const_gib * GIB
    return _Activation(forward=forward, sampler=sampler, workspace=workspace, intermediate=inter)


def _non_torch_term(gpu: GPU, opts: VLLMOptions, prof: VllmVersion) -> tuple[float, bool]:
    """(bytes, custom all-reduce on): memory outside PyTorch's allocator at the profile run (vLLM 0.33.0
    vllm/utils/mem_utils.py memory_profiling: CUDA context, NCCL, CustomAllreduce buffers), calibrated per layout."""
    nt = prof.non_torch_gib
    car = custom_all_reduce(gpu, opts.tp, opts.disable_custom_all_reduce)
    gib = nt.tp_multi if car else nt.tp1 if opts.tp > 1 else nt.pp_multi if opts.pp > 1 else nt.tp1
    # 0.8.0-0.9.0 (v0.8.5 gpu_worker.py determine_available_memory): total - free - torch allocated, so what other
    # processes hold is charged to the budget too
    others = gpu.reserved_bytes if prof.non_torch_whole_device else 0
    return gib * GIB + others, car


def _hybrid(spec: ModelSpec) -> bool:
    """Mamba / linear-attention layers: FULL decode graphs, whose estimate runs larger (data/vllm.json cudagraph_gib)."""
    return any(layer.ssm is not None for layer in spec.layers)


def cudagraph_capture_sizes(max_num_seqs: int, max_num_batched_tokens: int, sm100: bool = False,
                            decode_query_len: int = 1, capture_sizes: tuple[int, ...] | None = None,
                            max_capture_size: int | None = None, performance_mode: str = "balanced",
                            rule: str = "") -> list[int]:
    """The PIECEWISE capture sizes, as vllm/config/vllm.py VllmConfig._set_cudagraph_sizes sets them (0.25.0 and
    0.30.0 sources; tests/data/vllm_cudagraph_sizes_oracle.json). Given sizes are de-duplicated and those above
    max_num_batched_tokens dropped; otherwise the largest is max_capture_size or min(2 x max_num_seqs x query length,
    512, or 1024 on SM 10.x), capped at max_num_batched_tokens: [1, 2, 4] (every size 1-32 in interactivity mode) +
    every 8 below 256 + every 16 from 256, plus max_num_batched_tokens where it fits (and, by default at query length
    1, max_num_seqs where it fits: vramcalc's reading of v0.33.0). ValueError in vLLM's words where both a list and a
    different largest size are given."""
    default_cap = max_capture_size is None
    cap = min(max_num_seqs * decode_query_len * 2, 1024 if sm100 else 512) if default_cap else max_capture_size
    assert cap is not None
    cap = min(cap, max_num_batched_tokens)
    if capture_sizes is not None:
        got = sorted(x for x in set(capture_sizes) if x <= max_num_batched_tokens)
    else:
        sizes = set(range(1, min(cap, 32) + 1)) if performance_mode == "interactivity" else \
            {i for i in (1, 2, 4) if i <= cap}
        sizes |= set(range(8, min(cap + 1, 256), 8)) | set(range(256, cap + 1, 16))
        if max_num_batched_tokens <= cap:
            sizes.add(max_num_batched_tokens)
        if default_cap and decode_query_len == 1 and max_num_seqs <= cap:
            sizes.add(max_num_seqs)
        if rule and default_cap and decode_query_len > 1:
            # from 0.33.0 a multi-token decode query (speculative tokens, a diffusion canvas) adds each request count
            # of the decode grid times the query length that fits the uncapped ceiling (v0.33.0 / v0.34.0
            # vllm/config/vllm.py _set_cudagraph_sizes: uniform_decode_sizes, request_counts)
            top = min(max_num_seqs * decode_query_len * 2, 1024 if sm100 else 512)
            sizes |= {n * decode_query_len for n in _request_counts(max_num_seqs, 1024 if sm100 else 512)
                      if n * decode_query_len <= top and n * decode_query_len <= max_num_batched_tokens}
        got = sorted(sizes)
    largest = got[-1] if got else 0
    if capture_sizes is not None and max_capture_size is not None and max_capture_size != largest:
        raise ValueError(f"customized max_cudagraph_capture_size(={max_capture_size}) should be consistent with "
                         f"the max value of cudagraph_capture_sizes(={largest})")
    if rule == "split":
        got = sorted(set(got) | {n * decode_query_len for n in _decode_shapes(got, max_num_seqs,
                                                                               max_num_batched_tokens,
                                                                               decode_query_len)})
    return got


def _request_counts(max_reqs: int, ceiling: int) -> list[int]:
    """The decode request-count grid (v0.33.0 vllm/config/vllm.py _set_cudagraph_sizes request_counts): 1, 2, 4, every
    8 below 256, every 16 from 256, and the largest, at most the platform's ceiling."""
    top = min(max_reqs, ceiling)
    counts = {n for n in (1, 2, 4) if n <= top} | set(range(8, min(top + 1, 256), 8)) | set(range(256, top + 1, 16))
    return sorted(counts | {top})


def _decode_shapes(shared: list[int], max_num_seqs: int, max_num_batched_tokens: int, q: int) -> list[int]:
    """The request counts of the FULL uniform decode graphs from 0.34.0 (v0.34.0 vllm/config/vllm.py
    _split_cudagraph_capture_sizes: each shared size rounded up to whole requests of query length q within the largest
    size; vllm/config/compilation.py decode_cudagraph_capture_shapes: those up to the first at or above
    min(max_num_seqs, max_num_batched_tokens // q), that one captured at the limit)."""
    if not shared:
        return []
    top = shared[-1]
    sizes = sorted({min(-(-x // q), max_num_seqs) for x in shared if -(-x // q) * q <= top})
    limit = min(max_num_seqs, max_num_batched_tokens // q)
    if limit < 1:
        return []
    reachable = sizes[:bisect.bisect_left(sizes, limit) + 1]
    return sorted({min(n, limit) for n in reachable})


def cudagraph_capture_counts(max_num_seqs: int, max_num_batched_tokens: int, sm100: bool = False,
                             decode_query_len: int = 1, capture_sizes: tuple[int, ...] | None = None,
                             max_capture_size: int | None = None, performance_mode: str = "balanced",
                             rule: str = "") -> tuple[int, int]:
    """(PIECEWISE sizes, FULL decode sizes) vLLM captures: cudagraph_capture_sizes, and vllm/v1/cudagraph_dispatcher.py
    (FULL decode: the sizes from the query length up to max_num_seqs x query length). 256 sequences give 51 and 35 by
    default, as logged by LMCache/LMCache#3430."""
    sizes = cudagraph_capture_sizes(max_num_seqs, max_num_batched_tokens, sm100, decode_query_len, capture_sizes,
                                    max_capture_size, performance_mode, rule)
    if rule == "split":  # 0.34.0: PIECEWISE graphs for the shared (prefill) sizes, FULL ones for the decode shapes
        shared = cudagraph_capture_sizes(max_num_seqs, max_num_batched_tokens, sm100, decode_query_len,
                                         capture_sizes, max_capture_size, performance_mode, "uniform")
        return len(shared), len(_decode_shapes(shared, max_num_seqs, max_num_batched_tokens, decode_query_len))
    full = [x for x in sizes if decode_query_len <= x <= decode_query_len * max_num_seqs]
    return len(sizes), len(full)


def _graph_sizes_rule(version: str) -> str:
    """How the release sets CUDA-graph sizes for a multi-token decode query (cudagraph_capture_sizes `rule`)."""
    r = vllm_rules()
    return "split" if _key(version) >= _key(r.cudagraph_split_sizes_since.version) else \
        "uniform" if _key(version) >= _key(r.cudagraph_decode_sizes_since.version) else ""


def _cuda_graph_term(spec: ModelSpec, opts: VLLMOptions, prof: VllmVersion, gpu: GPU, seqs: int, mnbt: int,
                     query_len: int = 1, rule: str = "") -> tuple[float, float]:
    """(estimate, upper bound) of the CUDA-graph pool inside the budget: from 0.20 vLLM
    (vllm/v1/worker/gpu_worker.py determine_available_memory) subtracts it; 0 with --enforce-eager."""
    graphs = 0.0
    # dense: per piece graph (layers on the rank's stage + 1 per PIECEWISE capture size) x the TP factor at TP > 1,
    # plus per FULL decode graph (tools/fit_cudagraph.py)
    layers = ceil(len(spec.layers) / opts.pp) if opts.pp_layer_partition is None else max(opts.pp_layer_partition)
    sm100 = (gpu.compute_capability or "").startswith("10.")
    try:
        sizes, full = cudagraph_capture_counts(seqs, mnbt, sm100, query_len, opts.cudagraph_capture_sizes,
                                               opts.max_cudagraph_capture_size, opts.performance_mode, rule)
    except ValueError:  # vLLM refuses the pair (_cudagraph_size_refusal); sized as given meanwhile
        given = {x for x in opts.cudagraph_capture_sizes or () if x <= mnbt}
        sizes, full = len(given), len([x for x in given if query_len <= x <= query_len * seqs])
    if opts.enable_lora:  # each size is captured without and with LoRA (v0.33.0 vllm/v1/cudagraph_dispatcher.py
        from .features import lora_graph_cases  # _get_lora_cases; per active-adapter count with --specialize-active-lora)

        cases = lora_graph_cases(opts.max_loras, opts.specialize_active_lora)
        sizes, full = sizes * cases, full * cases
    if prof.cudagraph_in_budget and not opts.enforce_eager:
        cg = prof.cudagraph_gib
        assert cg is not None, "data/vllm.json: a release with cudagraph_in_budget needs cudagraph_gib"
        graphs = cg.graphs_gib(spec.is_moe, _hybrid(spec), layers, sizes, opts.tp, full) * GIB
    cgu = vllm_rules().verdict_margin.cuda_graph_upper_gib
    upper = max(graphs, cgu.graphs_gib(spec.is_moe, _hybrid(spec), layers, sizes, opts.tp, full) * GIB) if graphs else 0
    return graphs, upper


def _margin_term(w_bytes: int, a: int, non_torch: float, graphs: float, graphs_upper: float, exact: bool) -> int:
    """How much more the non-KV terms may take (data/vllm.json verdict_margin: the held-out errors of
    benchmarks/vllm_budget.py); vramcalc's own term, vLLM has none."""
    vm = vllm_rules().verdict_margin
    return int(w_bytes * (vm.weights_from_files if exact else vm.weights_from_config) + a * vm.activation
               + non_torch * vm.non_torch + graphs_upper - graphs)


def _unestimated_graphs_warning(u: float, graphs_estimate: float, total: int, version: str) -> Message:
    """The warning vLLM 0.33.0 logs with VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 (vllm/v1/worker/gpu_worker.py
    determine_available_memory: suggested = min(round(u + estimate / total, 4), 1.0)), with vramcalc's estimate;
    0.34.0 logs it without the suggested utilization (and not at all with the extensible KV cache)."""
    suggested = min(round(u + graphs_estimate / total, 4), 1.0)
    advice = "." if _key(version) >= _key(vllm_rules().extensible_kv_cache_since.version) else \
        f" and increasing --gpu-memory-utilization from {u:.4f} to {suggested:.4f}."
    return warning("vllm.cudagraph.not_estimated", "CUDA graph memory profiling is disabled "
                   "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0). Without it, CUDA graph memory is not accounted for "
                   "during KV cache allocation, which may require lowering --gpu-memory-utilization to avoid OOM. "
                   f"Consider re-enabling it (the default as of v0.21.0){advice} [vramcalc: the KV cache takes "
                   "vramcalc's graph estimate, "
                   f"{graphs_estimate / GIB:.2f} GiB; the graphs are captured after it, outside the budget]",
                   source="vllm/v1/worker/gpu_worker.py determine_available_memory")


def _graph_headroom_refusal(spec: ModelSpec, gpu: GPU, opts: VLLMOptions, prof: VllmVersion, car: bool, total: int,
                            requested: int, freed: int, outside_graphs: float | None = None) -> Message | None:
    """Before 0.20 the CUDA graphs are captured after the KV cache is allocated (vllm/v1/worker/gpu_model_runner.py
    capture_model, called from gpu_worker.py compile_or_warm_up_model), from the memory the budget leaves: the
    total less the budget, less what sits outside it (the CUDA context and, where the snapshot follows NCCL init,
    NCCL; other processes), plus the activation peak the profiler freed (`freed`: the smallest over the ranks,
    FlashInfer's persistent workspace excluded; memory_profiling ends with torch.cuda.empty_cache).
    Graph sizes: data/vllm.json versions cudagraph_outside_gib (docs/vllm.md#cuda-graphs). From 0.20 with
    VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 (`outside_graphs`): vramcalc's in-budget estimate, its upper end."""
    cg = prof.cudagraph_outside_gib
    if outside_graphs:
        need = outside_graphs
    elif prof.cudagraph_in_budget or opts.enforce_eager or cg is None:
        return None
    else:
        if opts.tp > 1 and not car and prof.cudagraph_outside_nccl_gib is not None:
            cg = prof.cudagraph_outside_nccl_gib
        need = (cg.moe if spec.is_moe else cg.dense) * GIB
    if prof.non_torch_whole_device:  # 0.8.0-0.9.0: context, NCCL and other processes are inside the budget
        outside = total
    else:
        outside = _startup_free(gpu, opts.tp, opts.pp, prof.snapshot_after_nccl, car)[0]
    free = outside - requested + freed
    if free >= need:
        return None
    u_ok = max(0.0, int((outside + freed - need) / total * 100) / 100)
    fix = "--enforce-eager" + (f", or --gpu-memory-utilization {u_ok}" if u_ok > 0 else "")
    return error("vllm.cudagraph.oom", f"torch.OutOfMemoryError: CUDA out of memory. GPU 0 has a total capacity of "
                 f"{total / GIB:.2f} GiB of which {max(free, 0) / GIB:.2f} GiB is free once the KV cache is allocated; "
                 f"capturing CUDA graphs takes up to {need / GIB:.2f} GiB there. [vllm/v1/worker/gpu_model_runner.py "
                 "capture_model: " + ("with VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0" if outside_graphs else
                                      "before 0.20") + " the graphs are captured after the KV cache, outside the "
                 "gpu_memory_utilization budget; graph sizes: " + ("vramcalc's estimate, upper end" if outside_graphs
                                                                   else "data/vllm.json versions cudagraph_outside_gib")
                 + "]",
                 fix=fix, source="vllm/v1/worker/gpu_model_runner.py capture_model")


def _outside_budget_refusal(gpu: GPU, opts: VLLMOptions, prof: VllmVersion, total: int, requested: int
                            ) -> Message | None:
    """vramcalc's own guard (0.20+, more than one GPU): what the budget leaves of the GPU must hold what grows outside
    it after start-up (NCCL and the CUDA context before the snapshot, allocations the profiler does not see);
    data/vllm.json verdict_margin.outside_budget_min_gib, from the failed start-up of vllm-project/vllm#51590."""
    least = vllm_rules().verdict_margin.outside_budget_min_gib * GIB
    if not prof.cudagraph_in_budget or opts.tp * opts.pp == 1 or not least:
        return None
    left = total - gpu.reserved_bytes - requested
    if left >= least:
        return None
    u_ok = int((total - gpu.reserved_bytes - least) / total * 100) / 100
    return error("vllm.verdict.headroom", f"vramcalc: gpu_memory_utilization leaves {left / GIB:.2f} GiB of the GPU "
                 f"outside the budget; multi-GPU start-ups grow past their budget (vllm-project/vllm#51590: 1.37 GiB "
                 f"at TP 8, failing with 1.57 GiB left), so vramcalc plans at least {least / GIB:.2f} GiB there "
                 "(data/vllm.json verdict_margin.outside_budget_min_gib): no promise that vLLM starts",
                 fix=f"--gpu-memory-utilization {u_ok}", source="data/vllm.json verdict_margin.outside_budget_min_gib")


def _mm_ipc_reserve(kv_bytes: int, reserved: int) -> tuple[int, Message | None]:
    """vllm/multimodal/gpu_ipc_memory.py reserve_mm_ipc_gpu_memory (0.33.0), after determine_available_memory (and
    after --kv-cache-memory-bytes, which it is applied to as well): the KV cache loses int(mm_ipc_gpu_memory_gb * GiB);
    nothing left raises. The GPU video decoders' own reservation is not added: the default video backend (opencv,
    vllm/envs.py VLLM_VIDEO_LOADER_BACKEND) runs on the CPU."""
    left = kv_bytes - reserved
    if left > 0 or kv_bytes <= 0:
        return left, None
    return left, error("vllm.mm_ipc.no_kv", f"ValueError: frontend multimodal GPU decoding reserves "
                       f"{reserved / GIB:.2f} GiB ({reserved / GIB:.2f} GiB raw-frame budget, 0.00 GiB decoder cache "
                       f"budget), but only {kv_bytes / GIB:.2f} GiB is available for the KV cache. Reduce "
                       "mm_ipc_gpu_memory_gb or hw_decoders, use a different video backend, or increase "
                       "gpu_memory_utilization. [vllm/multimodal/gpu_ipc_memory.py reserve_mm_ipc_gpu_memory]",
                       fix="lower --mm-ipc-gpu-memory-gb", source="vllm/multimodal/gpu_ipc_memory.py")


def _no_memory(version: str | None = None, extensible: bool = False, u: float = 1.0) -> Message:
    """vllm/v1/core/kv_cache_planning.py _check_enough_kv_cache_memory with nothing left for the cache; from 0.34
    its advice is _more_kv_cache_memory_hint's and a docs link follows."""
    if _key(version or vllm_rules().default_version) >= _key(vllm_rules().extensible_kv_cache_since.version):
        advice = _more_kv_cache_memory_hint(extensible, u, False) + \
            " See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
    else:
        advice = "Try increasing `gpu_memory_utilization` when initializing the engine."
    return error("vllm.kv.no_memory", f"No available memory for the cache blocks. {advice} "
                 "[vllm/v1/core/kv_cache_planning.py _check_enough_kv_cache_memory]",
                 fix="raise --gpu-memory-utilization" if not extensible or u < 1.0 else
                 "a smaller model, quant or more GPUs",
                 source="vllm/v1/core/kv_cache_planning.py _check_enough_kv_cache_memory")


def _max_model_len_refusal(cap: KVCapacity, pool: KVPool, worst: int, L: int, est: int, version: str | None = None,
                           extensible: bool = False, u: float = 1.0, after_warmup: bool = False) -> Message:
    """vLLM 0.33.0 vllm/v1/core/kv_cache_planning.py _check_enough_kv_cache_memory: one request of max_model_len
    must fit in the available memory less the null block (get_kv_cache_configs); GiB as format_gib rounds them
    (vllm/utils/mem_utils.py: round(b / GiB, 2)). From 0.34 the advice is _more_kv_cache_memory_hint's, which with
    the extensible KV cache depends on the utilization and on whether the check follows warmup. Checked against
    tests/data/vllm_oracle."""
    need = round(cap.blocks_per_request * pool.bytes_per_block / GIB, 2)
    avail = round((worst - pool.bytes_per_block) / GIB, 2)
    estimate = f"Based on the available memory, the estimated maximum model length is {est}. " if est > 0 else ""
    if _key(version or vllm_rules().default_version) >= _key(vllm_rules().extensible_kv_cache_since.version):
        advice = _more_kv_cache_memory_hint(extensible, u, after_warmup) + " Decreasing `max_model_len` also reduces " \
            "what is needed. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
    else:
        advice = "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
    return error("vllm.kv.max_model_len", f"To serve at least one request with the model's max seq len ({L}), "
                 f"({need} GiB KV cache is needed, which is larger than the available KV cache memory "
                 f"({avail} GiB). {estimate}{advice} [vllm/v1/core/kv_cache_planning.py _check_enough_kv_cache_memory]",
                 fix=f"--max-model-len {est}" + ("" if extensible and u >= 1.0 else " or raise --gpu-memory-utilization"),
                 source="vllm/v1/core/kv_cache_planning.py _check_enough_kv_cache_memory")


def _more_kv_cache_memory_hint(extensible: bool, u: float, after_warmup: bool) -> str:
    """v0.34.0 vllm/v1/core/kv_cache_planning.py _more_kv_cache_memory_hint, in its words."""
    if not extensible:
        return ("Try increasing `gpu_memory_utilization` when initializing the engine (this flag also controls CPU "
                "memory reservation on the CPU backend, despite its name).")
    used_by = "the model, its activations, CUDA graphs and warmup" if after_warmup else "the model and its activations"
    graphs = " CUDA graphs take less with fewer or smaller capture sizes in the compilation config." \
        if after_warmup else ""
    if u < 1.0:
        return (f"The KV cache gets what is left after {used_by} within `gpu_memory_utilization`={u}; increase it "
                "(with the extensible KV cache it defaults to 1.0) or decrease `max_model_len` or `max_num_seqs`."
                + graphs)
    return (f"The extensible KV cache already takes all device memory left after {used_by}; decrease "
            "`max_model_len` or `max_num_seqs`, or the model needs a device with more memory." + graphs)


def _one_block_per_seq(spec: ModelSpec, opts: VLLMOptions, version: str) -> bool:
    """Hybrids with FULL decode CUDA graphs hold one Mamba block per running sequence (refused from 0.20:
    vllm/config/compilation.py)."""
    return (_key(version) >= _key(vllm_rules().mamba_seqs_refusal_since.version)
            and not opts.enforce_eager and any(layer.ssm is not None for layer in spec.layers))


def _mamba_refusal(seqs: int, blocks: int) -> Message:
    return error("vllm.mamba.seqs_exceed_blocks", f"max_num_seqs ({seqs}) exceeds available Mamba cache blocks "
                 f"({blocks}). Each decode sequence requires one Mamba cache block, so CUDA graph capture cannot "
                 f"proceed. Please lower max_num_seqs to at most {blocks} or increase gpu_memory_utilization. "
                 "[vllm/config/compilation.py, from 0.20.0]", fix=f"--max-num-seqs {blocks}",
                 source="vllm/config/compilation.py")


def _verdict(devices: list[DeviceBudget], pools: list[tuple[KVPool, int]], opts: VLLMOptions, kvs: KVSettings,
             L: int, logged: str, one_block_per_seq: bool, seqs: int, at_estimate: bool) -> tuple[int, Message | None]:
    """(the longest max_model_len that fits with the margin, the refusal when the estimate fits but its upper bound
    does not): the KV pool re-sized with every rank's non-KV terms at their upper bound. vramcalc's own verdict."""
    # --num-gpu-blocks-override: the pool does not shrink with the other terms; their uncertainty is checked against
    # the room left for it (check_vllm)
    margins = {d.rank: 0 if opts.num_gpu_blocks_override else d.uncertainty_bytes for d in devices}
    low = [(pool, avail - margins[r]) for (pool, avail), r in zip(pools, [d.rank for d in devices
                                                                            if d.rank % opts.tp == 0])]
    worst_caps = [capacity(pool, avail, L, kvs, logged) for pool, avail in low if avail > 0]
    safe = _estimate_max_len(low, kvs, L) if len(worst_caps) == len(low) else 0
    blocks = min((c.num_blocks for c in worst_caps), default=0)
    mamba = one_block_per_seq and seqs > blocks
    if not (at_estimate and (len(worst_caps) < len(low) or not all(c.fits_one_request for c in worst_caps) or mamba)):
        return safe, None
    most = max(margins.values()) / GIB
    return safe, error("vllm.verdict.margin", f"vramcalc: fits at the estimate but not within its uncertainty (up to "
                       f"{most:.2f} GiB more per GPU for weights, activations, non-torch and CUDA-graph memory, "
                       "data/vllm.json verdict_margin), so no promise that vLLM starts"
                       + (f"; --max-model-len {safe} fits with that margin, or raise --gpu-memory-utilization"
                          if 0 < safe < L and not mamba else
                          f"; --max-num-seqs {blocks} fits with that margin, or raise --gpu-memory-utilization"
                          if mamba and blocks else "; raise --gpu-memory-utilization or use more memory per GPU"))


def check_vllm(spec: ModelSpec, gpu: GPU, opts: VLLMOptions, file_weight_bytes: int | None = None,
               draft: ModelSpec | None = None) -> VLLMResult:
    """available_kv = ceil(total x u) - weights - activation - non_torch [- cuda_graphs], per rank, then the KV
    pool that holds and vLLM's refusals, in the order vLLM meets them. `gpu` is one rank's GPU; for a system
    string ("2x4090") and the TP/PP it implies, vramcalc.check(model, system, engine="vllm"). `draft`: the draft
    model or EAGLE head --speculative-config names, when the caller has read it."""
    if not isinstance(gpu, GPU):
        raise InputError(f"check_vllm takes a GPU, got {type(gpu).__name__}: for a system such as '2x4090' use "
                         "vramcalc.check(model, system, engine='vllm')")
    if opts.hf_overrides:  # applied to the config before anything reads it (ModelConfig.__post_init__)
        base, spec = spec, apply_hf_overrides(spec, opts.hf_overrides)
        if file_weight_bytes is not None and weights_per_rank(spec, 1, 1)[0].bytes != \
                weights_per_rank(base, 1, 1)[0].bytes:
            file_weight_bytes = None  # the files hold the checkpoint's shapes, not the overridden model's
    if opts.disable_sliding_window:
        if spec.model_type.startswith("gemma4"):  # tests/data/vllm_disable_sliding_window_oracle.json unsupported
            raise NotModelledError("--disable-sliding-window on Gemma 4: vLLM 0.30.0 with transformers 5 fails to "
                                   "build its config (StrictDataclassFieldValidationError: Validation error for "
                                   "field 'sliding_window'); vramcalc does not model it (remove the flag to check "
                                   "the rest)")
        mpe0, spec = spec.max_position_embeddings, without_sliding_window(spec)
    max_len_key = "sliding_window" if opts.disable_sliding_window and spec.max_position_embeddings != mpe0 \
        else "max_position_embeddings"
    version, prof, warnings = _version(opts.engine_version)
    oldest = vllm_rules().oldest_modelled
    if _key(version) < _key(oldest.version):
        L0 = opts.max_model_len or derived_max_model_len(spec)
        mnbt0, seqs0 = _batch_defaults(gpu, version)
        unmodelled = error("vllm.version.unmodelled", f"vLLM {version} is not modelled: vramcalc models vLLM "
                        f"{oldest.version} and later (the V1 engine). {oldest.source_note}",
                        fix=f"--engine-version {oldest.version} or later", source="data/vllm.json oldest_modelled")
        return _result(False, version, spec, opts, [], 0, 0.0, L0, False, 0, [unmodelled], [], mnbt0, seqs0,
                       opts.gpu_memory_utilization or prof.gpu_memory_utilization, [oldest.source_note])
    if (kv_refused := _kv_format_gate(spec, opts, version, gpu)) is not None:
        L0 = opts.max_model_len or derived_max_model_len(spec)
        mnbt0, seqs0 = _batch_defaults(gpu, version)
        return _result(False, version, spec, opts, [], 0, 0.0, L0, False, 0, [kv_refused], [], mnbt0, seqs0,
                       opts.gpu_memory_utilization or prof.gpu_memory_utilization, [])
    extensible, ext_errors, ext_warnings = _extensible_kv(opts, version, prof, gpu)
    warnings += ext_warnings
    u = opts.gpu_memory_utilization if opts.gpu_memory_utilization is not None else \
        default_utilization(version, extensible)
    if not 0 < u <= 1:
        raise InputError(f"--gpu-memory-utilization must be in (0, 1], got {u}")
    total = cuda_total(gpu)  # what other processes hold is inside it: only the free-memory gate sees that
    if gpu.usable_source.startswith("estimated"):
        warnings.append(warning("vllm.gpu.usable_estimated", f"{gpu.name}: {gpu.usable_source}"))
    scheme, gguf = _scheme(spec, opts)
    if opts.monokernel and set(opts.attention_config or {}) & {"indexer_kv_dtype"}:
        # --attention-config indexer_kv_dtype is not modelled (selected_backend), but DecodeConfig requires it: where
        # vLLM refuses --monokernel anyway, its refusal is given and the figures are those without the key
        mono_errors = _minimax_m3_monokernel(spec, opts, gpu, scheme, version)[0]
        if mono_errors:
            bare = {k: v for k, v in (opts.attention_config or {}).items() if k != "indexer_kv_dtype"}
            r = check_vllm(spec, gpu, opts.model_copy(update={"attention_config": bare or None, "monokernel": False}),
                           file_weight_bytes, draft)
            why = warning("vllm.minimax_m3.monokernel_figures", "--attention-config indexer_kv_dtype: not modelled; "
                          "vLLM refuses --monokernel here before the KV cache is sized (the error above), so the "
                          "figures are those without indexer_kv_dtype (the bf16 index-key cache)")
            return r.model_copy(update={"fits": False, "fits_at_estimate": False, "errors": mono_errors + r.errors,
                                        "warnings": [why, *r.warnings]})
    wdtype, errors, pre_warnings = _pre_start_messages(spec, gpu, opts, scheme)
    errors += ext_errors
    errors += pcp_messages(spec, opts)
    errors += dcp_messages(spec, opts)
    errors += eplb_messages(spec, opts)
    warnings += pre_warnings
    mnbt_d, seqs_d = _batch_defaults(gpu, version)
    from . import all2all

    if all2all.batched_dp_moe(opts):  # deepep_low_latency / nixl_ep under DP + EP (vramcalc/vllm/all2all.py)
        mnbt_d = all2all.default_max_num_batched_tokens()
    warnings += all2all.messages(spec, opts)
    if opts.performance_mode == "throughput":  # the defaults doubled (v0.30.0 vllm/engine/arg_utils.py
        mnbt_d, seqs_d = mnbt_d * 2, seqs_d * 2  # _set_default_max_num_seqs_and_batched_tokens_args)
    L = opts.max_model_len or derived_max_model_len(spec)
    derived = derived_max_model_len(spec)
    if opts.max_model_len and opts.max_model_len > derived and not opts.allow_long_max_model_len:
        errors.append(error(
            "vllm.max_model_len.exceeds_model",
            f"ValueError: User-specified max_model_len ({opts.max_model_len}) is greater than the derived "
            f"max_model_len ({max_len_key}={float(derived)} or model_max_length=None in model's config.json). "
            "To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.",
            fix=f"--max-model-len {derived} (the model's own length)",
            source="vllm/config/model.py _get_and_verify_max_len"))
    elif opts.max_model_len and opts.max_model_len > derived:
        warnings.append(warning(
            "vllm.max_model_len.long_allowed",
            f"VLLM_ALLOW_LONG_MAX_MODEL_LEN=1: max_model_len {opts.max_model_len} is above the model's {derived}; vLLM "
            "starts and warns that positions past it give NaN under RoPE (the KV cache is sized for the length given)",
            source="vllm/config/model.py _get_and_verify_max_len"))
    if opts.mla_disable and any(la.attention is not None and la.attention.mla is not None and la.attention.mla.index_n_heads
                                for la in spec.layers):
        # DeepSeek-V3.2's sparse indexer hands its top-k buffer to the attention class, which MLA off cannot take
        # (tests/data/vllm_mla_disable_oracle.json unsupported)
        errors.append(error("vllm.mla_disable.sparse_indexer", "AssertionError: topk_indices_buffer is not         "
                            "supported for DeepseekV2Attention", fix="unset VLLM_MLA_DISABLE (MLA is the only "
                            "attention vLLM builds for a model with the sparse-attention indexer)",
                            source="vllm/model_executor/models/deepseek_v2.py DeepseekV2Attention.__init__ (0.33.0)"))
    if opts.mamba_block_size is not None and opts.mamba_block_size != L and \
            _key(version) >= _key(vllm_rules().mamba_block_size_needs_prefix_caching_since.version) and \
            not _prefix_caching_on(spec, opts, version):
        errors.append(error("vllm.mamba_block_size.no_prefix_caching", "ValueError: --mamba-block-size can only be set "
                            "with --enable-prefix-caching", fix="--enable-prefix-caching, or drop --mamba-block-size",
                            source="vllm/config/vllm.py VllmConfig.validate_mamba_block_size"))
    if opts.model_impl == "transformers":
        warnings.append(warning(
            "vllm.model_impl.transformers_activations",
            "--model-impl transformers: vLLM's Transformers backend holds the parameters of vLLM's own class and "
            "transformers' small rotary buffers instead of vLLM's cos/sin cache (modelled); its profile-run "
            "activation peak, CUDA-graph pool and speed are those of transformers' modules, which vramcalc does not "
            "size: the figures take vLLM's own class's, so the activation term is uncertain",
            source="vllm/model_executor/models/transformers/base.py Base (0.33.0)"))
    elif transformers_backend(spec, opts):
        warnings.append(warning(
            "vllm.model_impl.transformers_default",
            f"vLLM builds {spec.architecture} with its Transformers backend (its registry maps the architecture to "
            "TransformersMoEForCausalLM, under --model-impl auto or vllm): the parameters and transformers' small "
            "rotary buffers are modelled as it builds them; its profile-run activation peak, CUDA-graph pool and "
            "speed are those of transformers' modules, which vramcalc does not size: the activation term is uncertain",
            source="vllm/model_executor/models/registry.py _TRANSFORMERS_SUPPORTED_MODELS (0.34.0)"))
    elif opts.model_impl == "terratorch":
        warnings.append(warning(
            "vllm.model_impl.terratorch", "--model-impl terratorch builds the TerraTorch backend (geospatial pooling "
            "models), which vramcalc does not model: the figures are those of vLLM's own class",
            source="vllm/model_executor/models/terratorch.py (0.33.0)"))
    convert = pooling_convert(opts)
    if convert:
        warnings.append(warning("vllm.pooling.unchecked", f"pooling runner (--convert {convert}): the lm_head is not "
                                "built" + (" and a float32 score head of 2 labels is" if convert == "classify" else "")
                                + ", async scheduling is off and the KV cache is the causal model's, as vLLM 0.33.0's "
                                "own code builds them; the activation peak is the generate runner's (the sampler's "
                                "share included, the pooler's own not sized) and chunked prefill is taken as on (LAST "
                                "pooling; a Sentence Transformers MEAN or CLS pooling config turns it and prefix caching "
                                "off, vllm/config/model.py is_chunked_prefill_supported)",
                                source="vllm/model_executor/models/adapters.py; vllm/config/vllm.py"))
    mnbt = opts.max_num_batched_tokens or (mnbt_d if opts.enable_chunked_prefill else max(L, mnbt_d))
    if not opts.enable_chunked_prefill and mnbt < L:
        errors.append(_unchunked_refusal(mnbt, L))
    seqs = opts.max_num_seqs or seqs_d
    # --diffusion-config / a diffusion model (vramcalc/vllm/diffusion.py): its canvas, DiffusionGemma's max_num_seqs
    dplan = plan_diffusion(opts.diffusion_config, spec, seqs, mnbt, opts.speculative_config is not None, wdtype)
    if dplan is not None:
        seqs = dplan.max_num_seqs
        warnings += dplan.warnings
    if spec.architecture == DIFFUSION_GEMMA and opts.selected_backend() == "FLASHINFER":
        errors.append(error("vllm.diffusion.flashinfer", "ValueError: FlashInfer does not support DiffusionGemma's "
                            "mixed causal/bidirectional attention. Use --attention-backend FLASH_ATTN or TRITON_ATTN "
                            "instead.", fix="--attention-backend FLASH_ATTN",
                            source="vllm/model_executor/models/config.py DiffusionGemmaModelForBlockDiffusionConfig "
                                   "(v0.34.0)"))
    if not opts.enforce_eager and (opts.cudagraph_capture_sizes is not None or opts.max_cudagraph_capture_size):
        try:
            cudagraph_capture_sizes(seqs, mnbt, False, 1, opts.cudagraph_capture_sizes,
                                    opts.max_cudagraph_capture_size)
        except ValueError as e:
            errors.append(error("vllm.cudagraph.sizes_inconsistent", f"ValueError: {e} [vllm/config/vllm.py "
                                "VllmConfig._set_cudagraph_sizes]", fix="drop --max-cudagraph-capture-size",
                                source="vllm/config/vllm.py VllmConfig._set_cudagraph_sizes"))
    sam = sampler_path(version, gpu, seqs, opts.flashinfer_sampler)
    if sam.note:
        warnings.append(warning("vllm.sampler.assumed", sam.note, fix="--flashinfer-sampler on"))
    plan: SpecPlan | None = None
    if opts.speculative_config is not None:
        plan = plan_speculative(opts.speculative_config, spec, opts.tp, opts.pp, L, wdtype, draft, opts.spec_acceptance)
        errors += plan.errors
        warnings += plan.warnings + ([acceptance_warning(plan)] if not plan.errors else [])
    gdn_backend, gdn_msgs = gdn_prefill_backend(spec, gpu, opts.gdn_prefill_backend, version)
    errors += gdn_msgs
    errors += kda_prefill_refusal(gpu, opts.kda_prefill_backend, version, spec)
    errors += kda_state_dtype_refusal(spec, opts.mamba_ssm_cache_dtype)
    if opts.sparse_indexer_topk_backend not in (None, "auto") and any(
            la.attention is not None and la.attention.mla is not None and la.attention.mla.index_n_heads
            for la in spec.layers):
        warnings.append(warning(
            "vllm.sparse_indexer_topk.not_modelled", f"--sparse-indexer-topk-backend {opts.sparse_indexer_topk_backend}: "
            "the DSA indexer's decode top-k kernel; " + (
                "the profile run's dummy logits follow it (no decode chunking but with auto or persistent, no FP32 "
                "copy of BF16 logits with deep_select: vllm/model_executor/layers/sparse_attn_indexer.py "
                "sparse_attn_indexer, 0.34.0, counted)" if _key(version) >= _key(
                    vllm_rules().sparse_indexer.dummy_since.version) else
                "the profile run reserves the same buffers whatever the backend "
                "(vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer, 0.33.0)") + ", but its "
            "decode-time transients (torch's masked fp32 logits copy, FlashInfer's index output; deep_select keeps the "
            "logits bf16 on SM 10.x) land in the decode CUDA graphs' pool, which vramcalc does not size per backend, "
            "and vLLM raises a RuntimeError at the first decode top-k where the backend's constraints fail "
            "(indexer_topk.py SparseIndexerTopk.resolve_backend)", source="vllm/model_executor/layers/indexer_topk.py",
            fix="drop --sparse-indexer-topk-backend"))
    if opts.linear_backend not in (None, "auto") and scheme.method != "none":
        warnings.append(warning(
            "vllm.linear_backend.not_modelled", f"--linear-backend {opts.linear_backend}: the {scheme.method} linear "
            "layers prefer that backend's kernels where one takes the layer (vllm/model_executor/kernels/linear/"
            "__init__.py, 0.33.0), whose repacked weight layouts and workspaces vramcalc does not size: the figures are "
            "those of vLLM's own choice", source="vllm/model_executor/kernels/linear/__init__.py _get_linear_backend",
            fix="drop --linear-backend"))
    if opts.linear_backend_per_quant and scheme.method != "none":
        warnings.append(warning(
            "vllm.linear_backend.not_modelled", f"--kernel-config linear_backend_per_quant "
            f"{json.dumps(opts.linear_backend_per_quant)}: where it names this checkpoint's {scheme.method} scheme, its "
            "linear layers prefer that backend's kernels (vllm/model_executor/kernels/linear/__init__.py "
            "_get_linear_backend, 0.34.0), whose repacked weight layouts and workspaces vramcalc does not size: the "
            "figures are those of vLLM's own choice", source="vllm/model_executor/kernels/linear/__init__.py "
            "_get_linear_backend", fix="drop linear_backend_per_quant from --kernel-config"))
    rows, replay_msgs = replayssm_messages(spec, opts, _prefix_caching_on(spec, opts, version),
                                           plan.num_speculative_tokens if plan else 0)
    errors += replay_msgs
    kvs = _kv_settings(spec, opts, version, mnbt, L, plan.num_speculative_tokens if plan else 0, gdn_backend, rows)
    if opts.kv_offloading_size is not None:
        warnings.append(warning(
            "vllm.kv_offload.host_memory", f"--kv-offloading-size {opts.kv_offloading_size:g}: "
            f"{opts.kv_offloading_size:g} GiB of pinned host memory for offloaded KV blocks, summed over the ranks, "
            f"through {opts.kv_offloading_connector} (host memory only: the GPU figures are unchanged" + (
                "; vLLM's own lmcache connector turns the hybrid KV cache manager off, so sliding-window layers "
                "beside full attention are sized at full length, as with --disable-hybrid-kv-cache-manager; the "
                "lmcache package's connector may keep it, which only leaves more KV room)" if opts.kv_offloading_backend == "lmcache" else ")"),
            source="vllm/config/cache.py CacheConfig.kv_offloading_size; vllm/config/vllm.py "
                   "_post_init_kv_transfer_config"))
    requested = ceil(total * u)  # the budget: gpu_worker.py determine_available_memory
    # the extensible KV cache's budget is a cap only: no free-memory check (v0.34.0 vllm/v1/worker/utils.py
    # request_memory)
    gate = None if extensible else _startup_gate(gpu, opts, prof, u, total, requested)
    if gate:
        errors.append(gate)
    if errors:  # vLLM stops at the first of these: the memory figures would not be reached
        return _result(False, version, spec, opts, [], 0, 0.0, L, False, 0, errors, warnings, mnbt, seqs, u, [], env=sam.env,
                       plan=plan, extensible=extensible)
    if wdtype and wdtype != spec.dtype:  # --kv-cache-dtype auto follows the dtype the model runs in
        spec = spec.model_copy(update={"dtype": {"half": "float16"}.get(wdtype, wdtype)})
    mxfp4, mxfp4_msgs = _mxfp4_kernel(scheme, opts, gpu)
    warnings += mxfp4_msgs
    native_mx = (gpu.gfx_arch or "").startswith("gfx95")
    weights = _weights_term(spec, opts, scheme, wdtype, mxfp4, gguf, file_weight_bytes, rocm=gpu.vendor == "amd",
                            native_mx=native_mx, gfx_arch=(gpu.gfx_arch or "") if gpu.vendor == "amd" else "")
    if scheme.method in ("mxfp8", "ct_mxfp8") and gpu.vendor == "amd" and not native_mx:
        warnings.append(warning(
            "vllm.quant.mxfp8_emulated", "MXFP8 on this AMD GPU runs on vLLM's emulation kernels (native MX needs "
            "gfx950): " + ("its weights are dequantized to bf16 at load, 2 bytes a weight instead of 1, as counted"
                           if opts.mxfp8_emulation_dequant else
                           "VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0 keeps them at 1 byte and dequantizes every step"),
            source="vllm/model_executor/kernels/linear/mxfp8/emulation.py, quantization/modelopt.py (v0.33.0)",
            fix="VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0 (half the weight memory, much slower)"
            if opts.mxfp8_emulation_dequant else None))
    weights, rq_msgs = _fp8_moe_requant(spec, opts, scheme, gpu, version, weights)
    weights, em_msgs = _mxfp4_emulation_dequant(spec, opts, scheme, gpu, weights)
    warnings += em_msgs
    warnings += [m for m in rq_msgs if m.level != "error"]
    extras, feature_errors, feature_warnings = _feature_terms(spec, opts, version, scheme, wdtype, mxfp4, weights)
    feature_errors += [m for m in rq_msgs if m.level == "error"]  # raised while the model is built and loaded
    reload_msgs = _reload_mode_messages(spec, opts, scheme, gpu, version)
    warnings += [m for m in reload_msgs if m.level != "error"]
    feature_errors[:0] = [m for m in reload_msgs if m.level == "error"]  # VllmConfig refuses before the model exists
    if opts.mm_encoder_attn_dtype == "fp8" and spec.vision is not None:
        feature_errors += _encoder_fp8_refusal(spec, gpu, feature_warnings, opts.mm_encoder_attn_backend,
                                               wdtype or spec.dtype)
    if opts.mm_encoder_attn_backend is not None and spec.vision is not None:
        feature_errors += _vit_backend_refusal(spec, opts.mm_encoder_attn_backend, gpu, feature_warnings)
    warnings += feature_warnings
    from .aux_output import enabled as aux_enabled, refusal as aux_refusal

    aux_on = aux_enabled(opts.enable_return_routed_experts, opts.aux_output_config)
    aux_refused = aux_refusal(spec, pooling=pooling_convert(opts) is not None,
                              prefix_caching=_prefix_caching_on(spec, opts, version), pp=opts.pp,
                              dcp=opts.decode_context_parallel_size, kv_transfer=opts.kv_transfer_config
                              if opts.kv_offloading_size is None else None) if aux_on else None
    if aux_refused:  # VllmConfig refuses before anything is allocated
        feature_errors.append(aux_refused)
    load_msgs = load_format_messages(opts.load_format) + ubatch_messages(opts, gpu)
    feature_errors += [m for m in load_msgs if m.level == "error"]
    warnings += [m for m in load_msgs if m.level != "error"]
    from .kv_transfer import messages as kt_messages, refusal as kt_refusal

    kt_cfg = opts.kv_transfer_config if opts.kv_offloading_size is None else None
    kt_refused = kt_refusal(kt_cfg)
    if kt_refused:
        feature_errors.append(kt_refused)
    if feature_errors:  # LoRAConfig refuses before anything is allocated
        return _result(False, version, spec, opts, [], 0, 0.0, L, False, 0, errors + feature_errors, warnings, mnbt,
                       seqs, u, [prof.source], env=sam.env, plan=plan, extensible=extensible)
    if opts.enable_eplb and spec.is_moe:  # EplbState.add_model allocates while the model loads
        weights = [(w, b + eplb_state_bytes(spec, opts, w)) for w, b in weights]
    if plan and plan.weight_bytes:  # the drafter is loaded beside the target (gpu_model_runner.py load_model)
        weights = [(w, b + plan.weight_bytes) for w, b in weights]
    # the drafter's attention layers join the target's KV cache groups (gpu_model_runner.py get_kv_cache_spec)
    pool_spec = spec.model_copy(update={"layers": spec.layers + plan.draft_layers}) if plan and plan.draft_layers \
        else spec
    mm_inputs = not opts.language_model_only and not (opts.limit_mm_per_prompt and not any(
        opts.limit_mm_per_prompt.values()))
    backend, attn_msgs = attention_backend(per_head_attention(spec) if opts.mla_disable else spec, gpu, resolve_kv_dtype(
        spec, opts.kv_cache_dtype, _key(version) >= _key(vllm_rules().checkpoint_kv_dtype_since.version))[0], version,
        forced=opts.selected_backend(), mm_inputs=mm_inputs)
    warnings += [m for m in attn_msgs if m.level != "error"]
    errors += [m for m in attn_msgs if m.level == "error"]  # vLLM raises these when it builds the attention layers
    # the engine core resolves it before the KV cache, once the attention layers are built
    if opts.kv_cache_layout is not None and not [m for m in attn_msgs if m.level == "error"]:
        from .kv_layout import messages as layout_messages

        layout_msgs = layout_messages(
            per_head_attention(pool_spec) if opts.mla_disable else pool_spec, gpu, resolve_kv_dtype(
                spec, opts.kv_cache_dtype, _key(version) >= _key(vllm_rules().checkpoint_kv_dtype_since.version))[0],
            opts.kv_cache_layout, version, forced=opts.selected_backend(), kv_skip=bool(_skip_layers(spec, opts)),
            extensible_connector=extensible and opts.kv_transfer_config is not None, mm_inputs=mm_inputs)
        warnings += [m for m in layout_msgs if m.level != "error"]
        errors += [m for m in layout_msgs if m.level == "error"]
    # a diffusion model's profile-run sampler takes one canvas of logit rows (DiffusionSampler.profile_run, v0.34.0)
    act = _activation_term(spec, opts, prof, sam, wdtype, backend, mnbt, seqs, gpu,
                           dplan.canvas_length if dplan is not None and dplan.state_bytes else None)
    if dplan is not None and dplan.state_bytes:  # the runner's diffusion buffers, allocated before the profile run
        act = act.model_copy(update={"workspace": act.workspace + dplan.state_bytes})
        sampler_note = sampler_warning(dplan, spec.vocab_size, sam.copies)
        if sampler_note is not None:
            warnings.append(sampler_note)
    enc = _mm_encoder_estimate(spec, opts, act, mnbt, seqs, L, wdtype, warnings, gpu)
    if opts.disable_chunked_mm_input and any(w.code == "vllm.mm.encoder_profile" for w in warnings):
        errors += _chunked_mm_input_refusal(spec, opts, mnbt, L)
    if backend == "TURBOQUANT":
        act = act.model_copy(update={"workspace": act.workspace + _turboquant_workspace(
            spec, opts, seqs, mnbt, L, kv_pool(pool_spec, kvs).block_size)})
    indexer = _sparse_indexer(spec, opts, gpu, mnbt, L, seqs, plan.num_speculative_tokens if plan else 0)
    warnings += _sparse_indexer_messages(spec, opts, gpu, indexer)
    msa = next((la.attention for la in spec.layers if la.attention is not None and la.attention.index_n_heads), None)
    if msa is not None:
        warnings.append(_msa_score_warning(msa.index_n_heads, opts.tp, mnbt, L))
    if indexer is not None:  # persistent beside the FlashInfer / TurboQuant workspaces; transient in the forward
        act = act.model_copy(update={"forward": act.forward + indexer.transient,
                                     "workspace": act.workspace + indexer.persistent})
    cc_added = 0
    if _conf_compute_on(opts, gpu, version):  # the runner's states, built after the init snapshot: persistent, pre-profile
        cc_added = _conf_compute_bytes(spec, opts, seqs, L, pooling_convert(opts) is not None)
        warnings.append(_conf_compute_warning(spec, cc_added, _conf_compute_trace_replay_bytes(
            opts, seqs, L, pooling_convert(opts) is not None)))
        act = act.model_copy(update={"workspace": act.workspace + cc_added})
    elif opts.confidential_compute:
        warnings.append(warning("vllm.conf_compute.ignored", "VLLM_CONFIDENTIAL_COMPUTE=1: " + (
            f"vLLM {version} does not read it (from {vllm_rules().confidential_compute.since})" if gpu.vendor == "nvidia"
            else "read on CUDA only (vllm/platforms/cuda.py); other platforms take Confidential Computing as off")
            + ": no effect", source="vllm/platforms/cuda.py _detect_confidential_compute (v0.34.0)"))
    blockscale = _fp4_moe_blockscale(spec, opts, scheme, gpu)
    errors += _minimax_m3_mega_moe_refusal(spec, opts)
    mono_errors, mono_warnings, mono_torch, mono_peer = _minimax_m3_monokernel(spec, opts, gpu, scheme, version)
    errors += mono_errors
    warnings += mono_warnings
    if mono_torch:  # FfnRunner's scratch: torch.zeros after the load, before the profile run (persistent)
        act = act.model_copy(update={"workspace": act.workspace + mono_torch})
    if _cutlass_fp4_experts_asked(spec, opts, scheme) and not _cutlass_fp4_device(gpu):
        errors.append(error("vllm.moe.cutlass_fp4_device", "ValueError: NvFp4 MoE backend 'VLLM_CUTLASS' does not "
                            "support the deployment configuration since kernel does not support current device "
                            f"{gpu.name}.", source="vllm/model_executor/layers/fused_moe/oracle/nvfp4.py "
                            "select_nvfp4_moe_backend; experts/cutlass_moe.py CutlassExpertsFp4 (v0.33.0)",
                            fix="--moe-backend auto (or marlin): the CUTLASS FP4 MoE kernels need SM 10.x / 11.x / 12.x"))
    warnings += _fp4_moe_blockscale_messages(spec, opts, blockscale, mnbt, errors)
    if blockscale:  # a transient of each MoE layer's forward (cutlass_moe.py run_cutlass_moe_fp4)
        act = act.model_copy(update={"forward": act.forward + blockscale})
    non_torch, car = _non_torch_term(gpu, opts, prof)
    a2a = all2all.buffer_bytes(spec, opts)  # DeepEP's buffer: built at load, outside torch (non-torch, in budget)
    non_torch += a2a
    non_torch += mono_peer  # the specialized decode's peer buffer: the uncached IPC heap, outside torch, pre-profile
    # the decode query: 1 + VllmConfig.num_speculative_tokens, a diffusion canvas's when no drafter is set
    graphs, graphs_upper = _cuda_graph_term(spec, opts, prof, gpu, seqs, mnbt,
                                            1 + (plan.num_speculative_tokens if plan else
                                                 dplan.num_speculative_tokens if dplan else 0),
                                            _graph_sizes_rule(version))
    # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0: available = requested - non_kv, the estimate not taken (v0.33.0
    # vllm/v1/worker/gpu_worker.py determine_available_memory: cudagraph_memory_estimate_applied = 0); the graphs are
    # still captured, after the KV cache, from what the budget leaves (_graph_headroom_refusal)
    outside_graphs = 0.0
    if not opts.estimate_cudagraphs and graphs:
        if not extensible:  # v0.34.0 gpu_worker.py: the extensible cache measures the captured graphs, no warning
            warnings.append(_unestimated_graphs_warning(u, graphs, total, version))
        outside_graphs, graphs, graphs_upper = graphs_upper, 0.0, 0.0
    devices: list[DeviceBudget] = []
    pools: list[tuple[KVPool, int]] = []
    # ModelConfig.multimodal_config exists for every model that supports multimodal inputs (vllm/config/model.py),
    # --language-model-only and zero limits included; a text model has none, and nothing is reserved
    mm_ipc = int(opts.mm_ipc_gpu_memory_gb * GIB) if spec.vision is not None else 0
    if opts.mm_ipc_gpu_memory_gb and spec.vision is None:
        warnings.append(warning("vllm.mm_ipc.text_model", f"--mm-ipc-gpu-memory-gb {opts.mm_ipc_gpu_memory_gb:g}: "
                                f"{spec.id} takes no multimodal input, so vLLM reserves nothing for it "
                                "(vllm/multimodal/gpu_ipc_memory.py reserve_mm_ipc_gpu_memory: no multimodal config)"))
    copies = _uva_layer_copies(spec, opts, scheme, wdtype, mxfp4, [w for w, _ in weights],
                               _conf_compute_on(opts, gpu, version))
    if any(copies):
        warnings.append(_uva_copy_warning(opts, copies[0]))
    errors += _rdna_prefill_copy_refusal(spec, opts, gpu, version, u, L, kvs, pool_spec, weights,
                                         prof.snapshot_after_nccl, car)
    embeds = _embeds_cache(spec, opts, version, mnbt, wdtype, warnings, L)
    transfer = transfer_buffers(opts.weight_transfer_backend)
    # what CUDA reports free at start-up: the extensible KV cache's device headroom, and the room run-time holdings take
    startup_free = (_startup_free(gpu, opts.tp, opts.pp, prof.snapshot_after_nccl, car)[0]
                    if extensible or embeds or transfer else 0)
    # per rank: (PP stage, what the KV cache leaves of the GPU after start-up, the uncertainty of the terms before it,
    # data/vllm.json verdict_margin): the room run-time holdings (precomputed embeddings, weight-transfer buffers) take
    kv_leaves: list[tuple[int, int, int]] = []
    ext_sizing: dict[str, int] = {}
    for (w, w_bytes), (lora, vision, offloaded, prefetch_buffer), copy in zip(weights, extras, copies):
        w_bytes = w_bytes + lora - vision - offloaded + prefetch_buffer
        a = act.on_stage(w.pp_stage == opts.pp - 1, copy)
        enc_bytes = enc.kv_cost if enc is not None and w.pp_stage == 0 else 0
        if enc_bytes and MM_ESTIMATE_APPLIED:
            a += enc_bytes
        kv_bytes = requested - w_bytes - a - int(non_torch) - int(graphs)
        if extensible:  # the profile's estimate above reserves the address range; warmup's measure commits this
            # the captured graphs stay resident; without the estimate (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0)
            # they are not in the transient, and vramcalc takes them at their upper end
            resident = w_bytes + act.workspace + int(non_torch) + int(graphs + outside_graphs)
            transient = a - act.workspace + int(graphs)
            measured = _extensible_kv_bytes(prof, gpu, requested, startup_free, resident, transient)
            if not ext_sizing:
                ext_sizing = dict(estimate=kv_bytes, measured=measured, resident=resident, transient=transient,
                                  startup_free=startup_free, requested=requested)
            kv_bytes = min(kv_bytes, measured)
        if opts.kv_cache_memory_bytes:  # gpu_worker.py determine_available_memory returns it as it is
            room = total - w_bytes - a - int(non_torch) - int(graphs + outside_graphs)
            if room < opts.kv_cache_memory_bytes and not any(e.code == "vllm.kv_bytes.oom" for e in errors):
                errors.append(_kv_bytes_oom(opts.kv_cache_memory_bytes, room))
            kv_bytes = opts.kv_cache_memory_bytes
        if mm_ipc:
            kv_bytes, refusal = _mm_ipc_reserve(kv_bytes, mm_ipc)
            if refusal and not any(e.code == refusal.code for e in errors):
                errors.append(refusal)
        margin = _margin_term(w_bytes, a, non_torch, graphs, graphs_upper, _from_files(opts, file_weight_bytes, spec))
        if opts.num_gpu_blocks_override:
            # get_kv_cache_configs plans against override x bytes per block and allocates that much, whatever the
            # profile left: more than the GPU has left after the other terms runs out of memory at allocation (with
            # vramcalc's uncertainty on those terms: no promise)
            asked = opts.num_gpu_blocks_override * kv_pool(pool_spec, kvs, w.pp_stage).bytes_per_block
            room = total - w_bytes - a - int(non_torch) - int(graphs + outside_graphs) - mm_ipc
            if room < asked and not any(e.code == "vllm.kv_blocks.oom" for e in errors):
                errors.append(_kv_blocks_oom(opts.num_gpu_blocks_override, asked, room))
            elif room - margin < asked and not any(e.code == "vllm.verdict.margin" for e in errors):
                errors.append(error("vllm.verdict.margin", f"vramcalc: --num-gpu-blocks-override "
                                    f"{opts.num_gpu_blocks_override} ({asked / GIB:.2f} GiB) fits in the "
                                    f"{room / GIB:.2f} GiB left at the estimate but not within its uncertainty (up to "
                                    f"{margin / GIB:.2f} GiB more per GPU for weights, activations, non-torch and "
                                    "CUDA-graph memory, data/vllm.json verdict_margin), so no promise that vLLM starts",
                                    fix="a smaller --num-gpu-blocks-override"))
            kv_bytes = asked  # the pool is as given: the uncertainty is the room's, checked here (_verdict skips it)
        if embeds or transfer:  # held after start-up beside everything the profile and the KV cache took
            kv_leaves.append((w.pp_stage, startup_free - (w_bytes + a + int(non_torch) + int(graphs + outside_graphs)
                                                          + kv_bytes + mm_ipc), margin))
        devices.append(DeviceBudget(rank=w.rank, gpu=gpu.id, total_bytes=total, budget_bytes=requested,
                                    weights_bytes=w_bytes, activation_bytes=a, non_torch_bytes=int(non_torch),
                                    cuda_graph_bytes=int(graphs), kv_cache_bytes=kv_bytes, uncertainty_bytes=margin,
                                    lora_bytes=lora, cpu_offload_bytes=offloaded,
                                    prefetch_buffer_bytes=prefetch_buffer, uva_layer_copy_bytes=copy,
                                    encoder_profile_bytes=enc_bytes))
        if w.rank % opts.tp == 0:
            pools.append((kv_pool(pool_spec, kvs, w.pp_stage), kv_bytes))
    for pool, _ in pools[:1]:
        if pool.refusal:  # --kv-cache-dtype-skip-layers: vLLM cannot group the specs
            errors.append(error("vllm.kv_skip.unify", pool.refusal, fix="skip sliding-window layers only (or "
                                "sliding_window), or drop --kv-cache-dtype-skip-layers",
                                source="vllm/v1/core/kv_cache_planning.py unify_kv_cache_spec_page_size (0.33.0)"))
    worst = min(d.kv_cache_bytes for d in devices)
    if worst <= 0:
        errors.append(_no_memory(version, extensible, u))
        return _result(False, version, spec, opts, devices, 0, 0.0, L, False, 0, errors, warnings, mnbt, seqs, u,
                       [prof.source], env=sam.env, plan=plan, extensible=extensible)
    logged = "current" if _key(version) >= _key(vllm_rules().logged_tokens_from_concurrency_since.version) else "legacy"
    caps = [capacity(pool, avail, L, kvs, logged) for pool, avail in pools]
    cap = min(caps, key=lambda c: c.num_blocks)
    trace = _trace(spec, gpu, opts, prof, sam, scheme, mxfp4, file_weight_bytes, act, car, devices[0], pools[0][0], worst,
                   cap, requested, total, u, mnbt, seqs, L)
    trace[3:3] = _feature_trace(opts, devices[0])
    if a2a:
        nvl, rdma = all2all.deepep_bytes(opts)
        trace.append(term("all-to-all buffer (each rank)", a2a, "DeepEP: VLLM_DEEPEP_BUFFER_SIZE_MB MiB NVLink + "
                          "as many RDMA with high throughput across machines; in non-torch above",
                          source=f"{all2all.SRC} _make_all2all_kwargs", all2all_backend=all2all.backend(opts),
                          nvl_bytes=nvl, rdma_bytes=rdma))
    if indexer is not None:
        at = next(i for i, t in enumerate(trace) if t.name == "activation (rank 0)") + 1
        trace.insert(at, term(
            "sparse indexer (rank 0)", indexer.persistent + indexer.transient, "persistent: K-gather workspace "
            "(align256(rows x index_head_dim) + align256(rows x 4), rows = max_model_len x 8 x factor) + 1 MiB radix "
            "top-k workspace + max_num_batched_tokens x index_topk x 4 index buffer; transient (in the forward peak): "
            + ("max(the dummy logits: max(VLLM_SPARSE_INDEXER_MAX_LOGITS_MB MiB / 4 x (logits bytes + FP32 copy), "
               "decode rows x round_up(max_model_len, lcm(split_kv, 1024 / logits bytes)) x (logits bytes + FP32 "
               "copy)), the fused MQA + top-k scratch); in the activation above" if indexer.release_034 else
               "VLLM_SPARSE_INDEXER_MAX_LOGITS_MB MiB + 2 x the index buffer under TP on CUDA; in the activation "
               "above"),
            source="data/vllm.json sparse_indexer (vllm/model_executor/layers/sparse_attn_indexer.py, "
                   "vllm/v1/attention/backends/mla/indexer.py get_max_prefill_buffer_size, "
                   + ("v0.34.0; vllm/model_executor/kernels/attention/dsa/fused_mqa_topk.py)" if indexer.release_034
                      else "v0.33.0)"),
            workspace=indexer.workspace, index_buffer=indexer.index_buffer, logits=indexer.logits,
            row_shard_exchange=indexer.exchange, fused_scratch=indexer.fused_scratch,
            logits_dtype=indexer.logits_dtype, decode_rows=indexer.decode_rows, rows=indexer.rows,
            sparse_mla_prefill_workspace_factor=indexer.factor))
    if cc_added:
        at = next(i for i, t in enumerate(trace) if t.name == "activation (rank 0)") + 1
        trace.insert(at, term(
            "confidential compute (rank 0)", cc_added, "VLLM_CONFIDENTIAL_COMPUTE=1, no UVA: max_num_seqs x "
            "max_model_len x 4 (all_token_ids) + max_num_seqs x channels x max_model_len x 4 (M-RoPE) + the device "
            "copies of those states' and the sampler's UVA pool slots; persistent, in the activation above",
            source="data/vllm.json confidential_compute (v0.34.0 vllm/v1/worker/gpu/states.py, mm/rope.py, "
                   "buffer_utils.py)", max_num_seqs=seqs, max_model_len=L))
    if ext_sizing:  # next to the pool's "kv available", which it bounds
        at = next(i for i, t in enumerate(trace) if t.name == "kv available (worst rank)") + 1
        trace.insert(at, _extensible_trace(prof, gpu, **ext_sizing))
    fits_len = all(c.fits_one_request for c in caps)
    est = _estimate_max_len(pools, kvs, L)
    if opts.offloader and any(d.cpu_offload_bytes for d in devices):
        warnings += _offload_messages(devices, pools, kvs, L, gpu, opts)
    if not fits_len:
        # with the extensible cache the refusal after warmup is the one where the measure, not the estimate, binds
        after_warmup = bool(ext_sizing) and ext_sizing["measured"] < ext_sizing["estimate"]
        errors.append(_max_model_len_refusal(cap, pools[0][0], worst, L, est, version, extensible, u, after_warmup))
    one_block_per_seq = _one_block_per_seq(spec, opts, version)
    if one_block_per_seq and seqs > cap.num_blocks:
        errors.append(_mamba_refusal(seqs, cap.num_blocks))
    freed = min(d.activation_bytes for d in devices) - act.workspace
    # the extensible cache commits its blocks after capture, from what is left: no OOM at capture to check
    graph_refusal = None if extensible else _graph_headroom_refusal(
        spec, gpu, opts, prof, car, total, requested, freed, outside_graphs if not opts.kv_cache_memory_bytes else None)
    if graph_refusal:
        errors.append(graph_refusal)
    warnings += kt_messages(kt_cfg, worst)
    if aux_on and not aux_refused:
        aux_msgs, aux_terms = _aux_output_terms(spec, gpu, opts, prof, car, total, requested, freed, cap,
                                                pools[0][0], kvs, mnbt, seqs)
        errors += [m for m in aux_msgs if m.level == "error"]
        warnings += [m for m in aux_msgs if m.level != "error"]
        trace += aux_terms
    at_estimate = fits_len and not errors
    if plan:
        trace.append(term("drafter (rank 0)", plan.weight_bytes, "the drafter's weights (in the weights above) and its "
                          "attention layers (in the KV pool's groups)",
                          source="vramcalc/vllm/spec_decode.py (vllm/config/speculative.py, vllm/v1/spec_decode/eagle.py)",
                          method=plan.method, num_speculative_tokens=plan.num_speculative_tokens,
                          kv_layers=sum(1 for layer in plan.draft_layers if layer.attention is not None)))
    if embeds:
        stage0 = [(room, m) for stage, room, m in kv_leaves if stage == 0]  # the encoder cache: PP stage 0's ranks
        left = min(room for room, _ in stage0)
        warnings.append(_embeds_message(embeds, left, max(m for _, m in stage0), opts))
        trace.append(term("encoder cache, precomputed embeddings (each rank of PP stage 0)", embeds.bytes,
                          "max_num_batched_tokens (the budget's floor) x width x dtype bytes; outside the KV budget, "
                          "held at run time from what the KV cache leaves (left_bytes: free at start-up less every "
                          "term above, the activation peak kept)",
                          source="vramcalc/vllm/mm_embeds.py (data/vllm_features.json multimodal mm_embeds, v0.34.0)",
                          tokens=embeds.tokens, width=embeds.width, itemsize=embeds.itemsize, left_bytes=left))
    if transfer and kv_leaves:  # every worker receives the trainer's weights (vllm/v1/worker/gpu_worker.py)
        left = min(room for _, room, _ in kv_leaves)
        warnings.append(transfer_message(transfer, left, max(m for _, _, m in kv_leaves)))
        trace.append(term("weight-transfer buffers (each rank)", transfer.bytes,
                          "the receive buffers of one weight update at the trainer's default init info; outside the "
                          "KV budget, taken after start-up from what the KV cache leaves (left_bytes: free at "
                          "start-up less every term above, the activation peak kept)",
                          source=f"vramcalc/vllm/weight_transfer.py ({transfer.source})",
                          backend=transfer.backend, buffer_bytes=transfer.buffer_bytes,
                          num_buffers=transfer.num_buffers, left_bytes=left))
    trace.append(_margin_trace(devices[0]))
    safe, refusal = _verdict(devices, pools, opts, kvs, L, logged, one_block_per_seq, seqs, at_estimate)
    if refusal:
        errors.append(refusal)
    # vramcalc's guard, like the margin; the extensible KV cache measures after warmup and keeps its own margin
    outside = None if extensible else _outside_budget_refusal(gpu, opts, prof, total, requested)
    if outside and at_estimate:
        errors.append(outside)
    return _result(fits_len, version, spec, opts, devices, cap.kv_cache_tokens, cap.max_concurrency, L, fits_len, est,
                   errors, warnings, mnbt, seqs, u, [prof.source], cap.num_blocks, at_estimate, safe, trace, sam.env,
                   plan=plan, extensible=extensible)


def _trace(spec: ModelSpec, gpu: GPU, opts: VLLMOptions, prof: VllmVersion, sam: SamplerPath, scheme: QuantScheme,
           mxfp4: str | None, file_weight_bytes: int | None, act: _Activation, car: bool, d0: DeviceBudget,
           pool0: KVPool, worst: int, cap: KVCapacity, requested: int, total: int, u: float, mnbt: int, seqs: int,
           L: int) -> list[TraceTerm]:
    """`vramcalc explain`: each budget term of rank 0 and the KV pool, with its formula and rule."""
    src = prof.source
    return [
        term("total", total, "the total memory CUDA reports for the GPU", source=gpu.usable_source),
        term("budget", requested, "ceil(total x gpu_memory_utilization)", source="vLLM v0.33.0 request_memory (docs/vllm.md#budget)",
             gpu_memory_utilization=u),
        term("weights (rank 0)", d0.weights_bytes, "per-rank tensor bytes: column/row sharding, vocab padded to 64, "
             "K/V replicated past the KV heads, PP stage split, + rotary cache",
             source="vramcalc/vllm/weights.py (vLLM linear layers, VocabParallelEmbedding, get_pp_indices)",
             tp=opts.tp, pp=opts.pp, format=scheme.method, mxfp4_kernel=mxfp4,
             from_file_headers=file_weight_bytes is not None and opts.tp == 1 and opts.pp == 1
             and _moe(spec, opts) is None),
        term("activation (rank 0)", d0.activation_bytes, "max(forward_coef x max_num_batched_tokens x intermediate / TP x "
             "dtype bytes, copies x max_num_seqs x vocab x 4 + sampler_const) + attention_workspace  [sampler on the last PP "
             "stage; attention_workspace: FlashInfer's buffers, engine.py _flashinfer_workspace]",
             source=f"{src}; sampler copies: data/vllm.json sampler.paths.{sam.path}",
             forward_coef=prof.activation.forward_coef, max_num_batched_tokens=mnbt, intermediate=act.intermediate,
             max_num_seqs=seqs, vocab=spec.vocab_size, sampler_path=sam.path, sampler_copies=sam.copies,
             sampler_const_gib=prof.activation.sampler_const_gib, attention_workspace=act.workspace),
        term("non-torch", d0.non_torch_bytes, "calibrated per layout (CUDA context, NCCL and custom all-reduce "
             "buffers under TP)", source=src, tp=opts.tp, pp=opts.pp, custom_all_reduce=car),
        term("cuda graphs", d0.cuda_graph_bytes, "estimate, inside the budget from 0.20; 0 with --enforce-eager",
             source=src),
        term("kv available (worst rank)", worst, "budget - weights - activation - non-torch - cuda graphs"
             + ("; with the extensible KV cache at most what it measures (next term)"
                if prof.extensible_kv_cache is not None and d0.budget_bytes == requested and worst < requested - (
                    d0.weights_bytes + d0.activation_bytes + d0.non_torch_bytes + d0.cuda_graph_bytes) else ""),
             source="vLLM v0.33.0 gpu_worker.py Worker.determine_available_memory (docs/vllm.md#budget)"),
        term("page", pool0.page_bytes, "block_size x KV bytes per token and layer (hybrid: aligned up to the "
             "Mamba state page)", source="vllm/v1/kv_cache_interface.py page_size_bytes; "
             "platforms/interface.py _align_hybrid_block_size", block_size=pool0.block_size,
             kv_bytes_per_token_layer=pool0.attn_bytes_per_token_layer),
        term("bytes per block", pool0.bytes_per_block, "page x group size (layers sharing one block id)",
             source="vllm/v1/core/kv_cache_planning.py", group_size=pool0.group_size, groups=len(pool0.groups),
             padding_layers=pool0.padding_layers),
        term("blocks", cap.num_blocks, "kv available // bytes per block", unit="blocks",
             source="get_kv_cache_config_from_groups"),
        term("blocks per request", cap.blocks_per_request, "ceil(max_model_len / block_size) per full-attention "
             "group; window + batch for sliding groups; 1-2 per Mamba group", unit="blocks",
             source="vLLM v0.33.0 _max_memory_usage_bytes_from_groups (docs/vllm.md#blocks-per-request)", max_model_len=L),
        term("KV cache tokens", cap.kv_cache_tokens, "blocks / blocks per request x max_model_len", unit="tokens",
             source="vLLM's 'GPU KV cache size' log line"),
        term("max concurrency", round(cap.max_concurrency, 2), "blocks / blocks per request", unit="x"),
    ]


def _embeds_cache(spec: ModelSpec, opts: VLLMOptions, version: str, mnbt: int, wdtype: str | None,
                  warnings: list[Message], max_len: int | None = None) -> EmbedsCache | None:
    """--enable-mm-embeds (or an EC consumer) with every modality at 0: the run-time encoder cache of precomputed
    embeddings (vramcalc/vllm/mm_embeds.py), from vLLM 0.34.0 (the release its oracle checks); a class whose
    modalities are not read, or an older release, is warned about."""
    from .features import features

    if spec.vision is None or not embeds_on(opts.enable_mm_embeds, opts.ec_role):
        return None
    rule = vllm_rules().zero_limits_skip_tower_since
    marked = rule.tower_modalities.get(spec.architecture or "")
    zero = opts.limit_mm_per_prompt or {}
    tower_zero = opts.language_model_only or bool(marked and all(zero.get(m) == 0 for m in marked))
    listed = spec.architecture in features().multimodal.mm_embeds.modalities
    since = features().multimodal.mm_embeds.version
    if listed and embedding_only(spec, opts.limit_mm_per_prompt, opts.language_model_only) and \
            _key(version) >= _key(since):
        from .mm_profile import ProcessorKwargsError, max_item_tokens

        largest = None
        if max_len is not None:  # every modality is embedding-only here: the budget sizes each (limits ignored)
            try:
                largest = max_item_tokens(spec.id, opts.mm_processor_kwargs, {}, max_len)
            except ProcessorKwargsError:
                largest = None  # refused already (vllm.mm.processor_kwargs)
        return embeds_cache(spec, mnbt, wdtype, opts.ec_role, largest)
    if (tower_zero or listed and embedding_only(spec, opts.limit_mm_per_prompt, opts.language_model_only)):
        why = (f"vLLM {version} is older than the release it is checked at ({since})" if listed else
               f"whether {spec.architecture}'s vLLM class takes precomputed embeddings is not read")
        warnings.append(warning("vllm.mm.embeds_unread", f"{_embeds_flag(opts)} with every modality at 0: the "
                                "runner keeps an encoder cache for precomputed embeddings that the profile run leaves "
                                f"empty (at least {mnbt:,} tokens x {spec.hidden_size} x the dtype's bytes per rank), "
                                f"held at run time outside the KV budget; {why}, so it is not counted",
                                source="vllm/multimodal/encoder_budget.py MultiModalBudget (0.34.0)"))
    return None


def _embeds_flag(opts: VLLMOptions) -> str:
    return "--enable-mm-embeds" if opts.enable_mm_embeds else f"--ec-transfer-config ({opts.ec_role})"


def _embeds_message(e: EmbedsCache, left: int, margin: int, opts: VLLMOptions) -> Message:
    """The run-time encoder cache against what the KV cache leaves (the free memory at start-up less every term the
    profile and the KV cache took, the activation peak kept in torch's cache): vllm.mm.embeds_oom where its floor
    does not fit, else vllm.mm.embeds_cache (never a promise: the budget's floor only, and the margin of the other
    terms said); vllm.mm.embeds_refused for a class that asserts on image embeds."""
    flag, src = _embeds_flag(opts), "vllm/multimodal/encoder_budget.py, vllm/v1/worker/gpu/mm/encoder_runner.py (0.34.0)"
    if e.refusal:
        return warning("vllm.mm.embeds_refused", f"{flag} with every modality at 0: this model's vLLM class takes no "
                       f"precomputed image embeddings, so its encoder cache stays empty; a request sending them "
                       f"fails: {e.refusal}", source=src)
    what = (f"the encoder cache for {'the EC producer' + chr(39) + 's encoder outputs' if e.consumer else 'precomputed embeddings'}"
            f" holds at least {e.tokens:,} tokens (max_num_batched_tokens; the processor's largest item can raise "
            f"it, which vramcalc does not read) x {e.width:,} x {e.itemsize} bytes = {e.bytes / GIB:.2f} GiB on each "
            "rank of the first PP stage, which the profile run leaves empty, so they come out of what the KV cache "
            f"leaves: {max(left, 0) / GIB:.2f} GiB per GPU at the estimate, {max(left - margin, 0) / GIB:.2f} GiB "
            "within its margin")
    fix = f"a smaller --max-num-batched-tokens or --gpu-memory-utilization (or {flag} off)"
    if e.bytes > left:
        return warning("vllm.mm.embeds_oom", f"{flag}: the KV cache still starts, but precomputed embeddings may run "
                       f"out of memory at run time: {what}", fix=fix, source=src)
    return warning("vllm.mm.embeds_cache", f"{flag}: {what}; no promise that a larger item fits", source=src)


def _margin_trace(d0: DeviceBudget) -> TraceTerm:
    vm = vllm_rules().verdict_margin
    return term("margin (rank 0)", d0.uncertainty_bytes,
                f"weights x ({vm.weights_from_config:.0%} from a config, {vm.weights_from_files:.0%} from "
                f"file headers) + activation x {vm.activation:.0%} + non-torch x {vm.non_torch:.0%} + "
                "(CUDA-graph upper bound - estimate)",
                source="data/vllm.json verdict_margin (held-out errors of benchmarks/vllm_budget.py)")


def _estimate_max_len(pools: list[tuple[KVPool, int]], kvs: KVSettings, L: int) -> int:
    """_estimate_max_model_len_from_groups: the largest length one request fits in, every rank."""
    lo, hi = 0, max(L, 1) * 64
    def ok(n: int) -> bool:
        return n == 0 or all(p.fits_request(n, avail, kvs) for p, avail in pools)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _result(fits: bool, version: str, spec: ModelSpec, opts: VLLMOptions, devices: list[DeviceBudget], tokens: int,
            conc: float, L: int, fits_len: bool, est: int, errors: list[Message], warnings: list[Message], mnbt: int,
            seqs: int, u: float, sources: list[str], blocks: int = 0, at_estimate: bool = False, safe: int = 0,
            trace: list[TraceTerm] | None = None, env: str | None = None, plan: SpecPlan | None = None,
            extensible: bool = False) -> VLLMResult:
    counts = count_params(spec)
    runtime = None
    if opts.quantization and (_online(opts) or opts.quantization == "humming"):
        runtime = opts.quantization  # vLLM quantizes the checkpoint at load time
    elif opts.quantization:
        target = quant_targets().get(opts.quantization)
        runtime = target.vllm_runtime_flag if target else None
    # a target vLLM cannot produce at load time needs a checkpoint in that format: say so in the command
    model = f"<{opts.quantization.upper()} checkpoint of {spec.id}>" if opts.quantization and not runtime else spec.id
    cmd = ([env] if env else []) + [f"vllm serve {model}"]
    if opts.hf_config_path:
        cmd.append(f"--hf-config-path {shlex.quote(opts.hf_config_path)}")
    if opts.tp > 1:
        cmd.append(f"--tensor-parallel-size {opts.tp}")
    if opts.pp > 1:
        cmd.append(f"--pipeline-parallel-size {opts.pp}")
    if opts.data_parallel_size > 1:
        cmd.append(f"--data-parallel-size {opts.data_parallel_size}")
    if opts.enable_expert_parallel:
        cmd.append("--enable-expert-parallel")
    cmd.append(f"--max-model-len {L}")
    if opts.gpu_memory_utilization is not None or not extensible:  # vLLM 0.34 asks to leave it unset (cache.py)
        cmd.append(f"--gpu-memory-utilization {u}")
    if opts.enable_extensible_kv_cache is not None:
        cmd.append(f"--{'enable' if opts.enable_extensible_kv_cache else 'disable'}-extensible-kv-cache")
    if runtime:
        cmd.append(f"--quantization {runtime}")
    if opts.quantization_config is not None:
        cmd.append(f"--quantization-config {shlex.quote(opts.quantization_config)}")
    if opts.kv_cache_dtype != "auto":
        cmd.append(f"--kv-cache-dtype {opts.kv_cache_dtype}")
    if opts.max_num_seqs:
        cmd.append(f"--max-num-seqs {seqs}")
    if opts.max_num_batched_tokens:
        cmd.append(f"--max-num-batched-tokens {mnbt}")
    if opts.enforce_eager:
        cmd.append("--enforce-eager")
    if not opts.enable_chunked_prefill:
        cmd.append("--disable-chunked-prefill")
    if opts.moe_backend:
        cmd.append(f"--moe-backend {opts.moe_backend}")
    if opts.disable_custom_all_reduce:
        cmd.append("--disable-custom-all-reduce")
    if opts.speculative_config is not None:
        cmd.append(f"--speculative-config '{json.dumps(opts.speculative_config, separators=(',', ':'))}'")
    if opts.diffusion_config is not None:
        cmd.append(f"--diffusion-config '{json.dumps(opts.diffusion_config, separators=(',', ':'))}'")
    cmd += _feature_flags(opts)
    if not opts.estimate_cudagraphs:  # an environment variable (vllm/envs.py)
        cmd.insert(0, "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0")
    if opts.pp_layer_partition is not None:  # vLLM reads it from the environment (vllm/envs.py)
        cmd.insert(0, "VLLM_PP_LAYER_PARTITION=" + ",".join(map(str, opts.pp_layer_partition)))
    if opts.mla_disable:  # an environment variable too (vllm/envs.py VLLM_MLA_DISABLE)
        cmd.insert(0, "VLLM_MLA_DISABLE=1")
    if opts.replicate_embed:  # an environment variable (vllm/envs.py VLLM_REPLICATE_EMBED)
        cmd.insert(0, "VLLM_REPLICATE_EMBED=1")
    if opts.simple_kv_offload and opts.kv_offloading_size is not None:  # an environment variable (vllm/envs.py)
        cmd.insert(0, "VLLM_USE_SIMPLE_KV_OFFLOAD=1")
    if not opts.rocm_fp8_padding:  # an environment variable, read on ROCm (vllm/envs.py VLLM_ROCM_FP8_PADDING)
        cmd.insert(0, "VLLM_ROCM_FP8_PADDING=0")
    if opts.weight_offloading_disable_uva:  # an environment variable (vllm/envs.py VLLM_WEIGHT_OFFLOADING_DISABLE_UVA)
        cmd.insert(0, "VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1")
    if opts.confidential_compute:  # an environment variable (v0.34.0 vllm/envs.py VLLM_CONFIDENTIAL_COMPUTE)
        cmd.insert(0, "VLLM_CONFIDENTIAL_COMPUTE=1")
    if not opts.mxfp8_emulation_dequant:  # an environment variable (vllm/envs.py VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD)
        cmd.insert(0, "VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0")
    if opts.mxfp4_emulation_dequant:  # an environment variable (vllm/envs.py VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD)
        cmd.insert(0, "VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1")
    if opts.reload_mode != "layerwise":  # an environment variable (vllm/envs.py, 0.34.0)
        cmd.insert(0, f"VLLM_RELOAD_MODE={opts.reload_mode}")
    if opts.fp8_moe_requant:  # environment variables (vllm/envs.py, 0.34.0)
        cmd[0:0] = ["VLLM_FP8_MOE_REQUANT=mxfp4"] + (
            [f"VLLM_FP8_MOE_REQUANT_ACT={opts.fp8_moe_requant_act}"] if opts.fp8_moe_requant_act != "a8w4" else []) + (
            ["VLLM_ROCM_USE_AITER=1"] if opts.rocm_aiter_moe else [])
    for var, val in (("VLLM_HUMMING_INPUT_QUANT_CONFIG", opts.humming_input_quant_config),
                     ("VLLM_HUMMING_ONLINE_QUANT_CONFIG", opts.humming_online_quant_config)):
        if val is not None:  # environment variables (v0.34.0 vllm/envs.py)
            cmd.insert(0, f"{var}={shlex.quote(val)}")
    if opts.kv_cache_layout is not None:  # an environment variable (vllm/envs.py VLLM_KV_CACHE_LAYOUT)
        cmd.insert(0, f"VLLM_KV_CACHE_LAYOUT={opts.kv_cache_layout}")
    if opts.flashinfer_workspace_bytes is not None:  # an environment variable (vllm/envs.py)
        cmd.insert(0, f"VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE={opts.flashinfer_workspace_bytes}")
    from .features import features

    if opts.deepep_buffer_size_mb != features().all2all.deepep_buffer_mib_default:  # environment variables (envs.py)
        cmd.insert(0, f"VLLM_DEEPEP_BUFFER_SIZE_MB={opts.deepep_buffer_size_mb}")
    if opts.deepep_force_intra_node:
        cmd.insert(0, "VLLM_DEEPEP_HIGH_THROUGHPUT_FORCE_INTRA_NODE=1")
    if opts.sparse_indexer_max_logits_mb is not None:  # an environment variable (vllm/envs.py)
        cmd.insert(0, f"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB={opts.sparse_indexer_max_logits_mb}")
    if opts.sparse_indexer_max_decode_logits_mb is not None:  # an environment variable (v0.34.0 vllm/envs.py)
        cmd.insert(0, f"VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB={opts.sparse_indexer_max_decode_logits_mb}")
    if not opts.use_fused_mqa_topk:  # an environment variable (v0.34.0 vllm/envs.py)
        cmd.insert(0, "VLLM_USE_FUSED_MQA_TOPK=0")
    if opts.max_tokens_per_expert_fp4_moe is not None:  # an environment variable (vllm/envs.py)
        cmd.insert(0, f"VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE={opts.max_tokens_per_expert_fp4_moe}")
    return VLLMResult(
        fits=fits and not errors, engine_version=version,
        model=ModelSummary(id=spec.id, params_total=counts.total, params_active=counts.active),
        layout=Layout(tp=opts.tp, pp=opts.pp, replicas=opts.data_parallel_size, max_num_seqs=seqs, max_num_batched_tokens=mnbt),
        devices=devices, kv_cache_tokens=tokens, num_gpu_blocks=blocks, max_concurrency=round(conc, 2), max_model_len=L,
        max_model_len_fits=fits_len, estimated_max_model_len=est, safe_max_model_len=safe, fits_at_estimate=at_estimate, trace=trace or [], errors=errors, warnings=warnings,
        command=" ".join(cmd), sources=sources, speculative=summary(plan) if plan and not plan.errors else None,
        cpu_offload_bytes=max((d.cpu_offload_bytes for d in devices), default=0), extensible_kv_cache=extensible)


def _feature_flags(opts: VLLMOptions) -> list[str]:
    """The optional features' flags, written back as vllm serve takes them."""
    from .features import features

    out = []
    if opts.enable_elastic_ep:
        out.append("--enable-elastic-ep")
    if opts.enable_lora:
        out.append("--enable-lora")
        for flag, v in (("--max-loras", opts.max_loras), ("--max-lora-rank", opts.max_lora_rank),
                        ("--max-cpu-loras", opts.max_cpu_loras), ("--lora-extra-vocab-size", opts.lora_extra_vocab_size)):
            if v is not None:
                out.append(f"{flag} {v}")
        if opts.fully_sharded_loras:
            out.append("--fully-sharded-loras")
        if opts.lora_dtype != "auto":
            out.append(f"--lora-dtype {opts.lora_dtype}")
        for flag, on in (("--enable-moe-shared-loras", opts.enable_moe_shared_loras),
                         ("--enable-mixed-moe-lora-format", opts.enable_mixed_moe_lora_format),
                         ("--specialize-active-lora", opts.specialize_active_lora),
                         ("--enable-tower-connector-lora", opts.enable_tower_connector_lora)):
            if on:
                out.append(flag)
    if opts.cpu_offload_gb:
        out.append(f"--cpu-offload-gb {opts.cpu_offload_gb:g}")
    if opts.cpu_offload_params:
        out.append("--cpu-offload-params " + " ".join(opts.cpu_offload_params))
    if opts.offload_backend != "auto":
        out.append(f"--offload-backend {opts.offload_backend}")
    if opts.offload_group_size:
        out.append(f"--offload-group-size {opts.offload_group_size}")
    if opts.offload_num_in_group != 1:
        out.append(f"--offload-num-in-group {opts.offload_num_in_group}")
    if opts.offload_prefetch_step != 1:
        out.append(f"--offload-prefetch-step {opts.offload_prefetch_step}")
    if opts.offload_params:
        out.append("--offload-params " + " ".join(opts.offload_params))
    if opts.kv_cache_memory_bytes:
        out.append(f"--kv-cache-memory-bytes {opts.kv_cache_memory_bytes}")
    if opts.language_model_only:
        out.append("--language-model-only")
    if opts.mm_ipc_gpu_memory_gb:
        out.append(f"--mm-ipc-gpu-memory-gb {opts.mm_ipc_gpu_memory_gb:g}")
    if opts.video_pruning_rate is not None:
        out.append(f"--video-pruning-rate {opts.video_pruning_rate:g}")
    if opts.mm_encoder_attn_dtype is not None:
        out.append(f"--mm-encoder-attn-dtype {opts.mm_encoder_attn_dtype}")
    if opts.mm_encoder_attn_backend is not None:
        out.append(f"--mm-encoder-attn-backend {opts.mm_encoder_attn_backend}")
    if opts.num_gpu_blocks_override:
        out.append(f"--num-gpu-blocks-override {opts.num_gpu_blocks_override}")
    if opts.cudagraph_capture_sizes is not None:
        out.append("--cudagraph-capture-sizes " + " ".join(str(x) for x in opts.cudagraph_capture_sizes))
    if opts.max_cudagraph_capture_size is not None:
        out.append(f"--max-cudagraph-capture-size {opts.max_cudagraph_capture_size}")
    if opts.performance_mode != "balanced":
        out.append(f"--performance-mode {opts.performance_mode}")
    if opts.disable_sliding_window:
        out.append("--disable-sliding-window")
    if opts.enable_eplb:
        out.append("--enable-eplb")
    if opts.eplb_config:
        out.append("--eplb-config '" + json.dumps(opts.eplb_config, separators=(",", ":")) + "'")
    if opts.decode_context_parallel_size > 1:
        out.append(f"--decode-context-parallel-size {opts.decode_context_parallel_size}")
    if opts.dcp_q_replicate:
        out.append("--dcp-q-replicate")
    if opts.prefill_context_parallel_size > 1:
        out.append(f"--prefill-context-parallel-size {opts.prefill_context_parallel_size}")
    if opts.load_format != "auto":
        out.append(f"--load-format {opts.load_format}")
    if opts.enable_dbo:
        out.append("--enable-dbo")
    if opts.ubatch_size:
        out.append(f"--ubatch-size {opts.ubatch_size}")
    if opts.all2all_backend:
        out.append(f"--all2all-backend {opts.all2all_backend}")
    if opts.attention_backend:
        out.append(f"--attention-backend {opts.attention_backend}")
    if opts.attention_config:
        out.append("--attention-config '" + json.dumps(opts.attention_config, separators=(",", ":")) + "'")
    if opts.kv_transfer_config:
        out.append("--kv-transfer-config '" + json.dumps(opts.kv_transfer_config, separators=(",", ":")) + "'")
    if opts.enable_return_routed_experts:
        out.append("--enable-return-routed-experts")
    if opts.aux_output_config:
        out.append("--aux-output-config '" + json.dumps(opts.aux_output_config, separators=(",", ":")) + "'")
    if opts.hf_overrides:
        out.append("--hf-overrides '" + json.dumps(opts.hf_overrides, separators=(",", ":")) + "'")
    if opts.kv_cache_dtype_skip_layers:
        out.append("--kv-cache-dtype-skip-layers " + " ".join(opts.kv_cache_dtype_skip_layers))
    if opts.mamba_block_size is not None:
        out.append(f"--mamba-block-size {opts.mamba_block_size}")
    if opts.gdn_prefill_backend is not None:
        out.append(f"--gdn-prefill-backend {opts.gdn_prefill_backend}")
    if opts.linear_backend not in (None, "auto"):
        out.append(f"--linear-backend {opts.linear_backend}")
    if opts.sparse_indexer_topk_backend not in (None, "auto"):
        out.append(f"--sparse-indexer-topk-backend {opts.sparse_indexer_topk_backend}")
    if opts.use_replayssm:
        out.append("--use-replayssm")
    if opts.replayssm_buffer_len != features().replayssm.default_buffer_len:
        out.append(f"--replayssm-buffer-len {opts.replayssm_buffer_len}")
    if opts.mamba_backend != "triton":
        out.append(f"--mamba-backend {opts.mamba_backend}")
    if opts.mamba_ssu_algorithm is not None:
        out.append(f"--mamba-ssu-algorithm {opts.mamba_ssu_algorithm}")
    if opts.runner != "auto":
        out.append(f"--runner {opts.runner}")
    if opts.convert != "auto":
        out.append(f"--convert {opts.convert}")
    if opts.kv_offloading_size is not None:
        out.append(f"--kv-offloading-size {opts.kv_offloading_size:g}")
        if opts.kv_offloading_backend != "native":
            out.append(f"--kv-offloading-backend {opts.kv_offloading_backend}")
    if opts.disable_hybrid_kv_cache_manager:
        out.append("--disable-hybrid-kv-cache-manager")
    if opts.mm_encoder_tp_mode != "weights":
        out.append(f"--mm-encoder-tp-mode {opts.mm_encoder_tp_mode}")
    if opts.model_impl != "auto":
        out.append(f"--model-impl {opts.model_impl}")
    for flag, dt in (("--mamba-cache-dtype", opts.mamba_cache_dtype), ("--mamba-ssm-cache-dtype",
                                                                       opts.mamba_ssm_cache_dtype)):
        if dt != "auto":
            out.append(f"{flag} {dt}")
    if opts.limit_mm_per_prompt is not None:
        out.append("--limit-mm-per-prompt '" + json.dumps(opts.limit_mm_per_prompt, separators=(",", ":")) + "'")
    if opts.disable_chunked_mm_input:
        out.append("--disable-chunked-mm-input")
    if opts.mm_processor_kwargs is not None:
        out.append("--mm-processor-kwargs '" + json.dumps(opts.mm_processor_kwargs, separators=(",", ":")) + "'")
    if opts.enable_mm_embeds:
        out.append("--enable-mm-embeds")
    if opts.weight_transfer_backend is not None:
        out.append("--weight-transfer-config '" + json.dumps({"backend": opts.weight_transfer_backend}) + "'")
    if opts.enable_prefix_caching:
        out.append("--enable-prefix-caching")
    if opts.enable_prefix_caching is False:
        out.append("--no-enable-prefix-caching")
    return out

