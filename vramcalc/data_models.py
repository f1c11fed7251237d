"""The shapes of the bundled data files (vramcalc/data/*.json), one pydantic model per file.

Every file is validated when first read (vramcalc.data_files.load): a missing or misspelt field is
refused with the file and the field's path named. Where a file's shape is fixed the model forbids
extra keys; tables keyed by an open set of names (GPU ids, model types, versions) are dicts of
typed rows. Numbers keep the JSON type they are written with (an int stays an int), so figures
printed from them read exactly as the file does. Provenance is typed too: `source_note` is a
file's (or a section's) `_source`, and `<field>_source` is the `_<field>` comment beside a figure.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Number = int | float  # as written in the file: 80 stays 80, 989.4 stays 989.4


class Fixed(BaseModel):
    """A record of fixed shape: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- architectures.json: transformers class defaults by model_type ------------------------------

class CompositeArch(Fixed):
    class_: str = Field(alias="class")
    tie_word_embeddings: bool


class TextArch(Fixed):
    aliases: dict[str, str]  # transformers attribute_map: the name a config may use -> ours
    class_: str = Field(alias="class")
    defaults: dict[str, Any]  # the config class's __init__ defaults, as transformers sets them
    required: list[str]


class VisionArch(Fixed):
    class_: str = Field(alias="class")
    defaults: dict[str, Any]


class Architectures(Fixed):
    source_note: str = Field(alias="_source")
    composite: dict[str, CompositeArch]
    text: dict[str, TextArch]
    vision: dict[str, VisionArch]


# --- gguf_quants.json ---------------------------------------------------------------------------

class GGUFSources(Fixed):
    ggml_types: str
    llama_ftype_ids: str
    tensor_mix: str
    sizes_ppl: str
    bpw_table: str


class GGMLTypeRow(Fixed):
    name: str
    ggml_type_id: int
    block_size_elems: int
    bytes_per_block: int
    bits_per_weight: Number
    bytes_per_elem: Number
    note: str


class LlamaFtypeRow(Fixed):
    name: str
    short_name: str
    llama_ftype_id: int
    base_ggml_type: str
    tensor_mix: str
    bpw_llama31_8b_readme: Number | None = None
    bpw_llama3_8b_derived: Number | None = None
    nominal_bpw_quantize_help: Number | None = None
    ppl_delta_llama3_8b: Number | str | None = None
    size_gib_llama31_8b_readme: Number | None = None
    size_gib_llama3_8b_quantize_help: Number | None = None


class GGUFQuants(Fixed):
    description: str
    sources: GGUFSources
    notes: list[str]
    ggml_types: list[GGMLTypeRow]
    llama_ftypes: list[LlamaFtypeRow]
    kv_cache_types_allowed: list[str]
    kv_cache_types_source: str


# --- gpus.json, gpu_cuda_totals.json, gpu_crosschecks.json, unified_memory.json ------------------

class GPURow(Fixed):
    id: str
    name: str
    vendor: str
    segment: str
    architecture: str
    chip: str
    compute_capability: str | None
    gfx_arch: str | None
    memory_gib: Number
    memory_type: str
    unified_memory: bool
    memory_bandwidth_gbs: Number
    fp16_tflops_dense: Number | None
    bf16_tflops_dense: Number | None
    fp16_tflops_derivation: str | None
    fp8_hw: bool
    fp8_tflops_dense: Number | None
    fp4_hw: bool
    fp4_tflops_dense: Number | None
    nvlink: bool
    nvlink_bandwidth_gbs: Number | None
    interconnect_note: str | None
    pcie_gen: int | None
    pcie_lanes: int | None
    tdp_w: int | None
    verification: str  # vendor_datasheet, cross_checked or unverified
    notes: str | None
    sources: list[str]
    aliases: list[str] = []  # other names the product goes by (lookup keys, each naming this product only)
    gpu_cores: int | None = None  # Apple: the GPU core count that tells bins apart
    compute_units: int | None = None  # AMD: the vendor's compute-unit count (current_platform.num_compute_units)
    memory_options_gib: list[Number] | None = None  # unified memory: the RAM sizes this bin is sold with
    host_ram: bool = False  # a PC iGPU sharing the host's RAM: memory_gib is what is assumed when no size is given


class NotPlanned(Fixed):
    """A device named in measurements that has no entry, and why it is refused."""
    keys: list[str]  # lookup keys (gpus._parse_name) that name it
    prefixes: list[str]  # lookup-key prefixes that name it (a family: uhd630, uhd770 ...)
    device: str
    why: str
    sources: list[str]


class GPUTable(Fixed):
    description: str
    schema_: dict[str, str] = Field(alias="schema")  # what each column means
    gpus: list[GPURow]
    not_planned: list[NotPlanned] = []


class CudaTotal(Fixed):
    gib: float
    source: str


class TotalRule(Fixed):
    segments: list[str]  # gpus.json segments it applies to; empty = any
    memory_prefix: str  # gpus.json memory_type starts with this (GDDR, HBM)
    ratio: float  # CUDA total / vendor capacity, at or below every logged ratio of such cards
    why: str


class CudaTotals(Fixed):
    source_note: str = Field(alias="_source")
    estimate_rules: list[TotalRule]
    estimate_ratio: float  # any other card
    totals: dict[str, CudaTotal]  # by GPU id
    upper_bounds_mib: dict[str, int | str]  # nvidia-smi totals by GPU id (and their "_source")


class CrossCheck(Fixed):
    figures: dict[str, Number | str]  # gpus.json column -> the value the pages give
    pages: list[str]


class CrossChecks(Fixed):
    source_note: str = Field(alias="_source")
    checks: dict[str, CrossCheck]  # by GPU id


class AppleUnified(Fixed):
    rule: str
    fraction_small: float
    fraction_large: float
    threshold_gib: Number
    source: str


class UnifiedRule(Fixed):
    rule: str
    fraction: float
    source: str


class UnifiedMemory(Fixed):
    source_note: str = Field(alias="_source")
    apple: AppleUnified
    amd_strix_halo: UnifiedRule = Field(alias="amd-strix-halo")
    nvidia_gb10: UnifiedRule = Field(alias="nvidia-gb10")
    pc_igpu: UnifiedRule | None = Field(default=None, alias="pc-igpu")


# --- llamacpp_backends.json, llamacpp_margins.json ----------------------------------------------

class LlamaBackend(Fixed):
    device: str
    for_: str = Field(alias="for")
    split_buffers: bool
    pipeline_parallel: bool
    offload_min_batch: int  # offload_op: the batch from which the backend takes ops on host weights (0: never)
    host_buffer: bool  # has a pinned host buffer type (ggml_backend_dev_host_buffer_type)
    # the weight types whose rows the backend reads (GET_ROWS), at the modelled build and before PR #25962; None: not
    # recorded, taken as every type (get_rows_source). '#256': only when the row length is a multiple of 256
    get_rows_types: list[str] | None = None
    get_rows_types_before_25962: list[str] | None = None


class SmTensor(Fixed):
    needs_flash_attn: str
    needs_flash_attn_source: str
    no_fit: str
    no_fit_source: str
    unsupported_arch_message: str
    unsupported_arch_source: str
    unsupported_gguf_archs: list[str]
    hf_model_types: dict[str, str]  # HF model_type -> the GGUF architecture convert_hf_to_gguf writes
    hf_model_types_source: str
    memory: str
    experimental: str
    split_tensors: list[str]
    split_tensors_source: str


class UnifiedBackendNotes(Fixed):
    cuda_rocm: str
    vulkan: str


class NoBackend(Fixed):
    source_note: str = Field(alias="_source")
    vendors: dict[str, str]  # vendor -> llama.cpp's own words


class LlamaBackends(Fixed):
    source_note: str = Field(alias="_source")
    backends: dict[str, LlamaBackend]
    default_backend: dict[str, str]  # GPU vendor -> ggml backend
    split_buffers_source: str
    sm_tensor: SmTensor
    unified_memory: UnifiedBackendNotes
    pipeline_parallel_source: str
    iswa_gguf_archs: list[str]
    iswa_gguf_archs_source: str
    rs_rollback_gguf_archs: list[str]  # n_rs_seq recurrent-state snapshots with a draft-mtp-like --spec-type
    rs_rollback_source: str
    # the architectures whose graph keeps res->t_layer_inp (the target of draft-dflash / draft-dspark, draft-eagle3)
    layer_inp_gguf_archs: list[str] = []
    layer_inp_source: str = ""
    op_offload_source: str
    repack_types: dict[str, list[str]]  # host CPU -> the ggml types CPU_REPACK interleaves
    repack_types_source: str
    host_buffer_source: str
    get_rows_source: str
    host_inputs_source: str
    split_inputs_source: str
    no_backend: "NoBackend | None" = None  # vendors with no ggml backend


class Margin(Fixed):
    value: float
    evidence: str  # the measured errors that justify it, and where they are recorded


class ReplayMargin(Fixed):
    value: float
    evidence: str


class LlamaMargins(Fixed):
    source_note: str = Field(alias="_source")
    uncertainty: Margin
    replay_gpu_margin: Margin
    replay_margins: dict[str, ReplayMargin]  # by GGUF architecture


# --- planner.json, quant_targets.json, speed.json -----------------------------------------------

class VllmConversion(Fixed):
    quant: str
    bits: int
    note: str


class Planner(Fixed):
    source_note: str = Field(alias="_source")
    default_context: int
    high_gpu_memory_utilization: float
    high_gpu_memory_utilization_source: str = Field(alias="_high_gpu_memory_utilization")
    reference_gpus: list[str]  # data/gpus.json ids, tried by `check -- COMMAND` without --gpu
    reference_gpus_source: str = Field(alias="_reference_gpus")
    vllm_conversions: list[VllmConversion]
    gguf_ftypes: list[str]
    quant_bits: dict[str, Number]  # checkpoint, fp8, ..., gguf:<FTYPE> -> bits per weight


class QuantTarget(Fixed):
    method: str
    note: str
    bits: int | None = None
    block: list[int] | None = None
    scale_dtype: str | None = None
    group_size: int | None = None
    zero_point: bool | None = None
    static_input_scale: bool | None = None
    double_quant: bool | None = None
    quantize_groups: list[str] | None = None
    vllm_runtime_flag: str | None = None


class StandInRecipe(Fixed):
    url: str
    kind: str
    ignore: list[str]
    also: list[str] = []


class StandInFamily(Fixed):
    model_types: list[str]
    targets: list[str]
    default: str
    fetch_hint: str
    recipes: dict[str, StandInRecipe]


class StandIns(Fixed):
    note: str = Field(alias="_note")
    families: dict[str, StandInFamily]


class QuantTargets(Fixed):
    vllm_runtime_flag_source: str = Field(alias="_vllm_runtime_flag")
    source_note: str = Field(alias="_source")
    targets: dict[str, QuantTarget]
    stand_ins: StandIns | None = None


class SpeedProfile(Fixed):
    prefill_mfu: float
    fixed_ms_per_layer: float  # llama.cpp on CUDA: builds with CUDA graphs (speed.cuda_graphs_build)
    fixed_ms_per_layer_before_cuda_graphs: float | None = None  # llama.cpp on CUDA, builds before them
    # llama.cpp on Vulkan: one cost per build era (speed.llamacpp_vulkan_eras), oldest first; the last is the newest's
    fixed_ms_per_layer_by_era: list[float] | None = None
    bandwidth_efficiency: float
    calibrated_on: list[str]
    median_abs_error: float
    prefill_calibrated_on: list[str] | None = None


class Link(Fixed):
    bandwidth_gbs: Number
    hop_us: Number
    note: str
    allreduce_us_per_peer: Number
    calibrated: str | None = None


class LlamacppGraphs(Fixed):
    """The llama.cpp release from which the CUDA backend replays one token's kernels as a CUDA graph."""

    from_build: int
    from_date: str  # the release's date (YYYY-MM-DD): builds named by a date compare with it
    source: str


class LlamacppVulkanEras(Fixed):
    """The build eras of llama.cpp's Vulkan fixed cost: era i holds the first i boundary PRs (oldest first), each a
    speed_only change of data/llamacpp_builds.json placed by vramcalc/llamacpp/builds.py resolve_build."""

    source_note: str = Field(alias="_source")
    boundary_prs: list[int]


class LlamacppStatePasses(Fixed):
    """How many times llama.cpp's decode graph reads or writes a recurrent layer's state per step."""

    source_note: str = Field(alias="_source")
    conv: int
    temporal: dict[str, int]  # SSM kind -> passes over the temporal state


class LlamacppMmvqPascal(Fixed):
    """llama.cpp on CUDA, one token a step, on NVIDIA GPUs of compute capability min_compute_capability up to
    (not including) below_compute_capability (Pascal with dp4a): the further share of the bandwidth the mat-vec
    kernel reaches on the bytes of `types` (the K-quants), on top of LlamacppMmvq's share for its types (fitted)."""

    source_note: str = Field(alias="_source")
    min_compute_capability: str
    below_compute_capability: str
    types: list[str]  # ggml type names, upper case
    relative_efficiency: float
    calibrated_on: list[str]


class LlamacppMmvq(Fixed):
    """llama.cpp on CUDA, one token a step: ggml types whose mat-vec kernel (mul_mat_vec_q) falls short of the
    memory bandwidth the profile's efficiency gives, and the share of it they reach (fitted)."""

    source_note: str = Field(alias="_source")
    types: list[str]  # ggml type names, upper case (Q2_K, Q3_K)
    relative_efficiency: float  # of the profile's bandwidth efficiency, for the bytes of those types
    calibrated_on: list[str]
    pascal: LlamacppMmvqPascal | None = None


class VllmEager(Fixed):
    """vLLM --enforce-eager: the host launches every kernel of a decode step (vramcalc/eager.py)."""

    source_note: str = Field(alias="_source")
    us_per_kernel: float  # host time per launched kernel, fitted (tools/calibrate_speed.py)
    calibrated_on: list[str]
    kernels: dict[str, int]  # kernels one decode step launches, per layer part (see kernels_source)
    kernels_source: str = Field(alias="_kernels")


class Speed(Fixed):
    source_note: str = Field(alias="_source")
    llamacpp_cuda_graphs: LlamacppGraphs | None = None
    llamacpp_vulkan_eras: LlamacppVulkanEras | None = None
    llamacpp_state_passes: LlamacppStatePasses | None = None
    llamacpp_cuda_mmvq: LlamacppMmvq | None = None
    profiles: dict[str, SpeedProfile]  # "<engine>:<backend>"
    fallbacks: dict[str, str]  # engine -> the profile used for a backend it has none for
    links: dict[str, Link]
    host_ram_bandwidth_gbs: Number
    host_ram_bandwidth_gbs_source: str = Field(alias="_host_ram_bandwidth_gbs")
    decode_mfu: float
    decode_mfu_source: str = Field(alias="_decode_mfu")
    vllm_eager: VllmEager


# --- vllm.json ----------------------------------------------------------------------------------

class Sourced(Fixed):
    source_note: str = Field(alias="_source")


class SinceVersion(Sourced):
    version: str


class ZeroLimitsTower(SinceVersion):
    tower_modalities: dict[str, list[str]]  # architecture: the modalities its vision tower is marked with


class VocabPadding(Fixed):
    value: int
    source: str


class SourceOnly(Fixed):
    source: str


class RotaryCache(Fixed):
    source: str
    factor_lengthens: list[str]  # rope types whose cache holds max_position x factor positions
    factor_lengthens_source: str
    # rope types whose cache holds original_max_position_embeddings x factor positions
    factor_of_original: list[str] = []
    factor_of_original_source: str = ""
    sliding_own_rope: list[str]  # model types whose sliding layers take a rope of their own (a second cache)
    sliding_own_rope_source: str
    whole_head: list[str]  # rope types whose cache spans the whole head (partial_rotary_factor aside)
    indexer_own_rope_source: str = ""  # the DSA indexer's rope: a second cache unless indexer_rope_interleave
    whole_head_source: str
    mrope_positions_factor: int  # M-RoPE caches hold max_position x this many positions before the release
    mrope_positions_factor_before: str
    mrope_positions_factor_source: str
    # classes whose M-RoPE cache takes the factor again with --video-pruning-rate above 0 (from the release above)
    mrope_pruning_architectures: list[str] = []
    mrope_pruning_source: str = ""
    # --model-impl transformers: transformers' rotary buffers (inv_freq, original_inv_freq) per rope config,
    # bytes x rotary_dim, instead of vLLM's cos/sin cache
    transformers_backend_bytes_per_dim: int = 4
    transformers_backend_source: str = ""


class TransformersBackendDefault(Fixed):
    """Architectures vLLM builds with its Transformers backend under --model-impl auto or vllm (the registry maps them
    to TransformersMoEForCausalLM): architecture -> the first release checked to do so."""
    architectures: dict[str, str]
    source: str
    # of those, the ones whose transformers tp_plan names no attention module: the backend keeps q/k/v/o whole
    replicated_attention: list[str]
    replicated_attention_source: str


class Fp32Params(Fixed):
    patterns: list[str]
    source: str
    # model types whose MoE router weight vLLM creates in float32 (GateLinear params_dtype=torch.float32)
    router_model_types: list[str] = []
    router_source: str = ""


class RouterQuantConfig(Sourced):
    model_types: list[str]  # the model types whose MoE router vLLM builds with the quant config (online, Humming)


class MinimaxM3Msa(Fixed):
    block_size: int
    index_cache_bytes: int
    source: str
    score_source: str


class MinimaxM3Monokernel(Fixed):
    """--monokernel on MiniMax-M3's ROCm class (vLLM 0.34.0 amd/specialized_decode): the deployment it takes and the
    buffers it holds per rank."""
    since: str
    tp_size: int
    block_size: int
    compute_units: int
    gfx_arch: str
    first_layer: int
    peer_bytes: int  # outside torch's allocator (the uncached IPC heap)
    torch_bytes: int  # the per-row-count scratch, the epoch and fault words (torch.zeros)
    source: str


class ReplicatedVision(Fixed):
    """Architectures whose vision tower vLLM builds without tensor parallelism (whole on every rank); the same
    form names the architectures a sharding switch applies to (dcp_q_replicate, replicate_embed)."""
    architectures: list[str]
    source: str


class SsmDefault(Fixed):
    default: str | None


class SsmStateDtype(Sourced):
    architectures: dict[str, SsmDefault]
    kda_refusals: dict[str, str]  # --mamba-ssm-cache-dtype -> vLLM's words on a model with KDA layers (Kimi-Linear)
    kda_source: str


class Mxfp4Selection(Fixed):
    min_cc: float
    max_cc: float
    backend: str


class Mxfp4Backend(Fixed):
    source_note: str | None = Field(default=None, alias="_source")
    intermediate_align: int
    hidden_align: int
    expert_bytes_factor: float | None = None


class Mxfp4Moe(Sourced):
    selection: list[Mxfp4Selection]
    backends: dict[str, Mxfp4Backend]


class Fp8MoeRequant(SinceVersion):
    """VLLM_FP8_MOE_REQUANT=mxfp4 (vllm.json fp8_moe_requant): the release it appears in, the GPU targets with
    AITER's MXFP4 MoE kernels, the MXFP4 block, the dims each ROCm backend refuses to round, and the e8m0 scale
    padding of the layouts that pad."""
    native_gfx: list[str]  # AITER_MXFP4_MXFP4 (AITER's CK MXFP4 MoE)
    triton_gfx: list[str]  # AITER_TRITON_MXFP4_BF16
    block: int
    hidden_align: dict[str, int]
    intermediate_align: dict[str, int]
    scale_pad: dict[str, list[int]]  # backend: [rows, columns] multiples its e8m0 scale matrix is padded to


class Activation(Fixed):
    sampler_const_gib: float
    forward_coef: float


class NonTorch(Fixed):
    note: str | None = Field(default=None, alias="_note")
    tp1: float
    tp_multi: float
    pp_multi: float


class DenseMoe(Fixed):
    dense: float
    moe: float
    hybrid: float | None = None  # models with Mamba / linear-attention layers (FULL decode graphs); None: as moe/dense
    # dense CUDA graphs, GiB per PIECEWISE piece graph (layers on the rank + 1 per capture size) at TP 1, the factor
    # at TP > 1, and GiB per FULL decode graph (tools/fit_cudagraph.py); None: the flat `dense`
    dense_per_piece_graph: float | None = None
    dense_tp_factor: float = 1.0
    dense_per_full_graph: float = 0.0

    def of(self, is_moe: bool, is_hybrid: bool) -> float:
        if is_hybrid and self.hybrid is not None:
            return self.hybrid
        return self.moe if is_moe else self.dense

    def graphs_gib(self, is_moe: bool, is_hybrid: bool, layers: int, piecewise_sizes: int = 51, tp: int = 1,
                   full_sizes: int = 35) -> float:
        """GiB per GPU for a rank holding `layers` decoder layers that captures `piecewise_sizes` PIECEWISE and
        `full_sizes` FULL decode sizes (51 and 35: vLLM 0.33.0's defaults at max_num_seqs 256,
        vramcalc/vllm/engine.py cudagraph_capture_counts). Dense: every PIECEWISE size records one graph per piece,
        layers + 1 pieces split at the attention ops; every FULL size one graph (tools/fit_cudagraph.py)."""
        if not is_moe and not (is_hybrid and self.hybrid is not None) and self.dense_per_piece_graph is not None:
            pieces = self.dense_per_piece_graph * piecewise_sizes * (layers + 1)
            return pieces * (self.dense_tp_factor if tp > 1 else 1.0) + self.dense_per_full_graph * full_sizes
        return self.of(is_moe, is_hybrid)


class ExtensibleKV(Fixed):
    """vLLM's extensible KV cache (0.34): the cache sized from the memory measured after warmup and capture."""
    gpu_memory_utilization: float  # the default with it on
    margin_floor_gib: float
    margin_floor_gib_rocm: float
    margin_fraction: float
    source: str


class VllmVersion(Fixed):
    gpu_memory_utilization: float
    cudagraph_in_budget: bool
    activation: Activation
    non_torch_gib: NonTorch
    cudagraph_gib: DenseMoe | None = None
    # before 0.20: the graph pool captured after the KV cache, outside the budget (upper end, GiB per GPU)
    cudagraph_outside_gib: DenseMoe | None = None
    cudagraph_outside_nccl_gib: DenseMoe | None = None  # the same, where NCCL's all-reduce is captured (TP, no custom AR)
    startup_gate: bool = True  # Worker.init_device's free-memory check exists in this release
    snapshot_after_nccl: bool = True  # the memory snapshot is taken after NCCL init (else NCCL is inside the budget)
    non_torch_whole_device: bool = False  # non-torch = all non-torch memory on the device (other processes too)
    extensible_kv_cache: ExtensibleKV | None = None  # the release's measured sizing (on by default where it exists)
    uncalibrated: str | None = None
    source: str


class VllmVersions(Fixed):
    """Per-release rules; in the file the release keys sit next to `_note`."""

    note: str = Field(alias="_note")
    by_version: dict[str, VllmVersion]

    @model_validator(mode="before")
    @classmethod
    def _split(cls, d: Any) -> Any:
        if isinstance(d, dict) and "by_version" not in d:
            return {**{k: v for k, v in d.items() if k.startswith("_")},
                    "by_version": {k: v for k, v in d.items() if not k.startswith("_")}}
        return d


class StartupUsed(Sourced):
    tp1: float
    tp_multi: float
    tp_multi_no_custom_all_reduce: float | None = None  # TP/PP without vLLM's custom all-reduce buffers


class SamplerPath(Fixed):
    copies: float
    source: str


class SamplerDefault(Fixed):
    since: str
    path: str
    source: str
    assumed: str | None = None
    opt_in: str | None = None
    opt_out: str | None = None
    min_compute_capability: str | None = None


class Sampler(Sourced):
    paths: dict[str, SamplerPath]
    defaults: list[SamplerDefault]
    below_8_seqs: str
    below_8_seqs_source: str = Field(alias="_below_8_seqs_source")


class BatchRule(Fixed):
    min_total_gib: Number
    max_num_batched_tokens: int
    max_num_seqs: int
    not_names: list[str] | None = None
    since: str = "0.0.0"  # the first release with this rule
    not_names_since: dict[str, str] = {}  # a name's exclusion holds from this release on (absent: always)


class BatchDefaults(Fixed):
    source: str
    rules: list[BatchRule]


class HfOverrides(Sourced):
    """--hf-overrides as vLLM applies it (vllm.json hf_overrides)."""

    keys: list[str]  # the keys vramcalc applies, each checked against vLLM's planner
    nested_configs: list[str]  # keys whose JSON object merges into a nested config
    layer_types_from_init: list[str]  # text model types whose layer_types transformers derives in __init__
    rope_keys: list[str]  # RoPE dicts vLLM sets whole


class VerdictMargin(Sourced):
    weights_from_config: float
    weights_from_files: float
    activation: float
    non_torch: float
    cuda_graph_upper_gib: DenseMoe
    derivation: dict[str, str] | None = Field(default=None, alias="_derivation")  # each margin's figures and cases
    # 0.20+, TP/PP > 1: what the budget must leave of the GPU for memory that grows outside it after start-up
    outside_budget_min_gib: float = 0.0


class Fp4MoeBlockscale(Sourced):
    """The CUTLASS FP4 MoE expert-quant kernels' block-scale tensor (vllm.json fp4_moe_blockscale)."""

    max_tokens_per_expert: int  # VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE's default
    max_tokens_source: str
    block: int  # NVFP4 values per scale
    scales_per_int32: int  # fp8 scales packed in one int32 column
    moe_backend: str  # the --moe-backend that runs the kernel
    cc_families: list[int]  # the CUDA compute-capability majors it runs on
    cc_source: str


class SparseIndexer(Sourced):
    """The DSA sparse indexer's buffers (vllm.json sparse_indexer)."""

    max_logits_mb: int  # VLLM_SPARSE_INDEXER_MAX_LOGITS_MB's default: the profile run's dummy logits tensor
    max_logits_mb_source: str
    gather_rows_per_len: int  # K-gather rows per max_model_len token, per unit of the workspace factor
    gather_rows_source: str
    workspace_factor_default: int  # sparse_mla_prefill_workspace_factor when unset
    workspace_factor_long: int  # ... above workspace_factor_long_above tokens of max_model_len
    workspace_factor_long_above: int
    scale_bytes_per_row: int
    radix_topk_workspace_bytes: int
    workspace_alignment: int
    workspace_source: str
    index_buffer_source: str
    row_shard_exchange_source: str
    dummy_since: SinceVersion  # the release whose profile run sizes the dummy by dummy_034's rule
    dummy_034: "SparseIndexerDummy"


class SparseIndexerDummy(Sourced):
    """vLLM 0.34.0's sizing of the DSA indexer's profile-run dummy logits and fused scratch (vllm.json
    sparse_indexer dummy_034)."""

    max_decode_logits_mb: int  # VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB's default
    max_decode_logits_mb_source: str
    chunk_cc_major: int  # the CUDA compute-capability major where decode is chunked (and fused, BF16 logits)
    chunk_topk_backends: list[str]
    topks: list[int]  # index_topk values the chunking and the fused kernel take
    split_kv_sm100: int
    split_kv_other: int
    row_stride_bytes: int  # DeepGEMM's logits row alignment in bytes
    fp32_copy_bytes: int
    bf16_logits_architectures: list[str]  # whose config hook picks BF16 logits on SM 10.x
    bf16_logits_source: str
    fused_source: str
    fused_heads: int
    fused_head_dim: int
    fused_block_rows: int
    fused_slots_per_sm: int
    fused_slot_row_bytes: int  # per slot row: 16384 x (2 + 4) + 4096 x (4 + 4)
    fused_counter_bytes: int
    fused_block_bytes: int  # per block of rows: 8 + 1 int32 counters
    sm_count: dict[str, int]  # GPU id: its SMs
    sm_count_source: str
    sm_count_max: int


class ConfidentialCompute(Sourced):
    """What VLLM_CONFIDENTIAL_COMPUTE=1 moves onto the GPU in the model runner (vllm.json confidential_compute)."""

    since: str  # the first release that reads the variable
    element_bytes: int  # int32 token ids, positions and pool entries
    request_staged_tensors: int  # RequestState's StagedWriteTensors (all_token_ids, total_len, num_computed_tokens)
    request_uva_backed_tensors: int  # RequestState's UvaBackedTensors (prompt_len, prefill_len)
    staged_row_pools: int  # a StagedWriteTensor's pools of one entry a row (indices, starts, cu_lens)
    staged_contents_initial: int  # the entries of its write_contents pool at construction
    rope_staged_tensors: int  # RopeState's (prefill_positions)
    rope_uva_backed_tensors: int  # RopeState's (prefill_delta)
    trace_replay_staged_tensors: int  # TraceReplayState's (trace_token_ids), with --enable-trace-replay
    trace_replay_uva_backed_tensors: int  # TraceReplayState's (trace_len)
    trace_replay_source: str
    sampler_staged_tensors: int  # the Sampler's StagedWriteTensors (logit bias, bad words, logprobs)
    sampler_backed_row_bytes: int  # its UvaBackedTensors' bytes per row, summed
    sampler_source: str
    min_concurrency: int
    concurrency_source: str
    dense_token_history_methods: list[str]
    dense_source: str
    mrope_channels_source: str


class Vllm(Sourced):
    default_version: str
    vocab_padding: VocabPadding
    rotary_cache: RotaryCache
    fp32_params: Fp32Params
    router_quant_config: RouterQuantConfig
    minimax_m3_msa: MinimaxM3Msa
    minimax_m3_monokernel: MinimaxM3Monokernel
    replicated_vision: ReplicatedVision
    dcp_q_replicate: ReplicatedVision  # architectures whose MLA query projection --dcp-q-replicate shards over TP / DCP
    replicate_embed: ReplicatedVision  # architectures whose embedding VLLM_REPLICATE_EMBED builds whole on each rank
    transformers_backend_default: TransformersBackendDefault
    ssm_state_dtype: SsmStateDtype
    mamba_seqs_refusal_since: SinceVersion
    oldest_modelled: SinceVersion
    logged_tokens_from_concurrency_since: SinceVersion
    sliding_in_flight_since: SinceVersion
    chunked_local_hybrid_manager_since: SinceVersion
    mamba2_checkpoint_block_since: SinceVersion
    null_block_in_fit_since: SinceVersion
    zero_limits_skip_tower_since: ZeroLimitsTower
    group_fit_since: SinceVersion
    mamba_block_size_needs_prefix_caching_since: SinceVersion
    checkpoint_kv_dtype_since: SinceVersion
    hybrid_prefix_caching_since: SinceVersion
    block_size_64_since: SinceVersion
    extensible_kv_cache_since: SinceVersion
    cudagraph_decode_sizes_since: SinceVersion
    cudagraph_split_sizes_since: SinceVersion
    gfx11_row_pad_since: SinceVersion
    rdna_int4_pad_since: SinceVersion
    rdna_prefill_dequant_since: SinceVersion
    mxfp4_moe: Mxfp4Moe
    fp8_moe_requant: Fp8MoeRequant
    versions: VllmVersions
    startup_used_gib: StartupUsed
    sampler: Sampler
    batch_defaults: BatchDefaults
    verdict_margin: VerdictMargin
    hf_overrides: HfOverrides
    sparse_indexer: SparseIndexer
    fp4_moe_blockscale: Fp4MoeBlockscale
    confidential_compute: ConfidentialCompute


# --- vllm_platforms.json, vllm_quant_support.json -----------------------------------------------

class CudaPlatform(Fixed):
    min_capability: str
    message: str
    source: str


class RocmPlatform(Fixed):
    gfx: dict[str, str]  # gfx target -> what vLLM does on it
    message: str
    source: str
    no_marlin: str
    unified: str


class MetalPlatform(Fixed):
    message: str
    source: str


class AttnBackend(Fixed):
    """What an attention backend supports; an absent limit is no limit."""

    min_cc: float = 0
    max_cc: float = 99
    max_head_size: int = 10**6
    fp8_kv_cc_major: list[int] = []  # SM majors where it takes an fp8 KV cache (FLASH_ATTN)
    workspace_mib: int = 0  # a persistent buffer it allocates (FLASHINFER: VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE's default)
    # FLASHINFER: the builder's buffer is at least max_num_batched_tokens x query heads x head size x this
    prefill_workspace_bytes_per_elem: int = 0
    trtllm_cc: list[str] = []  # FLASHINFER: where the TRT-LLM kernels' own buffer is kept too ("9.0"; "10": SM 10.x)
    workspace_source: str | None = Field(default=None, alias="_workspace_source")
    max_head_size_since: dict[str, int] = {}  # release -> max_head_size from that release on
    fp8_kv_min_cc: float = 0  # an fp8 KV cache fails below this compute capability (TRITON_ATTN)
    fp8_kv_reason: str | None = None  # its own words beside 'kv_cache_dtype not supported' (FLASH_ATTN)


class Fp8KvTriton(Sourced):
    explicit_since: str  # the release whose backend raises explicitly (text `explicit`); before: `compile_error`
    explicit: str
    compile_error: str


class MMPrefixAttention(Sourced):
    """The backends of a model whose image tokens attend bidirectionally (vllm_platforms.json
    attention.per_layer.mm_prefix)."""

    model_types: list[str]  # the config model_types that are mm-prefix LMs
    bidirectional_vision_model_types: list[str]  # ... where text_config.use_bidirectional_attention is "vision"
    composite: dict[str, str]  # SM major -> the composite backend put first
    composite_head_sizes: list[int]


class PerLayerAttention(Sourced):
    """What each attention layer's own backend selection reads (vllm_platforms.json attention.per_layer)."""

    fa_head_sizes_multiple_of: int
    fa_max_head_size: int  # FlashAttention's head sizes without FA4
    fa4_cc_major: list[int]  # SM majors where FA4 runs (head sizes up to fa4_max_head_size)
    fa4_max_head_size: int
    fa_version_by_cc_major: dict[str, int]  # the default FA version (2 elsewhere)
    fa_sink_min_cc: float
    flashinfer_head_sizes: list[int]
    flashinfer_kv_dtypes: list[str]
    heterogeneous_heads_model_types: list[str]  # Gemma4Config.verify_and_update_config
    mm_prefix: MMPrefixAttention
    since: str  # the first release whose per-layer selection these rules describe (rules.attention_backend)
    fa4_blackwell_max_head_size: int  # FA4 on SM 10.x+ above this head size (but the hd256 kernel's): FA2
    fa4_hd256_cc_major: list[int]  # SM majors of FA4's hd256 kernel, which falls back to FA2 (fa4_hd256_fallback)
    reasons: dict[str, str]  # AttentionBackend.validate_configuration / supports_combination's words
    fa_fp8_reason: dict[str, str]  # release -> FlashAttention's supports_combination words on an fp8 KV cache


class KVCacheLayoutRules(Sourced):
    """VLLM_KV_CACHE_LAYOUT's resolution (vllm_platforms.json attention.kv_cache_layout)."""

    checked_since: str  # the first release whose six layouts and resolution these rules describe
    enum_order: list[str]
    aliases: dict[str, str]
    default_preference: list[str]
    block_compact: list[str]
    declared: dict[str, dict[str, list[str]]]  # backend -> SM major (or "default") -> the layouts it declares
    undeclared_through: dict[str, str]  # "BACKEND.major" -> the last release where it declares none
    refused: str
    mixed_refused: str


class Attention(Sourced):
    priorities: dict[str, list[str]]  # compute-capability major (or "default") -> backends in order
    FLASH_ATTN: AttnBackend
    FLASHINFER: AttnBackend
    TRITON_ATTN: AttnBackend
    fp8_kv_triton: Fp8KvTriton
    selected_invalid: str  # --attention-backend a backend refuses: vllm/platforms/cuda.py get_attn_backend_cls
    per_layer: PerLayerAttention
    kv_cache_layout: KVCacheLayoutRules

    def backend(self, name: str) -> AttnBackend:
        return {"FLASH_ATTN": self.FLASH_ATTN, "FLASHINFER": self.FLASHINFER, "TRITON_ATTN": self.TRITON_ATTN}[name]


class DtypeRules(Sourced):
    bf16_min_cc: float
    bf16_refused: str
    float16_unsupported: dict[str, str]  # model_type -> why
    float16_refused: str


class RefusedDevice(Fixed):
    message: str
    source: str
    fix: str


class RefusedDevices(Fixed):
    source_note: str = Field(alias="_source")
    by_vendor: dict[str, RefusedDevice]
    by_gpu: dict[str, RefusedDevice]


class GdnPrefill(Sourced):
    """The Gated DeltaNet prefill kernel vLLM picks per GPU, and what FlashInfer's keeps (vllm_platforms.json)."""

    since: str
    flashinfer_cc: list[str]  # compute capabilities where FlashInfer's kernel runs whatever the head size
    flashinfer_head_k_128_cc_major: list[int]  # SM majors where it runs with linear_key_head_dim 128 (CUDA 13)
    cutedsl_head_k_128_cc_major: list[int]  # SM majors where --gdn-prefill-backend cutedsl runs (head_k_dim 128)
    wheel_cuda_runtime_major: int  # the CUDA runtime the PyPI wheel links
    min_cuda_runtime_major: int  # the runtime the SM 10.x / 12.x FlashInfer and CuteDSL paths need
    checkpoint_alignment: int  # FLASHINFER_GDN_CHECKPOINT_ALIGNMENT: the hybrid block is a multiple of it
    refusals: dict[str, str]  # a backend CUDA refuses -> vLLM's words


class KdaPrefill(Sourced):
    """--kda-prefill-backend choices vLLM refuses off one platform (vllm_platforms.json kda_prefill)."""

    since: str
    needs_vendor: dict[str, str]  # a backend -> the GPU vendor it runs on
    refusals: dict[str, str]  # a backend -> vLLM's words off that vendor
    # Kimi-Linear's KDA layers take only these (auto is Triton), and refuse any other in these words ({backend})
    kimi_linear_backends: list[str]
    kimi_linear_refusal: str
    kimi_linear_source: str


class VllmPlatforms(Sourced):
    cuda: CudaPlatform
    rocm: RocmPlatform
    metal: MetalPlatform
    refused: RefusedDevices | None = None
    attention: Attention
    dtype: DtypeRules
    gdn_prefill: GdnPrefill
    kda_prefill: KdaPrefill


class QuantMethodSupport(Fixed):
    support: list[str]  # one per compute-capability band
    min_capability: str
    degraded: str | None = None
    note: str | None = None


class Marlin(Fixed):
    min_thread_n: int
    min_thread_k: int
    group_sizes: list[int]
    source: str


class VllmQuantSupport(Sourced):
    bands: list[str]
    methods: dict[str, QuantMethodSupport]
    marlin_methods: list[str]
    marlin: Marlin


# --- data/models/*.json: one catalog model per file ---------------------------------------------

class PublishedParams(Fixed):
    total: Number | None
    active: Number | None
    source: str
    difference: dict[str, str] | None = None  # figure -> why vramcalc's count differs from the published one


class ArchitectureFrom(Fixed):
    repo_id: str
    why: str


class AltConfig(Fixed):
    source: str
    config: dict[str, Any]


class CatalogFile(Fixed):
    """The envelope of a catalog copy; `config` is the model's config.json as published."""

    repo_id: str
    source: str
    partial: bool
    published_params: PublishedParams | None = None
    notes: str | None = None
    config: dict[str, Any]
    architecture_from: ArchitectureFrom | None = None
    catalog_fixes: list[str] | None = None
    alt_config_seen: AltConfig | None = None
    hf_quant_config: dict[str, Any] | None = None
    base_model: str | None = None  # a quantized release: the catalog repo id of the model it quantizes
    aliases: list[str] | None = None  # names people type for it, beyond those derived from repo_id


class CatalogIndexEntry(Fixed):
    repo_id: str
    file: str
    aliases: list[str] = []
    base_model: str | None = None


class CatalogIndex(Fixed):
    """data/models_index.json: each catalog file's repo id and aliases, so that one lookup reads
    this index and one model file (tools/catalog_index.py writes it; a test checks it is current)."""

    source_note: str = Field(alias="_source")
    models: list[CatalogIndexEntry]


# ---- the engines' argument tables (tools/engine_arg_tables.py) and what each flag means for vramcalc

class VllmServeOption(Fixed):
    names: list[str]
    dest: str
    kind: Literal["switch", "value"]
    nargs: int | str | None
    choices: list[str] | None
    hidden: list[str] = []  # taken but left out of help (EnableDisableAction's --no-enable-x / --no-disable-x)
    lower_snake: bool = False  # the value is lower-cased with - as _ before the choices are checked


class VllmServeArgs(Fixed):
    source: str = Field(alias="_source")
    version: str
    allow_abbrev: bool
    env: list[str]
    options: list[VllmServeOption]


class LlamaArg(Fixed):
    names: list[str]
    negated: list[str]
    kind: Literal["switch", "bool", "value"]
    values: int
    value_hint: list[str] | None
    value_type: Literal["int", "string"] | None
    env: str | None
    examples: list[str]
    excludes: list[str]


class LlamaBenchArg(Fixed):
    names: list[str]
    kind: Literal["switch", "value"]


class LlamaArgs(Fixed):
    source: str = Field(alias="_source")
    commit: str
    options: list[LlamaArg]
    programs: dict[str, list[str]]
    llama_bench: list[LlamaBenchArg]


class FlagClass(Fixed):
    klass: Literal["modelled", "no_effect", "upper_bound", "not_modelled", "refused"] = Field(alias="class")
    field: str | None = None  # modelled: the option it sets
    value: Any = None  # modelled: the value a switch sets
    invert: bool = False
    note: str | None = None
    no_effect_values: list[str] | None = None  # not_modelled: values that leave the default as it is
    # not_modelled: warned about, and still sets `field`, which vramcalc reads only for the engine's refusals of values
    refusals_read: bool = False
    # no_effect: what it changes in speed, which the speed estimate does not include (said as a warning)
    speed: str | None = None
    # not_modelled: values (comma items) that are modelled: a value of only these and no_effect_values sets `field`
    modelled_values: list[str] | None = None
    # every value (comma item) the engine takes; another is refused in the engine's words, values_said + the item
    values: list[str] | None = None
    values_said: str | None = None
    key: str | None = None  # modelled, a JSON option's shorthand: the key of it the flag sets
    expand: list[str] | None = None  # modelled preset: the flags it stands for, read in its place
    said: str | None = None  # refused: the engine's words
    replacement: str | None = None  # refused: the flag that took its place
    # no_effect: the flags (first names) without which it does nothing; with one of them in the command (each is
    # itself not modelled) it warns as not modelled, naming both
    only_with: list[str] | None = None
    # not_modelled, a JSON-object flag: vLLM's config class, its fields (another key is vLLM's error), where they are
    # defined, and the keys that change neither memory nor speed (a value of only those is listed as no effect)
    config_class: str | None = None
    fields: list[str] | None = None
    fields_source: str | None = None
    no_effect_keys: list[str] | None = None
    modelled_keys: list[str] | None = None  # keys that vramcalc reads (the rest no effect): the flag sets `field`
    fields_since: dict[str, str] | None = None  # a field the class gained in a later release: the release
    # the vLLM modules that alone read the flag, none of them a family vramcalc reads (so no effect on the models it
    # checks; tests/test_pasted_commands.py test_flags_read_only_by_unread_families)
    read_only_by: list[str] | None = None
    # vllm_env, a variable read by vllm/envs.py env_with_choices: its values; another is vLLM's ValueError
    choices: list[str] | None = None
    case_sensitive: bool = True
    # a JSON-object flag's keys that change no memory but speed, each with what it changes (as `speed` says it)
    speed_keys: dict[str, str] | None = None
    example: str | None = None  # not_modelled, a JSON flag vramcalc checks (vllm/json_flags.py): a value vLLM takes


class CommandFlags(Fixed):
    source: str = Field(alias="_source")
    vllm: dict[str, FlagClass]
    llamacpp: dict[str, FlagClass]
    llama_bench: dict[str, FlagClass]
    vllm_env: dict[str, FlagClass]
    vllm_env_removed: dict[str, FlagClass] = {}  # variables the table's release removed: refused in its words
    # VLLM_* variables a model module reads with os.getenv, outside vllm/envs.py (so not in the table), whose effect
    # is not modelled: warned about as not modelled whatever the model (the command is read before its model is),
    # although only the model each note names reads them
    vllm_env_model: dict[str, FlagClass] = {}


class QuantizedRepo(Fixed):
    suffix: str
    quant: str
    by_org: dict[str, str] = {}


class GGUFMix(Fixed):
    publisher: str
    lower: str
    upper: str


class ModelNames(Fixed):
    source: str = Field(alias="_source")
    quantized_repos: list[QuantizedRepo]
    gguf_mixes: dict[str, GGUFMix]
    llamacpp_hf_default: str


# --- serving.json ---------------------------------------------------------------------------------

class ServingProfile(Fixed):
    """Fitted constants of one engine:backend for vramcalc/serving.py (tools/calibrate_serving.py)."""

    bandwidth_efficiency: dict[str, float]  # GPU architecture family (Hopper, Blackwell ...) -> share of vendor BW
    fixed_ms_per_layer: float  # per layer per decode step under CUDA graphs
    decode_mfu: float  # share of the weight format's dense tensor rate decode GEMMs reach
    prefill_mfu: float  # the same for prefill chunks (a weight format without its own share below)
    # per weight-format family (serving.weight_format): the prefill GEMM kernels differ by format (cuBLAS 16-bit,
    # FP8 / NVFP4 tensor-core GEMMs, Marlin-style W4A16 dequantizing in the GEMM, MXFP4 MoE kernels)
    prefill_mfu_by_format: dict[str, float] = {}
    queue_share: float  # scale of the wait behind the other streams' prompts (TTFT)
    prefill_tp_exponent: float = 1.0  # prefill speeds up as TP^this
    ttft_steps: float  # decode steps of the running batch a new request waits through before its prefill
    ttft_fixed_ms: float  # per request before its prefill: scheduling, tokenizing, the first step's launch
    nvlink_allreduce_us_per_peer: float
    calibrated_on: str


class SliceError(Fixed):
    n: int
    median: float
    p90: float


class LlamacppBatched(Fixed):
    """llama.cpp's batched decode compute on one backend (tools/calibrate_serving.py, the calibration rows of
    tests/data/llamacpp_batched_runs.json)."""

    decode_mfu: float  # share of the format rate (int8 MMA for quantized GGUF, see serving.format_tflops) reached
    calibrated_on: str


class Serving(Fixed):
    source_note: str = Field(alias="_source")
    profiles: dict[str, ServingProfile]
    llamacpp_batched: dict[str, LlamacppBatched] = {}  # backend -> fitted batched-decode compute share
    holdout_errors: dict[str, SliceError]  # slice name -> measured held-out |error| (benchmarks/speed_accuracy.py)


class GgufFile(Fixed):
    file: str  # the name in the repository
    quant: str  # the type the README gives (a llama.cpp file type, or bartowski's _L variants)
    size_printed: str  # the README's File Size as printed (GB = 10^9 bytes)
    size_gb: float  # that figure; the true size is within half a unit of its last printed digit
    split: bool  # stored as NNNNN-of-NNNNN parts


class GgufRepo(Fixed):
    base_model: str  # the catalog repo id the files quantize
    source: str
    naming: str | None = None
    complete: bool  # False: the README lists more files than recorded (not_recorded says which)
    not_recorded: str | None = None
    ffn_kept: str | None = None  # every file keeps the FFN experts at this type, whatever its quant
    files: list[GgufFile]


class GgufRepos(Fixed):
    """data/gguf_repos.json: GGUF releases of catalog models, their files and sizes as their READMEs print them."""
    source_note: str = Field(alias="_source")
    schema_note: dict[str, str] = Field(alias="_schema")
    repos: dict[str, GgufRepo]


# file name (under vramcalc/data/) -> its model, for the loader and the test that validates them all
class LlamaBuildChange(Fixed):
    pr: int
    url: str
    dated: str | None  # the merge date its page shows (YYYY-MM-DD or YYYY-MM); None: not shown
    after: str | None = None  # bounds on the merge date where the page shows none
    by: str | None = None
    bounds_source: str | None = None
    first_release: int | None  # the first release tag (bNNNN) holding the merge; None: not recorded
    rule: str
    # the PR only moves weights between the host's own buffers (pinned host vs plain CPU), never the host's total or
    # a GPU's: a build that cannot be placed against it follows the modelled build's rule, named in the label
    host_split_only: bool = False
    # the PR changes no buffer, only a speed term (data/speed.json llamacpp_vulkan_eras): a build that cannot be
    # placed against it is not refused and counts as lacking it (LlamaBuild.unplaced names it)
    speed_only: bool = False
    # the PR changes only what llama-server takes as conversations run (context checkpoints), never a start-up
    # buffer: a build that cannot be placed against it counts as lacking it (the larger figure), as speed_only
    growth_only: bool = False


class LlamaBuildAnchor(Fixed):
    """A release number with a bound on its date: it lacks every PR merged after `date`, holds every PR merged
    before `not_before` (and so do the releases below / above it: release numbers count master's commits)."""
    release: int
    date: str | None = None  # the release is of this date (YYYY-MM[-DD]) or older
    not_before: str | None = None  # the release is of this date or newer
    source: str


class LlamaBuilds(Fixed):
    """data/llamacpp_builds.json: the PRs whose rules changed between llama.cpp builds."""
    source_note: str = Field(alias="_source")
    modelled: str
    anchors: list[LlamaBuildAnchor] = []
    changes: list[LlamaBuildChange]


# --- vllm_spec.json: speculative decoding -------------------------------------------------------

class SpecAcceptance(Fixed):
    per_position: list[float] | None = None
    alpha: float | None = None
    measured: str
    url: str


class SpecSpeedupSplit(Fixed):
    n: int
    median: float  # |speed-up error|
    p90: float
    worst: float  # signed


class SpecSpeedupCheck(Fixed):
    n: int
    median: float
    p90: float
    worst: float
    fit: SpecSpeedupSplit
    held_out: SpecSpeedupSplit
    source_note: str = Field(alias="_source")


class SpecVerifyOverhead(Fixed):
    plain_steps: float  # added to each verify step, in plain decode steps of the same deployment
    fitted_on: list[str]
    source_note: str = Field(alias="_source")


class VllmSpec(Fixed):
    source_note: str = Field(alias="_source")
    methods: list[str]
    methods_source: str = Field(alias="_methods")
    mtp_aliases: list[str]
    modelled: list[str]
    mtp_model_types: dict[str, str]  # model_type -> the config field with the MTP layer count (and "_source")
    mtp_default_layers: dict[str, int]
    mtp_default_layers_source: str = Field(alias="_mtp_default_layers")
    config_fields: list[str]
    config_fields_source: str = Field(alias="_config_fields")
    eagle_fc_inputs: dict[str, int]
    dflash_architectures: list[str] = []
    dflash_architectures_source: str = Field("", alias="_dflash_architectures")
    eagle_fc_inputs_source: str = Field(alias="_eagle_fc_inputs")
    acceptance: dict[str, SpecAcceptance]
    acceptance_source: str = Field(alias="_acceptance")
    speedup_check: SpecSpeedupCheck
    verify_overhead: SpecVerifyOverhead


# --- vllm_features.json: LoRA, CPU offload, multimodal profiling, prefix caching -------------------

class LoraExtraVocab(Fixed):
    until: str
    size: int
    padding: int
    source: str


class LoraTowerConnector(Fixed):
    source: str
    vision_qkv_unwrapped: list[str]
    vision_qkv_note: str
    punica_note: str


class VllmLora(Sourced):
    max_loras: int
    max_lora_rank: int
    ranks: list[int]
    max_vocab: int
    embedding_modules: dict[str, list[str]]
    embedding_note: str
    one_slice: dict[str, list[str]]
    one_slice_note: str
    extra_vocab: LoraExtraVocab
    moe_3d: list[str]
    moe_3d_note: str
    unsupported: list[str]
    unsupported_note: str
    tower_connector: LoraTowerConnector


class VllmCpuOffload(Sourced):
    pcie_gbs_per_lane: dict[str, float]
    pcie_note: str
    c2c_gbs: float
    c2c_note: str
    efficiency: float
    efficiency_note: str


class VllmPrefetchOffload(Sourced):
    refusals: dict[str, str]  # OffloadConfig.validate_offload_config's ValueErrors (str.format fields)
    warnings: dict[str, str]  # its warnings when both offloaders' fields are set


class VllmPcp(Sourced):
    dcp_refusal: str  # ParallelConfig's ValueError (str.format: tp, pcp, dcp, valid)
    backend_refusal: str  # CudaPlatform.get_attn_backend_cls's ValueError (str.format: reasons)
    non_mla_backends: list[str]  # the CUDA backends a model without MLA is offered, none with supports_pcp


class EncoderFp8(Fixed):
    source: str
    kinds: list[str]  # VisionSpec kinds whose tower attention is vLLM's MMEncoderAttention
    kinds_note: str
    nvidia_min_compute_capability: str
    amd_gfx: list[str]
    backend_refusal: str
    flashinfer_refusal: str
    aiter_refusal: str


class VitBackendSupport(BaseModel):
    head_size_multiple: int | None = None
    max_head_size: int | None = None
    min_head_size: int | None = None
    dtypes: list[str] | None = None
    min_compute_capability: str | None = None
    source: str


class EncoderAttnBackend(Sourced):
    enum_names: list[str]  # AttentionBackendEnum's names (vllm/v1/attention/backends/registry.py)
    removed: dict[str, str]  # names MultiModalConfig refuses with its own text
    unknown: str  # the text for any other name (str.format: name, names)
    refusal: str  # get_vit_attn_backend's assertion (str.format: name, listing)
    cuda_supported: dict[str, list[str]]  # "8.0" (SM 8.0 and up) / "below": get_supported_vit_attn_backends, in order
    cuda_listing: dict[str, str]  # that list as the assertion prints it
    rocm_supported: list[str]
    rocm_listing: str
    backend_support: dict[str, VitBackendSupport]
    kinds: list[str]  # VisionSpec kinds whose tower attention is MMEncoderAttention
    kinds_note: str


class MmEmbeds(SinceVersion):
    modalities: dict[str, list[str]]  # per class, the modalities its processor supports: all at 0 is embedding-only
    modalities_note: str
    casting: list[str]  # the classes whose image / video embeds branch casts them to the tower's dtype
    refusals: dict[str, str]  # the classes that assert on image embeds: nothing is held
    deepstack: list[str]  # the classes whose tower packs DeepStack levels on the last dim (an EC producer's width)


class MmDummyImage(BaseModel):
    grid: tuple[int, int, int]  # (t, h, w) patches
    tokens: int
    source: str


class MmDummyVideo(BaseModel):
    frame_grid: tuple[int, int]  # (h, w) patches of one temporal patch
    tokens_per_temporal_patch: int
    max_temporal_patches: int
    source: str


class MmDummyItems(BaseModel):
    image: MmDummyImage
    video: MmDummyVideo | None = None
    video_note: str | None = None


class MmProcessorModel(BaseModel):
    family: Literal["qwen2_vl", "qwen3_vl"]
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    image_size: dict[str, int]  # shortest_edge / longest_edge (pixels)
    video_size: dict[str, int] | None  # None: the video is sized with image_size
    max_frames_per_video: int
    # where the checkpoint gives min_pixels / max_pixels flat: the HF class's size a flat null falls back to
    class_size: dict[str, int] | None = None
    source: str


class MmProcessors(Sourced):
    routed: dict[str, list[str]]  # scope: the flat keys vLLM routes into it
    sizing_keys: dict[str, list[str]]  # scope: the keys that move the dummy's size
    not_sized_keys: list[str]
    models: dict[str, MmProcessorModel]


class MmEncoderPeak(Sourced):
    default_limit: int
    dummy_items: dict[str, MmDummyItems]
    processors: MmProcessors | None = None
    applied_bound: float
    # per split: {"records": {id: KV error}, "median_abs": float}, written from the replay
    replay: dict[str, dict[str, Any]]


class VllmMultimodal(Sourced):
    oracle_pr_25631: dict[str, str | float]
    encoder_peak: MmEncoderPeak
    encoder_fp8: EncoderFp8
    encoder_attn_backend: EncoderAttnBackend
    mm_embeds: MmEmbeds


class VllmAuxOutput(Sourced):
    device_itemsize: int
    uint8_max_experts: int
    refusals: dict[str, str]
    pd_connectors: list[str]  # the connectors the output refuses (KVTransferConfig.has_connector)


class VllmKVConnector(Fixed):
    supports_hma: bool
    device_buffers: Literal["none", "unsized"]
    host_copy_with_cpu_buffer: bool = False


class VllmKVTransfer(Sourced):
    fields: list[str]
    roles: list[str]
    role_refusal: str
    unknown_refusal: str
    connectors: dict[str, VllmKVConnector]


class VllmLoadFormat(Sourced):
    same_model: list[str]
    staging: list[str]
    own_path: list[str]
    refusal: str


class VllmAdditionalConfig(Sourced):
    modelled: dict[str, str]  # key -> the serve flag that sets the same option (and wins over the key)
    unsized: dict[str, str]  # key read on CUDA / ROCm -> what it changes, not sized
    refusal: str  # a value that is not a JSON object


class VllmLoaderKeys(Fixed):
    formats: list[str]  # the --load-format values this loader serves
    no_effect: list[str]  # the keys it takes that leave the GPU's memory as it is
    unsized: list[str]  # the keys it takes whose load-time GPU buffers are not sized
    unexpected: str  # its refusal of another key ({load_format}, {keys})
    keys_as: Literal["set", "dict_keys", "none"]  # how the refusal prints the keys


class VllmLoaderExtraConfig(Sourced):
    loaders: dict[str, VllmLoaderKeys]
    own_keys: list[str]  # formats whose own loading path reads its own keys


class VllmClassOverrides(Sourced):
    dict_refusal: str  # a value that is not a JSON object
    type_refusal: str  # {arch}
    format_refusal: str


class WeightTransferBuffers(Sourced):
    buffer_bytes: int  # each receive buffer at the trainer's default init info (0: none of vLLM's own)
    num_buffers: int  # how many the worker's consumer holds at once
    packed_buffer_bytes: int  # the packed buffer size the init info defaults to
    what: str
    init_info: str  # the trainer-side fields that change it


class VllmWeightTransfer(SinceVersion):
    fields: list[str]
    backends: list[str]
    unknown_refusal: str
    ray_only: dict[str, str]  # backend -> its refusal without Ray workers
    buffers: dict[str, WeightTransferBuffers]  # the backends whose per-rank update buffers have a default size
    unsized: dict[str, str]  # the others: why their buffers cannot be sized


class VllmEngram(Sourced):
    fields: list[str]
    architectures: dict[str, str]  # architecture -> the config field naming its n-gram layers
    refusal: str
    combination_refusals: dict[str, str]


class VllmFieldsOnly(Sourced):
    fields: list[str]
    refusal: str


class VllmEcTransfer(Sourced):
    fields: list[str]
    roles: list[str]
    connectors: list[str]
    no_connector_refusal: str
    unknown_refusal: str
    text_only_refusal: str
    role_refusal: str


class VllmJsonFlags(Sourced):
    additional_config: VllmAdditionalConfig
    loader_extra_config: VllmLoaderExtraConfig
    model_class_overrides: VllmClassOverrides
    weight_transfer: VllmWeightTransfer
    engram: VllmEngram
    diffusion: VllmFieldsOnly
    ec_transfer: VllmEcTransfer
    ec_manager: VllmFieldsOnly


class VllmModelClasses(Sourced):
    release: str
    classes: dict[str, str]  # architecture -> the "module:class" vLLM registers for it


class VllmUbatch(Sourced):
    backends: dict[str, list[str]]  # vendor -> the all-to-all backends micro-batching takes
    default_backend: str
    refusal: str
    removed: list[str]  # backends that fall back to default_backend


class VllmAll2All(Sourced):
    default_backend: str
    removed: list[str]  # backends that fall back to default_backend
    aliases: dict[str, str]
    batched_dp_backends: list[str]  # ParallelConfig.use_batched_dp_moe
    batched_dp_max_num_batched_tokens: int
    deepep_buffer_mib_default: int  # VLLM_DEEPEP_BUFFER_SIZE_MB
    deepep_backends: list[str]


class VllmReplaySSM(Sourced):
    architectures: list[str]  # the classes with SupportsReplaySSM that vramcalc reads
    flashinfer_max_buffer_len: int
    default_buffer_len: int
    refusals: dict[str, str]  # vLLM's words, by check


class VllmFeatures(Sourced):
    lora: VllmLora
    cpu_offload: VllmCpuOffload
    prefetch_offload: VllmPrefetchOffload
    multimodal: VllmMultimodal
    prefix_caching: Sourced
    aux_output: VllmAuxOutput
    kv_transfer: VllmKVTransfer
    load_format: VllmLoadFormat
    ubatch: VllmUbatch
    all2all: VllmAll2All
    replayssm: VllmReplaySSM
    pcp: VllmPcp
    json_flags: VllmJsonFlags


class LlamaSpecRun(Fixed):
    id: str
    url: str
    where: str
    target: str
    draft: str
    gpu: str
    n_draft: int
    n_drafted: int
    n_accept: int
    n_predict: int
    accept: float  # n_accept / n_drafted, as llama.cpp prints it
    tok_s_draft: float | None = None  # decode tokens/s with the draft
    tok_s_plain: float | None = None  # and without it
    plain_note: str | None = None
    ngld: int | None = None


class DraftOverhead(Fixed):
    ms: float
    fitted_on: list[str]
    held_out: list[str]
    how: str


class LlamaSpeculative(Fixed):
    source: str = Field(alias="_source")
    default: str
    runs: list[LlamaSpecRun]
    draft_token_overhead: DraftOverhead


class HFDefaultFile(Fixed):
    repo: str
    files: list[str]  # the repo's model GGUF files in the Hub's listing order (the first shard of a split model)
    source: str


class LlamaHFDefaults(Fixed):
    source: str = Field(alias="_source")
    tags: list[str]  # common/download.cpp find_best_model: the tags tried in order without :quant
    repos: list[HFDefaultFile]


class KVOverrideKey(Fixed):
    read: Literal["get_key", "get_key_or_arr"]  # src/llama-model-loader.cpp: how llama.cpp reads the key
    type: Literal["int", "float", "bool", "str"]  # the override type the reader takes
    # applies: read as overridden; shape: a value other than the file's stops the load; none: sizes no buffer
    effect: Literal["applies", "shape", "none"]
    archs: list[str] | None = None  # only these architectures read it so (others: not modelled)
    note: str | None = None


class GGUFKVOverrides(Fixed):
    source: str = Field(alias="_source")
    commit: str
    keys: dict[str, KVOverrideKey]  # {arch}.KEY, by KEY
    no_effect: list[str]  # whole keys whose override changes no buffer


# --- vllm_quant_config.json: what --quantization-config accepts, by release --------------------------
class VllmQuantConfigRelease(Fixed):
    quant_key_names: list[str]
    shorthands: dict[str, list[str]]
    spec_fields: list[str]
    target_specs: bool
    # online/base.py: str(QuantKey) of each weight a spec may resolve to (a QUANT_KEY_NAMES name, or the static key a
    # shorthand gives), the weight each shorthand resolves to, and the weights _ONLINE_LINEAR_METHODS /
    # _ONLINE_MOE_METHODS take (0.34.0; empty: not recorded for the release)
    weight_keys: dict[str, str] = {}
    shorthand_weights: dict[str, str] = {}
    linear_methods: list[str] = []
    moe_methods: list[str] = []


class VllmQuantConfig(Sourced):
    releases: dict[str, VllmQuantConfigRelease]


# --- vllm_humming.json: vLLM's Humming quantization method (--quantization humming) ---------------

class VllmHumming(Sourced):
    since: str  # the first release whose HummingConfig reads VLLM_HUMMING_ONLINE_QUANT_CONFIG this way
    weight_fields: dict[str, list[str]]  # HummingWeightSchema's fields and their KWARGS_ALIAS names, in order
    input_fields: dict[str, list[str]]  # HummingInputSchema's
    ignore_keys: list[str]  # HummingConfig.is_layer_skipped: the first of them present
    weight_scale_types: list[str]
    weight_scale_2_types: list[str]
    input_quant_modes: list[str]
    one_byte_scale_dtypes: list[str]  # bs_dtype values stored in one byte (else the model dtype)
    pad_n_to_multiple: int  # prepare_and_transform_humming_tensors after loading
    pad_k_to_multiple: int
    online_min_k_multiple: int  # HummingConfig.get_quant_method: online quant leaves other linear layers alone


# --- vllm_kv_formats.json: vLLM's packed KV cache dtypes -------------------------------------------

class KVFormat(Fixed):
    kind: Literal["turboquant", "per_token_head"]
    backend: str
    key_bits: int
    value_bits: int


class VllmKVFormats(Sourced):
    checked_on: list[str]  # the releases whose own code the page sizes were checked against
    formats: dict[str, KVFormat]
    turboquant_key_norm_bytes: int
    turboquant_value_meta_bytes: int
    turboquant_boundary_layers: int
    turboquant_max_kv_splits: int
    per_token_head_scale_bytes: int
    accepted_since: dict[str, str]
    not_modelled: dict[str, str]


# --- generic_fallback.json ----------------------------------------------------------------------

class FallbackField(Fixed):
    kind: Literal["experts", "attention", "state", "layers"]  # what it changes (GenericFallback.kinds)
    reason: str  # what the generic (Llama-style) reading would ignore
    read_by: str  # where the engine reads it


class GenericHFFallback(Fixed):
    fields: dict[str, FallbackField]  # a config carrying one (non-null, non-zero) is refused
    layer_kinds: list[str]  # layer_types kinds the generic reading may keep
    layer_kinds_reason: str
    per_layer_lists: str
    kept_reading: str


class GenericGGUFFallback(Fixed):
    key_prefixes: dict[str, FallbackField]  # "{arch}.<prefix>..." metadata keys that refuse an unknown architecture
    zero_kv_heads: str
    expert_tensors: str


class FallbackKind(Fixed):
    label: str  # how a refusal names the kind
    gguf_may_answer: bool  # whether the refusal says a GGUF file of the model may answer instead
    note: str


class GenericFallback(Fixed):
    source_note: str = Field(alias="_source")
    hf_config: GenericHFFallback
    gguf: GenericGGUFFallback
    kinds: dict[Literal["experts", "attention", "state", "layers"], FallbackKind]


FILES: dict[str, type[BaseModel]] = {
    "generic_fallback.json": GenericFallback,
    "architectures.json": Architectures,
    "gguf_quants.json": GGUFQuants,
    "gpus.json": GPUTable,
    "gpu_cuda_totals.json": CudaTotals,
    "gpu_crosschecks.json": CrossChecks,
    "unified_memory.json": UnifiedMemory,
    "llamacpp_backends.json": LlamaBackends,
    "llamacpp_builds.json": LlamaBuilds,
    "llamacpp_margins.json": LlamaMargins,
    "models_index.json": CatalogIndex,
    "gguf_repos.json": GgufRepos,
    "planner.json": Planner,
    "quant_targets.json": QuantTargets,
    "serving.json": Serving,
    "speed.json": Speed,
    "vllm.json": Vllm,
    "vllm_features.json": VllmFeatures,
    "vllm_model_classes.json": VllmModelClasses,
    "vllm_kv_formats.json": VllmKVFormats,
    "vllm_quant_config.json": VllmQuantConfig,
    "vllm_humming.json": VllmHumming,
    "vllm_platforms.json": VllmPlatforms,
    "vllm_quant_support.json": VllmQuantSupport,
    "vllm_serve_args.json": VllmServeArgs,
    "llamacpp_args.json": LlamaArgs,
    "command_flags.json": CommandFlags,
    "model_names.json": ModelNames,
    "vllm_spec.json": VllmSpec,


    "llamacpp_speculative.json": LlamaSpeculative,
    "llamacpp_hf_files.json": LlamaHFDefaults,
    "gguf_kv_overrides.json": GGUFKVOverrides,
}
