"""VLLM_CONFIDENTIAL_COMPUTE=1 (vLLM 0.34.0) against vLLM's own GPU model runner states built on the CPU with UVA
available and not (tests/data/vllm_conf_compute_oracle_v0.34.0.json, tools/vllm_conf_compute_oracle.py): the device
bytes RequestState and RopeState add without UVA, counted before the KV cache."""

import json
import os

import pytest

from vramcalc.cli import main
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, _conf_compute_bytes, _conf_compute_trace_replay_bytes, check_vllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_conf_compute_oracle_v0.34.0.json")))
PP_OF_DEPTH = {2: 1, 3: 2, 5: 4}  # max(2, max_concurrent_batches), async scheduling: pp + 1


def _spec(dims):
    spec = load("Qwen/Qwen3-8B")
    return spec.model_copy(update={"rope_scaling": {"mrope_section": [16] * dims, "rope_type": "default"}
                                   if dims else None})


def _id(c):
    return (f"seqs{c['max_num_seqs']}-len{c['max_model_len']}-mrope{c['mrope_num_dims']}"
            f"{'-dense' if c['dense_all_token_ids'] else ''}-c{c['max_concurrency']}")


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.34.0" and len(FIXTURE["cases"]) >= 10
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_conf_compute_oracle.py" in FIXTURE["produced_by"]
    assert {c["mrope_num_dims"] for c in FIXTURE["cases"]} >= {0, 3, 4}
    assert {c["max_concurrency"] for c in FIXTURE["cases"]} >= {2, 3, 5}


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_added_device_bytes_against_vllm(c):
    """To the byte: all_token_ids, M-RoPE's prefill positions and the pools' device copies, the Sampler's with them
    (a pooling runner builds no sampler and keeps async scheduling off: the pool depth is then max(2, PP))."""
    spec = _spec(c["mrope_num_dims"])
    opts = VLLMOptions(engine_version="0.34.0", pp=PP_OF_DEPTH[c["max_concurrency"]], confidential_compute=True,
                       speculative_config={"method": "ngram", "num_speculative_tokens": 3}
                       if c["dense_all_token_ids"] else None)
    assert _conf_compute_bytes(spec, opts, c["max_num_seqs"], c["max_model_len"], False) == \
        c["added_bytes"] + c["sampler_added_bytes"]
    if c["max_concurrency"] == 2:
        assert _conf_compute_bytes(spec, opts, c["max_num_seqs"], c["max_model_len"], True) == c["added_bytes"]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_trace_replay_figure_against_vllm(c):
    """--enable-trace-replay's TraceReplayState without UVA: named in the warning (not counted), to the byte."""
    opts = VLLMOptions(engine_version="0.34.0", pp=PP_OF_DEPTH[c["max_concurrency"]], confidential_compute=True)
    assert _conf_compute_trace_replay_bytes(opts, c["max_num_seqs"], c["max_model_len"], False) == \
        c["trace_replay_added_bytes"]


@pytest.mark.parametrize("model,case", [("Qwen/Qwen3-8B", (256, 4096, 0)), ("Qwen/Qwen3.5-0.8B", (128, 8192, 3))])
def test_the_bytes_come_out_of_the_kv_cache(model, case):
    seqs, L, dims = case
    c = next(c for c in FIXTURE["cases"] if (c["max_num_seqs"], c["max_model_len"], c["mrope_num_dims"]) == case
             and c["max_concurrency"] == 2 and not c["dense_all_token_ids"])
    spec, gpu = load(model), find_gpu("h100-sxm")
    base = dict(engine_version="0.34.0", max_model_len=L, max_num_seqs=seqs)
    off = check_vllm(spec, gpu, VLLMOptions(**base))
    on = check_vllm(spec, gpu, VLLMOptions(**base, confidential_compute=True))
    added = c["added_bytes"] + c["sampler_added_bytes"]
    assert off.devices[0].kv_cache_bytes - on.devices[0].kv_cache_bytes == added
    assert on.devices[0].activation_bytes - off.devices[0].activation_bytes == added
    (w,) = [w for w in on.warnings if w.code == "vllm.conf_compute.buffers"]
    assert f"{added / 2**20:.1f} MiB" in w.text
    assert f"{c['trace_replay_added_bytes'] / 2**20:.1f} MiB more" in w.text
    assert [t.value for t in on.trace if t.name == "confidential compute (rank 0)"] == [added]


def test_not_read_before_034_nor_off_cuda():
    spec = load("Qwen/Qwen3-8B")
    for version, gpu in (("0.33.0", "h100-sxm"), ("0.34.0", "mi300x")):
        g = find_gpu(gpu)
        off = check_vllm(spec, g, VLLMOptions(engine_version=version, max_model_len=4096))
        on = check_vllm(spec, g, VLLMOptions(engine_version=version, max_model_len=4096, confidential_compute=True))
        assert on.devices[0].kv_cache_bytes == off.devices[0].kv_cache_bytes
        assert "vllm.conf_compute.ignored" in [w.code for w in on.warnings]


def test_the_uva_offloader_copies_layers_as_with_disable_uva():
    """UVAOffloader.__init__ (unchanged from 0.33.0, whose offloader is the oracle of test_vllm_disable_uva.py):
    uva_offloading = is_uva_available() and not VLLM_WEIGHT_OFFLOADING_DISABLE_UVA."""
    spec, gpu = load("mistralai/Mixtral-8x7B-Instruct-v0.1"), find_gpu("h100-sxm")
    base = dict(engine_version="0.34.0", tp=2, max_model_len=4096, cpu_offload_gb=10)
    cc = check_vllm(spec, gpu, VLLMOptions(**base, confidential_compute=True))
    uva = check_vllm(spec, gpu, VLLMOptions(**base, weight_offloading_disable_uva=True))
    assert cc.devices[0].uva_layer_copy_bytes == uva.devices[0].uva_layer_copy_bytes == 1451311104
    assert "vllm.cpu_offload.no_uva" in [w.code for w in cc.warnings]


def test_pasted_variable():
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 4096"
    _, r = read_command(f"VLLM_CONFIDENTIAL_COMPUTE=1 {base}")
    assert r.options["confidential_compute"] is True
    for val in ("0", "true"):  # forced == "1": any other value is off (vllm/platforms/cuda.py)
        _, r = read_command(f"VLLM_CONFIDENTIAL_COMPUTE={val} {base}")
        assert r.options.get("confidential_compute") is not True


def test_pasted_command_round_trip():
    r = check_command("VLLM_CONFIDENTIAL_COMPUTE=1 vllm serve Qwen/Qwen3-8B --max-model-len 32768 "
                      "--max-num-seqs 1024", "h100-sxm")
    assert "--confidential-compute" in r.vramcalc_command
    assert r.result.command.startswith("VLLM_CONFIDENTIAL_COMPUTE=1 vllm serve")
    c = next(c for c in FIXTURE["cases"] if (c["max_num_seqs"], c["max_model_len"]) == (1024, 32768))
    assert [t.value for t in r.result.trace if t.name == "confidential compute (rank 0)"] == \
        [c["added_bytes"] + c["sampler_added_bytes"]]


def test_check_option(capsys):
    argv = ["check", "Qwen/Qwen3-8B", "--gpu", "h100-sxm", "--engine", "vllm", "--ctx", "4096", "--json"]
    assert main(argv) == 0
    off = json.loads(capsys.readouterr().out)
    assert main(argv + ["--confidential-compute"]) == 0
    on = json.loads(capsys.readouterr().out)
    assert "vllm.conf_compute.buffers" in [w["code"] for w in on["warnings"]]
    assert on["devices"][0]["kv_cache_bytes"] < off["devices"][0]["kv_cache_bytes"]
    assert on["command"].startswith("VLLM_CONFIDENTIAL_COMPUTE=1 vllm serve")
