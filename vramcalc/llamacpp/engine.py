"""`llama-server` on one device (GPU, or CPU only): model, KV, compute and output buffers per
device as llama.cpp allocates them (llamacpp_rules.md), and whether they fit.

Exact: model buffers, KV / recurrent state, output buffer. Estimated: the compute buffer (rule 6.2:
with flash attention the logits n_vocab x n_ubatch x 4 B plus the f16 KV mask, which over-estimates
the logged CUDA/Metal buffers by up to a third (c01, c02) and matches the CPU one (c39); without it
the larger of the logits and KQ_FACTOR x the F32 KQ matrix n_kv x n_ubatch x n_head x 4 B; plus
COMPUTE_MARGIN). The estimate errs high: a false "fits" costs more than a false "does not fit".
What llama.cpp does not count (CUDA context, cuBLAS workspaces) is covered the way its own --fit
covers it: FIT_MARGIN_MIB left free per device (rule 12, --fit-target default 1024 MiB)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ..ggml import tensor_bytes
from ..gguf_mix import GGUFTensor, plan_gguf
from ..gpus import GPU
from ..spec import ModelSpec
from .kv import LlamaKVOptions, llama_caches, output_buffer_bytes
from .weights import model_buffers
from ..trace import TraceTerm, term

MIB = 2**20
FIT_MARGIN_MIB = 1024
COMPUTE_MARGIN = 0.05
# Without flash attention the F32 scores and their softmax are live together: the logged CPU
# buffers of c20 (Mistral-7B) and c28 (Qwen3-30B) are 1.17 x the KQ matrix.
KQ_FACTOR = 1.17


class LlamaOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    n_ctx: int | None = None  # default: the model's training context, as llama.cpp's -c 0
    n_parallel: int = 4  # llama-server's auto: 4 slots with a unified KV cache
    kv_unified: bool = True
    n_ubatch: int = 512
    type_k: str = "F16"
    type_v: str = "F16"
    flash_attn: bool = True  # "auto" resolves to on where the backend supports it
    n_gpu_layers: int = 999
    swa_full: bool = False
    cpu_moe: bool = False
    n_cpu_moe: int = 0  # --n-cpu-moe N: the experts of the first N layers stay on the CPU
    ftype: str | None = None  # when no GGUF file is given: predict this llama.cpp file type


class LlamaDevice(BaseModel):
    model_config = ConfigDict(frozen=True)

    device: str
    model_bytes: int
    kv_bytes: int
    compute_bytes: int  # estimated
    output_bytes: int
    total_bytes: int
    available_bytes: int


class LlamaResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    fits: bool
    engine: str = "llama.cpp"
    n_ctx: int
    context_source: str
    gpu_layers: int
    devices: list[LlamaDevice]
    caches: list[dict]
    errors: list[str]
    warnings: list[str]
    command: str
    trace: list[TraceTerm] = []


def check_llamacpp(spec: ModelSpec, gpu: GPU | None, opts: LlamaOptions,
                   tensors: list[tuple[GGUFTensor, str]] | None = None, ram_bytes: int | None = None,
                   model_ref: str = "model.gguf") -> LlamaResult:
    """gpu None: CPU only. tensors: the file's (tensor, type) list when a GGUF was read."""
    errors, warnings = [], []
    if tensors is None:
        if not opts.ftype:
            raise ValueError("llama.cpp runs GGUF files: give a .gguf, or --quant gguf:<FTYPE> such as gguf:Q4_K_M")
        tensors = plan_gguf(spec, opts.ftype)
    n_ctx = opts.n_ctx or spec.max_position_embeddings
    if not n_ctx:
        raise ValueError("the model gives no training context (llama.cpp's -c 0 default): pass --ctx")
    how = "--ctx" if opts.n_ctx else "the model's training context (llama.cpp's -c 0 default)"
    if opts.type_v.upper() != "F16" and opts.type_v.upper() != "F32" and not opts.flash_attn:
        errors.append("quantized V cache was requested, but this requires Flash Attention "
                      "[src/llama-context.cpp llama_context]")
    kvo = LlamaKVOptions(n_ctx=n_ctx, n_seq_max=opts.n_parallel, kv_unified=opts.kv_unified, n_ubatch=opts.n_ubatch,
                         type_k=opts.type_k.upper(), type_v=opts.type_v.upper(), swa_full=opts.swa_full)
    caches = llama_caches(spec, kvo)
    n_layer = spec.num_layers
    ngl = opts.n_gpu_layers if gpu is not None else 0
    overrides = [r"ffn_(up|down|gate)_exps"] if opts.cpu_moe and not opts.n_cpu_moe else []
    if opts.n_cpu_moe:  # common/arg.cpp --n-cpu-moe: one override per layer index below N
        overrides = [rf"^blk\.{i}\.ffn_(up|down|gate)_exps" for i in range(opts.n_cpu_moe)]
    mb = model_buffers(tensors, n_layer, ngl, overrides, unified=bool(gpu and gpu.unified_memory))
    gpu_share = mb.gpu_layers / n_layer if n_layer else 0
    kv_total = sum(c.k_bytes + c.v_bytes for c in caches)
    kv_gpu = int(kv_total * gpu_share)  # each layer's KV lives with the layer (rule 2.7)
    attn = next((layer.attention for layer in spec.layers if layer.attention is not None), None)
    n_kv = max((c.cells for c in caches if c.name != "recurrent"), default=0)
    logits = spec.vocab_size * min(opts.n_ubatch, n_ctx) * 4
    peak: float
    if opts.flash_attn:
        peak = logits + n_kv * opts.n_ubatch * 2
    else:
        kq = n_kv * opts.n_ubatch * (attn.num_heads if attn else 0) * 4
        peak = max(logits, kq * KQ_FACTOR)
    compute = int(peak * (1 + COMPUTE_MARGIN))
    output = output_buffer_bytes(spec, opts.n_parallel)
    devices = []
    if gpu is not None:
        avail = (gpu.usable_bytes or gpu.memory_bytes) - FIT_MARGIN_MIB * MIB
        total = mb.gpu_bytes + kv_gpu + compute
        if mb.unified:  # one pool: the host's share counts against it too
            total += kv_total - kv_gpu + output
        devices.append(LlamaDevice(device=gpu.id, model_bytes=mb.gpu_bytes, kv_bytes=kv_gpu, compute_bytes=compute,
                                   output_bytes=output if mb.unified else 0, total_bytes=total, available_bytes=avail))
    host_compute = compute if gpu is None or mb.gpu_layers < n_layer else 0
    host_total = (0 if mb.unified else mb.cpu_bytes) + (kv_total - kv_gpu) + host_compute + (0 if mb.unified else output)
    devices.append(LlamaDevice(device="host RAM", model_bytes=0 if mb.unified else mb.cpu_bytes,
                               kv_bytes=kv_total - kv_gpu, compute_bytes=host_compute,
                               output_bytes=0 if mb.unified else output, total_bytes=host_total,
                               available_bytes=ram_bytes if ram_bytes is not None else -1))
    if ram_bytes is None:
        warnings.append("host RAM not given (--ram): the host column is not checked; CPU weights are mmap'ed "
                        "from the page cache (llamacpp_rules.md rule 10.1)")
    warnings.append(f"compute buffers are estimated (+{COMPUTE_MARGIN:.0%} over the dominant tensor); "
                    f"{FIT_MARGIN_MIB} MiB per GPU is left free as llama.cpp's --fit does for what it does not count")
    fits = not errors and all(d.available_bytes < 0 or d.total_bytes <= d.available_bytes for d in devices)
    cmd = [f"llama-server -m {model_ref}", f"-c {n_ctx}"]
    cmd.append(f"-ngl {ngl if ngl < n_layer + 1 else 'all'}" if gpu is not None else "-ngl 0")
    if opts.n_parallel != 4 or not opts.kv_unified:
        cmd.append(f"-np {opts.n_parallel}" + (" --kv-unified" if opts.kv_unified else ""))
    if opts.type_k.upper() != "F16":
        cmd.append(f"-ctk {opts.type_k.lower()}")
    if opts.type_v.upper() != "F16":
        cmd.append(f"-ctv {opts.type_v.lower()}")
    cmd.append("-fa on" if opts.flash_attn else "-fa off")
    if opts.n_ubatch != 512:
        cmd.append(f"-ub {opts.n_ubatch}")
    if opts.n_cpu_moe:
        cmd.append(f"--n-cpu-moe {opts.n_cpu_moe}")
    elif opts.cpu_moe:
        cmd.append("--cpu-moe")
    if opts.swa_full:
        cmd.append("--swa-full")
    trace = [term("model buffer (GPU)", mb.gpu_bytes, "bytes of the tensors of the offloaded layers in their ggml "
                  "types (the output layer first, token_embd stays on the CPU)",
                  source="llamacpp_rules.md rule 8 (llama-model.cpp load_tensors), types per rule 14", gpu_layers=mb.gpu_layers,
                  n_layer=n_layer, overrides=overrides),
             term("model buffer (CPU)", mb.cpu_bytes, "the tensors left on the CPU, mmap'ed",
                  source="llamacpp_rules.md rule 10.1")]
    for c in caches:
        trace.append(term(f"KV {c.name}", c.k_bytes + c.v_bytes, "cells x layers x (K + V bytes per cell and layer); "
                          "recurrent: F32 state per sequence", source="llamacpp_rules.md rule 2 (llama-kv-cache.cpp)",
                          cells=c.cells, layers=c.layers, type_k=kvo.type_k, type_v=kvo.type_v))
    trace.append(term("KV on the GPU", kv_gpu, "KV x offloaded layers / layers (each layer's KV lives with it)",
                      source="llamacpp_rules.md rule 2.7", kv_total=kv_total, gpu_share=round(gpu_share, 4)))
    trace.append(term("compute (estimate)", compute,
                      ("(vocab x ubatch x 4 + n_kv x ubatch x 2) x (1 + margin)" if opts.flash_attn else
                       "max(vocab x ubatch x 4, KQ_FACTOR x n_kv x ubatch x heads x 4) x (1 + margin)"),
                      source="llamacpp_rules.md rule 6.2; KQ_FACTOR from logs c20/c28", vocab=spec.vocab_size,
                      ubatch=opts.n_ubatch, n_kv=n_kv, flash_attn=opts.flash_attn, margin=COMPUTE_MARGIN))
    trace.append(term("output buffer", output, "vocab x 4 bytes x parallel sequences (+ embeddings)",
                      source="llamacpp_rules.md rule 7 (llama-context.cpp output_reserve)"))
    if gpu is not None:
        trace.append(term("available (GPU)", devices[0].available_bytes, "CUDA-reported total - fit margin",
                          source="llamacpp_rules.md rule 12 (--fit-target 1024 MiB)", fit_margin_mib=FIT_MARGIN_MIB))
        trace.append(term("total (GPU)", devices[0].total_bytes, "model + KV + compute (+ host share on unified memory)"))
    return LlamaResult(fits=fits, n_ctx=n_ctx, context_source=how, gpu_layers=mb.gpu_layers, devices=devices,
                       caches=[c.model_dump() for c in caches], errors=errors, warnings=warnings, command=" ".join(cmd),
                       trace=trace)


# Rule 6.3: with several GPUs in layer mode and everything offloaded, the scheduler keeps this many
# copies of the compute buffers (GGML_SCHED_MAX_COPIES, log "pipeline parallelism enabled (n_copies=4)").
SCHED_MAX_COPIES = 4


def split_units(n_layer: int, gpus: list[GPU], tensor_split: list[float] | None = None) -> list[int]:
    """Device of each offloaded unit (blocks 0..n_layer-1, then the output layer), all layers on GPU.
    llama-model.cpp load_tensors (rule 9.2): proportions from -ts, else each device's free memory;
    unit i goes to the first device whose cumulative fraction exceeds i / n_units."""
    weights = tensor_split or [float(g.usable_bytes or g.memory_bytes) for g in gpus]
    total = sum(weights)
    cum, acc = [], 0.0
    for w in weights:
        acc += w / total
        cum.append(acc)
    n_units = n_layer + 1
    out = []
    for i in range(n_units):
        out.append(next((d for d, c in enumerate(cum) if i / n_units < c), len(gpus) - 1))
    return out


def check_llamacpp_split(spec: ModelSpec, gpus: list[GPU], opts: LlamaOptions,
                         tensors: list[tuple[GGUFTensor, str]] | None = None, ram_bytes: int | None = None,
                         model_ref: str = "model.gguf", tensor_split: list[float] | None = None) -> LlamaResult:
    """`-sm layer` over several GPUs with every layer offloaded: each device holds its blocks, their
    KV, and its compute buffers x SCHED_MAX_COPIES; the last holds the output layer and the logits.
    KV per device is the cache total in proportion to its attention layers (exact for uniform stacks)."""
    if len(gpus) == 1:
        return check_llamacpp(spec, gpus[0], opts, tensors, ram_bytes, model_ref)
    base = check_llamacpp(spec, gpus[-1], opts, tensors, ram_bytes, model_ref)  # errors, caches, compute estimate
    if tensors is None:
        tensors = plan_gguf(spec, opts.ftype or "")
    n_layer = spec.num_layers
    unit_dev = split_units(n_layer, gpus, tensor_split)
    model = [0] * len(gpus)
    tied = not any(t.name == "output.weight" for t, _ in tensors)
    host = 0
    for t, ggml in tensors:
        size = tensor_bytes(ggml, t.ne)
        m = re.match(r"blk\.(\d+)\.", t.name)
        if m:
            model[unit_dev[int(m.group(1))]] += size
        elif t.name == "token_embd.weight":
            host += size
            if tied:
                model[unit_dev[-1]] += size
        else:
            model[unit_dev[-1]] += size
    kv_total = sum(c["k_bytes"] + c["v_bytes"] for c in base.caches)  # the same caches as one device
    attn_layers = [i for i, layer in enumerate(spec.layers) if layer.attention is not None or layer.ssm is not None]
    per_dev_layers = [sum(1 for i in attn_layers if unit_dev[i] == d) for d in range(len(gpus))]
    last_compute = base.devices[0].compute_bytes
    logits = spec.vocab_size * min(opts.n_ubatch, base.n_ctx) * 4
    other_compute = max(0, int(last_compute - logits * (1 + COMPUTE_MARGIN)))
    ff = max((layer.mlp.intermediate_size or layer.mlp.expert_intermediate_size * max(1, layer.mlp.experts_per_token)
              for layer in spec.layers), default=4 * spec.hidden_size)
    other_compute = max(other_compute, int(opts.n_ubatch * (2 * ff + 2 * spec.hidden_size) * 4 * (1 + COMPUTE_MARGIN)))
    copies = SCHED_MAX_COPIES if opts.n_gpu_layers > n_layer and not opts.cpu_moe else 1
    devices = []
    for d, g in enumerate(gpus):
        kv = kv_total * per_dev_layers[d] // max(1, len(attn_layers))
        compute = (last_compute if d == len(gpus) - 1 else other_compute) * copies
        devices.append(LlamaDevice(device=f"{g.id}#{d}", model_bytes=model[d], kv_bytes=kv, compute_bytes=compute,
                                   output_bytes=0, total_bytes=model[d] + kv + compute,
                                   available_bytes=(g.usable_bytes or g.memory_bytes) - FIT_MARGIN_MIB * MIB))
    out = output_buffer_bytes(spec, opts.n_parallel)
    devices.append(LlamaDevice(device="host RAM", model_bytes=host, kv_bytes=0, compute_bytes=0, output_bytes=out,
                               total_bytes=host + out, available_bytes=ram_bytes if ram_bytes is not None else -1))
    errors = list(base.errors)
    warnings = [w for w in base.warnings if not w.startswith("compute buffers")]
    warnings.append(f"layer split over {len(gpus)} GPUs: compute buffers are estimated and kept in {copies} copies "
                    "(pipeline parallelism, llamacpp_rules.md rule 6.3); the last GPU also holds the output layer; "
                    f"{FIT_MARGIN_MIB} MiB per GPU is left free")
    fits = not errors and all(d.available_bytes < 0 or d.total_bytes <= d.available_bytes for d in devices)
    cmd = base.command.replace(f"-ngl {base.gpu_layers if base.gpu_layers < n_layer + 1 else 'all'}", "-ngl all")
    cmd += " -sm layer" + (f" -ts {','.join(f'{x:g}' for x in tensor_split)}" if tensor_split else "")
    return LlamaResult(fits=fits, n_ctx=base.n_ctx, context_source=base.context_source, gpu_layers=n_layer,
                       devices=devices, caches=base.caches, errors=errors, warnings=warnings, command=cmd)
