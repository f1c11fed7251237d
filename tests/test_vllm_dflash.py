"""--speculative-config method dflash (vramcalc/vllm/spec_decode.py _plan_dflash, sources/hf_config.py
_dflash_layer_types) against vLLM 0.34.0's own DFlash drafter built on the meta device
(tools/vllm_dflash_oracle.py, tests/data/vllm_dflash_oracle_v0.34.0.json): its bytes per rank (parameters less
the target's shared embedding and LM head, plus the fused context K/V weight it builds after loading on a GPU)
and every draft layer's KV cache spec."""

import json

import pytest

from conftest import DATA
from vramcalc.errors import ConfigError
from vramcalc.sources.catalog import load
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.kv import KVSettings, kv_pool
from vramcalc.vllm.spec_decode import plan_speculative

ORACLE = json.loads((DATA / "vllm_dflash_oracle_v0.34.0.json").read_text())


def _draft(name):
    return spec_from_config(ORACLE["draft_configs"][name], model_id=f"{name}-dflash", source="config:test")


def _plan(case):
    cfg = {"method": "dflash", "model": f"{case['draft_config']}-dflash",
           "num_speculative_tokens": case["num_speculative_tokens"]}
    return plan_speculative(cfg, load(case["target"]), case["tp"], 1, 8192, None, _draft(case["draft_config"]))


def test_oracle_names_its_release_and_method():
    assert ORACLE["release"] == "0.34.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"]
    assert {c["tp"] for c in ORACLE["cases"]} == {1, 2}
    kinds = {tuple(r["kind"] for r in c["layers"].values()) for c in ORACLE["cases"]}
    assert ("SlidingWindowSpec",) * 4 + ("FullAttentionSpec",) in kinds and ("FullAttentionSpec",) * 5 in kinds


@pytest.mark.parametrize("case", ORACLE["cases"], ids=lambda c: f"{c['draft_config']}-tp{c['tp']}")
def test_drafter_bytes_per_rank_equal_vllms(case):
    """The drafter's own parameters (vLLM's embed_tokens and lm_head are replaced by the target's) plus the fused
    context K/V weight, exact."""
    plan = _plan(case)
    assert not plan.errors
    assert plan.weight_bytes == case["own_param_bytes_per_rank"] + case["fused_kv_buffer_bytes_per_rank"]
    shared = sum(b for n, b in case["params"].items() if n.startswith(("model.embed_tokens.", "lm_head.")))
    assert shared == case["shared_with_target_bytes_per_rank"] > 0


@pytest.mark.parametrize("case", ORACLE["cases"], ids=lambda c: f"{c['draft_config']}-tp{c['tp']}")
def test_draft_kv_layers_equal_vllms_specs(case):
    """Each draft layer's KV spec: full or sliding window (with its window), KV heads on the rank, head size and
    the page bytes of one block, as vLLM's get_kv_cache_spec gives them."""
    plan = _plan(case)
    want = list(case["layers"].values())
    assert len(plan.draft_layers) == len(want)
    for layer, row in zip(plan.draft_layers, want, strict=True):
        a = layer.attention
        kind = "SlidingWindowSpec" if a.kind == "sliding" else "FullAttentionSpec"
        assert (kind, max(1, a.num_kv_heads // case["tp"]), a.head_dim_k, a.window) == \
            (row["kind"], row["num_kv_heads"], row["head_size"], row.get("sliding_window"))
        assert row["block_size"] * 2 * max(1, a.num_kv_heads // case["tp"]) * a.head_dim_k * 2 == \
            row["page_size_bytes"]


@pytest.mark.parametrize("case", ORACLE["cases"], ids=lambda c: f"{c['draft_config']}-tp{c['tp']}")
def test_draft_layers_join_the_pool(case):
    """The draft layers join the target's KV cache groups (as EAGLE's do): the pool holds them too."""
    target = load(case["target"])
    plan = _plan(case)
    s = KVSettings(tp=case["tp"], kv_cache_dtype="auto", max_num_batched_tokens=8192,
                   num_speculative_tokens=case["num_speculative_tokens"])
    alone = kv_pool(target, s)
    joined = kv_pool(target.model_copy(update={"layers": target.layers + plan.draft_layers}), s)
    assert sum(g.layers for g in joined.groups) == sum(g.layers for g in alone.groups) + len(case["layers"])


@pytest.mark.parametrize("case", ORACLE["unsupported"], ids=lambda c: f"{c['draft_config']}-tp{c['tp']}")
def test_a_sliding_layer_without_a_window_is_refused_as_vllm_does(case):
    assert "DFlash sliding attention requires a window size" in case["error"]
    with pytest.raises(ConfigError, match="DFlash sliding attention requires a window size"):
        _draft(case["draft_config"])


def test_refusals():
    target = load("Qwen/Qwen3-8B")
    plan = plan_speculative({"method": "dflash", "num_speculative_tokens": 5}, target, 1, 1, 8192, None)
    assert plan.errors and "without speculative model" in plan.errors[0].text
    cfg = {**ORACLE["draft_configs"]["full5"], "dflash_config": {**ORACLE["draft_configs"]["full5"]["dflash_config"],
                                                                 "sample_from_anchor": True}}
    draft = spec_from_config(cfg, model_id="x-dflash", source="config:test")
    plan = plan_speculative({"method": "dflash", "model": "x-dflash", "num_speculative_tokens": 5}, target, 1, 1,
                            8192, None, draft)
    assert any("sample_from_anchor=True is not supported for DFlash" in m.text for m in plan.errors)


def test_a_quantized_drafter_is_not_modelled():
    from vramcalc.errors import NotModelledError

    cfg = {**ORACLE["draft_configs"]["full5"], "quantization_config": {"quant_method": "fp8", "activation_scheme":
                                                                      "dynamic"}}
    draft = spec_from_config(cfg, model_id="x-dflash", source="config:test")
    with pytest.raises(NotModelledError, match="quantized DFlash drafter"):
        plan_speculative({"method": "dflash", "model": "x-dflash", "num_speculative_tokens": 5},
                         load("Qwen/Qwen3-8B"), 1, 1, 8192, None, draft)
