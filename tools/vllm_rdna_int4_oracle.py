"""vLLM's own RDNA W4A16 kernel choice and int4 weight layout on gfx11 / gfx12 GPUs, run on a CPU machine, as the
oracle for vramcalc/vllm/weights.py rdna_int4_pad_per_rank.

Same venv as tools/vllm_oracle.py (bash tools/vllm_oracle_venv.sh 0.34.0):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_rdna_int4_oracle.py \
        > tests/data/vllm_rdna_int4_oracle_v0.34.0.json

On ROCm, GPTQ (AutoGPTQLinearMethod) and compressed-tensors WNA16 layers choose a mixed-precision kernel from
vllm/model_executor/kernels/linear/__init__.py _POSSIBLE_KERNELS[ROCM]: RDNA3W4A16 (gfx1100 only), then
RDNAHybridW4A16 (gfx11 / gfx12), Triton, Conch, ExLlama. For each (group size, weight type, K) this records
RDNAHybridW4A16LinearKernel.can_implement with the platform reporting ROCm on a gfx11 GPU, and for each (N, K)
the storage bytes of vLLM's own pack_skinny_int4 (the layout process_weights_after_loading keeps) on a gfx1151
(Strix Halo) and on another gfx11 GPU, from a real CPU tensor of uint4 values. The platform is the only thing
stood in for."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

SHAPES = [(6144, 4096), (4096, 4096), (24576, 4096), (4096, 12288), (3072, 2560), (2560, 9728), (4608, 3584),
          (3584, 18944), (2048, 2048), (4096, 14336)]


def main() -> None:
    vllm_oracle.setup()
    import torch
    import vllm
    import vllm.model_executor.kernels.linear.mixed_precision.rdna_hybrid_w4a16 as hybrid
    from vllm.model_executor.kernels.linear.mixed_precision.MPLinearKernel import MPLinearLayerConfig
    from vllm.scalar_type import scalar_types

    arch = {"gfx": "gfx1151"}
    hybrid._on_gfx1x = lambda: arch["gfx"].startswith(("gfx11", "gfx12"))
    hybrid._on_gfx1151 = lambda: arch["gfx"] == "gfx1151"
    is_rocm = hybrid.current_platform.is_rocm
    hybrid.current_platform.is_rocm = lambda: True
    choices = []
    for gfx in ("gfx1151", "gfx1201", "gfx942"):
        arch["gfx"] = gfx
        for wtype in ("uint4b8", "uint4", "uint8b128"):
            for group in (32, 64, 128, 256, -1):
                for k in (4096, 2560, 4104):
                    cfg = MPLinearLayerConfig(full_weight_shape=(k, 4096), partition_weight_shape=(k, 4096),
                                              weight_type=getattr(scalar_types, wtype), act_type=torch.bfloat16,
                                              group_size=group if group > 0 else k, zero_points=wtype == "uint4")
                    ok, why = hybrid.RDNAHybridW4A16LinearKernel.can_implement(cfg)
                    choices.append({"gfx_arch": gfx, "weight_type": wtype, "group_size": group, "k": k,
                                    "rdna_hybrid": ok, "reason": why})
    hybrid.current_platform.is_rocm = is_rocm
    layouts = []
    for gfx in ("gfx1151", "gfx1100"):
        arch["gfx"] = gfx
        for n, k in SHAPES:
            unpacked = torch.randint(0, 16, (n, k), dtype=torch.int32)
            packed = hybrid.pack_skinny_int4(unpacked)
            layouts.append({"gfx_arch": gfx, "n": n, "k": k, "shape": list(packed.shape), "dtype": str(packed.dtype),
                            "storage_bytes": packed.untyped_storage().nbytes(), "checkpoint_bytes": n * k // 2})
    print(json.dumps({"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu): RDNAHybridW4A16LinearKernel.can_implement "
        "with the platform reporting ROCm and the GPU's arch, and pack_skinny_int4 on real CPU tensors "
        "(tools/vllm_rdna_int4_oracle.py)"), "choices": choices, "layouts": layouts}, indent=1))


if __name__ == "__main__":
    main()
