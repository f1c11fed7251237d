"""First memory model: weights at the checkpoint dtype plus KV cache and recurrent state at a
context, against one device. Engine workspace (vLLM, llama.cpp) is not modelled yet and is listed
in `not_counted`, so a "fits" here is necessary, not sufficient.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .gpus import GPU
from .kv import LayerKindMemory, dtype_bytes, kv_by_layer_kind
from .params import count_params
from .spec import ModelSpec
from .weights import weight_bytes

GIB = 1024**3
# Below this share of free memory the verdict carries a warning: engine workspace is not counted.
TIGHT_FRACTION = 0.10


class ModelSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    source: str
    model_type: str
    dtype: str
    params_total: int
    params_active: int
    params_by_group: dict[str, int]
    layer_kinds: dict[str, int]
    max_position_embeddings: int | None
    approximate: bool
    notes: tuple[str, ...]


class DeviceSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    memory_bytes: int
    note: str | None = None


class MemoryTerm(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    bytes: int
    detail: str


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: ModelSummary
    device: DeviceSummary
    context: int
    context_source: str  # "--ctx" or how the default was chosen
    sequences: int
    weights_bytes: int
    kv_bytes: int
    state_bytes: int
    required_bytes: int
    available_bytes: int
    free_bytes: int
    fits: bool
    breakdown: list[MemoryTerm]
    kv_by_layer_kind: list[LayerKindMemory]
    not_counted: list[str]
    warnings: list[str]


def check(spec: ModelSpec, gpu: GPU, context: int | None = None, sequences: int = 1,
          file_weight_bytes: int | None = None) -> CheckResult:
    """file_weight_bytes: the exact tensor bytes read from the checkpoint's headers, when known."""
    if context is not None and context <= 0:
        raise ValueError("context must be a positive number of tokens")
    if sequences <= 0:
        raise ValueError("sequences must be positive")
    if context is None:
        if spec.max_position_embeddings is None:
            raise ValueError("the model config gives no max_position_embeddings: pass a context")
        context = spec.max_position_embeddings
        context_source = "model maximum (max_position_embeddings), as vLLM's default max_model_len"
    else:
        context_source = "--ctx"
    counts = count_params(spec)
    weights = weight_bytes(spec).total if file_weight_bytes is None else file_weight_bytes
    kinds = kv_by_layer_kind(spec, context)
    kv = sum(k.kv_bytes for k in kinds) * sequences
    state = sum(k.state_bytes for k in kinds) * sequences
    required = weights + kv + state
    warnings: list[str] = []
    if spec.quantization_config and file_weight_bytes is None:
        method = spec.quantization_config.get("quant_method", "?")
        warnings.append(f"the checkpoint is quantized ({method}); weights are counted at {spec.dtype} "
                        "until the quantization model lands, an overestimate")
    if spec.approximate:
        warnings.append("the architecture was read approximately: " + "; ".join(spec.notes))
    if spec.max_position_embeddings and context > spec.max_position_embeddings:
        warnings.append(f"context {context} exceeds the trained maximum {spec.max_position_embeddings}")
    if gpu.note:
        warnings.append(gpu.note)
    free = gpu.memory_bytes - required
    if 0 <= free < TIGHT_FRACTION * gpu.memory_bytes:
        warnings.append(f"less than {TIGHT_FRACTION:.0%} of the device is left, and engine workspace "
                        "(CUDA context, activations) is not counted yet")
    if file_weight_bytes is not None:
        detail = f"{counts.total:,} params; exact tensor bytes from the file headers"
    else:
        detail = (f"{counts.total:,} params x {dtype_bytes(spec.dtype)} B ({spec.dtype})"
                  + (" + saved buffers" if weights != counts.total * dtype_bytes(spec.dtype) else ""))
    breakdown = [MemoryTerm(name="weights", bytes=weights, detail=detail)]
    for k in kinds:
        if k.kv_bytes:
            held = f"{k.tokens_held:,} tokens held" + (" (window)" if k.tokens_held < context else "")
            breakdown.append(MemoryTerm(name=f"kv:{k.kind}", bytes=k.kv_bytes * sequences,
                                        detail=f"{k.layers} layers, {k.kv_bytes_per_token:,} B/token, {held}"
                                        + (f" x {sequences} seqs" if sequences > 1 else "")))
        if k.state_bytes:
            breakdown.append(MemoryTerm(name=f"state:{k.kind}", bytes=k.state_bytes * sequences,
                                        detail=f"{k.layers} layers, {k.state_bytes:,} B per sequence"
                                        + (f" x {sequences} seqs" if sequences > 1 else "")))
    return CheckResult(
        model=ModelSummary(id=spec.id, source=spec.source, model_type=spec.model_type, dtype=spec.dtype,
                           params_total=counts.total, params_active=counts.active,
                           params_by_group={g: n for g, n in counts.by_group.items() if n},
                           layer_kinds=spec.layer_kinds(), max_position_embeddings=spec.max_position_embeddings,
                           approximate=spec.approximate, notes=spec.notes),
        device=DeviceSummary(id=gpu.id, name=gpu.name, memory_bytes=gpu.memory_bytes, note=gpu.note),
        context=context,
        context_source=context_source,
        sequences=sequences,
        weights_bytes=weights,
        kv_bytes=kv,
        state_bytes=state,
        required_bytes=required,
        available_bytes=gpu.memory_bytes,
        free_bytes=free,
        fits=free >= 0,
        breakdown=breakdown,
        kv_by_layer_kind=kinds,
        not_counted=[
            "engine workspace: CUDA context, activation peak, CUDA graphs, sampler buffers",
            "the driver's reservation: usable memory is below the vendor capacity used here",
        ],
        warnings=warnings,
    )
