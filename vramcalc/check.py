"""First memory model: weights at the checkpoint dtype plus KV cache and recurrent state at a
context, against one device. Engine workspace (vLLM, llama.cpp) is not modelled yet and is listed
in `not_counted`, so a "fits" here is necessary, not sufficient.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .errors import InputError, NotModelledError
from .gpus import GPU
from .kv import LayerKindMemory, kv_by_layer_kind
from .messages import Message, warning
from .params import count_params
from .spec import ModelSpec
from .results import Result, Row
from .quant import quantized_bytes, scheme_from_config, stand_in_messages, target_scheme
from .trace import TraceTerm, term

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
    memory_bytes: int  # vendor capacity
    usable_bytes: int  # what CUDA reports, the figure the verdict uses
    usable_source: str
    note: str | None = None


class MemoryTerm(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    bytes: int
    detail: str


class CheckResult(Result):
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
    warnings: list[Message]
    trace: list[TraceTerm] = []

    def table(self) -> list[Row]:
        """One row per memory term (weights, KV cache, state) on the device."""
        return [{"device": self.device.id, **t.model_dump(mode="json")} for t in self.breakdown]


def _weights(spec: ModelSpec, quant: str | None, file_weight_bytes: int | None,
             warnings: list[Message]) -> tuple[int, str]:
    """Weight bytes and how they were obtained: a conversion target, the file headers, or the
    checkpoint's own format from its quantization_config."""
    if quant and quant.lower().startswith("gguf:"):
        from .gguf_mix import predict_gguf

        p = predict_gguf(spec, quant.split(":", 1)[1])
        if p.approximate:
            warnings.append(warning("check.gguf.unchecked_layout", f"the GGUF tensor layout of {spec.model_type} is "
                                    "not checked against real files"))
        return p.total_bytes, f"llama.cpp {p.ftype}: {p.tensors} tensors, predicted per-tensor types"
    if quant:
        q = quantized_bytes(spec, target_scheme(quant, spec))
        warnings.extend(stand_in_messages(spec, quant))
        return q.total, f"converted to {quant}: {q.quantized_params:,} params quantized, the rest {spec.dtype}"
    if file_weight_bytes is not None:
        return file_weight_bytes, "exact tensor bytes from the file headers"
    try:
        scheme = scheme_from_config(spec.quantization_config, spec)
    except NotModelledError as e:  # an unmodelled format: conservative, never smaller than the real file
        warnings.append(warning("check.weights.unmodelled_format", f"{e}; weights counted at {spec.dtype}, an "
                                "overestimate"))
        return quantized_bytes(spec, target_scheme("bf16")).total, f"all at {spec.dtype}"
    q = quantized_bytes(spec, scheme)
    if scheme.method == "none":
        return q.total, f"{spec.dtype}, every saved tensor"
    return q.total, f"checkpoint format {scheme.method} ({q.quantized_params:,} params quantized)"


def check(spec: ModelSpec, gpu: GPU, context: int | None = None, sequences: int = 1,
          file_weight_bytes: int | None = None, quant: str | None = None) -> CheckResult:
    """file_weight_bytes: the exact tensor bytes read from the checkpoint's headers, when known.
    quant: weigh the model as converted to a format (`fp8`, `awq`, `gguf:Q4_K_M`, ...)."""
    if context is not None and context <= 0:
        raise InputError(f"--ctx {context}: the context must be a positive number of tokens")
    if sequences <= 0:
        raise InputError(f"--sequences {sequences}: must be a positive number of sequences")
    if context is None:
        if spec.max_position_embeddings is None:
            raise InputError("the model config gives no max_position_embeddings: pass a context with --ctx")
        context = spec.max_position_embeddings
        context_source = "model maximum (max_position_embeddings), as vLLM's default max_model_len"
    else:
        context_source = "--ctx"
    counts = count_params(spec)
    warnings: list[Message] = []
    weights, how = _weights(spec, quant, file_weight_bytes, warnings)
    kinds = kv_by_layer_kind(spec, context)
    kv = sum(k.kv_bytes for k in kinds) * sequences
    state = sum(k.state_bytes for k in kinds) * sequences
    required = weights + kv + state
    if spec.approximate:
        warnings.append(warning("check.spec.approximate", "the architecture was read approximately: "
                                + "; ".join(spec.notes)))
    if spec.max_position_embeddings and context > spec.max_position_embeddings:
        warnings.append(warning("check.context.exceeds_trained", f"context {context} exceeds the trained maximum "
                                f"{spec.max_position_embeddings}"))
    if gpu.note:
        warnings.append(warning(gpu.note_code or "gpu.note", gpu.note))
    available = gpu.usable_bytes or gpu.memory_bytes
    free = available - required
    if 0 <= free < TIGHT_FRACTION * available:
        warnings.append(warning("check.verdict.tight", f"less than {TIGHT_FRACTION:.0%} of the device is left, and "
                                "engine workspace (CUDA context, activations) is not counted yet"))
    detail = f"{counts.total:,} params; {how}"
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
    trace = [term("weights", weights, "tensor bytes of every saved tensor in its format (" + how + ")",
                  source="vramcalc/params.py inventory + vramcalc/quant.py storage rules",
                  params=counts.total, dtype=spec.dtype)]
    for k in kinds:
        if k.kv_bytes:
            trace.append(term(f"kv:{k.kind}", k.kv_bytes * sequences, "layers x bytes per token x tokens held x sequences",
                              source="vramcalc/kv.py (K and V per KV head; window layers hold the window)",
                              layers=k.layers, bytes_per_token=k.kv_bytes_per_token, tokens_held=k.tokens_held,
                              sequences=sequences))
        if k.state_bytes:
            trace.append(term(f"state:{k.kind}", k.state_bytes * sequences, "recurrent state per sequence x sequences",
                              source="vramcalc/kv.py (conv + SSM state, does not grow with context)",
                              layers=k.layers, bytes_per_sequence=k.state_bytes, sequences=sequences))
    trace.append(term("required", required, "weights + KV + state"))
    trace.append(term("available", available, "the total memory CUDA reports for the GPU", source=gpu.usable_source))
    trace.append(term("free", free, "available - required (fits when >= 0)"))
    return CheckResult(
        trace=trace,
        model=ModelSummary(id=spec.id, source=spec.source, model_type=spec.model_type, dtype=spec.dtype,
                           params_total=counts.total, params_active=counts.active,
                           params_by_group={g: n for g, n in counts.by_group.items() if n},
                           layer_kinds=spec.layer_kinds(), max_position_embeddings=spec.max_position_embeddings,
                           approximate=spec.approximate, notes=spec.notes),
        device=DeviceSummary(id=gpu.id, name=gpu.name, memory_bytes=gpu.memory_bytes, usable_bytes=available,
                             usable_source=gpu.usable_source, note=gpu.note),
        context=context,
        context_source=context_source,
        sequences=sequences,
        weights_bytes=weights,
        kv_bytes=kv,
        state_bytes=state,
        required_bytes=required,
        available_bytes=available,
        free_bytes=free,
        fits=free >= 0,
        breakdown=breakdown,
        kv_by_layer_kind=kinds,
        not_counted=[
            "engine workspace: CUDA context, activation peak, CUDA graphs, sampler buffers",
            "what other processes (a desktop, another server) hold on the device",
        ],
        warnings=warnings,
    )
