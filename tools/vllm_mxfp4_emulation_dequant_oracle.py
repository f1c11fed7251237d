"""VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD on a compressed-tensors MXFP4 checkpoint's linear layers, run with vLLM
0.34.0's own classes on a CPU machine, as the oracle for vramcalc/vllm/weights.py mxfp4_emulation_dequant_per_rank:
tests/data/vllm_mxfp4_emulation_dequant_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_mxfp4_emulation_dequant_oracle.py \
        > tests/data/vllm_mxfp4_emulation_dequant_oracle_v0.34.0.json

One process per value of the variable (vllm.envs reads it once). For each shape it builds vLLM's ReplicatedLinear on
real CPU tensors with CompressedTensorsConfig.from_config of an MXFP4 config (CompressedTensorsW4A4Mxfp4, its
create_weights), with vLLM's EmulationMxfp4LinearKernel as the layer's kernel (init_mxfp4_linear_kernel has no CPU
list; the emulation kernel is the one it reaches last on CUDA and ROCm,
vllm/model_executor/kernels/linear/__init__.py _POSSIBLE_MXFP4_KERNELS), then runs the scheme's
process_weights_after_loading and records each parameter's storage bytes before and after. The stand-ins:
can_implement's amd-quark check answered True, and dequant_mxfp4, whose kernel is amd-quark's, is vLLM's own fake
implementation (mxfp4_utils.py _dequant_mxfp4_fake: a [..., K] tensor of the float dtype), which sets the same shape
and dtype."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SHAPES = [(4096, 4096), (1536, 7168), (11008, 4096), (256, 96)]
MXFP4 = {"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32, "symmetric": True,
         "dynamic": False, "scale_dtype": "torch.uint8"}
CONFIG = {"quant_method": "compressed-tensors", "format": "mxfp4-pack-quantized", "ignore": ["lm_head"],
          "config_groups": {"group_0": {"targets": ["Linear"], "weights": MXFP4,
                                        "input_activations": {**MXFP4, "dynamic": True}}}}


def run(value: str) -> list:
    os.environ["VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD"] = value
    import vllm_oracle

    vllm_oracle.setup()
    import torch
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.model_executor.kernels.linear.mxfp4 import emulation
    from vllm.model_executor.kernels.linear.mxfp4.base import MxFp4LinearLayerConfig
    from vllm.model_executor.layers.linear import ReplicatedLinear
    from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import (
        CompressedTensorsConfig)
    import vllm.model_executor.layers.quantization.compressed_tensors.schemes.compressed_tensors_w4a4_mxfp4 as w4a4
    from vllm.model_executor.layers.quantization.utils import mxfp4_utils

    w4a4.init_mxfp4_linear_kernel = lambda activation_quant_key=None: emulation.EmulationMxfp4LinearKernel(
        MxFp4LinearLayerConfig(activation_quant_key=activation_quant_key))
    emulation.dequant_mxfp4 = mxfp4_utils._dequant_mxfp4_fake
    emulation.has_quark = lambda: True  # can_implement's package check (amd-quark is not installed here)
    CompressedTensorsConfig._check_scheme_supported = staticmethod(lambda *a, **k: True)
    cfg = VllmConfig()
    vllm_oracle._init_group(1, cfg)
    rows = []
    quant = CompressedTensorsConfig.from_config(CONFIG)
    with set_current_vllm_config(cfg):
        for out, inp in SHAPES:
            lin = ReplicatedLinear(inp, out, bias=False, quant_config=quant, params_dtype=torch.bfloat16,
                                   prefix="model.layers.0.mlp.down_proj")

            def held() -> dict:
                return {n: {"shape": list(p.shape), "dtype": str(p.dtype).removeprefix("torch."),
                            "storage_bytes": p.untyped_storage().nbytes()} for n, p in lin.named_parameters()}

            before = held()
            lin.scheme.process_weights_after_loading(lin)
            rows.append({"VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD": value, "out": out, "in": inp,
                         "scheme": type(lin.scheme).__name__, "kernel": type(lin.scheme.kernel).__name__,
                         "before": before, "after": held()})
    return rows


def main() -> None:
    if "--value" in sys.argv:
        print(json.dumps(run(sys.argv[sys.argv.index("--value") + 1])))
        return
    import vllm

    rows = []
    for value in ("0", "1"):
        out = subprocess.run([sys.executable, __file__, "--value", value], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps({"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), tools/vllm_mxfp4_emulation_dequant_oracle.py:"
        " ReplicatedLinear on CPU tensors with CompressedTensorsConfig.from_config of an MXFP4 config "
        "(CompressedTensorsW4A4Mxfp4) and EmulationMxfp4LinearKernel as its kernel, process_weights_after_loading "
        "with VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD 0 and 1; dequant_mxfp4 is vLLM's own fake implementation (its "
        "amd-quark kernel is not installed); each parameter's storage bytes before and after"), "config": CONFIG,
        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
