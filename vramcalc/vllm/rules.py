"""What vLLM refuses or degrades before it starts, in its own words (docs/vllm.md#refusals;
each message names the vLLM function that raises it)."""

from __future__ import annotations

from collections.abc import Iterator


from ..data_files import load
from ..data_models import VllmPlatforms, VllmQuantSupport
from ..errors import NotModelledError
from ..gpus import GPU
from ..messages import Message
from ..quant import QuantScheme
from ..spec import ModelSpec
from .weights import padded_vocab, vllm_rules


def _support() -> VllmQuantSupport:
    return load("vllm_quant_support.json", VllmQuantSupport)


def vllm_platforms() -> VllmPlatforms:
    return load("vllm_platforms.json", VllmPlatforms)


def platform_messages(gpu: GPU) -> list[Message]:
    """Whether vLLM runs on this GPU at all, and what its platform changes (data/vllm_platforms.json)."""
    p = vllm_platforms()
    vendor = gpu.vendor or "nvidia"
    refused = (p.refused.by_gpu.get(gpu.id) or p.refused.by_vendor.get(vendor)) if p.refused else None
    if refused:
        return [Message(code="vllm.platform.unsupported_device", level="error", text=refused.message,
                        source=refused.source, fix=refused.fix)]
    if vendor == "apple":
        return [Message(code="vllm.platform.metal", level="error", text=p.metal.message, source=p.metal.source,
                              fix="llama.cpp (Metal), or MLX")]
    if vendor == "amd":
        out = []
        gfx = gpu.gfx_arch
        if gfx and gfx not in p.rocm.gfx:
            out.append(Message(code="vllm.platform.rocm_arch", level="error", text=p.rocm.message.format(gfx=gfx), source=p.rocm.source,
                                     fix="llama.cpp (ROCm or Vulkan)"))
        elif gfx:
            out.append(Message(code="vllm.platform.rocm_version", level="warning", text=f"vLLM on ROCm {p.rocm.gfx[gfx]} or later for {gfx}; "
                                     + p.rocm.no_marlin, source=p.rocm.source))
        if gpu.unified_memory:
            out.append(Message(code="vllm.platform.rocm_unified", level="warning", text=p.rocm.unified, source=p.rocm.source))
        return out
    cc = gpu.compute_capability
    if vendor == "nvidia" and cc and float(cc) < float(p.cuda.min_capability):
        return [Message(code="vllm.platform.cuda_capability", level="error", text=p.cuda.message.format(cc=cc), source=p.cuda.source,
                              fix="llama.cpp (CUDA), which runs on older GPUs")]
    return []


def dtype_messages(spec: ModelSpec, gpu: GPU, dtype: str | None) -> tuple[str | None, list[Message]]:
    """The weight dtype vLLM runs (None: the checkpoint's) and its refusals: no bfloat16 before SM 8.0
    (auto falls back to float16, or float32 for the families float16 breaks), no float16 for those."""
    d = vllm_platforms().dtype
    src = "vllm/config/model.py _resolve_auto_dtype, _check_valid_dtype; vllm/platforms/cuda.py supported_dtypes"
    bad16 = d.float16_unsupported.get(spec.model_type)
    if dtype in ("float16", "half") and bad16:
        return dtype, [Message(code="vllm.dtype.float16_refused", level="error", text=d.float16_refused.format(model_type=spec.model_type,
                                     reason=bad16), source=src, fix="--dtype bfloat16 (SM 8.0+) or --dtype float32")]
    cc = gpu.compute_capability
    if (gpu.vendor or "nvidia") != "nvidia" or not cc or float(cc) >= d.bf16_min_cc:
        return (None if dtype in (None, "auto") else dtype), []
    if dtype == "bfloat16":
        return dtype, [Message(code="vllm.dtype.bf16_refused", level="error", text=d.bf16_refused.format(gpu=gpu.name, cc=cc), source=src,
                                     fix="--dtype half" if not bad16 else "--dtype float32 (float16 is refused)")]
    if dtype in (None, "auto") and spec.dtype == "bfloat16":
        fallback = "float32" if bad16 else "float16"
        return fallback, [Message(code="vllm.dtype.bf16_fallback", level="warning", text=f"no bfloat16 before SM 8.0: vLLM runs the bfloat16 "
                                        f"checkpoint in {fallback}" + (" (float16 is refused for this family: weights "
                                        "take twice the memory)" if bad16 else ""), source=src)]
    return (None if dtype in (None, "auto") else dtype), []


def source_messages(spec: ModelSpec) -> list[Message]:
    """What the checkpoint's own format costs in vLLM: a GGUF file needs the out-of-tree plugin."""
    if spec.architecture and spec.architecture.startswith("gguf:"):
        return [Message(code="vllm.source.gguf_plugin", level="warning", text=_support().methods["gguf"].note or "",
                              source="vLLM v0.33.0 docs/features/quantization/gguf.md (docs/vllm.md#quantization-support)")]
    return []


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".")[:3])


SELECTABLE = ("FLASH_ATTN", "FLASHINFER", "TRITON_ATTN")  # the --attention-backend values vramcalc models


def runs_flashinfer(backend: str | None) -> bool:
    """Some layer runs FlashInfer, alone or as the causal half of the mm-prefix composite (TRITON_FLASHINFER,
    vllm/v1/attention/backends/composite.py: its metadata builder builds FlashInfer's, workspace included)."""
    return backend is not None and any(b in ("FLASHINFER", "TRITON_FLASHINFER") for b in backend.split("+"))


def attention_backend(spec: ModelSpec, gpu: GPU, kv_dtype: str, version: str | None = None,
                      forced: str | None = None, mm_inputs: bool = True) -> tuple[str | None, list[Message]]:
    """The attention backend vLLM's selector picks on a CUDA GPU, and what the choice costs
    (data/vllm_platforms.json attention; `version`: the vLLM release, default the newest rules). None: not a CUDA
    GPU, or an MLA model. Where layers run different backends, their names joined by "+" in layer order. From
    attention.per_layer.since each layer's own selection (kv_layout.layer_backends, vLLM's per-layer
    get_attn_backend); before, one backend for the model by the widest head. An fp8 KV cache the chosen backend
    cannot read on this GPU is an error message. `forced`: --attention-backend, validated alone and refused in
    vLLM's words (CudaPlatform.get_attn_backend_cls). `mm_inputs`: multimodal inputs are not configuration-disabled
    (kv_layout.mm_prefix_lm)."""
    cc = gpu.compute_capability
    attn = [layer.attention for layer in spec.layers if layer.attention is not None]
    if forced is not None and forced.upper() not in SELECTABLE:
        raise NotModelledError(f"--attention-backend {forced}: not modelled (vramcalc models "
                               f"{', '.join(SELECTABLE)} on NVIDIA GPUs for models without MLA)")
    if forced is not None and ((gpu.vendor or "nvidia") != "nvidia" or not cc or not attn or
                               any(a.latent_cache for a in attn)):
        raise NotModelledError(f"--attention-backend {forced}: modelled on NVIDIA GPUs for models without MLA only")
    if (gpu.vendor or "nvidia") != "nvidia" or not cc or not attn or any(a.latent_cache for a in attn):
        return None, []
    from .kv import kv_formats

    if (packed := kv_formats().formats.get(kv_dtype)) is not None:
        # one CUDA backend takes each packed dtype (vllm/platforms/cuda.py priority list, supports_kv_cache_dtype)
        if forced is not None and forced.upper() != packed.backend:
            src = "vllm/platforms/cuda.py CudaPlatform.get_attn_backend_cls (0.33.0)"
            return forced.upper(), [Message(
                code="vllm.attention.selected_invalid", level="error", text="ValueError: " +
                vllm_platforms().attention.selected_invalid.format(name=forced.upper(),
                                                                   reasons=repr(["kv_cache_dtype not supported"]))
                + f" [{src}]", source=src, fix=f"drop --attention-backend ({packed.backend} runs {kv_dtype})")]
        if kv_dtype.startswith("fp8") and float(cc) < 8.9:  # TritonAttentionImpl.__init__: native FP8 needs SM 8.9
            return packed.backend, [_fp8_triton_refusal(gpu, cc, version, [])]
        return packed.backend, []
    rules = vllm_platforms().attention
    if version is None or _vkey(version) >= _vkey(rules.per_layer.since):
        return _per_layer_backend(spec, gpu, kv_dtype, version, forced, mm_inputs)
    value, major = float(cc), int(float(cc))
    head = max(max(a.head_dim_k, a.head_dim_v) for a in attn)
    fp8 = kv_dtype.startswith("fp8")
    reasons = []
    if forced is not None:
        name = forced.upper()
        r = rules.backend(name)
        max_head = r.max_head_size
        for since, size in sorted(r.max_head_size_since.items(), key=lambda kv: _vkey(kv[0])):
            if version is None or _vkey(version) >= _vkey(since):
                max_head = size
        invalid = []  # AttentionBackend.validate_configuration's words, in its order
        if head > max_head:
            invalid.append("head_size not supported")
        if fp8 and r.fp8_kv_cc_major and major not in r.fp8_kv_cc_major:
            invalid.append("kv_cache_dtype not supported")
        if value < r.min_cc or value > r.max_cc:
            invalid.append("compute capability not supported")
        if "kv_cache_dtype not supported" in invalid and r.fp8_kv_reason:
            invalid.append(r.fp8_kv_reason)
        src = "vllm/platforms/cuda.py CudaPlatform.get_attn_backend_cls (0.33.0)"
        if invalid:
            return name, [Message(code="vllm.attention.selected_invalid", level="error", text="ValueError: " +
                                  rules.selected_invalid.format(name=name, reasons=repr(invalid)) + f" [{src}]",
                                  source=src, fix="drop --attention-backend (vLLM picks one that runs)")]
        return name, [_fp8_triton_refusal(gpu, cc, version, [f"--attention-backend {name}"])] if (
            fp8 and value < r.fp8_kv_min_cc) else []
    for name in rules.priorities.get(str(major), rules.priorities["default"]):
        r = rules.backend(name)
        max_head = r.max_head_size
        for since, size in sorted(r.max_head_size_since.items(), key=lambda kv: _vkey(kv[0])):
            if version is None or _vkey(version) >= _vkey(since):
                max_head = size
        why = ""
        if value < r.min_cc or value > r.max_cc:
            why = f"{name} does not run on SM {cc}"
        elif head > max_head:
            why = f"{name} does not support head size {head}"
        elif name == "FLASH_ATTN" and fp8 and major not in r.fp8_kv_cc_major:
            why = f"{name} supports an fp8 KV cache only on SM 9.0 and 10.0"
        if why:
            reasons.append(why)
            continue
        out = []
        if fp8 and value < r.fp8_kv_min_cc:
            out.append(_fp8_triton_refusal(gpu, cc, version, reasons))
        if reasons:
            cost = {"FLASHINFER": f"its workspace (at least {r.workspace_mib} MiB) is counted in the activation",
                    "TRITON_ATTN": "slower attention kernels"}.get(name, "")
            out.append(Message(code="vllm.attention.fallback", level="warning", text=f"attention backend {name}: {'; '.join(reasons)}"
                                     + (f" ({cost})" if cost else ""), source="vllm/platforms/cuda.py "
                                     "_get_backend_priorities and each backend's support checks"))
        return name, out
    return None, []


def _per_layer_backend(spec: ModelSpec, gpu: GPU, kv_dtype: str, version: str | None, forced: str | None,
                       mm_inputs: bool) -> tuple[str | None, list[Message]]:
    """attention_backend from vLLM's per-layer selection (data/vllm_platforms.json attention.per_layer; vLLM 0.34.0
    vllm/v1/attention/selector.py get_attn_backend per layer, vllm/platforms/cuda.py CudaPlatform.get_attn_backend_cls):
    the backends kv_layout.layer_backends picks; --attention-backend validated for every layer in model order, the
    first that refuses it stopping the start-up in validate_configuration's words."""
    from . import kv_layout as kl

    rules = vllm_platforms().attention
    cc = gpu.compute_capability or "0"
    value, major = float(cc), int(float(cc))
    fp8 = kv_dtype.startswith("fp8")
    attn = [la.attention for la in spec.layers if la.attention is not None and not la.attention.latent_cache]
    mm = kl.mm_prefix_lm(spec, mm_inputs)
    cap = kl.softcap(spec)
    src = f"vllm/platforms/cuda.py CudaPlatform.get_attn_backend_cls ({version or 'newest'})"
    if forced is not None:
        name = forced.upper()
        fa4, _ = kl.forced_fa4(spec, gpu, kv_dtype, name)
        for a in attn:  # the layers are built in model order; the first refusal stops the start-up
            invalid = kl.reasons(name, value, a.head_dim_k, a.sinks, kv_dtype, fa4, mm, version, cap)
            if invalid:
                return name, [Message(code="vllm.attention.selected_invalid", level="error", text="ValueError: " +
                                      rules.selected_invalid.format(name=name, reasons=repr(invalid)) + f" [{src}]",
                                      source=src, fix="drop --attention-backend (vLLM picks one that runs)")]
        return name, [_fp8_triton_refusal(gpu, cc, version, [f"--attention-backend {name}"])] if (
            name == "TRITON_ATTN" and fp8 and value < rules.TRITON_ATTN.fp8_kv_min_cc) else []
    picked = kl.layer_backends(spec, gpu, kv_dtype, None, mm_inputs)
    names = list(dict.fromkeys(picked.values()))
    out: list[Message] = []
    fa4, chosen = kl.forced_fa4(spec, gpu, kv_dtype, None)
    order = rules.priorities.get(str(major), rules.priorities["default"])
    why: list[str] = []
    if chosen is not None:  # Gemma4Config named TRITON_ATTN for every layer
        heads = sorted({a.head_dim_k for a in attn})
        why.append(f"{spec.model_type}'s layers mix head sizes ({', '.join(map(str, heads))}) and FA4 does not run "
                   f"on SM {cc}, so Gemma4Config.verify_and_update_config selects {chosen} for every layer")
    else:
        for a in attn:
            b = picked[f"head {a.head_dim_k}" + (" sinks" if a.sinks else "")]
            if b not in order:
                continue  # a composite, first in the priorities
            skipped = [f"{x}: {kl.reasons(x, value, a.head_dim_k, a.sinks, kv_dtype, fa4, mm, version, cap)}"
                       for x in order[:order.index(b)]]
            line = f"head size {a.head_dim_k}{' with sinks' if a.sinks else ''} runs {b} ({'; '.join(skipped)})"
            if skipped and line not in why:
                why.append(line)
    if "TRITON_ATTN" in names and fp8 and value < rules.TRITON_ATTN.fp8_kv_min_cc:
        out.append(_fp8_triton_refusal(gpu, cc, version, why or ["TRITON_ATTN first"]))
    if why:
        costs = [{"FLASHINFER": f"FlashInfer's workspace (at least {rules.FLASHINFER.workspace_mib} MiB) is counted "
                  "in the activation", "TRITON_ATTN": "slower attention kernels"}.get(b, "") for b in names]
        cost = "; ".join(c for c in costs if c)
        out.append(Message(code="vllm.attention.fallback", level="warning",
                           text=f"attention backend {'+'.join(names)}: {'; '.join(why)}" + (f" ({cost})" if cost else ""),
                           source="vllm/platforms/cuda.py _get_backend_priorities and each backend's "
                           "validate_configuration, per layer (vllm/v1/attention/selector.py get_attn_backend)"))
    return "+".join(names), out


def _fp8_triton_refusal(gpu: GPU, cc: str, version: str | None, reasons: list[str]) -> Message:
    """TRITON_ATTN with an fp8 KV cache below SM 8.9, in the release's words (data/vllm_platforms.json
    attention.fp8_kv_triton)."""
    t = vllm_platforms().attention.fp8_kv_triton
    explicit = version is None or _vkey(version) >= _vkey(t.explicit_since)
    suggested = "bfloat16" if float(cc) >= 8.0 else "float16"
    text = (t.explicit.format(gpu=gpu.name, cc=cc, suggested=suggested) if explicit else t.compile_error)
    where = ("vllm/v1/attention/backends/triton_attn.py TritonAttentionImpl.__init__" if explicit else
             "the Triton attention kernels (vllm/v1/attention/backends/triton_attn.py), first compiled in the profile run")
    return Message(code="vllm.attention.fp8_kv_unsupported", level="error",
                   text=f"{text} [{where}; TRITON_ATTN is the backend left: {'; '.join(reasons)}]",
                   source=where, fix=f"--kv-cache-dtype auto (or {suggested})")


def _band(cc: str) -> int:
    bands = [float(b) for b in _support().bands]
    value = float(cc)
    idx = 0
    for i, b in enumerate(bands):
        if value >= b:
            idx = i
    return idx


def _divisors_near(n: int, tp: int) -> list[int]:
    return [t for t in (1, 2, 4, 8, 16) if t != tp and n % t == 0][:4]


def _divide(a: int, b: int, what: str, source: str, fix: str, code: str) -> Message | None:
    """vllm.distributed.utils.divide: assert numerator % denominator == 0."""
    if a % b:
        return Message(code=code, level="error", text=f"{a} is not divisible by {b}", source=source,
                             fix=f"{what}: {fix}")
    return None


def parallel_messages(spec: ModelSpec, tp: int, pp: int = 1) -> list[Message]:
    """Tensor- and pipeline-parallel checks vLLM makes on the architecture."""
    out: list[Message] = []
    attn = next((layer.attention for layer in spec.layers if layer.attention is not None), None)
    if attn is not None:
        heads = attn.num_heads
        if heads % tp:
            ok = [t for t in (1, 2, 4, 8) if heads % t == 0 and t < tp * 2]
            out.append(Message(
                code="vllm.parallel.attention_heads", level="error",
                text=f"Total number of attention heads ({heads}) must be divisible by tensor parallel size ({tp}).",
                source="vllm/config/model.py ModelConfig.verify_with_parallel_config",
                fix=f"use --tensor-parallel-size in {ok}, or PP instead of TP (pipeline stages may be uneven)"))
        if not attn.latent_cache:
            kv = attn.num_kv_heads
            m = _divide(kv, tp, "KV heads", "vllm/model_executor/layers/linear.py QKVParallelLinear.__init__",
                        f"TP must divide {kv} KV heads or be a multiple of them", "vllm.parallel.kv_heads") if kv >= tp else \
                _divide(tp, kv, "KV heads", "vllm/model_executor/layers/linear.py QKVParallelLinear.__init__",
                        f"TP must be a multiple of the {kv} KV heads once it exceeds them", "vllm.parallel.kv_heads")
            if m:
                out.append(m)
    pv = padded_vocab(spec.vocab_size)
    m = _divide(pv, tp, "padded vocab", "vllm/model_executor/layers/vocab_parallel_embedding.py "
                "VocabParallelEmbedding.__init__", f"the vocab padded to {pv} must divide by TP", "vllm.parallel.vocab")
    if m:
        out.append(m)
    dense = {layer.mlp.intermediate_size for layer in spec.layers if layer.mlp.intermediate_size}
    for size in sorted(dense):
        m = _divide(size, tp, "MLP intermediate size", "vllm/model_executor/layers/linear.py "
                    "MergedColumnParallelLinear", f"TP in {_divisors_near(size, tp)}", "vllm.parallel.mlp_intermediate")
        if m:
            out.append(m)
    moe = {layer.mlp.expert_intermediate_size for layer in spec.layers if layer.mlp.kind == "moe"}
    for size in sorted(moe):
        m = _divide(size, tp, "MoE intermediate size", "vllm/model_executor/layers/fused_moe/config.py "
                    "FusedMoEConfig.__post_init__", "use --enable-expert-parallel, or a TP that divides it",
                    "vllm.parallel.moe_intermediate")
        if m:
            out.append(m)
    ssm = next((layer.ssm for layer in spec.layers if layer.ssm is not None), None)
    if ssm is not None:
        heads = ssm.num_v_heads if ssm.kind == "gated_deltanet" else ssm.n_heads
        if heads:
            m = _divide(heads, tp, "SSM / linear-attention heads",
                        "vllm/model_executor/layers/mamba/mamba_utils.py MambaStateShapeCalculator",
                        f"TP in {_divisors_near(heads, tp)}", "vllm.parallel.ssm_heads")
            if m:
                out.append(m)
    if pp > spec.num_layers:
        out.append(Message(code="vllm.parallel.pp_layers", level="error", text=f"pipeline_parallel_size {pp} exceeds the {spec.num_layers} layers "
                                 "(vramcalc's wording: get_pp_indices cannot give every stage a layer)",
                                 source="vllm/distributed/utils.py get_pp_indices", fix="use fewer PP stages"))
    return out


def quant_messages(spec: ModelSpec, scheme: QuantScheme, tp: int, compute_capability: str | None) -> list[Message]:
    """Method x compute capability, and the kernel shape limits of the sharded weights."""
    out: list[Message] = []
    support = _support()
    entry = support.methods.get(scheme.method)
    if entry is None:
        return out
    if compute_capability:
        kind = entry.support[_band(compute_capability)]
        if kind == "refused" and scheme.source.startswith("compressed-tensors") and float(compute_capability) >= 7.0:
            # compressed-tensors passes get_quant_config from SM 7.0 (CompressedTensorsConfig.get_min_capability 70);
            # each layer's scheme is then checked (v0.34.0 compressed_tensors.py get_scheme, _check_scheme_supported)
            out.append(Message(
                code="vllm.quant.capability", level="error",
                text=f"Quantization scheme is not supported for the current GPU. Min capability: "
                     f"{entry.min_capability.replace('.', '')}. Current capability: "
                     f"{compute_capability.replace('.', '')}.",
                source="vllm/model_executor/layers/quantization/compressed_tensors/compressed_tensors.py "
                       "CompressedTensorsConfig._check_scheme_supported",
                fix="a format this GPU runs: GPTQ/AWQ 4-bit from SM 7.5, FP8 weight-only from SM 7.5, or GGUF with "
                    "llama.cpp"))
        elif kind == "refused":
            ct = scheme.source.startswith("compressed-tensors")  # below SM 7.0 refused by the config's own minimum
            out.append(Message(
                code="vllm.quant.capability", level="error",
                text=f"The quantization method {'compressed-tensors' if ct else scheme.method} is not supported for "
                     f"the current GPU. Minimum capability: {'70' if ct else entry.min_capability.replace('.', '')}. "
                     f"Current capability: "
                     f"{compute_capability.replace('.', '')}.",
                source="vllm/model_executor/model_loader/utils.py get_quant_config / get_min_capability",
                fix="a format this GPU runs: GPTQ/AWQ 4-bit from SM 7.5, FP8 weight-only from SM 7.5, or GGUF with "
                    "llama.cpp"))
        elif kind == "weight_only" and entry.degraded:
            out.append(Message(code="vllm.quant.degraded", level="warning", text=entry.degraded,
                                     source="vLLM v0.33.0 get_min_capability (docs/vllm.md#quantization-support)"))
        elif kind == "plugin":
            out.append(Message(code="vllm.quant.plugin", level="warning", text=entry.note or "", source="docs/vllm.md#quantization-support"))
    marlin = scheme.method in support.marlin_methods or (
        scheme.method.startswith("fp8") and compute_capability and float(compute_capability) < 8.9)
    if marlin:
        out += _marlin_shapes(spec, scheme, tp)
    if scheme.method == "fp8_block":
        out += _fp8_block_shapes(spec, scheme, tp)
    return out


def _linear_partitions(spec: ModelSpec, tp: int) -> Iterator[tuple[str, int, int]]:
    """(name, out_per_partition, in_per_partition) of the TP-sharded linears; partitions that TP
    does not divide are left to the divide() checks of parallel_messages."""
    seen = set()
    for layer in spec.layers:
        a, m = layer.attention, layer.mlp
        if a is not None and a.mla is None:
            seen.add(("o_proj", spec.hidden_size, a.num_heads * a.head_dim_v, "row"))
        if m.intermediate_size:
            seen.add(("gate_up_proj", m.intermediate_size, spec.hidden_size, "column"))
            seen.add(("down_proj", spec.hidden_size, m.intermediate_size, "row"))
        if m.kind == "moe":
            seen.add(("experts.w13", m.expert_intermediate_size, spec.hidden_size, "column"))
            seen.add(("experts.w2", spec.hidden_size, m.expert_intermediate_size, "row"))
    for name, out_dim, in_dim, kind in sorted(seen):
        if kind == "column" and out_dim % tp == 0:
            yield name, out_dim // tp, in_dim
        elif kind == "row" and in_dim % tp == 0:
            yield name, out_dim, in_dim // tp


def _marlin_shapes(spec: ModelSpec, scheme: QuantScheme, tp: int) -> list[Message]:
    """verify_marlin_supports_shape: out_per_partition % 64, in_per_partition % 128 and % group."""
    m = _support().marlin
    out = []
    for name, n, k, in _linear_partitions(spec, tp):
        if name.startswith("experts"):
            continue  # MoE layers fall back to MoeWNA16 rather than fail; qkv widths are head multiples
        src = m.source
        if n % m.min_thread_n:
            out.append(Message(code="vllm.quant.marlin_shape", level="error", text=f"Weight output_size_per_partition = {n} is not divisible by "
                                     f"min_thread_n = {m.min_thread_n}. Consider reducing tensor_parallel_size or "
                                     "running with --quantization gptq.", source=src,
                                     fix=f"{name}: a smaller TP, or PP"))
        if k % m.min_thread_k:
            out.append(Message(code="vllm.quant.marlin_shape", level="error", text=f"Weight input_size_per_partition = {k} is not divisible by "
                                     f"min_thread_k = {m.min_thread_k}. Consider reducing tensor_parallel_size or "
                                     "running with --quantization gptq.", source=src,
                                     fix=f"{name}: a smaller TP, or PP"))
        elif scheme.group_size > 0 and k % scheme.group_size:
            out.append(Message(code="vllm.quant.marlin_shape", level="error", text=f"Weight input_size_per_partition = {k} is not divisible by "
                                     f"group_size = {scheme.group_size}. Consider reducing tensor_parallel_size or "
                                     "running with --quantization gptq.", source=src,
                                     fix=f"{name}: a smaller TP, or PP"))
    return out


def _fp8_block_shapes(spec: ModelSpec, scheme: QuantScheme, tp: int) -> list[Message]:
    """validate_fp8_block_shape: row-parallel inputs and column-parallel outputs per partition must
    be multiples of the block."""
    bn, bk = scheme.block
    out = []
    src = "vllm/model_executor/layers/quantization/utils/fp8_utils.py validate_fp8_block_shape"
    for name, n, k in _linear_partitions(spec, tp):
        if name.endswith(("o_proj", "down_proj", "w2")) and k % bk:
            out.append(Message(code="vllm.quant.fp8_block_shape", level="error", text=f"Weight input_size_per_partition = {k} is not divisible by "
                                     f"weight quantization block_k = {bk}.", source=src, fix=f"{name}: a smaller TP"))
        if name.endswith(("gate_up_proj", "w13")) and n % bn:
            out.append(Message(code="vllm.quant.fp8_block_shape", level="error", text=f"Weight output_partition_size = {n} is not divisible by "
                                     f"weight quantization block_n = {bn}.", source=src, fix=f"{name}: a smaller TP"))
    return out


def kda_prefill_refusal(gpu: GPU, requested: str | None, version: str, spec: ModelSpec | None = None) -> list[Message]:
    """vLLM's refusal of a --kda-prefill-backend choice of another platform: flashkda off CUDA, fused off ROCm,
    checked for every model (v0.33.0 vllm/engine/arg_utils.py EngineArgs.create_engine_config; data/vllm_platforms.json
    kda_prefill). Releases before the rule's `since` are not checked. Past it, Kimi-Linear's KDA layers (spec) take
    only auto or triton (kimi_linear_refusal)."""
    r = vllm_platforms().kda_prefill
    if requested is None or _vkey(version) < _vkey(r.since):
        return []
    if requested not in r.needs_vendor or (gpu.vendor or "nvidia") == r.needs_vendor[requested]:
        if spec is None or requested in r.kimi_linear_backends or \
                not any(la.ssm is not None and la.ssm.kind == "kda" for la in spec.layers):
            return []
        src = r.kimi_linear_source.split(" (")[0].removeprefix("vLLM v0.34.0 ") + " (0.34.0)"
        return [Message(code="vllm.kda_prefill.refused", level="error",
                        text=r.kimi_linear_refusal.format(backend=requested) + f" [{src}]", source=src,
                        fix="drop --kda-prefill-backend (auto is Triton)")]
    src = "vllm/engine/arg_utils.py EngineArgs.create_engine_config (0.33.0)"
    return [Message(code="vllm.kda_prefill.refused", level="error", text=r.refusals[requested] + f" [{src}]",
                    source=src, fix="drop --kda-prefill-backend")]


def kda_state_dtype_refusal(spec: ModelSpec, mamba_ssm_cache_dtype: str) -> list[Message]:
    """--mamba-ssm-cache-dtype float16 or bfloat16 on a model with KDA layers: vLLM's refusal (data/vllm.json
    ssm_state_dtype kda_refusals, kda_source)."""
    r = vllm_rules().ssm_state_dtype
    text = r.kda_refusals.get(mamba_ssm_cache_dtype)
    if text is None or not any(la.ssm is not None and la.ssm.kind == "kda" for la in spec.layers):
        return []
    src = ("vllm/models/kimi_k3/nvidia/model.py get_mamba_state_dtype_from_config" if text.startswith("ValueError")
           else "vllm/v1/kv_cache_interface.py MambaSpec.page_size_bytes") + " (0.34.0)"
    return [Message(code="vllm.mamba.kda_state_dtype", level="error", text=f"{text} [{src}]", source=src,
                    fix="drop --mamba-ssm-cache-dtype (Kimi-Linear keeps its recurrent state in float32)")]


GDN_PREFILL_BACKENDS = ("flashinfer", "triton", "cutedsl", "aiter_flydsl", "sycl")  # vllm/engine/arg_utils.py choices


def gdn_prefill_backend(spec: ModelSpec, gpu: GPU, requested: str | None, version: str) -> tuple[str, list[Message]]:
    """The Gated DeltaNet prefill kernel each GDN layer runs, and vLLM's refusal of a choice it cannot run
    (v0.33.0 vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py _resolve_gdn_prefill_backend;
    data/vllm_platforms.json gdn_prefill). "none" for a model without GDN layers (the flag is only read when one
    is built); releases before the rule's `since` are sized as Triton."""
    heads = [layer.ssm.head_k_dim for layer in spec.layers if layer.ssm is not None and layer.ssm.kind == "gated_deltanet"]
    if not heads:
        return "none", []
    r = vllm_platforms().gdn_prefill
    want = (requested or "auto").strip().lower()
    vendor = gpu.vendor or "nvidia"
    src = "vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py _resolve_gdn_prefill_backend (0.33.0)"
    if want == "sycl" and vendor != "intel":
        return "triton", [Message(code="vllm.gdn_prefill.refused", level="error", text=r.refusals["sycl"] + f" [{src}]",
                                  source=src, fix="drop --gdn-prefill-backend")]
    if vendor == "amd":
        return ("aiter_flydsl" if want == "aiter_flydsl" else "triton"), []
    if want == "aiter_flydsl":
        return "triton", [Message(code="vllm.gdn_prefill.refused", level="error",
                                  text=r.refusals["aiter_flydsl"] + f" [{src}]", source=src,
                                  fix="drop --gdn-prefill-backend")]
    cc = gpu.compute_capability
    if vendor != "nvidia" or not cc or _vkey(version) < _vkey(r.since):
        return "triton", []
    major = int(float(cc))
    k128 = max(heads) == 128 and r.wheel_cuda_runtime_major >= r.min_cuda_runtime_major
    flashinfer = cc in r.flashinfer_cc or (k128 and major in r.flashinfer_head_k_128_cc_major)
    if want in ("flashinfer", "auto") and flashinfer:
        return "flashinfer", []
    if want == "cutedsl" and k128 and major in r.cutedsl_head_k_128_cc_major:
        return "cutedsl", []
    return "triton", []
