"""Reading config.json: refusals name the file and the field; unknown decoders are approximate."""

import json

import pytest
from pydantic import ValidationError

from conftest import catalog_config
from vramcalc.errors import ConfigError
from vramcalc.sources.hf_config import read_config_file, spec_from_config

LLAMA = catalog_config("meta-llama__Llama-3.1-8B")


def _write(tmp_path, cfg) -> str:
    p = tmp_path / "config.json"
    p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return str(p)


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                                   "intermediate_size"])
def test_missing_core_field_is_refused_naming_file_and_field(tmp_path, field):
    cfg = {k: v for k, v in LLAMA.items() if k != field}
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError) as e:
        read_config_file(path)
    assert path in str(e.value) and f"'{field}'" in str(e.value)


@pytest.mark.parametrize("field,value", [("hidden_size", -1), ("num_hidden_layers", "32"), ("vocab_size", 0),
                                         ("sliding_window", -4), ("num_attention_heads", True)])
def test_wrong_typed_field_is_refused(tmp_path, field, value):
    with pytest.raises(ConfigError) as e:
        read_config_file(_write(tmp_path, {**LLAMA, field: value}))
    assert f"'{field}'" in str(e.value)


def test_invalid_json_is_refused(tmp_path):
    path = _write(tmp_path, '{"model_type": "llama",')
    with pytest.raises(ConfigError) as e:
        read_config_file(path)
    assert path in str(e.value) and "not valid JSON" in str(e.value)


def test_top_level_must_be_an_object(tmp_path):
    with pytest.raises(ConfigError):
        read_config_file(_write(tmp_path, "[1, 2]"))


def test_unknown_decoder_with_standard_fields_is_read_as_approximate():
    cfg = {**LLAMA, "model_type": "brand_new_llm", "architectures": ["BrandNewForCausalLM"]}
    spec = spec_from_config(cfg, model_id="x", source="test")
    assert spec.approximate and "brand_new_llm" in spec.notes[0]
    assert spec.num_layers == 32


def test_unknown_type_without_standard_fields_is_refused():
    with pytest.raises(ConfigError) as e:
        spec_from_config({"model_type": "weird", "hidden_size": 10}, model_id="x", source="t", where="f.json")
    assert "model_type" in str(e.value) and "weird" in str(e.value)


def test_head_dim_is_read_not_derived():
    # Qwen3-32B: head_dim 128 while hidden / heads = 5120 / 64 = 80
    spec = spec_from_config(catalog_config("Qwen__Qwen3-32B"), model_id="x", source="t")
    assert spec.layers[0].attention.head_dim_k == 128


def test_sparse_gemma3_takes_class_defaults_like_transformers():
    # google/gemma-3-4b-it's text_config omits heads and head_dim: Gemma3TextConfig has 8 / 4 / 256
    a = spec_from_config(catalog_config("google__gemma-3-4b-it"), model_id="x", source="t").layers[0].attention
    assert (a.num_heads, a.num_kv_heads, a.head_dim_k) == (8, 4, 256)


def test_missing_sliding_window_never_shrinks_the_cache():
    # MistralConfig's class default is 4096; a copy without the key must not get a window
    cfg = {k: v for k, v in catalog_config("mistralai__Mistral-7B-Instruct-v0.3").items() if k != "sliding_window"}
    spec = spec_from_config(cfg, model_id="x", source="t")
    assert {layer.attention.kind for layer in spec.layers} == {"full"}


def test_spec_is_immutable_and_round_trips_through_json():
    spec = spec_from_config(catalog_config("deepseek-ai__DeepSeek-V3"), model_id="x", source="t")
    with pytest.raises(ValidationError):  # frozen
        spec.hidden_size = 1
    again = type(spec).model_validate_json(spec.model_dump_json())
    assert again == spec


def test_quantization_config_is_kept_raw():
    spec = spec_from_config(catalog_config("openai__gpt-oss-120b"), model_id="x", source="t")
    assert spec.quantization_config["quant_method"] == "mxfp4"


def test_composite_tie_flag_follows_the_top_level_config_and_notes_disagreement():
    spec = spec_from_config(catalog_config("Qwen__Qwen3.5-4B"), model_id="x", source="t")
    assert spec.tie_word_embeddings is False  # Qwen3_5Config default; transformers builds an lm_head
    assert any("tie_word_embeddings" in n for n in spec.notes)


def test_absurd_counts_are_refused_before_anything_is_built():
    import time
    t = time.perf_counter()
    with pytest.raises(ConfigError, match="beyond any real model"):
        spec_from_config({**LLAMA, "num_hidden_layers": 2**60}, model_id="x", source="t")
    with pytest.raises(ConfigError, match="beyond any real model"):
        spec_from_config({**LLAMA, "hidden_size": 2**62}, model_id="x", source="t")
    assert time.perf_counter() - t < 1


def test_hostile_json_is_bounded(tmp_path):
    """Nesting past the decoder's depth guard and files larger than any real config end in our own error,
    the second before the file is read."""
    path = _write(tmp_path, "[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_config_file(path)
    big = tmp_path / "big" / "config.json"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(17 * 2**20)  # sparse: 17 MiB that are never read
    with pytest.raises(ConfigError, match="larger than any real model file"):
        read_config_file(big)
