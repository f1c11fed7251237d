"""`llama-server` on the CPU, one GPU or several: model, KV, recurrent, compute and output buffers
per device as llama.cpp 4df29be allocates them (docs/llamacpp.md#buffers), whether they fit, and the largest
-ngl and context that do.

Exact (checked byte for byte against a real llama.cpp, tests/test_llamacpp_oracle.py): model
buffers, KV and recurrent buffers, the output buffer. Estimated: compute buffers (compute.py).
What llama.cpp does not count (CUDA context, cuBLAS workspaces) is covered the way its own --fit
covers it: FIT_MARGIN_MIB left free per GPU (common/fit.cpp, --fit-target default 1024 MiB; docs/llamacpp.md#fit)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..serving import ServingEstimate
from ..data_files import load
from ..data_models import LlamaBackend, LlamaBackends
from ..errors import CheckedOptions, InputError, NotModelledError
from ..ggml import kv_cache_types
from ..engines import Engine
from ..gguf_mix import GGUFTensor, plan_gguf, unread_llamacpp_graph
from ..gpus import GPU
from ..limits import MAX_CONTEXT, MAX_GPUS, MAX_LAYER_FLAG, MAX_SLOTS
from ..memo import Memo, layers_weight
from ..messages import Message, error, warning
from ..results import Result, Row
from ..spec import ModelSpec
from ..trace import TraceTerm, term
from .compute import CPU_ALIGNMENT, GPU_ALIGNMENT, ComputeBuffers, compute_buffers
from .extras import (LORA_SOURCE, MMPROJ_SOURCE, DraftModel, LlamaExtra, LoraAdapter, lora_bytes, lora_of_rank,
                     lora_problems, read_draft, read_lora, read_mmproj, split_scaled)
from .mmproj import mmproj_compute
from .dflash import draft_output_bytes
from . import eagle3
from .graphs import graph_variant
from .builds import LlamaBuild, resolve_build
from .checkpoints import checkpoint_bytes
from .kv import LlamaCache, LlamaKVOptions, context_cells, layer_memory, llama_caches, output_buffer_bytes
from .weights import CPU, EXPERT_TENSORS, HostCPU, ModelBuffers, model_buffers, tensors_bytes

MIB = 2**20
SPEC_VOCAB_MAX_DIFF = 128  # common/speculative.cpp SPEC_VOCAB_MAX_SIZE_DIFFERENCE
FIT_MARGIN_MIB = 1024  # common/arg.cpp --fit-target default
FIT_MIN_CTX = 4096  # common/arg.cpp --fit-ctx default
QUANT_V_NEEDS_FA = error("llamacpp.kv.quant_v_needs_fa", "quantized V cache was requested, but this requires Flash "
                         "Attention [src/llama-context.cpp llama_context]", fix="-fa on",
                         source="src/llama-context.cpp llama_context")
SplitMode = Literal["none", "layer", "row", "tensor"]  # -sm
FlashAttn = Literal["on", "off", "auto"]  # -fa
GPUBackend = Literal["cuda", "rocm", "vulkan", "metal", "sycl"]  # the GPU backend a llama.cpp build is made with
# the program that runs llama.cpp: its defaults and the logits rows it reserves (PROGRAM_DEFAULTS)
Program = Literal["llama-server", "llama-cli", "llama-bench", "ollama", "lmstudio"]
# What each program sets when the caller does not. llama-server: 4 unified slots (PR #16736), one logits row
# per slot (PR #23861, server_output_limits). llama-cli and llama-bench keep common_params' one sequence and
# the library's n_outputs_max (n_batch rows). Ollama (ollama/ollama llama/llama.go NewContextParams):
# n_ubatch = its batch (num_batch 512), n_batch = batch x parallel, one sequence per parallel request
# (envconfig OLLAMA_NUM_PARALLEL default 1), num_ctx 4096 (envconfig OLLAMA_CONTEXT_LENGTH in the versions
# that default it; later ones choose by VRAM), embeddings on, so the output buffer holds n_vocab + n_embd
# floats per sequence. LM Studio: no source read; the library defaults (n_batch logits rows, the larger).
PROGRAM_DEFAULTS: dict[str, dict[str, object]] = {
    "llama-server": {},
    "llama-cli": {"n_parallel": 1},
    "llama-bench": {"n_parallel": 1},
    "ollama": {"n_parallel": 1, "n_ubatch": 512, "n_ctx": 4096},
    "lmstudio": {"n_parallel": 1},
}


# the --spec-type values vramcalc models (common/speculative.cpp common_speculative_type_from_name_map, 4df29be)
SpecType = Literal["ngram-mod", "ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-cache", "draft-simple",
                   "draft-mtp", "draft-eagle3", "draft-dflash", "draft-dspark"]
# common/speculative.cpp create_state_ngram_cache: n_draft = 8, the n_max common_speculative_n_max gives ngram-cache
NGRAM_CACHE_N_DRAFT = 8


class LlamaOptions(CheckedOptions):
    """llama.cpp's options. An invalid value is an InputError naming the field and what it accepts."""
    model_config = ConfigDict(frozen=True)

    # None: llama.cpp's -c 0, the training context
    n_ctx: int | None = Field(default=None, ge=1, le=MAX_CONTEXT * MAX_SLOTS)
    n_parallel: int = Field(default=4, ge=1, le=MAX_SLOTS)  # llama-server's auto: 4 slots with a unified KV cache
    kv_unified: bool = True
    n_batch: int = Field(default=2048, ge=1, le=MAX_CONTEXT)
    n_ubatch: int = Field(default=512, ge=1, le=MAX_CONTEXT)
    type_k: str = "F16"
    type_v: str = "F16"
    flash_attn: bool | FlashAttn = "auto"  # auto: on wherever the backend runs it (CPU, CUDA, Metal, Vulkan)
    n_gpu_layers: int | None = Field(default=999, ge=0)  # None: "auto", the largest that fits (as --fit chooses); above
    # the layer count: every layer
    split_mode: SplitMode = "layer"
    tensor_split: tuple[float, ...] | None = None
    main_gpu: int = Field(default=0, ge=0)
    swa_full: bool = False
    # llama-server's host RAM as conversations run (llamacpp/checkpoints.py): -ctxcp, context checkpoints per slot
    # (common/common.h n_ctx_checkpoints, 32 at 4df29be), and -cram, the prompt cache's limit in MiB (cache_ram_mib,
    # 8192; -1: no limit, 0: off)
    n_ctx_checkpoints: int = Field(default=32, ge=0)
    cache_ram_mib: int = Field(default=8192, ge=-1)
    cpu_moe: bool = False
    # --n-cpu-moe N: the experts of the first N layers stay on the CPU (N above the layer count: every layer's)
    n_cpu_moe: int = Field(default=0, ge=0)
    # -ot / --override-tensor PATTERN=DEVICE, in order (the first match places a tensor): DEVICE is CPU or a GPU
    # by its llama.cpp name (CUDA0, ROCm1, Vulkan0, MTL0, SYCL0: the index counts the GPUs as listed)
    override_tensor: tuple[str, ...] = ()
    no_kv_offload: bool = False
    no_mmap: bool = False  # --no-mmap: the CPU weights are read into allocated host memory (CUDA_Host with a GPU)
    mlock: bool = False  # --mlock: the mapped CPU weights are locked in RAM (the same bytes, never evicted)
    # --device D1,D2 (llama.cpp names such as CUDA0,CUDA1, or none): the GPUs llama.cpp uses, in this order
    devices: tuple[str, ...] | None = None
    cpu_repack: bool = True  # llama.cpp's default; --no-repack turns it off
    # --no-host: the CPU weights skip the GPU's pinned host buffer type (CUDA_Host ...) for the CPU's extra (repack)
    # and plain ones (common/arg.cpp --no-host -> src/llama-model.cpp make_cpu_buft_list no_host, 4df29be)
    no_host: bool = False
    # the host CPU: which weight types CPU_REPACK interleaves (llamacpp_backends.json repack_types)
    host_cpu: HostCPU = "x86_avx2"
    # --blas: the build has a BLAS backend (GGML_BLAS, on by default on macOS: Accelerate), which the scheduler
    # ranks before the CPU (ggml-blas.cpp ggml_backend_blas_device_supports_op: MUL_MAT on host weights of 32+
    # rows and columns)
    blas: bool = False
    ftype: str | None = None  # when no GGUF file is given: predict this llama.cpp file type
    # llamacpp/kv.py MLA_LAYOUTS; None: from the file: per_head when a GGUF lacks attention.key_length_mla
    # (converted before PR #12801: llama_hparams::is_mla() is false, full per-head K and V), else latent_k (K only,
    # the modelled build, since PR #19067)
    mla_layout: Literal["per_head", "latent_kv", "latent_k"] | None = None
    # the ggml backend the GPUs run: auto = CUDA for NVIDIA, ROCm (HIP) for AMD, Metal for Apple
    backend: Literal["auto", GPUBackend, "rpc"] = "auto"
    # other machines whose GPUs join through ggml-rpc-server (one per machine, all its GPUs): llama.cpp
    # puts RPC devices first (llama_prepare_model_devices), so the first rpc_nodes x (GPUs per node)
    # GPUs of the list are theirs
    rpc_nodes: int = Field(default=0, ge=0, le=MAX_GPUS)

    # logits rows the context reserves (llama_context_params.n_outputs_max; 0 = n_batch). None: llama-server's
    # choice since llama.cpp PR #23861 (2026-06-01): one per slot (server_output_limits). Programs that
    # keep the library default (llama-cpp-python, llama-cli, builds before that PR) reserve n_batch rows.
    n_outputs_max: int | None = None
    # --embedding (--rerank sets it too): the context keeps n_embd floats per output beside the logits
    # (common/common.cpp cparams.embeddings -> src/llama-context.cpp output_reserve has_embd, 4df29be)
    embedding: bool = False
    # the most outputs one decode asks for once running, where that is more than the slots: the output buffer grows
    # to it (src/llama-context.cpp llama_context::decode -> output_reserve(n_outputs_all), 4df29be). llama-bench -embd 1:
    # llama_batch_get_one leaves batch.logits unset and cparams.embeddings outputs every token (output_all), so a prompt
    # batch of min(n_batch, max(-p, -d)) tokens takes that many rows (tools/llama-bench/llama-bench.cpp test_prompt)
    n_outputs_run: int | None = Field(default=None, ge=1)
    # --pooling: with --embedding or a pooling other than none, llama-server reserves n_batch outputs, not one
    # per slot (tools/server/server-context.cpp server_output_limits, 4df29be); None: the model's own
    pooling: Literal["none", "mean", "cls", "last", "rank"] | None = None
    # -fitt / --fit-target: MiB --fit leaves free per device, one value for all (common/arg.cpp, common.h
    # fit_params_target, default 1024 each); vramcalc never leaves less than FIT_MARGIN_MIB (see _evaluate)
    fit_target_mib: tuple[int, ...] = Field(default=(FIT_MARGIN_MIB,), min_length=1)
    # -fitc / --fit-ctx: the smallest context --fit lowers -c 0 to (common/fit.cpp n_ctx_min, default 4096)
    fit_min_ctx: int = Field(default=FIT_MIN_CTX, ge=0)

    # --no-op-offload: ops on weights in host memory run on the CPU, not copied to the first GPU
    # (src/llama-context.cpp cparams.op_offload -> ggml-backend.cpp ggml_backend_sched op_offload)
    op_offload: bool = True
    # What llama-server holds beside the model (extras.py, docs/llamacpp.md#extras). --lora FNAME / --lora-scaled
    # FNAME:SCALE: LoRA adapters' GGUF files; lora_rank: vramcalc's own, an adapter of that rank (F16) on every
    # attention and FFN projection when its file is not at hand
    lora: tuple[str, ...] = ()
    lora_scaled: tuple[str, ...] = ()
    lora_rank: int | None = Field(default=None, ge=1, le=65536)
    # -md FNAME: the draft model (a GGUF here, or a file name naming a catalog model and file type: predicted);
    # -ngld (None: llama.cpp's default -1, every layer), -devd, -ctkd / -ctvd, --spec-draft-n-max (common.h: 3)
    model_draft: str | None = None
    # -otd PATTERN=DEVICE,...: the draft's own tensor overrides; the target's -ot does not reach the draft
    # (common/speculative.cpp common_base_params_to_speculative: tensor_buft_overrides = draft.tensor_buft_overrides)
    override_tensor_draft: tuple[str, ...] = ()
    n_gpu_layers_draft: int | None = Field(default=None, ge=0)
    device_draft: tuple[str, ...] | None = None
    type_k_draft: str = "F16"
    type_v_draft: str = "F16"
    draft_max: int = Field(default=3, ge=0, le=1024)
    # --spec-draft-backend-sampling / --no-spec-draft-backend-sampling (common.h draft.backend_sampling: on): the
    # draft context's backend top-k sampler on every slot (llama_set_sampler in common_speculative_impl_draft_dflash
    # and common_speculative_impl_draft_eagle3; counted in dflash.py and eagle3.py)
    draft_backend_sampling: bool = True
    # the share of drafted tokens the target accepts (None: data/llamacpp_speculative.json's default); speed only
    draft_acceptance: float | None = Field(default=None, ge=0.0, le=1.0)
    # --spec-type (common/arg.cpp, 4df29be): the speculative types vramcalc models. Any type makes llama-server reserve
    # n_parallel x (1 + n_max) output rows (at most n_batch: tools/server/server-context.cpp server_output_limits), n_max
    # from common/speculative.cpp common_speculative_n_max: draft-simple's --spec-draft-n-max, ngram-mod's
    # --spec-ngram-mod-n-max (common.h, 64), the map types' --spec-ngram-*-size-m (common.h size_m, 48), ngram-cache's 8.
    # Host tables: ngram-mod one of 4M int32 entries (common_speculative_impl_ngram_mod), ngram-map-k / -k4v one key_map
    # of 2^18 uint32 per slot (common/ngram-map.h COMMON_NGRAM_HASH_MAP_SIZE), ngram-simple none (it scans the prompt).
    # draft-simple drafts with -md's model, and without one finds no draft context: common_speculative_impl_draft_simple
    # throws, llama-server logs the failure and runs without speculation (server-context.cpp load_model). draft-mtp
    # drafts with the model's own NextN / MTP blocks in a second context on the target model (qwen3next, qwen35,
    # qwen35moe GGUFs: _mtp)
    spec_types: tuple[SpecType, ...] = ()
    spec_ngram_mod_n_max: int = Field(default=64, ge=0, le=1024)
    spec_ngram_simple_size_m: int = Field(default=48, ge=1, le=1024)
    spec_ngram_map_k_size_m: int = Field(default=48, ge=1, le=1024)
    spec_ngram_map_k4v_size_m: int = Field(default=48, ge=1, le=1024)
    # --control-vector FNAME / --control-vector-scaled FNAME:SCALE (common/arg.cpp, 4df29be): the files' directions are
    # summed into one control vector, so any number of them makes the same buffers (CVEC_SOURCE)
    control_vectors: tuple[str, ...] = ()
    # --override-kv KEY=TYPE:VALUE items: applied to the GGUF's metadata before the spec is read
    # (sources/gguf_overrides.py, data/gguf_kv_overrides.json); here only to print the command
    kv_overrides: tuple[str, ...] = ()
    # --mmproj FNAME: the multimodal projector; --no-mmproj-offload keeps it on the CPU
    mmproj: str | None = None
    mmproj_offload: bool = True
    # the draft's context: None = the target's -c as given (4df29be has no -cd: the draft context takes -c); 0: the
    # draft's training context (what -c 0 gives it)
    n_ctx_draft: int | None = Field(default=None, ge=0, le=MAX_CONTEXT * MAX_SLOTS)

    program: Program = "llama-server"
    # --llamacpp-build: latest, the modelled commit, a release (b4351) or a master build's date; the rules
    # that changed since (data/llamacpp_builds.json) follow it (llamacpp/builds.py)
    build: str = "4df29be"
    # a build that cannot be placed against a PR takes the modelled build's rule for it (builds.resolve_build), for
    # replaying logs whose build is known only in part (benchmarks/llamacpp_dev.py); no CLI flag sets it, and it is
    # neither in the published schema nor in the results' dicts
    build_unplaced_as_modelled: SkipJsonSchema[bool] = Field(default=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _program_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("program", "llama-server") in PROGRAM_DEFAULTS:
            out = {**PROGRAM_DEFAULTS[data.get("program", "llama-server")], **data}
            if out.get("program") == "ollama" and out.get("n_ctx") is None:  # no -c 0: num_ctx is always set
                out["n_ctx"] = PROGRAM_DEFAULTS["ollama"]["n_ctx"]
            if out.get("program") == "ollama" and "n_batch" not in data:  # NewContextParams: batch x parallel
                out["n_batch"] = int(out.get("n_ubatch", 512)) * int(out.get("n_parallel", 1))
            return out
        return data

    @field_validator("type_k", "type_v", "type_k_draft", "type_v_draft")
    @classmethod
    def _cache_type(cls, value: str) -> str:
        allowed = kv_cache_types()
        if value.lower() not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    @field_validator("override_tensor", "override_tensor_draft")
    @classmethod
    def _override(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            pattern, sep, dev = item.rpartition("=")
            if not sep or not pattern or not dev:
                raise ValueError(f"expected PATTERN=DEVICE such as 'ffn_.*_exps=CPU', got {item!r}")
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{pattern!r} is not a regular expression: {e}") from None
            if device_index(dev) is None:
                raise ValueError(f"device {dev!r}: expected CPU or a GPU such as CUDA0")
        return value

    @field_validator("lora_scaled")
    @classmethod
    def _lora_scaled(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            split_scaled(item)
        return value

    @field_validator("devices", "device_draft")
    @classmethod
    def _devices(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for dev in value:
                if dev.lower() != "none" and (device_index(dev) in (None, CPU)):
                    raise ValueError(f"device {dev!r}: expected a GPU such as CUDA0 (or none)")
        return value

    @property
    def spec_n_max(self) -> int:
        """common/speculative.cpp common_speculative_n_max: the most tokens the speculative types draft a step."""
        per = {"ngram-mod": self.spec_ngram_mod_n_max, "ngram-simple": self.spec_ngram_simple_size_m,
               "ngram-map-k": self.spec_ngram_map_k_size_m, "ngram-map-k4v": self.spec_ngram_map_k4v_size_m,
               "ngram-cache": NGRAM_CACHE_N_DRAFT, "draft-simple": self.draft_max, "draft-mtp": self.draft_max,
               "draft-eagle3": self.draft_max, "draft-dflash": self.draft_max, "draft-dspark": self.draft_max}
        return max((per[t] for t in self.spec_types), default=0)

    def speculates(self, bld: LlamaBuild) -> bool:
        """Whether llama-server drafts at all (tools/server/server-context.cpp load_model: common_speculative_init
        returns null when no type yields an implementation, and the draft model and context are then freed): an ngram
        type always does; draft-simple with a draft model; -md alone only in builds before PR #23988, which auto-enabled
        draft-simple for a draft model (data/llamacpp_builds.json)."""
        if "draft-simple" in self.spec_types and not self.model_draft:
            return False  # common_speculative_impl_draft_simple throws: common_speculative_init makes no type at all
        if any(t.startswith("ngram-") for t in self.spec_types) or "draft-mtp" in self.spec_types:
            return True  # draft-mtp: llama-server stops when it cannot make the MTP context (_mtp)
        if any(t in ("draft-dflash", "draft-dspark") for t in self.spec_types) and self.model_draft:
            return True  # common_speculative_impl_draft_dflash on -md's DFlash / DSpark drafter (dflash.py)
        if "draft-eagle3" in self.spec_types and self.model_draft:
            return True  # a draft that is not EAGLE-3 makes common_speculative_init throw: warned in _draft
        return bool(self.model_draft) and ("draft-simple" in self.spec_types or not bld.has(23988))

    @property
    def outputs_reserved(self) -> int:
        """Logits rows the worst-case graph computes: llama-server's one per slot (1 + n_max with a speculative
        type, at most n_batch: server_output_limits), others' n_batch."""
        if self.n_outputs_max:
            return self.n_outputs_max
        if self.program == "llama-server" and (self.embedding or self.pooling not in (None, "none")):
            return self.n_batch  # server_output_limits: { n_batch, 1 } in embedding mode
        if self.program == "llama-server":
            return max(1, min(self.n_batch, self.n_parallel * (1 + self.spec_n_max)))
        return self.n_batch

    @property
    def output_rows(self) -> int:
        """Rows of the output buffer at its largest: the slots at start (output_reserve(n_seq_max)), more once a decode
        asks for more outputs (llama_context::decode -> output_reserve(n_outputs_all)): llama-bench -embd's prompt
        batches (n_outputs_run), llama-server's drafted tokens, 1 + n_max per slot, that it verifies in one batch, and
        llama-server --embedding's batches of up to n_batch prompt tokens, every one an output (cparams.embeddings:
        decode's output_all, src/llama-batch.cpp llama_batch_allocr::init overriding the batch's flags)."""
        server = self.program == "llama-server"
        spec = min(self.n_batch, self.n_parallel * (1 + self.spec_n_max)) if server and self.spec_n_max else 0
        # n_outputs_run, where the caller gives it (llama-bench -embd), is what the decodes ask for
        embd = self.n_batch if server and self.embedding and self.n_outputs_run is None else 0
        return max(self.n_parallel, self.n_outputs_run or 0, spec, embd)

    @property
    def output_embeddings(self) -> bool:
        return self.program == "ollama" or self.embedding  # NewContextParams sets embeddings on

    @property
    def fa(self) -> bool:
        return self.flash_attn in (True, "on", "auto")


class LlamaDevice(BaseModel):
    model_config = ConfigDict(frozen=True)

    device: str
    model_buffer_bytes: int
    repack_buffer_bytes: int = 0  # host only: CPU_REPACK copies of CPU matmul weights (x86 AVX2 rule)
    # host only: of model_buffer_bytes, the pinned host buffer (CUDA_Host ...) that --no-mmap fills; the rest is CPU
    pinned_model_buffer_bytes: int = 0
    kv_buffer_bytes: int
    recurrent_buffer_bytes: int
    compute_buffer_bytes: int  # estimated
    # the output buffer at its largest: the size llama.cpp prints at start (n_seq_max rows), or the size a decode grows
    # it to (LlamaOptions.output_rows: llama-bench -embd, llama-server --embedding, speculative drafts)
    output_buffer_bytes: int
    # what llama-server holds beside the model (extras.py): LoRA adapters' tensors, the draft model's buffers (weights,
    # KV, compute, output), the multimodal projector's weights and compute buffer
    lora_buffer_bytes: int = 0
    draft_bytes: int = 0
    mmproj_bytes: int = 0
    control_vector_bytes: int = 0  # --control-vector: one F32 n_embd tensor per layer 1..n_layer-1 (CVEC_SOURCE)
    speculative_bytes: int = 0  # host only: the speculative types' own tables (--spec-type ngram-mod: NGRAM_MOD_SOURCE)
    total_bytes: int
    uncertainty_bytes: int = 0  # compute x UNCERTAINTY: the verdict checks total + this
    available_bytes: int  # after the fit margin; -1: not checked (host RAM not given)


class LlamaResult(Result):
    model_config = ConfigDict(frozen=True)

    fits: bool
    engine: Engine = "llamacpp"
    model_size_bytes: int  # every tensor in the file (llama.cpp's "file size", less the header)
    bpw: float  # bits per weight over the file's tensors, as llama.cpp prints "(X BPW)"
    n_ctx: int  # cells llama.cpp allocates: padded to 256, per slot when not unified
    n_ctx_seq: int  # the longest a single request can be
    n_parallel: int
    kv_unified: bool
    flash_attn: bool
    context_source: str
    gpu_layers: int  # offloaded repeating blocks
    n_gpu_layers: int  # the -ngl used (n_layer + 1 = everything)
    split_mode: str
    backend: str = "cpu"  # the ggml backend of the GPUs: cuda, rocm, vulkan, metal, sycl (cpu: none)
    devices: list[LlamaDevice]
    caches: list[LlamaCache]
    max_gpu_layers: int | None = None  # the largest -ngl that fits at this context (None: not solved)
    n_cpu_moe: int = 0  # layers whose MoE experts stay on the CPU (--n-cpu-moe; solved as --fit does)
    build: str = ""  # the llama.cpp build the figures are for (--llamacpp-build, llamacpp/builds.py)
    max_ctx: int | None = None  # the largest context that fits with this -ngl
    # the host's compute buffers (graph inputs; the CPU's share of the graph): in the host RAM column, or in the
    # first GPU's pool on unified memory
    host_compute_bytes: int = 0
    extras: list[LlamaExtra] = []  # LoRA adapters, the draft model, the projector: per device (extras.py)
    no_kv_offload: bool = False  # -nkvo: the KV cache in host memory, the attention on the CPU (spec_speed.py)
    # llama-server only, host RAM taken after start-up as conversations run (llamacpp/checkpoints.py), not in the
    # devices' totals: one context checkpoint of a slot at its full context; all slots' checkpoints at -ctxcp;
    # the prompt cache's limit (None: -cram -1, no size limit)
    checkpoint_bytes: int = 0
    checkpoints_max_bytes: int = 0
    prompt_cache_max_bytes: int | None = 0
    errors: list[Message]
    warnings: list[Message]
    command: str
    # filled by the CLI from the planner: the best file type fully offloaded / with offload
    # (vramcalc.plan.best_gguf_ftype), and what would work instead (vramcalc.plan.alternatives)
    best_ftype_full_offload: str | None = None
    best_ftype: str | None = None
    alternatives: list[str] = []
    # when it does not start: the smallest change that makes it start, re-checked by the engine model (None: it
    # starts, or no single change was found), and the engine command with it (vramcalc/pasted_command.py)
    fix: str | None = None
    corrected_command: str | None = None
    trace: list[TraceTerm] = []
    speed: ServingEstimate | None = None  # at --concurrency / --prompt / --output (vramcalc/serving.py)

    def table(self) -> list[Row]:
        """One row per device (each GPU, host RAM): its buffers."""
        return [d.model_dump(mode="json") for d in self.devices]


def blocks_all(spec: ModelSpec) -> int:
    """llama.cpp's n_layer_all: the trunk's blocks and, in a GGUF that carries them, the NextN / MTP blocks appended
    after it ({arch}.block_count). Layer placement counts them all (src/llama-model.cpp load_tensors: i_gpu_start =
    n_layer_all + 1 - n_gpu_layers), so -ngl all is n_layer_all + 1 and an MTP block is offloaded first."""
    return spec.num_layers + (spec.mtp_layers if (spec.architecture or "").startswith("gguf:") else 0)


def mla_layout_of(spec: ModelSpec, opts: LlamaOptions) -> str:
    """The MLA cache layout: as asked, else what the file tells (LlamaOptions.mla_layout)."""
    if opts.mla_layout is not None:
        return opts.mla_layout
    old = any(la.attention is not None and la.attention.mla is not None and la.attention.mla.gguf_mla_keys is False
              for la in spec.layers)
    return "per_head" if old else "latent_k"


def device_index(name: str) -> int | None:
    """llama.cpp's device name -> CPU or the GPU's index (CUDA0 -> 0, Vulkan1 -> 1); None: not a device name."""
    if name.strip().upper() == "CPU":
        return CPU
    m = re.fullmatch(r"(CUDA|ROCm|HIP|Vulkan|MTL|Metal|SYCL|RPC)(\d+)", name.strip(), flags=re.IGNORECASE)
    return int(m.group(2)) if m else None


def _as_list(gpus: GPU | list[GPU] | None) -> list[GPU]:
    if gpus is None:
        return []
    out = [gpus] if isinstance(gpus, GPU) else list(gpus) if isinstance(gpus, (list, tuple)) else None
    if out is None or not all(isinstance(g, GPU) for g in out):
        raise InputError(f"check_llamacpp takes None (CPU), a GPU or a list of GPUs, got {type(gpus).__name__}: for "
                         "a system such as '2x4090' use vramcalc.check(model, system, engine='llamacpp')")
    return out


_RUNS_AS: Memo[tuple[ModelSpec, ModelSpec]] = Memo()  # keyed by the spec's identity; bounded by the layers held


def as_llamacpp_runs_it(spec: ModelSpec) -> ModelSpec:
    """The spec as llama.cpp builds it: sliding-window layers stay sliding only where the architecture's
    graph keeps an iSWA cache (llamacpp_backends.json iswa_gguf_archs); elsewhere they are full layers."""
    hit = _RUNS_AS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    out = spec
    if gguf_arch(spec) not in backend_rules().iswa_gguf_archs and \
            any(la.attention is not None and la.attention.kind == "sliding" for la in spec.layers):
        layers = tuple(la.model_copy(update={"attention": la.attention.model_copy(update={"kind": "full", "window": None})})
                       if la.attention is not None and la.attention.kind == "sliding" else la for la in spec.layers)
        out = spec.model_copy(update={"layers": layers})
    _RUNS_AS.put(id(spec), (spec, out), layers_weight(len(spec.layers)) * (1 if out is spec else 2))
    return out


def check_llamacpp(spec: ModelSpec, gpus: GPU | list[GPU] | None, opts: LlamaOptions,
                   tensors: list[tuple[GGUFTensor, str]] | None = None, ram_bytes: int | None = None,
                   model_ref: str = "model.gguf", solve: bool = True, limits: bool | Literal["context"] = True
                   ) -> LlamaResult:
    """gpus: None (CPU only), one GPU, or several (split per opts.split_mode). tensors: the file's
    (tensor, type) list when a GGUF was read. solve: also find the largest -ngl and context that fit
    (and resolve -ngl auto / -c 0 as --fit would); limits: with solve, also report the largest -ngl
    and context (two more searches); "context": the largest context only (the planner's)."""
    unread_llamacpp_graph(spec)
    runs = as_llamacpp_runs_it(spec)
    r = _check(runs, gpus, opts, tensors, ram_bytes, model_ref, solve, limits)
    if runs is not spec:
        rules = backend_rules()
        r = r.model_copy(update={"warnings": r.warnings + [warning(
            "llamacpp.kv.no_swa", f"llama.cpp's {gguf_arch(spec)} graph keeps no sliding-window cache: every layer "
            f"caches the full context, though the config gives a window "
            f"[{rules.iswa_gguf_archs_source.split(':')[0]}]")]})
    return _unchecked_host(r)


# Without the host's RAM (ram_bytes None) its column is checked against this much, what a well-equipped desktop
# has: above it no verdict says "fits" until the RAM is given (docs/llamacpp.md#host-memory).
UNCHECKED_HOST_RAM_GIB = 64


def unchecked_host_need(r: LlamaResult) -> LlamaDevice | None:
    """The host column when its RAM was not checked (no ram_bytes)."""
    return next((d for d in r.devices if d.device == "host RAM" and d.available_bytes < 0), None)


def _unchecked_host(r: LlamaResult) -> LlamaResult:
    """A result whose unchecked host column needs more than UNCHECKED_HOST_RAM_GIB does not fit: the GPUs may,
    but no verdict is given on a host of unknown RAM that needs that much."""
    host = unchecked_host_need(r)
    if not r.fits or host is None or host.total_bytes + host.uncertainty_bytes <= UNCHECKED_HOST_RAM_GIB * 2**30:
        return r
    need = f"{(host.total_bytes + host.uncertainty_bytes) / 2**30:.2f}"
    return r.model_copy(update={"fits": False, "errors": r.errors + [error(
        "llamacpp.host.ram_unchecked", f"host RAM not checked: the host needs {need} GiB, more than the "
        f"{UNCHECKED_HOST_RAM_GIB} GiB assumed without --ram", fix="--ram GiB (the machine's RAM)")]})


def _build_rules(spec: ModelSpec, opts: LlamaOptions, bld: LlamaBuild) -> LlamaOptions:
    """The options an older build runs with where a rule of data/llamacpp_builds.json changed since."""
    upd: dict[str, object] = {}
    if not bld.has(23861) and opts.n_outputs_max is None:  # before PR #23861: n_batch logits rows, every program
        upd["n_outputs_max"] = opts.n_batch
    if opts.mla_layout is None and any(la.attention is not None and la.attention.latent_cache for la in spec.layers):
        if not bld.has(12801):  # before PR #12801: full per-head K and V
            upd["mla_layout"] = "per_head"
        elif not bld.has(19067) and mla_layout_of(spec, opts) == "latent_k":  # PR #12801 to #19067: K and V latents
            upd["mla_layout"] = "latent_kv"
    if not bld.has(13194):  # before PR #13194: sliding-window layers cache the whole context
        upd["swa_full"] = True
    return opts.model_copy(update=upd) if upd else opts


def _check(spec: ModelSpec, gpus: GPU | list[GPU] | None, opts: LlamaOptions,
           tensors: list[tuple[GGUFTensor, str]] | None, ram_bytes: int | None,
           model_ref: str, solve: bool, limits: bool | Literal["context"]) -> LlamaResult:
    gl = _as_list(gpus)
    bld = resolve_build(opts.build, opts.build_unplaced_as_modelled)
    opts = _build_rules(spec, opts, bld)
    if opts.devices is not None:  # --device: the GPUs llama.cpp uses, in the order given
        if [d.lower() for d in opts.devices] == ["none"]:
            gl = []
        else:
            picked = [device_index(d) for d in opts.devices]
            bad = [d for d, i in zip(opts.devices, picked) if i is None or not 0 <= i < len(gl)]
            if bad:
                raise InputError(f"--device {','.join(bad)}: there are {len(gl)} GPUs (index 0 to {len(gl) - 1})")
            gl = [gl[i] for i in picked if i is not None]
    for item in opts.override_tensor:
        target = device_index(item.rpartition("=")[2])
        if target is not None and target != CPU and target >= len(gl):
            raise InputError(f"-ot {item}: there are {len(gl)} GPUs (index 0 to {len(gl) - 1})" if gl else
                             f"-ot {item}: no GPU is used")
    if tensors is None:
        if not opts.ftype:
            raise InputError("llama.cpp runs GGUF files: give a .gguf, or --quant gguf:<FTYPE> such as gguf:Q4_K_M")
        tensors = plan_gguf(spec, opts.ftype)
    _mtp_only(spec, tensors)
    if opts.split_mode == "none" and gl:
        if not 0 <= opts.main_gpu < len(gl):
            raise InputError(f"--main-gpu {opts.main_gpu}: there are {len(gl)} GPUs (0 to {len(gl) - 1})")
        gl = [gl[opts.main_gpu]]
    if opts.split_mode == "tensor" and len(gl) > 1 and opts.flash_attn == "auto":
        opts = opts.model_copy(update={"flash_attn": "on"})  # llama_init_from_model switches it on
    if opts.tensor_split is not None and len(opts.tensor_split) != len(gl):
        raise InputError(f"--tensor-split gives {len(opts.tensor_split)} proportions for {len(gl)} GPUs")
    n_layer = blocks_all(spec)
    auto_ctx = opts.n_ctx is None
    if not opts.spec_types and opts.model_draft:
        from .dflash import auto_type  # common/arg.cpp: no --spec-type, a draft path: the type from its header
        if auto_type(opts.model_draft):
            opts = opts.model_copy(update={"spec_types": auto_type(opts.model_draft)})
    if auto_ctx and opts.model_draft and opts.n_ctx_draft is None:
        opts = opts.model_copy(update={"n_ctx_draft": 0})  # -c 0: the draft takes its own training context
    if auto_ctx and not spec.max_position_embeddings:
        raise InputError("the model gives no training context (llama.cpp's -c 0 default): pass --ctx")
    weights: dict[tuple[int, int], tuple[ModelBuffers, int, int]] = {}
    r = _evaluate(spec, gl, opts, tensors, ram_bytes, model_ref, weights=weights)
    if not solve or not gl:
        return r
    if r.split_mode == "tensor":  # --fit does not run with tensor split (common/fit.cpp): -ngl all, the context as given
        if not limits:
            return r
        max_ctx_t = _largest_ctx(spec, gl, opts.model_copy(update={"n_ctx": r.n_ctx}), tensors, ram_bytes, model_ref,
                                 limit=None, weights=weights)
        return r.model_copy(update={"max_gpu_layers": r.n_gpu_layers if r.fits else None,
                                    "max_ctx": max_ctx_t.n_ctx if max_ctx_t else None})
    # --fit (common/fit.cpp): with -c 0 it lowers the context first (not below --fit-ctx), then, with
    # -ngl auto, moves layers to the CPU. Explicit values are checked, and the largest ones reported.
    if not r.fits and auto_ctx and not r.errors:
        best = _largest_ctx(spec, gl, opts, tensors, ram_bytes, model_ref)
        if best is not None:
            r = best.model_copy(update={"context_source": f"lowered from the training context "
                                        f"{spec.max_position_embeddings} to fit (as llama.cpp's --fit does)"})
    moe_free = spec.is_moe and not (opts.cpu_moe or opts.n_cpu_moe or opts.override_tensor)
    if not r.fits and opts.n_gpu_layers is None and not r.errors and moe_free:
        # common/fit.cpp step 4: with every expert in host memory the dense part fits, so whole layers go
        # back to the GPU until it is full; the experts of the rest stay on the CPU (--n-cpu-moe, same bytes)
        n_moe = _fewest_cpu_moe(spec, gl, opts.model_copy(update={"n_ctx": r.n_ctx, "n_gpu_layers": n_layer + 1}),
                                tensors, ram_bytes, model_ref)
        if n_moe is not None:
            opts = opts.model_copy(update={"n_cpu_moe": n_moe})
            r = _evaluate(spec, gl, opts.model_copy(update={"n_ctx": r.n_ctx, "n_gpu_layers": n_layer + 1}), tensors,
                          ram_bytes, model_ref)
    if not r.fits and opts.n_gpu_layers is None and not r.errors:
        ngl = _largest_ngl(spec, gl, opts.model_copy(update={"n_ctx": r.n_ctx if auto_ctx else opts.n_ctx}),
                           tensors, ram_bytes, model_ref)
        if ngl is not None:
            r = _evaluate(spec, gl, opts.model_copy(update={"n_gpu_layers": ngl, "n_ctx": r.n_ctx}), tensors,
                          ram_bytes, model_ref)
    if not limits:
        return r
    fixed = opts.model_copy(update={"n_ctx": r.n_ctx, "n_gpu_layers": r.n_gpu_layers})
    if r.fits and (r.n_gpu_layers >= n_layer + 1 or limits == "context"):
        max_ngl: int | None = r.n_gpu_layers
    else:
        max_ngl = _largest_ngl(spec, gl, fixed, tensors, ram_bytes, model_ref)
    max_ctx_r = _largest_ctx(spec, gl, fixed, tensors, ram_bytes, model_ref, limit=None, weights=weights)
    return r.model_copy(update={"max_gpu_layers": max_ngl, "max_ctx": max_ctx_r.n_ctx if max_ctx_r else None})


def _fewest_cpu_moe(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, tensors: list[tuple[GGUFTensor, str]],
                    ram: int | None, ref: str) -> int | None:
    """The fewest layers whose experts stay on the CPU with every layer offloaded (None: not even all)."""
    n = spec.num_layers
    if not _evaluate(spec, gl, opts.model_copy(update={"n_cpu_moe": n}), tensors, ram, ref).fits:
        return None
    lo, hi = 1, n  # GPU memory falls as n_cpu_moe grows
    while lo < hi:
        mid = (lo + hi) // 2
        if _evaluate(spec, gl, opts.model_copy(update={"n_cpu_moe": mid}), tensors, ram, ref).fits:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _largest_ngl(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, tensors: list[tuple[GGUFTensor, str]],
                 ram: int | None, ref: str) -> int | None:
    lo, hi, best = 0, blocks_all(spec) + 1, None
    while lo <= hi:  # GPU memory grows with -ngl
        mid = (lo + hi) // 2
        if _evaluate(spec, gl, opts.model_copy(update={"n_gpu_layers": mid}), tensors, ram, ref).fits:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def _fit_margin_mib(opts: LlamaOptions, d: int, own: bool = False) -> int:
    """-fitt's margin for device d (common/arg.cpp --fit-target: one value fills every device, a list sets
    the first ones, the rest keep 1024); own=False: not below FIT_MARGIN_MIB (no false "fits")."""
    t = opts.fit_target_mib
    mib = t[0] if len(t) == 1 else (t[d] if d < len(t) else FIT_MARGIN_MIB)
    return mib if own else max(mib, FIT_MARGIN_MIB)


def _largest_ctx(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, tensors: list[tuple[GGUFTensor, str]],
                 ram: int | None, ref: str, limit: int | None = 0,
                 weights: dict[tuple[int, int], tuple[ModelBuffers, int, int]] | None = None) -> LlamaResult | None:
    """The largest context (a multiple of 256, as --fit rounds) that fits; limit 0: the training
    context, not below FIT_MIN_CTX (--fit's range); None: from 256 up to the training context for
    each slot (n_parallel x the training context) or the current context if that is more. One
    evaluation with the phase formula's compute buffer (cheap) gives a first guess: each device's
    free memory over the KV bytes per cell it holds; the answer is then settled with the full
    evaluation (the allocator replay) on both sides of the boundary, galloping from the guess to a
    bracket and narrowing it (settle): it fits at the answer and not one step (256 cells) above."""
    n_ctx_train = spec.max_position_embeddings or 0
    top = n_ctx_train if limit == 0 else max(n_ctx_train * max(1, opts.n_parallel), opts.n_ctx or 0)
    lo0 = max(1, -(-opts.fit_min_ctx // 256)) if limit == 0 else 1  # not below -fitc, in 256-cell steps
    hi0 = max(lo0, top // 256)
    weights = {} if weights is None else weights  # the context changes, the weights' placement does not

    def at(steps: int, replay: bool = True) -> LlamaResult:
        return _evaluate(spec, gl, opts.model_copy(update={"n_ctx": steps * 256}), tensors, ram, ref, replay, weights)

    def room(r: LlamaResult) -> float | None:
        """Cells to the boundary if only the KV cache grew: each checked device's free memory over the KV
        bytes per cell it holds (negative: short by that many); None when no device holds KV."""
        cells, rooms = max(1, r.n_ctx), []
        for d in r.devices:
            if d.available_bytes < 0:
                continue  # host RAM not given: not checked
            if d.kv_buffer_bytes:
                rooms.append((d.available_bytes - d.total_bytes - d.uncertainty_bytes) / (d.kv_buffer_bytes / cells))
        return min(rooms, default=None)

    def first_guess() -> int:
        start = min(hi0, max(lo0, (opts.n_ctx or 0) // 256))
        r0 = at(start, replay=False)
        if any(d.available_bytes >= 0 and not d.kv_buffer_bytes
               and d.available_bytes - d.total_bytes - d.uncertainty_bytes < 0 for d in r0.devices):
            return lo0  # short of memory that no context frees
        rm = room(r0)
        return max(lo0, min(hi0, int((max(1, r0.n_ctx) + (hi0 * 256 if rm is None else rm)) // 256)))

    def settle(good: tuple[int, LlamaResult], bad: tuple[int, LlamaResult]) -> LlamaResult:
        """Narrow a bracket (fits at good, not at bad) to adjacent steps. Each probe is where the room
        interpolates to zero between the ends (the compute buffer grows with the context too, nearly
        linearly); after two probes on one side, one bisection, so a bent curve still ends in log steps."""
        last, interpolate = None, True
        while bad[0] - good[0] > 1:
            p = (good[0] + bad[0]) // 2
            rg, rb = room(good[1]), room(bad[1])
            if interpolate and rg is not None and rb is not None and rg > rb:
                p = good[0] + int((bad[0] - good[0]) * max(0.0, rg) / (rg - rb))
            p = min(bad[0] - 1, max(good[0] + 1, p))
            rn = at(p)
            interpolate, last = rn.fits != last, rn.fits
            if rn.fits:
                good = (p, rn)
            else:
                bad = (p, rn)
        return good[1]

    guess = first_guess()
    r = at(guess)
    rm = room(r)
    if r.fits:  # gallop up from the guess (first to where the KV cache alone would fill the room), then settle
        good, step = (guess, r), (max(1, int(rm // 256) + 1) if rm is not None and rm > 0 else 1)
        while good[0] < hi0:
            nxt = min(hi0, good[0] + step)
            rn = at(nxt)
            if not rn.fits:
                return settle(good, (nxt, rn))
            good, step = (nxt, rn), step * 2
        return good[1]
    bad, step = (guess, r), (max(1, int(-rm // 256) + 1) if rm is not None and rm < 0 else 1)  # gallop down
    while bad[0] > lo0:
        nxt = max(lo0, bad[0] - step)
        rn = at(nxt)
        if rn.fits:
            return settle((nxt, rn), bad)
        bad, step = (nxt, rn), step * 2
    return None


def _evaluate(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, tensors: list[tuple[GGUFTensor, str]],
              ram_bytes: int | None, model_ref: str, replay: bool = True,
              weights: dict[tuple[int, int], tuple[ModelBuffers, int, int]] | None = None) -> LlamaResult:
    """replay False: the compute buffer from the phase formula only (a cheap first guess for searches).
    weights: one check's own store of (model buffers, file size, elements) by (-ngl, --n-cpu-moe), for
    evaluations that change the context alone, where the weights' placement does not change."""
    bld = resolve_build(opts.build, opts.build_unplaced_as_modelled)
    errors: list[Message] = []
    warnings: list[Message] = []
    n_layer = blocks_all(spec)
    n_ctx_req = opts.n_ctx or spec.max_position_embeddings or 0
    how = "--ctx" if opts.n_ctx else "the model's training context (llama.cpp's -c 0 default)"
    fa = opts.fa
    if opts.type_v.upper() not in ("F16", "F32", "BF16") and not fa:
        errors.append(QUANT_V_NEEDS_FA)
    n_rs_seq = rs_snapshots(gguf_arch(spec), opts)
    if n_rs_seq and min(opts.n_ubatch, opts.n_batch) <= n_rs_seq + 1:
        # src/llama-memory-hybrid.cpp / llama-memory-recurrent.cpp init_batch: split_equal keeps each sequence's last
        # n_rs_seq + 1 tokens in one ubatch, and src/llama-batch.cpp split_equal asserts the ubatch holds more; the
        # first decode (common_init_from_params' warmup) aborts llama-server
        errors.append(error("llamacpp.spec.rs_ubatch", (
            f"-ub {min(opts.n_ubatch, opts.n_batch)} with --spec-draft-n-max {opts.draft_max} on a {gguf_arch(spec)} "
            f"model (recurrent rollback, n_rs_seq = {n_rs_seq}): GGML_ASSERT(n_ubatch > n_keep_tail) failed "
            "[src/llama-batch.cpp split_equal]: llama-server aborts at its first decode"),
            fix=f"-ub {n_rs_seq + 2} or more (and -b no smaller), or a smaller --spec-draft-n-max",
            source="src/llama-batch.cpp llama_batch_allocr::split_equal"))
    tensor_split = opts.split_mode == "tensor" and len(gl) > 1
    nb = backend_rules().no_backend
    for vendor in dict.fromkeys(g.vendor for g in gl if nb and g.vendor in nb.vendors):
        assert nb is not None and vendor is not None
        errors.append(error("llamacpp.no_backend", f"{nb.vendors[vendor]} (no ggml backend for {vendor} devices: "
                            "every layer would run on the CPU)", source=nb.source_note,
                            fix="--gpu with a device llama.cpp has a backend for, or no --gpu (the CPU)"))
    msgs, notes = split_mode_messages(spec, gl, opts)
    errors += msgs
    warnings += notes
    if any(la.attention is not None and la.attention.latent_cache for la in spec.layers) \
            and opts.type_k.upper() != opts.type_v.upper():  # MLA caches K only; V is a view of it
        errors.append(error("llamacpp.kv.mla_kv_types", f"model does not support different K ({opts.type_k.lower()}) "
                            f"and V ({opts.type_v.lower()}) cache types [src/llama-context.cpp llama_init_from_model: "
                            "MLA]", fix="the same -ctk and -ctv", source="src/llama-context.cpp llama_init_from_model"))
    kvo = LlamaKVOptions(n_ctx=n_ctx_req, n_seq_max=opts.n_parallel, kv_unified=opts.kv_unified,
                         n_ubatch=opts.n_ubatch, type_k=opts.type_k.upper(), type_v=opts.type_v.upper(),
                         swa_full=opts.swa_full, mla_layout=mla_layout_of(spec, opts),
                         # before PR #17046: the KV size padded to 256 with flash attention, else 32
                         pad=256 if bld.has(17046) or fa else 32,
                         n_rs_seq=rs_snapshots(gguf_arch(spec), opts))
    n_ctx_seq, streams = context_cells(kvo)
    layers_mem = layer_memory(spec, kvo)
    caches = llama_caches(spec, kvo, layers_mem)
    ngl = min(opts.n_gpu_layers if opts.n_gpu_layers is not None else n_layer + 1, n_layer + 1) if gl else 0
    unified = bool(gl and gl[0].unified_memory)
    if opts.tensor_split:
        splits = list(opts.tensor_split)
    elif tensor_split:  # docs/multi-gpu.md: without -ts, tensor splits the segments evenly
        splits = [1.0] * len(gl)
    else:  # layer split: by each device's memory
        splits = [float(g.usable_bytes or g.memory_bytes) for g in gl]
    placed = [(p, device_index(d)) for p, _, d in (o.rpartition("=") for o in opts.override_tensor)]
    overrides = [EXPERT_TENSORS] if opts.cpu_moe and not opts.n_cpu_moe else []
    rules_b = backend_rules()
    backend = backend_of(gl, opts) if gl else "cpu"
    # a GPU with a pinned host buffer type takes the CPU weights before CPU_REPACK (make_cpu_buft_list)
    gpu_host = bool(gl) and not unified and rules_b.backends[backend].host_buffer
    gpu_host_type = gpu_host  # the host buffer type is in the CPU list in every build modelled (its place moved)
    if opts.no_host:  # src/llama-model.cpp make_cpu_buft_list(no_host): no GPU host buffer type in the CPU list
        gpu_host = gpu_host_type = False
    repack = opts.cpu_repack
    if not bld.has(12498):  # before PR #12498: CPU_AARCH64 first, beside a GPU too
        gpu_host = False
    elif not bld.has(12632) and gl:  # PR #12498 to #12632: no repack with a GPU present
        repack = False
    n_dev = len(gl)
    adapters = lora_adapters(opts, tensors)
    if adapters and tensor_split:
        raise NotModelledError("--lora with --split-mode tensor is not modelled; use --split-mode layer")
    hit = weights.get((ngl, opts.n_cpu_moe)) if weights is not None else None
    if hit is None:
        # common/arg.cpp --n-cpu-moe N adds one override per layer index below N; the same tensors are picked by
        # one pattern and a check of the layer index (N above the layer count: every layer)
        mb = model_buffers(tensors, n_layer, ngl, splits, overrides, cpu_moe_layers=opts.n_cpu_moe,
                           # the NextN / MTP blocks' tensors are TENSOR_SKIP unless load_mtp (--spec-type draft-mtp:
                           # common/common.cpp common_model_params_to_llama; src/models/qwen3next.cpp)
                           skip_from_block=None if "draft-mtp" in opts.spec_types else spec.num_layers,
                           unified=unified, repack=repack, mmap=not opts.no_mmap,
                           split_tensors=rules_b.sm_tensor.split_tensors if tensor_split else None,
                           repack_types=frozenset(rules_b.repack_types[opts.host_cpu]), gpu_host_buffer=gpu_host,
                           device_overrides=[(p, d) for p, d in placed if d is not None],
                           record=frozenset(p.base for ad in adapters for p in ad.pairs),
                           output_first=bld.has(18148),  # before PR #18148: the last blocks first, output above n_layer
                           # --no-mmap beside a GPU with a host buffer type: the host weights whose op it runs are pinned
                           pinned_host=opts.no_mmap and gpu_host_type, override_picks_host=bld.has(14990),
                           get_rows_types=_get_rows_types(rules_b.backends[backend], bld.has(25962))
                           if gpu_host_type else None, override_repack=opts.no_host and bld.has(14990))
        if tensor_split:  # the meta device: every offloaded weight in segments by -ts (data/llamacpp_backends.json)
            mb = _segments(mb, splits)
        size = tensors_bytes(tensors)
        n_el = sum(_numel(t.ne) for t, _ in tensors)
        if weights is not None:
            weights[(ngl, opts.n_cpu_moe)] = (mb, size, n_el)
    else:
        mb, size, n_el = hit
    kv_dev, rs_dev = [0] * n_dev, [0] * n_dev
    kv_host = rs_host = 0
    for il, lm in enumerate(layers_mem):
        d = mb.unit_device[il]
        if d == CPU or opts.no_kv_offload:  # docs/llamacpp.md#kv-placement (or the host with -nkvo)
            kv_host += lm.kv_bytes
            rs_host += lm.recurrent_bytes
        elif tensor_split:  # KV heads split in the same segments as the weights
            for k, share in enumerate(_shares(splits)):
                kv_dev[k] += int(lm.kv_bytes * share)
                rs_dev[k] += int(lm.recurrent_bytes * share)
        else:
            kv_dev[d] += lm.kv_bytes
            rs_dev[d] += lm.recurrent_bytes
    n_kv_swa = next((c.cells for c in caches if c.name == "SWA"), 0)
    # llama_context: pipeline parallelism needs offload_kqv (-nkvo turns it off)
    pipeline = bool(gl) and not opts.rpc_nodes and not opts.no_kv_offload and \
        backend_rules().backends[backend_of(gl, opts)].pipeline_parallel
    arch = gguf_arch(spec)
    from .dflash import target_layer_inputs
    layer_inp = target_layer_inputs(opts)  # draft-dflash / draft-dspark: the drafter's target layers (dflash.py)
    e3 = _eagle3_target(spec, opts)  # --spec-type draft-eagle3: the layer inputs the target keeps (eagle3.py)
    if e3:
        layer_inp = eagle3.layer_inputs(spec, e3)
    comp = compute_buffers(spec, opts, mb, n_ctx_seq, n_kv_swa, fa, n_dev, pipeline=pipeline, arch=arch if replay else "",
                           n_ctx=n_ctx_seq * streams, variant=graph_variant(arch, (t.name for t, _ in tensors)),
                           offload_min_batch=rules_b.backends[backend].offload_min_batch
                           if gl and not opts.rpc_nodes and opts.op_offload else 0,
                           embd_input=bld.has(18898),  # PR #18898: the embeddings input in every graph
                           layer_inp=layer_inp)
    output = output_buffer_bytes(spec, opts.output_rows, embeddings=opts.output_embeddings)
    # common_speculative_impl_draft_dflash / _eagle3: llama_set_embeddings_layer_inp on the target: its output_reserve
    # keeps n_embd x n_batch floats per extracted layer (src/llama-context.cpp)
    output += spec.hidden_size * opts.n_batch * 4 * len(layer_inp)
    if e3:  # an EAGLE-3 target layer id equal to n_layer: llama_set_embeddings_nextn (unmasked), as many rows
        output += eagle3.target_nextn_bytes(spec, e3, opts.n_batch)
    extras, ex_errors, ex_warnings = _extras(spec, gl, opts, mb, tensors, adapters, backend)
    if "draft-mtp" in opts.spec_types:
        mtp = _mtp(spec, gl, opts, mb, tensors, kvo, n_ctx_seq, streams, fa, pipeline, backend, bld, ex_errors)
        if mtp is not None:
            extras.append(mtp)
            # common_speculative_impl_draft_mtp: llama_set_embeddings_nextn(ctx_tgt, true, masked false): the target's
            # next output_reserve adds n_embd_out floats for every token of a batch (src/llama-context.cpp)
            output += spec.hidden_size * opts.n_batch * 4
    if adapters and not comp.exact:
        ex_warnings.append(warning("llamacpp.lora.compute", "the LoRA matmuls' intermediates (b(a(x)) beside each "
                                   "adapted projection, llm_graph_context::build_lora_mm) are in the allocator replay "
                                   "only; this compute buffer is the phase formula's, without them"))
    errors += ex_errors
    warnings += ex_warnings
    kinds = ("lora", "draft", "mmproj", "cvec", "spec")
    col = {"mtp": "draft"}  # the MTP context is the draft context of draft-mtp: the draft column
    ex_gpu = {k: [sum(e.gpu_bytes[d] for e in extras if col.get(e.kind, e.kind) == k) for d in range(n_dev)]
              for k in kinds}
    ex_host = {k: sum(e.host_bytes for e in extras if col.get(e.kind, e.kind) == k) for k in kinds}
    ex_unc = [sum(e.uncertainty_gpu_bytes[d] for e in extras if e.uncertainty_gpu_bytes) for d in range(n_dev)]
    ex_unc_host = sum(e.uncertainty_host_bytes for e in extras)
    devices = []
    for d, g in enumerate(gl):
        avail = (g.usable_bytes or g.memory_bytes) - _fit_margin_mib(opts, d) * MIB
        model_b = mb.gpu_bytes[d]
        ex_d = {k: ex_gpu[k][d] for k in kinds}
        total = model_b + kv_dev[d] + rs_dev[d] + comp.device[d] + sum(ex_d.values())
        unc = int(comp.device[d] * comp.margin) + ex_unc[d]
        host_in_pool = unified and d == 0  # one pool: the host's buffers count against it too
        if host_in_pool:
            total += kv_host + rs_host + comp.host + output + sum(ex_host.values())
            ex_d = {k: ex_d[k] + ex_host[k] for k in kinds}
            unc += ex_unc_host
        name = g.id if n_dev == 1 else f"{g.id}#{d}"
        if opts.rpc_nodes:
            per_node = n_dev // (opts.rpc_nodes + 1)
            node = d // per_node
            name += f" (node {node + 2}, RPC)" if node < opts.rpc_nodes else " (head node)"
        devices.append(LlamaDevice(device=name, model_buffer_bytes=model_b, kv_buffer_bytes=kv_dev[d],
                                   recurrent_buffer_bytes=rs_dev[d], compute_buffer_bytes=comp.device[d],
                                   output_buffer_bytes=output if host_in_pool else 0,
                                   lora_buffer_bytes=ex_d["lora"], draft_bytes=ex_d["draft"], mmproj_bytes=ex_d["mmproj"],
                                   control_vector_bytes=ex_d["cvec"], speculative_bytes=ex_d["spec"],
                                   total_bytes=total, uncertainty_bytes=unc, available_bytes=avail))
    host_model = 0 if unified else mb.cpu_bytes
    if not unified:
        host_total = host_model + mb.repack_bytes + kv_host + rs_host + comp.host + output + sum(ex_host.values())
        devices.append(LlamaDevice(device="host RAM", model_buffer_bytes=host_model, pinned_model_buffer_bytes=mb.pinned_bytes,
                                   repack_buffer_bytes=mb.repack_bytes, kv_buffer_bytes=kv_host,
                                   recurrent_buffer_bytes=rs_host, compute_buffer_bytes=comp.host,
                                   output_buffer_bytes=output, lora_buffer_bytes=ex_host["lora"],
                                   draft_bytes=ex_host["draft"], mmproj_bytes=ex_host["mmproj"],
                                   control_vector_bytes=ex_host["cvec"], speculative_bytes=ex_host["spec"],
                                   total_bytes=host_total,
                                   uncertainty_bytes=int(comp.host * comp.margin) + ex_unc_host,
                                   available_bytes=ram_bytes if ram_bytes is not None else -1))
        if ram_bytes is None:
            warnings.append(warning("llamacpp.host.ram_unknown", "host RAM not given (--ram): the host column is not "
                                    "checked; CPU weights are mmap'ed from the page cache "
                                    "(docs/llamacpp.md#host-memory)", fix="--ram"))
    if gl and min(_fit_margin_mib(opts, d, own=True) for d in range(len(gl))) < FIT_MARGIN_MIB:
        warnings.append(warning("llamacpp.fit.target_below_margin", f"-fitt {','.join(map(str, opts.fit_target_mib))}: "
                                f"llama.cpp's --fit leaves that much free; vramcalc still leaves {FIT_MARGIN_MIB} MiB per "
                                "GPU for what llama.cpp does not count, so its -ngl and context may be lower than "
                                "llama.cpp's choice (which may then run out of memory)"))
    if gl:
        warnings.append(warning("llamacpp.compute.estimated", f"compute buffers are estimated ({comp.how}); "
                                f"{max(_fit_margin_mib(opts, d) for d in range(len(gl)))} MiB per GPU is left free for what llama.cpp does not count (CUDA "
                                "context, cuBLAS), as its --fit does"))
    if opts.rpc_nodes:
        warnings.append(warning("llamacpp.rpc.nodes", f"{opts.rpc_nodes} other machine(s) through llama.cpp's RPC "
                                "backend (tools/rpc/README.md: a proof of concept, fragile and insecure, never on an "
                                "open network); their GPUs take the first layers, and every token crosses the network "
                                "once per machine. First, on each of them: ggml-rpc-server -H 0.0.0.0 -p 50052 (built "
                                "with -DGGML_RPC=ON and its GPU backend)"))
    if comp.copies > 1:
        warnings.append(warning("llamacpp.compute.pipeline_copies", f"layer split over {n_dev} GPUs with every "
                                f"layer offloaded: llama.cpp keeps {comp.copies} copies of the compute buffers "
                                "(pipeline parallelism, docs/llamacpp.md#pipeline-copies)"))
    growth = _server_growth(spec, opts, bld, kvo, n_ctx_seq, streams, devices, unified)
    if growth[3] is not None:
        warnings.append(growth[3])
    fits = not errors and all(d.available_bytes < 0 or d.total_bytes + d.uncertainty_bytes <= d.available_bytes
                              for d in devices)
    cmd = _command(spec, opts, gl, ngl, n_ctx_req, model_ref, fa)
    trace = _trace(spec, opts, mb, caches, kv_dev, kv_host, comp, output, devices, n_layer, fa, extras)
    return LlamaResult(fits=fits, model_size_bytes=size, bpw=round(size * 8 / n_el, 4) if n_el else 0.0,
                       n_ctx=n_ctx_seq * streams, n_ctx_seq=n_ctx_seq, n_parallel=opts.n_parallel,
                       kv_unified=opts.kv_unified or opts.n_parallel == 1, flash_attn=fa, context_source=how,
                       gpu_layers=mb.gpu_layers, n_gpu_layers=ngl, split_mode=opts.split_mode if n_dev > 1 else "none",
                       backend=backend_of(gl, opts) if gl else "cpu", n_cpu_moe=opts.n_cpu_moe, build=bld.label,
                       host_compute_bytes=comp.host, extras=extras, no_kv_offload=opts.no_kv_offload,
                       checkpoint_bytes=growth[0], checkpoints_max_bytes=growth[1], prompt_cache_max_bytes=growth[2],
                       devices=devices, caches=caches, errors=errors, warnings=warnings,
                       command=cmd, trace=trace)


# The size above which the checkpoints of all slots are worth a warning on a host whose RAM was not given
CHECKPOINTS_WARN_GIB = 2


def _server_growth(spec: ModelSpec, opts: LlamaOptions, bld: LlamaBuild, kvo: LlamaKVOptions, n_ctx_seq: int,
                   streams: int, devices: list[LlamaDevice], unified: bool
                   ) -> tuple[int, int, int | None, Message | None]:
    """llama-server's host RAM after start-up (llamacpp/checkpoints.py): one checkpoint of a slot at its full
    context, the checkpoints of all slots at -ctxcp, the prompt cache's limit (None: none), and a warning when
    they would not fit in what the host (the shared pool on unified memory) has left after start-up."""
    if opts.program != "llama-server":
        return 0, 0, 0, None
    # before PR #23981 a sliding-window checkpoint holds the window and the last ubatch (kv-cache state_write)
    one = checkpoint_bytes(spec, kvo.type_k, kvo.type_v, n_ctx_seq, streams, opts.swa_full,
                           swa_extra_cells=0 if bld.has(23981) else opts.n_ubatch) if opts.n_ctx_checkpoints else 0
    slots = opts.n_parallel
    ckpts = slots * opts.n_ctx_checkpoints * one
    cache = opts.cache_ram_mib * 2**20 if opts.cache_ram_mib >= 0 else None
    pool = next((d for d in devices if d.device == "host RAM"), None) if not unified else (devices[0] if devices else None)
    mib = one / 2**20
    what = (f"context checkpoints (up to -ctxcp {opts.n_ctx_checkpoints} per slot x {slots} slot(s) x {mib:.1f} MiB: "
            f"{ckpts / 2**30:.2f} GiB)" if ckpts else "")
    cram = ("its prompt cache (-cram -1: no size limit)" if cache is None else
            f"its prompt cache (up to -cram {opts.cache_ram_mib} MiB)" if cache else "")
    parts = " and ".join(p for p in (what, cram) if p)
    if not parts:
        return one, ckpts, cache, None
    where = "the unified memory pool" if unified else "host RAM"
    if pool is None or pool.available_bytes < 0:
        if ckpts < CHECKPOINTS_WARN_GIB * 2**30:
            return one, ckpts, cache, None
        return one, ckpts, cache, warning(
            "llamacpp.server.host_growth", f"as conversations run, llama-server's {parts} can take that much of {where} after "
            "start-up, outside the figures above (give --ram to check it)",
            fix="-ctxcp N (fewer checkpoints per slot) or -cram M", source="tools/server/server-context.cpp "
            "create_checkpoint, server_prompt_cache (4df29be)")
    left = pool.available_bytes - pool.total_bytes - pool.uncertainty_bytes
    if cache is not None and ckpts + cache <= left:
        return one, ckpts, cache, None
    if cache is None:
        fix = "-cram M (a size limit for the prompt cache)"
    else:
        n_fit = max(0, (left - cache) // (slots * one)) if one else opts.n_ctx_checkpoints
        fix = " or ".join(f for f in ((f"-ctxcp {n_fit}" if n_fit < opts.n_ctx_checkpoints else ""),
                                      ("a smaller -cram" if cache else "")) if f)
    return one, ckpts, cache, warning(
        "llamacpp.server.host_growth", f"as conversations run, llama-server's {parts} can take more {where} than "
        f"the {max(0, left) / 2**30:.2f} GiB left after start-up", fix=fix,
        source="tools/server/server-context.cpp create_checkpoint, server_prompt_cache (4df29be)")


def lora_adapters(opts: LlamaOptions, tensors: list[tuple[GGUFTensor, str]]) -> list[LoraAdapter]:
    """--lora (comma lists, common/arg.cpp parse_csv_row), --lora-scaled FNAME:SCALE and vramcalc's --lora-rank."""
    out = [read_lora(p.strip()) for item in opts.lora for p in item.split(",") if p.strip()]
    out += [read_lora(*split_scaled(p.strip())) for item in opts.lora_scaled for p in item.split(",") if p.strip()]
    if opts.lora_rank:
        out.append(lora_of_rank(opts.lora_rank, tensors))
    return out


DRAFT_SOURCE = "common/speculative.cpp common_base_params_to_speculative, common_speculative_init_result"
MTP_SOURCE = ("common/speculative.cpp common_speculative_init_result (LLAMA_CONTEXT_TYPE_MTP), "
              "common_speculative_impl_draft_mtp; src/llama-model.cpp create_memory; src/models/qwen3next.cpp, "
              "qwen35.cpp, qwen35moe.cpp graph_mtp (4df29be)")
# the architectures whose MTP context is modelled, each with its graph_mtp in graphs.py (BUILDERS[arch + "-mtp"])
MTP_ARCHS = ("qwen3next", "qwen35", "qwen35moe")
MTP_REFUSED = ("llama_init_from_model: context type MTP requested but model doesn't contain MTP layers; "
               "common_speculative_init_result: failed to create MTP context; llama-server: failed to create MTP "
               "context [src/llama-context.cpp llama_init_from_model, tools/server/server-context.cpp load_model]")


def _mtp_only(spec: ModelSpec, tensors: list[tuple[GGUFTensor, str]]) -> None:
    """An MTP-only GGUF (a sidecar): src/models/qwen35.cpp / qwen35moe.cpp load_arch_tensors take a file with NextN
    blocks and no blk.0.attn_norm as mtp_only and load its trunk tensors as TENSOR_NOT_REQUIRED (absent). Given as
    -m, llama.cpp 4df29be loads it and then crashes (SIGSEGV) reserving the target's graph on the missing trunk
    (tests/data/llamacpp_mtp_runs.json, qwen35-mtp-only); not modelled."""
    if gguf_arch(spec) in ("qwen35", "qwen35moe") and spec.mtp_layers and (spec.architecture or "").startswith("gguf:") \
            and not any(t.name == "blk.0.attn_norm.weight" for t, _ in tensors):
        raise NotModelledError("an MTP-only GGUF (NextN blocks without the trunk's tensors, src/models/"
                               f"{gguf_arch(spec)}.cpp load_arch_tensors mtp_only) as the model: llama.cpp 4df29be "
                               "loads it and crashes reserving the target's graph; it is a sidecar for another "
                               "model's MTP context (-md), which is not modelled")


def _mtp(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, mb: ModelBuffers, tensors: list[tuple[GGUFTensor, str]],
         kvo: LlamaKVOptions, n_ctx_seq: int, streams: int, fa: bool, pipeline: bool, backend: str, bld: LlamaBuild,
         errors: list[Message]) -> LlamaExtra | None:
    """--spec-type draft-mtp (MTP_SOURCE): llama-server makes a second context on the target model itself,
    ctx_type LLAMA_CONTEXT_TYPE_MTP, from common_base_params_to_speculative's copy of its parameters: the same -c,
    slots, unified cache, batch, ubatch and flash attention, the cache types of -ctkd / -ctvd, n_outputs_max one per
    slot. Its memory (qwen3next: a plain llama_kv_cache filtered to il >= n_layer()) holds the MTP blocks alone, on
    their layer's device; its graph is graph_mtp; its output buffer holds n_vocab floats per slot, and n_embd more
    per slot once common_speculative_impl_draft_mtp sets embeddings_nextn (masked) on it. A model without MTP blocks
    is refused: llama_init_from_model returns no context and llama-server stops."""
    arch = gguf_arch(spec)
    gguf = (spec.architecture or "").startswith("gguf:")
    if opts.model_draft:  # common_speculative_init_result: with -md the MTP context type is given to the draft model
        raise NotModelledError("-md with --spec-type draft-mtp: llama.cpp makes the MTP context on the draft model "
                               "(common_speculative_init_result), not on the target; not modelled")
    if opts.split_mode == "tensor" and len(gl) > 1:
        raise NotModelledError("--spec-type draft-mtp with --split-mode tensor is not modelled; use --split-mode layer")
    if not gguf and spec.mtp_layers:
        raise NotModelledError("--spec-type draft-mtp on a GGUF predicted from a checkpoint with MTP layers: whether "
                               "the file carries them (and in what layout) is in its header; give the .gguf")
    if not gguf:  # a checkpoint without MTP layers converts to a GGUF without them
        errors.append(error("llamacpp.spec.no_mtp", MTP_REFUSED + " (the checkpoint has no MTP layers)",
                            fix="a model with MTP layers, or another --spec-type",
                            source="src/llama-context.cpp llama_init_from_model"))
        return None
    if arch not in MTP_ARCHS:
        if any(".nextn." in t.name for t, _ in tensors):
            raise NotModelledError(f"--spec-type draft-mtp on {arch}: its MTP context (memory and graph) is modelled "
                                   f"for {', '.join(MTP_ARCHS)} GGUFs only")
        errors.append(error("llamacpp.spec.no_mtp", MTP_REFUSED, fix="a GGUF that carries the MTP (nextn) layers, or "
                            "another --spec-type", source="src/llama-context.cpp llama_init_from_model"))
        return None
    if not spec.mtp_layers:
        errors.append(error("llamacpp.spec.no_mtp", MTP_REFUSED, fix="a GGUF that carries the MTP (nextn) layers, or "
                            "another --spec-type", source="src/llama-context.cpp llama_init_from_model"))
        return None
    if opts.type_v_draft.upper() not in ("F16", "F32", "BF16") and not fa:
        # llama_init_from_model: the MTP context has the target's -fa and -ctvd's V type; llama-server stops
        errors.append(QUANT_V_NEEDS_FA.model_copy(update={"text": (
            f"-ctvd {opts.type_v_draft.lower()} with -fa off: llama_init_from_model: quantized V cache requires "
            "flash_attn to be enabled; common_speculative_init_result: failed to create MTP context; llama-server: "
            "failed to create MTP context [src/llama-context.cpp llama_init_from_model, tools/server/server-context.cpp "
            "load_model]"), "fix": "-fa on, or -ctvd f16"}))
        return None
    if arch != "qwen3next" and spec.mtp_layers != 1:  # qwen35.cpp / qwen35moe.cpp graph_mtp: GGML_ASSERT, an abort
        raise NotModelledError(f"--spec-type draft-mtp on a {arch} GGUF with {spec.mtp_layers} MTP blocks: llama.cpp's "
                               "graph_mtp supports a single MTP block (GGML_ASSERT n_layer_nextn == 1 in "
                               f"src/models/{arch}.cpp)")
    n_dev = len(gl)
    # the MTP block is a trunk block with full attention (qwen3next.cpp load_block_mtp -> load_block_trunk)
    full = next(la for la in spec.layers if la.attention is not None and la.ssm is None)
    mspec = spec.model_copy(update={"layers": (full,) * spec.mtp_layers, "mtp_layers": 0})
    mkvo = kvo.model_copy(update={"type_k": opts.type_k_draft.upper(), "type_v": opts.type_v_draft.upper()})
    kv_dev, kv_host = [0] * n_dev, 0
    devs = []
    for j, lm in enumerate(layer_memory(mspec, mkvo)):
        d = mb.unit_device[spec.num_layers + j]
        devs.append(d)
        if d == CPU or opts.no_kv_offload or not gl:
            kv_host += lm.kv_bytes
        else:
            kv_dev[d] += lm.kv_bytes
    mopts = opts.model_copy(update={"type_k": opts.type_k_draft, "type_v": opts.type_v_draft,
                                    "n_outputs_max": opts.n_parallel, "spec_types": (), "lora": (), "lora_scaled": (),
                                    "lora_rank": None, "n_outputs_run": None, "embedding": False})
    mmb = mb.model_copy(update={"unit_device": devs + [mb.unit_device[-1]],
                                "gpu_layers": sum(1 for d in devs if d != CPU)})
    rules_b = backend_rules()
    # common_speculative_impl_draft_mtp: with --spec-draft-backend-sampling (on by default) a backend top-k(10) chain
    # on every slot of the MTP context (llama_set_sampler, which the context refuses under SPLIT_MODE_TENSOR,
    # src/llama-context.cpp set_sampler): its first decode re-reserves the graph with build_sampling's nodes
    # (n_outputs_max_per_seq 1, common_base_params_to_speculative) and output_reserve adds the sampling rows
    sampling = opts.draft_backend_sampling and opts.split_mode != "tensor"

    def _comp(samplers: tuple[int, int]) -> ComputeBuffers:
        return compute_buffers(mspec, mopts, mmb, n_ctx_seq, 0, fa, n_dev, pipeline=pipeline, arch=arch + "-mtp",
                               n_ctx=n_ctx_seq * streams,
                               offload_min_batch=rules_b.backends[backend].offload_min_batch
                               if gl and not opts.rpc_nodes and opts.op_offload else 0,
                               embd_input=bld.has(18898), samplers=samplers)
    comp_start = _comp((0, 0))
    comp = _comp((opts.n_parallel, 1)) if sampling else comp_start
    if sampling and not comp.exact:  # the phase formula: build_sampling's padded logits (n_outputs + 1 rows) added
        pad = spec.vocab_size * (min(opts.n_ubatch, opts.n_batch, opts.n_parallel) + 1) * 4
        od = mmb.output_device
        comp = comp.model_copy(update={"device": [c + (pad if d == od else 0) for d, c in enumerate(comp.device)],
                                       "host": comp.host + (pad if od == -1 or not n_dev else 0)})
    out_start = output_buffer_bytes(mspec, opts.n_parallel)
    # output_reserve: n_seq_max rows (the MTP context's outputs are one per slot at most): logits, the nextn rows
    # (embeddings_nextn, masked) and, with the samplers, their rows (dflash.py draft_output_bytes)
    out = draft_output_bytes(spec.vocab_size, spec.hidden_size, opts.n_parallel, sampling)
    gpu_b = [kv_dev[d] + comp.device[d] for d in range(n_dev)]
    host_b = kv_host + comp.host + out
    return LlamaExtra(kind="mtp", ref="draft-mtp", gpu_bytes=gpu_b, host_bytes=host_b,
                      uncertainty_gpu_bytes=[int(c * comp.margin) for c in comp.device],
                      uncertainty_host_bytes=int(comp.host * comp.margin),
                      detail={"kv": sum(kv_dev) + kv_host, "compute": sum(comp.device) + comp.host,
                              "compute_start": sum(comp_start.device) + comp_start.host,
                              "output_start": out_start, "output": out, "layers": spec.mtp_layers,
                              "n_ctx": n_ctx_seq * streams, "draft_max": opts.draft_max,
                              "type_k": opts.type_k_draft.upper(), "type_v": opts.type_v_draft.upper(),
                              "backend_sampling": sampling},
                      how=f"the MTP context on the target's own {spec.mtp_layers} MTP block(s) (their weights are in "
                          f"the target's model buffers, loaded with draft-mtp): a KV cache of {n_ctx_seq * streams} "
                          f"cells for those blocks alone ({opts.type_k_draft.lower()}/{opts.type_v_draft.lower()}, "
                          "-ctkd/-ctvd) on their layer's device, the compute buffer of the MTP graph"
                          + (" with a backend top-k sampler per slot" if sampling else "") + " ("
                          + ("exact replay" if comp.exact else "estimated") + "), and an output buffer of n_vocab + "
                          "n_embd floats per slot" + (" and its sampling rows (3 n_vocab + 1 more)" if sampling else ""),
                      source=MTP_SOURCE)


def _extras(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, mb: ModelBuffers,
            tensors: list[tuple[GGUFTensor, str]], adapters: list[LoraAdapter], backend: str
            ) -> tuple[list[LlamaExtra], list[Message], list[Message]]:
    """What the LoRA adapters, the draft model and the projector add, per GPU and on the host (extras.py)."""
    n_dev = len(gl)
    out: list[LlamaExtra] = []
    errors: list[Message] = []
    warnings: list[Message] = []
    row_pad = backend in ("cuda", "rocm")  # ggml_backend_cuda_buffer_type_get_alloc_size (HIP builds the same file)
    if adapters:
        errors += lora_problems(adapters, gguf_arch(spec), tensors)
        for ad in adapters:
            g_b, h_b = lora_bytes([ad], mb.tensor_device, n_dev, CPU_ALIGNMENT, GPU_ALIGNMENT, row_pad)
            out.append(LlamaExtra(kind="lora", ref=ad.ref, gpu_bytes=g_b, host_bytes=h_b,
                                  detail={"rank": ad.rank, "tensors": 2 * len(ad.pairs), "scale": ad.scale,
                                          "alpha": ad.alpha},
                                  how="each lora_a / lora_b pair in the buffer type of the base tensor it adapts (its "
                                      "layer's device; the CPU buffer for a repacked one), padded to its alignment",
                                  source=LORA_SOURCE))
    if opts.control_vectors:
        out.append(_control_vector(spec, gl, opts, mb, warnings))
    if "ngram-mod" in opts.spec_types:
        out.append(LlamaExtra(kind="spec", ref="ngram-mod", gpu_bytes=[0] * n_dev, host_bytes=NGRAM_MOD_ENTRIES * 4,
                              detail={"entries": NGRAM_MOD_ENTRIES, "n_max": opts.spec_ngram_mod_n_max},
                              how="--spec-type ngram-mod: one table of 4M int32 token entries in host memory, whatever "
                                  "the context; the drafted tokens' output rows are in the target's buffers",
                              source=NGRAM_MOD_SOURCE))
    for t in ("ngram-map-k", "ngram-map-k4v"):
        if t in opts.spec_types:
            n_max = opts.spec_ngram_map_k_size_m if t == "ngram-map-k" else opts.spec_ngram_map_k4v_size_m
            out.append(LlamaExtra(kind="spec", ref=t, gpu_bytes=[0] * n_dev,
                                  host_bytes=opts.n_parallel * NGRAM_MAP_HASH_ENTRIES * 4,
                                  detail={"entries": NGRAM_MAP_HASH_ENTRIES, "slots": opts.n_parallel, "n_max": n_max},
                                  how=f"--spec-type {t}: one key_map of 2^18 uint32 entries for each slot in host "
                                      "memory; the key list that grows with each slot's text is not counted",
                                  source=NGRAM_MAP_SOURCE))
    grows = [t for t in ("ngram-map-k", "ngram-map-k4v", "ngram-cache") if t in opts.spec_types]
    if grows:
        warnings.append(warning("llamacpp.spec.host_table_grows", (
            f"--spec-type {','.join(grows)}: " + " and ".join(
                (["the n-gram keys found in each slot's text (common/ngram-map.cpp common_ngram_map_begin: a vector of "
                  "common_ngram_map_key, tens of bytes each)"] if grows != ["ngram-cache"] else [])
                + (["the n-gram caches of each slot (common/ngram-cache.h: unordered maps filled as the text is read, "
                    "and the -lcs / -lcd files' caches copied into every slot)"] if "ngram-cache" in grows else []))
            + " grow in host memory with the text and are not counted; the GPUs' figures are whole")))
    if "draft-simple" in opts.spec_types and not opts.model_draft:
        warnings.append(warning("llamacpp.spec.no_draft", (
            "--spec-type draft-simple without -md: there is no draft context, so common_speculative_impl_draft_simple "
            "throws 'draft-simple requires a draft context', common_speculative_init makes none of the listed types "
            "and llama-server runs without speculative decoding (tools/server/server-context.cpp load_model logs "
            "'failed to initialize speculative decoding context'); the output rows of every listed type, "
            f"{opts.n_parallel} x (1 + {opts.spec_n_max}), are still reserved (server_output_limits, sized before), "
            "and an ngram type's host table is counted as made and freed at load")))
    from .dflash import DFLASH_TYPES, dflash_extra
    if opts.model_draft and any(t in DFLASH_TYPES for t in opts.spec_types):
        dfl = dflash_extra(spec, gl, opts, errors, warnings)
        if dfl is not None:
            out.append(dfl)
    elif opts.model_draft:
        out.append(_draft(spec, gl, opts, errors, warnings))
    elif any(t in DFLASH_TYPES or t == "draft-eagle3" for t in opts.spec_types):
        # common_speculative_init: the DFlash and EAGLE-3 implementations are added only with ctx_dft
        kinds = [t for t in opts.spec_types if t in DFLASH_TYPES or t == "draft-eagle3"]
        warnings.append(warning("llamacpp.spec.no_draft", (
            f"--spec-type {','.join(kinds)} without -md: there is no draft context (common_speculative_init_result "
            f"loads none), so common_speculative_init adds no {' / '.join(kinds)} implementation (available only with "
            "ctx_dft) and llama-server runs without it; the output rows of every listed type, "
            f"{opts.n_parallel} x (1 + {opts.spec_n_max}), are still reserved (server_output_limits) "
            "[common/speculative.cpp common_speculative_init]"), fix="-md DRAFT.gguf"))
    if opts.mmproj:
        out.append(_mmproj(gl, opts, row_pad))
    return out, errors, warnings


# common/speculative.cpp common_speculative_impl_ngram_mod: mod(n_match, 4*1024*1024), entries of common_ngram_mod::entry_t
# (int32_t, common/ngram-mod.h), resized once (common/ngram-mod.cpp); one instance for all slots (server-context.cpp
# common_speculative_init(params, n_parallel)), at 4df29be
NGRAM_MOD_ENTRIES = 4 * 1024 * 1024
NGRAM_MOD_SOURCE = "common/speculative.cpp common_speculative_impl_ngram_mod, common/ngram-mod.cpp (4df29be)"
# common/ngram-map.h common_ngram_map: key_map.resize(COMMON_NGRAM_HASH_MAP_SIZE) of uint32_t in its constructor; one
# map per slot (common/speculative.cpp common_speculative_impl_ngram_map_k copies the config n_seq times), at 4df29be
NGRAM_MAP_HASH_ENTRIES = 262144
NGRAM_MAP_SOURCE = "common/ngram-map.h common_ngram_map, common/speculative.cpp common_speculative_impl_ngram_map_k (4df29be)"
CVEC_SOURCE = ("src/llama-adapter.cpp llama_adapter_cvec::init, src/llama-model.cpp llama_model::select_buft, "
               "common/common.cpp common_init_from_params (4df29be)")


def _control_vector(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, mb: ModelBuffers,
                    warnings: list[Message]) -> LlamaExtra:
    """--control-vector (CVEC_SOURCE): common_init_from_params sums the files into one vector and llama_set_adapter_cvec
    makes the target context's llama_adapter_cvec, whose init creates one F32 tensor of n_embd for each layer 1 ..
    n_layer() - 1 (none for layer 0) in select_buft(il): the first buffer type of that layer's list that can add two
    F32 vectors, i.e. its GPU's own buffer, or for a CPU layer the GPU's host buffer type (CUDA_Host ..., not with
    --no-host) or the CPU buffer; each is padded to its buffer type's alignment (ggml-alloc.c
    ggml_backend_alloc_ctx_tensors_from_buft). The draft context gets none (common_speculative_init_result creates it
    with llama_init_from_model). Nothing prints this buffer: the count follows the source."""
    n_dev = len(gl)
    one = spec.hidden_size * 4
    gpu_b, host_b = [0] * n_dev, 0
    tensor_split = opts.split_mode == "tensor" and n_dev > 1
    for il in range(1, spec.num_layers):
        dev = mb.unit_device[il] if il < len(mb.unit_device) else CPU
        if tensor_split:  # the layer's list under a tensor split is not modelled: each GPU is given the whole tensor
            for d in range(n_dev):
                gpu_b[d] += -(-one // GPU_ALIGNMENT) * GPU_ALIGNMENT
        elif dev == CPU or not gl:
            host_b += -(-one // CPU_ALIGNMENT) * CPU_ALIGNMENT
        else:
            gpu_b[dev] += -(-one // GPU_ALIGNMENT) * GPU_ALIGNMENT
    if tensor_split:
        warnings.append(warning("llamacpp.cvec.tensor_split", "--control-vector with --split-mode tensor: where each "
                                "layer's control-vector tensor goes is not modelled; every GPU is given all of them "
                                "(an upper bound of a few MiB)"))
    return LlamaExtra(kind="cvec", ref=",".join(opts.control_vectors), gpu_bytes=gpu_b, host_bytes=host_b,
                      detail={"tensors": max(0, spec.num_layers - 1), "n_embd": spec.hidden_size,
                              "files": len(opts.control_vectors)},
                      how="one F32 tensor of n_embd per layer 1 .. n_layer - 1, in its layer's buffer type (the "
                          "layer's GPU, or host memory for a CPU layer), padded to the buffer's alignment; the "
                          "files' directions are summed into one vector, so more files add nothing",
                      source=CVEC_SOURCE)


def _eagle3_target(spec: ModelSpec, opts: LlamaOptions) -> eagle3.Eagle3File | None:
    """--spec-type draft-eagle3 with an EAGLE-3 draft llama.cpp accepts: its header (the target's layer inputs and
    output rows follow it); None otherwise (no type, no -md, a draft of another kind, a refused pair: _draft says)."""
    if "draft-eagle3" not in opts.spec_types or not opts.model_draft:
        return None
    dm = read_draft(opts.model_draft)
    if not eagle3.is_eagle3(dm.spec) or dm.predicted:
        return None
    f = eagle3.read_eagle3(opts.model_draft)
    if eagle3.check(spec, gguf_arch(spec), dm.spec, f, opts.model_draft):
        return None
    return f


def check_draft_model(dm: DraftModel, dgl: list[GPU], opts: LlamaOptions, n_outputs_max: int,
                      errors: list[Message]) -> tuple[LlamaOptions, LlamaResult]:
    """The draft model (-md) and its own context checked as a second model, on dgl (none: CPU only), with the options
    common_base_params_to_speculative gives it (common/speculative.cpp): -c as given (-cd 0: the draft's own training
    context), -ngld (every layer when not given), -otd, -ctkd / -ctvd, n_outputs_max as given; no devices, LoRA,
    mmproj, control vectors or speculation of its own. Its errors are added to errors, prefixed "draft model: ";
    returns the options and the result."""
    assert opts.model_draft is not None  # run for -md only
    n_ctx = opts.n_ctx if opts.n_ctx_draft is None else (opts.n_ctx_draft or None)
    dopts = opts.model_copy(update={
        "n_ctx": n_ctx, "n_gpu_layers": MAX_LAYER_FLAG if opts.n_gpu_layers_draft is None else opts.n_gpu_layers_draft,
        "devices": None, "main_gpu": 0, "override_tensor": opts.override_tensor_draft, "override_tensor_draft": (),
        "cpu_moe": False, "n_cpu_moe": 0, "type_k": opts.type_k_draft, "type_v": opts.type_v_draft,
        "n_outputs_max": n_outputs_max, "lora": (), "lora_scaled": (), "lora_rank": None, "model_draft": None,
        "mmproj": None, "ftype": None, "n_ctx_draft": None, "n_outputs_run": None, "control_vectors": (),
        "spec_types": ()})
    if not dgl:
        dopts = dopts.model_copy(update={"n_gpu_layers": 0})
    dr = check_llamacpp(dm.spec, dgl or None, dopts, list(dm.tensors), solve=False, limits=False,
                        model_ref=opts.model_draft)
    errors += [e.model_copy(update={"text": f"draft model: {e.text}"}) for e in dr.errors
               if e.code != "llamacpp.host.ram_unchecked"]
    return dopts, dr


def _draft(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions, errors: list[Message],
           warnings: list[Message]) -> LlamaExtra:
    """The draft model and its context, as llama-server makes them (DRAFT_SOURCE)."""
    assert opts.model_draft is not None
    dm = read_draft(opts.model_draft)
    e3 = eagle3.is_eagle3(dm.spec)
    e3_file: eagle3.Eagle3File | None = None
    if e3 and "draft-eagle3" not in opts.spec_types:
        raise NotModelledError(f"-md {opts.model_draft} is an EAGLE-3 head (eagle3 GGUF): without --spec-type "
                               "draft-eagle3 llama.cpp makes it a plain draft context; not modelled")
    if e3:
        if dm.predicted:
            raise NotModelledError("--spec-type draft-eagle3 with a draft predicted from its name: its target layers "
                                   "and heads are in the GGUF's header; give the .gguf")
        e3_file = eagle3.read_eagle3(opts.model_draft)
        refused = eagle3.check(spec, gguf_arch(spec), dm.spec, e3_file, opts.model_draft)
        if refused:
            errors += refused
            e3_file = None
    elif "draft-eagle3" in opts.spec_types:  # common_speculative_impl_draft_eagle3 throws; server-context.cpp catches
        warnings.append(warning("llamacpp.spec.not_eagle3", (
            "failed to initialize speculative decoding context: draft model is not eagle3 (expected 3 extract "
            f"layers, got 0): -md {opts.model_draft} is not an EAGLE-3 head, so common_speculative_init throws and "
            "llama-server runs without speculative decoding, freeing the draft model and context it loaded (counted "
            "here as the peak at load) [common/speculative.cpp common_speculative_impl_draft_eagle3, "
            "tools/server/server-context.cpp load_model]")))
    n_dev = len(gl)
    if dm.spec.vocab_size and spec.vocab_size and abs(dm.spec.vocab_size - spec.vocab_size) > SPEC_VOCAB_MAX_DIFF:
        errors.append(error("llamacpp.draft.vocab", "the target and draft vocabs are not compatible: draft model vocab "
                            f"type must match target model to use speculation (vocab sizes {spec.vocab_size} and "
                            f"{dm.spec.vocab_size} differ by more than {SPEC_VOCAB_MAX_DIFF}) [common/speculative.cpp "
                            "common_speculative_are_compatible]", fix="a draft model of the same family (tokenizer)",
                            source="common/speculative.cpp common_speculative_are_compatible"))
    dgl = gl
    if opts.device_draft is not None and [d.lower() for d in opts.device_draft] == ["none"]:
        dgl = []
    elif opts.device_draft is not None or opts.devices is not None:
        same = opts.device_draft is not None and opts.devices is not None and \
            [d.upper() for d in opts.device_draft] == [d.upper() for d in opts.devices]
        if not same:
            raise NotModelledError("-md with --device / --device-draft lists that differ: llama.cpp spreads the draft "
                                   "over its own device list (every GPU without -devd); give both the same list, or "
                                   "-devd none")
    # llama_context: a model with an encoder (eagle3) takes n_outputs_max = n_batch (src/llama-context.cpp)
    dopts, dr = check_draft_model(dm, dgl, opts, opts.n_batch if e3 else opts.n_parallel, errors)
    if dm.predicted:
        what = f"-md {opts.model_draft}"
        if opts.model_draft.startswith("hf:"):  # -hfd REPO[:QUANT] [-md FILE]
            repo, _, file = opts.model_draft[3:].partition("::")
            what = f"-hfd {repo}" + (f" -md {file}" if file else "")
        warnings.append(warning("llamacpp.draft.predicted", f"{what}: no file here; the draft is predicted as "
                                f"{dm.predicted}" + (f" ({dm.said})" if dm.said else "")
                                + " (the file's header gives its exact bytes)"))
    bld = resolve_build(opts.build, opts.build_unplaced_as_modelled)
    # before PR #23988 common_speculative_init enabled draft-simple for any draft model; since, only --spec-type does
    drafts = not bld.has(23988) or "draft-simple" in opts.spec_types
    if "draft-eagle3" in opts.spec_types:  # an EAGLE-3 head llama.cpp accepts; any other draft stops every type
        drafts = e3_file is not None
    if not drafts and "draft-eagle3" not in opts.spec_types:
        kept = opts.speculates(bld)  # another type speculates: spec is not null, so spec_init (the draft) is kept
        warnings.append(warning("llamacpp.draft.unused", (
            f"-md {opts.model_draft} with --spec-type {','.join(opts.spec_types) or 'none'}: no speculative type "
            "drafts with the draft model (since PR #23988, https://github.com/ggml-org/llama.cpp/pull/23988, -md no "
            "longer enables draft-simple by itself: add --spec-type draft-simple); llama-server loads the draft model "
            "and its context " + ("and keeps them, unused, beside the ngram type that speculates" if kept else
                                  "and frees them once common_speculative_init finds no speculative type")
            + " (tools/server/server-context.cpp load_model): they are counted" + ("" if kept else ", as the peak at "
            "load,") + " and the speed estimate gets no speed-up from them")))
    gpu_b, unc_g = [0] * n_dev, [0] * n_dev
    host_b = unc_h = 0
    for i, d in enumerate(dr.devices):
        if d.device == "host RAM":
            host_b, unc_h = d.total_bytes, d.uncertainty_bytes
        elif dgl:
            gpu_b[i], unc_g[i] = d.total_bytes, d.uncertainty_bytes
    comp_d = [d.compute_buffer_bytes for d in dr.devices]
    out_d = [d.output_buffer_bytes for d in dr.devices]
    e3_how = ""
    if e3_file is not None:
        comp_d, out_d, e3_how = _eagle3_draft(dm.spec, e3_file, dgl, opts, dopts, dr, comp_d, out_d)
        for i, d in enumerate(dr.devices):
            delta = comp_d[i] - d.compute_buffer_bytes + out_d[i] - d.output_buffer_bytes
            if d.device == "host RAM":
                host_b += delta
            elif dgl:
                gpu_b[i] += delta
    return LlamaExtra(kind="draft", ref=opts.model_draft, gpu_bytes=gpu_b, host_bytes=host_b,
                      uncertainty_gpu_bytes=unc_g, uncertainty_host_bytes=unc_h,
                      detail={"model": sum(d.model_buffer_bytes + d.repack_buffer_bytes for d in dr.devices),
                              "kv": sum(d.kv_buffer_bytes + d.recurrent_buffer_bytes for d in dr.devices),
                              "compute": sum(comp_d), "output": sum(out_d),
                              **({"type": "draft-eagle3", "target_layers": ",".join(map(str, e3_file.layers or ())),
                                  "repack": sum(d.repack_buffer_bytes for d in dr.devices),
                                  "backend_sampling": opts.draft_backend_sampling} if e3_file is not None else {}),
                              "n_ctx": dr.n_ctx, "gpu_layers": dr.gpu_layers, "n_layer": dm.spec.num_layers,
                              "draft_max": opts.draft_max, "speculates": drafts,
                              **({"acceptance": opts.draft_acceptance} if opts.draft_acceptance is not None else {})},
                      how=f"a second model and context: the target's context ({dr.n_ctx} cells), slots, batch and "
                          f"flash attention, its own -ngld ({dr.gpu_layers} of {dm.spec.num_layers} layers on the "
                          "GPUs), cache types and " + ("n_batch logits rows (llama_context: a model with an "
                                                       "encoder)" if e3 else "one logits row per slot")
                          + (e3_how if e3_file is not None else "") + (
                              "" if drafts else "; no speculative type drafts with it (llamacpp.draft.unused): it is "
                              "counted as loaded at start-up"), source=DRAFT_SOURCE + (
                                  "; " + eagle3.EAGLE3_SOURCE if e3_file is not None else ""))


def _eagle3_draft(dspec: ModelSpec, f: eagle3.Eagle3File, dgl: list[GPU], opts: LlamaOptions, dopts: LlamaOptions,
                  dr: LlamaResult, comp_d: list[int], out_d: list[int]) -> tuple[list[int], list[int], str]:
    """The EAGLE-3 draft context's compute and output buffers (eagle3.py): per entry of dr.devices (the GPUs, then
    the host), and how they were sized."""
    from .graphs import eagle3_peak
    head = eagle3.head(dspec, f, opts.draft_backend_sampling)
    n_ub = min(opts.n_ubatch, opts.n_batch)
    host = next(i for i, d in enumerate(dr.devices) if d.device == "host RAM")
    comp_d, out_d = list(comp_d), list(out_d)
    from .dflash import draft_output_bytes, sampling_pad_bytes
    rows = eagle3.draft_output_rows(n_ub, opts.n_parallel)
    out_d[host] = draft_output_bytes(dspec.vocab_size, dspec.hidden_size, rows, opts.draft_backend_sampling)
    unified = opts.kv_unified or opts.n_parallel == 1
    n_kv = dr.n_ctx if unified else dr.n_ctx_seq  # cells of one stream
    all_on = len(dgl) == 1 and dr.n_gpu_layers >= dspec.num_layers + 1 and not opts.override_tensor_draft \
        and not opts.no_kv_offload
    how = ""
    if not dgl or all_on:  # one backend runs the graphs: the allocator replay (exact on the recorded CPU runs)
        peak = eagle3_peak(dspec, head, n_kv * (1 if unified else opts.n_parallel), n_ub, opts.n_parallel, n_kv,
                           unified, dr.flash_attn, dopts.type_k.upper(),
                           dopts.type_v.upper(), alignment=GPU_ALIGNMENT if dgl else CPU_ALIGNMENT,
                           sweep_to=eagle3.REALLOC_SWEEP_CELLS)
        comp_d[0 if dgl else host] = peak
        how = "; its compute buffer the allocator replay of the eagle3 decoder (every token's logits; at the " \
            "reserved and at smaller cache fills"
    else:  # layers split: the phase formula of the recursion, and the samplers' padded logits block
        if head.sampler_top_k:
            big = max(range(len(comp_d)), key=lambda i: comp_d[i])
            comp_d[big] += sampling_pad_bytes(head.n_vocab, n_ub)
        how = "; its compute buffer the phase formula (every token's logits"
    how += (", with each slot's backend top-k sampler on the padded logits" if head.sampler_top_k else "") + \
        f"), its output buffer {rows} rows of the encoder's output_reserve (logits, pre-norm " \
        "states" + (", the samplers' logits, probabilities and tokens" if head.sampler_top_k else "") + ")"
    return comp_d, out_d, how


def _mmproj(gl: list[GPU], opts: LlamaOptions, row_pad: bool) -> LlamaExtra:
    """The projector's weights and its warmup compute buffer on the first GPU, or the CPU (MMPROJ_SOURCE)."""
    assert opts.mmproj is not None
    mm = read_mmproj(opts.mmproj)
    on_gpu = bool(gl) and opts.mmproj_offload
    weights = mm.buffer_bytes(GPU_ALIGNMENT if on_gpu else CPU_ALIGNMENT, row_pad and on_gpu)
    comp = mmproj_compute(mm, flash_attn=opts.fa, alignment=GPU_ALIGNMENT if on_gpu else CPU_ALIGNMENT)
    total, unc = weights + comp.device, int(comp.device * comp.margin)
    gpu_b = [total if on_gpu and d == 0 else 0 for d in range(len(gl))]
    unc_g = [unc if on_gpu and d == 0 else 0 for d in range(len(gl))]
    host = comp.host + (0 if on_gpu else total)
    return LlamaExtra(kind="mmproj", ref=opts.mmproj, gpu_bytes=gpu_b, host_bytes=host, uncertainty_gpu_bytes=unc_g,
                      uncertainty_host_bytes=0 if on_gpu else unc,
                      detail={"projector": mm.projector, "weights": weights, "compute": comp.device,
                              "host_compute": comp.host, "image_size": comp.image_size, "patches": comp.patches},
                      how=f"the projector's tensors in one buffer on {'the first GPU' if on_gpu else 'the CPU'}, and "
                          f"the compute buffer of its graph for the warmup image ({comp.image_size}x{comp.image_size}, "
                          f"{comp.patches} patches; {comp.how})", source=MMPROJ_SOURCE + " load_tensors, warmup")


def _get_rows_types(rules: LlamaBackend, after_25962: bool) -> frozenset[str] | None:
    """The weight types whose rows the GPU backend reads (data/llamacpp_backends.json get_rows_source); None: every
    type (not recorded for the backend)."""
    types = rules.get_rows_types if after_25962 else rules.get_rows_types_before_25962
    return None if types is None else frozenset(types)


def backend_rules() -> LlamaBackends:
    return load("llamacpp_backends.json", LlamaBackends)


def backend_of(gl: list[GPU], opts: LlamaOptions) -> str:
    """The ggml backend: as asked, else by vendor (CUDA for NVIDIA, ROCm/HIP for AMD, Metal for Apple)."""
    if opts.backend != "auto":
        return opts.backend
    vendor = (gl[0].vendor or "nvidia") if gl else "nvidia"
    return backend_rules().default_backend.get(vendor, "cuda")


# common/common.h common_params_speculative::need_n_rs_seq: the speculative types that ask for recurrent snapshots
RS_SEQ_TYPES = ("draft-mtp", "draft-eagle3", "draft-dflash", "draft-dspark")


def rs_snapshots(arch: str, opts: LlamaOptions) -> int:
    """cparams.n_rs_seq of the target context (data/llamacpp_backends.json rs_rollback_source): --spec-draft-n-max
    with a type of RS_SEQ_TYPES on an architecture that supports a recurrent rollback, else 0."""
    if arch not in backend_rules().rs_rollback_gguf_archs or not any(t in RS_SEQ_TYPES for t in opts.spec_types):
        return 0
    return opts.draft_max


def gguf_arch(spec: ModelSpec) -> str:
    """llama.cpp's architecture name: the GGUF's own, or the HF model_type's convert_hf_to_gguf target."""
    if spec.architecture and spec.architecture.startswith("gguf:"):
        return spec.architecture[5:]
    return backend_rules().sm_tensor.hf_model_types.get(spec.model_type, spec.model_type)


def split_mode_messages(spec: ModelSpec, gl: list[GPU], opts: LlamaOptions) -> tuple[list[Message], list[Message]]:
    """(errors, warnings) of --split-mode row / tensor over several GPUs, in llama.cpp's words."""
    if len(gl) < 2 or opts.split_mode not in ("row", "tensor"):
        return [], []
    rules = backend_rules()
    backend = backend_of(gl, opts)
    dev = rules.backends[backend].device + "0"
    if opts.split_mode == "row":
        if rules.backends[backend].split_buffers:
            raise NotModelledError("--split-mode row on SYCL is not modelled; use --split-mode layer or tensor")
        return [error("llamacpp.split.unsupported", f"device {dev} does not support split buffers "
                      f"[{rules.split_buffers_source}]; use --split-mode layer (or tensor)",
                      fix="--split-mode layer (or tensor)", source=rules.split_buffers_source)], []
    t = rules.sm_tensor
    errors: list[Message] = []
    warnings = [warning("llamacpp.split.tensor_experimental", f"--split-mode tensor is experimental "
                        f"(docs/multi-gpu.md: {t.experimental}); per-GPU memory is estimated: {t.memory}")]
    arch = gguf_arch(spec)
    if arch in t.unsupported_gguf_archs:
        errors.append(error("llamacpp.split.tensor_arch", t.unsupported_arch_message.format(arch=arch)
                            + f" [{t.unsupported_arch_source}]; use --split-mode layer",
                            fix="--split-mode layer", source=t.unsupported_arch_source))
    if not opts.fa:
        errors.append(error("llamacpp.split.tensor_needs_fa", f"{t.needs_flash_attn} "
                            f"[{t.needs_flash_attn_source}]", fix="-fa on", source=t.needs_flash_attn_source))
    if opts.n_gpu_layers is None or opts.n_ctx is None:
        warnings.append(warning("llamacpp.split.tensor_no_fit", f"{t.no_fit} [{t.no_fit_source}]: vramcalc "
                                "checks -ngl all and the context as given, and the command sets both with --fit off",
                                source=t.no_fit_source))
    return errors, warnings


def _shares(splits: list[float]) -> list[float]:
    total = sum(splits)
    return [x / total for x in splits]


def _segments(mb: ModelBuffers, splits: list[float]) -> ModelBuffers:
    """Tensor split (the meta device): what llama_meta_device_get_split_state splits goes in -ts
    proportions over the GPUs, the rest whole on each (data/llamacpp_backends.json sm_tensor)."""
    split = sum(mb.gpu_bytes) - mb.gpu_mirrored_bytes
    return mb.model_copy(update={"gpu_bytes": [int(split * x) + mb.gpu_mirrored_bytes for x in _shares(splits)]})


def _numel(ne: tuple[int, ...]) -> int:
    n = 1
    for x in ne:
        n *= x
    return n


def _command(spec: ModelSpec, opts: LlamaOptions, gl: list[GPU], ngl: int, n_ctx: int, model_ref: str, fa: bool) -> str:
    n_layer = blocks_all(spec)
    cmd = [f"llama-server -m {model_ref}", f"-c {n_ctx}"]
    if gl:
        cmd.append(f"-ngl {ngl if ngl < n_layer + 1 else 'all'}")
    else:
        cmd.append("-ngl 0")
    if opts.n_parallel != 4 or not opts.kv_unified:
        cmd.append(f"-np {opts.n_parallel}" + (" --kv-unified" if opts.kv_unified and opts.n_parallel > 1 else ""))
    if opts.type_k.upper() != "F16":
        cmd.append(f"-ctk {opts.type_k.lower()}")
    if opts.type_v.upper() != "F16":
        cmd.append(f"-ctv {opts.type_v.lower()}")
    cmd.append("-fa on" if fa else "-fa off")
    if opts.n_batch != 2048:
        cmd.append(f"-b {opts.n_batch}")
    if opts.n_ubatch != 512:
        cmd.append(f"-ub {opts.n_ubatch}")
    if opts.n_cpu_moe:
        cmd.append(f"--n-cpu-moe {opts.n_cpu_moe}")
    elif opts.cpu_moe:
        cmd.append("--cpu-moe")
    for p in opts.override_tensor:
        cmd.append(f"-ot '{p}'")
    if opts.no_mmap:
        cmd.append("--no-mmap")
    if opts.mlock:
        cmd.append("--mlock")
    if opts.devices is not None:
        cmd.append("--device " + ",".join(opts.devices))
    # older builds have no --swa-full: a full cache anyway
    if opts.swa_full and resolve_build(opts.build, opts.build_unplaced_as_modelled).has(13194):
        cmd.append("--swa-full")
    if opts.no_kv_offload:
        cmd.append("-nkvo")
    if opts.program == "llama-server" and opts.n_ctx_checkpoints != 32:  # common.h defaults at 4df29be
        cmd.append(f"-ctxcp {opts.n_ctx_checkpoints}")
    if opts.program == "llama-server" and opts.cache_ram_mib != 8192:
        cmd.append(f"-cram {opts.cache_ram_mib}")
    if not opts.cpu_repack:
        cmd.append("--no-repack")
    if opts.no_host:
        cmd.append("--no-host")
    if len(gl) > 1:
        cmd.append(f"-sm {opts.split_mode}")
        if opts.tensor_split:
            cmd.append("-ts " + ",".join(f"{x:g}" for x in opts.tensor_split))
    elif opts.split_mode == "none" and opts.main_gpu:
        cmd.append(f"-sm none -mg {opts.main_gpu}")
    if opts.rpc_nodes:  # one ggml-rpc-server per other machine, each exposing all its GPUs
        cmd.append("--rpc " + ",".join(f"<node-{i + 2}>:50052" for i in range(opts.rpc_nodes)))
    for item in opts.lora:
        cmd.append(f"--lora {item}")
    for item in opts.lora_scaled:
        cmd.append(f"--lora-scaled {item}")
    if opts.spec_types:
        cmd.append("--spec-type " + ",".join(opts.spec_types))
        if opts.spec_ngram_mod_n_max != 64:
            cmd.append(f"--spec-ngram-mod-n-max {opts.spec_ngram_mod_n_max}")
        for t in ("simple", "map-k", "map-k4v"):
            n = getattr(opts, f"spec_ngram_{t.replace('-', '_')}_size_m")
            if n != 48:
                cmd.append(f"--spec-ngram-{t}-size-m {n}")
        if ("draft-simple" in opts.spec_types or "draft-mtp" in opts.spec_types) and not opts.model_draft \
                and opts.draft_max != 3:
            cmd.append(f"--spec-draft-n-max {opts.draft_max}")
        if "draft-mtp" in opts.spec_types and not opts.model_draft:  # the MTP context's cache types
            if opts.type_k_draft.upper() != "F16":
                cmd.append(f"-ctkd {opts.type_k_draft.lower()}")
            if opts.type_v_draft.upper() != "F16":
                cmd.append(f"-ctvd {opts.type_v_draft.lower()}")
    for item in opts.control_vectors:  # FNAME:SCALE is --control-vector-scaled's form
        scaled = re.fullmatch(r".+:[-+0-9.eE]+", item) is not None
        cmd.append(f"--control-vector{'-scaled' if scaled else ''} {item}")
    if opts.model_draft:
        repo, _, file = opts.model_draft[3:].partition("::")  # hf:REPO[::FILE] is -hfd REPO [-md FILE]
        cmd.append(f"-md {opts.model_draft}" if not opts.model_draft.startswith("hf:") else
                   f"-hfd {repo}" + (f" -md {file}" if file else ""))
        if opts.n_gpu_layers_draft is not None:
            cmd.append(f"-ngld {opts.n_gpu_layers_draft if opts.n_gpu_layers_draft < MAX_LAYER_FLAG else 'all'}")
        if opts.device_draft is not None:
            cmd.append("-devd " + ",".join(opts.device_draft))
        if opts.draft_max != 3:
            cmd.append(f"--spec-draft-n-max {opts.draft_max}")
        if not opts.draft_backend_sampling:
            cmd.append("--no-spec-draft-backend-sampling")
        if opts.type_k_draft.upper() != "F16":
            cmd.append(f"-ctkd {opts.type_k_draft.lower()}")
        if opts.type_v_draft.upper() != "F16":
            cmd.append(f"-ctvd {opts.type_v_draft.lower()}")
        for p in opts.override_tensor_draft:
            cmd.append(f"-otd '{p}'")
    if opts.mmproj:
        cmd.append(f"--mmproj {opts.mmproj}" + ("" if opts.mmproj_offload else " --no-mmproj-offload"))
    if opts.kv_overrides:
        cmd.append("--override-kv " + ",".join(opts.kv_overrides))
    if gl:
        cmd.append("--fit off")  # the plan fixes -c and -ngl; --fit would otherwise re-decide them
    return " ".join(cmd)


def _trace(spec: ModelSpec, opts: LlamaOptions, mb: ModelBuffers, caches: list[LlamaCache], kv_dev: list[int],
           kv_host: int, comp: ComputeBuffers, output: int, devices: list[LlamaDevice], n_layer: int,
           fa: bool, extras: list[LlamaExtra] = []) -> list[TraceTerm]:
    trace = [term("model buffer (GPUs)", sum(mb.gpu_bytes), "bytes of the tensors of the offloaded layers in their "
                  "ggml types (the output layer first, token_embd stays on the CPU)",
                  source="llama.cpp 4df29be src/llama-model.cpp load_tensors (docs/llamacpp.md#model-buffers)",
                  gpu_layers=mb.gpu_layers, n_layer=n_layer, per_gpu=mb.gpu_bytes),
             term("model buffer (CPU)", mb.cpu_bytes, "the tensors left on the CPU, mmap'ed",
                  source="llama.cpp 4df29be src/llama-model-loader.cpp, mmap (docs/llamacpp.md#host-memory)")]
    for c in caches:
        trace.append(term(f"KV {c.name}", c.k_bytes + c.v_bytes, "cells x streams x layers x (K + V bytes per cell "
                          "and layer); recurrent: F32 state per sequence",
                          source="llama.cpp 4df29be llama-kv-cache.cpp, llama-memory-recurrent.cpp (docs/llamacpp.md#kv-cache)",
                          cells=c.cells, streams=c.streams, layers=c.layers, type_k=opts.type_k, type_v=opts.type_v))
    trace.append(term("KV on the GPUs", sum(kv_dev), "each layer's KV lives on that layer's device",
                      source="llama.cpp 4df29be llama_kv_cache (docs/llamacpp.md#kv-placement)", on_host=kv_host))
    trace.append(term("compute (estimate)", sum(comp.device) + comp.host, comp.how,
                      source=("llamacpp/graphs.py + galloc.py: llama.cpp's reserve graphs and ggml-alloc, replayed" if comp.exact
                              else "llamacpp/compute.py, fitted on real llama.cpp runs (tests/data/llamacpp_runs.json)"),
                      per_gpu=comp.device, host=comp.host, copies=comp.copies, flash_attn=fa, ubatch=opts.n_ubatch))
    trace.append(term("output buffer", output, "vocab x 4 bytes x parallel sequences (host)",
                      source="llama.cpp 4df29be llama_context::output_reserve (docs/llamacpp.md#output-buffer)"))
    for e in extras:
        trace.append(term(f"{e.kind} ({e.ref})", sum(e.gpu_bytes) + e.host_bytes, e.how, source=e.source,
                          per_gpu=e.gpu_bytes, host=e.host_bytes))
    for d in devices:
        trace.append(term(f"total ({d.device})", d.total_bytes, "model + KV + recurrent + compute (+ output on the host)"
                          + (" + LoRA, draft and projector" if extras else ""),
                          available=d.available_bytes))
    return trace
