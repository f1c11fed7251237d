"""vLLM's own MoE model classes under online FP8 quantization (`--quantization fp8`, which vLLM 0.34.0 turns into
OnlineQuantizationConfig(fp8_per_tensor) on an unquantized checkpoint: vllm/model_executor/model_loader/
weight_utils.py get_quant_config), as the oracle for which routers (the MoE gate linear) are quantized and for the
whole rank's weight bytes after loading.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_online_router_oracle.py \
        --out tests/data/vllm_online_router_oracle_v0.34.0.json [--only STEM...]

For each catalog model (its whole config) and TP degree this builds vLLM's model class on the meta device
(tools/vllm_oracle.py meta_engine), records the quant method vLLM attached to the router of the first MoE layer
(UnquantizedLinearMethod: the model built its gate without the quant config) and the router weight's dtype after
loading, then runs each module's process_weights_after_loading on the meta tensors (shape-only) with the same
stand-ins as tools/vllm_online_quant_oracle.py (the per-tensor FP8 cast in torch, the GEMM kernel CUDA picks on SM
8.9+), and sums the parameters' bytes of rank 0: weights_bytes_rank0 after loading, and the routed experts' share
(the online MoE methods' post-load steps run CUDA-only code: a module whose step fails keeps what create_weights
registered and is listed in after_loading_errors). Each (model, TP) runs in its own process."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle as vo  # noqa: E402
from vllm_online_quant_oracle import fp8_stand_ins  # noqa: E402

MODELS = ["Qwen__Qwen3-30B-A3B", "Qwen__Qwen3-VL-30B-A3B-Instruct", "mistralai__Mixtral-8x7B-v0.1",
          "deepseek-ai__DeepSeek-V2-Lite", "zai-org__GLM-4.5-Air", "MiniMaxAI__MiniMax-M2.5",
          "meta-llama__Llama-4-Scout-17B-16E-Instruct", "Qwen__Qwen3.5-35B-A3B", "Qwen__Qwen3-Next-80B-A3B-Thinking"]
TPS = (1, 2)
_ROUTER = ("mlp.gate", "block_sparse_moe.gate", "feed_forward.router", "mlp.router")


def one(stem: str, tp: int) -> dict[str, Any]:
    vo.setup()
    import torch
    from vllm.config import set_current_vllm_config

    fp8_stand_ins(block_fp8=True)
    entry = json.load(open(os.path.join(vo.MODELS, stem + ".json")))
    config = {k: v for k, v in vo._as_read(vo._catalog_config(entry["repo_id"])).items()
              if k != "quantization_config"}
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(quantization="fp8", dtype="bfloat16")
    row: dict[str, Any] = {"model": stem, "repo_id": entry["repo_id"], "model_type": config.get("model_type"),
                           "tp": tp, "quantization": "fp8"}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, tp, "auto", 4096)
        model, _ = vo.meta_engine(cfg, tp)
        row["quant_config"] = type(cfg.quant_config).__name__ if cfg.quant_config is not None else None
        row["weights_bytes_rank0_created"] = sum(p.numel() * p.element_size() for p in model.parameters())
        routers = [(n, m) for n, m in model.named_modules() if n.endswith(_ROUTER) and hasattr(m, "weight")
                   and getattr(m, "weight", None) is not None and m.weight.dim() == 2]
        errors: dict[str, str] = {}
        with set_current_vllm_config(cfg), torch.no_grad():
            for n, m in model.named_modules():
                qm = getattr(m, "quant_method", None)
                if qm is None or not hasattr(qm, "process_weights_after_loading"):
                    continue
                try:
                    qm.process_weights_after_loading(m)
                except Exception as e:  # a CUDA-only op: that module keeps what create_weights registered
                    errors[type(qm).__name__] = f"{type(e).__name__}: {str(e)[:200]}"
        if routers:
            n, m = routers[0]
            row["router"] = {"name": n, "class": type(m).__name__,
                             "quant_method": type(getattr(m, "quant_method", None)).__name__,
                             "weight_dtype": str(m.weight.dtype).removeprefix("torch."),
                             "shape": list(m.weight.shape),
                             "params": {k: [str(p.dtype).removeprefix("torch."), list(p.shape)]
                                        for k, p in m.named_parameters()}}
        row["routers"] = len(routers)
        row["router_bytes_rank0"] = sum(p.numel() * p.element_size() for _, m in routers for p in m.parameters())
        row["weights_bytes_rank0"] = sum(p.numel() * p.element_size() for p in model.parameters())
        row["methods"] = sorted({type(m.quant_method).__name__ for _, m in model.named_modules()
                                 if getattr(m, "quant_method", None) is not None})
        row["after_loading_errors"] = errors
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--one", nargs=2)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    if a.one:
        try:
            row = one(a.one[0], int(a.one[1]))
        except Exception as e:
            if os.environ.get("VLLM_ORACLE_DEBUG"):
                raise
            row = {"model": a.one[0], "tp": int(a.one[1]), "error": vo.refusal_text(e, 400)}
        print("ROW " + json.dumps(row))
        return
    import importlib.metadata as md

    old = json.load(open(a.out))["rows"] if a.out and os.path.exists(a.out) else []
    rows = []
    for stem in MODELS:
        for tp in TPS:
            prev = [r for r in old if r["model"] == stem and r["tp"] == tp]
            if prev and a.only is not None and stem not in a.only:
                rows.append(prev[0])
                continue
            env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR")
            p = subprocess.run([sys.executable, __file__, "--one", stem, str(tp)], env=env, capture_output=True,
                               text=True)
            lines = [x for x in p.stdout.splitlines() if x.startswith("ROW ")]
            row = json.loads(lines[-1][4:]) if lines else {
                "model": stem, "tp": tp, "error": (p.stderr.strip().splitlines() or ["?"])[-1][:400]}
            rows.append(row)
            print(stem, tp, row.get("error") or (row.get("router"), row["weights_bytes_rank0"]), file=sys.stderr)
    doc = {"release": md.version("vllm").split("+")[0],
           "produced_by": "tools/vllm_online_router_oracle.py: vLLM's own model classes with --quantization fp8 "
                          "(OnlineQuantizationConfig fp8_per_tensor) built on the meta device of a CPU machine "
                          "(VLLM_TARGET_DEVICE=cpu, tools/vllm_oracle.py meta_engine), each module's "
                          "process_weights_after_loading run on the meta tensors; rank 0's parameters",
           "_source": "vllm/model_executor/models/*.py (each MoE block's GateLinear / ReplicatedLinear router, with "
                      "or without quant_config); vllm/model_executor/layers/quantization/online/fp8.py",
           "rows": rows}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
