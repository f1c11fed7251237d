"""--quant awq / gptq / w4a16 of a catalog model whose family's published third-party checkpoints disagree on what
they leave unquantized (data/quant_targets.json stand_ins): the default is the recipe with the most bytes, and the
answer warns with the bracket between the recipes and what gives exact bytes. The held-out check against a real
start-up log is tests/test_research_extra_logs.py (WEIGHTS_REPORTED)."""

import pytest

from vramcalc.data_files import load as load_data
from vramcalc.data_models import QuantTargets
from vramcalc.gpus import find_gpu
from vramcalc.quant import quantized_bytes, stand_in_bracket, stand_in_family, target_scheme
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

FAMILIES = load_data("quant_targets.json", QuantTargets).stand_ins.families
MODELS = ["qwen3.6-35b-a3b", "qwen3.5-122b-a10b", "qwen3.5-397b-a17b", "qwen3-next-80b-a3b-thinking"]


def test_recipes_cite_where_published_and_keep_their_lists():
    for fam in FAMILIES.values():
        assert fam.default in fam.recipes
        for r in fam.recipes.values():
            assert r.url.startswith(("https://", "http://")) and r.ignore and r.kind


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("quant", ["awq", "gptq", "w4a16"])
def test_default_is_the_published_recipe_with_the_most_bytes(model, quant):
    spec = load(model)
    fam, per = stand_in_bracket(spec, quant)
    got = quantized_bytes(spec, target_scheme(quant, spec)).total
    assert got == per[fam.default] == max(per.values())
    assert got > quantized_bytes(spec, target_scheme(quant)).total  # the target's own default is optimistic here


def test_the_split_gated_deltanet_names_of_qwen35_checkpoints_match():
    """Qwen3.5 / 3.6 checkpoints name in_proj_qkv, in_proj_z, in_proj_b, in_proj_a (transformers
    Qwen3_5GatedDeltaNet): a list naming only in_proj_a / in_proj_b (AutoRound card) leaves the fused ba at bf16."""
    spec = load("qwen3.6-35b-a3b")
    s = target_scheme("awq").model_copy(update={"ignore": ("linear_attn.in_proj_a", "linear_attn.in_proj_b")})
    plain = quantized_bytes(spec, target_scheme("awq")).by_group["ssm"]
    assert quantized_bytes(spec, s).by_group["ssm"] > plain


def test_other_families_keep_the_target_as_it_is():
    for model in ("llama-3.1-8b-instruct", "qwen3-32b", "qwen3.5-27b"):
        spec = load(model)
        assert stand_in_family(spec, "awq") is None
        assert target_scheme("awq", spec) == target_scheme("awq")
    assert stand_in_family(load("qwen3.6-35b-a3b"), "fp8") is None


def test_the_check_warns_with_the_bracket_and_the_repo_to_fetch():
    res = check_vllm(load("qwen3.6-35b-a3b"), find_gpu("h100-sxm"), VLLMOptions(quantization="awq", max_model_len=4096))
    w = [m for m in res.warnings if m.code == "quant.stand_in_bracket"]
    assert len(w) == 1
    assert "19.04 GiB (llmc_qwen3_next_awq) to 20.98 GiB (experts_only_gptq_cards)" in w[0].text
    assert "config.json" in (w[0].fix or "")
    plain = check_vllm(load("llama-3.1-8b-instruct"), find_gpu("h100-sxm"),
                       VLLMOptions(quantization="awq", max_model_len=4096))
    assert not [m for m in plain.warnings if m.code == "quant.stand_in_bracket"]
