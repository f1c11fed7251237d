"""--all2all-backend: the expert-parallel all-to-all backends and their buffers, as vLLM v0.33.0 builds them
(data/vllm_features.json all2all names each rule's source; tests/data/vllm_all2all_oracle_v0.33.0.json).

    backend                    = pplx / naive -> allgather_reducescatter; flashinfer_all2allv -> its new name
    all-to-all kernels on      = enable_expert_parallel and (DP > 1 or PCP > 1), on a MoE model
    batched DP MoE             = backend in (deepep_low_latency, nixl_ep), enable_expert_parallel, DP > 1:
                                 the default max_num_batched_tokens is 256 (any model)
    DeepEP buffer (per rank)   = VLLM_DEEPEP_BUFFER_SIZE_MB MiB (NVLink, cudaMalloc)
                                 + the same again (RDMA, NVSHMEM) with high throughput across machines
                                 + low latency's RDMA buffer (DeepEP's own size hint: not sized)

The buffer is built while the model loads, before the memory profile, outside PyTorch's allocator: vLLM counts
it as non-torch memory inside the gpu_memory_utilization budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..messages import Message, warning

if TYPE_CHECKING:
    from ..spec import ModelSpec
    from .engine import VLLMOptions

MIB = 1 << 20
SRC = "vLLM v0.33.0 vllm/distributed/device_communicators/all2all.py"


def backend(opts: VLLMOptions) -> str:
    """The backend vLLM runs: its default, the removed ones' fallback, an alias's new name."""
    from .features import features

    a = features().all2all
    b = opts.all2all_backend or a.default_backend
    b = a.default_backend if b in a.removed else b
    return a.aliases.get(b, b)


def batched_dp_moe(opts: VLLMOptions) -> bool:
    """ParallelConfig.use_batched_dp_moe (vllm/config/parallel.py)."""
    from .features import features

    return backend(opts) in features().all2all.batched_dp_backends and opts.enable_expert_parallel \
        and opts.data_parallel_size > 1


def default_max_num_batched_tokens() -> int:
    """SchedulerConfig.DEFAULT_MAX_NUM_BATCHED_TOKENS_FOR_BATCHED_DP (vllm/config/scheduler.py)."""
    from .features import features

    return features().all2all.batched_dp_max_num_batched_tokens


def kernels_on(spec: ModelSpec, opts: VLLMOptions) -> bool:
    """FusedMoEParallelConfig.use_all2all_kernels (vllm/model_executor/layers/fused_moe/config.py): expert
    parallelism across DP (or PCP) ranks, on a model with MoE layers."""
    return spec.is_moe and opts.enable_expert_parallel and (opts.data_parallel_size > 1 or
                                                            opts.prefill_context_parallel_size > 1)


def deepep_bytes(opts: VLLMOptions) -> tuple[int, int]:
    """(NVLink bytes, RDMA bytes) of the DeepEP buffer vLLM asks for (DeepEPHTAll2AllManager /
    DeepEPLLAll2AllManager._make_all2all_kwargs); low latency's RDMA bytes are DeepEP's own size hint: 0 here."""
    b = backend(opts)
    size = opts.deepep_buffer_size_mb * MIB
    if b == "deepep_high_throughput":
        return size, size if opts.ep_internode and not opts.deepep_force_intra_node else 0
    if b == "deepep_low_latency":
        return size, 0
    return 0, 0


def buffer_bytes(spec: ModelSpec, opts: VLLMOptions) -> int:
    """The all-to-all buffer vramcalc sizes per GPU (non-torch, inside the budget)."""
    return sum(deepep_bytes(opts)) if kernels_on(spec, opts) else 0


def messages(spec: ModelSpec, opts: VLLMOptions) -> list[Message]:
    """A coded warning naming each all-to-all buffer: its size, or that it is not sized."""
    from .features import features

    a = features().all2all
    b = backend(opts)
    out: list[Message] = []
    flag = f"--all2all-backend {b}"
    if batched_dp_moe(opts) and opts.max_num_batched_tokens is None:
        out.append(warning("vllm.all2all.batched_tokens", f"{flag} with expert parallelism and DP "
                           f"{opts.data_parallel_size}: max_num_batched_tokens defaults to "
                           f"{a.batched_dp_max_num_batched_tokens} (batched DP MoE), as counted",
                           source="vLLM v0.33.0 vllm/engine/arg_utils.py _set_default_max_num_seqs_and_batched_"
                                  "tokens_args; vllm/config/parallel.py use_batched_dp_moe"))
    if not kernels_on(spec, opts) or b == a.default_backend:
        return out
    nvl, rdma = deepep_bytes(opts)
    if b in a.deepep_backends:
        what = f"DeepEP's NVLink buffer, {nvl / MIB:,.0f} MiB (VLLM_DEEPEP_BUFFER_SIZE_MB)"
        if rdma:
            what += f", and its RDMA buffer across machines, {rdma / MIB:,.0f} MiB"
        # DeepEP's own extras (deepseek-ai/DeepEP dd758ca csrc/legacy/buffer.hpp Buffer: a 32 MiB workspace and the
        # barrier / pointer words beside the NVLink buffer) are its package's, not vLLM's: named, not counted
        tail = "; DeepEP's own 32 MiB workspace beside it is not counted" + ("" if b == "deepep_high_throughput" else (
            ", nor its low-latency RDMA (NVSHMEM) buffer, DeepEP's own get_low_latency_rdma_size_hint (tokens per DP "
            "rank, hidden size, EP ranks, experts; C++ in deep_ep), which is not sized: the KV cache is smaller by it"))
        out.append(warning("vllm.all2all.deepep_buffer", f"{flag}: {what}, per GPU, counted as non-torch memory "
                           f"inside the gpu_memory_utilization budget (allocated while the model loads){tail}",
                           source=f"{SRC} DeepEPHTAll2AllManager / DeepEPLLAll2AllManager._make_all2all_kwargs"))
        return out
    out.append(warning("vllm.all2all.unsized", f"{flag}: this backend's communication buffers (its own package's: "
                       "NIXL EP's get_rdma_size_hint, MoRI, MoonEP, DeepEP V2, FlashInfer's NVLink all-to-all "
                       "workspaces) are not sized: the KV cache is smaller by them", source=SRC))
    return out
