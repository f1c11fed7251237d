"""vLLM's own ROCm FP8 weight padding, run on a CPU machine, as the oracle for vramcalc/vllm/weights.py
rocm_fp8_padding_bytes.

On ROCm, vLLM pads each pre-quantized FP8 linear weight whose rows are a multiple of 512 bytes by 256 bytes a
row (v0.33.0 vllm/model_executor/layers/quantization/utils/fp8_utils.py _maybe_pad_fp8_weight, called by
process_fp8_weight_tensor_strategy and process_fp8_weight_block_strategy) and keeps the padded storage as the
parameter. For each catalog FP8 checkpoint and TP degree this builds vLLM's model class on the meta device (as
tools/vllm_oracle.py does; the checkpoint built unquantized, since the CPU build picks no FP8 kernel: a linear
weight's shape per rank is the same), asks vLLM's is_layer_skipped which linear layers the checkpoint's
quantization config leaves unquantized, and runs vLLM's own strategy function on a meta FP8 tensor of each
quantized weight's shape with the platform answered as ROCm; the figure is rank 0's storage bytes beyond the
weights' own.

    for tp in 1 2 4 8; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python \\
        tools/vllm_rocm_fp8_padding_oracle.py --tp $tp --out tests/data/vllm_rocm_fp8_padding_oracle.json; done
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
sys.path.insert(0, os.path.dirname(__file__))

import vllm_oracle as vo  # noqa: E402

CASES = [("Qwen__Qwen3-32B-FP8", (1, 2, 4, 8)), ("Qwen__Qwen3-30B-A3B-FP8", (1, 2, 4)),
         ("deepseek-ai__DeepSeek-V3", (8,)), ("MiniMaxAI__MiniMax-M2.5", (4,))]


def _padding(repo: str, config: dict[str, Any], tp: int) -> dict[str, Any]:
    import torch
    from vllm.model_executor.layers.linear import LinearBase
    from vllm.model_executor.layers.quantization.utils import fp8_utils
    from vllm.model_executor.model_loader.utils import initialize_model
    from vllm.platforms import current_platform

    import vllm.model_executor.layers.quantization.fp8 as fp8_method

    # the CPU build has no FP8 GEMM kernel to pick; the weights' shapes do not depend on it
    fp8_method.init_fp8_linear_kernel = lambda *a, **k: None  # type: ignore[attr-defined]
    qc = config["quantization_config"]
    block = bool(qc.get("weight_block_size"))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, tp, "auto", None)
        vo._init_group(tp, cfg)
        with vo.meta_models(cfg):
            model = initialize_model(vllm_config=cfg)
    cls = type(current_platform)
    was = cls.is_rocm, cls.is_fp8_fnuz
    cls.is_rocm = lambda self: True  # type: ignore[method-assign]
    cls.is_fp8_fnuz = lambda self: False  # type: ignore[method-assign]  # FNUZ only renormalizes values
    empty = torch.accelerator.empty_cache
    torch.accelerator.empty_cache = lambda: None  # no accelerator on this machine
    extra = quantized = 0
    try:
        for name, mod in model.named_modules():
            if not isinstance(mod, LinearBase) or getattr(mod, "weight", None) is None:
                continue
            if type(mod.quant_method).__name__ != "Fp8LinearMethod":  # vLLM's own choice per layer
                continue
            w = torch.empty(tuple(mod.weight.shape), dtype=torch.float8_e4m3fn, device="meta")
            if block:
                bn, bk = qc["weight_block_size"]
                scale = torch.empty((-(-w.shape[0] // bn), -(-w.shape[1] // bk)), device="meta")
                out, _ = fp8_utils.process_fp8_weight_block_strategy(w, scale)
            else:
                out = fp8_utils._maybe_pad_fp8_weight(w)
            extra += out.untyped_storage().nbytes() - w.numel()
            quantized += 1
    finally:
        cls.is_rocm, cls.is_fp8_fnuz = was  # type: ignore[method-assign]
        torch.accelerator.empty_cache = empty
    del model
    return {"model": repo, "tp": tp, "strategy": "block" if block else "tensor", "fp8_linear_layers_rank0": quantized,
            "padding_bytes_rank0": extra}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="JSON file to write (merged with the cases it holds)")
    ap.add_argument("--tp", type=int, default=1, help="one TP degree per process (the fake process group)")
    a = ap.parse_args()
    vo.setup()  # the CPU platform for a CUDA wheel
    import vllm

    cases = json.load(open(a.out))["cases"] if os.path.exists(a.out) else []
    for stem, tps in CASES:
        entry = json.load(open(os.path.join(vo.MODELS, stem + ".json")))
        if a.tp not in tps or any(c["model"] == entry["repo_id"] and c["tp"] == a.tp for c in cases):
            continue
        config = vo._as_read(vo._catalog_config(entry["repo_id"]))
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            cases.append(_padding(entry["repo_id"], config, a.tp))
        print(cases[-1], flush=True)
    doc = {"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on the CPU (VLLM_TARGET_DEVICE=cpu): the model class built on the meta device "
        "unquantized (tools/vllm_oracle.py), the linear layers the checkpoint's quantization config quantizes "
        "(quant_utils.is_layer_skipped with the model's packed_modules_mapping; fused MoE experts are padded "
        "by no FP8 path), each run through fp8_utils.process_fp8_weight_block_strategy (block checkpoints) or "
        "_maybe_pad_fp8_weight (per-tensor) on a meta float8 tensor of its rank-0 shape with current_platform."
        "is_rocm() answered True; padding_bytes_rank0 = the storage bytes beyond the weights' own "
        "(tools/vllm_rocm_fp8_padding_oracle.py)"), "cases": sorted(cases, key=lambda c: (c["model"], c["tp"]))}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
