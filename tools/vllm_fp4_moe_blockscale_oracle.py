"""vLLM's own CUTLASS FP4 MoE expert-quant allocations, run on a CPU machine, as the oracle for the block-scale
buffer VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE sizes (vramcalc/vllm/engine.py _fp4_moe_blockscale).

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_fp4_moe_blockscale_oracle.py \
        > tests/data/vllm_fp4_moe_blockscale_oracle_v0.33.0.json

run_cutlass_moe_fp4 (vllm/model_executor/layers/fused_moe/experts/cutlass_moe.py) quantizes the expert input with
vllm/_custom_ops.py scaled_fp4_experts_quant (K = hidden size) and the down projection's input with
silu_and_mul_scaled_fp4_experts_quant (SiLU; K = the expert intermediate on the rank) or scaled_fp4_experts_quant
(other activations); the MXFP4 path (run_cutlass_moe_mxfp4) with mxfp4_experts_quant and
silu_and_mul_mxfp4_experts_quant. Each allocates its block-scale tensor before calling its CUDA kernel, which the
CPU build lacks: the kernels are registered here as no-ops on the meta device, and vLLM's own wrappers run on meta
tensors under each VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE. The bytes of each returned scale tensor are recorded.

It also records which GPUs CutlassExpertsFp4 (the kernel --moe-backend cutlass maps to for NVFP4 experts:
oracle/nvfp4.py map_nvfp4_backend, backend_to_kernel_cls) runs on: its _supports_current_device, with the platform's
capability answered for each compute capability."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

# (hidden size, expert intermediate on the rank, top-k): DeepSeek-V3 / R1 at TP 1 and 8, Qwen3-30B-A3B,
# Qwen3-235B-A22B at TP 4, gpt-oss-120b's 2880, an odd width
CASES = [(7168, 2048, 8), (7168, 256, 8), (2048, 768, 8), (4096, 384, 8), (2880, 2880, 4), (1000, 96, 2)]
MAX_TOKENS = [163840, 16384, 1024]
CCS = ["7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "10.3", "11.0", "12.0", "12.1"]
KERNELS = ["scaled_fp4_experts_quant", "silu_and_mul_scaled_fp4_experts_quant", "mxfp4_experts_quant",
           "silu_and_mul_mxfp4_experts_quant"]


def main() -> None:
    vllm_oracle.setup()
    import torch

    lib = torch.library.Library("_C", "FRAGMENT")  # the CUDA kernels' schema, as no-ops on meta tensors
    for name in KERNELS:
        extra = "Tensor input_global_scale, " if "scaled_fp4" in name else ""
        tail = ", int n_experts" if "mxfp4" in name else ""
        lib.define(f"{name}(Tensor(a!) output, Tensor(b!) output_scale, Tensor input, {extra}"
                   f"Tensor input_offset_by_experts, Tensor output_scale_offset_by_experts{tail}) -> ()")
        lib.impl(name, lambda *a: None, "Meta")
    import vllm
    import vllm._custom_ops as ops
    from vllm.model_executor.layers.fused_moe.experts import cutlass_moe
    from vllm.model_executor.layers.fused_moe.oracle.nvfp4 import backend_to_kernel_cls, map_nvfp4_backend

    meta = torch.device("meta")
    E = 8
    off = torch.empty(E + 1, dtype=torch.int32, device=meta)
    gs = torch.empty(E, dtype=torch.float32, device=meta)
    rows = []
    for max_tokens in MAX_TOKENS:
        os.environ["VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE"] = str(max_tokens)
        for hidden, inter, topk in CASES:
            m = 4 * topk  # tokens x top-k rows of this call: the scale tensor does not depend on it
            a = torch.empty(m, hidden, dtype=torch.bfloat16, device=meta)
            c1 = torch.empty(m, 2 * inter, dtype=torch.bfloat16, device=meta)
            c2 = torch.empty(m, inter, dtype=torch.bfloat16, device=meta)
            got = {
                "nvfp4_input": ops.scaled_fp4_experts_quant(a, gs, off, off, topk)[1],
                "nvfp4_down_silu": ops.silu_and_mul_scaled_fp4_experts_quant(c1, gs, off, off, topk)[1],
                "nvfp4_down_other": ops.scaled_fp4_experts_quant(c2, gs, off, off, topk)[1],
                "mxfp4_input": ops.mxfp4_experts_quant(a, off, off, E, topk)[1],
                "mxfp4_down_silu": ops.silu_and_mul_mxfp4_experts_quant(c1, off, off, E, topk)[1],
            }
            rows.append({"max_tokens_per_expert": max_tokens, "hidden": hidden, "intermediate": inter,
                         "topk": topk, "scale_bytes": {k: t.numel() * t.element_size() for k, t in got.items()}})

    class Platform:  # current_platform as a CUDA GPU of the given capability
        def __init__(self, cc: str) -> None:
            major, minor = cc.split(".")
            self.cap = int(major) * 10 + int(minor)

        def is_cuda(self) -> bool:
            return True

        def is_device_capability_family(self, family: int) -> bool:
            return self.cap // 10 == family // 10

    devices = {}
    real = cutlass_moe.current_platform
    for cc in CCS:
        cutlass_moe.current_platform = Platform(cc)
        devices[cc] = bool(cutlass_moe.CutlassExpertsFp4._supports_current_device())
    cutlass_moe.current_platform = real
    kernel = [k.__name__ for k in backend_to_kernel_cls(map_nvfp4_backend("cutlass"))]
    json.dump({"release": vllm.__version__.split("+")[0], "produced_by": (
        "tools/vllm_fp4_moe_blockscale_oracle.py: vllm/_custom_ops.py scaled_fp4_experts_quant, "
        "silu_and_mul_scaled_fp4_experts_quant, mxfp4_experts_quant, silu_and_mul_mxfp4_experts_quant on meta "
        "tensors (kernels as no-ops); fused_moe/experts/cutlass_moe.py CutlassExpertsFp4._supports_current_device "
        "per compute capability; oracle/nvfp4.py backend_to_kernel_cls(map_nvfp4_backend('cutlass'))"),
        "cutlass_kernel": kernel, "cutlass_fp4_devices": devices, "cases": rows}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
