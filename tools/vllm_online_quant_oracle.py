"""vLLM's own online quantization (--quantization online --quantization-config JSON), run on a CPU machine, as the
oracle for the weight bytes vramcalc gives a --quantization-config spec (vramcalc/vllm/quant_config.py scheme).

Same venv as tools/vllm_oracle.py (bash tools/vllm_oracle_venv.sh 0.34.0):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_online_quant_oracle.py \
        > tests/data/vllm_online_quant_oracle_v0.34.0.json

For each catalog model (its config.json cut to one decoder layer: every layer of these models is alike), TP degree
and spec, this builds vLLM's own model class on real CPU tensors in bf16 (vllm/model_executor/model_loader/utils.py
initialize_model, with OnlineQuantizationConfig from vllm/model_executor/layers/quantization/online/base.py), fills
the weights with random values, runs vLLM's process_weights_after_loading on every module, and records each
parameter of decoder layer 0 (name, shape, dtype, bytes) before and after. Where the post-load step cannot run on
CPU (a CUDA-only op or kernel), the exception is recorded per module, which keeps what create_weights registered;
where no CPU kernel can be picked the model is not built and the exception is recorded. vLLM's per-tensor FP8 cast
(_custom_ops.scaled_fp8_quant, a CUDA op) is stood in for by the same cast in torch (fp8 values, the scale given),
and the per-tensor / per-channel FP8 methods get the GEMM kernel CUDA picks on SM 8.9+ (CutlassFP8ScaledMMLinearKernel,
whose post-load pad runs in torch) instead of the CPU one.
Each (model, TP) runs in its own process: vLLM's parallel groups are made once a process."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

MODELS = ["Qwen/Qwen3-0.6B", "Qwen/Qwen3-30B-A3B"]
BOTH = ["fp8_per_tensor_static", "fp8_per_block_static", "fp8_per_channel_static", "mxfp8", "mxfp4"]
MOE_ONLY = ["int8_per_channel_static", "nvfp4_per_token", "lut_b"]
SPECS = [{"linear": w, "moe": w} for w in BOTH] + [{"moe": w} for w in MOE_ONLY] + [
    {"linear": "fp8_per_channel_static", "moe": "fp8_per_block_static"},
    {"linear": "fp8_per_channel_static", "ignore": ["re:.*self_attn.*"]},
    # fused names (qkv_proj, gate_up_proj) and the router, as vLLM matches them (find_matching_patterns)
    {"linear": "fp8_per_tensor_static", "ignore": ["*.self_attn.qkv_proj", "re:.*mlp\\.gate$", "*.mlp.gate_up_proj"]},
    {"targets": {"re:.*mlp.*": "fp8_per_channel"}},
    {"linear": "fp8_per_channel_static", "_without_quantization": True},
    # refused as the model is built (online/base.py OnlineQuantizationConfig._get_method_cls)
    {"linear": "int8_per_channel_static"},
    {"moe": {"weight": "nvfp4_per_token"}},
    {"linear": {"weight": "fp8_per_channel_static", "hadamard_size": 32}},
    # an ignore list naming some shards of a fused module (compressed_tensors/utils.py should_ignore_layer)
    {"linear": "fp8_per_tensor_static", "ignore": ["re:.*q_proj"]},
]


def fp8_stand_ins(block_fp8: bool = False) -> None:
    """vLLM's CUDA FP8 quantize op and the FP8 GEMM kernel CUDA picks on SM 8.9 and later for the online methods
    (kernels/linear/__init__.py _POSSIBLE_FP8_KERNELS[CUDA]: FlashInfer takes per-tensor activations only, the online
    methods quantize them per token): CutlassFP8ScaledMMLinearKernel, whose post-load step (a pad of K and N to 16) is
    plain torch. block_fp8 False: block FP8 has its own kernels, not stood in for (refused)."""
    import torch
    from vllm import _custom_ops as ops
    import vllm.model_executor.layers.quantization.online.fp8 as online_fp8
    from vllm.model_executor.kernels.linear.scaled_mm.cutlass import CutlassFP8ScaledMMLinearKernel
    from vllm.model_executor.kernels.linear.scaled_mm.ScaledMMLinearKernel import FP8ScaledMMLinearLayerConfig

    def scaled_fp8_quant(x, scale=None, **_):  # the same output (fp8 values, the scale given; none: 1)
        if scale is None:
            scale = torch.ones(1, dtype=torch.float32, device=x.device)
        return (x.float() / scale).clamp(-448, 448).to(torch.float8_e4m3fn), scale

    ops.scaled_fp8_quant = scaled_fp8_quant

    def cutlass_kernel(activation_quant_key, weight_quant_key, input_dtype, out_dtype, weight_shape, **_):
        if not block_fp8 and activation_quant_key.scale.group_shape.is_per_group():
            raise ValueError("no stand-in for the block FP8 kernels")
        c = FP8ScaledMMLinearLayerConfig(weight_quant_key=weight_quant_key, activation_quant_key=activation_quant_key,
                                         input_dtype=input_dtype, out_dtype=out_dtype, weight_shape=weight_shape)
        return CutlassFP8ScaledMMLinearKernel(c, layer_param_names=["weight", "weight_scale", "input_scale",
                                                                     "input_scale_ub"])

    online_fp8.init_fp8_linear_kernel = cutlass_kernel
    CutlassFP8ScaledMMLinearKernel.is_supported = classmethod(lambda cls, cc=None: (True, None))  # CUDA SM 8.9+


def _params(model, layer: str) -> dict:
    return {n[len(layer):]: {"shape": list(p.shape), "dtype": str(p.dtype).removeprefix("torch."),
                             "bytes": p.numel() * p.element_size()}
            for n, p in model.named_parameters() if n.startswith(layer)}


def one(repo: str, tp: int) -> list:
    vllm_oracle.setup()
    import torch
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.utils import initialize_model

    fp8_stand_ins()

    config = dict(vllm_oracle._as_read(vllm_oracle._catalog_config(repo)), num_hidden_layers=1)
    rows = []
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    for spec in [dict(s) for s in SPECS]:
        if "moe" in spec and "linear" not in spec and "moe" not in config.get("model_type", "") and \
                not config.get("num_experts"):
            continue  # a MoE-only spec on a dense model quantizes nothing
        vllm_oracle.EXTRA_ARGS.clear()
        alone = spec.pop("_without_quantization", False)  # --quantization-config without --quantization online
        vllm_oracle.EXTRA_ARGS.update(quantization_config=spec, dtype="bfloat16", **({} if alone else
                                                                                       {"quantization": "online"}))
        row: dict = {"model": repo, "tp": tp, "quantization_config": spec, "quantization": None if alone else "online"}
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(config, f)
            try:
                cfg = vllm_oracle._config(d, tp, "auto", 4096)
                vllm_oracle._init_group(tp, cfg)
                vllm_oracle.cuda_like(cfg)
                with set_current_vllm_config(cfg):
                    model = initialize_model(vllm_config=cfg)
                    row["created"] = _params(model, "model.layers.0.")
                    row["methods"] = sorted({f"{n.removeprefix('model.layers.0.')}: {type(m.quant_method).__name__}"
                                             for n, m in model.named_modules() if n.startswith("model.layers.0.")
                                             and getattr(m, "quant_method", None) is not None})
                    with torch.no_grad():
                        for p in model.parameters():
                            if p.dtype.is_floating_point:
                                p.normal_(0, 0.02)
                    errors = {}
                    for n, m in model.named_modules():  # as process_weights_after_loading walks them, one by one
                        qm = getattr(m, "quant_method", None)
                        if qm is None or not n.startswith("model.layers.0.") or \
                                not hasattr(qm, "process_weights_after_loading"):
                            continue
                        try:
                            qm.process_weights_after_loading(m)
                        except Exception as e:  # a CUDA-only op: that module keeps what create_weights registered
                            errors[n.removeprefix("model.layers.0.")] = f"{type(e).__name__}: {str(e)[:200]}"
                    row["after_loading"] = _params(model, "model.layers.0.")
                    row["after_loading_errors"] = errors
                    del model
            except Exception as e:
                row["build_error"] = f"{type(e).__name__}: {str(e)[:400]}"
        rows.append(row)
        print(json.dumps({k: row.get(k) for k in ("quantization_config", "build_error", "after_loading_errors")}),
              file=sys.stderr)
    return rows


def main() -> None:
    if "--one" in sys.argv:
        i = sys.argv.index("--one")
        print(json.dumps(one(sys.argv[i + 1], int(sys.argv[i + 2]))))
        return
    import importlib.metadata as md

    rows = []
    for repo in MODELS:
        for tp in (1, 2):
            out = subprocess.run([sys.executable, __file__, "--one", repo, str(tp)], check=True,
                                 capture_output=True, text=True).stdout
            rows += json.loads(out.strip().splitlines()[-1])
    print(json.dumps({
        "release": md.version("vllm").split("+")[0],
        "produced_by": "tools/vllm_online_quant_oracle.py: vLLM's own model classes and online quantization methods "
                       "run on CPU (VLLM_TARGET_DEVICE=cpu), decoder layer 0 of each catalog model at rank 0",
        "_source": "vllm/model_executor/layers/quantization/online/*.py create_weights / "
                   "process_weights_after_loading; vllm/config/quantization.py QuantizationConfigArgs",
        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
