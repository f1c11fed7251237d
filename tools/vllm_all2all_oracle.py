"""--all2all-backend and VLLM_DEEPEP_BUFFER_SIZE_MB, judged by vLLM's own code on a CPU machine:
tests/data/vllm_all2all_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_all2all_oracle.py \
        --out tests/data/vllm_all2all_oracle_v0.33.0.json

- "batched": EngineArgs.create_engine_config with the case's fields as `vllm serve` parses the flags
  (tools/vllm_oracle.py _config; no model is built): the max_num_batched_tokens the engine settles on, which
  ParallelConfig.use_batched_dp_moe (deepep_low_latency / nixl_ep, expert parallel, DP above 1) sets to
  SchedulerConfig.DEFAULT_MAX_NUM_BATCHED_TOKENS_FOR_BATCHED_DP.
- "deepep": the buffer sizes vllm/distributed/device_communicators/all2all.py hands deep_ep.Buffer
  (DeepEPHTAll2AllManager / DeepEPLLAll2AllManager._make_all2all_kwargs), called on a bare manager with the case's
  VLLM_DEEPEP_BUFFER_SIZE_MB and `internode` (whether the EP group spans machines). deep_ep itself is a CUDA package
  that is not installed: a stand-in module takes its place, and its get_low_latency_rdma_size_hint (DeepEP's C++
  LowLatencyLayout) returns a marker, so the low-latency RDMA size is not an oracle figure here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import types
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

BATCHED: list[dict[str, Any]] = [
    {"data_parallel_size": 2, "enable_expert_parallel": True, "all2all_backend": "deepep_low_latency"},
    {"data_parallel_size": 2, "enable_expert_parallel": True, "all2all_backend": "nixl_ep"},
    {"data_parallel_size": 2, "enable_expert_parallel": True, "all2all_backend": "deepep_high_throughput"},
    {"data_parallel_size": 2, "enable_expert_parallel": True, "all2all_backend": "allgather_reducescatter"},
    {"data_parallel_size": 2, "enable_expert_parallel": False, "all2all_backend": "deepep_low_latency"},
    {"data_parallel_size": 1, "enable_expert_parallel": True, "all2all_backend": "deepep_low_latency"},
    {"data_parallel_size": 2, "enable_expert_parallel": True, "all2all_backend": "deepep_low_latency",
     "max_num_batched_tokens": 1024},
    {"data_parallel_size": 2, "enable_expert_parallel": True, "all2all_backend": "nixl_ep",
     "enable_chunked_prefill": False, "max_model_len": 4096},
]
DEEPEP: list[tuple[str, int, bool]] = [(b, mb, inter) for b in ("deepep_high_throughput", "deepep_low_latency")
                                       for mb in (1024, 256, 2048) for inter in (False, True)]
MARK = -1  # the stand-in deep_ep's low-latency RDMA size hint


def _deep_ep_stub() -> None:
    mod = types.ModuleType("deep_ep")

    class Buffer:
        @staticmethod
        def get_low_latency_rdma_size_hint(**_: Any) -> int:
            return MARK

    mod.Buffer = Buffer  # type: ignore[attr-defined]
    sys.modules["deep_ep"] = mod


def _deepep(backend: str, mb: int, internode: bool) -> dict[str, Any]:
    import vllm.envs as envs
    from vllm.distributed.device_communicators import all2all

    os.environ["VLLM_DEEPEP_BUFFER_SIZE_MB"] = str(mb)
    with contextlib.suppress(Exception):
        envs.disable_envs_cache()
    cls = all2all.DeepEPHTAll2AllManager if backend == "deepep_high_throughput" else all2all.DeepEPLLAll2AllManager
    m = object.__new__(cls)
    m.internode, m.num_sms, m.cpu_group, m.support_fault_tolerance = internode, 20, None, False
    if backend == "deepep_high_throughput":
        kw = m._make_all2all_kwargs()
    else:
        kw = m._make_all2all_kwargs(max_num_tokens_per_dp_rank=256, token_hidden_size=7168, num_ep_ranks=16,
                                    num_global_experts=256, num_local_experts=16)
    rdma = kw["num_rdma_bytes"]
    return {"all2all_backend": backend, "VLLM_DEEPEP_BUFFER_SIZE_MB": mb, "internode": internode,
            "num_nvl_bytes": kw["num_nvl_bytes"], "num_rdma_bytes": None if rdma == MARK else rdma}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm

    _deep_ep_stub()
    doc: dict[str, Any] = {"release": vllm.__version__, "batched": [], "deepep": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU: EngineArgs.create_engine_config per batched case (no model built); "
        "DeepEPHTAll2AllManager / DeepEPLLAll2AllManager._make_all2all_kwargs per deepep case (deep_ep stubbed; "
        "num_rdma_bytes null where DeepEP's own size hint decides it): "
        "VLLM_TARGET_DEVICE=cpu python tools/vllm_all2all_oracle.py")}
    entry = json.load(open(os.path.join(vo.MODELS, "Qwen__Qwen3-30B-A3B.json")))
    config = vo._as_read(vo._catalog_config(entry["repo_id"]))
    for args in BATCHED:
        vo.EXTRA_ARGS.clear()
        # vLLM's own defaults for the batch (the shared oracle pins 8192 / 256 otherwise)
        vo.EXTRA_ARGS.update({"max_num_batched_tokens": None, "max_num_seqs": 256})
        vo.EXTRA_ARGS.update({k: v for k, v in args.items() if k != "max_model_len"})
        row: dict[str, Any] = {"model": entry["repo_id"], "engine_args": args}
        with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(config, f)
            cfg = vo._config(d, 1, "auto", args.get("max_model_len", 8192))
        row.update(max_num_batched_tokens=cfg.scheduler_config.max_num_batched_tokens,
                   max_num_seqs=cfg.scheduler_config.max_num_seqs,
                   use_batched_dp_moe=cfg.parallel_config.use_batched_dp_moe)
        doc["batched"].append(row)
        print(row, file=sys.stderr)
    for backend, mb, inter in DEEPEP:
        row = _deepep(backend, mb, inter)
        doc["deepep"].append(row)
        print(row, file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
