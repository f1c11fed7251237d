"""VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 with --cpu-offload-gb against vLLM 0.33.0's own UVA offloader run on the CPU
(tests/data/vllm_disable_uva_oracle_v0.33.0.json, tools/vllm_disable_uva_oracle.py): what each decoder layer's
forward copies to the GPU is what _maybe_offload_to_cpu moved from it; the largest joins the activation peak."""

import json
import os

import pytest

from vramcalc.errors import NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_disable_uva_oracle_v0.33.0.json")))


def _id(c):
    return f"{c['model']}-tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def _opts(c, disable=True):
    args = c["engine_args"]
    return VLLMOptions(tp=c["tp"], engine_version=FIXTURE["release"], max_model_len=4096,
                       cpu_offload_gb=args["cpu_offload_gb"], cpu_offload_params=tuple(args.get("cpu_offload_params", ())),
                       weight_offloading_disable_uva=disable)


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["cases"]) >= 8 and not FIXTURE["unsupported"]
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_disable_uva_oracle.py" in FIXTURE["produced_by"]
    for c in FIXTURE["cases"]:  # vLLM replaced the forward of exactly the layers it moved something from
        assert c["uva_offloading"] is False
        assert c["forward_replaced"] == [m > 0 for m in c["modules_moved_bytes"]]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_largest_layer_copy_against_vllm(c):
    """To the byte, the first layer cut short by a cpu_offload_gb under one layer included (vLLM's merged qkv_proj /
    gate_up_proj counted as one parameter each)."""
    r = check_vllm(load(c["model"]), find_gpu("h100-sxm"), _opts(c))
    assert r.devices[0].uva_layer_copy_bytes == c["largest_module_copy_bytes"]
    assert "vllm.cpu_offload.no_uva" in [w.code for w in r.warnings]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_the_copy_joins_the_forward_peak_not_the_samplers(c):
    spec, gpu = load(c["model"]), find_gpu("h100-sxm")
    on, off = check_vllm(spec, gpu, _opts(c)).devices[0], check_vllm(spec, gpu, _opts(c, False)).devices[0]
    assert off.uva_layer_copy_bytes == 0
    grew = on.activation_bytes - off.activation_bytes
    assert 0 <= grew <= on.uva_layer_copy_bytes and off.kv_cache_bytes - on.kv_cache_bytes == grew
    if c["model"].startswith("mistralai/Mixtral"):  # its forward peak is above the sampler's: the copy adds whole
        assert grew == on.uva_layer_copy_bytes > 0


def test_without_the_uva_offloader_nothing_is_copied():
    spec, gpu = load("Qwen/Qwen3-8B"), find_gpu("h100-sxm")
    r = check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, weight_offloading_disable_uva=True))
    assert r.devices[0].uva_layer_copy_bytes == 0 and "vllm.cpu_offload.no_uva" not in [w.code for w in r.warnings]
    r = check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, weight_offloading_disable_uva=True, cpu_offload_gb=4,
                                          offload_group_size=4))  # auto takes the prefetch offloader
    assert r.devices[0].uva_layer_copy_bytes == 0


def test_multimodal_towers_are_not_modelled():
    spec = load("Qwen/Qwen3-VL-2B-Instruct")
    with pytest.raises(NotModelledError, match="vision tower"):
        check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(max_model_len=4096, cpu_offload_gb=2,
                                                           weight_offloading_disable_uva=True))


def test_pasted_variable():
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 4096 --cpu-offload-gb 4"
    _, r = read_command(f"VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 {base}")
    assert r.options["weight_offloading_disable_uva"] is True
    _, r = read_command(f"VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=0 {base}")
    assert r.options.get("weight_offloading_disable_uva") is not True


def test_pasted_command_round_trip():
    from vramcalc.pasted_command import check_command

    r = check_command("VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 vllm serve mistralai/Mixtral-8x7B-Instruct-v0.1 -tp 2 "
                      "--cpu-offload-gb 10 --max-model-len 4096", "2xh100-sxm")
    assert "--weight-offloading-disable-uva" in r.vramcalc_command
    assert r.result.command.startswith("VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 vllm serve")
    assert r.result.devices[0].uva_layer_copy_bytes == 1451311104  # the fixture's Mixtral TP 2 case
