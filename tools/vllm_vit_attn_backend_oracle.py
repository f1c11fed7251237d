"""--mm-encoder-attn-backend judged by vLLM's own code on a CPU machine: tests/data/vllm_vit_attn_backend_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_vit_attn_backend_oracle.py \
        --out tests/data/vllm_vit_attn_backend_oracle_v0.34.0.json

Parsing: each value through vllm/config/multimodal.py MultiModalConfig(mm_encoder_attn_backend=...) (its
_validate_mm_encoder_attn_backend: XFORMERS refused, else AttentionBackendEnum[value.upper()]); the exception's type
and text are recorded. Selection: vllm/platforms/cuda.py CudaPlatform.get_vit_attn_backend (the device capability
answered as the case's, vllm/platforms/interface.py get_device_capability) and vllm/platforms/rocm.py
RocmPlatform.get_supported_vit_attn_backends for each backend given and for none (the default pick), per head size
and dtype (rocm.py reads the gfx arch at import: gfx942 is answered). The CUDA wheel's FlashAttention extensions are stood in for as tools/vllm_kv_layout_backend_oracle.py
does (the selection imports the backend classes and reads their supports_* methods only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

CAPS = [(7, 0), (7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)]
HEADS = [16, 64, 72, 80, 128, 96, 100, 512]
DTYPES = ["bfloat16", "float16", "float32"]
VALUES = ["FLASH_ATTN", "flash_attn", "TORCH_SDPA", "TRITON_ATTN", "FLASHINFER", "ROCM_AITER_FA", "FLASHMLA",
          "CPU_ATTN", "xformers", "XFORMERS", "auto", "FOO", "flash-attn"]


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import vllm_kv_layout_backend_oracle as kvo
    import vllm_oracle as vo

    vo.setup()
    kvo._stand_ins()
    import torch
    import vllm
    from vllm.config.multimodal import MultiModalConfig
    from vllm.platforms.cuda import CudaPlatform
    from vllm.platforms.interface import DeviceCapability
    import types

    # rocm.py reads the GPU's gfx arch at import (amdsmi, else torch.cuda): an MI300X's is answered
    torch.cuda.get_device_properties = lambda *a, **k: types.SimpleNamespace(gcnArchName="gfx942")  # type: ignore
    from vllm.platforms.rocm import RocmPlatform
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    parsing = {}
    for v in VALUES:
        try:
            parsing[v] = {"backend": MultiModalConfig(mm_encoder_attn_backend=v).mm_encoder_attn_backend.name}
        except BaseException as e:  # noqa: BLE001 (pydantic wraps the validator's error)
            parsing[v] = {"error": _err(e)}
    names = [e.name for e in AttentionBackendEnum]
    cuda: list[dict[str, Any]] = []
    for cc in CAPS:
        CudaPlatform.get_device_capability = classmethod(  # type: ignore[method-assign,assignment]
            lambda cls, device_id=0, cc=cc: DeviceCapability(*cc))
        row: dict[str, Any] = {"compute_capability": f"{cc[0]}.{cc[1]}",
                               "supported": [b.name for b in CudaPlatform.get_supported_vit_attn_backends()],
                               "default": {}, "given": {}}
        for h in HEADS:
            for dt in DTYPES:
                row["default"][f"{h}/{dt}"] = CudaPlatform.get_vit_attn_backend(h, getattr(torch, dt)).name
        for n in names:
            try:
                row["given"][n] = {"backend": CudaPlatform.get_vit_attn_backend(
                    80, torch.bfloat16, AttentionBackendEnum[n]).name}
            except AssertionError as e:
                row["given"][n] = {"error": _err(e)}
        cuda.append(row)
    rocm = {"supported": [b.name for b in RocmPlatform.get_supported_vit_attn_backends()], "given": {}}
    for n in names:
        try:
            rocm["given"][n] = {"backend": RocmPlatform.get_vit_attn_backend(80, torch.bfloat16,
                                                                             AttentionBackendEnum[n]).name}
        except AssertionError as e:
            rocm["given"][n] = {"error": _err(e)}
    doc = {"release": vllm.__version__.split("+")[0],
           "produced_by": "VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python "
                          "tools/vllm_vit_attn_backend_oracle.py --out tests/data/vllm_vit_attn_backend_oracle_v0.34.0.json",
           "method": " ".join(__doc__.split("\n\n")[2].split()), "enum_names": names, "parsing": parsing,
           "cuda": cuda, "rocm": rocm}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
