"""VLLM_RELOAD_MODE=direct (vLLM 0.34.0): VllmConfig._verify_direct_reload_compat's refusals, in vLLM's words,
against vLLM's own VllmConfig built on CPU (tests/data/vllm_direct_reload_oracle_v0.34.0.json,
tools/vllm_direct_reload_oracle.py); an unquantized checkpoint's figures unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vramcalc import check_command
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_direct_reload_oracle_v0.34.0.json").read_text())


def _options(args: dict[str, Any]) -> dict[str, Any] | None:
    """The case's EngineArgs fields as vramcalc's options; None where vramcalc has no such option."""
    out: dict[str, Any] = {}
    for k, v in args.items():
        if k == "weight_transfer_config":
            out["weight_transfer_backend"] = v["backend"]
        elif k == "quantization_config":
            out[k] = json.dumps(v)
        elif k == "quantization" and v == "torchao":
            return None  # not a quantization vramcalc sizes
        else:
            out[k] = v
    return out


def _refusal(mode: str, args: dict[str, Any]) -> str | None:
    opts = _options(args)
    assert opts is not None
    r = check_vllm(load(ORACLE["cases"][0]["model"]), find_gpu("h100-sxm"),
                   VLLMOptions(max_model_len=4096, reload_mode=mode, engine_version="0.34.0", **opts))
    texts = [e.text for e in r.errors if e.code == "vllm.reload_mode.refused"]
    return texts[0] if texts else None


# the cases vLLM refuses in layerwise mode too stop before the direct mode's check (recorded, not compared)
CASES = [c for c in ORACLE["cases"] if _options(c["engine_args"]) is not None and c["layerwise"] is None]


@pytest.mark.parametrize("case", CASES, ids=lambda c: json.dumps(c["engine_args"], sort_keys=True))
def test_direct_refuses_what_vllm_refuses(case):
    assert _refusal("direct", case["engine_args"]) == case["direct"]
    assert _refusal("layerwise", case["engine_args"]) is None


def test_refusals_compared():
    assert len(CASES) >= 10 and sum(c["direct"] is not None for c in CASES) >= 7


def test_unquantized_figures_unchanged_quantized_warned():
    cmd = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    base = check_command(cmd, system="h100-sxm").result.table()
    r = check_command("VLLM_RELOAD_MODE=direct " + cmd, system="h100-sxm")
    assert r.result.table() == base and r.fits
    assert r.result.command.startswith("VLLM_RELOAD_MODE=direct vllm serve")
    q = check_command("VLLM_RELOAD_MODE=direct vllm serve Qwen/Qwen3-32B-FP8 --max-model-len 8192", system="h100-sxm")
    assert "vllm.reload_mode.not_sized" in [w.code for w in q.result.warnings]
    assert "VLLM_RELOAD_MODE" in check_command("VLLM_RELOAD_MODE=layerwise " + cmd, system="h100-sxm").no_effect
