"""--monokernel on MiniMax-M3 as vLLM v0.34.0 refuses it, on a CPU machine: tests/data/vllm_monokernel_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_monokernel_oracle.py \
        --out tests/data/vllm_monokernel_oracle_v0.34.0.json

Two stages, each vLLM's own code:
- deployment: for each case, EngineArgs (the catalog's MiniMaxAI/MiniMax-M3 config, the case's serve flags,
  monokernel=True) -> create_engine_config, then vllm/models/minimax_m3/amd/specialized_decode/runtime/spec.py
  specialized_decode_config, which MiniMaxM3Model.__init__ calls: its ValueError text, or none;
- model state: runtime/guards.py model_refusals (called by runtime/decode.py SpecializedDecode, built by
  amd/model_state.py) on layers 3..59 standing in for the loaded bf16 ones (MiniMaxM3MoE's
  is_fused_shared_expert_enabled / use_aiter_moe_fse as set, unquantized experts: no mxfp4_backend), with the platform
  answered as ROCm and the GPU's CDNA version and compute units as given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import types
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

BASE = dict(tensor_parallel_size=4, kv_cache_dtype="fp8", block_size=128, moe_backend="aiter",
            attention_config={"indexer_kv_dtype": "fp8"})
# (name, EngineArgs fields over BASE; None drops a BASE field). Not here: DCP (MiniMax-M3's 4 KV heads refuse it at TP 4
# first), EPLB (CUDA / ROCm / XPU only in ParallelConfig), LoRA (MiniMax-M3 does not implement SupportsLoRA: refused
# first), DBO (not kept by the CPU platform's config)
CASES: list[tuple[str, dict[str, Any]]] = [
    ("accepted", {}),
    ("defaults_tp4", dict(kv_cache_dtype="auto", block_size=None, moe_backend="auto", attention_config=None)),
    ("defaults_tp8", dict(tensor_parallel_size=8, kv_cache_dtype="auto", block_size=None, moe_backend="auto",
                          attention_config=None)),
    ("tp8", dict(tensor_parallel_size=8)),
    ("tp2", dict(tensor_parallel_size=2)),
    ("pp2", dict(pipeline_parallel_size=2)),
    ("dp2", dict(data_parallel_size=2)),
    ("ep", dict(enable_expert_parallel=True)),
    ("kv_auto", dict(kv_cache_dtype="auto")),
    ("kv_fp8_e4m3", dict(kv_cache_dtype="fp8_e4m3")),
    ("kv_fp8_e5m2", dict(kv_cache_dtype="fp8_e5m2")),
    ("block64", dict(block_size=64)),
    ("block_default", dict(block_size=None)),
    ("kv_offload", dict(kv_offloading_size=8.0)),
    ("indexer_default", dict(attention_config=None)),
    ("indexer_bf16", dict(attention_config={"indexer_kv_dtype": "bf16"})),
    ("spec_ngram", dict(speculative_config={"method": "ngram", "num_speculative_tokens": 2,
                                            "prompt_lookup_max": 4})),
    ("cpu_offload", dict(cpu_offload_gb=4.0)),
    ("routed_experts", dict(enable_return_routed_experts=True)),
    ("moe_triton", dict(moe_backend="triton")),
    ("moe_auto", dict(moe_backend="auto")),
    ("all", dict(tensor_parallel_size=8, pipeline_parallel_size=2, enable_expert_parallel=True, kv_cache_dtype="auto",
                 block_size=64, attention_config=None, cpu_offload_gb=4.0,
                 speculative_config={"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 4},
                 moe_backend="auto")),
]
# serve-flag tails whose KernelConfig.monokernel is read back (EngineArgs.add_cli_args -> from_cli_args ->
# create_engine_config)
FLAG_TAILS = [["--monokernel"], ["--monokernel", "--no-monokernel"], ["--no-monokernel", "--monokernel"],
              ["--kernel-config", '{"monokernel": true}', "--no-monokernel"],
              ["--no-monokernel", "--kernel-config", '{"monokernel": true}'],
              ["--kernel-config", '{"monokernel": false}'], []]
# (gfx arch, compute units) of MI355X / MI350X, MI300X / MI325X
DEVICES = [("gfx950", 256), ("gfx942", 304)]


def _deployment(vo: Any, d: str, fields: dict[str, Any]) -> dict[str, Any]:
    from vllm.engine.arg_utils import EngineArgs
    from vllm.models.minimax_m3.amd.specialized_decode.runtime.spec import specialized_decode_config

    args = {**BASE, **fields}
    args = {k: v for k, v in args.items() if v is not None}
    args.setdefault("kv_cache_dtype", "auto")
    ea = dict(model=d, skip_tokenizer_init=True, load_format="dummy", max_model_len=65536,
              max_num_batched_tokens=8192, max_num_seqs=256, monokernel=True,
              distributed_executor_backend="mp", **args)
    cfg = EngineArgs(**ea).create_engine_config()
    try:
        specialized_decode_config(cfg)
        return {"refusal": None}
    except ValueError as e:
        return {"refusal": str(e)}


def _flag_tail(d: str, tail: list[str]) -> bool:
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
    ns = parser.parse_args(["--model", d, "--skip-tokenizer-init", "--load-format", "dummy", "--max-model-len",
                            "65536", "-tp", "4", "--distributed-executor-backend", "mp", *tail])
    return bool(EngineArgs.from_cli_args(ns).create_engine_config().kernel_config.monokernel)


def _layers(fse: bool, aiter_fse: bool) -> Any:
    ns = types.SimpleNamespace
    out = []
    for i in range(60):
        experts = ns(top_k=4, quant_method=ns())  # unquantized: UnquantizedFusedMoEMethod has no mxfp4_backend
        moe = ns(is_fused_shared_expert_enabled=fse, use_aiter_moe_fse=aiter_fse, experts=experts)
        out.append(ns(layer_id=i, is_moe_layer=i >= 3, self_attn=ns(indexer=object()), block_sparse_moe=moe))
    return ns(layers=out)


def _model_state(gfx: str, cus: int, fse: bool, aiter_fse: bool) -> str:
    import torch

    import vllm.platforms.rocm as rocm
    from vllm.models.minimax_m3.amd.specialized_decode.runtime import guards
    from vllm.models.minimax_m3.amd.specialized_decode.runtime.spec import DECODE_CONFIG

    plat = guards.current_platform
    saved = (plat.is_rocm, getattr(plat, "num_compute_units", None), rocm.get_cdna_version)
    try:
        plat.is_rocm = lambda: True  # type: ignore[method-assign]
        plat.num_compute_units = lambda _i: cus  # type: ignore[attr-defined]
        rocm.get_cdna_version = lambda: {"gfx950": 4, "gfx942": 3}.get(gfx)  # type: ignore[attr-defined]
        torch.accelerator.current_device_index = lambda: 0  # type: ignore[assignment]
        reasons = guards.model_refusals(_layers(fse, aiter_fse), DECODE_CONFIG)
    finally:
        plat.is_rocm, n, rocm.get_cdna_version = saved[0], saved[1], saved[2]  # type: ignore[method-assign]
        if n is not None:
            plat.num_compute_units = n  # type: ignore[attr-defined]
    # the text runtime/decode.py SpecializedDecode raises
    return "MiniMax-M3 specialized decode model unsupported: " + "; ".join(reasons)


def run() -> dict[str, Any]:
    import vllm_minimax_m3_oracle as m

    vo = m._prepare()
    m._rocm_class()
    import vllm

    entry = json.load(open(os.path.join(vo.MODELS, m.STEM + ".json")))
    config = vo._catalog_config(entry["repo_id"])
    deployment = []
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        for name, fields in CASES:
            args = {k: v for k, v in {**BASE, **fields}.items() if v is not None}
            try:
                row = _deployment(vo, d, fields)
            except Exception as e:  # noqa: BLE001  (a refusal before the model is built: not this stage's)
                row = {"config_error": f"{type(e).__name__}: {e}"}
            deployment.append({"case": name, "engine_args": args, **row})
        flags = [{"tail": tail, "monokernel": _flag_tail(d, tail)} for tail in FLAG_TAILS]
    model_state = []
    for gfx, cus in DEVICES:
        for fse, aiter_fse in ((False, False), (True, gfx == "gfx950")):
            model_state.append({"gfx_arch": gfx, "compute_units": cus, "is_fused_shared_expert_enabled": fse,
                                "use_aiter_moe_fse": aiter_fse, "refusal": _model_state(gfx, cus, fse, aiter_fse)})
    return {
        "release": vllm.__version__,
        "produced_by": "tools/vllm_monokernel_oracle.py (VLLM_TARGET_DEVICE=cpu: EngineArgs.create_engine_config -> "
                       "specialized_decode_config; guards.py model_refusals on stand-in bf16 layers)",
        "model": entry["repo_id"],
        "deployment": deployment,
        "flags": flags,
        "model_state": model_state,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = run()
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
