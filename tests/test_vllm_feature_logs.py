"""Held-out replays of real vLLM start-up logs with --enable-lora (tests/data/vllm_feature_logs.json lora_kv) and
with an EAGLE-3 head whose available memory is printed in GiB (spec_decode_kv records with available_kv_gib). None
was fitted on: the split was set to held_out before the first replay.

Two replays, as benchmarks/vllm_feature_logs.py prints them:
- the KV pool from the printed "Available KV cache memory" (vramcalc/vllm/kv.py kv_pool and capacity, the
  drafter's KV layer in the pool for EAGLE-3): vLLM prints the memory to 2 decimals, so the printed tokens must lie
  between the pools of the printed figure -0.005 and +0.005 GiB (vLLM v0.33.0 vllm/v1/core/kv_cache_utils.py
  get_kv_cache_configs: whole blocks of block_size tokens from the available bytes);
- the whole budget through check_vllm where the record names its GPU: weights (with the adapter slots), activation
  and non-torch memory out of ceil(total x utilization), the KV tokens compared with the printed ones.
"""

import json
import statistics

import pytest

from conftest import DATA
from vllm_feature_records import drafter_pool
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.kv import KVSettings, capacity, kv_pool

GIB = 2**30
LOGS = json.loads((DATA / "vllm_feature_logs.json").read_text())
LORA = LOGS["lora_kv"]
LORA_BUDGET = [r for r in LORA if r["gpu_for_check"]]
EAGLE_GIB = [r for r in LOGS["spec_decode_kv"] if "available_kv_gib" in r["logged"]]
HALF_CENTI_GIB = 0.005 * GIB  # the rounding of a figure printed to 2 decimals


def _band(pool, s, gib, max_model_len):
    """KV tokens at the printed GiB and at its rounding limits, and the concurrency at the printed figure."""
    lo, mid, hi = (capacity(pool, int(gib * GIB + d), max_model_len, s) for d in (-HALF_CENTI_GIB, 0, HALF_CENTI_GIB))
    return lo.kv_cache_tokens, mid, hi.kv_cache_tokens


def _lora_pool(r):
    o = r["options"]
    s = KVSettings(tp=o["tp"], kv_cache_dtype="auto", max_num_batched_tokens=o["max_num_batched_tokens"],
                   max_model_len=o["max_model_len"])
    return _band(kv_pool(load(r["model"]), s), s, r["logged"]["available_kv_gib"], o["max_model_len"])


def _eagle_pool(r, with_drafter=True):
    pool, s = drafter_pool(r, with_drafter)
    return _band(pool, s, r["logged"]["available_kv_gib"], r["options"]["max_model_len"])


def _budget(r, **change):
    return check_vllm(load(r["model"]), find_gpu(r["gpu_for_check"]), VLLMOptions(**{**r["options"], **change}))


def test_the_records_are_held_out_and_cite_their_logs():
    for r in LORA + EAGLE_GIB:
        assert r["split"] == "held_out" and r["url"].startswith("https://github.com/") and r["printed"]
    for r in LORA:
        assert r["options"]["enable_lora"] and any("KV cache size" in line for line in r["printed"])
    assert len(LORA) >= 5 and len(LORA_BUDGET) >= 2 and len(EAGLE_GIB) >= 3


@pytest.mark.parametrize("r", LORA, ids=lambda r: r["id"])
def test_lora_start_up_kv_pool_from_the_printed_memory(r):
    """Mistral-7B with a rank-16 adapter slot, vLLM 0.14.0 / 0.15.0: the adapter slots are weights, taken before the
    KV cache is sized (gpu_model_runner.py load_model), so from the printed memory the pool is the model's alone:
    the printed tokens and concurrency fall inside the rounding band."""
    lo, mid, hi = _lora_pool(r)
    want = r["logged"]["kv_tokens"]
    print(f"\n{r['id']}: {lo}..{hi} tokens from {r['logged']['available_kv_gib']} GiB, logged {want} "
          f"({mid.kv_cache_tokens / want - 1:+.2%} at the printed figure)")
    assert lo <= want <= hi
    assert abs(want / r["options"]["max_model_len"] - r["logged"]["max_concurrency"]) < 0.006


@pytest.mark.parametrize("r", LORA_BUDGET, ids=lambda r: r["id"])
def test_lora_start_up_budget_against_the_log(r):
    """The whole budget from the GPU, the flags and the release (vLLM 0.14.0 takes 0.11.0's rules, data/vllm.json):
    KV tokens within 1% of the printed ones on an L40S (CUDA total 44.40 GiB, data/gpu_cuda_totals.json) and an RTX
    PRO 6000 Blackwell; the weights with the slots within 0.2% of 'Model loading took' (the catalog's v0.3 vocabulary
    is 12 MiB above v0.2's)."""
    res = _budget(r)
    d = res.devices[0]
    want = r["logged"]
    err = res.kv_cache_tokens / want["kv_tokens"] - 1
    print(f"\n{r['id']}: KV {res.kv_cache_tokens} tokens vs logged {want['kv_tokens']} ({err:+.2%}); available "
          f"{d.kv_cache_bytes / GIB:.2f} GiB vs {want['available_kv_gib']}; weights {d.weights_bytes / GIB:.3f} GiB "
          f"(slots {d.lora_bytes / GIB:.3f}) vs {want['model_loading_gib']}")
    assert abs(err) <= 0.01
    assert abs(d.weights_bytes / GIB / want["model_loading_gib"] - 1) <= 0.002
    assert d.lora_bytes > 0 and any(w.code == "vllm.lora.cuda_graphs" for w in res.warnings)


def test_lora_budget_replays_median_within_3_percent():
    """The issue's bar (KV tokens within 3% median over the logs) on the LoRA start-ups whose GPU is named; the
    slots (0.078 GiB) move each replay by 0.1-0.3%."""
    errs = [abs(_budget(r).kv_cache_tokens / r["logged"]["kv_tokens"] - 1) for r in LORA_BUDGET]
    off = [abs(_budget(r, enable_lora=False).kv_cache_tokens / r["logged"]["kv_tokens"] - 1) for r in LORA_BUDGET]
    print(f"\nLoRA budget replays: median |error| {statistics.median(errs):.2%} (without the slots "
          f"{statistics.median(off):.2%}), worst {max(errs):.2%}")
    assert statistics.median(errs) <= 0.03


@pytest.mark.parametrize("r", EAGLE_GIB, ids=lambda r: r["id"])
def test_eagle3_head_kv_layer_against_the_printed_gib(r):
    """Qwen3-8B-AWQ with an EAGLE-3 head on an RTX 5070 Ti, vLLM 0.30.0 and 0.31.0: the head's one decoder layer
    gets a KV spec beside the target's 36 (gpu_model_runner.get_kv_cache_spec), so each 16-token block holds 37
    layers' pages. The printed tokens and concurrency fall inside the rounding band of the printed memory; without
    the head's layer the pool is 2.7% too large, outside it."""
    lo, mid, hi = _eagle_pool(r)
    plain_lo, plain, _ = _eagle_pool(r, with_drafter=False)
    want = r["logged"]["kv_tokens"]
    print(f"\n{r['id']}: {lo}..{hi} tokens from {r['logged']['available_kv_gib']} GiB, logged {want} "
          f"({mid.kv_cache_tokens / want - 1:+.2%}); without the head's layer {plain.kv_cache_tokens} "
          f"({plain.kv_cache_tokens / want - 1:+.2%})")
    assert lo <= want <= hi
    assert round(want / r["options"]["max_model_len"], 2) == r["logged"]["max_concurrency"]
    assert plain_lo > want and plain.kv_cache_tokens / want - 1 > 0.02


def test_every_replayed_kv_log_median_within_3_percent():
    """Every held-out LoRA and EAGLE-3 log of this file, replayed from its printed memory: median |error| of the KV
    tokens at the printed figure (the rounding of the figure alone allows up to 0.2% here)."""
    errs = [abs(_lora_pool(r)[1].kv_cache_tokens / r["logged"]["kv_tokens"] - 1) for r in LORA]
    errs += [abs(_eagle_pool(r)[1].kv_cache_tokens / r["logged"]["kv_tokens"] - 1) for r in EAGLE_GIB]
    print(f"\n{len(errs)} KV pools from the printed memory: median |error| {statistics.median(errs):.2%}, "
          f"worst {max(errs):.2%}")
    assert statistics.median(errs) <= 0.03 and max(errs) <= 0.003
