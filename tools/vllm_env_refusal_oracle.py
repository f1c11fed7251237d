"""What vLLM 0.34.0's own code answers to a VLLM_* variable it refuses by value, run on a CPU machine:
tests/data/vllm_env_refusal_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_env_refusal_oracle.py \
        --out tests/data/vllm_env_refusal_oracle_v0.34.0.json

Per case, the variable set in this process's environment: for the variables read by vllm/envs.py env_with_choices
(VLLM_FP8_MOE_REQUANT, VLLM_FP8_MOE_REQUANT_ACT, VLLM_RELOAD_MODE), the value vllm.envs returns or the error it
raises (every variable is read at the latest when EngineCore caches them, vllm/envs.py enable_envs_cache); for the
variables 0.34.0 removed (VLLM_MARLIN_INPUT_DTYPE, VLLM_USE_V2_MODEL_RUNNER), what
vllm/platforms/interface.py Platform.validate_environ (called by EngineArgs.create_engine_config) raises, or None.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

CASES = [
    ("VLLM_FP8_MOE_REQUANT", v) for v in ("none", "NONE", "mxfp4", "MXFP4", "x", "1")
] + [
    ("VLLM_FP8_MOE_REQUANT_ACT", v) for v in ("a8w4", "A4W4", "a16w4", "a4", "1")
] + [
    ("VLLM_RELOAD_MODE", v) for v in ("layerwise", "direct", "Direct", "1")
] + [
    ("VLLM_USE_V2_MODEL_RUNNER", v) for v in ("1", "0", "2", "true")
] + [
    ("VLLM_MARLIN_INPUT_DTYPE", v) for v in ("int8", "fp8", "")
]
REMOVED = ("VLLM_USE_V2_MODEL_RUNNER", "VLLM_MARLIN_INPUT_DTYPE")


def run_case(name: str, value: str) -> dict[str, Any]:
    import vllm.envs as envs
    from vllm.platforms.interface import Platform

    os.environ[name] = value
    try:
        if name in REMOVED:
            Platform.validate_environ(False)
            return {"name": name, "value": value, "error": None}
        return {"name": name, "value": value, "error": None, "read": getattr(envs, name)}
    except ValueError as e:
        return {"name": name, "value": value, "error": f"ValueError: {e}"}
    finally:
        del os.environ[name]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import vllm

    for k in [k for k in os.environ if k.startswith("VLLM_") and k != "VLLM_TARGET_DEVICE"]:
        del os.environ[k]
    out = {
        "release": vllm.__version__,
        "produced_by": "vLLM 0.34.0 wheel on CPU (VLLM_TARGET_DEVICE=cpu): vllm.envs's reader of each variable "
                       "(env_with_choices) and vllm/platforms/interface.py Platform.validate_environ, one variable "
                       "set at a time (tools/vllm_env_refusal_oracle.py)",
        "cases": [run_case(n, v) for n, v in CASES],
    }
    with open(args.out, "w") as f:
        f.write(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
