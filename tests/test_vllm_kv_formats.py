"""vLLM 0.33.0's packed KV cache dtypes (TurboQuant, the per-token-head modes) against vLLM's own planning
(tests/data/vllm_kv_format_oracle_v0.33.0.json, tools/vllm_oracle.py with each layer on the backend CUDA gives the
dtype): TurboQuant's boundary layers, per-layer pages, block sizes and groups, and each budget's blocks, tokens and
concurrency or vLLM's refusal; the models vramcalc does not size these on are refused as not modelled."""

import functools
import json
import os

import pytest

from vramcalc.errors import NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load as _load
from vramcalc.vllm.engine import VLLMOptions, _estimate_max_len, _skip_layers, check_vllm
from vramcalc.vllm.kv import KVSettings, capacity, kv_pool, release_settings

DOCS = [json.load(open(os.path.join(os.path.dirname(__file__), "data", f"vllm_kv_format_oracle_v{v}.json")))
        for v in ("0.33.0", "0.34.0")]
DOC = DOCS[0]
load = functools.lru_cache(maxsize=None)(_load)
SUPPORTED = [(d["release"], c) for d in DOCS for c in d["cases"]]


@pytest.mark.parametrize("d", DOCS, ids=lambda d: d["release"])
def test_fixture_names_release_and_method(d):
    assert "VLLM_TARGET_DEVICE=cpu" in d["produced_by"] and len(d["cases"]) > 100
    assert {c["kv_cache_dtype"] for c in d["cases"]} >= {"turboquant_k8v4", "turboquant_4bit_nc", "turboquant_k3v4_nc",
                                                         "turboquant_3bit_nc", "int8_per_token_head",
                                                         "fp8_per_token_head", "int4_per_token_head"}


@pytest.mark.parametrize("rc", SUPPORTED, ids=[f"{r}-{c['model']}-tp{c['tp']}-{c['kv_cache_dtype']}"
                                               for r, c in SUPPORTED])
def test_pool_equals_vllm(rc):
    release, c = rc
    spec = load(c["model"])
    opts = VLLMOptions(tp=c["tp"], kv_cache_dtype=c["kv_cache_dtype"])
    assert list(_skip_layers(spec, opts)) == c["kv_cache_dtype_skip_layers"]  # TurboQuant's boundary layers
    s = KVSettings(tp=c["tp"], kv_cache_dtype=c["kv_cache_dtype"], max_num_batched_tokens=c["max_num_batched_tokens"],
                   async_scheduling=c["async_scheduling"], max_model_len=c["max_model_len"],
                   kv_skip_layers=_skip_layers(spec, opts), **release_settings(spec, release))
    pool = kv_pool(spec, s)
    L = c["max_model_len"]
    for p in c["plans"]:
        groups = p["groups"]
        assert pool.block_size == min(g["block_size"] for g in groups)
        assert {g["page_size_bytes"] for g in groups} == {pool.page_bytes}
        assert len(pool.groups) == len(groups)
        cap = capacity(pool, p["memory_bytes"], L, s, "current")
        if "refusal" in p:
            assert not cap.fits_one_request
            assert _estimate_max_len([(pool, p["memory_bytes"])], s, L) == p["estimated_max_model_len"] or \
                str(_estimate_max_len([(pool, p["memory_bytes"])], s, L)) in p["refusal"]
        else:
            assert cap.fits_one_request and cap.num_blocks == p["num_blocks"]
            assert abs(cap.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
            assert abs(cap.max_concurrency - p["max_concurrency"]) <= 0.005


def test_what_the_oracle_could_not_plan_is_not_modelled():
    """TurboQuant on Gemma 3's sliding-window layers stops vLLM's own planning (the fixture's unsupported):
    vramcalc refuses it as not modelled rather than sizing it."""
    assert any(u["model"] == "google/gemma-3-12b-it" and u["kv_cache_dtype"].startswith("turboquant_")
               for u in DOC["unsupported"])
    for d in DOCS:
        assert any(u["model"] == "google/gemma-3-12b-it" and u["kv_cache_dtype"].startswith("turboquant_")
                   for u in d["unsupported"])
        with pytest.raises(NotModelledError, match="sliding-window"):
            check_vllm(load("google/gemma-3-12b-it"), find_gpu("h100"),
                       VLLMOptions(kv_cache_dtype="turboquant_3bit_nc", engine_version=d["release"]))


def test_release_gate_and_unmodelled_dtypes():
    """A dtype the release has not got is its error; one vramcalc does not model is refused by name; a packed one on
    an unchecked release is not modelled."""
    spec = load("Qwen/Qwen3-8B")
    r = check_vllm(spec, find_gpu("h100"), VLLMOptions(kv_cache_dtype="turboquant_3bit_nc", engine_version="0.11.0"))
    assert not r.fits and r.errors[0].code in ("vllm.kv_cache_dtype.unknown", "vllm.version.unmodelled")
    with pytest.raises(NotModelledError, match="nvfp4"):
        check_vllm(spec, find_gpu("b200"), VLLMOptions(kv_cache_dtype="nvfp4"))
    with pytest.raises(NotModelledError, match="0.33.0"):
        check_vllm(spec, find_gpu("h100"), VLLMOptions(kv_cache_dtype="int8_per_token_head", engine_version="0.30.0"))


def test_fp8_per_token_head_below_sm89_is_refused_as_triton_refuses_it():
    """TritonAttentionImpl.__init__ (v0.33.0): an fp8 KV cache needs SM 8.9; the 3090 (SM 8.6) is refused."""
    r = check_vllm(load("Qwen/Qwen3-8B"), find_gpu("3090"), VLLMOptions(kv_cache_dtype="fp8_per_token_head",
                                                                        max_model_len=8192))
    assert not r.fits and any("FP8 KV cache is not supported by the Triton attention backend" in e.text
                              for e in r.errors)
    ok = check_vllm(load("Qwen/Qwen3-8B"), find_gpu("3090"), VLLMOptions(kv_cache_dtype="int8_per_token_head",
                                                                         max_model_len=8192))
    assert ok.fits


def test_packed_kv_dtypes_off_nvidia_are_not_modelled():
    """vLLM's ROCm platform selects TurboQuant too (vllm/platforms/rocm.py), but the pages, backend and workspace
    were checked on the CUDA platform's rules only: answering on an MI300X would leave its workspace out."""
    for dtype in ("turboquant_k8v4", "int8_per_token_head"):
        with pytest.raises(NotModelledError, match="modelled on NVIDIA GPUs"):
            check_vllm(load("Qwen/Qwen3-8B"), find_gpu("mi300x"), VLLMOptions(kv_cache_dtype=dtype,
                                                                                max_model_len=8192))
