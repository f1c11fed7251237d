"""VLLM_ALLREDUCE_USE_SYMM_MEM=0 never adds memory: vLLM 0.33.0's own buffer constants and CustomAllreduce defaults
(tests/data/vllm_symm_mem_oracle_v0.33.0.json, tools/vllm_symm_mem_oracle.py), and how a pasted command reads it."""

import json
import os

import pytest

from vramcalc.pasted_command import read_command

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_symm_mem_oracle_v0.33.0.json")))


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_symm_mem_oracle.py" in FIXTURE["produced_by"]
    assert {c["compute_capability"] for c in FIXTURE["cases"]} >= {"8.0", "9.0", "10.0", "12.0"}


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=lambda c: f"sm{c['compute_capability']}-tp{c['tp']}")
def test_turning_it_off_frees_at_least_what_the_custom_all_reduce_grows(c):
    """Off: the symmetric-memory buffer goes; the custom all-reduce's metadata buffer (meta_size + max_size) and its
    staging buffer (max of max_size and the gather / scatter sizes) are sized with the larger max_size."""
    ca, stage = c["custom_allreduce_max_size"], c["custom_allreduce_staging_bytes"]
    grows = (ca["off"] - ca["on"]) + (stage["off"] - stage["on"])
    assert grows >= 0 and grows <= c["symm_mem_buffer_bytes"]
    if c["compute_capability"] in ("8.0", "8.9", "12.0"):  # no symmetric-memory all-reduce there: nothing changes
        assert c["symm_mem_buffer_bytes"] == 0 and grows == 0


def test_pasted_variable():
    base = "vllm serve Qwen/Qwen3-32B -tp 2 --max-model-len 8192"
    _, r = read_command(f"VLLM_ALLREDUCE_USE_SYMM_MEM=1 {base}")
    assert r.no_effect == ["VLLM_ALLREDUCE_USE_SYMM_MEM 1"] and not r.warnings
    _, r = read_command(f"VLLM_ALLREDUCE_USE_SYMM_MEM=0 {base}")
    assert [w.code for w in r.warnings] == ["command.upper_bound"] and "upper bound" in r.warnings[0].text
