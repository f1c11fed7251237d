"""vLLM's own MXFP8 Linear weights (ModelOpt MXFP8, and MiniMax's quant_method mxfp8), run on a CPU machine, as
the oracle for vramcalc/quant.py's mxfp8 storage rule.

Same venv as tools/vllm_oracle.py (bash tools/vllm_oracle_venv.sh 0.33.0):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_mxfp8_oracle.py \
        > tests/data/vllm_mxfp8_oracle_v0.33.0.json

For each (out, in) it builds vLLM's ReplicatedLinear on the meta device with ModelOptMxFp8Config.from_config
(the MiniMax form, normalised by vLLM to ModelOpt's) and records every parameter's shape, dtype and bytes, as
KMxfp8Static.create_weights registers them (vllm/model_executor/layers/quantization/modelopt.py); the GEMM
kernel, which the CPU build lacks and which registers no parameter, is not chosen."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

SHAPES = [(4096, 4096), (1536, 7168), (11008, 4096), (256, 96), (151936, 1024)]


def main() -> None:
    vllm_oracle.setup()
    import torch
    import vllm
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.model_executor.layers.linear import ReplicatedLinear
    from vllm.model_executor.layers.quantization.modelopt import ModelOptMxFp8Config

    import vllm.model_executor.layers.quantization.modelopt as modelopt

    # the CPU build has no MXFP8 GEMM kernel; the kernel is chosen after the parameters are registered and does
    # not add any (ModelOptLinearMethod.create_weights), so a stand-in is chosen
    modelopt.select_linear_kernel = lambda *a, **k: None
    modelopt.expose_input_quant_key = lambda *a, **k: None
    cfg = VllmConfig()
    vllm_oracle._init_group(1, cfg)
    rows = []
    for form in ({"quant_method": "mxfp8", "ignored_layers": []},
                 {"quant_method": "modelopt", "quantization": {"quant_algo": "MXFP8", "kv_cache_quant_algo": None,
                                                   "exclude_modules": []}}):
        quant = ModelOptMxFp8Config.from_config(form)
        with set_current_vllm_config(cfg), torch.device("meta"):
            for out, inp in SHAPES:
                lin = ReplicatedLinear(inp, out, bias=False, quant_config=quant, params_dtype=torch.bfloat16,
                                       prefix="model.layers.0.mlp.down_proj")
                rows.append({"config": form, "out": out, "in": inp, "params": {
                    n: {"shape": list(p.shape), "dtype": str(p.dtype).removeprefix("torch."),
                        "bytes": p.numel() * p.element_size()} for n, p in lin.named_parameters()}})
    # the emulation kernel (ROCm below gfx950's MXFP8 linear kernel): parameters after process_weights_after_loading,
    # with VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD on (the default) and off, on real CPU tensors
    from vllm.model_executor.kernels.linear.mxfp8.emulation import EmulationMxfp8LinearKernel
    from vllm.model_executor.kernels.linear.mxfp8.Mxfp8LinearKernel import Mxfp8LinearLayerConfig
    import vllm.envs as envs

    quant = ModelOptMxFp8Config.from_config({"quant_method": "mxfp8", "ignored_layers": []})
    emulated = []
    for flag in ("1", "0"):
        os.environ["VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD"] = flag
        if hasattr(envs, "__getattr__") and hasattr(envs, "disable_envs_cache"):
            envs.disable_envs_cache()
        for out, inp in SHAPES[:4]:
            modelopt.select_linear_kernel = \
                lambda *a, **k: EmulationMxfp8LinearKernel(Mxfp8LinearLayerConfig(weight_shape=(out, inp)))
            with set_current_vllm_config(cfg):
                lin = ReplicatedLinear(inp, out, bias=False, quant_config=quant, params_dtype=torch.bfloat16,
                                       prefix="model.layers.0.mlp.down_proj")
                lin.quant_method.process_weights_after_loading(lin)
            emulated.append({"VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD": flag, "out": out, "in": inp, "params": {
                n: {"shape": list(p.shape), "dtype": str(p.dtype).removeprefix("torch."),
                    "bytes": p.numel() * p.element_size()} for n, p in lin.named_parameters()}})
    print(json.dumps({"release": vllm.__version__, "emulated": emulated, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), ReplicatedLinear built on the meta device "
        "with ModelOptMxFp8Config.from_config of each config form: its registered parameters "
        "(tools/vllm_mxfp8_oracle.py); emulated: the same layer on CPU tensors after EmulationMxfp8LinearKernel's "
        "process_weights_after_loading, under VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=1 (the default) and 0"),
        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
