"""Decode speed and time to first token: a memory-bandwidth roofline with calibrated constants.

One decode step of B sequences at context c, per rank (the slowest stage adds up for layer splits):

    memory   = (dense + experts x touched(B) + B x (kv(c) + state)) / TP / (bandwidth x efficiency)
               [state: each recurrent layer's state read and written back (llama.cpp: through copies),
               state_step_bytes]
    comm     = 2 x layers x (latency x (TP - 1) + message / link bandwidth)   [TP > 1: two all-reduces a
               layer, after attention and after the MLP (Megatron-LM, Shoeybi et al. 2019, section 3)]
    step     = max(memory, compute) + comm + fixed_per_layer x layers   (+ the host's kernel launches when
               vLLM runs without CUDA graphs: vramcalc/eager.py)

touched(B) = 1 - (1 - k/E)^B: the expected share of a layer's E routed experts that B tokens picking k
each reach (uniform routing). Only the rows of the token embedding a step needs are read, so the
embedding counts only when it doubles as the LM head (tied). A llama.cpp layer split reads each
device's layers in turn: it adds memory, not bandwidth (docs/llamacpp.md#split-modes). vLLM pipeline
stages also run in turn for one sequence, and overlap across micro-batches (PP in-flight batches).

Efficiency and fixed cost per engine and backend, and the all-reduce latency per link, come from
data/speed.json, fitted by tools/calibrate_speed.py on the `calibrate` rows of
tests/data/throughput_cases.json; every figure says whether its constants were calibrated.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from .data_files import load
from .data_models import Link, Speed, SpeedProfile
from .eager import eager_ms
from .engines import ENGINE_NAMES, Engine
from .errors import NotModelledError
from .ggml import tensor_bytes
from .gguf_mix import GGUFTensor
from .kv import kv_by_layer_kind
from .params import count_params
from .spec import ModelSpec

# engine id (the CLI's --engine, speed.json's profile keys) -> the program's name in reports


def speed_data() -> Speed:
    return load("speed.json", Speed)


_BUILD_NO = re.compile(r"^b?(\d{1,5})$")
_BUILD_DATE = re.compile(r"^(\d{4}-\d{2}(?:-\d{2})?)$")


def llamacpp_cuda_graphs(build: str | None) -> bool:
    """Whether a llama.cpp build (a release tag `b7000` or its number, or the date of an untagged master build,
    YYYY-MM or YYYY-MM-DD) replays each token's CUDA kernels as one CUDA graph (llama.cpp PR #6766, first in
    release b2822, May 2024): before it every ggml op was its own kernel launch, a per-layer cost on the host.
    None or a commit hash: the newest build, which has them."""
    g = speed_data().llamacpp_cuda_graphs
    if not build or g is None:
        return True
    b = build.strip().lower()
    if m := _BUILD_NO.match(b):
        return int(m.group(1)) >= g.from_build
    if m := _BUILD_DATE.match(b):
        return m.group(1) >= g.from_date[: len(m.group(1))]
    return True


def llamacpp_vulkan_era(build: str | None) -> int:
    """The Vulkan build era of a llama.cpp build (data/speed.json llamacpp_vulkan_eras): how many of the boundary PRs
    it holds, in order, as vramcalc/llamacpp/builds.py resolve_build places it against data/llamacpp_builds.json
    (a date by the merge dates, a release by the anchors). A build that cannot be placed against a boundary PR (a
    date inside its merge window, a release between the anchors) is not refused: resolve_build counts it as lacking
    the PR, so it takes the older era, the slower figure (conservative; the memory rules it cannot be placed against
    follow the modelled build, unplaced_as_modelled, as they change no speed term). A build older than the oldest
    PR modelled there lacks both. None, `latest` or a commit hash: the newest era."""
    eras = speed_data().llamacpp_vulkan_eras
    if eras is None:
        return 0
    b = (build or "").strip().lower()
    if not b or b == "latest" or not (_BUILD_NO.match(b) or _BUILD_DATE.match(b)):
        return len(eras.boundary_prs)
    from .llamacpp.builds import resolve_build

    try:
        placed = resolve_build(b, unplaced_as_modelled=True)
    except NotModelledError:  # older than the oldest PR of data/llamacpp_builds.json (#11124, 2025-01)
        return 0
    held = 0
    for pr in eras.boundary_prs:
        if not placed.has(pr):
            break
        held += 1
    return held


def fixed_ms_per_layer(prof: SpeedProfile, engine: str, backend: str, build: str | None, batch: int = 1) -> float:
    """The fixed cost a layer adds to a decode step: the profile's, by build era for llama.cpp on CUDA (a backend
    that borrows the CUDA profile, such as SYCL, launches every op: the cost without graphs) and on Vulkan (its own
    profile, one cost per era of data/speed.json llamacpp_vulkan_eras, fitted on tests/data/throughput_cases.json
    tv07-tv13). PR #6766
    captures a graph only for a batch of one token ("disable for multi-gpu and batch size > 1", its commit message;
    ggml-cuda.cu checks the GGML_OP_ADD nodes): a step of several sequences launches every op, as builds before it
    did. Not modelled: PR #19645 (2026-02) also captures graphs at 2-4 tokens; there this errs slow."""
    if engine == "llamacpp" and backend == "vulkan" and prof.fixed_ms_per_layer_by_era:
        return prof.fixed_ms_per_layer_by_era[min(llamacpp_vulkan_era(build), len(prof.fixed_ms_per_layer_by_era) - 1)]
    if engine == "llamacpp" and prof.fixed_ms_per_layer_before_cuda_graphs is not None \
            and (backend != "cuda" or batch > 1 or not llamacpp_cuda_graphs(build)):  # SYCL: no CUDA graphs
        return prof.fixed_ms_per_layer_before_cuda_graphs
    return prof.fixed_ms_per_layer


def llamacpp_mmvq_extra_ms(reads: "WeightReads", engine: str, backend: str, tokens: int, bw_bytes_s: float,
                           compute_capability: str | None = None) -> float:
    """Milliseconds a llama.cpp CUDA decode step of one token adds, over the roofline at the profile's bandwidth
    `bw_bytes_s`, for its weights of the ggml types of data/speed.json llamacpp_cuda_mmvq (Q2_K, Q3_K): their
    mat-vec kernel reaches only relative_efficiency of that bandwidth. ggml-cuda's mul_mat_vec_q dots one 32-bit
    word of 2- or 3-bit quants per call for these types (ggml/src/ggml-cuda/vecdotq.cuh at 027ef876:
    VDR_Q2_K_Q8_1_MMVQ and VDR_Q3_K_Q8_1_MMVQ 1, against 2 for Q4_0, Q4_K and Q5_K; vec_dot_q2_K_q8_1_impl_mmvq
    and vec_dot_q3_K_q8_1_impl_mmvq unpack a scale per 16 weights and, for Q3_K, the high-bit mask), so the integer
    work per byte read is several times that of the other formats and the kernel is bound by it, not by memory.
    Fitted by tools/calibrate_speed.py on the calibrate rows holding those types (tests/data/throughput_cases.json,
    the tk rows): llama.cpp PRs #4766 (January 2024), #5394 (February 2024) and #28912 (build b10830, 2026),
    NVIDIA RTX 3090 and V100.
    It has no build era: the held-out tables between them (PR #5434, b2110) are still short of the bandwidth, if
    10-15% less than this share gives, and no PR is known to have closed the gap. It also varies by GPU (the
    held-out Q2_K / Q3_K P40 rows of PR #4766 were 24-31% slower than it alone gives): on a GPU of `compute_capability` 6.1-6.x
    (Pascal with dp4a, MIN_CC_DP4A 610: it takes the same mul_mat_vec_q path) every K-quant byte (Q2_K-Q6_K) also
    runs at llamacpp_cuda_mmvq.pascal.relative_efficiency of the share it has elsewhere: a Pascal SM issues its
    integer and FP32 instructions to the one set of cores, where Volta and later add INT32 cores of their own
    (NVIDIA Volta Tuning Guide 4.1.1), and the K-quant dot products interleave integer unpacking (the 6-bit
    scales and mins of get_scale_min_k4, the high-bit masks) with FP32 scaling per 16 or 32 weights. Fitted on
    the calibrate P40 rows (llama.cpp PRs #4766, #5394, #5434: January-February 2024 builds). Only a
    step of one token: a batch of 2-8 runs the same kernel with more work per byte (not modelled), from 9 on MMQ.
    Other backends (ROCm included) and the other types (Q6_K off Pascal, the i-quants): not modelled.
    SM 6.0 (P100, no dp4a) takes the dequantize_mul_mat_vec kernel instead: not modelled."""
    m = speed_data().llamacpp_cuda_mmvq
    if m is None or engine != "llamacpp" or backend != "cuda" or tokens != 1:
        return 0.0
    slow = reads.type_step_bytes(m.types, 1) / bw_bytes_s * (1 / m.relative_efficiency - 1) if m.relative_efficiency < 1 else 0.0
    pas = m.pascal
    if pas and compute_capability and _cc(pas.min_compute_capability) <= _cc(compute_capability) < _cc(pas.below_compute_capability):
        for t in pas.types:  # each K-quant byte at the share it has elsewhere, times the Pascal share
            share = m.relative_efficiency if t in m.types else 1.0
            slow += reads.type_step_bytes([t], 1) / bw_bytes_s / share * (1 / pas.relative_efficiency - 1)
    return slow * 1e3


def _cc(cc: str) -> float:
    """An NVIDIA compute capability ("6.1") as a number that orders them."""
    major, _, minor = cc.partition(".")
    return int(major) + int(minor or 0) / 10


class WeightReads(BaseModel):
    """What one forward step reads from the weights, for one whole model copy."""

    model_config = ConfigDict(frozen=True)

    dense_bytes: int  # read for every step: attention, dense MLP, shared experts, router, norms, LM head
    expert_bytes: int  # all routed experts together
    num_experts: int
    experts_per_token: int
    active_params: int  # per token, for the compute bound
    num_layers: int
    hidden_size: int
    eager_kernels: int = 0  # kernels one decode step launches without CUDA graphs, without TP (vramcalc/eager.py)
    # a GGUF's bytes by ggml type (the weights read each step, and the routed experts): what the per-type mat-vec
    # term of llama.cpp on CUDA reads (llamacpp_mmvq_extra_ms); empty for other checkpoints
    dense_by_type: dict[str, int] = {}
    expert_by_type: dict[str, int] = {}

    def _touched(self, batch: int) -> float:
        return 1 - (1 - self.experts_per_token / self.num_experts) ** batch if self.num_experts else 0.0

    def step_bytes(self, batch: int) -> float:
        if not self.expert_bytes or not self.num_experts:
            return float(self.dense_bytes)
        return self.dense_bytes + self.expert_bytes * self._touched(batch)

    def type_step_bytes(self, types: list[str], batch: int) -> float:
        """The part of step_bytes(batch) stored in the ggml types `types`."""
        dense = sum(self.dense_by_type.get(t, 0) for t in types)
        experts = sum(self.expert_by_type.get(t, 0) for t in types)
        return dense + experts * self._touched(batch)


def reads_from_groups(spec: ModelSpec, by_group: dict[str, int]) -> WeightReads:
    """From bytes per parameter group (quant.quantized_bytes or a checkpoint's headers)."""
    skip = {"embeddings", "routed_experts", "vision", "mtp"}
    dense = sum(v for k, v in by_group.items() if k not in skip)
    if spec.tie_word_embeddings and not by_group.get("lm_head"):
        dense += by_group.get("embeddings", 0)
    return _reads(spec, dense, by_group.get("routed_experts", 0))


_GGUF_EXPERTS = re.compile(r"\.ffn_(up|down|gate|gate_up)_exps\.")


def reads_from_gguf(spec: ModelSpec, tensors: list[tuple[GGUFTensor, str]]) -> WeightReads:
    """From a GGUF's (tensor, ggml type) list: token_embd counts only when there is no output.weight."""
    tied = not any(t.name == "output.weight" for t, _ in tensors)
    dense = experts = 0
    dense_by: dict[str, int] = {}
    expert_by: dict[str, int] = {}
    for t, ggml in tensors:
        size = tensor_bytes(ggml, t.ne)
        key = ggml.upper()
        if _GGUF_EXPERTS.search(t.name):
            experts += size
            expert_by[key] = expert_by.get(key, 0) + size
        elif t.name == "token_embd.weight":
            dense += size if tied else 0
            if tied:
                dense_by[key] = dense_by.get(key, 0) + size
        elif not t.name.startswith(("mm.", "v.", "mtp")):
            dense += size
            dense_by[key] = dense_by.get(key, 0) + size
    return _reads(spec, dense, experts, dense_by, expert_by)


def _reads(spec: ModelSpec, dense: int, experts: int, dense_by: dict[str, int] | None = None,
           expert_by: dict[str, int] | None = None) -> WeightReads:
    from .eager import step_kernels

    moe = [layer.mlp for layer in spec.layers if layer.mlp.num_experts]
    return WeightReads(dense_bytes=dense, expert_bytes=experts, dense_by_type=dense_by or {},
                       expert_by_type=expert_by or {},
                       num_experts=moe[0].num_experts if moe else 0,
                       experts_per_token=moe[0].experts_per_token if moe else 0,
                       active_params=count_params(spec).active, num_layers=spec.num_layers,
                       hidden_size=spec.hidden_size, eager_kernels=step_kernels(spec))


def weight_reads(spec: ModelSpec, quant: str | None = None) -> WeightReads:
    """Reads of `spec` as stored in `quant` (`gguf:Q4_K_M`, `awq`, `fp8` ...; None: its own checkpoint)."""
    if quant and quant.lower().startswith("gguf:"):
        from .gguf_mix import plan_gguf

        return reads_from_gguf(spec, plan_gguf(spec, quant.split(":", 1)[1]))
    from .quant import quantized_bytes, target_scheme

    if quant == "humming":  # vLLM's Humming method quantizes at load: read as the checkpoint stores the weights
        quant = None
    try:
        # the target's own ignore list, not the stand-in's most conservative one (quant.stand_in_family): the speed
        # calibrations (data/vllm_spec.json verify_overhead, data/serving.json profiles) were fitted with these reads
        q = quantized_bytes(spec, target_scheme(quant) if quant else None)
    except NotModelledError:  # an unmodelled checkpoint format: read it at its dtype (slower, conservative)
        q = quantized_bytes(spec, target_scheme("bf16"))
    return reads_from_groups(spec, q.by_group)


def state_step_bytes(spec: ModelSpec, engine: str | None = None, query: int = 1) -> int:
    """Recurrent-state bytes one sequence moves per decode step, at the dtypes the engine keeps the state in.
    vLLM (0.33.0 / commit 00545a8a, vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py _forward_core,
    decode path): each recurrent layer reads its state once and writes it back in place, twice the state:
    causal_conv1d_update shifts the conv state in place, and fused_sigmoid_gating_delta_rule_update (or the packed
    recurrent decode kernel) is called with initial_state=ssm_state and inplace_final_state=True; the conv state is
    at the model dtype, the temporal state at mamba_ssm_cache_dtype (vramcalc/vllm/kv.py ssm_state_dtype: float32
    for Qwen3.5/3.6 from their config). A vLLM verify step of `query` tokens a sequence (speculative decoding)
    keeps the temporal state after every token (vllm/model_executor/layers/fla/ops/fused_sigmoid_gating.py, 'keep
    the states for multi-query tokens': one store per token into its ssm_state_indices slot): one read and `query`
    writes. llama.cpp: the r and s states are F32 whatever the KV types (llama.cpp 4df29be src/llama-model.cpp
    create_memory, vramcalc/llamacpp/kv.py), and its graph does not update them in place: build_rs gathers them
    into the compute buffer, the op reads the copy and writes a new state, ggml_cpy stores it (data/speed.json
    llamacpp_state_passes: 7 passes over the conv state, 6 over a Gated DeltaNet state, 4 over a Mamba state, from
    src/llama-graph.cpp build_rs and src/models/delta-net-base.cpp / graph-context-mamba.cpp). Another engine or
    None: one read and one write at the model dtype."""
    from .cache_kinds import cache_layers
    from .kv import dtype_bytes

    conv = temporal = dtype_bytes(spec.dtype)
    passes = speed_data().llamacpp_state_passes if engine == "llamacpp" else None
    if engine == "llamacpp":
        conv = temporal = 4
    elif engine == "vllm":
        from .vllm.kv import ssm_state_dtype

        temporal = dtype_bytes(ssm_state_dtype(spec))
    writes = max(1, query) if engine == "vllm" else 1
    total = 0
    for c in cache_layers(spec):
        if c.recurrent is not None:
            conv_n, temporal_n = c.recurrent.state_elements()
            if passes is not None:
                total += passes.conv * conv_n * conv + (passes.temporal[c.recurrent.kind] * temporal_n * temporal
                                                        if temporal_n else 0)
            else:
                total += 2 * conv_n * conv + (1 + writes) * temporal_n * temporal
    return total


def packed_kv_read_bytes(spec: ModelSpec, context: int, kv_dtype: str) -> int | None:
    """KV one sequence reads per step at `context` in one of vLLM's packed --kv-cache-dtype formats
    (data/vllm_kv_formats.json: TurboQuant, per-token-head), at the bytes each token's page holds: TurboQuant's slot
    per KV head or K and V at the format's bits plus their float32 scales (vramcalc/vllm/kv.py
    packed_bytes_per_token, vLLM v0.33.0 TurboQuantConfig.slot_size_aligned / TritonAttentionBackend.customize_spec),
    the layers TurboQuant keeps at the model dtype (TurboQuantConfig.get_boundary_skip_layers) at the model dtype;
    None where `kv_dtype` is not a packed format. A layer kind the packed backends do not take (MLA) is read at
    the model dtype (the memory check refuses the pair; vramcalc/vllm/kv.py)."""
    from .cache_kinds import SharedKV, _Heads, cache_layers
    from .kv import dtype_bytes
    from .vllm.kv import kv_formats, packed_bytes_per_token, turboquant_boundary_layers

    fmt = kv_formats().formats.get(kv_dtype)
    if fmt is None:
        return None
    model_bytes = dtype_bytes(spec.dtype)
    kept = set(turboquant_boundary_layers(spec)) if fmt.kind == "turboquant" else set()
    total = 0
    for i, c in enumerate(cache_layers(spec)):
        a = c.attention
        if a is None or isinstance(a, SharedKV):
            continue
        packed = isinstance(a, _Heads) and str(i) not in kept
        per_token = packed_bytes_per_token(a, fmt, 1) if packed else \
            a.bytes_per_token(model_bytes) + a.indexer_bytes_per_token()
        total += per_token * a.tokens_held(max(1, context))
    return total


def kv_read_bytes(spec: ModelSpec, context: int, kv_dtype: str | None = None, engine: str | None = None,
                  query: int = 1) -> int:
    """Cache one sequence reads per step at `context` (windows applied), and the recurrent state it reads and
    writes back (state_step_bytes). A packed vLLM KV dtype is read at its page's bytes (packed_kv_read_bytes)."""
    packed = packed_kv_read_bytes(spec, context, kv_dtype) if kv_dtype else None
    kv = packed if packed is not None else sum(m.kv_bytes for m in kv_by_layer_kind(spec, max(1, context), kv_dtype))
    return kv + state_step_bytes(spec, engine, query)


class Hardware(BaseModel):
    """The devices one model copy runs on, as the speed model sees them."""

    model_config = ConfigDict(frozen=True)

    engine: Engine  # the CLI's --engine values ("llama.cpp", the program's name, is read as llamacpp)
    backend: str  # cuda | rocm | metal | vulkan | sycl | cpu
    bandwidth_gbs: float  # per device, vendor figure
    tflops: float | None = None  # dense bf16/fp16 per device (tensor cores); None: no compute bound
    tp: int = 1
    stages: int = 1  # vLLM PP stages, or llama.cpp layer-split devices
    link: str = "none"  # between TP ranks: nvlink | pcie | xgmi | network | none
    stage_link: str = "pcie"  # between pipeline stages (network when they sit on different nodes)
    host_share: float = 0.0  # llama.cpp partial offload: share of the weights read from host RAM
    host_bandwidth_gbs: float | None = None
    enforce_eager: bool = False
    llamacpp_build: str | None = None  # llama.cpp release (b7000) or build date; None: the newest modelled
    node_hops: int = 0  # llama.cpp over RPC: machine boundaries each token crosses (network hop each)
    compute_capability: str | None = None  # NVIDIA SM version of the device (llamacpp_mmvq_extra_ms); None: not known

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_id(cls, v: Any) -> Any:
        return "llamacpp" if v == "llama.cpp" else v


class SpeedEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    decode_tokens_per_s: float  # one stream
    aggregate_tokens_per_s: float  # all streams together at `concurrency`
    concurrency: int
    per_stream_tokens_per_s: float  # at `concurrency`
    ttft_s: float | None  # prefill of `prompt_tokens`; None where the device's compute is unknown
    prompt_tokens: int
    context: int
    basis: str  # how the figures were obtained: calibrated (on which cases) or estimated
    uncertainty: float  # relative, one-sided band the calibration error suggests
    terms_ms: dict[str, float]  # one decode step of one stream, term by term
    # under load (vramcalc/serving.py): set where the planner asked the serving model
    output_tokens: int | None = None
    itl_s: float | None = None  # time between output tokens of one stream at `concurrency`
    uncertainty_p90: float | None = None
    uncertainty_slice: str | None = None  # the held-out slice `uncertainty` was measured on


def prefill_tokens_per_s(reads: WeightReads, tflops: float, mfu: float, tp: int = 1) -> float:
    """Prompt tokens/s, compute-bound: 2 x active params FLOPs per token (Kaplan et al. 2020, "Scaling
    Laws", section 2.1) at `mfu` of the dense 16-bit rate, split over TP ranks."""
    return tflops * 1e12 * mfu * tp / (2 * reads.active_params)


def _profile(engine: str, backend: str) -> tuple[SpeedProfile, str, bool]:
    prof = speed_data().profiles
    key = f"{engine}:{backend}"
    if key in prof:
        return prof[key], key, True
    fb = speed_data().fallbacks.get(engine, "")
    return prof[fb], fb, False


def _profile_label(key: str) -> str:
    """A speed.json profile key ("llamacpp:cuda") as reports name it ("llama.cpp:cuda")."""
    engine, _, backend = key.partition(":")
    return f"{ENGINE_NAMES.get(engine, engine)}:{backend}"


def _link(name: str) -> Link:
    return speed_data().links[name]


def step_terms(reads: WeightReads, kv_per_seq: int, batch: int, hw: Hardware) -> dict[str, float]:
    """Milliseconds of one decode step of `batch` sequences, term by term."""
    prof, _, _ = _profile(hw.engine, hw.backend)
    bw = hw.bandwidth_gbs * 1e9 * prof.bandwidth_efficiency
    total = reads.step_bytes(batch) + batch * kv_per_seq
    device_share = 1 - hw.host_share
    memory = total * device_share / hw.tp / bw
    if hw.host_share:
        host_bw = (hw.host_bandwidth_gbs or speed_data().host_ram_bandwidth_gbs) * 1e9 * prof.bandwidth_efficiency
        memory += total * hw.host_share / host_bw
    fixed = fixed_ms_per_layer(prof, hw.engine, hw.backend, hw.llamacpp_build, batch)
    terms = {"memory": memory * 1e3, "fixed": fixed * reads.num_layers}
    if extra := llamacpp_mmvq_extra_ms(reads, hw.engine, hw.backend, batch, bw, hw.compute_capability):
        terms["mmvq_low_bit"] = extra * device_share / hw.tp
    if hw.tflops:
        compute = 2 * reads.active_params * batch / hw.tp / (hw.tflops * 1e12 * speed_data().decode_mfu)
        if compute > memory:
            terms["compute_over_memory"] = (compute - memory) * 1e3
    if hw.tp > 1:
        link = _link(hw.link)
        latency = link.allreduce_us_per_peer * (hw.tp - 1) * 1e-6
        message = 2 * (hw.tp - 1) / hw.tp * batch * reads.hidden_size * 2 / (link.bandwidth_gbs * 1e9)
        terms["allreduce"] = 2 * reads.num_layers * (latency + message) * 1e3
    if hw.stages > 1 and hw.engine == "vllm":
        terms["stage_hops"] = (hw.stages - 1) * _link(hw.stage_link).hop_us * 1e-3
    if hw.node_hops:
        terms["network_hops"] = hw.node_hops * _link("network").hop_us * 1e-3
    if hw.enforce_eager and hw.engine == "vllm":
        terms["eager"] = eager_ms(reads.eager_kernels, reads.num_layers, hw.tp)
    return terms


def estimate_speed(reads: WeightReads, spec: ModelSpec, hw: Hardware, *, context: int, concurrency: int = 1,
                   prompt_tokens: int = 1024, kv_dtype: str | None = None) -> SpeedEstimate:
    """Decode tokens/s for one stream and for `concurrency` streams at `context`, and time to first
    token for a `prompt_tokens` prompt."""
    prof, key, calibrated = _profile(hw.engine, hw.backend)
    label = _profile_label(key)
    kv = kv_read_bytes(spec, context, kv_dtype, hw.engine)
    one = step_terms(reads, kv, 1, hw)
    single_ms = sum(one.values())
    b = max(1, concurrency)
    if hw.engine == "vllm" and hw.stages > 1 and b > 1:
        # PP keeps `stages` micro-batches in flight: each stage works on b/stages sequences at a time
        micro = max(1, -(-b // hw.stages))
        t = step_terms(reads, kv, micro, hw)
        agg = micro / ((sum(t.values()) - t.get("stage_hops", 0)) / 1e3)
    else:
        agg = b / (sum(step_terms(reads, kv, b, hw).values()) / 1e3)
    ttft = None
    if hw.tflops:
        ttft = prompt_tokens / prefill_tokens_per_s(reads, hw.tflops, prof.prefill_mfu, hw.tp) + single_ms / 1e3
    n = prof.calibrated_on
    err = prof.median_abs_error
    if calibrated and len(n) >= 3:
        basis = (f"calibrated: {label} efficiency and fixed cost fitted on {len(n)} measured runs "
                 f"(tests/data/throughput_cases.json; median error {err:.0%} there)")
        unc = max(0.15, 2 * (err or 0.1))
    elif calibrated:  # one or two runs fix the efficiency but say nothing about the error
        basis = (f"calibrated on {len(n)} measured run(s) only: {label} efficiency fitted, per-layer cost borrowed "
                 "from the engine's CUDA profile; no error estimate")
        unc = 0.5
    else:
        basis = (f"estimated: no measurements for {ENGINE_NAMES[hw.engine]} on {hw.backend}; the {label} constants are used")
        unc = 0.5
    if hw.tp > 1 and hw.engine == "llamacpp":
        basis += ("; llama.cpp's tensor split (experimental) has no measured run here: vLLM's TP all-reduce model "
                  "is used for it")
        unc = max(unc, 0.5)
    if hw.tp > 1 and not _link(hw.link).calibrated:
        basis += f"; the {hw.link} all-reduce cost is estimated, not calibrated"
        unc = max(unc, 0.4)
    if hw.node_hops:
        basis += "; the RPC network hop per machine is an estimate (data/speed.json links.network), not calibrated"
        unc = max(unc, 0.5)
    if hw.host_share:
        basis += "; host-RAM bandwidth for offloaded weights is an assumption (data/speed.json)"
        unc = max(unc, 0.5)
    return SpeedEstimate(decode_tokens_per_s=1e3 / single_ms, aggregate_tokens_per_s=agg, concurrency=b,
                         per_stream_tokens_per_s=agg / b, ttft_s=ttft, prompt_tokens=prompt_tokens, context=context,
                         basis=basis, uncertainty=unc, terms_ms={k: round(v, 4) for k, v in one.items()})
