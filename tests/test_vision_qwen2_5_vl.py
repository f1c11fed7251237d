"""The Qwen2.5-VL vision tower (vramcalc/sources/vision.py _qwen2_5_vl) against vLLM 0.34.0's own model class built on
the meta device, per TP rank (tests/data/vllm_vision_tower_oracle_v0.34.0.json, made by
tools/vllm_vision_tower_oracle.py), and against transformers 5.24 on the meta device (tests/data/param_oracle.json);
the catalog copies it is read from; and what vLLM PR #25631's log lets be replayed."""

import json

import pytest

from conftest import DATA
from vramcalc.sources.catalog import load
from vramcalc.vllm.weights import weights_per_rank

ORACLE = json.loads((DATA / "vllm_vision_tower_oracle_v0.34.0.json").read_text())
PARAMS = json.loads((DATA / "param_oracle.json").read_text())["models"]
MODELS = ["Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"]


def _id(c):
    return f"{c['model']}-tp{c['tp']}"


def test_oracle_names_release_and_method():
    assert ORACLE["release"] == "0.34.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"]
    assert "meta device" in ORACLE["produced_by"] and not ORACLE["failed"]
    assert {(c["model"], c["tp"]) for c in ORACLE["cases"]} == {(m, tp) for m in MODELS for tp in (1, 2, 4)}


@pytest.mark.parametrize("c", ORACLE["cases"], ids=_id)
def test_tower_per_rank_equals_vllm_own(c):
    """Rank 0 holds the sharded part / TP plus the part kept whole (VisionSpec.replicated_params)."""
    v = load(c["model"]).vision
    assert c["architecture"] == "Qwen2_5_VLForConditionalGeneration" and c["tower_modules"] == ["visual"]
    assert c["mm_encoder_tp_mode"] == "weights"
    assert (v.params - v.replicated_params) // c["tp"] + v.replicated_params == c["tower_params_rank0"]
    assert c["tower_param_bytes_rank0"] == 2 * c["tower_params_rank0"]  # bf16
    if c["tp"] > 1:
        assert v.replicated_params == c["tower_whole_params_rank0"]


def test_what_vllm_keeps_whole_under_tp():
    # vLLM v0.34.0 qwen2_5_vl.py: the Conv3dLayer patch embedding, the RMSNorms, the biases of the row-parallel
    # attn.proj, mlp.down_proj and merger mlp.2 (the fixture writes indexes as N: merger.mlp.N.bias is mlp.2's)
    for c in ORACLE["cases"]:
        if c["tp"] > 1:
            assert c["tower_whole_names"] == [
                "visual.blocks.N.attn.proj.bias", "visual.blocks.N.mlp.down_proj.bias", "visual.blocks.N.norm1.weight",
                "visual.blocks.N.norm2.weight", "visual.merger.ln_q.weight", "visual.merger.mlp.N.bias",
                "visual.patch_embed.proj.weight"]


@pytest.mark.parametrize("c", ORACLE["cases"], ids=_id)
def test_whole_model_per_rank_equals_vllm_own(c):
    """Every parameter of rank 0 (text model and tower) exactly; of the buffers, the text model's M-RoPE cos/sin
    cache (4 x 128000 positions: Qwen2.5-VL keeps get_rope's default factor in 0.34, data/vllm.json rotary_cache)
    exactly, leaving the tower's own rotary cache (8192 x 40, not counted) and four float32 attention scales per
    layer."""
    spec = load(c["model"])
    w = weights_per_rank(spec, c["tp"], 1, version="0.34.0")[0]
    assert w.bytes - w.rotary_cache_bytes == c["param_bytes_rank0"]
    assert w.rotary_cache_bytes == 4 * 128000 * 128 * 2
    assert c["buffer_bytes_rank0"] - w.rotary_cache_bytes == c["tower_buffer_bytes_rank0"] + 16 * spec.num_layers
    assert c["tower_buffer_bytes_rank0"] == 8192 * 40 * 2


@pytest.mark.parametrize("stem", ["Qwen__Qwen2.5-VL-3B-Instruct", "Qwen__Qwen2.5-VL-7B-Instruct"])
def test_tower_equals_transformers(stem):
    """transformers 5.24 Qwen2_5_VLForConditionalGeneration on the meta device: the model.visual group."""
    spec = load(stem.replace("__", "/"))
    assert PARAMS[stem]["by_group"]["vision"] == spec.vision.params
    assert not PARAMS[stem]["partial"] and "completed" not in PARAMS[stem]


def test_catalog_copies_are_flat_configs_read_as_qwen2_with_the_tower():
    for m in MODELS:
        spec = load(m)
        assert spec.model_type == "qwen2" and not spec.approximate and spec.vision.kind == "qwen2_5_vl_vision"
        assert spec.vision.num_layers == 32 and spec.vision.hidden_size == 1280
    assert load(MODELS[0]).tie_word_embeddings and not load(MODELS[1]).tie_word_embeddings
