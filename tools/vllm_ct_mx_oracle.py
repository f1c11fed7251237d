"""vLLM's own compressed-tensors MX schemes (MXFP4 and MXFP8 weights), run on a CPU machine, as the oracle for
vramcalc/quant.py's reading of a compressed-tensors config whose weights are float 4-bit or float 8-bit in groups
of 32.

Same venv as tools/vllm_oracle.py (bash tools/vllm_oracle_venv.sh 0.34.0):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_ct_mx_oracle.py \
        > tests/data/vllm_ct_mx_oracle_v0.34.0.json

For each weight config it builds vLLM's ReplicatedLinear on the meta device with CompressedTensorsConfig.from_config
and records the scheme vLLM picks (CompressedTensorsConfig._get_scheme_from_parts), its get_min_capability, and
every registered parameter's shape, dtype and bytes (the scheme's create_weights). The GEMM kernel, which the CPU
build lacks and which registers no parameter, is not chosen (the schemes pick it in __init__ / create_weights)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

SHAPES = [(4096, 4096), (1536, 7168), (11008, 4096), (256, 96)]


def _config(weights: dict, inputs: dict | None, fmt: str) -> dict:
    return {"quant_method": "compressed-tensors", "format": fmt, "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights, "input_activations": inputs}}}


MXFP4 = {"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32, "symmetric": True,
         "dynamic": False, "scale_dtype": "torch.uint8"}
MXFP8 = {"num_bits": 8, "type": "float", "strategy": "group", "group_size": 32, "symmetric": True,
         "dynamic": False, "scale_dtype": "torch.uint8"}
NVFP4 = {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": True,
         "dynamic": False}
CASES = {
    "mxfp4 weight-only (mxfp4-pack-quantized)": _config(MXFP4, None, "mxfp4-pack-quantized"),
    "mxfp4 weights, mxfp4 activations": _config(MXFP4, {**MXFP4, "dynamic": True}, "mxfp4-pack-quantized"),
    "mxfp4 weights, fp8 per-token activations": _config(
        MXFP4, {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True, "dynamic": True},
        "mxfp4-pack-quantized"),
    "mxfp8 weights (float-quantized)": _config(MXFP8, {**MXFP8, "dynamic": True}, "float-quantized"),
    "nvfp4 weights (nvfp4-pack-quantized, A16)": _config(NVFP4, None, "nvfp4-pack-quantized"),
}


def main() -> None:
    vllm_oracle.setup()
    import torch
    import vllm
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.model_executor.layers.linear import ReplicatedLinear
    from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import (
        CompressedTensorsConfig)
    import vllm.model_executor.layers.quantization.compressed_tensors.schemes.compressed_tensors_w4a4_mxfp4 as w4a4
    import vllm.model_executor.layers.quantization.compressed_tensors.schemes.compressed_tensors_w8a8_mxfp8 as w8a8
    import vllm.model_executor.layers.quantization.compressed_tensors.schemes.compressed_tensors_w4a4_nvfp4 as nvfp4

    # no CPU kernel: a stand-in is chosen (the kernels register no parameter)
    w4a4.init_mxfp4_linear_kernel = lambda *a, **k: None
    w8a8.init_mxfp8_linear_kernel = lambda *a, **k: None
    for name in dir(nvfp4):
        if name.startswith("init_") and name.endswith("_kernel"):
            setattr(nvfp4, name, lambda *a, **k: None)
    nvfp4.expose_input_quant_key = lambda *a, **k: None
    CompressedTensorsConfig._check_scheme_supported = staticmethod(lambda *a, **k: True)
    cfg = VllmConfig()
    vllm_oracle._init_group(1, cfg)
    rows = []
    for label, qc in CASES.items():
        quant = CompressedTensorsConfig.from_config(qc)
        with set_current_vllm_config(cfg), torch.device("meta"):
            for out, inp in SHAPES:
                lin = ReplicatedLinear(inp, out, bias=False, quant_config=quant, params_dtype=torch.bfloat16,
                                       prefix="model.layers.0.mlp.down_proj")
                scheme = lin.scheme
                rows.append({"case": label, "config": qc, "out": out, "in": inp,
                             "scheme": type(scheme).__name__, "min_capability": scheme.get_min_capability(),
                             "params": {n: {"shape": list(p.shape), "dtype": str(p.dtype).removeprefix("torch."),
                                            "bytes": p.numel() * p.element_size()}
                                        for n, p in lin.named_parameters()}})
    print(json.dumps({"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), ReplicatedLinear built on the meta device "
        "with CompressedTensorsConfig.from_config of each config: the scheme vLLM picks, its get_min_capability "
        "and its registered parameters (tools/vllm_ct_mx_oracle.py)"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
