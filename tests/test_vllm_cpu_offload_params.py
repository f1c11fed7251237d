"""--cpu-offload-params with --cpu-offload-gb against vLLM 0.33.0's own offloader run on the CPU
(tests/data/vllm_cpu_offload_oracle_v0.33.0.json, tools/vllm_cpu_offload_oracle.py): UVAOffloader choosing each
parameter of the model vLLM builds by its name, and counting what it moves."""

import json
import os

import pytest

from vramcalc.errors import NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.weights import weights_per_rank

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_cpu_offload_oracle_v0.33.0.json")))
GIB = 2**30


def _id(c):
    return f"{c['model']}-tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["cases"]) >= 8
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"] and "tools/vllm_cpu_offload_oracle.py" in FIXTURE["produced_by"]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_offloaded_bytes_against_vllm(c):
    """The routed experts per rank to the byte (what `experts` selects); the offload vramcalc counts is the request
    capped by what the segment selects, never more than vLLM moves and less by under one tensor (vLLM moves whole
    parameters until the request is reached)."""
    args = c["engine_args"]
    spec = load(c["model"])
    w = weights_per_rank(spec, c["tp"], 1, version=FIXTURE["release"])[0]
    assert w.expert_layer_bytes * w.moe_layers == c["experts_bytes"]
    r = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(
        tp=c["tp"], engine_version=FIXTURE["release"], max_model_len=4096, cpu_offload_gb=args.get("cpu_offload_gb", 0),
        cpu_offload_params=tuple(args.get("cpu_offload_params", ()))))
    ours = r.devices[0].cpu_offload_bytes
    theirs = c["cpu_offload_bytes"]
    if not args.get("cpu_offload_gb"):
        assert c["offloader"] == "NoopOffloader" and ours == theirs == 0
        return
    assert ours <= theirs < ours + max(c["largest_experts_tensor_bytes"], 1)
    if args.get("cpu_offload_params") and args["cpu_offload_gb"] * GIB >= c["experts_bytes"]:
        assert ours == theirs == c["experts_bytes"]  # every routed expert, and nothing else


def test_other_segments_are_refused_as_not_modelled():
    with pytest.raises(NotModelledError, match="--cpu-offload-params self_attn: not modelled"):
        check_vllm(load("Qwen/Qwen3-30B-A3B"), find_gpu("h100-sxm"), VLLMOptions(
            cpu_offload_gb=4, cpu_offload_params=("experts", "self_attn"), max_model_len=4096))


def test_pasted_flag_is_read_as_modelled():
    base = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 4096 --cpu-offload-gb 20"
    _, r = read_command(f"{base} --cpu-offload-params experts")
    assert r.options["cpu_offload_params"] == ("experts",) and not r.warnings
    out = check_command(f"{base} --cpu-offload-params experts", "h100-sxm")
    assert out.result.devices[0].cpu_offload_bytes == 20 * GIB
    assert "--cpu-offload-params experts" in out.result.command and "--cpu-offload-params experts" in out.vramcalc_command
