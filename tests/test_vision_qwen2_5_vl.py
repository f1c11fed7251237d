"""The Qwen2.5-VL and Qwen2-VL vision towers (vramcalc/sources/vision.py _qwen2_5_vl, _qwen2_vl) against vLLM 0.34.0's
own model classes built on the meta device, per TP rank, and transformers 5.24's on the meta device
(tests/data/vllm_vision_tower_oracle_v0.34.0.json, made by tools/vllm_vision_tower_oracle.py; the catalog's
Qwen2.5-VL copies also in tests/data/param_oracle.json); the catalog copies they are read from; and what vLLM
PR #25631's log lets be replayed."""

import json

import pytest

from conftest import DATA
from vramcalc.sources.catalog import load as _load
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.weights import weights_per_rank

ORACLE = json.loads((DATA / "vllm_vision_tower_oracle_v0.34.0.json").read_text())
PARAMS = json.loads((DATA / "param_oracle.json").read_text())["models"]
MODELS = ["Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"]


WHOLE = {  # what vLLM 0.34 keeps whole under TP (the fixture writes indexes as N: merger.mlp.N.bias is mlp.2's)
    "Qwen2_5_VLForConditionalGeneration": [  # models/qwen2_5_vl.py: RMSNorms, no norm bias
        "visual.blocks.N.attn.proj.bias", "visual.blocks.N.mlp.down_proj.bias", "visual.blocks.N.norm1.weight",
        "visual.blocks.N.norm2.weight", "visual.merger.ln_q.weight", "visual.merger.mlp.N.bias",
        "visual.patch_embed.proj.weight"],
    "Qwen2VLForConditionalGeneration": [  # models/qwen2_vl.py: LayerNorms with their biases
        "visual.blocks.N.attn.proj.bias", "visual.blocks.N.mlp.fc2.bias", "visual.blocks.N.norm1.bias",
        "visual.blocks.N.norm1.weight", "visual.blocks.N.norm2.bias", "visual.blocks.N.norm2.weight",
        "visual.merger.ln_q.bias", "visual.merger.ln_q.weight", "visual.merger.mlp.N.bias",
        "visual.patch_embed.proj.weight"],
}


def load(c):
    """The catalog model, or the config the oracle was built from where it is no catalog model."""
    return spec_from_config(c["config"], model_id=c["model"], source="test") if "config" in c else _load(c["model"])


def _id(c):
    return f"{c['model']}-tp{c['tp']}"


def test_oracle_names_release_and_method():
    assert ORACLE["release"] == "0.34.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"]
    assert "meta device" in ORACLE["produced_by"] and not ORACLE["failed"]
    assert {(c["model"], c["tp"]) for c in ORACLE["cases"]} == \
        {(m, tp) for m in MODELS + ["qwen2_vl-constructed"] for tp in (1, 2, 4)}


@pytest.mark.parametrize("c", ORACLE["cases"], ids=_id)
def test_tower_per_rank_equals_vllm_own(c):
    """Rank 0 holds the sharded part / TP plus the part kept whole (VisionSpec.replicated_params)."""
    v = load(c).vision
    assert c["architecture"] in WHOLE and c["tower_modules"] == ["visual"] and c["mm_encoder_tp_mode"] == "weights"
    assert (v.params - v.replicated_params) // c["tp"] + v.replicated_params == c["tower_params_rank0"]
    assert c["tower_param_bytes_rank0"] == 2 * c["tower_params_rank0"]  # bf16
    if c["tp"] > 1:
        assert v.replicated_params == c["tower_whole_params_rank0"]


def test_what_vllm_keeps_whole_under_tp():
    # the Conv3dLayer patch embedding, the norms, the biases of the row-parallel attn.proj, MLP down projection and
    # merger mlp.2: what replicated_params counts
    for c in ORACLE["cases"]:
        if c["tp"] > 1:
            assert c["tower_whole_names"] == WHOLE[c["architecture"]]


@pytest.mark.parametrize("c", [c for c in ORACLE["cases"] if c["tp"] == 1], ids=_id)
def test_tower_equals_transformers_own(c):
    assert c["transformers_tower_params"] == {"release": "5.24.0", "params": load(c).vision.params}


@pytest.mark.parametrize("c", ORACLE["cases"], ids=_id)
def test_whole_model_per_rank_equals_vllm_own(c):
    """Every parameter of rank 0 (text model and tower) exactly; of the buffers, the text model's M-RoPE cos/sin
    cache (4 x 128000 positions: Qwen2.5-VL keeps get_rope's default factor in 0.34, data/vllm.json rotary_cache)
    exactly, leaving the tower's own rotary cache (8192 x 40, not counted) and four float32 attention scales per
    layer."""
    spec = load(c)
    w = weights_per_rank(spec, c["tp"], 1, version="0.34.0")[0]
    assert w.bytes - w.rotary_cache_bytes == c["param_bytes_rank0"]
    assert w.rotary_cache_bytes == 4 * spec.max_position_embeddings * 128 * 2
    assert c["buffer_bytes_rank0"] - w.rotary_cache_bytes == c["tower_buffer_bytes_rank0"] + 16 * spec.num_layers
    assert c["tower_buffer_bytes_rank0"] == 8192 * 40 * 2


@pytest.mark.parametrize("stem", ["Qwen__Qwen2.5-VL-3B-Instruct", "Qwen__Qwen2.5-VL-7B-Instruct"])
def test_tower_equals_transformers(stem):
    """transformers 5.24 Qwen2_5_VLForConditionalGeneration on the meta device: the model.visual group."""
    spec = _load(stem.replace("__", "/"))
    assert PARAMS[stem]["by_group"]["vision"] == spec.vision.params
    assert not PARAMS[stem]["partial"] and "completed" not in PARAMS[stem]


def test_catalog_copies_are_flat_configs_read_as_qwen2_with_the_tower():
    for m in MODELS:
        spec = _load(m)
        assert spec.model_type == "qwen2" and not spec.approximate and spec.vision.kind == "qwen2_5_vl_vision"
        assert spec.vision.num_layers == 32 and spec.vision.hidden_size == 1280
    assert _load(MODELS[0]).tie_word_embeddings and not _load(MODELS[1]).tie_word_embeddings


LOG = next(r for r in json.loads((DATA / "vllm_feature_logs.json").read_text())["multimodal"] if r["id"] == "vllm25631")


def test_pr_25631_log_stays_context_and_above_it_stands_the_upper_bound():
    """vLLM PR #25631 (Qwen2.5-VL-3B-Instruct, A100-40GB): 5.26 GiB of KV with images and videos profiled, 25.05 GiB with
    video at 0. The encoder's profiling peak is not sized (the log's note says why), so the log is context, never fitted;
    what is checked is that vramcalc's KV, which lacks that term, is the upper bound its warning says, in both
    settings, and that the warning is raised in both (images keep their default limit with video at 0)."""
    from vramcalc.gpus import find_gpu
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    assert LOG["split"] == "context" and LOG["model"] == MODELS[0] and "not replayed" in LOG["note"]
    spec, gpu = _load(LOG["model"]), find_gpu("a100-40gb")
    got = {}
    for key, limits in (("kv_gib_image_and_video", None), ("kv_gib_video_off", {"image": 1, "video": 0})):
        r = check_vllm(spec, gpu, VLLMOptions(engine_version="0.11.0", limit_mm_per_prompt=limits))
        assert "vllm.mm.encoder_profile" in [w.code for w in r.warnings]
        got[key] = r.devices[0].kv_cache_bytes / 2**30
        print(f"\n{key}: vramcalc {got[key]:.2f} GiB (no encoder term) vs logged {LOG[key]} GiB")
        assert got[key] > LOG[key]
