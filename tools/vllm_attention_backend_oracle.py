"""--attention-backend on NVIDIA GPUs, judged by vLLM's own selector on a CPU machine:
tests/data/vllm_attention_backend_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_attention_backend_oracle.py \
        --out tests/data/vllm_attention_backend_oracle_v0.33.0.json

Per case (backend, compute capability, head size, KV cache dtype): vllm/platforms/cuda.py
CudaPlatform.get_attn_backend_cls with that backend selected, the device capability answered as the case's (the
one call that reads the GPU), and the AttentionSelectorConfig of a decoder layer in bfloat16: the backend path it
returns, or its refusal in its words. Left out: FLASHINFER (its package is not on the CPU machine: the selector
would refuse it with an ImportError) and an fp8 KV cache on SM 9.0 / 10.0 with FLASH_ATTN (the FlashAttention
version is read from the CUDA build, which the CPU wheel lacks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

CASES: list[tuple[str, tuple[int, int], int, str]] = [
    ("FLASH_ATTN", (8, 0), 128, "auto"), ("FLASH_ATTN", (8, 6), 128, "auto"), ("FLASH_ATTN", (7, 5), 128, "auto"),
    ("FLASH_ATTN", (7, 0), 128, "auto"), ("FLASH_ATTN", (8, 9), 256, "auto"), ("FLASH_ATTN", (8, 6), 512, "auto"),
    ("FLASH_ATTN", (8, 6), 128, "fp8"), ("FLASH_ATTN", (8, 9), 128, "fp8"), ("FLASH_ATTN", (12, 0), 128, "fp8"),
    ("FLASH_ATTN", (9, 0), 128, "auto"), ("FLASH_ATTN", (12, 0), 128, "auto"),
    ("TRITON_ATTN", (7, 5), 128, "auto"), ("TRITON_ATTN", (8, 6), 128, "fp8"), ("TRITON_ATTN", (9, 0), 256, "auto"),
    ("TRITON_ATTN", (8, 9), 512, "auto"), ("TRITON_ATTN", (12, 0), 64, "fp8"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import types

    import torch
    import vllm

    # the CUDA platform module loads the CUDA kernels' library at import, which needs libcuda; its selector does not
    sys.modules.setdefault("vllm._C_stable_libtorch", types.ModuleType("vllm._C_stable_libtorch"))
    from vllm.platforms.cuda import CudaPlatform
    from vllm.platforms.interface import DeviceCapability
    from vllm.v1.attention.backends.registry import AttentionBackendEnum
    from vllm.v1.attention.selector import AttentionSelectorConfig

    rows: list[dict[str, Any]] = []
    for name, cc, head, kv in CASES:
        CudaPlatform.get_device_capability = classmethod(lambda cls, device_id=0, cc=cc: DeviceCapability(*cc))
        sel = AttentionSelectorConfig(head_size=head, dtype=torch.bfloat16, kv_cache_dtype=kv, block_size=None,
                                      use_mla=False, has_sink=False, use_sparse=False, use_mm_prefix=False,
                                      use_per_head_quant_scales=False, attn_type="decoder")
        row: dict[str, Any] = {"backend": name, "compute_capability": f"{cc[0]}.{cc[1]}", "head_size": head,
                               "kv_cache_dtype": kv}
        try:
            row["path"] = CudaPlatform.get_attn_backend_cls(AttentionBackendEnum[name], sel)
        except Exception as e:
            row["error"] = vo.refusal_text(e, 400)
        rows.append(row)
    doc = {"release": vllm.__version__, "cases": rows, "produced_by": (
        f"vLLM {vllm.__version__} wheel: CudaPlatform.get_attn_backend_cls with the backend selected and the "
        "device capability of the case; run on CPU: VLLM_TARGET_DEVICE=cpu python "
        "tools/vllm_attention_backend_oracle.py")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
