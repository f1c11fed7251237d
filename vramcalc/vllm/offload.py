"""vLLM's weight offloaders as OffloadConfig selects them (vLLM v0.33.0 vllm/config/offload.py,
vllm/model_executor/offloader/; data/vllm_features.json prefetch_offload).

- The backend (base.py create_offloader): --offload-backend auto takes prefetch when --offload-group-size is above 0,
  else UVA when --cpu-offload-gb is above 0, else none; uva / prefetch as named, the other one's fields ignored.
- Prefetch (prefetch.py PrefetchOffloader.wrap_modules): of the decoder layers make_layers builds on a rank (its
  PP stage's, numbered from 0 there: vllm/model_executor/models/utils.py make_layers), layer i is offloaded when
  i mod group_size >= group_size - num_in_group; every parameter of it, or those whose name has a segment of
  --offload-params (a layer with none is skipped). post_init allocates a StaticBufferPool on the GPU:
  prefetch_step slots of each distinct (parameter name, shape, stride, dtype) of the offloaded layers; the
  offloaded parameters point into it and are copied in from pinned host memory ahead of their layer.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .weights import LayerTensor

Backend = Literal["uva", "prefetch"]


def offload_backend(backend: str, group_size: int, cpu_offload_gb: float) -> Backend | None:
    """create_offloader's choice (None: the no-op offloader, nothing moves)."""
    if backend == "auto":
        if group_size > 0:
            return "prefetch"
        return "uva" if cpu_offload_gb > 0 else None
    return "prefetch" if backend == "prefetch" else "uva"


class PrefetchPlan(BaseModel):
    """One rank's prefetch offload: the model layers it offloads, their bytes (in pinned host memory) and the GPU
    buffer pool they are prefetched into."""
    model_config = ConfigDict(frozen=True)

    layers: list[int]  # model layer indices
    offloaded_bytes: int
    buffer_bytes: int


def _selected(t: LayerTensor, params: tuple[str, ...]) -> bool:
    """--offload-params: vLLM matches `.segment.` in `.name.`; vramcalc sizes the `experts` segment, the routed
    experts (the fused w13 / w2 tensors of FusedMoE, not shared_experts), which its tensors carry as a group."""
    return not params or ("experts" in params and t.group == "routed_experts")


def prefetch_plan(layers: list[list[LayerTensor]], start: int, end: int, group_size: int, num_in_group: int,
                  prefetch_step: int, params: tuple[str, ...]) -> PrefetchPlan:
    """PrefetchOffloader.wrap_modules and post_init for the layers [start, end) of one PP stage."""
    chosen: list[int] = []
    offloaded = 0
    distinct: dict[tuple[str, tuple[int, ...], int], int] = {}  # StaticBufferPool's key: name, shape (and dtype)
    for local, i in enumerate(range(start, end)):
        if local % group_size < group_size - num_in_group:
            continue
        picked = [t for t in layers[i] if _selected(t, params)]
        if not picked:
            continue  # wrap_modules: a layer with no matching parameter is not offloaded
        chosen.append(i)
        for t in picked:
            offloaded += t.bytes
            distinct.setdefault((t.name, t.shape, t.bytes), t.bytes)
    buffer = prefetch_step * sum(distinct.values()) if chosen else 0
    return PrefetchPlan(layers=chosen, offloaded_bytes=offloaded, buffer_bytes=buffer)


def uva_largest_layer_copy(layers: list[list[LayerTensor]], start: int, end: int, max_bytes: int,
                           params: tuple[str, ...]) -> int:
    """VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 (vLLM v0.33.0 vllm/model_executor/offloader/uva.py): the UVA offloader's
    walk (_maybe_offload_to_cpu over the layers [start, end) of one PP stage, in order, parameter by parameter until
    max_bytes is reached) leaves the moved parameters as plain host tensors, and each layer with one gets a forward
    that copies its state_dict to the GPU and runs functional_call on the copy: the most one layer's forward holds
    beyond the resident weights is the largest count moved from one layer. vramcalc's tensor order within a layer is
    its own, with q / k / v and gate / up taken as the one parameter vLLM's merged linear layers hold (qkv_proj,
    gate_up_proj: QKVParallelLinear, MergedColumnParallelLinear), so a layer cut short by the limit may differ from
    vLLM's by under one parameter."""
    total = largest = 0
    for i in range(start, end):
        if total >= max_bytes:
            break
        moved = 0
        for size in _merged(layers[i], params):
            if total >= max_bytes:
                break
            total += size
            moved += size
        largest = max(largest, moved)
    return largest


def _merged(layer: list[LayerTensor], params: tuple[str, ...]) -> list[int]:
    """The bytes of each parameter as vLLM holds it, in order: consecutive q_proj / k_proj / v_proj (or gate_proj /
    up_proj) tensors of one module and suffix summed into one."""
    out: list[tuple[str, int]] = []
    for t in layer:
        if params and not _selected(t, params):
            continue
        key = re.sub(r"\b[qkv]_proj\b", "qkv_proj", re.sub(r"\b(gate|up)_proj\b", "gate_up_proj", t.name))
        if out and out[-1][0] == key and key != t.name:
            out[-1] = (key, out[-1][1] + t.bytes)
        else:
            out.append((key, t.bytes))
    return [b for _, b in out]
