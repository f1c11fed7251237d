"""VLLM_USE_SIMPLE_KV_OFFLOAD against vLLM 0.33.0's own config code run on the CPU
(tests/data/vllm_simple_kv_offload_oracle_v0.33.0.json, tools/vllm_simple_kv_offload_oracle.py): the connector
--kv-offloading-size installs, and the hybrid KV cache manager it leaves on."""

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm, hma_off

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_simple_kv_offload_oracle_v0.33.0.json")))


def _opts(c, **kw):
    return VLLMOptions(max_model_len=8192, simple_kv_offload=c["env"] == "1", **c["engine_args"], **kw)


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["cases"]) >= 5
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_simple_kv_offload_oracle.py" in FIXTURE["produced_by"]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=lambda c: f"{c['model']}-{c['env']}-{c['engine_args']}")
def test_connector_and_hybrid_manager_against_vllm(c):
    o = _opts(c)
    assert o.kv_offloading_connector == c["kv_connector"]
    assert (not hma_off(o)) == c["hybrid_kv_cache_manager"]
    if c["kv_connector"]:
        assert c["kv_connector_extra_config"]["cpu_bytes_to_use"] == c["engine_args"]["kv_offloading_size"] * 2**30


def test_gpu_figures_are_the_offloading_connectors():
    """Neither connector allocates device memory of its own and both keep the hybrid manager: the sliding-window
    model's KV pool is the same with the variable set or not."""
    spec, gpu = load("google/gemma-3-1b-it"), find_gpu("l4")
    a = check_vllm(spec, gpu, VLLMOptions(max_model_len=8192, kv_offloading_size=4))
    b = check_vllm(spec, gpu, VLLMOptions(max_model_len=8192, kv_offloading_size=4, simple_kv_offload=True))
    assert a.devices == b.devices and a.kv_cache_tokens == b.kv_cache_tokens
    said = next(w.text for w in b.warnings if w.code == "vllm.kv_offload.host_memory")
    assert "through SimpleCPUOffloadConnector" in said
    assert b.command.startswith("VLLM_USE_SIMPLE_KV_OFFLOAD=1 vllm serve")


def test_pasted_variable_is_read_as_modelled():
    cmd = "VLLM_USE_SIMPLE_KV_OFFLOAD=1 vllm serve google/gemma-3-1b-it --max-model-len 8192 --kv-offloading-size 4"
    _, r = read_command(cmd)
    assert r.options["simple_kv_offload"] is True and not r.warnings
    out = check_command(cmd, "l4")
    assert "VLLM_USE_SIMPLE_KV_OFFLOAD=1" in out.result.command and "--simple-kv-offload" in out.vramcalc_command
