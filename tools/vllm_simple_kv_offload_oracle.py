"""VLLM_USE_SIMPLE_KV_OFFLOAD with --kv-offloading-size, run through vLLM's own config code on a CPU machine:
tests/data/vllm_simple_kv_offload_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_simple_kv_offload_oracle.py \
        --out tests/data/vllm_simple_kv_offload_oracle_v0.33.0.json

Per case: the variable set (or not) in the environment, the config built as `vllm serve` builds it
(EngineArgs.create_engine_config with the case's fields; VllmConfig._post_init_kv_transfer_config picks the
connector), and what it records: the connector, its extra config, and whether the hybrid KV cache manager stays on
(SchedulerConfig.disable_hybrid_kv_cache_manager, which VllmConfig.__post_init__ sets for a connector without
SupportsHMA). The model is one with sliding-window layers, where the hybrid manager changes the KV pool.
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

# (catalog file stem, VLLM_USE_SIMPLE_KV_OFFLOAD or None, EngineArgs fields)
CASES: list[tuple[str, str | None, dict[str, Any]]] = [
    ("google__gemma-3-1b-it", None, {"kv_offloading_size": 4}),
    ("google__gemma-3-1b-it", "0", {"kv_offloading_size": 4}),
    ("google__gemma-3-1b-it", "1", {"kv_offloading_size": 4}),
    ("google__gemma-3-1b-it", "1", {}),
    ("Qwen__Qwen3-8B", "1", {"kv_offloading_size": 16}),
]


def _one(stem: str, env: str | None, args: dict[str, Any]) -> dict[str, Any]:
    entry, config = vo.flag_case_config(stem, args)
    os.environ.pop("VLLM_USE_SIMPLE_KV_OFFLOAD", None)
    if env is not None:
        os.environ["VLLM_USE_SIMPLE_KV_OFFLOAD"] = env
    try:
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(config, f)
            cfg = vo._config(d, 1, "auto", None)
    finally:
        os.environ.pop("VLLM_USE_SIMPLE_KV_OFFLOAD", None)
    kt = cfg.kv_transfer_config
    return {"model": entry["repo_id"], "env": env, "engine_args": args,
            "kv_connector": kt.kv_connector if kt is not None else None,
            "kv_connector_extra_config": dict(kt.kv_connector_extra_config) if kt is not None else None,
            "hybrid_kv_cache_manager": not cfg.scheduler_config.disable_hybrid_kv_cache_manager}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: EngineArgs.create_engine_config with each case's fields and "
        "VLLM_USE_SIMPLE_KV_OFFLOAD as set, the connector VllmConfig._post_init_kv_transfer_config picks and the "
        "hybrid KV cache manager as VllmConfig.__post_init__ leaves it; run on CPU: VLLM_TARGET_DEVICE=cpu python "
        "tools/vllm_simple_kv_offload_oracle.py")}
    for stem, env, args in CASES:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            doc["cases"].append(_one(stem, env, args))
        print(doc["cases"][-1], file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
