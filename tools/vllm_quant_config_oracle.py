"""--quantization-config (and --quantization beside it) read by vLLM's own parser on a CPU machine:
tests/data/vllm_quant_config_oracle_v<release>.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_quant_config_oracle.py \
        --out tests/data/vllm_quant_config_oracle_v0.34.0.json

Each case is a serve argument list. It is parsed by EngineArgs.add_cli_args on a FlexibleArgumentParser (the
JSON is read into QuantizationConfigArgs as `vllm serve` does, its refusal kept as argparse words it) and then
EngineArgs.from_cli_args, whose __post_init__ calls vllm/config/quantization.py resolve_quantization_config.
The row records vLLM's refusal, or the resolved linear / moe specs (str(QuantSpec)), ignore and targets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

J = json.dumps
Q = "--quantization-config"
CASES: list[list[str]] = [
    [Q, "not json"],
    [Q, "[1, 2]"],
    [Q, J({})],
    [Q, J({"foo": 1})],
    [Q, J({"linear": "fp8_bogus"})],
    [Q, J({"moe": 3})],
    [Q, J({"linear": "fp8_per_tensor_static"})],
    [Q, J({"linear": "fp8_per_tensor"})],
    [Q, J({"linear": "fp8_per_block_static", "moe": "int8_per_channel_static"})],
    [Q, J({"linear": "int8_per_channel_weight_only"})],
    [Q, J({"linear": {"weight": "mxfp4", "activation": "fp8_per_token"}})],
    [Q, J({"linear": {"weight": "mxfp4", "bogus": 1}})],
    [Q, J({"linear": {"weight": "mxfp4", "hadamard_size": 32}})],
    [Q, J({"linear": {"weight": "mxfp4", "hadamard_size": 3}})],
    [Q, J({"linear": {"weight": "fp8_nope"}})],
    [Q, J({"ignore": "lm_head"})],
    [Q, J({"ignore": ["lm_head", "model.layers.0.*"]})],
    [Q, J({"targets": {"re:.*q_proj": "fp8_per_block"}})],
    [Q, J({"targets": {"a": "bogus"}})],
    [Q, J({"targets": {"a": {"weight": "mxfp4"}}})],
    [Q, J({"targets": {"a": 3}})],
    [Q, J({"targets": {"re:(": "fp8_per_block"}})],
    [Q, J({"targets": ["a"]})],
    [Q, J({"targets": {"a": "fp8_per_block"}, "linear": "mxfp4"})],
    ["--quantization", "fp8_per_tensor", Q, J({"ignore": ["lm_head"]})],
    ["--quantization", "fp8_per_tensor", Q, J({"moe": "fp8_per_block_static"})],
    ["--quantization", "online", Q, J({"linear": "fp8_per_channel_static"})],
    ["--quantization", "online"],
    ["--quantization", "fp8_per_block"],
    ["--quantization", "mxfp4"],
    ["--quantization", "fp8", Q, J({"linear": "fp8_per_token"})],
]


def _spec(s: Any) -> Any:
    return None if s is None else str(s)


def run_case(argv: list[str]) -> dict[str, Any]:
    from vllm.engine.arg_utils import EngineArgs

    row: dict[str, Any] = {"argv": argv}
    p = vo.serve_parser()
    try:
        a = p.parse_args(["--model", "/nonexistent"] + argv)
        q = EngineArgs.from_cli_args(a).quantization_config
    except SystemExit as e:
        row["parse_error"] = " ".join(str(e).split())
        return row
    except Exception as e:  # noqa: BLE001 - vLLM's refusal, in its words
        row["error"] = vo.refusal_text(e, 10**6)
        return row
    if q is None:
        row["resolved"] = None
    else:
        row["resolved"] = {"linear": _spec(q.linear), "moe": _spec(q.moe), "ignore": list(q.ignore),
                           "targets": None if q.targets is None else {k: _spec(v) for k, v in q.targets.items()}}
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import importlib.metadata as md

    release = md.version("vllm").split("+")[0]
    rows = [run_case(argv) for argv in CASES]
    doc = {"release": release, "produced_by": "tools/vllm_quant_config_oracle.py, vLLM's own code run on CPU",
           "_source": f"vLLM v{release} vllm/config/quantization.py QuantizationConfigArgs, QuantSpec, "
                      "resolve_quantization_config, through vllm/engine/arg_utils.py EngineArgs",
           "cases": rows}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
