"""vLLM 0.34.0's extensible KV cache: the bytes it commits after warmup, against vLLM's own
vllm/v1/worker/extensible_kv_cache.py measure_kv_cache_bytes (tests/data/vllm_extensible_kv_oracle_v0.34.0.json,
tools/vllm_extensible_kv_oracle.py), and what the engine check does with it."""

import json
import os

import pytest

from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import (VLLMOptions, _extensible_kv_bytes, _more_kv_cache_memory_hint, check_vllm,
                                   default_utilization)
from vramcalc.vllm.kv import release_settings
from vramcalc.vllm.weights import vllm_rules

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_extensible_kv_oracle_v0.34.0.json")))
GIB = 1 << 30


@pytest.mark.parametrize("c", ORACLE["cases"], ids=lambda c: f"{c['init_free_bytes'] / GIB:.1f}-"
                         f"{c['resident_bytes'] / GIB:.1f}-{c['gpu_memory_utilization']}-{c['margin_floor_bytes']}")
def test_committed_kv_bytes_equal_vllm(c):
    prof = vllm_rules().versions.by_version[ORACLE["release"]]
    assert prof.extensible_kv_cache is not None
    assert prof.extensible_kv_cache.margin_fraction == ORACLE["margin_fraction"]
    gpu = find_gpu("mi300x" if c["margin_floor_bytes"] == 3 * GIB else "h100")
    ours = _extensible_kv_bytes(prof, gpu, c["requested_bytes"], c["init_free_bytes"], c["resident_bytes"],
                                c["transient_peak_bytes"], c["torch_reserve_growth_bytes"])
    assert ours == c["kv_cache_bytes"]


def test_release_defaults_equal_vllms_cache_config():
    """vLLM 0.34.0's CacheConfig: utilization 1.0 unset with the extensible cache, 0.92 without
    (resolved_gpu_memory_utilization), and blocks of 64 tokens (DEFAULT_BLOCK_SIZE); 0.33.0 has neither."""
    d = ORACLE["cache_config_defaults"]
    assert default_utilization("0.34.0") == d["gpu_memory_utilization_extensible"]
    assert default_utilization("0.34.0", extensible=False) == d["gpu_memory_utilization_estimate"]
    spec = load("Qwen/Qwen3-8B")
    assert release_settings(spec, "0.34.0")["block_size"] == d["block_size"]
    assert default_utilization("0.33.0") == 0.92 and release_settings(spec, "0.33.0")["block_size"] == 16


def test_the_flag_is_refused_on_a_release_without_it():
    with pytest.raises(InputError, match="0.34.0 added the extensible KV cache"):
        check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100"),
                   VLLMOptions(engine_version="0.33.0", enable_extensible_kv_cache=True))


def test_asked_for_where_vllm_cannot_use_it_is_vllms_refusal():
    r = check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100"),
                   VLLMOptions(engine_version="0.34.0", enable_extensible_kv_cache=True, num_gpu_blocks_override=100))
    assert any(e.code == "vllm.extensible_kv.unsupported" and e.text.startswith("ValueError: enable_extensible_kv_cache:")
               for e in r.errors)


@pytest.mark.parametrize("h", ORACLE["refusal_hints"], ids=lambda h: f"{h['extensible']}-{h['gpu_memory_utilization']}-"
                         f"{h['after_warmup']}")
def test_refusal_advice_is_vllms(h):
    """_more_kv_cache_memory_hint's words (vLLM 0.34.0), with the cache's default utilization where unset."""
    u = h["gpu_memory_utilization"] or ORACLE["cache_config_defaults"][
        "gpu_memory_utilization_extensible" if h["extensible"] else "gpu_memory_utilization_estimate"]
    assert _more_kv_cache_memory_hint(h["extensible"], u, h["after_warmup"]) == h["hint"]


def test_a_long_context_on_a_small_card_is_refused_with_the_extensible_advice():
    r = check_vllm(load("meta-llama/Llama-3.1-8B-Instruct"), find_gpu("4090"), VLLMOptions(engine_version="0.34.0"))
    assert r.extensible_kv_cache and not r.fits
    e = next(e for e in r.errors if e.code == "vllm.kv.max_model_len")
    assert "The extensible KV cache already takes all device memory left after" in e.text
    assert "--gpu-memory-utilization" not in r.command  # vLLM 0.34 asks to leave it unset with this cache
