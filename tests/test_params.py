"""Parameter counts against the oracle: transformers' own modules on the meta device
(tools/param_oracle.py -> tests/data/param_oracle.json)."""

import copy
import json

import pytest

from conftest import CATALOG, DATA, catalog_config
from vramcalc.errors import ConfigError
from vramcalc.params import count_params, inventory
from vramcalc.sources.hf_config import spec_from_config

ORACLE = json.loads((DATA / "param_oracle.json").read_text())["models"]
COUNTED = sorted(k for k, v in ORACLE.items() if "skipped" not in v)


def _spec(stem: str, completed: dict | None = None):
    cfg = copy.deepcopy(catalog_config(stem.split("#")[0]))
    if completed:  # the oracle filled these from class defaults; feed the same config
        (cfg.get("text_config") or cfg).update(completed)
    return spec_from_config(cfg, model_id=stem, source="test")


@pytest.mark.parametrize("stem", [k for k in COUNTED if "missing_required" not in ORACLE[k]])
def test_counts_equal_transformers_by_group(stem):
    rec = ORACLE[stem]
    try:
        counts = count_params(_spec(stem, rec.get("completed")))
    except ConfigError as e:
        pytest.fail(f"refused a config transformers instantiates: {e}")
    ours = {g: n for g, n in counts.by_group.items() if n}
    assert ours == rec["by_group"]
    assert counts.total == rec["total"]


def test_at_least_40_full_configs_exact():
    full = [k for k in COUNTED if not ORACLE[k]["partial"] and not ORACLE[k].get("completed")]
    exact = [k for k in full if count_params(_spec(k)).total == ORACLE[k]["total"]]
    assert len(exact) >= 40, exact


def test_every_family_is_covered_by_the_oracle():
    families = {_spec(k, ORACLE[k].get("completed")).model_type for k in COUNTED
                if "missing_required" not in ORACLE[k]}
    expected = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "qwen3_next", "qwen3_5_text",
                "qwen3_5_moe_text", "gemma2", "gemma3_text", "gemma4_text", "phi3", "deepseek_v2",
                "deepseek_v3", "deepseek_v32", "gpt_oss", "llama4_text", "cohere", "glm4_moe", "jamba",
                "mamba2", "falcon_mamba", "falcon_h1", "nemotron_h", "granitemoehybrid", "zamba2",
                "qwen3_vl_text", "qwen3_vl_moe_text", "minimax_m2"}
    assert expected <= families, expected - families


def test_inventory_total_matches_counts():
    spec = _spec("deepseek-ai__DeepSeek-V3")
    from math import prod
    tensors = inventory(spec)
    assert sum(prod(t.shape) for t in tensors if not t.buffer) == count_params(spec).total
    # the noaux_tc routing bias is saved and loaded, but is a buffer, not a parameter
    assert {t.name.split(".")[-1] for t in tensors if t.buffer} == {"e_score_correction_bias"}


# Active parameters per token: published model-card figures (rounded, so a tolerance of the
# rounding) -- transformers has no notion of "active".
@pytest.mark.parametrize("stem,active,tol", [
    ("mistralai__Mixtral-8x7B-Instruct-v0.1", 12.9e9, 0.01),  # "12.9B used per token"
    ("Qwen__Qwen3-30B-A3B", 3.3e9, 0.02),  # "3.3B activated"
    ("Qwen__Qwen3-235B-A22B", 22e9, 0.03),  # "22B activated"
    ("deepseek-ai__DeepSeek-V3", 37e9, 0.03),  # "37B activated"
    ("mistralai__Mixtral-8x22B-Instruct-v0.1", 39e9, 0.02),  # "39B active"
    ("meta-llama__Llama-4-Scout-17B-16E-Instruct", 17e9, 0.03),  # "17B active"
    ("meta-llama__Llama-4-Maverick-17B-128E-Instruct", 17e9, 0.03),  # "17B active"; MoE on every 2nd layer
])
def test_active_params_match_model_cards(stem, active, tol):
    counts = count_params(_spec(stem))
    assert abs(counts.active - active) / active <= tol, counts.active


def test_llama4_moe_layers_follow_interleave_moe_layer_step():
    """Maverick's config gives interleave_moe_layer_step 2 and no moe_layers: Llama4TextConfig derives the MoE
    layers from the step (24 of 48), not from the class-default instance's list (all 48 MoE: ~785B)."""
    spec = _spec("meta-llama__Llama-4-Maverick-17B-128E-Instruct")
    assert [i for i, layer in enumerate(spec.layers) if layer.mlp.kind == "moe"] == list(range(1, 48, 2))
    assert count_params(spec).total == ORACLE["meta-llama__Llama-4-Maverick-17B-128E-Instruct"]["total"]


def test_dense_model_active_equals_total():
    counts = count_params(_spec("meta-llama__Llama-3.1-8B"))
    assert counts.active == counts.total == 8_030_261_248


def test_a_copy_missing_a_required_field_is_refused_naming_it():
    # the GPTQ copy as it was found, before catalog_fixes added its vocab_size
    cfg = {k: v for k, v in catalog_config("Qwen__Qwen2.5-Coder-1.5B-Instruct-GPTQ-Int4").items() if k != "vocab_size"}
    with pytest.raises(ConfigError, match="'vocab_size'"):
        spec_from_config(cfg, model_id="x", source="test")


def _published():
    for path in sorted(CATALOG.glob("*.json")):
        entry = json.loads(path.read_text())
        pub = entry.get("published_params") or {}
        rec = ORACLE.get(path.stem, {})
        # Copies that lack fields cannot stand for the published model (they are tested above
        # against the oracle on the same completed config, or refused).
        if pub.get("total") and not {"missing_required", "skipped", "completed"} & set(rec):
            yield path.stem, pub


# Model cards state sizes to 2-3 significant digits: within 1% is agreement. Beyond it, the
# catalog entry must say why (published_params.difference), and the test checks that it does.
CARD_TOLERANCE = 0.01


@pytest.mark.parametrize("stem,pub", list(_published()))
def test_published_counts_agree_or_the_difference_is_explained(stem, pub):
    counts = count_params(_spec(stem))
    explained = pub.get("difference", {})
    if abs(counts.total - pub["total"]) / pub["total"] > CARD_TOLERANCE:
        assert "total" in explained, f"{stem}: {counts.total:,} vs published {pub['total']:,}, unexplained"
    if pub.get("active") and abs(counts.active - pub["active"]) / pub["active"] > 0.03:
        assert "active" in explained, f"{stem}: active {counts.active:,} vs {pub['active']:,}, unexplained"


def test_embedding_free_active_count_matches_cards_that_use_that_convention():
    # gpt-oss model card: 5.1B and 3.6B active, counted without the embedding table.
    for stem, card in [("openai__gpt-oss-120b", 5.1e9), ("openai__gpt-oss-20b", 3.6e9)]:
        c = count_params(_spec(stem))
        assert abs((c.active - c.by_group["embeddings"]) - card) / card < 0.01
