"""Nemotron 3 Super's latent MoE and Kimi-K2.5's vision tower (a vision_config without model_type), against
transformers' counts (tests/data/param_oracle.json) and vLLM v0.33.0's layouts."""

import copy
import json

import pytest

from conftest import DATA, catalog_config
from vramcalc.params import count_params, inventory
from vramcalc.sources import load_model
from vramcalc.sources.hf_config import spec_from_config

ORACLE = json.loads((DATA / "param_oracle.json").read_text())["models"]
SUPER = "nvidia__NVIDIA-Nemotron-3-Super-120B-A12B-FP8"


def _spec(cfg, name="test"):
    return spec_from_config(cfg, model_id=name, source="test")


def test_super_counts_equal_transformers_by_group_and_its_name():
    counts = count_params(load_model("nemotron-3-super-fp8"))
    assert counts.total == ORACLE[SUPER]["total"] and counts.by_group["moe_latent"] == ORACLE[SUPER]["by_group"]["moe_latent"]
    # the release's name: 120B total, A12B active
    assert abs(counts.total - 120e9) / 120e9 < 0.01 and abs(counts.active - 12e9) / 12e9 < 0.07, counts.active


def test_latent_experts_read_the_latent_width_and_the_router_the_hidden_one():
    spec = load_model("nemotron-3-super-fp8")
    cfg = catalog_config(SUPER)
    e, i, lat, h = cfg["n_routed_experts"], cfg["moe_intermediate_size"], cfg["moe_latent_size"], cfg["hidden_size"]
    shapes = {t.name.split(".", 3)[-1]: t.shape for t in inventory(spec) if ".layers.1." in t.name}
    assert shapes["mlp.experts.up_proj"] == (e, i, lat) and shapes["mlp.experts.down_proj"] == (e, lat, i)
    assert shapes["mlp.fc1_latent_proj.weight"] == (lat, h) and shapes["mlp.fc2_latent_proj.weight"] == (h, lat)
    assert shapes["mlp.router.weight"] == (e, h)


def test_without_moe_latent_size_the_experts_work_on_hidden_size():
    cfg = copy.deepcopy(catalog_config(SUPER))
    del cfg["moe_latent_size"]
    counts = count_params(_spec(cfg))
    assert counts.by_group["moe_latent"] == 0
    assert counts.by_group["routed_experts"] == ORACLE[SUPER]["by_group"]["routed_experts"] * cfg["hidden_size"] // 1024


def test_latent_projections_are_whole_on_every_tp_rank():
    """vLLM v0.33.0 models/nemotron_h.py NemotronHMoE: fc1/fc2_latent_proj are ReplicatedLinear."""
    from vramcalc.vllm.weights import _rank_shape

    spec = load_model("nemotron-3-super-fp8")
    t = next(t for t in inventory(spec) if t.name.endswith("fc1_latent_proj.weight"))
    assert _rank_shape(t, spec, 4, None) == t.shape


def test_kimi_k25_counts_equal_transformers_vision_tower_included():
    spec = load_model("kimi-k2.5")
    counts = count_params(spec)
    rec = ORACLE["moonshotai__Kimi-K2.5"]
    assert counts.total == rec["total"] and counts.by_group["vision"] == rec["by_group"]["vision"] > 0
    assert spec.vision is not None and spec.vision.num_layers == 27
    # its language model is Kimi-K2's (same DeepSeek-V3 dimensions)
    assert counts.total - counts.by_group["vision"] == ORACLE["moonshotai__Kimi-K2-Instruct"]["total"]
    assert spec.quantization_config["quant_method"] == "compressed-tensors"


LEGACY = {"vt_hidden_size": "hidden_size", "vt_intermediate_size": "intermediate_size",
          "vt_num_hidden_layers": "num_hidden_layers", "vt_num_attention_heads": "num_attention_heads",
          "init_pos_emb_height": "pos_emb_height", "init_pos_emb_width": "pos_emb_width"}


def test_kimi_legacy_tower_keys_read_as_transformers_names():
    """The Hub's legacy names and Kimi_K25VisionConfig's own names size the same tower; a legacy size is honoured
    (a 2-layer tower is smaller than the 27-layer one by 25 encoder layers)."""
    cfg = copy.deepcopy(catalog_config("moonshotai__Kimi-K2.5"))
    legacy = count_params(_spec(cfg)).by_group["vision"]
    renamed = copy.deepcopy(cfg)
    v = renamed["vision_config"]
    for old, new in LEGACY.items():
        v[new] = v.pop(old)
    v["model_type"] = "kimi_k25_vision"
    assert count_params(_spec(renamed)).by_group["vision"] == legacy
    two = copy.deepcopy(cfg)
    two["vision_config"]["vt_num_hidden_layers"] = 2
    h, inter = 1152, 4304
    per_layer = 4 * h + 4 * (h * h + h) + (h * inter + inter) + (inter * h + h)
    assert legacy - count_params(_spec(two)).by_group["vision"] == 25 * per_layer


def test_kimi_bad_merge_kernel_is_refused():
    from vramcalc.errors import ConfigError

    cfg = copy.deepcopy(catalog_config("moonshotai__Kimi-K2.5"))
    cfg["vision_config"]["merge_kernel_size"] = [2]
    with pytest.raises(ConfigError, match="merge_kernel_size"):
        _spec(cfg)


def test_llama_nemotron_super_nas_layout_is_refused_not_read_as_a_uniform_decoder():
    """Llama-3.3-Nemotron-Super-49B (DeciLMForCausalLM): its config has intermediate_size and num_key_value_heads
    null and one block_configs entry per layer; a generic Llama read would size every layer alike."""
    from vramcalc.errors import NotModelledError

    blocks = [{"attention": {"n_heads_in_group": 8, "no_op": i % 3 == 2, "replace_with_linear": False},
               "ffn": {"ffn_mult": 2.625 if i % 2 else 5.25, "no_op": False, "replace_with_linear": False}}
              for i in range(4)]
    cfg = {"architectures": ["DeciLMForCausalLM"], "model_type": "nemotron-nas", "hidden_size": 8192,
           "intermediate_size": None, "num_attention_heads": 64, "num_hidden_layers": 4, "num_key_value_heads": None,
           "vocab_size": 128256, "block_configs": blocks, "torch_dtype": "bfloat16"}
    with pytest.raises(NotModelledError, match="block_configs"):
        _spec(cfg)
