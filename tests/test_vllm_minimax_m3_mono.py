"""MiniMax-M3's ROCm decode paths (VLLM_ROCM_MINIMAX_M3_MONO*) and the NVIDIA MSA plan switch stay not modelled,
--monokernel is modelled (tests/test_vllm_monokernel.py); their notes give vLLM v0.34.0's own figures, checked here
against tests/data/vllm_minimax_m3_mono_oracle_v0.34.0.json (tools/vllm_minimax_m3_mono_oracle.py: vLLM's layout functions on CPU)."""

import json
import os

from vramcalc.pasted_command import flag_classes

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_minimax_m3_mono_oracle_v0.34.0.json")))
FIXTURE = "tests/data/vllm_minimax_m3_mono_oracle_v0.34.0.json"


def _n(x: int) -> str:
    return f"{x:,}"


def test_the_fixture_is_vllms():
    assert ORACLE["release"] == "0.34.0"
    assert ORACLE["produced_by"].startswith("tools/vllm_minimax_m3_mono_oracle.py")


def test_the_monokernel_note_gives_vllms_buffers():
    """--monokernel is modelled (tests/test_vllm_monokernel.py checks its refusals); its note keeps these figures."""
    sd = ORACLE["specialized_decode"]
    entry = flag_classes()["vllm"]["--monokernel"]
    note = entry["note"]
    assert entry["class"] == "modelled"
    scratch = [sd["scratch_bytes"][str(s)] for s in sd["widths"]]
    assert sd["widths"] == list(range(1, 17)) and sd["tp_size"] == 4 and sd["compute_units"] == 256
    assert f"{_n(sd['per_rank_bytes'])} bytes per rank" in note
    assert f"{_n(sd['peer_bytes'])}-byte peer buffer" in note and "peer_bytes(4)" in note
    assert f"{_n(min(scratch))} to {_n(max(scratch))} bytes each" in note
    assert "row count 1..16" in note and "TP other than 4" in note and "256 compute units" in note and FIXTURE in note


def test_the_mono_note_gives_vllms_buffers():
    m = ORACLE["mono"]
    entry = flag_classes()["vllm_env_model"]["VLLM_ROCM_MINIMAX_M3_MONO"]
    note = entry["note"]
    assert entry["class"] == "not_modelled"
    assert m["tp"] == 4 and m["sparse_block"] == 128
    assert f"{_n(m['sym_bytes'])}-byte peer buffer" in note
    assert f"{_n(m['k1_scratch_bytes'])} + {_n(m['k4_scratch_bytes'])} bytes" in note
    assert f"{_n(m['cp_qkv_rows'])}-row" in note and f"above {_n(m['max_context'])}" in note and FIXTURE in note
