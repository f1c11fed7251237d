"""VLLM_FP8_MOE_REQUANT=mxfp4 (ROCm): a block-FP8 checkpoint's routed experts re-quantized to MXFP4 at load, run
with vLLM 0.34.0's own classes on a CPU machine, as the oracle for vramcalc/vllm/weights.py fp8_moe_requant_per_rank.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_fp8_moe_requant_oracle.py \
        > tests/data/vllm_fp8_moe_requant_oracle_v0.34.0.json

One process per case (vLLM reads the variables once). For each case it builds vLLM's own MoE layer (FusedMoEFactory,
vllm/model_executor/layers/fused_moe/layer.py) with an Fp8Config of 128 x 128 blocks under
VLLM_FP8_MOE_REQUANT=mxfp4 and VLLM_FP8_MOE_REQUANT_ACT, the platform reporting ROCm with the GPU's arch, aiter found
and VLLM_ROCM_USE_AITER as the case sets it. Fp8Config.get_quant_method picks the method, Mxfp4OnlineMoEMethod the
MXFP4 MoE backend (fused_moe/oracle/mxfp4.py select_mxfp4_moe_backend); a refusal is recorded in vLLM's words. Then
every expert's checkpoint tensors (FP8 values, float32 block scales, real CPU tensors) go through the parameters'
own weight loaders, whose layerwise online-processing wrapper (model_loader/reload/layerwise.py) materializes the
layer and runs Fp8BlockExpertsAsMxfp4FusedMoE.process_weights_after_loading once the layer is loaded; the storage of
every parameter, buffer and tensor attribute left on the layer is recorded (each storage once).

Stand-ins, none of which sets a size: the platform answers (is_rocm, on_gfx950 / on_gfx942 / on_gfx1250,
get_cdna_version) and torch.accelerator.empty_cache (no accelerator); mxfp4_quantize, whose GPU kernels do not run
on a CPU, returns uint8 tensors of the shapes its docstring states ([n, k / 2] values, [n, k / 32] e8m0 scales),
which vLLM's _requant checks by writing them into the outputs it allocates itself; aiter's shuffles, not installed
here: shuffle_weight a permutation of the same shape (ROCm/aiter aiter/ops/shuffle.py shuffle_weight) and
e8m0_shuffle's padding as aiter writes it, a scale matrix [m, n] padded to [ceil(m / 256) x 256, ceil(n / 8) x 8]
(ROCm/aiter aiter/utility/fp4_utils.py e8m0_shuffle, whose permutation after it keeps the size; this padding is the
one size a stand-in carries); the
kernel's own post-load hook (fused_experts.keep_constants / process_weights_after_loading), which holds no weight of
its own, is skipped. Without VLLM_ROCM_USE_AITER the CPU build stops earlier, at Fp8MoEMethod's FP8 MoE backend (no
Triton CPU backend here): those rows are recorded as answered here and are not a ROCm GPU's answer."""

import json
import os
import subprocess
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# (name, experts, hidden, intermediate per partition)
SHAPES = [("small", 8, 512, 256), ("i384", 8, 512, 384), ("h384", 4, 384, 256), ("i128", 4, 512, 128),
          ("deepseek-v3-tp8", 4, 7168, 256)]
ACTS = ["a8w4", "a4w4", "a16w4"]
# every shape on gfx950 (MI350X / MI355X) with aiter's MoE on; the small one also without it and on gfx942 (MI300X)
CASES = [(s[0], a, "gfx950", "1") for s in SHAPES for a in ACTS] + \
    [("small", a, g, u) for a in ACTS for g, u in (("gfx950", "0"), ("gfx942", "1"))]


def _pad_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def run_case(shape: str, act: str, gfx: str, aiter: str) -> dict:
    os.environ["VLLM_FP8_MOE_REQUANT"] = "mxfp4"
    os.environ["VLLM_FP8_MOE_REQUANT_ACT"] = act
    os.environ["VLLM_ROCM_USE_AITER"] = aiter
    import vllm_oracle

    vllm_oracle.setup()
    import torch
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.platforms import current_platform as plat

    cfg = VllmConfig()
    vllm_oracle._init_group(1, cfg)
    rocm = types.ModuleType("vllm.platforms.rocm")
    rocm.on_gfx950 = lambda: gfx == "gfx950"  # type: ignore[attr-defined]
    rocm.on_gfx942 = lambda: gfx == "gfx942"  # type: ignore[attr-defined]
    rocm.on_gfx1250 = lambda: False  # type: ignore[attr-defined]
    rocm.on_mi3xx = lambda: True  # type: ignore[attr-defined]
    rocm.get_cdna_version = lambda: {"gfx950": 4, "gfx942": 3}[gfx]  # type: ignore[attr-defined]
    rocm.__getattr__ = lambda name: (lambda: False) if name.startswith("on_") else None  # type: ignore[attr-defined]
    sys.modules["vllm.platforms.rocm"] = rocm
    for n, f in {"is_cpu": lambda: False, "is_xpu": lambda: False, "is_rocm": lambda: True,
                 "is_cuda": lambda: False}.items():
        setattr(plat, n, f)
    import vllm._aiter_ops as ao

    ao.IS_AITER_FOUND = True
    ao.rocm_aiter_ops._AITER_ENABLED = aiter == "1"
    ao.rocm_aiter_ops._FMOE_ENABLED = True

    # aiter stand-ins
    def shuffle_weight(x, layout=(16, 16), **kw):
        return x.clone()

    def e8m0_shuffle(scale):
        m, n = scale.shape
        out = torch.zeros(_pad_up(m, 256), _pad_up(n, 8), dtype=scale.dtype)
        out[:m, :n] = scale
        return out


    import vllm.model_executor.layers.quantization.online.fp8_requant as rq

    def mxfp4_quantize(x):
        n, k = x.shape
        return torch.zeros(n, k // 2, dtype=torch.uint8), torch.zeros(n, k // 32, dtype=torch.uint8)

    rq.mxfp4_quantize = mxfp4_quantize
    torch.accelerator.empty_cache = lambda: None  # no accelerator here
    from vllm.model_executor.layers.fused_moe.layer import FusedMoEFactory
    from vllm.model_executor.layers.quantization.fp8 import Fp8Config
    import vllm.model_executor.model_loader.reload.layerwise  # noqa: F401  (before the aiter stand-ins)
    for mod, attrs in {"aiter": {}, "aiter.ops": {}, "aiter.ops.shuffle": {"shuffle_weight": shuffle_weight},
                       "aiter.utility": {}, "aiter.utility.fp4_utils": {"e8m0_shuffle": e8m0_shuffle}}.items():
        m = types.ModuleType(mod)
        for k, v in attrs.items():
            setattr(m, k, v)
        sys.modules[mod] = m
    _, e, h, i = next(s for s in SHAPES if s[0] == shape)
    row: dict = {"case": shape, "act": act, "gfx_arch": gfx, "VLLM_ROCM_USE_AITER": aiter, "experts": e,
                 "hidden": h, "intermediate_per_partition": i}
    import vllm.model_executor.layers.quantization.online.mxfp4 as om

    chosen: list = []
    select = om.select_mxfp4_moe_backend

    def recording_select(*a, **k):  # the backend vLLM picks, kept for a refusal that follows it
        out = select(*a, **k)
        chosen.append(out[0].value)
        return out

    om.select_mxfp4_moe_backend = recording_select
    qc = Fp8Config(is_checkpoint_fp8_serialized=True, activation_scheme="dynamic", weight_block_size=[128, 128])
    with set_current_vllm_config(cfg):
        try:
            runner = FusedMoEFactory(num_experts=e, top_k=2, hidden_size=h, intermediate_size=i,
                                     params_dtype=torch.bfloat16, quant_config=qc, prefix="model.layers.0.mlp.experts")
        except (ValueError, NotImplementedError) as err:
            row["error"] = f"{type(err).__name__}: {err}"
            row["backend"] = chosen[-1] if chosen else None
            return row
        layer = runner.routed_experts
        qm = layer.quant_method
        row["method"] = type(qm).__name__
        row["backend"] = qm.mxfp4_backend.value
        row["fp8_params"] = {n: {"shape": list(p.shape), "dtype": str(p.dtype).replace("torch.", ""),
                                 "bytes": p.numel() * p.element_size()} for n, p in layer.named_parameters()}
        # the kernel's own post-load hook needs the GPU kernels; it holds no weight
        made = []

        def no_kernel(*a, **k):
            made.append(1)
            return types.SimpleNamespace(fused_experts=types.SimpleNamespace(
                keep_constants=lambda layer: None, process_weights_after_loading=lambda layer: None))

        om.make_mxfp4_moe_kernel = no_kernel
        for ex in range(e):
            for name, shard, rows, cols in (("w13_weight", "w1", i, h), ("w13_weight", "w3", i, h),
                                            ("w2_weight", "w2", h, i)):
                w = torch.zeros(rows, cols, dtype=torch.float8_e4m3fn)
                s = torch.ones((rows + 127) // 128, (cols + 127) // 128, dtype=torch.float32)
                for pname, t in ((name, w), (name + "_scale_inv", s)):
                    p = getattr(layer, pname)
                    try:
                        p.weight_loader(p, t, f"experts.{ex}.{shard}.{pname}", shard_id=shard, expert_id=ex)
                    except (ValueError, NotImplementedError) as err:
                        row["error"] = f"{type(err).__name__}: {err}"
                        return row
        if not getattr(layer, "_already_called_process_weights_after_loading", False):
            row["error"] = "layer not processed"
            return row
        seen, held = set(), {}
        tensors = dict(layer.named_parameters())
        tensors.update(dict(layer.named_buffers()))
        tensors.update({k: v for k, v in vars(layer).items() if isinstance(v, torch.Tensor)})
        for n, t in tensors.items():
            st = t.untyped_storage()
            key = st.data_ptr()
            entry = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
            if key not in seen:
                seen.add(key)
                entry["storage_bytes"] = st.nbytes()
            held[n] = entry
        row["mxfp4_tensors"] = held
        row["mxfp4_bytes"] = sum(v.get("storage_bytes", 0) for v in held.values())
        return row


def main() -> None:
    if "--case" in sys.argv:
        a = sys.argv[sys.argv.index("--case") + 1].split(",")
        print(json.dumps(run_case(*a)))
        return
    import vllm

    rows = []
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", ",".join(case)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), tools/vllm_fp8_moe_requant_oracle.py: "
        "FusedMoEFactory with Fp8Config(weight_block_size=[128, 128]) under VLLM_FP8_MOE_REQUANT=mxfp4, the platform "
        "reporting ROCm and the GPU's arch, aiter found; each expert's FP8 checkpoint tensors through the "
        "parameters' own loaders and the layerwise online processing; fp8_params: what create_weights registers, "
        "mxfp4_tensors / mxfp4_bytes: the storage left after process_weights_after_loading; stand-ins for the "
        "platform, mxfp4_quantize's kernel and aiter's shuffles as the module docstring states. The rows without "
        "VLLM_ROCM_USE_AITER stop at Fp8MoEMethod's FP8 MoE backend choice, whose Triton kernels this CPU build "
        "lacks: they are this machine's answer, not a ROCm GPU's"), "rows": rows},
        indent=1))


if __name__ == "__main__":
    main()
