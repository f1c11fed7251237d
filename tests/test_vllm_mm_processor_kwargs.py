"""--mm-processor-kwargs: vramcalc/vllm/mm_profile.py's dummy items (sizes, tokens per item, the modality profiled,
items per batch) against vLLM 0.34.0's own MultiModalBudget and dummy inputs builder run on CPU over the same kwargs
(tools/vllm_mm_processor_kwargs_oracle.py, tests/data/vllm_mm_processor_kwargs_oracle_v0.34.0.json), case by case."""

import json

import pytest

from conftest import DATA
from vramcalc.vllm.features import features
from vramcalc.vllm.mm_profile import ProcessorKwargsError, dummy_under_kwargs, max_items

ORACLE = json.loads((DATA / "vllm_mm_processor_kwargs_oracle_v0.34.0.json").read_text())
CASES = ORACLE["cases"]


def _id(c):
    return (f"{c['model'].split('/')[1]}-{json.dumps(c['mm_processor_kwargs'], separators=(',', ':'))}"
            f"-L{c['max_model_len']}-b{c['max_num_batched_tokens']}-{c['limit_mm_per_prompt']}")


def test_the_fixture_names_its_release_and_maker():
    assert ORACLE["release"] == "0.34.0"
    assert "vllm_mm_processor_kwargs_oracle.py" in ORACLE["produced_by"]
    assert len(CASES) >= 100 and {c["model"] for c in CASES} == {"Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen3.6-27B"}


def test_the_routed_keys_are_vllms():
    cfg = features().multimodal.encoder_peak.processors
    for c in CASES:
        if "supported_mm_processor_kwargs" in c:
            assert c["supported_mm_processor_kwargs"] == cfg.routed


def test_the_processor_defaults_are_the_catalogs_dummy_items():
    """With no kwargs the computed image is the recorded dummy item (data/vllm_features.json dummy_items)."""
    items = features().multimodal.encoder_peak.dummy_items
    for m in ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen3.6-27B"):
        d = dummy_under_kwargs(m, {}, 128000, True)
        assert d.image == (tuple(items[m].image.grid), items[m].image.tokens)


@pytest.mark.parametrize("c", CASES, ids=[_id(c) for c in CASES])
def test_dummy_tokens_modality_and_items_equal_vllms(c):
    limits = c["limit_mm_per_prompt"] or {}
    video = limits.get("video", 999) > 0
    if "error" in c:
        with pytest.raises(ProcessorKwargsError) as e:
            dummy_under_kwargs(c["model"], c["mm_processor_kwargs"] or {}, c["max_model_len"], video)
        assert str(e.value) == f"{c['error']['type']}: {c['error']['message']}"
        return
    d = dummy_under_kwargs(c["model"], c["mm_processor_kwargs"] or {}, c["max_model_len"], video)
    assert d.image_px == (c["dummy_image"]["width"], c["dummy_image"]["height"])
    v = c.get("dummy_video")
    assert d.video_px == (v and (v["frames"], v["height"], v["width"]))
    tokens = {"image": d.image[1]} | ({"video": d.video[1]} if d.video else {})
    assert tokens == c["tokens_per_item"]
    assert max(tokens, key=lambda m: (tokens[m], m)) == c["modality"]
    mnbt = c["max_num_batched_tokens"]
    budget = max(mnbt, max(tokens.values()))  # compute_mm_encoder_budget over the modalities allowed
    assert budget == c["encoder_cache_size"] == c["encoder_compute_budget"]
    for m, t in tokens.items():
        assert max_items(t, mnbt, budget, budget, limits.get(m, 999), c["max_model_len"], c["max_num_seqs"]) == \
            c["items_per_batch"][m]
