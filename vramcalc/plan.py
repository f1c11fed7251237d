"""Planner: which engine, quant, KV dtype and layout to run a model with on a system, how fast, and
the commands that run it.

Pipeline: for each engine and quant (the model's own checkpoint and the formats it can be converted
to, data/planner.json), each KV dtype and each layout (vLLM TP x PP per replica and replicas over the
rest; llama.cpp one GPU per replica, a layer split, partial offload, MoE experts on the CPU), run the
engine memory model (vllm.engine.check_vllm, llamacpp.engine.check_llamacpp); keep what starts,
holds `concurrency` sequences of `context` tokens and passes every engine rule; estimate its speed
(speed.py); rank for the goal. Families of layouts that never fit get one line each saying why.
"""

from __future__ import annotations

import math

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from .data_files import load
from .data_models import Planner
from .engines import ENGINE_NAMES, Engine
from .errors import InputError, NotModelledError
from .gguf_mix import GGUFTensor, plan_gguf
from .ggml import ftypes as ggml_ftypes, tensor_bytes
from .gpus import GIB, GPU
from .llamacpp.builds import resolve_build
from .llamacpp.engine import LlamaOptions, LlamaResult, check_llamacpp
from .memo import Memo, layers_weight
from .messages import Message, codes, note, warning
from .params import count_params
from .quant import quant_targets, quantized_bytes, scheme_from_config, target_scheme
from .results import Result, Row
from .spec import ModelSpec
from .serving import DEFAULT_OUTPUT, Deployment, serve
from .speed import Hardware, SpeedEstimate, WeightReads, estimate_speed, reads_from_gguf, speed_data, weight_reads
from .systems import System

if TYPE_CHECKING:
    from .sources import ModelSource
from .vllm.engine import (KVCacheDtype, VLLMOptions, VLLMResult, check_vllm, derived_max_model_len,
                          max_startup_utilization)

Goal = Literal["latency", "throughput", "context"]
EngineChoice = Literal[Engine, "any"]
# the engine warnings a recommended layout carries as its notes: what costs speed or is not modelled
LAYOUT_NOTE_CODES = frozenset({"vllm.weights.mxfp4_layout", "vllm.quant.degraded", "vllm.platform.rocm_version",
                               "plan.high_utilization", "plan.max_num_seqs", "plan.extensible_off"})


def _seqs_within_mamba_blocks(opts: VLLMOptions, r: VLLMResult, check: Any) -> tuple[VLLMOptions, VLLMResult]:
    """A hybrid model holds one KV block per running sequence: where vLLM refuses max_num_seqs above the block count,
    the fix it names, --max-num-seqs at that count, re-checked with a note; otherwise as it was."""
    if not (r.num_gpu_blocks and "vllm.mamba.seqs_exceed_blocks" in codes(r.errors)):
        return opts, r
    opts = opts.model_copy(update={"max_num_seqs": r.num_gpu_blocks})
    r = check(opts)
    return opts, r.model_copy(update={"warnings": r.warnings + [warning(
        "plan.max_num_seqs", f"--max-num-seqs {opts.max_num_seqs}: a hybrid model holds one KV block per running "
        "sequence and vLLM refuses a max_num_seqs above the block count")]})


def planner_data() -> Planner:
    return load("planner.json", Planner)


class Layout(BaseModel):
    model_config = ConfigDict(frozen=True)

    tp: int = 1
    pp: int = 1
    replicas: int = 1
    nodes: int = 1
    split: str = "none"  # llama.cpp: none (one GPU), layer / tensor (-sm over GPUs), offload (-ngl < all)
    gpus_per_replica: int = 1
    n_gpu_layers: int | None = None
    cpu_moe: bool = False
    n_cpu_moe: int = 0  # llama.cpp --n-cpu-moe: the first N layers keep their experts on the CPU


class Pins(BaseModel):
    """What the user has already chosen (plan --quant --tp --pp --replicas --kv-cache-dtype --enforce-eager
    --backend --parallel): only layouts that keep these are ranked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quant: str | None = None  # as the plan rows name it: checkpoint, awq, fp8, gguf:Q4_K_M ...
    tp: int | None = None
    pp: int | None = None
    replicas: int | None = None
    kv_cache_dtype: str | None = None  # vLLM auto / fp8; llama.cpp f16 / q8_0
    enforce_eager: bool = False  # vLLM without CUDA graphs
    backend: str | None = None  # cuda | rocm | vulkan | metal | sycl | cpu (default: the GPU's)
    parallel: int | None = None  # llama-server -np (default: --concurrency slots)
    # --llamacpp-build: the llama.cpp rows' build (llamacpp/builds.py) and the speed model's build era
    llamacpp_build: str | None = None

    def keeps(self, c: "Candidate") -> bool:
        return ((self.quant is None or c.quant.lower() == self.quant.lower())
                and (self.tp is None or c.layout.tp == self.tp) and (self.pp is None or c.layout.pp == self.pp)
                and (self.replicas is None or c.layout.replicas == self.replicas)
                and (self.kv_cache_dtype is None or c.kv_cache_dtype.lower() == self.kv_cache_dtype.lower())
                and (not self.enforce_eager or c.engine == "vllm"))


class DeviceUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    device: str
    used_bytes: int
    available_bytes: int  # -1: not checked (host RAM not given)


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True)

    rank: int
    engine: Engine
    engine_version: str | None
    quant: str  # "checkpoint" or a conversion target (fp8, awq, gguf:Q4_K_M ...)
    quant_note: str
    kv_cache_dtype: str
    layout: Layout
    context: int
    # the largest context each of the `concurrency` sequences can have in this layout: the check's
    # largest context with the options below (vLLM: safe_max_model_len; llama.cpp: max_ctx over -np)
    max_context: int
    max_concurrency: float  # sequences of `context` tokens the KV cache holds, all replicas
    devices: list[DeviceUse]  # one replica
    speed: SpeedEstimate
    commands: list[str]
    router_config: str | None  # LiteLLM config for replica layouts
    notes: list[Message]
    # the options the layout was checked with: `vramcalc check` with these (check_vllm on one GPU of the
    # system, check_llamacpp on the layout's first gpus_per_replica GPUs) gives the same verdict and figures
    vllm_options: VLLMOptions | None = None
    llamacpp_options: LlamaOptions | None = None


class Rejection(BaseModel):
    model_config = ConfigDict(frozen=True)

    family: str
    reason: Message


class PlanResult(Result):
    model_config = ConfigDict(frozen=True)

    fits: bool
    model: dict
    system: str
    goal: str
    context: int
    context_source: str
    concurrency: int
    recommendations: list[Candidate]
    rejected: list[Rejection]
    notes: list[Message]

    def table(self) -> list[Row]:
        """One row per recommendation, as `vramcalc plan` tabulates them, with its first command."""
        return [{"rank": c.rank, "engine": c.engine, "engine_version": c.engine_version, "quant": c.quant,
                 "kv_cache_dtype": c.kv_cache_dtype, "layout": layout_text(c), "tp": c.layout.tp, "pp": c.layout.pp,
                 "replicas": c.layout.replicas, "decode_tokens_per_s": c.speed.decode_tokens_per_s,
                 "per_stream_tokens_per_s": c.speed.per_stream_tokens_per_s,
                 "aggregate_tokens_per_s": c.speed.aggregate_tokens_per_s, "ttft_s": c.speed.ttft_s,
                 "itl_s": c.speed.itl_s,
                 "max_context": c.max_context, "max_concurrency": c.max_concurrency,
                 "command": c.commands[0] if c.commands else ""} for c in self.recommendations]


def _under_load(sp: SpeedEstimate, reads: WeightReads, spec: ModelSpec, dep: Deployment, concurrency: int,
                prompt: int, output: int, penalty: bool) -> SpeedEstimate:
    """The serving model's figures at `concurrency` (vramcalc/serving.py) on the speed estimate. `penalty`:
    what only speed.py models (host-RAM offload, an RPC hop, a layer split, PP across nodes) slows every
    figure by its single-stream ratio, never speeds one up."""
    try:
        est = serve(reads, spec, dep, concurrency=concurrency, prompt=prompt, output=output)
    except NotModelledError:
        return sp
    f = min(1.0, sp.decode_tokens_per_s / est.single_stream_tokens_per_s) if penalty else 1.0
    widened = sp.uncertainty if f < 1 else 0.0
    return sp.model_copy(update={
        "decode_tokens_per_s": est.single_stream_tokens_per_s * f, "concurrency": concurrency,
        "per_stream_tokens_per_s": est.per_stream_tokens_per_s * f, "aggregate_tokens_per_s": est.aggregate_tokens_per_s * f,
        "ttft_s": est.ttft_s, "itl_s": est.itl_s / f, "output_tokens": output,
        "uncertainty": max(widened, est.uncertainty), "uncertainty_p90": est.uncertainty_p90,
        # the band is the held-out slice's unless the single-stream model's own (wider) band for this layout wins
        "uncertainty_slice": est.uncertainty_slice if widened <= est.uncertainty else
        f"{est.uncertainty_slice}, widened to the single-stream model's band for this layout",
        "basis": f"{est.basis}; {sp.basis}"})


def _backend(gpu: GPU) -> str:
    if gpu.id.startswith("apple-"):
        return "metal"
    if gpu.id.startswith(("rx-", "mi", "ryzen-ai")):
        return "rocm"
    return "cuda"


def _link(system: System) -> str:
    g = system.gpus[0]
    return "nvlink" if g.nvlink else "pcie"


def _label(system: System) -> str:
    names: dict[str, int] = {}
    for g in system.gpus:
        names[g.name] = names.get(g.name, 0) + 1
    node = " + ".join(f"{n}x {k}" for k, n in names.items())
    return f"{system.nodes} nodes of {node}" if system.nodes > 1 else node


def _bits(quant: str) -> float:
    return planner_data().quant_bits.get(quant, 16.0)


def _own_quant(spec: ModelSpec) -> tuple[str, float]:
    """The checkpoint's own format and its bits per weight (16 for an unquantized checkpoint)."""
    try:
        s = scheme_from_config(spec.quantization_config, spec)
    except NotModelledError:
        return "unmodelled format", 16.0
    return (spec.dtype, 16.0) if s.method == "none" else (s.method, float(s.bits))


def plan(spec: ModelSpec, system: System, *, context: int | None = None, concurrency: int = 1,
         goal: Goal = "latency", engine: EngineChoice = "any", engine_version: str | None = None,
         prompt_tokens: int = 1024, host_ram_bytes: int | None = None, top: int = 5,
         prefer_quant: str | None = None, gguf_file: GGUFFile | None = None,
         output_tokens: int = DEFAULT_OUTPUT, pins: Pins | None = None) -> PlanResult:
    """Layouts that fit, ranked for the goal: latency by the speed one stream sees at `concurrency`
    streams of `prompt_tokens` / `output_tokens`, throughput by all streams' tokens/s together
    (vramcalc/serving.py). Per layout the planner shows one quant, the best for
    the goal; `prefer_quant` ("checkpoint", "awq", "gguf:Q4_K_M" ...) shows that one wherever it fits.
    `gguf_file`: the model is that GGUF file; llama.cpp runs it as it is, and vLLM only as it loads GGUF."""
    if concurrency < 1:
        raise InputError(f"--concurrency {concurrency}: must be at least 1")
    pins = pins or Pins()
    if pins.llamacpp_build and engine in ("llamacpp", "any"):
        resolve_build(pins.llamacpp_build)  # a build that cannot be placed is refused before any row
    if output_tokens < 1 or prompt_tokens < 1:
        raise InputError(f"--prompt {prompt_tokens} / --output {output_tokens}: must be at least 1 token each")
    if context is not None and context < 1:
        raise InputError(f"--ctx {context}: the context must be a positive number of tokens")
    model_max = derived_max_model_len(spec)
    ctx = context or min(model_max, planner_data().default_context)
    how = "--ctx" if context else (f"the planner's default {planner_data().default_context} tokens "
                                   f"(the model allows {model_max}); pass --ctx to plan for another")
    notes = [note(system.note_code(n), n) for n in system.notes]
    if context and context > model_max:
        notes.append(note("plan.context.exceeds_model", f"{context} tokens exceed the model's {model_max}: vLLM "
                          "refuses it without VLLM_ALLOW_LONG_MAX_MODEL_LEN, llama.cpp degrades past its training "
                          "context"))
    rejected: list[Rejection] = []
    found: list[tuple[Candidate, float]] = []
    if engine in ("vllm", "any"):
        found += _vllm(spec, system, ctx, concurrency, engine_version, prompt_tokens, rejected, goal, gguf_file,
                       output=output_tokens, pins=pins)
    if engine in ("llamacpp", "any"):
        found += _llamacpp(spec, system, ctx, concurrency, prompt_tokens, host_ram_bytes, rejected, goal, gguf_file,
                           output=output_tokens, pins=pins)
    kept = [(c, b) for c, b in found if pins.keeps(c)]
    if len(kept) < len(found):
        gone = sorted({f"{ENGINE_NAMES[c.engine]} {c.quant} {layout_text(c)}" for c, _ in found if not pins.keeps(c)})
        rejected.append(Rejection(family="layouts other than the pinned ones (" + ", ".join(gone[:6])
                                  + (", ..." if len(gone) > 6 else "") + ")",
                                  reason=note("plan.reject.pinned", "they fit, but differ from what was pinned")))
        found = kept
    # below 4 bits quality drops visibly: offer such quants only when nothing at 4 bits or more fits
    good = [(c, b) for c, b in found if b >= 4]
    if good and len(good) < len(found):
        dropped = sorted({c.quant for c, b in found if b < 4})
        rejected.append(Rejection(family="quants below 4 bits (" + ", ".join(dropped) + ")",
                                  reason=note("plan.reject.below_4_bits", "they fit, but a 4-bit or better quant "
                                              "also fits: not offered")))
        found = good
    # speeds rank at the low end of their measured error band: an uncalibrated estimate (a 50% band)
    # never outranks a calibrated one on its optimistic middle
    low = lambda c: 1 - min(0.9, c.speed.uncertainty)  # noqa: E731
    key = {"latency": lambda c: (c.speed.per_stream_tokens_per_s * low(c), c.max_context),
           "throughput": lambda c: (c.speed.aggregate_tokens_per_s * low(c), c.speed.per_stream_tokens_per_s),
           "context": lambda c: (c.max_context, c.speed.decode_tokens_per_s)}[goal]
    # per (engine, layout): the 16-bit KV cache unless the goal is context (a quantized cache costs
    # some accuracy), then the best quant for the goal; the other quants that fit are named in a note
    best: dict[tuple, Candidate] = {}
    also: dict[tuple, set[str]] = {}
    for c, _ in found:
        k = (c.engine, c.layout)
        also.setdefault(k, set()).add(c.quant)
        cur = best.get(k)
        pref = lambda x: (x.quant == prefer_quant, x.kv_cache_dtype in ("auto", "f16") or goal == "context",  # noqa: E731
                          key(x), _bits(x.quant))
        if cur is None or pref(c) > pref(cur):
            best[k] = c
    ranked = sorted(best.values(), key=lambda c: (key(c), _bits(c.quant)), reverse=True)
    recs = []
    for i, c in enumerate(ranked[:top]):
        others = sorted(also[(c.engine, c.layout)] - {c.quant})
        extra = [note("plan.note.also_fits", f"also fits in this layout: {', '.join(others)}")] if others else []
        recs.append(c.model_copy(update={"rank": i + 1, "notes": c.notes + extra}))
    counts = count_params(spec)
    own = gguf_file.label if gguf_file else _own_quant(spec)[0]
    return PlanResult(fits=bool(recs), model={"id": spec.id, "params_total": counts.total,
                                              "params_active": counts.active, "checkpoint": own},
                      system=_label(system), goal=goal, context=ctx, context_source=how, concurrency=concurrency,
                      recommendations=recs, rejected=_merge(rejected), notes=notes)


def layout_text(c: Candidate) -> str:
    """The layout in a few words: TP=2, PP=2 / layer split x2 / -ngl 30 / x2 replicas."""
    lay = c.layout
    if c.engine == "vllm":
        parts = [f"TP={lay.tp}"] + ([f"PP={lay.pp}"] if lay.pp > 1 else [])
        if lay.nodes > 1:
            parts.append(f"{lay.nodes} nodes")
    elif lay.split == "layer":
        parts = [f"layer split x{lay.gpus_per_replica}"] + ([f"{lay.nodes} machines over RPC"] if lay.nodes > 1 else [])
    elif lay.split == "tensor":
        parts = [f"tensor split x{lay.gpus_per_replica}"]
    elif lay.split == "offload":
        parts = [f"experts of {lay.n_cpu_moe} layers on CPU" if lay.cpu_moe else f"-ngl {lay.n_gpu_layers}"]
    else:
        parts = ["1 GPU"]
    if lay.replicas > 1:
        parts.append(f"x{lay.replicas} replicas")
    return ", ".join(parts)


def alternatives(spec: ModelSpec, system: System, context: int, *, quant: str | None = None,
                 engine: EngineChoice = "any", prefer_engine: Engine | None = None, host_ram_bytes: int | None = None,
                 top: int = 3, engine_version: str | None = None) -> list[str]:
    """What would work instead of a refused check (issue 6.5): the planner's layouts, quants and KV
    dtypes for the same model, system and context, one line each with its command. The nearest
    come first: those that keep the quant asked for (`quant`; None: the checkpoint as it is), then
    those on the engine asked for (`prefer_engine`: vllm, llamacpp). The answer depends on these arguments alone
    (and the bundled data), so a repeated refusal (the CLI's check, then the same call from Python) plans once."""
    from .engine_checks import ADVICE, FIX

    # the spec and system by value (their JSON: a System holds lists), not by identity: a re-read spec is the same
    key = (spec.model_dump_json(), system.model_dump_json(), context, quant, engine, prefer_engine, host_ram_bytes,
           top, engine_version, ADVICE.get(), FIX.get())
    hit = _ALTERNATIVES.get(key)
    if hit is None:
        hit = tuple(_alternatives(spec, system, context, quant, engine, prefer_engine, host_ram_bytes, top,
                                  engine_version))
        _ALTERNATIVES.put(key, hit, layers_weight(len(spec.layers)))
    return list(hit)


_ALTERNATIVES: Memo[tuple[str, ...]] = Memo()


def _alternatives(spec: ModelSpec, system: System, context: int, quant: str | None, engine: EngineChoice,
                  prefer_engine: Engine | None, host_ram_bytes: int | None, top: int, engine_version: str | None
                  ) -> list[str]:
    wanted = quant or "checkpoint"
    r = plan(spec, system, context=context, engine=engine, host_ram_bytes=host_ram_bytes, top=50, prefer_quant=wanted,
             engine_version=engine_version)
    recs = sorted(r.recommendations, key=lambda c: (c.quant != wanted, c.engine != prefer_engine, c.rank))[:top]
    out = []
    for c in recs:
        q = "as the checkpoint is" if c.quant == "checkpoint" else c.quant
        kv = "" if c.kv_cache_dtype in ("auto", "f16") else f", KV {c.kv_cache_dtype}"
        cmd = next((x for x in c.commands if not x.startswith("#")), c.commands[0])
        if c.router_config:
            cmd += f"   (one per replica, behind a LiteLLM router: `vramcalc plan` prints all {c.layout.replicas})"
        out.append(f"{ENGINE_NAMES[c.engine]} {layout_text(c)}, {q}{kv}: up to {c.max_context:,} tokens, "
                   f"~{c.speed.decode_tokens_per_s:.0f} tok/s; {cmd}")
    if not out:
        out.append(f"nothing that vramcalc models fits this system at {context:,} tokens; a shorter context, "
                   "more GPUs or host RAM for offload (`vramcalc plan` lists why each layout fails)")
    return out


def best_gguf_ftype(spec: ModelSpec, gpus: list[GPU], opts: LlamaOptions, host_ram_bytes: int | None = None
                    ) -> tuple[str | None, str | None]:
    """(the best llama.cpp file type, Q8_0 down to IQ2_M, that fits every layer on the GPUs with the
    verdict's margin; the best that fits at all, with offload as --fit would choose it). None: none."""
    full = offload = None
    for ftype in planner_data().gguf_ftypes:
        try:
            tensors = plan_gguf(spec, ftype)
        except NotModelledError:
            continue
        o = opts.model_copy(update={"ftype": ftype})
        if full is None and check_llamacpp(spec, gpus, o.model_copy(update={"n_gpu_layers": 10**6}), tensors,
                                           host_ram_bytes, solve=False).fits:
            full = ftype
        if offload is None and check_llamacpp(spec, gpus, o.model_copy(update={"n_gpu_layers": None}), tensors,
                                              host_ram_bytes, limits=False).fits:
            offload = ftype
        if full and offload:
            break
    return full, offload


def _merge(rej: list[Rejection]) -> list[Rejection]:
    """One line per family: the first reason given for it."""
    out: dict[str, Message] = {}
    for r in rej:
        out.setdefault(r.family, r.reason)
    return [Rejection(family=f, reason=r) for f, r in out.items()]


# ---------------------------------------------------------------- vLLM

def _vllm_quants(spec: ModelSpec, gpu: GPU) -> list[tuple[str | None, str, float]]:
    """(vLLM --quantization target or None for the checkpoint, note, bits)."""
    own, bits = _own_quant(spec)
    out: list[tuple[str | None, str, float]] = [(None, f"the checkpoint as published ({own})", bits)]
    if bits >= 16:
        for q in planner_data().vllm_conversions:
            out.append((q.quant, q.note, q.bits))
    return out


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _vllm(spec: ModelSpec, system: System, ctx: int, concurrency: int, version: str | None, prompt_tokens: int,
          rejected: list[Rejection], goal: Goal, gguf_file: GGUFFile | None = None,
          output: int = DEFAULT_OUTPUT, pins: Pins | None = None) -> list[tuple[Candidate, float]]:
    """vLLM's layouts; for a GGUF file, only the file itself, as vLLM's GGUF plugin loads it (no conversions)."""
    gpu = min(system.gpus, key=lambda g: g.usable_bytes)
    file_bytes = gguf_file.weight_bytes if gguf_file else None

    def check_vllm_file(o: VLLMOptions) -> VLLMResult:
        return check_vllm(spec, gpu, o, file_weight_bytes=file_bytes)
    pins = pins or Pins()
    backend = pins.backend or _backend(gpu)
    if backend == "metal":
        rejected.append(Rejection(family="vLLM", reason=note("plan.reject.metal", "vLLM has no Metal backend: it "
                                                              "does not run on Apple GPUs")))
        return []
    per_node = system.gpus_per_node
    total = per_node * system.nodes
    out: list[tuple[Candidate, float]] = []
    layouts = []
    # TP on a subset of a node's GPUs too (TP=2 on 3 GPUs): the engine needs no more than TP GPUs
    for tp in sorted(set(_divisors(per_node)) | {2**k for k in range(7) if 2**k <= per_node}):
        for pp in range(1, total // tp + 1):
            if system.nodes > 1 and tp * pp < per_node * system.nodes and tp * pp > per_node:
                continue  # a multi-node replica spans whole nodes
            if (tp * pp) > per_node and (tp * pp) % per_node:
                continue
            layouts.append((tp, pp))
    quants = _vllm_quants(spec, gpu) if gguf_file is None else [
        (None, "the GGUF file given, through vLLM's out-of-tree GGUF plugin", gguf_file.bits)]
    for quant, qnote, bits in quants:
        qname = quant or "checkpoint"
        if gguf_file is not None:
            weights_total, reads = gguf_file.weight_bytes, reads_from_gguf(spec, gguf_file.tensors)
        else:
            try:
                scheme = target_scheme(quant, spec) if quant else scheme_from_config(spec.quantization_config, spec)
                weights_total = quantized_bytes(spec, scheme).total
            except NotModelledError as e:
                rejected.append(Rejection(family=f"vLLM {qname}", reason=note("plan.reject.format", str(e))))
                continue
            reads = weight_reads(spec, quant)
        for tp, pp in layouts:
            fam = f"vLLM {qname} TP={tp} PP={pp}"
            n = tp * pp
            if weights_total / n > gpu.usable_bytes * 0.97:
                rejected.append(Rejection(family=f"vLLM {qname} on {n} GPU(s)", reason=note(
                    "plan.reject.weights", f"weights alone need {weights_total / n / GIB:.1f} GiB per GPU, "
                    f"the GPU has {gpu.usable_bytes / GIB:.1f} GiB")))
                continue
            served = False
            kv_dtypes: tuple[KVCacheDtype, ...] = (pins.kv_cache_dtype,) if pins.kv_cache_dtype else ("auto", "fp8")  # type: ignore[assignment]
            for kv in kv_dtypes:
                if served and goal != "context":
                    break  # the 16-bit cache already serves this layout
                opts = VLLMOptions(tp=tp, pp=pp, engine_version=version, max_model_len=ctx, quantization=quant,
                                   kv_cache_dtype=kv, enforce_eager=pins.enforce_eager)
                r = check_vllm_file(opts)
                if not r.devices and "vllm.startup.free_memory" in codes(r.errors):
                    # other processes hold part of the GPU: the largest utilization vLLM's start-up gate allows
                    opts = opts.model_copy(update={"gpu_memory_utilization": max_startup_utilization(gpu, tp, pp)})
                    r = check_vllm_file(opts)
                    r = r.model_copy(update={"warnings": r.warnings + [warning(
                        "plan.startup_utilization", f"--gpu-memory-utilization {opts.gpu_memory_utilization}: the "
                        "most vLLM's free-memory gate allows with what other processes hold")]})
                if r.extensible_kv_cache:  # fewer sequences also capture fewer CUDA graphs there: tried first
                    opts, r = _seqs_within_mamba_blocks(opts, r, check_vllm_file)
                if r.devices and not r.fits and r.extensible_kv_cache:
                    # vLLM 0.34's extensible KV cache keeps the CUDA-graph estimate free beside the captured graphs;
                    # sized from the profile's estimate instead (--disable-extensible-kv-cache), they count once
                    r2 = check_vllm_file(opts.model_copy(update={"enable_extensible_kv_cache": False}))
                    if r2.fits or (r2.devices and "vllm.mamba.seqs_exceed_blocks" in codes(r2.errors)):
                        opts = opts.model_copy(update={"enable_extensible_kv_cache": False})
                        kept = [w for w in r.warnings if w.code.startswith("plan.")]  # what the planner changed before
                        r = r2.model_copy(update={"warnings": r2.warnings + kept + [warning(
                            "plan.extensible_off", "--disable-extensible-kv-cache: vLLM 0.34's extensible KV cache "
                            "keeps its CUDA-graph estimate free beside the captured graphs and leaves too little; "
                            "sized from the profile's estimate, as in 0.33, it starts")]})
                if r.devices and not r.fits and not r.extensible_kv_cache:  # what users do next is raise the budget
                    hi = planner_data().high_gpu_memory_utilization
                    r2 = check_vllm_file(opts.model_copy(update={"gpu_memory_utilization": hi}))
                    if r2.fits:
                        opts = opts.model_copy(update={"gpu_memory_utilization": hi})
                        r = r2.model_copy(update={"warnings": r2.warnings + [warning(
                            "plan.high_utilization", f"fits only with --gpu-memory-utilization {hi}: about "
                            f"{(1 - hi) * gpu.usable_bytes / GIB:.1f} GiB per GPU is left for anything else "
                            "(a desktop, other processes)")]})
                opts, r = _seqs_within_mamba_blocks(opts, r, check_vllm_file)
                if r.errors:
                    rejected.append(Rejection(family=fam if r.devices else f"vLLM {qname} TP={tp}",
                                              reason=r.errors[0]))
                    break  # the other KV dtype fails the same way (or: the layout is refused)
                if not r.fits:
                    continue
                replicas = total // n
                if pins.replicas:
                    if pins.replicas > replicas:
                        continue  # not enough GPUs for the pinned replicas of this layout
                    replicas = pins.replicas
                conc_cap = r.max_concurrency * replicas
                if conc_cap < concurrency:
                    rejected.append(Rejection(family=fam, reason=note(
                        "plan.reject.concurrency", f"the KV cache holds {conc_cap:.1f} sequences of {ctx} tokens, "
                        f"{concurrency} were asked for")))
                    continue
                per_replica = max(1, -(-concurrency // replicas))
                hw = Hardware(engine="vllm", backend=backend, bandwidth_gbs=gpu.memory_bandwidth_gbs or 0,
                              tflops=gpu.tflops_16bit, tp=tp, stages=pp, link=_link(system) if tp > 1 else "none",
                              stage_link="network" if n > per_node else _link(system))
                if not hw.bandwidth_gbs:
                    continue
                sp = estimate_speed(reads, spec, hw, context=ctx, concurrency=per_replica,
                                    prompt_tokens=prompt_tokens, kv_dtype="fp8" if kv == "fp8" else None)
                dep = Deployment(engine="vllm", backend=hw.backend, gpu=gpu, quant=quant, tp=tp, pp=pp,
                                 link=hw.link if tp > 1 else "nvlink", kv_dtype="fp8" if kv == "fp8" else None,
                                 replicas=replicas, enforce_eager=pins.enforce_eager)
                sp = _under_load(sp, reads, spec, dep, concurrency, prompt_tokens, output, penalty=n > per_node)
                notes = [w for w in r.warnings if w.code in LAYOUT_NOTE_CODES][:3]
                notes += [w for w in r.warnings if w.code == "vllm.source.gguf_plugin"]
                if quant and not quant_targets()[quant].vllm_runtime_flag:
                    notes.append(note("plan.note.hub_checkpoint", f"needs a checkpoint of this model in "
                                      f"{quant.upper()} format from the Hub: vLLM cannot convert to it at start-up"))
                if tp > 1 and hw.link == "pcie":
                    notes.append(note("plan.note.pcie_tp", "TP over PCIe without NVLink: each token waits for 2 "
                                      "all-reduces a layer"))
                cmds, router = _vllm_commands(r.command, tp, pp, replicas, system, spec.id)
                served = True
                devs = [DeviceUse(device=f"{d.gpu} rank {d.rank}", used_bytes=d.budget_bytes, available_bytes=d.total_bytes)
                        for d in r.devices]
                out.append((Candidate(rank=0, engine="vllm", engine_version=r.engine_version, quant=qname, quant_note=qnote,
                                      kv_cache_dtype=kv, layout=Layout(tp=tp, pp=pp, replicas=replicas,
                                                                       nodes=max(1, n // per_node),
                                                                       gpus_per_replica=n),
                                      context=ctx, max_context=min(r.safe_max_model_len, derived_max_model_len(spec)),
                                      max_concurrency=round(conc_cap, 2), devices=devs, speed=sp, commands=cmds,
                                      router_config=router, notes=notes, vllm_options=opts), bits))
    return out


def _vllm_commands(cmd: str, tp: int, pp: int, replicas: int, system: System, model_id: str) -> tuple[list[str], str | None]:
    per_node = system.gpus_per_node
    n = tp * pp
    if n > per_node:  # multi-node: Ray cluster, TP inside a node, PP across nodes (docs/vllm.md#multi-node)
        return ([
            "# on the head node:  ray start --head --port=6379",
            "# on every other node:  ray start --address=<head-ip>:6379",
            f"{cmd} --distributed-executor-backend ray   # run on the head node",
        ], None)
    if replicas == 1:
        return [cmd], None
    return _replicas(cmd, model_id, replicas, n, 8000, "hosted_vllm")


def _replicas(cmd: str, model_id: str, replicas: int, gpus_each: int, first_port: int,
              provider: str) -> tuple[list[str], str]:
    """One server per GPU group on its own port, and a LiteLLM router config (one model_name over
    every replica's api_base) in front of them."""
    cmds, entries = [], []
    for i in range(replicas):
        devices = ",".join(str(i * gpus_each + j) for j in range(gpus_each))
        port = first_port + i
        cmds.append(f"CUDA_VISIBLE_DEVICES={devices} {cmd} --port {port}")
        entries.append(f"  - model_name: {model_id}\n    litellm_params:\n      model: {provider}/{model_id}\n"
                       f"      api_base: http://localhost:{port}/v1")
    router = "model_list:\n" + "\n".join(entries) + "\nrouter_settings:\n  routing_strategy: least-busy\n"
    cmds.append("litellm --config router.yaml --port 4000   # one endpoint over the replicas")
    return cmds, router


# ---------------------------------------------------------------- llama.cpp

class GGUFFile(BaseModel):
    """A GGUF file the plan is for: how commands name it, its file type and its tensors."""
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    ref: str  # as the user named it (-m ...)
    ftype: str  # Q4_K_M ..., or "file" when the header does not say
    tensors: list[tuple[GGUFTensor, str]]

    @property
    def label(self) -> str:
        return "GGUF file" + (f" ({self.ftype})" if self.ftype != "file" else "")

    @property
    def weight_bytes(self) -> int:
        return sum(tensor_bytes(ty, t.ne) for t, ty in self.tensors)

    @property
    def bits(self) -> float:
        """Bits per weight of the file's tensors."""
        n = sum(math.prod(t.ne) for t, _ in self.tensors)
        return 8 * self.weight_bytes / n if n else 16.0


def _llamacpp(spec: ModelSpec, system: System, ctx: int, concurrency: int, prompt_tokens: int, host_ram: int | None,
              rejected: list[Rejection], goal: Goal, gguf_file: GGUFFile | None = None,
              output: int = DEFAULT_OUTPUT, pins: Pins | None = None) -> list[tuple[Candidate, float]]:
    gpus = system.gpus
    gpu = gpus[0]
    out: list[tuple[Candidate, float]] = []
    pins = pins or Pins()
    backend = pins.backend or _backend(gpu)
    uniform = all(g.id == gpu.id for g in gpus)
    n_slots = pins.parallel or max(1, concurrency)  # -np: every stream its slot unless pinned
    ftypes = list(planner_data().gguf_ftypes)
    if _own_quant(spec)[0] == "mxfp4":  # gpt-oss ships MXFP4 experts; its GGUFs keep them (MXFP4_MOE):
        ftypes = ["MXFP4_MOE"]          # re-quantizing 4-bit experts to another type only loses accuracy
    if gguf_file is not None:  # the file as it is: its own types, not other file types of it
        ftypes = [gguf_file.ftype]
    for ftype in ftypes:
        quant = f"gguf:{ftype}"
        bits = _bits(quant)
        if gguf_file is not None:
            tensors, bits = gguf_file.tensors, gguf_file.bits
        else:
            try:
                tensors = plan_gguf(spec, ftype)
            except NotModelledError as e:
                rejected.append(Rejection(family=f"llama.cpp {ftype}", reason=note("plan.reject.format", str(e))))
                continue
        reads = reads_from_gguf(spec, tensors)
        n_before = len(out)
        for kv in (pins.kv_cache_dtype.upper(),) if pins.kv_cache_dtype else ("F16", "Q8_0"):
            if len(out) > n_before and goal != "context":
                break  # the f16 cache already fits
            opts = LlamaOptions(n_ctx=ctx * (n_slots if n_slots > 1 else 1), n_parallel=n_slots, kv_unified=True,
                                type_k=kv, type_v=kv, ftype=None if gguf_file else ftype,
                                build=pins.llamacpp_build or "latest")
            # (layout, its result, the options and GPUs it was checked with)
            layouts: list[tuple[Layout, LlamaResult, LlamaOptions, list[GPU]]] = []
            one = check_llamacpp(spec, gpu, opts, tensors, host_ram, solve=False)
            if one.fits:
                reps = len(gpus) if uniform and len(gpus) > 1 else 1
                layouts.append((Layout(replicas=reps, split="none", gpus_per_replica=1), one, opts, [gpu]))
            elif len(gpus) > 1:
                split = check_llamacpp(spec, gpus, opts, tensors, host_ram, solve=False)  # -sm layer
                if split.fits:
                    layouts.append((Layout(split="layer", gpus_per_replica=len(gpus)), split, opts, list(gpus)))
                else:
                    rejected.append(Rejection(family=f"llama.cpp {ftype} layer split over {len(gpus)} GPUs",
                                              reason=_short_llama(split)))
                # -sm tensor (experimental): every GPU reads its share of each layer, like TP
                t_opts = opts.model_copy(update={"split_mode": "tensor", "n_gpu_layers": 10**6})
                tensor = check_llamacpp(spec, gpus, t_opts, tensors, host_ram, solve=False)
                if tensor.fits:
                    layouts.append((Layout(tp=len(gpus), split="tensor", gpus_per_replica=len(gpus)), tensor, t_opts,
                                    list(gpus)))
                else:
                    fam = "llama.cpp tensor split" if tensor.errors else f"llama.cpp {ftype} tensor split over {len(gpus)} GPUs"
                    rejected.append(Rejection(family=fam, reason=_short_llama(tensor)))
            if not layouts and system.nodes > 1:  # the other machines' GPUs through ggml-rpc-server
                every = list(gpus) * system.nodes
                r_opts = opts.model_copy(update={"rpc_nodes": system.nodes - 1})
                rpc = check_llamacpp(spec, every, r_opts, tensors, host_ram, solve=False)
                if rpc.fits:
                    layouts.append((Layout(split="layer", nodes=system.nodes, gpus_per_replica=len(every)), rpc, r_opts,
                                    every))
                else:
                    rejected.append(Rejection(family=f"llama.cpp {ftype} over {system.nodes} machines (RPC)",
                                              reason=_short_llama(rpc)))
            if not layouts and len(gpus) == 1:
                p_lay, p_r = _partial_offload(spec, gpu, opts, tensors, host_ram)
                if p_lay is not None:
                    layouts.append((p_lay, p_r, opts.model_copy(update={"n_gpu_layers": p_r.n_gpu_layers,
                                                                        "n_cpu_moe": p_r.n_cpu_moe}), [gpu]))
                elif "llamacpp.host.ram_unchecked" in codes(p_r.errors):  # the GPU would take it with the host's help
                    rejected.append(Rejection(family=f"llama.cpp {ftype} with offload to the host",
                                              reason=_short_llama(p_r)))
                else:
                    rejected.append(Rejection(family=f"llama.cpp {ftype} on one GPU", reason=_short_llama(one)))
            for layout, _, l_opts, l_gpus in layouts:
                # the verdict and the largest context as `vramcalc check` gives them with the layout's own flags
                r = check_llamacpp(spec, l_gpus if len(l_gpus) > 1 else l_gpus[0], l_opts, tensors, host_ram,
                                   limits="context")
                if not r.fits:
                    continue
                cand = _llama_candidate(spec, system, ctx, concurrency, prompt_tokens, quant, bits, kv, layout, r,
                                        reads, backend, l_opts, gguf_file, output)
                if cand is not None:
                    out.append((cand, bits))
    return out


def _short_llama(r: LlamaResult) -> Message:
    if r.errors:
        return r.errors[0]
    worst = max((d for d in r.devices if d.available_bytes >= 0), key=lambda d: d.total_bytes - d.available_bytes)
    return note("plan.reject.memory", f"{worst.device} would need {worst.total_bytes / GIB:.1f} GiB (model "
                f"{worst.model_buffer_bytes / GIB:.1f}, KV {worst.kv_buffer_bytes / GIB:.1f}, compute "
                f"{worst.compute_buffer_bytes / GIB:.1f}) of {worst.available_bytes / GIB:.1f} GiB")


def _partial_offload(spec: ModelSpec, gpu: GPU, opts: LlamaOptions, tensors: list[tuple[GGUFTensor, str]],
                     host_ram: int | None) -> tuple[Layout | None, LlamaResult]:
    """What llama.cpp's --fit would offload (check_llamacpp's solving): a MoE keeps every layer on the
    GPU and the fewest layers' experts on the CPU; otherwise the most layers that fit (-ngl). The layout is
    None when nothing fits (the result says why)."""
    r = check_llamacpp(spec, gpu, opts.model_copy(update={"n_gpu_layers": None}), tensors, host_ram, limits=False)
    if not r.fits or not r.n_gpu_layers:
        return None, r
    if r.n_cpu_moe:
        return Layout(split="offload", cpu_moe=True, n_cpu_moe=r.n_cpu_moe, n_gpu_layers=r.n_gpu_layers), r
    return Layout(split="offload", n_gpu_layers=r.n_gpu_layers), r


def _llama_candidate(spec: ModelSpec, system: System, ctx: int, concurrency: int, prompt_tokens: int, quant: str,
                     bits: float, kv: str, layout: Layout, r: LlamaResult, reads: WeightReads,
                     backend: str, opts: LlamaOptions, gguf_file: GGUFFile | None = None,
                     output: int = DEFAULT_OUTPUT) -> Candidate | None:
    """r: check_llamacpp's result with `opts` on the layout's GPUs, its largest context (r.max_ctx) solved."""
    gpu = system.gpus[0]
    n = spec.num_layers
    host_share = 0.0
    if layout.split == "offload":
        gpu_bytes = r.devices[0].model_buffer_bytes
        total = gpu_bytes + r.devices[-1].model_buffer_bytes
        host_share = max(0.0, 1 - gpu_bytes / total) if total else 0.0
        if layout.cpu_moe and reads.dense_bytes + reads.expert_bytes:
            host_share = (reads.expert_bytes * layout.n_cpu_moe / n) / (reads.dense_bytes + reads.expert_bytes)
    hw = Hardware(engine="llamacpp", backend=backend, bandwidth_gbs=gpu.memory_bandwidth_gbs or 0,
                  tflops=gpu.tflops_16bit, stages=layout.gpus_per_replica if layout.split == "layer" else 1,
                  tp=layout.tp if layout.split == "tensor" else 1, link=_link(system) if layout.split == "tensor" else "none",
                  host_share=host_share, node_hops=layout.nodes - 1, llamacpp_build=opts.build,
                  compute_capability=gpu.compute_capability)
    if not hw.bandwidth_gbs:
        return None
    per_replica = max(1, -(-concurrency // layout.replicas))
    sp = estimate_speed(reads, spec, hw, context=ctx, concurrency=per_replica, prompt_tokens=prompt_tokens,
                        kv_dtype="fp8" if kv == "Q8_0" else None)
    dep = Deployment(engine="llamacpp", backend=backend, gpu=gpu, quant=quant, tp=hw.tp, link=hw.link,
                     kv_dtype="fp8" if kv == "Q8_0" else None, parallel=max(1, opts.n_parallel),
                     kv_unified=opts.kv_unified and opts.n_parallel > 1, replicas=layout.replicas,
                     llamacpp_build=opts.build)
    sp = _under_load(sp, reads, spec, dep, concurrency, prompt_tokens, output, penalty=True)
    devs = [DeviceUse(device=d.device, used_bytes=d.total_bytes, available_bytes=d.available_bytes) for d in r.devices]
    # the slots share the cells: each of them holds the largest context over n_parallel
    max_ctx = min(derived_max_model_len(spec), (r.max_ctx or r.n_ctx) // max(1, opts.n_parallel))
    ref = gguf_file.ref if gguf_file else f"{spec.id.split('/')[-1]}-{quant.split(':')[1]}.gguf"
    cmd = r.command.replace("model.gguf", ref)
    notes: list[Message] = []
    if gguf_file:
        notes.append(note("plan.note.gguf_file", "the GGUF file given, as it is (its own tensor types)"))
    if layout.split == "offload":
        notes.append(note("plan.note.host_offload", f"host RAM holds {host_share:.0%} of the weights: decode reads "
                          f"them at host-RAM speed (assumed {speed_data().host_ram_bandwidth_gbs} GB/s, "
                          "dual-channel DDR5)"))
    if kv == "Q8_0":
        notes.append(note("plan.note.q8_kv", "q8_0 KV cache: half the KV memory, needs flash attention (-fa on)"))
    if layout.split == "tensor":
        notes.append(note("plan.note.tensor_split", "--split-mode tensor is experimental in llama.cpp "
                          "(docs/multi-gpu.md): each GPU reads its share of every layer, with all-reduces over the "
                          "link like vLLM's TP; set -c yourself, --fit does not run with it"))
    cmds: list[str] = [cmd]
    router: str | None = None
    if layout.nodes > 1:  # llama.cpp's RPC: a ggml-rpc-server on every other machine, llama-server on this one
        notes.append(note("plan.note.rpc", "llama.cpp's RPC backend is a proof of concept (fragile, insecure: "
                          "private network only); each token crosses every machine boundary once"))
        cmds = ["# on every other machine (llama.cpp built with -DGGML_RPC=ON):  ggml-rpc-server -H 0.0.0.0 -p 50052",
                f"{cmd}   # on this machine, with each <node-N> the address of a machine above"]
    elif layout.replicas > 1:
        cmds, router = _replicas(cmd, spec.id, layout.replicas, 1, 8080, "openai")
    if concurrency > 1:
        notes.append(note("plan.note.slots", f"-np {concurrency} slots share one unified KV cache of {r.n_ctx} "
                          f"cells ({ctx} tokens each when all are full)"))
    return Candidate(rank=0, engine="llamacpp", engine_version=None, quant=quant,
                     quant_note=(f"the {gguf_file.label} given" if gguf_file else
                                 f"llama.cpp {quant.split(':')[1]} GGUF (predicted per-tensor types)"),
                     kv_cache_dtype=kv.lower(), layout=layout, context=ctx, max_context=max(ctx, max_ctx),
                     max_concurrency=float(max(1, opts.n_parallel)), devices=devs, speed=sp, commands=cmds, router_config=router,
                     notes=notes, llamacpp_options=opts)


def gguf_file_of(source: ModelSource, ref: str) -> GGUFFile | None:
    """The GGUF file a plan is for when the model was read from one (`ref`: how the user named it); else None."""
    from .sources.limits import redact

    tensors = source.llama_tensors()
    return GGUFFile(ref=redact(ref), ftype=gguf_file_type(source.spec), tensors=tensors) if tensors else None


def gguf_file_type(spec: ModelSpec) -> str:
    """A GGUF file's type (Q4_K_M ...) from its header's general.file_type; "file" when it does not say."""
    ftype_id = (spec.quantization_config or {}).get("file_type")
    return next((name for name, row in ggml_ftypes().items() if row.llama_ftype_id == ftype_id), "file")
