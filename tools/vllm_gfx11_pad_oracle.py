"""vLLM's own load-time row-stride pad of unquantized linear weights on gfx11 (RDNA3 / RDNA3.5: RX 7900, Strix
Halo), run on a CPU machine, as the oracle for vramcalc/vllm/weights.py gfx11_row_pad_per_rank.

Same venv as tools/vllm_oracle.py (bash tools/vllm_oracle_venv.sh 0.34.0):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_gfx11_pad_oracle.py \
        > tests/data/vllm_gfx11_pad_oracle_v0.34.0.json

vLLM 0.33.0 and later: UnquantizedLinearMethod.process_weights_after_loading (vllm/model_executor/layers/linear.py)
calls maybe_pad_weight_avoid_cache_aliasing (vllm/model_executor/layers/utils.py) on ROCm. For each linear layer
shape of a few catalog models, at TP 1 and at rank 0 of TP 2, this builds vLLM's own linear class on real CPU tensors
(bf16), runs that method with the platform reporting ROCm and a gfx11 / gfx942 GPU, and records each weight's storage
bytes before and after. The platform is the only thing stood in for: the pad itself is vLLM's code."""

import json
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

# (model, hidden, q heads x head_dim, kv heads x head_dim, intermediate) of catalog models
MODELS = [("Qwen/Qwen3-8B", 4096, 32 * 128, 8 * 128, 12288),
          ("meta-llama/Llama-3.1-8B-Instruct", 4096, 32 * 128, 8 * 128, 14336),
          ("Qwen/Qwen3-4B", 2560, 32 * 128, 8 * 128, 9728),
          ("Qwen/Qwen2.5-7B-Instruct", 3584, 28 * 128, 4 * 128, 18944)]


def main() -> None:
    if "--tp" not in sys.argv:  # one process per TP degree (vLLM's groups are initialized once a process)
        import subprocess
        rows, head = [], {}
        for tp in (1, 2):
            out = subprocess.run([sys.executable, __file__, "--tp", str(tp)], check=True, capture_output=True,
                                 text=True).stdout
            head = json.loads(out)
            rows += head["rows"]
        print(json.dumps({**head, "rows": rows}, indent=1))
        return
    tp_only = int(sys.argv[sys.argv.index("--tp") + 1])
    vllm_oracle.setup()
    import torch
    import vllm
    from vllm.config import VllmConfig, set_current_vllm_config
    import vllm.model_executor.layers.linear as linear
    from vllm.model_executor.layers.linear import (MergedColumnParallelLinear, QKVParallelLinear,
                                                   RowParallelLinear)

    rocm = types.ModuleType("vllm.platforms.rocm")
    arch = {"gfx": "gfx1151"}
    rocm.on_gfx11 = lambda: arch["gfx"].startswith("gfx11")  # type: ignore[attr-defined]
    plat = linear.current_platform
    as_cpu = {n: getattr(plat, n) for n in ("is_cpu", "is_xpu", "is_rocm")}
    as_rocm = {"is_cpu": lambda: False, "is_xpu": lambda: False, "is_rocm": lambda: True}

    rows = []
    for tp in (tp_only,):
        cfg = VllmConfig()
        vllm_oracle._init_group(tp, cfg)
        with set_current_vllm_config(cfg):
            for model, h, q, kv, inter in MODELS:
                layers = {
                    "qkv_proj": lambda: QKVParallelLinear(h, 128, q // 128, kv // 128, bias=False,
                                                          params_dtype=torch.bfloat16),
                    "o_proj": lambda: RowParallelLinear(q, h, bias=False, params_dtype=torch.bfloat16),
                    "gate_up_proj": lambda: MergedColumnParallelLinear(h, [inter, inter], bias=False,
                                                                       params_dtype=torch.bfloat16),
                    "down_proj": lambda: RowParallelLinear(inter, h, bias=False, params_dtype=torch.bfloat16),
                }
                for name, make in layers.items():
                    for gfx in ("gfx1151", "gfx1100", "gfx942"):
                        arch["gfx"] = gfx
                        lin = make()
                        before = lin.weight.untyped_storage().nbytes()
                        real = sys.modules.get("vllm.platforms.rocm")
                        sys.modules["vllm.platforms.rocm"] = rocm  # read by the pad at call time
                        for n, f in as_rocm.items():
                            setattr(plat, n, f)
                        try:
                            lin.quant_method.process_weights_after_loading(lin)
                        finally:
                            for n, f in as_cpu.items():
                                setattr(plat, n, f)
                            if real is None:
                                del sys.modules["vllm.platforms.rocm"]
                            else:
                                sys.modules["vllm.platforms.rocm"] = real
                        rows.append({"model": model, "layer": name, "tp": tp, "gfx_arch": gfx,
                                     "shape": list(lin.weight.shape), "dtype": "bfloat16",
                                     "storage_bytes_before": before,
                                     "storage_bytes_after": lin.weight.untyped_storage().nbytes()})
                        del lin
    print(json.dumps({"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu): QKVParallelLinear / "
        "MergedColumnParallelLinear / RowParallelLinear built on CPU tensors (bf16) at TP 1 and rank 0 of TP 2, then "
        "UnquantizedLinearMethod.process_weights_after_loading with the platform reporting ROCm and the GPU's arch "
        "(tools/vllm_gfx11_pad_oracle.py): each weight's storage bytes before and after"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
