"""VLLM_RELOAD_MODE=direct: what vLLM 0.34.0's own VllmConfig refuses with it, run on a CPU machine:
tests/data/vllm_direct_reload_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_direct_reload_oracle.py \
        --out tests/data/vllm_direct_reload_oracle_v0.34.0.json

Per case, a catalog config (tools/vllm_oracle.py, unquantized) and EngineArgs fields as the serve flags set them, with
VLLM_RELOAD_MODE=direct in this process's environment: EngineArgs.create_engine_config builds VllmConfig, whose
__post_init__ runs _verify_direct_reload_compat (vllm/config/vllm.py); the error vLLM raises (its type and words) or
None is recorded. The same cases under the default (layerwise) are recorded too, so that a refusal is the direct
mode's own and not the CPU build's."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

STEM = "Qwen__Qwen3-0.6B"
CASES: list[dict[str, Any]] = [
    {},
    {"cpu_offload_gb": 1},
    {"offload_backend": "uva"},
    {"offload_backend": "prefetch"},
    {"offload_group_size": 4, "offload_num_in_group": 1},
    {"enable_lora": True},
    {"quantization": "fp8"},
    {"quantization": "fp8_per_tensor"},
    {"quantization": "torchao"},
    {"weight_transfer_config": {"backend": "sharded_rdt"}},
    {"weight_transfer_config": {"backend": "nccl"}},
    {"speculative_config": {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3}},
    {"speculative_config": {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3,
                            "draft_lm_head_quantization": "fp8"}},
    {"kv_cache_dtype": "fp8"},
]


def one(args: dict[str, Any]) -> dict[str, Any]:
    import vllm_oracle as vo

    vo.setup()
    entry = json.load(open(os.path.join(vo.MODELS, STEM + ".json")))
    config = {k: v for k, v in vo._as_read(vo._catalog_config(entry["repo_id"])).items() if k != "quantization_config"}
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(args)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        try:
            vo._config(d, 1, args.get("kv_cache_dtype", "auto"), 4096)
        except Exception as e:  # noqa: BLE001 - the error vLLM raises is the record
            errors = getattr(e, "errors", None)  # VllmConfig is a pydantic dataclass: its ValueError arrives wrapped
            if callable(errors):
                return {"error": f"ValueError: {errors()[0]['msg'].removeprefix('Value error, ')}"}
            return {"error": f"{type(e).__name__}: {e}"}
    return {"error": None}


def main() -> None:
    if "--case" in sys.argv:
        print(json.dumps(one(json.loads(sys.argv[sys.argv.index("--case") + 1]))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import vllm

    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_") or k == "VLLM_TARGET_DEVICE"}
    cases = []
    for args in CASES:
        row: dict[str, Any] = {"model": json.load(open(os.path.join(os.path.dirname(__file__), "..", "vramcalc",
                                                                  "data", "models", STEM + ".json")))["repo_id"],
                               "engine_args": args}
        for mode in ("direct", "layerwise"):
            out = subprocess.run([sys.executable, __file__, "--case", json.dumps(args)], capture_output=True,
                                 text=True, env={**env, "VLLM_RELOAD_MODE": mode})
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            row[mode] = json.loads(out.stdout.strip().splitlines()[-1])["error"]
        cases.append(row)
    doc = {"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), tools/vllm_direct_reload_oracle.py: "
        "EngineArgs(...).create_engine_config() for an unquantized catalog config with each case's fields, once with "
        "VLLM_RELOAD_MODE=direct and once with layerwise (one process each); the error raised or null"),
        "cases": cases}
    with open(a.out, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
