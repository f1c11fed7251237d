"""VLLM_USE_LOCALITY_DOMAINS / VLLM_FLASHINFER_CUTEDSL_MOE_LOCALIZE_FREE_FULL_WEIGHTS: no effect with vLLM 0.34.0's own
stack (tests/data/vllm_locality_oracle_v0.34.0.json, tools/vllm_locality_oracle.py): the wheel pins a torch without
torch.cuda.execute_on_streams and a FlashInfer 0.7.x without the localized MoE, so the worker's
maybe_init_localized_resources returns None and no MoE layer is sharded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramcalc import check_command

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_locality_oracle_v0.34.0.json").read_text())


def test_the_release_stack_cannot_localize():
    assert "torch==2.14.0" in ORACLE["pins"] and "flashinfer-python==0.7.3" in ORACLE["pins"]
    assert ORACLE["localization_enabled"] and ORACLE["resources"] == "None"
    assert ORACLE["unsupported_reason"].startswith("torch.cuda.execute_on_streams is missing")


@pytest.mark.parametrize("env", ["VLLM_USE_LOCALITY_DOMAINS=1",
                                 "VLLM_USE_LOCALITY_DOMAINS=1 VLLM_FLASHINFER_CUTEDSL_MOE_LOCALIZE_FREE_FULL_WEIGHTS=1"])
def test_listed_as_no_effect_and_the_figures_unchanged(env):
    cmd = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 8192"
    base = check_command(cmd, system="b200").result.table()[0]
    r = check_command(f"{env} {cmd}", system="b200")
    assert all(v.split("=")[0] in r.no_effect for v in env.split())
    assert r.result.table()[0] == base
