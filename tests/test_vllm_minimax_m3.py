"""MiniMax-M3 read for vLLM v0.34.0, against vLLM's own model class built on the meta device, its KV cache specs and
KV planning (tests/data/vllm_minimax_m3_oracle_v0.34.0.json, tools/vllm_minimax_m3_oracle.py)."""

import json
import os
import re
from math import prod

import pytest

from vramcalc.cache_kinds import FullAttention, cache_layers
from vramcalc.errors import NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, _kv_settings, check_vllm, msa_score_bytes
from vramcalc.vllm.kv import capacity, kv_pool
from vramcalc.vllm.weights import _rank_shape, _vllm_tensors, weights_per_rank

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_minimax_m3_oracle_v0.34.0.json")))
GIB = 1 << 30
CASES = ORACLE["cases"]
# the same default case built with vLLM's ROCm implementation (vllm/models/minimax_m3/amd/model.py)
ROCM = ORACLE["rocm_class_cases"]


def _spec():
    return load("MiniMaxAI/MiniMax-M3")


def _id(c):
    return ("rocm-" if ".amd." in c["model_class"] else "") + f"tp{c['tp']}-{c['kv_cache_dtype']}-{c['max_model_len']}" + (f"-bs{c['block_size_arg']}"
                                                                         if c["block_size_arg"] else "")


def _default(c):
    return c["kv_cache_dtype"] == "auto" and c["max_model_len"] == 65536 and not c["block_size_arg"]


@pytest.mark.parametrize("c", [c for c in CASES if _default(c)] + ROCM, ids=_id)
def test_parameters_per_rank_equal_vllm(c):
    spec = _spec()
    tp = c["tp"]
    n = 0
    for t in _vllm_tensors(spec):
        m = re.match(r"model\.layers\.(\d+)\.", t.name)
        if t.group != "vision":
            n += prod(_rank_shape(t, spec, tp, spec.layers[int(m.group(1))] if m else None))
    assert n == c["text_params_rank0"]
    w = weights_per_rank(spec, tp, version=ORACLE["release"])[0]
    # the whole model (text and vision tower, the tower's float32 patch embedding included) on rank 0
    assert w.bytes - w.rotary_cache_bytes == c["weight_bytes_rank0"]
    assert w.rotary_cache_bytes == c["cos_sin_cache_bytes"]
    v = spec.vision
    assert (v.params - v.replicated_params) // tp + v.replicated_params == c["vision_params_rank0"]
    assert c["weight_bytes_rank0"] - c["vision_weight_bytes_rank0"] == c["text_weight_bytes_rank0"]


def test_sparse_and_moe_layers():
    spec = _spec()
    sparse = [i for i, la in enumerate(spec.layers) if la.attention is not None and la.attention.index_n_heads]
    assert all(sparse == c["sparse_layers"] for c in CASES)
    assert not spec.approximate and spec.vision is not None and spec.vision.kind == "minimax_m3_vl_vision"
    assert sum(la.mlp.kind == "moe" for la in spec.layers) == 57 and spec.layers[0].mlp.intermediate_size == 12288


@pytest.mark.parametrize("c", CASES + ROCM, ids=_id)
def test_kv_specs_and_planning_equal_vllm(c):
    spec = _spec()
    opts = VLLMOptions(engine_version=ORACLE["release"], tp=c["tp"], kv_cache_dtype=c["kv_cache_dtype"],
                       max_model_len=c["max_model_len"], block_size=c["block_size_arg"])
    s = _kv_settings(spec, opts, ORACLE["release"], c["max_num_batched_tokens"], c["max_model_len"])
    pool = kv_pool(spec, s)
    assert pool.block_size == c["cache_block_size"]
    # per layer kind: the K/V page and the index-key page, as vLLM's get_kv_cache_spec gives them
    full = [la.attention for la in cache_layers(spec)]
    assert all(isinstance(a, FullAttention) for a in full)
    by_role = {row["role"]: row for row in c["layer_specs"]}
    kvb = 1 if c["kv_cache_dtype"] == "fp8" else 2
    assert full[0].bytes_per_token(kvb, c["tp"]) * pool.block_size == by_role["attn"]["page_size_bytes"]
    assert by_role["attn"]["layers"] == len(spec.layers)
    idx = [a for a in full if a.index_dim]
    assert len(idx) == by_role["index_cache"]["layers"]
    assert idx[0].index_dim * 2 * pool.block_size == by_role["index_cache"]["page_size_bytes"]
    for p in c["plans"]:
        (g,) = p["groups"]
        assert (pool.page_bytes, sum(x.layers for x in pool.groups)) == (g["page_size_bytes"], g["layers"])
        cap = capacity(pool, p["memory_bytes"], c["max_model_len"], s)
        if "refusal" in p:
            assert not cap.fits_one_request
            continue
        assert cap.num_blocks == p["num_blocks"] and abs(cap.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
        assert cap.fits_one_request


def test_the_engine_check_holds_vllms_weights_and_plans_its_kv():
    """check_vllm at TP 8 on H200: each rank's weights are vLLM's parameters and cos/sin cache, and the blocks it
    plans are vLLM's for the bytes it leaves the KV cache (kv_pool / capacity, checked above)."""
    c8 = next(c for c in CASES if c["tp"] == 8 and _default(c))
    spec = _spec()
    opts = VLLMOptions(engine_version=ORACLE["release"], tp=8, max_model_len=65536)
    r = check_vllm(spec, find_gpu("h200-sxm"), opts)
    assert all(d.weights_bytes == c8["weight_bytes_rank0"] + c8["cos_sin_cache_bytes"] for d in r.devices)
    s = _kv_settings(spec, opts, ORACLE["release"], c8["max_num_batched_tokens"], 65536)
    assert r.num_gpu_blocks == capacity(kv_pool(spec, s), r.devices[0].kv_cache_bytes, 65536, s).num_blocks


def test_a_block_size_the_msa_kernels_cannot_split_is_not_modelled():
    """The MSA backends take 128-token kernel blocks only (data/vllm.json minimax_m3_msa); a 256-token block is split
    into them and planned as vLLM plans it (the bs256 cases above), a 64-token one is not."""
    spec = _spec()
    with pytest.raises(NotModelledError, match="--block-size 64 on MiniMax-M3"):
        _kv_settings(spec, VLLMOptions(engine_version=ORACLE["release"], block_size=64), ORACLE["release"], 8192, 65536)


def test_a_transformers_saved_config_reads_the_same_model():
    """transformers 5.24 saves MiniMaxM3VLTextConfig with layer_types / mlp_layer_types and flat index_* fields
    (model_type minimax_m3_vl_text): the same layers, tower and weights as the Hub form."""
    from vramcalc.sources.hf_config import spec_from_config

    saved = json.load(open(os.path.join(os.path.dirname(__file__), "data", "minimax_m3_transformers_saved_config.json")))
    a, b = spec_from_config(saved["config"], model_id="saved", source="test"), _spec()
    assert a.layers == b.layers and a.vision == b.vision
    assert weights_per_rank(a, 2)[0].bytes == weights_per_rank(b, 2)[0].bytes


@pytest.mark.parametrize("c", ORACLE["score_cases"], ids=lambda c: f"{c['index_heads']}-{c['tokens']}-{c['max_seq_len']}")
def test_the_indexer_score_tensor_the_warning_names_is_vllms(c):
    """vllm.minimax_m3.indexer_scores: the prefill score tensor vLLM's minimax_m3_index_score allocates at run time
    (outside the profile run), as it asks torch.empty for it."""
    assert msa_score_bytes(c["index_heads"], c["tokens"], c["max_seq_len"]) == c["bytes"]
    assert c["dtype"] == "float32"
    r = check_vllm(_spec(), find_gpu("h200-sxm"), VLLMOptions(engine_version=ORACLE["release"], tp=8, max_model_len=65536))
    assert any(w.code == "vllm.minimax_m3.indexer_scores" for w in r.warnings)


def test_the_model_modules_own_variables_are_not_modelled():
    """MiniMax-M3's modules read VLLM_ROCM_MINIMAX_M3_MONO* and VLLM_MINIMAX_M3_MSA_CUTLASS_MIN_BATCH with os.getenv
    (not vllm/envs.py): a pasted command with one is warned about as not modelled, not listed as no effect."""
    from vramcalc.pasted_command import check_command

    r = check_command("VLLM_ROCM_MINIMAX_M3_MONO=1 vllm serve MiniMaxAI/MiniMax-M3 --tensor-parallel-size 8",
                      "8xmi355x")
    assert any(w.code == "command.not_modelled" and w.text.startswith("VLLM_ROCM_MINIMAX_M3_MONO=1")
               for w in r.warnings)
    assert not any("VLLM_ROCM_MINIMAX_M3_MONO" in n for n in r.no_effect)


@pytest.mark.parametrize("c", ORACLE["mega_moe_refusals"], ids=lambda c: "ep" if c["engine_args"].get(
    "enable_expert_parallel") else "no-ep")
def test_mega_moe_on_the_bf16_checkpoint_is_vllms_refusal(c):
    opts = VLLMOptions(engine_version=ORACLE["release"], tp=c["tp"], moe_backend="deep_gemm_mega_moe",
                       enable_expert_parallel=bool(c["engine_args"].get("enable_expert_parallel")))
    r = check_vllm(_spec(), find_gpu("b200"), opts)
    assert not r.fits
    assert [e.text for e in r.errors if e.code == "vllm.minimax_m3.mega_moe"] == [c["refusal"]]
