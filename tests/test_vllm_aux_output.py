"""--enable-return-routed-experts / --aux-output-config against vLLM 0.33.0's own code run on the CPU
(tests/data/vllm_aux_output_oracle_v0.33.0.json, tools/vllm_aux_output_oracle.py): VllmConfig's refusals, the
capturer's device buffer, and the host store and buffer vLLM's AuxOutputWorkerConnector builds on the KV cache
plan."""

import json
import os

import pytest

from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.aux_output import device_bytes, host_bytes
from vramcalc.vllm.engine import VLLMOptions, check_vllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_aux_output_oracle_v0.33.0.json")))
ON = [c for c in FIXTURE["cases"] if c["aux_output_enabled"]]


def _id(c):
    return f"{c['model']}-tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def _options(c, **kw):
    args = c["engine_args"]
    return VLLMOptions(tp=c["tp"], pp=args.get("pipeline_parallel_size", 1), engine_version=FIXTURE["release"],
                       max_num_batched_tokens=c.get("max_num_batched_tokens") or args.get("max_num_batched_tokens"),
                       max_num_seqs=c.get("max_num_seqs") or args.get("max_num_seqs"),
                       enable_return_routed_experts=args.get("enable_return_routed_experts", False),
                       aux_output_config=args.get("aux_output_config"),
                       enable_prefix_caching=args.get("enable_prefix_caching"),
                       decode_context_parallel_size=args.get("decode_context_parallel_size", 1), **kw)


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0"
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"] and "tools/vllm_aux_output_oracle.py" in FIXTURE["produced_by"]
    assert len(ON) >= 4 and len(FIXTURE["unsupported"]) >= 4


@pytest.mark.parametrize("c", ON, ids=_id)
def test_routed_experts_buffers_equal_vllm(c):
    """The device buffer (every rank) to the byte, and on vLLM's own KV plan of each budget (the blocks vramcalc
    plans too) the host store and buffer to the byte."""
    spec = load(c["model"])
    assert device_bytes(spec, c["max_num_batched_tokens"]) == c["device_buffer_bytes"]
    for p in c["plans"]:
        r = check_vllm(spec, find_gpu("h100-sxm"), _options(c, kv_cache_memory_bytes=p["memory_bytes"]))
        assert r.num_gpu_blocks == p["num_blocks"]
        h = host_bytes(spec, num_blocks=r.num_gpu_blocks, block_size=16, max_num_batched_tokens=c["max_num_batched_tokens"],
                       max_num_seqs=c["max_num_seqs"], batches=c["max_concurrent_batches"],
                       max_bytes=c["max_bytes"])
        assert (h.store, h.buffer, h.object) == (p["host_store_bytes"], p["host_buffer_bytes"], p["host_object_bytes"])
        (t,) = [t for t in r.trace if t.name.startswith("routed experts buffer")]
        assert t.value == c["device_buffer_bytes"] and t.unit == "bytes"
        (w,) = [w for w in r.warnings if w.code == "vllm.aux_output.buffers"]
        assert f"{c['device_buffer_bytes'] / 2**20:.1f} MiB of device memory" in w.text
        assert f"{p['host_store_bytes'] / 2**20:.1f} MiB store + {p['host_buffer_bytes'] / 2**20:.1f} MiB buffer" in w.text


@pytest.mark.parametrize("u", FIXTURE["unsupported"], ids=_id)
def test_refusals_are_vllms(u):
    r = check_vllm(load(u["model"]), find_gpu("h100-sxm"), _options(u))
    theirs = u["error"].removeprefix("ValidationError: 1 validation error for VllmConfig Value error, ")
    theirs = theirs.split(" [type=value_error")[0]
    assert not r.fits and any(theirs in e.text for e in r.errors), (theirs, [e.text for e in r.errors])


def test_config_without_the_switch_changes_nothing():
    (c,) = [c for c in FIXTURE["cases"] if not c["aux_output_enabled"]]
    spec = load(c["model"])
    with_cfg = check_vllm(spec, find_gpu("h100-sxm"), _options(c, kv_cache_memory_bytes=2**33))
    plain = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(engine_version="0.33.0", kv_cache_memory_bytes=2**33,
                                                               max_num_batched_tokens=8192, max_num_seqs=256))
    assert with_cfg.num_gpu_blocks == plain.num_gpu_blocks
    assert not [w for w in with_cfg.warnings if w.code.startswith("vllm.aux_output")]


def test_pasted_flags_are_read_as_modelled():
    base = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 8192"
    _, r = read_command(f"{base} --enable-return-routed-experts")
    assert r.options["enable_return_routed_experts"] is True and not r.warnings
    _, r = read_command(f"{base} --aux-output-config '{{\"enable_return_routed_experts\": true, \"max_bytes\": 4096}}'")
    assert r.options["aux_output_config"] == {"enable_return_routed_experts": True, "max_bytes": 4096}
    _, r = read_command(f"{base} --enable-return-routed-experts --disable-return-routed-experts")
    assert r.options["enable_return_routed_experts"] is False
    with pytest.raises(InputError, match="AuxOutputConfig has no field 'foo'"):
        read_command(f"{base} --aux-output-config '{{\"foo\": 1}}'")
    out = check_command(f"{base} --enable-return-routed-experts", "h100-sxm")
    assert any(w.code == "vllm.aux_output.buffers" for w in out.result.warnings)
    assert "--enable-return-routed-experts" in out.result.command and "--enable-return-routed-experts" in out.vramcalc_command
    dense = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --enable-return-routed-experts", "h100-sxm")
    assert not dense.fits and any("only supports MoE models" in e.text for e in dense.result.errors)


def test_a_store_smaller_than_one_block_is_refused():
    r = check_vllm(load("Qwen/Qwen3-30B-A3B"), find_gpu("h100-sxm"), VLLMOptions(
        engine_version="0.33.0", max_model_len=8192, aux_output_config={"enable_return_routed_experts": True,
                                                                        "max_bytes": 100}))
    assert not r.fits and any("must fit at least one object" in e.text for e in r.errors)
