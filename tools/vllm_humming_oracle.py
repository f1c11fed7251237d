"""vLLM 0.34.0's Humming quantization method (--quantization humming, VLLM_HUMMING_ONLINE_QUANT_CONFIG,
VLLM_HUMMING_INPUT_QUANT_CONFIG) run on a CPU machine, as the oracle for the weight bytes vramcalc gives it
(vramcalc/vllm/humming.py) and for what vLLM refuses of those variables.

    VLLM_TARGET_DEVICE=cpu PYTHONPATH=HUMMING_SCHEMA_DIR /work/venvs/vllm-0.34.0/bin/python \
        tools/vllm_humming_oracle.py > tests/data/vllm_humming_oracle_v0.34.0.json

vLLM 0.34.0 requires the package humming-kernels 0.1.19 (vllm/utils/humming.py imports it lazily), which is not
installable here. HUMMING_SCHEMA_DIR holds a package `humming` whose schema modules are humming's own text,
copied unchanged from github.com/vllm-project/humming: humming/dtypes.py, humming/config/enum.py and
humming/schema/humming.py at commit 18c2fb143d9054822e68634b6666f9c8e149cbff, humming/schema/base.py at
a760e0ed84060ca99c7264274d45141dced06790 (the repository's package, which vLLM 0.34.0 imports symbols from that
github.com/mgoin/humming's 0.1.0a1 lacks: WeightScale2Type, InputQuantizationMode, humming.forward,
humming.transform). Around them: package files that only re-export (humming/__init__.py empty,
humming/config/__init__.py the enums, humming/schema/__init__.py the two humming schemas in WEIGHT_SCHEMA_MAP /
INPUT_SCHEMA_MAP: vLLM sets quant_method "humming" on both variables' configs itself), humming/utils/math.py
round_up, and humming/utils/weight.py whose quantize_weight / dequantize_weight (CUDA kernels, reached only when
weights load) raise. vLLM 0.34.0's HummingMoEMethod.__init__ and the post-load steps call
HummingInputSchema.is_compatible_with, which no stored humming source has: this oracle gives it `True` (the
activation schema then stays as given; it picks the MoE kernel class, not a weight shape) and reports the
CUDA device capability as 9.0 (H100), which check_and_fallback_input_schema reads.

For each catalog model (config.json cut to one decoder layer: the layers of these models are alike; DeepSeek-V2-Lite
to two, its dense first layer and a MoE one), TP degree and
case (the environment variables set), this builds vLLM's own model class with --quantization humming on real CPU
tensors in bf16 (vllm/model_executor/model_loader/utils.py initialize_model, HummingConfig from
vllm/model_executor/layers/quantization/humming.py) and records each parameter (name, shape, dtype, bytes) as
create_weights registered them at rank 0. The post-load step
(process_weights_after_loading: prepare_and_transform_humming_tensors, a CUDA JIT repack) cannot run here: for
each Humming module the oracle records instead humming's own BaseWeightSchema.get_padded_tensors_attrs at the
shapes vLLM hands prepare_and_transform_humming_tensors and its pad_n_to_multiple=256 / pad_k_to_multiple=128
(quantization/humming.py HummingLinearMethod.process_weights_after_loading, utils/humming/moe.py
_prepare_and_transform_sublayer), the shapes humming's transform.py check_and_pad_tensors pads each tensor to.
A case vLLM refuses records the exception as its message. Each case runs in its own process (vLLM reads the
variables through vllm/envs.py; its parallel groups are made once a process)."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

MODELS = ["Qwen/Qwen3-0.6B", "Qwen/Qwen3-30B-A3B"]
U4G128 = {"dtype": "uint4", "group_size": 128}
ONLINE = [  # VLLM_HUMMING_ONLINE_QUANT_CONFIG values sized
    U4G128,
    {"dtype": "int4", "group_size": 128, "has_zero_point": True},
    {"dtype": "uint3", "group_size": 64, "has_zero_point": True},
    {"dtype": "uint2", "group_size": 32, "has_zero_point": True, "is_fp_zero_point": True},
    {"dtype": "uint8"},
    {"weight_dtype": "float4e2m1", "group_size": 32, "scale_dtype": "float8e8m0"},
    {"dtype": "float4e2m1", "group_size": 16, "scale_dtype": "float8e4m3", "scale_2_type": "tensor"},
    {"dtype": "uint4", "group_size": 128, "scale_2_type": "channel"},
    {"dtype": "float8e4m3", "group_size": 128, "group_size_n": 128},
    {"dtype": "float8e4m3", "scale_type": "tensor"},
    {"dtype": "uint4", "group_size": 128, "ignore": ["self_attn"]},
    {"dtype": "uint4", "group_size": 128, "modules_to_not_convert": ["re:.*mlp\\.gate$"]},
    {"dtype": "uint4", "group_size": 128, "unknown_key": 1},
    {"dtype": "uint4", "group_size": 128, "ignore": ["re:.*mlp\\.experts$"]},  # the routed experts' layer name
    # per-layer overrides (+:, the first matching) and skips (-:) (utils/humming/schema.py resolve_humming_layer_config)
    {"dtype": "uint4", "group_size": 128,
     "dynamic": {"-:.*o_proj$": {}, "+:.*mlp\\.experts$": {"dtype": "uint8", "group_size": 0},
                 "+:.*mlp.*": {"dtype": "float8e4m3", "group_size": 128, "group_size_n": 128}}},
]
SIZED = [{"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps(c)} for c in ONLINE]
INPUT = [
    # the activation schema (VLLM_HUMMING_INPUT_QUANT_CONFIG) beside one weight schema
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps(U4G128), "VLLM_HUMMING_INPUT_QUANT_CONFIG": json.dumps(c)}
    for c in ({"dtype": "int8"}, {"dtype": "float8e4m3", "quant_mode": "static_tensor"},
              {"dtype": "int8", "group_size": 128, "quantization_mode": "static_tensor_dynamic_group"},
              {"dtype": "float8e4m3", "allow_fallback": True})
]
REFUSED = [  # refused (or not) as vLLM reads them
    {},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": '{"dtype": "uint4"'},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": "[1]"},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": "{}"},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"group_size": 128})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"dtype": "foo4"})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"dtype": "uint"})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"dtype": "floatx"})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"dtype": "uint4", "scale_type": "rowwise"})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"dtype": "uint4", "scale_2_type": "tensor"})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"dtype": "uint4", "has_zero_point": True})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps({"dtype": "uint4", "group_size": 128, "scale_dtype": "fp8"})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps(U4G128), "VLLM_HUMMING_INPUT_QUANT_CONFIG": "{bad"},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps(U4G128),
     "VLLM_HUMMING_INPUT_QUANT_CONFIG": json.dumps({"dtype": "int9x"})},
    {"VLLM_HUMMING_ONLINE_QUANT_CONFIG": json.dumps(U4G128),
     "VLLM_HUMMING_INPUT_QUANT_CONFIG": json.dumps({"dtype": "int8", "quant_mode": "weird"})},
]
CASES = SIZED + INPUT + REFUSED
# DeepSeek-V2-Lite cut to its dense first layer and one MoE layer (shared experts beside the routed ones), at TP 4:
# the dense layer's down_proj input partition (10944 / 4 = 2736) is not a multiple of 32, so online quant leaves it
# unquantized (HummingConfig.get_quant_method)
LAYERS = {"deepseek-ai/DeepSeek-V2-Lite": 2}


def _runs() -> list[tuple[str, int, int]]:
    """(model, TP, case): the sized schemas on each model at TP 1 and 2, the activation schemas at TP 1, the
    refusals on the dense model at TP 1 (vLLM reads the variables as it builds the first linear layer)."""
    out = [(m, tp, k) for m in MODELS for tp in (1, 2) for k in range(len(SIZED))]
    out += [(m, 1, len(SIZED) + k) for m in MODELS for k in range(len(INPUT))]
    out += [(MODELS[0], 1, len(SIZED) + len(INPUT) + k) for k in range(len(REFUSED))]
    return out + [("deepseek-ai/DeepSeek-V2-Lite", 4, k) for k in (0, 1)]


def _params(model, keep) -> dict:
    return {n: {"shape": list(p.shape), "dtype": str(p.dtype).removeprefix("torch."),
                "bytes": p.numel() * p.element_size()}
            for n, p in model.named_parameters() if keep(n)}


def one(repo: str, tp: int, case: dict) -> dict:
    vllm_oracle.setup()
    import torch
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.utils import initialize_model
    from vllm.platforms import current_platform
    from vllm.platforms.interface import DeviceCapability

    type(current_platform).get_device_capability = classmethod(lambda cls, device_id=0: DeviceCapability(9, 0))
    import humming.schema.humming as hs

    hs.HummingInputSchema.is_compatible_with = lambda self, weight_schema, param_dtype: True  # see the docstring
    from vllm.model_executor.layers.quantization.humming import HummingLinearMethod, HummingMoEMethod

    config = dict(vllm_oracle._as_read(vllm_oracle._catalog_config(repo)), num_hidden_layers=LAYERS.get(repo, 1))
    torch.set_default_dtype(torch.bfloat16)
    vllm_oracle.EXTRA_ARGS.clear()
    vllm_oracle.EXTRA_ARGS.update(quantization="humming", dtype="bfloat16")
    row: dict = {"model": repo, "tp": tp, "env": case}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vllm_oracle._config(d, tp, "auto", 4096)
        vllm_oracle._init_group(tp, cfg)
        vllm_oracle.cuda_like(cfg)
        with set_current_vllm_config(cfg):
            model = initialize_model(vllm_config=cfg)
        row["created"] = _params(model, lambda n: True)
        row["methods"] = {n: type(m.quant_method).__name__ for n, m in model.named_modules()
                          if getattr(m, "quant_method", None) is not None}
        padded = {}
        for n, m in model.named_modules():
            qm = getattr(m, "quant_method", None)
            if isinstance(qm, HummingLinearMethod):
                attrs = qm.weight_schema.get_padded_tensors_attrs(
                    shape_n=m.output_partition_sizes_sum, shape_k=m.input_size_per_partition,
                    param_dtype=m.param_dtype, has_bias=m.has_bias, pad_n_to_multiple=256, pad_k_to_multiple=128)
                attrs = {k: (v["shape"], v["dtype"]) for k, v in attrs.items()}
                static = qm.input_schema.get_tensors_attrs(shape_k=m.input_size_per_partition,
                                                           param_dtype=m.param_dtype)
                attrs.update({k: (v["shape"], v["dtype"]) for k, v in static.items()})
            elif isinstance(qm, HummingMoEMethod):
                attrs = {}
                for sub, c in m.sublayer_configs.items():
                    a = qm.weight_schema.get_padded_tensors_attrs(
                        shape_n=c["shape_n"], shape_k=c["shape_k"], param_dtype=m.param_dtype,
                        num_experts=m.num_experts, has_bias=qm.moe.has_bias, pad_n_to_multiple=256,
                        pad_k_to_multiple=128)
                    attrs.update({f"{sub}_{k}": (v["shape"], v["dtype"]) for k, v in a.items()})
            else:
                continue
            padded[n] = {k: {"shape": list(s), "dtype": str(t).removeprefix("torch."),
                             "bytes": torch.Size(s).numel() * torch.empty((), dtype=t).element_size()}
                         for k, (s, t) in attrs.items()}
        row["after_loading_padded"] = padded
    return row


def main() -> None:
    if "--case" in sys.argv:
        i = sys.argv.index("--case")
        repo, tp, k = sys.argv[i + 1], int(sys.argv[i + 2]), int(sys.argv[i + 3])
        vllm_oracle.print_case_row(lambda: one(repo, tp, CASES[k]))
        return
    import importlib.metadata as md

    rows = []
    for repo, tp, k in _runs():
        case = CASES[k]
        env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR")
        for name in ("VLLM_HUMMING_ONLINE_QUANT_CONFIG", "VLLM_HUMMING_INPUT_QUANT_CONFIG"):
            env.pop(name, None)
        env.update(case)
        p = subprocess.run([sys.executable, __file__, "--case", repo, str(tp), str(k)], env=env,
                           capture_output=True, text=True)
        lines = [x for x in p.stdout.splitlines() if x.startswith("ROW ")]
        row = json.loads(lines[-1][4:]) if lines else {
            "error": (p.stderr.strip().splitlines() or ["?"])[-1][:400]}
        row.setdefault("model", repo)
        row.setdefault("tp", tp)
        row.setdefault("env", case)
        print(json.dumps({k2: row.get(k2) for k2 in ("model", "tp", "env", "error")}), file=sys.stderr)
        rows.append(row)
    print(json.dumps({
        "release": md.version("vllm").split("+")[0],
        "humming_schema_source": "github.com/vllm-project/humming humming/dtypes.py, humming/config/enum.py, "
                                 "humming/schema/humming.py at 18c2fb143d9054822e68634b6666f9c8e149cbff; "
                                 "humming/schema/base.py at a760e0ed84060ca99c7264274d45141dced06790",
        "produced_by": "tools/vllm_humming_oracle.py: vLLM's own model classes and HummingConfig run on CPU "
                       "(VLLM_TARGET_DEVICE=cpu) with humming's own schema modules, every parameter of the cut "
                       "model at rank 0; after_loading_padded from humming's "
                       "get_padded_tensors_attrs at vLLM's pad multiples (the post-load CUDA repack not run)",
        "_source": "vllm/model_executor/layers/quantization/humming.py HummingConfig.get_quant_config_for_layer, "
                   "HummingLinearMethod / HummingMoEMethod create_weights and process_weights_after_loading; "
                   "vllm/envs.py maybe_convert_json_str_or_file",
        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
