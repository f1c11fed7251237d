"""Serving speed under load: one decode step at batch b, prefill, and each engine's scheduler on top.

One decode step of b sequences at context c on one rank (a reader can follow every term):

    memory  = (dense + experts x E(1 - (1 - k/E)^b)/E + b x kv(c)) / TP / (bandwidth x efficiency)
              the expected share of a layer's E routed experts that b tokens picking k each reach
              (uniform routing); kv(c) is every layer kind's cache and recurrent state at c
              (vramcalc/kv.py kv_by_layer_kind, windows applied)
    compute = (2 x active params x b + attention FLOPs) / TP / (format rate x decode_mfu)
              2 FLOPs per parameter per token (Kaplan et al. 2020, "Scaling Laws", section 2.1);
              attention 2 x heads x (d_k + d_v) x tokens held per token (QK^T and PV)
    step    = max(memory, compute) + layers x fixed  [+ the host's kernel launches without CUDA graphs, eager.py]
              + 2 x layers x (latency x (TP - 1) + 2 (TP - 1)/TP x b x hidden x 2 bytes / link)
              [two all-reduces a layer: Megatron-LM, Shoeybi et al. 2019, section 3]

The format rate is the dense tensor rate the engine's GEMM runs at for that weight format on that
GPU: FP8 on FP8 tensor cores where the GPU has them, NVFP4 on FP4 tensor cores (Blackwell), the int8
rate for llama.cpp's quantized GGUF on CUDA (mmq: int8 MMA, see format_tflops), and the 16-bit rate for
the other weight-only formats (Marlin / AWQ / GPTQ / MXFP4 dequantize to 16-bit). llama.cpp's share of it
(decode_mfu) is fitted on published llama.cpp batched runs (data/serving.json llamacpp_batched).

Prefill is compute-bound: 2 x active params + 2 x heads x (d_k + d_v) x P/2 FLOPs a token (causal),
at the share of the format rate its GEMM kernel reaches (prefill_mfu_by_format: one share per weight-format
family, dense and MoE apart, see weight_format), in chunks of the engine's token budget (vLLM
--max-num-batched-tokens, data/vllm.json batch_defaults; llama.cpp -b 2048).

Under load (N concurrent streams of P prompt and O output tokens, a closed loop: each stream sends
its next request when the last one ends):
- vLLM continuous batching with chunked prefill: every step decodes the running streams and takes a
  share of the arriving prompts, N x P / O prompt tokens a step on average, so ITL = step(N) +
  those prompt tokens' compute. TTFT = the request's own prefill in chunks + queue_share x the other
  running streams' prompts (closed-loop streams arrive together; see _one_replica).
- llama-server slots (-np): min(N, np) streams decode together, the rest wait; by Little's law a
  request's latency is N / np service times, so TTFT grows with the queue and the aggregate is flat
  past np.
- replicas behind a least-busy router: N streams split over R replicas as evenly as they go; one
  stream gets one replica's speed; the aggregate is the sum over replicas at their share.

Constants: data/serving.json, fitted by tools/calibrate_serving.py on the calibration split of the
measured serving runs (tests/serving_cases.py says how the held-out split was chosen); where a GPU
architecture has no fitted efficiency, data/speed.json's per-engine profile (fitted on consumer
GPUs) is used and the basis says so.
"""

from __future__ import annotations

from math import ceil

from pydantic import BaseModel, ConfigDict, Field

from .data_files import load
from .data_models import Serving, ServingProfile, SliceError
from .eager import eager_ms
from .engines import ENGINE_NAMES, Engine
from .errors import NotModelledError
from .gpus import GPU, gpu_row
from .spec import ModelSpec
from .speed import WeightReads, fixed_ms_per_layer, kv_read_bytes, llamacpp_mmvq_extra_ms, speed_data

# llama-server's -b default: prompt tokens per batch (tools/server/README.md, llama.cpp b6000+)
LLAMACPP_BATCH = 2048
LLAMACPP_DEFAULT_SLOTS = 4  # what the measured llama-server runs used (-np 4); plan/check take --parallel
DEFAULT_PROMPT = 1024
DEFAULT_OUTPUT = 256


def serving_data() -> Serving:
    return load("serving.json", Serving)


class SpecDecode(BaseModel):
    """Speculative decoding as the speed estimate takes it: each step drafts k tokens (k draft steps of the
    drafter), then one verify step of the target over k + 1 tokens per sequence emits 1 + sum(acceptance)
    tokens per sequence on average (Leviathan et al. 2023, arXiv:2211.17192, section 3)."""

    model_config = ConfigDict(frozen=True)

    method: str
    k: int = Field(ge=1)
    acceptance: list[float]  # P(first i+1 drafts accepted), i < k ([]: no default, 1 token a step)
    acceptance_source: str
    draft_reads: WeightReads | None = None  # None: the drafter runs on the CPU (ngram, suffix)
    draft_spec: ModelSpec | None = None

    @property
    def tokens_per_step(self) -> float:
        return 1.0 + sum(self.acceptance)


class Deployment(BaseModel):
    """One model copy as an engine serves it, and how many copies."""

    model_config = ConfigDict(frozen=True)

    engine: Engine
    backend: str = "cuda"
    gpu: GPU
    quant: str | None = None  # the --quant the weights are in (None: the checkpoint's own format)
    tp: int = Field(default=1, ge=1)
    pp: int = Field(default=1, ge=1)  # vLLM pipeline stages
    link: str = "nvlink"  # between TP ranks: nvlink | pcie | xgmi | network
    enforce_eager: bool = False
    kv_dtype: str | None = None
    parallel: int = Field(default=LLAMACPP_DEFAULT_SLOTS, ge=1)  # llama-server -np
    llamacpp_build: str | None = None  # llama.cpp release (b7000) or build date; None: the newest modelled
    kv_unified: bool = False  # llama.cpp --kv-unified: the slots' sequences share one KV buffer (see step_terms)
    max_num_batched_tokens: int | None = None  # vLLM chunk budget (None: its default for the GPU)
    cpu_offload_bytes: int = 0  # vLLM --cpu-offload-gb: weight bytes per rank read from host memory every step
    replicas: int = Field(default=1, ge=1)
    speculative: SpecDecode | None = None  # vLLM --speculative-config


class ServingEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    concurrency: int
    prompt_tokens: int
    output_tokens: int
    replicas: int
    per_stream_tokens_per_s: float  # decode speed one stream sees: 1 / ITL
    aggregate_tokens_per_s: float  # output tokens/s of all streams together
    ttft_s: float
    itl_s: float
    single_stream_tokens_per_s: float  # one stream alone on one replica
    uncertainty: float  # measured held-out median |error| of the slice this estimate falls in
    uncertainty_p90: float  # and its 90th percentile
    uncertainty_slice: str
    basis: str
    terms_ms: dict[str, float]  # one decode step at the replica's share of the streams
    # speculative decoding: the assumed acceptance and tokens a verify step emits per sequence
    speculative_tokens_per_step: float | None = None
    speculative_acceptance: str | None = None


def _profile(engine: str, backend: str) -> tuple[ServingProfile | None, str]:
    key = f"{engine}:{backend}"
    prof = serving_data().profiles.get(key) or serving_data().profiles.get(f"{engine}:cuda")
    return prof, key


def arch_family(gpu: GPU) -> str | None:
    row = gpu_row(gpu.id)
    return row.architecture.split()[0] if row else None


# GPU generations whose tensor cores run int8 MMA at twice their dense FP16 rate with FP16 accumulate (NVIDIA Turing,
# Ampere GA100 / GA102, Ada and Hopper architecture whitepapers: INT8 tensor TOPS = 2 x FP16 tensor TFLOPS with FP16
# accumulate, e.g. RTX 3090 284 = 2 x 142, RTX 4090 660.6 = 2 x 330.3, A100 624 = 2 x 312, H100 SXM 1979 = 2 x 989.4).
# GeForce parts run FP16 / BF16 with FP32 accumulate at half that FP16 rate (3090: 71, 4090: 165.2) while their int8
# s32-accumulate rate is the full one, so the int8 rate is taken from the FP16-accumulate figure (gpus.json
# fp16_tflops_dense), never from GPU.tflops_16bit (bf16 with fp32 accumulate)
INT8_MMA_FAMILIES = ("Turing", "Ampere", "Ada", "Hopper", "Blackwell")
GGUF_FLOAT_TYPES = ("gguf:f16", "gguf:bf16", "gguf:f32")


def format_tflops(gpu: GPU, quant: str | None, checkpoint_format: str | None = None,
                  engine: str | None = None, backend: str = "cuda") -> float | None:
    """Dense tensor TFLOPS the GEMMs of weights in `quant` run at on `gpu` (see the module docstring).

    llama.cpp's quantized GGUF matrix multiplications on CUDA (ggml/src/ggml-cuda/mmq.cuh, b6000+: the
    activations are quantized to q8_1 and multiplied with int8 mma.sync tiles, s8 x s8 -> s32) run at the int8
    tensor rate, twice the FP16-accumulate FP16 rate on the families above; at batch <= 8 it uses mmvq
    (ggml-cuda/mmvq.cuh, MMVQ_MAX_BATCH_SIZE), which is memory-bound and takes no tensor cores."""
    row = gpu_row(gpu.id)
    base = gpu.tflops_16bit
    fmt = (quant or checkpoint_format or "").lower()
    if row is not None:
        if fmt.startswith("fp8") and row.fp8_hw and row.fp8_tflops_dense:
            return float(row.fp8_tflops_dense)
        if fmt == "nvfp4" and row.fp4_hw and row.fp4_tflops_dense:
            return float(row.fp4_tflops_dense)
        fp16_acc = row.fp16_tflops_dense or base
        if engine == "llamacpp" and backend == "cuda" and fp16_acc and fmt.startswith("gguf:") \
                and fmt not in GGUF_FLOAT_TYPES and row.architecture.split()[0] in INT8_MMA_FAMILIES:
            return 2 * float(fp16_acc)
    return base


def _attention_flops_per_token(spec: ModelSpec, context: int) -> float:
    """QK^T and PV: 2 x heads x (d_k + d_v) x tokens attended, summed over attention layers. MLA runs
    absorbed in decode: its keys and values are the latent (kv_lora_rank) plus the rope part."""
    total = 0.0
    for layer in spec.layers:
        a = layer.attention
        if a is None:
            continue
        held = min(context, a.window) if a.window else context
        if a.mla is not None and a.latent_cache:
            dk, dv = a.mla.kv_lora_rank + a.mla.qk_rope_head_dim, a.mla.kv_lora_rank
        else:
            dk, dv = a.head_dim_k, a.head_dim_v
        total += 2 * a.num_heads * (dk + dv) * held
    return total


def kv_bytes(spec: ModelSpec, context: int, kv_dtype: str | None, engine: str | None = None, query: int = 1) -> int:
    """KV one sequence reads per step, and its recurrent state read and written back (speed.state_step_bytes)."""
    return kv_read_bytes(spec, context, kv_dtype, engine, query)


class _Constants(BaseModel):
    model_config = ConfigDict(frozen=True)

    efficiency: float
    fixed_ms: float
    decode_mfu: float
    prefill_mfu: float
    prefill_mfu_by_format: dict[str, float] = {}
    queue_share: float
    ttft_fixed_ms: float
    ttft_steps: float
    prefill_tp_exponent: float
    allreduce_us: float
    link_gbs: float
    arch_fitted: bool
    label: str


def _llamacpp_decode_mfu(dep: Deployment) -> float | None:
    """llama.cpp's fitted batched-decode compute share on the deployment's backend (None: not fitted there)."""
    fit = serving_data().llamacpp_batched.get(dep.backend) if dep.engine == "llamacpp" else None
    return fit.decode_mfu if fit else None


def constants(dep: Deployment) -> _Constants:
    sp = speed_data()
    prof, key = _profile(dep.engine, dep.backend)
    base = sp.profiles.get(key) or sp.profiles[sp.fallbacks[dep.engine]]
    fam = arch_family(dep.gpu)
    fitted = bool(prof and fam in prof.bandwidth_efficiency)
    eff = prof.bandwidth_efficiency[fam] if prof and fitted and fam else base.bandwidth_efficiency
    link = sp.links.get(dep.link) or sp.links["pcie"]
    allreduce = link.allreduce_us_per_peer
    if dep.link == "nvlink" and prof:
        allreduce = prof.nvlink_allreduce_us_per_peer
    row = gpu_row(dep.gpu.id)
    link_gbs = float(row.nvlink_bandwidth_gbs) / 2 if dep.link == "nvlink" and row and row.nvlink_bandwidth_gbs \
        else float(link.bandwidth_gbs)  # NVLink: the table's bidirectional figure, one way
    base_fixed = fixed_ms_per_layer(base, dep.engine, dep.backend, dep.llamacpp_build)
    return _Constants(efficiency=eff, fixed_ms=prof.fixed_ms_per_layer if prof and fitted else base_fixed,
                      decode_mfu=prof.decode_mfu if prof else _llamacpp_decode_mfu(dep) or sp.decode_mfu,
                      prefill_mfu=prof.prefill_mfu if prof else base.prefill_mfu,
                      prefill_mfu_by_format=dict(prof.prefill_mfu_by_format) if prof else {},
                      queue_share=prof.queue_share if prof else 0.5,
                      ttft_fixed_ms=prof.ttft_fixed_ms if prof else 0.0,
                      ttft_steps=prof.ttft_steps if prof else 1.0,
                      prefill_tp_exponent=prof.prefill_tp_exponent if prof else 1.0, allreduce_us=allreduce, link_gbs=link_gbs,
                      arch_fitted=fitted,
                      label=f"{ENGINE_NAMES[dep.engine]}:{dep.backend}" + (f" on {fam}" if fam else ""))


def step_terms(reads: WeightReads, spec: ModelSpec, dep: Deployment, batch: int, context: int,
               k: _Constants | None = None, layer_share: float = 1.0, query: int = 1) -> dict[str, float]:
    """Milliseconds of one decode step of `batch` sequences at `context`, term by term, on the
    `layer_share` of the model's layers one pipeline stage holds. `query`: tokens per sequence in the step
    (k + 1 for a speculative verify step: the weights and each sequence's KV are read once, the FLOPs and the
    all-reduce messages scale with batch x query)."""
    k = k or constants(dep)
    if not dep.gpu.memory_bandwidth_gbs:
        raise NotModelledError(f"{dep.gpu.name} has no memory bandwidth: give the device as SIZE@BW for a speed estimate")
    bw = dep.gpu.memory_bandwidth_gbs * 1e9 * k.efficiency
    read = (reads.step_bytes(batch * query) + batch * kv_bytes(spec, context, dep.kv_dtype, dep.engine, query)) * layer_share
    terms = {"memory": read / dep.tp / bw * 1e3}
    if extra := llamacpp_mmvq_extra_ms(reads, dep.engine, dep.backend, batch * query, bw,  # Q2_K / Q3_K mat-vec
                                       dep.gpu.compute_capability):
        terms["mmvq_low_bit"] = extra * layer_share / dep.tp
    rate = format_tflops(dep.gpu, dep.quant, engine=dep.engine, backend=dep.backend)
    if rate:
        # the attention runs at the 16-bit rate whatever the weights are (llama.cpp: ggml-cuda/fattn-mma-f16.cuh)
        attn_rate = dep.gpu.tflops_16bit or rate
        attended = context
        if dep.engine == "llamacpp" and dep.kv_unified and batch > 1:
            # one KV buffer for all sequences (llama.cpp src/llama-kv-cache.cpp, set_input_kq_mask): every token's
            # query spans all cells in use and the mask hides the other sequences' cells, so the attention
            # multiplies over batch x context cells; without --kv-unified each sequence is its own KV stream
            # (n_stream = n_seq_max, llama.cpp PR #14363) and attends to its own cells only. Not modelled: FA
            # kernels that skip KV blocks masked for a whole tile (llama.cpp PR #17103) save the prompts' contiguous
            # cells, so on such builds this overstates the cost (it errs slow, never fast)
            attended = context * batch
        flops_w = 2 * reads.active_params * batch * query * layer_share
        flops_a = _attention_flops_per_token(spec, attended) * batch * query * layer_share
        compute = (flops_w / rate + flops_a / attn_rate) / dep.tp / (1e12 * k.decode_mfu) * 1e3
        if compute > terms["memory"]:
            terms["compute_over_memory"] = compute - terms["memory"]
    layers = reads.num_layers * layer_share
    fixed = k.fixed_ms
    if dep.engine == "llamacpp" and batch > 1 and not k.arch_fitted:  # no CUDA graph for a batch (speed.fixed_ms_per_layer)
        sp = speed_data()
        fixed = fixed_ms_per_layer(sp.profiles.get(f"llamacpp:{dep.backend}") or sp.profiles[sp.fallbacks["llamacpp"]],
                                   dep.engine, dep.backend, dep.llamacpp_build, batch)
    terms["fixed"] = fixed * layers
    if dep.cpu_offload_bytes:  # one stage's offloaded weights cross PCIe at every step (vllm/model_executor/offloader/uva.py)
        from .vllm.features import offload_step_ms

        terms["cpu_offload"] = offload_step_ms(dep.cpu_offload_bytes, dep.gpu)
    if dep.enforce_eager and dep.engine == "vllm":  # the host launches every kernel (vramcalc/eager.py)
        terms["eager"] = eager_ms(reads.eager_kernels, reads.num_layers, dep.tp, layer_share)
    if dep.tp > 1:
        message = 2 * (dep.tp - 1) / dep.tp * batch * query * reads.hidden_size * 2 / (k.link_gbs * 1e9)
        terms["allreduce"] = 2 * layers * (k.allreduce_us * 1e-6 * (dep.tp - 1) + message) * 1e3
    return terms


def weight_format(quant: str | None, spec: ModelSpec) -> str:
    """The weight-format family whose GEMM kernel a prefill chunk runs: bf16 (16-bit weights, cuBLAS), fp8
    (FP8 tensor-core GEMM, per-tensor or block scales), nvfp4 (FP4 tensor cores), w4a16 (AWQ / GPTQ /
    compressed-tensors int4: Marlin-style kernels that dequantize to 16-bit inside the GEMM), mxfp4 (MXFP4 MoE
    checkpoints such as gpt-oss), gguf:* (llama.cpp), other (anything else)."""
    q = (quant or "").lower()
    if not q:
        qc = spec.quantization_config or {}
        method = str(qc.get("quant_method", "")).lower()
        if method == "modelopt":  # hf_quant_config.json's algorithm (FP8, NVFP4, MXFP8; quant.scheme_from_config)
            algo = str(qc.get("quant_algo", "NVFP4")).upper()
            method = "fp8" if "FP8" in algo else "modelopt_fp4"
        q = {"mxfp4": "mxfp4", "fp8": "fp8", "mxfp8": "fp8", "awq": "awq", "gptq": "gptq",
             "modelopt_fp4": "nvfp4"}.get(method, "bf16")
    if q.startswith("gguf:"):
        return "gguf"
    if q.startswith("fp8"):
        return "fp8"
    if q in ("nvfp4", "mxfp4", "bf16", "fp16"):
        return "bf16" if q == "fp16" else q
    if q in ("awq", "gptq", "w4a16", "int4", "awq-marlin", "gptq-marlin"):
        return "w4a16"
    return "other"


def prefill_ms_per_token(reads: WeightReads, spec: ModelSpec, dep: Deployment, prompt: int,
                         k: _Constants | None = None) -> float | None:
    """Milliseconds of compute one prompt token costs (causal: it attends to P/2 tokens on average)."""
    k = k or constants(dep)
    rate = format_tflops(dep.gpu, dep.quant)
    if not rate:
        return None
    flops = 2 * reads.active_params + _attention_flops_per_token(spec, max(1, prompt // 2))
    fmt = weight_format(dep.quant, spec)
    # MoE prefill runs grouped expert GEMMs (fused_moe / Marlin MoE kernels), not the dense GEMM: its own share
    # dense W4A16 (AWQ / GPTQ through Marlin) has no measured serving run here: its kernel dequantizes to 16-bit
    # and multiplies on the 16-bit tensor cores (Frantar et al. 2024, "MARLIN", arXiv:2408.11743), so it takes the
    # bf16 share; a format with neither takes the lowest dense share fitted (prefill_mfu)
    by = k.prefill_mfu_by_format
    key = f"{fmt}:moe" if reads.num_experts else fmt
    mfu = by.get(key) or (by.get("bf16") if fmt == "w4a16" and not reads.num_experts else None) or k.prefill_mfu
    # TP ranks share a prompt's GEMMs less well than its weights (smaller GEMMs per rank, the activations'
    # all-reduce): prefill speeds up as TP^prefill_tp_exponent, fitted
    return flops / dep.tp ** k.prefill_tp_exponent / (rate * 1e12 * mfu) * 1e3


def _chunk(dep: Deployment) -> int:
    if dep.engine == "llamacpp":
        return LLAMACPP_BATCH
    if dep.max_num_batched_tokens:
        return dep.max_num_batched_tokens
    from .vllm.engine import _batch_defaults

    return _batch_defaults(dep.gpu)[0]


def _one_replica(reads: WeightReads, spec: ModelSpec, dep: Deployment, n: int, prompt: int, output: int,
                 k: _Constants, cached: int = 0) -> tuple[float, float, float, dict[str, float]]:
    """(ITL s, TTFT s, aggregate tok/s, step terms) of one replica serving `n` streams; `cached`: the prompt tokens
    found in the prefix cache, which are not prefilled again (vLLM's automatic prefix caching)."""
    context = prompt + output // 2
    fresh = max(1, prompt - cached)
    pre = prefill_ms_per_token(reads, spec, dep, prompt, k)
    pre = pre if pre is not None else 0.0
    if dep.engine == "llamacpp":
        running = min(n, dep.parallel)
    else:
        running = n
    if dep.engine == "vllm" and dep.pp > 1:
        micro = max(1, ceil(running / dep.pp))
        stage = step_terms(reads, spec, dep, micro, context, k, 1 / dep.pp)
        hop = speed_data().links["pcie"].hop_us * 1e-3
        terms = {t: v * dep.pp for t, v in stage.items()}
        terms["stage_hops"] = (dep.pp - 1) * hop
    elif dep.speculative is not None:
        terms = _speculative_terms(reads, spec, dep, running, context, k, dep.speculative)
    else:
        terms = step_terms(reads, spec, dep, running, context, k)
    decode_ms = sum(terms.values())
    # the other running streams' next prompts share this stream's steps: (running - 1) x P tokens every O steps
    interference = (running - 1) * fresh / max(1, output) * pre
    itl_ms = decode_ms + interference
    own_ms = k.ttft_fixed_ms + k.ttft_steps * decode_ms + fresh * pre + ceil(fresh / _chunk(dep)) * decode_ms
    if dep.tp > 1:  # the prompt's activations cross the link twice a layer too
        own_ms += 2 * reads.num_layers * 2 * (dep.tp - 1) / dep.tp * fresh * reads.hidden_size * 2 / (k.link_gbs * 1e9) * 1e3
    # waiting behind the other streams' prompts: the share u of engine time they take, an M/D/1-like
    # wait u / (1 - u) prefills long, scaled by the fitted queue_share
    u = min(0.95, interference / itl_ms) if itl_ms else 0.0
    queue_ms = k.queue_share * u / (1 - u) * (fresh * pre + decode_ms)
    if dep.engine == "llamacpp":
        service_ms = own_ms + output * itl_ms
        ttft_ms = own_ms + queue_ms + max(0.0, n / running - 1) * service_ms
    else:
        # vLLM: the measured TTFT hardly moves with the output length (tests/data/serving_runs.json, Qwen3-32B
        # on 4 H100s, 64 streams of 4096 tokens: 934 / 905 / 869 ms at 128 / 512 / 1024 out), which a queue of
        # randomly arriving prompts (u above falls as O grows) cannot give: the streams of a closed loop start
        # together and, with equal P and O, finish and resend together, so a new prompt waits behind a share
        # (queue_share, fitted) of the other running streams' prompts in the chunked-prefill budget
        ttft_ms = own_ms + k.queue_share * (running - 1) * prompt * pre
    latency_ms = ttft_ms + output * itl_ms
    aggregate = n * output / (latency_ms / 1e3)
    return itl_ms / 1e3, ttft_ms / 1e3, aggregate, terms


def _speculative_terms(reads: WeightReads, spec: ModelSpec, dep: Deployment, running: int, context: int,
                       k: _Constants, sd: SpecDecode) -> dict[str, float]:
    """Milliseconds per emitted token of one speculative step: the verify step over k + 1 tokens a sequence and
    k draft steps of the drafter (its layers, its LM head and its KV at the context; nothing on the GPU for
    ngram / suffix; DFlash: one pass over k + 1 queries), divided by the tokens the step emits per sequence."""
    from .vllm.spec_decode import spec_rules

    per = sd.tokens_per_step
    verify = step_terms(reads, spec, dep, running, context, k, query=sd.k + 1)
    terms = {f"verify_{t}": v / per for t, v in verify.items()}
    if sd.draft_reads is not None and sd.draft_spec is not None:
        if sd.method == "dflash":  # one block pass over the bonus and k mask queries of each request (vLLM
            # v0.34.0 vllm/v1/worker/gpu/spec_decode/dflash/config.py DFlashSpeculatorConfig: parallel_drafting,
            # num_lookahead_tokens k + 1), not k steps
            draft = step_terms(sd.draft_reads, sd.draft_spec, dep, running, context, k, query=sd.k + 1)
            terms["draft"] = sum(draft.values()) / per
        else:
            draft = step_terms(sd.draft_reads, sd.draft_spec, dep, running, context, k)
            terms["draft"] = sd.k * sum(draft.values()) / per
    # what a speculative step costs beyond the roofline of its reads (the rejection sampler, the drafter's input
    # preparation and launches), a share of the plain step fitted on published runs (data/vllm_spec.json
    # verify_overhead)
    share = spec_rules().verify_overhead.plain_steps
    if share and sd.draft_reads is not None:
        terms["spec_overhead"] = share * sum(step_terms(reads, spec, dep, running, context, k).values()) / per
    return terms


def slice_name(engine: str, backend: str, moe: bool, concurrency: int) -> str:
    return f"{engine}:{backend}:{'moe' if moe else 'dense'}:{'batch' if concurrency > 1 else 'single'}"


def serve(reads: WeightReads, spec: ModelSpec, dep: Deployment, *, concurrency: int = 1,
          prompt: int = DEFAULT_PROMPT, output: int = DEFAULT_OUTPUT, cached_prefix: int = 0) -> ServingEstimate:
    """Per-stream and aggregate decode tokens/s, TTFT and ITL of `concurrency` streams of `prompt` /
    `output` tokens on `dep` (its replicas behind a least-busy router)."""
    k = constants(dep)
    n = max(1, concurrency)
    r = dep.replicas
    shares = [n // r + (1 if i < n % r else 0) for i in range(r)]
    busy = [s for s in shares if s]
    results = [_one_replica(reads, spec, dep, s, prompt, output, k, cached_prefix) for s in busy]
    worst = max(range(len(busy)), key=lambda i: busy[i])  # the most loaded replica: what a stream can count on
    itl, ttft, _, terms = results[worst]
    weighted_ttft = sum(res[1] * s for res, s in zip(results, busy)) / n
    single_itl = _one_replica(reads, spec, dep, 1, prompt, output, k, cached_prefix)[0]
    name = slice_name(dep.engine, dep.backend, bool(reads.num_experts), n)
    err = serving_data().holdout_errors.get(name)
    unc, p90, where = (err.median, err.p90, name) if isinstance(err, SliceError) and err.n >= 3 else \
        (0.5, 1.0, f"{name} (fewer than 3 held-out runs: 50% assumed)")
    basis = f"{k.label}: " + ("calibrated on measured serving runs (data/serving.json)" if k.arch_fitted else
                               "efficiency from the consumer-GPU profile (data/speed.json); this architecture has no "
                               "fitted serving profile")
    return ServingEstimate(concurrency=n, prompt_tokens=prompt, output_tokens=output, replicas=r,
                           per_stream_tokens_per_s=1 / itl, aggregate_tokens_per_s=sum(res[2] for res in results),
                           ttft_s=weighted_ttft if r > 1 else ttft, itl_s=itl, single_stream_tokens_per_s=1 / single_itl,
                           uncertainty=unc, uncertainty_p90=p90, uncertainty_slice=where, basis=basis,
                           terms_ms={t: round(v, 4) for t, v in terms.items()},
                           speculative_tokens_per_step=round(dep.speculative.tokens_per_step, 3)
                           if dep.speculative else None,
                           speculative_acceptance=_acceptance_line(dep.speculative) if dep.speculative else None)


def _acceptance_line(sd: SpecDecode) -> str:
    from .vllm.spec_decode import spec_rules

    chk = spec_rules().speedup_check
    err = (f"; the speed-up against {chk.n} published runs: median error {chk.median:.0%}, p90 {chk.p90:.0%}, "
           f"worst {chk.worst:+.0%}, held out ({chk.held_out.n}) median {chk.held_out.median:.0%} "
           "(data/vllm_spec.json speedup_check)")
    if not sd.acceptance:
        return f"{sd.method}, k={sd.k}: {sd.acceptance_source}{err}"
    return (f"{sd.method}, k={sd.k}: per-position acceptance {', '.join(f'{a:.3f}' for a in sd.acceptance)} "
            f"-> {sd.tokens_per_step:.2f} tokens per verify step; from {sd.acceptance_source}{err}")


def for_engine_check(spec: ModelSpec, engine: Engine, gpu: GPU, *, quant: str | None, tp: int = 1, pp: int = 1,
                     link: str = "pcie", backend: str = "cuda", enforce_eager: bool = False,
                     kv_dtype: str | None = None, parallel: int = LLAMACPP_DEFAULT_SLOTS, concurrency: int = 1,
                     prompt: int = DEFAULT_PROMPT, output: int = DEFAULT_OUTPUT,
                     kv_unified: bool = False, speculative: SpecDecode | None = None, cpu_offload_bytes: int = 0,
                     cached_prefix: int = 0, llamacpp_build: str | None = None) -> ServingEstimate | None:
    """The serving estimate `check --engine ...` reports; None where the device's bandwidth is unknown."""
    from .speed import weight_reads

    if not gpu.memory_bandwidth_gbs:
        return None
    dep = Deployment(engine=engine, backend=backend, gpu=gpu, quant=quant, tp=tp, pp=pp, link=link,
                     enforce_eager=enforce_eager, kv_dtype=kv_dtype, parallel=parallel,
                     kv_unified=kv_unified and engine == "llamacpp", speculative=speculative,
                     cpu_offload_bytes=cpu_offload_bytes, llamacpp_build=llamacpp_build if engine == "llamacpp" else None)
    return serve(weight_reads(spec, quant), spec, dep, concurrency=concurrency, prompt=prompt, output=output,
                 cached_prefix=cached_prefix)
