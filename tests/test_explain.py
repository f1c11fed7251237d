"""`vramcalc explain`: the trace is the arithmetic the verdict used, term by term, with its rule."""

import json

import pytest

from vramcalc.cli import main
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm


def _terms(result):
    return {t.name: t for t in result.trace}


def test_vllm_trace_adds_up_to_the_kv_pool_and_blocks():
    r = check_vllm(load("qwen3-32b"), find_gpu("h100-sxm"), VLLMOptions(engine_version="0.33.0", max_model_len=32768))
    t = _terms(r)
    d = r.devices[0]
    assert t["budget"].value == d.budget_bytes and t["weights (rank 0)"].value == d.weights_bytes
    kv = t["budget"].value - t["weights (rank 0)"].value - t["activation (rank 0)"].value - t["non-torch"].value \
        - t["cuda graphs"].value
    assert kv == t["kv available (worst rank)"].value == d.kv_cache_bytes
    assert t["blocks"].value == kv // t["bytes per block"].value == r.num_gpu_blocks
    assert t["KV cache tokens"].value == r.kv_cache_tokens
    assert t["margin (rank 0)"].value == d.uncertainty_bytes
    assert all(x.formula for x in r.trace) and all(x.source for x in r.trace if x.name != "max concurrency")


def test_vllm_034_trace_shows_the_extensible_cache_bounding_the_pool():
    """vLLM 0.34.0: the pool is the smaller of the profile's estimate (the 0.33 arithmetic, budget = total) and what
    the extensible cache measures after warmup (vllm/v1/worker/extensible_kv_cache.py measure_kv_cache_bytes)."""
    r = check_vllm(load("qwen3-32b"), find_gpu("h100-sxm"), VLLMOptions(engine_version="0.34.0", max_model_len=32768))
    t, d = _terms(r), r.devices[0]
    ext = t["KV cache, extensible (rank 0)"]
    estimate = t["budget"].value - t["weights (rank 0)"].value - t["activation (rank 0)"].value - t["non-torch"].value \
        - t["cuda graphs"].value
    assert ext.inputs["profile_estimate"] == estimate and t["budget"].value == d.total_bytes
    assert ext.value == min(estimate, ext.inputs["measured"]) == t["kv available (worst rank)"].value == d.kv_cache_bytes
    assert t["blocks"].value == d.kv_cache_bytes // t["bytes per block"].value == r.num_gpu_blocks


def test_llamacpp_trace_adds_up_to_the_device_total():
    r = check_llamacpp(load("llama-3.1-8b"), find_gpu("rtx4070"), LlamaOptions(ftype="Q4_K_M", n_ctx=32768))
    t = _terms(r)
    gpu = r.devices[0]
    assert t["model buffer (GPUs)"].value + t["KV on the GPUs"].value + gpu.compute_buffer_bytes \
        == t["total (rtx-4070)"].value == gpu.total_bytes
    assert t["KV single"].value == 32768 * 131072 and t["KV single"].inputs["cells"] == 32768


def test_plain_trace_adds_up(capsys):
    code = main(["explain", "llama-3.1-8b", "--gpu", "rtx4090", "--ctx", "8192", "--json"])
    out = json.loads(capsys.readouterr().out)
    t = {x["name"]: x["value"] for x in out["trace"]}
    assert code == 0 and out["fits"] is True
    assert t["weights"] + t["kv:full"] == t["required"] and t["available"] - t["required"] == t["free"]


@pytest.mark.parametrize("argv", [
    ["explain", "llama-3.1-8b", "--gpu", "rtx4090", "--ctx", "8192", "--engine", "vllm"],
    ["explain", "llama-3.1-8b", "--gpu", "rtx4070", "--ctx", "8192", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M"],
])
def test_explain_prints_each_term_with_formula_and_rule_and_keeps_the_exit_code(capsys, argv):
    code = main(argv)
    out = capsys.readouterr().out
    check = main(["check", *argv[1:]])
    capsys.readouterr()
    assert code == check == 0
    assert out.count("    = ") >= 6 and out.count("rule: ") >= 5 and out.rstrip().endswith("verdict fits")
