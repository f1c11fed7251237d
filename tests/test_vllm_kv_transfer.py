"""--kv-transfer-config against vLLM 0.33.0's own code run on the CPU (tests/data/vllm_kv_transfer_oracle_v0.33.0.json,
tools/vllm_kv_transfer_oracle.py): which connectors support the hybrid KV cache manager, the KV cache vLLM plans
with each connector (the manager off sizes sliding-window layers at full length), and vLLM's refusals."""

import json
import os

import pytest

from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm, hma_off
from vramcalc.vllm.features import features

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_kv_transfer_oracle_v0.33.0.json")))


def _id(c):
    return f"{c['model']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def _options(c, **kw):
    args = c["engine_args"]
    return VLLMOptions(engine_version=FIXTURE["release"], kv_transfer_config=args.get("kv_transfer_config"),
                       max_num_batched_tokens=c.get("max_num_batched_tokens", 8192), max_num_seqs=256, **kw)


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0"
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"] and "tools/vllm_kv_transfer_oracle.py" in FIXTURE["produced_by"]


def test_connector_table_is_the_releases():
    """Every connector the release registers is in data/vllm_features.json, with the HMA support vLLM answers
    (the ones whose classes do not import on the CPU machine were read from their classes)."""
    ours = features().kv_transfer.connectors
    assert set(ours) == set(FIXTURE["connectors"])
    for name, row in FIXTURE["connectors"].items():
        if "supports_hma" in row:
            assert ours[name].supports_hma == row["supports_hma"], name
        else:
            assert "class_error" in row


@pytest.mark.parametrize("c", [c for c in FIXTURE["cases"] if "disable_hybrid_kv_cache_manager" not in c["engine_args"]],
                         ids=_id)
def test_kv_plan_equals_vllm(c):
    """The hybrid manager as vLLM leaves it, and each budget's blocks, tokens and concurrency (or the refusal)."""
    opts = _options(c)
    assert (not hma_off(opts)) == c["hybrid_kv_cache_manager"]
    spec = load(c["model"])
    for p in c["plans"]:
        r = check_vllm(spec, find_gpu("h100-sxm"), _options(c, kv_cache_memory_bytes=p["memory_bytes"]))
        assert r.max_model_len == c["max_model_len"]
        if "refusal" in p:
            assert not r.fits and any("To serve at least one request" in e.text for e in r.errors)
            continue
        assert r.num_gpu_blocks == p["num_blocks"] and abs(r.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
        assert abs(r.max_concurrency - p["max_concurrency"]) <= 0.0051
        said = {w.code for w in r.warnings}
        assert ("vllm.kv_transfer.hma_off" in said) == (bool(c["engine_args"]) and not c["hybrid_kv_cache_manager"])


def test_explicitly_enabled_manager_is_sized_conservatively():
    """--enable-hybrid-kv-cache-manager keeps the manager on beside a connector without SupportsHMA; vramcalc does
    not read it and sizes the larger footprint (fewer blocks than vLLM plans, never more)."""
    (c,) = [c for c in FIXTURE["cases"] if c["engine_args"].get("disable_hybrid_kv_cache_manager") is False
            and c["engine_args"]["kv_transfer_config"]["kv_connector"] == "LMCacheConnectorV1"]
    assert c["hybrid_kv_cache_manager"]
    for p in c["plans"]:
        r = check_vllm(load(c["model"]), find_gpu("h100-sxm"), _options(c, kv_cache_memory_bytes=p["memory_bytes"]))
        assert r.num_gpu_blocks <= p["num_blocks"]


@pytest.mark.parametrize("u", [u for u in FIXTURE["unsupported"] if "class_error" not in u and
                               "ModuleNotFoundError" not in u["error"]], ids=_id)
def test_refusals_are_vllms(u):
    r = check_vllm(load(u["model"]), find_gpu("h100-sxm"), _options(u))
    theirs = u["error"].removeprefix("ValidationError: 1 validation error for VllmConfig kv_transfer_config ")
    theirs = theirs.removeprefix("ValidationError: 1 validation error for VllmConfig ").removeprefix("Value error, ")
    theirs = theirs.split(" [type=value_error")[0]
    assert not r.fits and any(theirs in e.text for e in r.errors), (theirs, [e.text for e in r.errors])


def test_unsized_connectors_and_nixl_host_copy_are_named():
    spec = load("Qwen/Qwen3-0.6B")
    r = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(kv_transfer_config={
        "kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}))
    assert any(w.code == "vllm.kv_transfer.unsized" and "LMCacheConnectorV1" in w.text for w in r.warnings)
    r = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(kv_transfer_config={
        "kv_connector": "NixlConnector", "kv_role": "kv_both", "kv_buffer_device": "cpu"}))
    assert not [w for w in r.warnings if w.code == "vllm.kv_transfer.unsized"]
    (w,) = [w for w in r.warnings if w.code == "vllm.kv_transfer.host_copy"]
    assert f"{r.devices[0].kv_cache_bytes / 2**30:.2f} GiB" in w.text


def test_routed_experts_refuse_pd_connectors():
    r = check_vllm(load("Qwen/Qwen3-30B-A3B"), find_gpu("h100-sxm"), VLLMOptions(
        max_model_len=8192, enable_return_routed_experts=True,
        kv_transfer_config={"kv_connector": "NixlConnector", "kv_role": "kv_both"}))
    assert not r.fits and any("incompatible with NixlConnector; PD auxiliary output is not supported" in e.text
                              for e in r.errors)


def test_pasted_flag_is_read_as_modelled():
    base = "vllm serve google/gemma-3-1b-it --max-model-len 8192"
    _, r = read_command(f"{base} --kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}}'")
    assert r.options["kv_transfer_config"] == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    assert not r.warnings
    with pytest.raises(InputError, match="KVTransferConfig has no field 'kv_ip'"):
        read_command(f"{base} --kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_ip\":\"x\"}}'")
    out = check_command(f"{base} --kv-transfer-config '{{\"kv_connector\":\"LMCacheConnectorV1\",\"kv_role\":\"kv_both\"}}'",
                        "h100-sxm")
    assert any(w.code == "vllm.kv_transfer.hma_off" for w in out.result.warnings)
    assert "--kv-transfer-config" in out.result.command and "--kv-transfer-config" in out.vramcalc_command
