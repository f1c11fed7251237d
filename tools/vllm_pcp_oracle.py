"""--prefill-context-parallel-size run through vLLM's own code on a CPU machine:
tests/data/vllm_pcp_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_pcp_oracle.py \
        --out tests/data/vllm_pcp_oracle_v0.33.0.json

`backends`: for every attention backend CudaPlatform can pick (vllm/platforms/cuda.py _get_backend_priorities, MLA
and not), whether its class supports prefill context parallelism (AttentionBackend.supports_pcp, which
validate_configuration asks with use_pcp, answering 'PCP not supported'), or why it does not load here.
`cases`: the config built as `vllm serve` builds it (EngineArgs.create_engine_config) with the case's fields:
ParallelConfig's world size, or its refusal in its words.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

# (catalog file stem, TP, EngineArgs fields)
CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("Qwen__Qwen3-8B", 2, {"prefill_context_parallel_size": 2}),
    ("Qwen__Qwen3-8B", 2, {"prefill_context_parallel_size": 2, "decode_context_parallel_size": 2}),
    ("Qwen__Qwen3-8B", 2, {"prefill_context_parallel_size": 2, "decode_context_parallel_size": 4}),
    ("Qwen__Qwen3-8B", 2, {"prefill_context_parallel_size": 2, "decode_context_parallel_size": 3}),
    ("Qwen__Qwen3-8B", 4, {"prefill_context_parallel_size": 3, "decode_context_parallel_size": 2}),
    ("Qwen__Qwen3-8B", 1, {"prefill_context_parallel_size": 2, "decode_context_parallel_size": 4}),
    ("deepseek-ai__DeepSeek-V2-Lite", 2, {"prefill_context_parallel_size": 2}),
]


def _backends() -> dict[str, Any]:
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    out: dict[str, Any] = {}
    for b in AttentionBackendEnum:
        try:
            cls = b.get_class()
            out[b.name] = {"supports_pcp": bool(cls.supports_pcp()), "mla": "MLA" in b.name}
        except Exception as e:  # a backend whose kernels do not import on this machine
            out[b.name] = {"error": vo.refusal_text(e, 200), "mla": "MLA" in b.name}
    return out


def _one(stem: str, tp: int, args: dict[str, Any]) -> dict[str, Any]:
    entry, config = vo.flag_case_config(stem, args)
    row: dict[str, Any] = {"model": entry["repo_id"], "tp": tp, "engine_args": args}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        try:
            cfg = vo._config(d, tp, "auto", None)
            pc = cfg.parallel_config
            row.update(world_size=pc.world_size, use_mla=bool(cfg.model_config.use_mla),
                       pcp_shard_decode_requests=bool(pc.pcp_shard_decode_requests))
        except Exception as e:
            row["error"] = vo.refusal_text(e)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "backends": _backends(), "cases": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: each AttentionBackendEnum class's supports_pcp, and "
        "EngineArgs.create_engine_config with each case's fields and VLLM_USE_V2_MODEL_RUNNER=1 (a CUDA build's "
        "default; the CPU build, without Triton, falls back to V1, which refuses PCP), ParallelConfig's world size "
        "or refusal; run on CPU: VLLM_TARGET_DEVICE=cpu python tools/vllm_pcp_oracle.py")}
    # the CPU build has no Triton, so VllmConfig.use_v2_model_runner falls back to Model Runner V1, which refuses
    # PCP ('Model Runner V1 does not support: prefill context parallel'); a CUDA build runs V2 by default: set here
    os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "1"
    for stem, tp, args in CASES:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            doc["cases"].append(_one(stem, tp, args))
        print(doc["cases"][-1], file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
