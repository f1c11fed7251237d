"""--enable-return-routed-experts / --aux-output-config, planned by vLLM's own code on a CPU machine:
tests/data/vllm_aux_output_oracle_v0.33.0.json.

    for tp in 1 2 8; do VLLM_TARGET_DEVICE=cpu VLLM_USE_V2_MODEL_RUNNER=1 /work/venvs/vllm-0.33.0/bin/python \
        tools/vllm_aux_output_oracle.py --tp $tp --out tests/data/vllm_aux_output_oracle_v0.33.0.json; done

VLLM_USE_V2_MODEL_RUNNER=1: on CUDA the V2 model runner is the default (vllm/config/vllm.py
VllmConfig.use_v2_model_runner); the CPU wheel without Triton would take V1, which the routed-experts output refuses.

Per case: the config is built as `vllm serve` builds it (EngineArgs.create_engine_config, which runs
VllmConfig._verify_aux_output_compatibility: its refusal is recorded in its words), the model on the meta device and
its KV cache planned at each budget (tools/vllm_oracle.py), then vLLM's own AuxOutputWorkerConnector is built on that
plan (vllm/distributed/aux_output_connector/worker.py, as GPUModelRunner.initialize_kv_cache builds it after the KV
cache): the device buffer of its RoutedExpertsCapturer (int32, max_num_batched_tokens x layers x top-k) and the host
arena of its BlockObjectStore (num_slots x object_nbytes, an anonymous mmap).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

GIB = 2**30
# (catalog file stem, TP, EngineArgs fields)
CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("Qwen__Qwen3-30B-A3B", 1, {"enable_return_routed_experts": True}),
    ("Qwen__Qwen3-30B-A3B", 2, {"enable_return_routed_experts": True, "max_num_batched_tokens": 2048}),
    ("Qwen__Qwen3-30B-A3B", 1, {"aux_output_config": {"enable_return_routed_experts": True, "max_bytes": 2**28}}),
    ("mistralai__Mixtral-8x7B-Instruct-v0.1", 2, {"enable_return_routed_experts": True}),
    # (no MLA model: on the CPU platform vLLM turns prefix caching off for MLA, platforms/cpu.py
    # check_and_update_config, and the routed-experts output then refuses; CUDA keeps it on)
    ("openai__gpt-oss-20b", 1, {"enable_return_routed_experts": True, "max_num_seqs": 64}),
    # refusals (VllmConfig._verify_aux_output_compatibility)
    ("Qwen__Qwen3-8B", 1, {"enable_return_routed_experts": True}),
    ("Qwen__Qwen3-30B-A3B", 1, {"enable_return_routed_experts": True, "enable_prefix_caching": False}),
    ("Qwen__Qwen3-30B-A3B", 1, {"enable_return_routed_experts": True, "pipeline_parallel_size": 2,
                                "distributed_executor_backend": "mp"}),
    ("Qwen__Qwen3-30B-A3B", 8, {"enable_return_routed_experts": True, "decode_context_parallel_size": 2}),
    ("Qwen__Qwen3-30B-A3B", 1, {"aux_output_config": {"max_bytes": 2**28}}),
]


def _one(stem: str, tp: int, args: dict[str, Any], memories: list[float]) -> dict[str, Any]:
    from vllm.distributed.aux_output_connector.worker import get_aux_output_connector
    from vllm.v1.attention.backends.utils import resolve_kv_cache_layout
    from vllm.v1.core import kv_cache_planning as kp

    entry = json.load(open(os.path.join(vo.MODELS, stem + ".json")))
    config = vo._as_read(vo._catalog_config(entry["repo_id"]))
    config = {k: v for k, v in config.items() if k != "quantization_config"}  # the buffers do not read it
    row: dict[str, Any] = {"model": entry["repo_id"], "tp": tp, "engine_args": args}
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(copy.deepcopy(args))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, tp, "auto", None)
        row.update(max_num_batched_tokens=cfg.scheduler_config.max_num_batched_tokens,
                   max_num_seqs=cfg.scheduler_config.max_num_seqs, max_model_len=cfg.model_config.max_model_len,
                   aux_output_enabled=cfg.aux_output_config.enabled, max_bytes=cfg.aux_output_config.max_bytes)
        if not cfg.aux_output_config.enabled:
            return row
        model, _ = vo.meta_engine(cfg, tp)
        specs = vo._specs(cfg)
        row["max_concurrent_batches"] = cfg.max_concurrent_batches
        row["plans"] = []
        for gib in memories:
            s = {k: copy.copy(v) for k, v in specs.items()}
            with contextlib.suppress(Exception):  # as the engine core does first (tools/vllm_oracle.py)
                resolve_kv_cache_layout(cfg, [["LBNHC", "LBHNC"]], list(s.values()))
            groups = kp.get_global_kv_cache_groups(cfg, [s])
            kc = kp.get_kv_cache_configs(cfg, [s], [int(gib * GIB)], groups)[0]
            conn = get_aux_output_connector(model, cfg, kc)
            cap, store = conn._capturer, conn._store._store
            row["shape_per_token"] = list(cap.shape_per_token)
            row["output_dtype"] = cap.output_dtype_name
            row["device_buffer_bytes"] = cap.device_buffer.numel() * cap.device_buffer.element_size()
            buf = conn._buffer._rows
            row["plans"].append({"memory_bytes": int(gib * GIB), "num_blocks": kc.num_blocks,
                                 "host_store_bytes": store.num_slots * store.object_nbytes,
                                 "host_object_bytes": store.object_nbytes,
                                 "host_buffer_bytes": int(buf.nbytes)})
            conn.close()
        del model
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory-gib", nargs="*", type=float, default=[8.0, 24.0])
    ap.add_argument("--tp", type=int, default=1, help="the cases at this TP (the fake group is made once a process)")
    ap.add_argument("--out", required=True, help="JSON file to write (merged with what it holds)")
    a = ap.parse_args()
    vo.setup()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "unsupported": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: EngineArgs.create_engine_config with each case's fields as `vllm serve` "
        "parses the flags, the model built on the meta device and its KV cache planned "
        "(v1/core/kv_cache_planning.py get_kv_cache_configs, tools/vllm_oracle.py), then "
        "distributed/aux_output_connector/worker.py get_aux_output_connector on that plan; run on CPU: "
        "VLLM_TARGET_DEVICE=cpu VLLM_USE_V2_MODEL_RUNNER=1 python tools/vllm_aux_output_oracle.py --tp N")}
    vo.run_flag_cases(doc, a.out, CASES, a.tp, lambda stem, tp, args: _one(stem, tp, args, a.memory_gib),
                      skip_refused=True)


if __name__ == "__main__":
    main()
