"""Values nobody validated gave false fits: a negative head_count_kv a negative KV cache, a
quantization_config with bits 0 negative weights. Every number from a file is checked: a bad one
is refused with one line naming the file, the field and the value (exit 2 in the CLI)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import catalog_config
from vramcalc.check import check
from vramcalc.cli import main
from vramcalc.errors import ConfigError, VramcalcError
from vramcalc.gpus import find_gpu
from vramcalc.quant import scheme_from_config
from vramcalc.sources import catalog
from vramcalc.sources.gguf_header import GGUFHeader, GGUFTensorInfo
from vramcalc.sources.gguf_spec import spec_from_gguf
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.sources.safetensors_header import parse_header
from vramcalc.sources.validate import MAX_CONTEXT, MAX_HIDDEN, MAX_LAYERS, check_spec

LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
         "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}


def read(cfg: dict[str, Any]):
    return spec_from_config(cfg, model_id="t", source="config:t/config.json", where="t/config.json")


def refused(cfg: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        read(cfg)
    assert "\n" not in str(e.value)
    return e.value


# ---------------------------------------------------------------- config.json


@pytest.mark.parametrize("field,value", [
    ("num_key_value_heads", -8), ("num_key_value_heads", 0), ("num_key_value_heads", 8.0),
    ("num_key_value_heads", True), ("num_key_value_heads", "8"), ("num_key_value_heads", [8]),
    ("num_key_value_heads", 5),  # does not divide 32 heads
    ("num_attention_heads", -32), ("num_attention_heads", 0), ("hidden_size", -4096), ("hidden_size", 4096.5),
    ("hidden_size", MAX_HIDDEN + 1), ("num_hidden_layers", MAX_LAYERS + 1), ("num_hidden_layers", 0),
    ("intermediate_size", -1), ("intermediate_size", 0), ("vocab_size", 0), ("vocab_size", -5),
    ("max_position_embeddings", -1), ("max_position_embeddings", 0), ("max_position_embeddings", MAX_CONTEXT + 1),
    ("head_dim", -128), ("head_dim", 0.5), ("sliding_window", -4096), ("sliding_window", MAX_CONTEXT + 1),
    ("sliding_window", 4096.0),
])
def test_config_values_out_of_range_are_refused_naming_the_field(field: str, value: Any) -> None:
    e = refused({**LLAMA, field: value})
    assert e.where == "t/config.json"
    assert e.field == field, str(e)
    assert repr(value)[:8] in str(e) or f"{value:,}" in str(e), str(e)


def test_experts_used_within_experts() -> None:
    cfg = {**LLAMA, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 9}
    e = refused(cfg)
    assert e.field == "num_experts_per_tok" and "9" in str(e)
    assert refused({**cfg, "num_experts_per_tok": -2}).field == "num_experts_per_tok"
    assert refused({**cfg, "num_local_experts": 0}).field == "num_local_experts"


def test_text_config_values_are_checked_too() -> None:
    cfg = json.loads(json.dumps(catalog_config("google__gemma-3-4b-it")))
    cfg["text_config"]["num_key_value_heads"] = -4
    e = refused(cfg)
    assert e.field == "num_key_value_heads" and "(text_config)" in e.where


def test_layer_types_length_and_kind() -> None:
    assert refused({**LLAMA, "layer_types": ["full_attention"] * 31}).field == "layer_types"
    assert refused({**LLAMA, "layer_types": "full_attention"}).field == "layer_types"


@pytest.mark.parametrize("field,value", [("kv_lora_rank", -512), ("qk_rope_head_dim", 0), ("v_head_dim", 1.5),
                                         ("n_routed_experts", -1), ("num_experts_per_tok", 1000)])
def test_mla_and_expert_fields(field: str, value: Any) -> None:
    cfg = dict(catalog_config("deepseek-ai__DeepSeek-V3"))
    with pytest.raises(ConfigError) as e:
        read({**cfg, field: value})
    assert e.value.field in (field, "num_experts_per_tok")


@pytest.mark.parametrize("base,field,value", [
    ("nvidia__Nemotron-H-8B-Base-8K", "ssm_state_size", -128), ("nvidia__Nemotron-H-8B-Base-8K", "conv_kernel", 0),
    ("nvidia__Nemotron-H-8B-Base-8K", "mamba_num_heads", 2.5), ("nvidia__Nemotron-H-8B-Base-8K", "mamba_head_dim", -64),
    ("mistralai__Mamba-Codestral-7B-v0.1", "state_size", 0), ("mistralai__Mamba-Codestral-7B-v0.1", "n_groups", -8),
    ("mistralai__Mamba-Codestral-7B-v0.1", "num_heads", True), ("mistralai__Mamba-Codestral-7B-v0.1", "expand", -2),
    ("mistralai__Mamba-Codestral-7B-v0.1", "conv_kernel", 10**9),
])
def test_ssm_fields(base: str, field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as e:
        read({**catalog_config(base), field: value})
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- quantization_config


@pytest.mark.parametrize("qc,field", [
    ({"quant_method": "gptq", "bits": 0}, "quantization_config.bits"),
    ({"quant_method": "gptq", "bits": -4}, "quantization_config.bits"),
    ({"quant_method": "gptq", "bits": 5}, "quantization_config.bits"),
    ({"quant_method": "gptq", "bits": 4.0}, "quantization_config.bits"),
    ({"quant_method": "gptq", "bits": "4"}, "quantization_config.bits"),
    ({"quant_method": "awq", "bits": 3}, "quantization_config.bits"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 0}, "quantization_config.group_size"),
    ({"quant_method": "awq", "bits": 4, "group_size": -128}, "quantization_config.group_size"),
    ({"quant_method": "fp8", "weight_block_size": [128, -128]}, "quantization_config.weight_block_size[1]"),
    ({"quant_method": "fp8", "weight_block_size": [128]}, "quantization_config.weight_block_size"),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 0}, "quantization_config.group_size"),
    ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 0}}}},
     "quantization_config.config_groups.g.weights.num_bits"),
    ({"quant_method": "compressed-tensors",
      "config_groups": {"g": {"weights": {"num_bits": 4, "type": "float", "group_size": -16}}}},
     "quantization_config.config_groups.g.weights.group_size"),
    ({"quant_method": "gptq", "bits": 4, "modules_to_not_convert": [1, 2]}, "quantization_config.modules_to_not_convert"),
])
def test_quantization_config_numbers(qc: dict[str, Any], field: str) -> None:
    e = refused({**LLAMA, "quantization_config": qc})
    assert e.field == field, str(e)
    with pytest.raises(ConfigError):
        scheme_from_config(qc)


def test_a_70b_with_bits_0_does_not_start_on_one_4090() -> None:
    cfg = {**catalog_config("meta-llama__Llama-3.1-70B-Instruct"),
           "quantization_config": {"quant_method": "gptq", "bits": 0, "group_size": 128}}
    e = refused(cfg)
    assert e.field == "quantization_config.bits" and "is 0" in str(e)


def test_valid_quant_configs_still_read() -> None:
    for qc in ({"quant_method": "gptq", "bits": 4, "group_size": -1}, {"quant_method": "gptq", "bits": 8},
               {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True},
               {"quant_method": "fp8", "weight_block_size": [128, 128]}):
        assert read({**LLAMA, "quantization_config": qc}).quantization_config == qc


# ---------------------------------------------------------------- GGUF metadata


def gguf(md: dict[str, Any], n_layer: int = 4, hidden: int = 512, vocab: int = 1024, moe: bool = False) -> GGUFHeader:
    tensors = [GGUFTensorInfo(name="token_embd.weight", ne=(hidden, vocab), type="F16", offset=0, nbytes=0)]
    if moe:
        tensors += [GGUFTensorInfo(name=f"blk.{i}.ffn_gate_inp.weight", ne=(hidden, 8), type="F32", offset=0, nbytes=0)
                    for i in range(n_layer)]
    base = {"general.architecture": "llama", "llama.block_count": n_layer, "llama.attention.head_count": 8,
            "llama.attention.head_count_kv": 2, "llama.feed_forward_length": 1536, "llama.context_length": 4096,
            "llama.embedding_length": hidden}
    return GGUFHeader(version=3, metadata={**base, **md}, tensors=tensors, header_bytes=0)


def gguf_refused(md: dict[str, Any], **kw: Any) -> VramcalcError:
    with pytest.raises(VramcalcError) as e:
        spec_from_gguf(gguf(md, **kw), model_id="m", source="gguf:m.gguf", where="m.gguf")
    assert "\n" not in str(e.value) and "m.gguf" in str(e.value)
    return e.value


def test_gguf_reads_and_checks() -> None:
    spec = spec_from_gguf(gguf({}), model_id="m", source="gguf:m.gguf", where="m.gguf")
    r = check(spec, find_gpu("rtx4090"), context=4096)
    assert r.kv_bytes > 0 and r.fits


@pytest.mark.parametrize("key,value", [
    ("llama.attention.head_count_kv", -2), ("llama.attention.head_count_kv", 0), ("llama.attention.head_count_kv", 3),
    ("llama.attention.head_count_kv", [2, 2, -2, 2]), ("llama.attention.head_count_kv", [2, 2]),
    ("llama.attention.head_count_kv", 2.0), ("llama.attention.head_count_kv", "2"),
    ("llama.attention.head_count_kv", [2, 2, True, 2]), ("llama.attention.head_count", 0),
    ("llama.attention.head_count", -8), ("llama.attention.key_length", -64), ("llama.attention.value_length", 10**9),
    ("llama.feed_forward_length", -1), ("llama.context_length", -4096), ("llama.context_length", 2**40),
    ("llama.attention.sliding_window", -1), ("llama.block_count", -4), ("llama.block_count", MAX_LAYERS + 1),
])
def test_gguf_values_out_of_range_are_refused(key: str, value: Any) -> None:
    e = gguf_refused({key: value})
    assert key in str(e), str(e)


def test_negative_head_count_kv_no_longer_fits_a_24gb_card() -> None:
    """The issue's case: a 32 GiB model with head_count_kv -8 'fitted' a 24 GB card."""
    e = gguf_refused({"llama.attention.head_count_kv": -8})
    assert isinstance(e, ConfigError) and e.field == "llama.attention.head_count_kv" and "-8" in str(e)


def test_gguf_expert_counts() -> None:
    md = {"llama.expert_count": 8, "llama.expert_used_count": 9, "llama.expert_feed_forward_length": 512}
    assert "expert_used_count" in str(gguf_refused(md, moe=True))
    assert "expert_used_count" in str(gguf_refused({**md, "llama.expert_used_count": 0}, moe=True))
    assert "expert_count" in str(gguf_refused({**md, "llama.expert_count": -8}, moe=True))
    ok = spec_from_gguf(gguf({**md, "llama.expert_used_count": 2}, moe=True), model_id="m", source="gguf:m",
                        where="m.gguf")
    assert ok.layers[0].mlp.num_experts == 8


def test_gguf_embedding_width_is_checked() -> None:
    assert "token_embd" in str(gguf_refused({}, hidden=MAX_HIDDEN * 2))


# ---------------------------------------------------------------- safetensors headers


@pytest.mark.parametrize("entry", [
    {"dtype": "F16", "shape": [-2, 4], "data_offsets": [0, 16]},
    {"dtype": "F16", "shape": [2.0, 4], "data_offsets": [0, 16]},
    {"dtype": "F16", "shape": [True, 4], "data_offsets": [0, 8]},
    {"dtype": "F16", "shape": [[2], 4], "data_offsets": [0, 16]},
    {"dtype": "F16", "shape": [2, 4], "data_offsets": [0, 15]},
    {"dtype": "F16", "shape": [2, 4], "data_offsets": [16, 0]},
    {"dtype": "F16", "shape": [2, 4], "data_offsets": [-16, 0]},
    {"dtype": "F16", "shape": [2, 4], "data_offsets": [1000, 1016]},  # past the file
])
def test_safetensors_entries(entry: dict[str, Any]) -> None:
    with pytest.raises(VramcalcError):
        parse_header(json.dumps({"t": entry}).encode(), "m.safetensors", 8 + 200 + 64)


# ---------------------------------------------------------------- every real model still reads


def test_every_catalog_model_passes_the_checks() -> None:
    for entry in catalog.entries():
        spec = catalog.load(entry.repo_id)
        assert check_spec(spec, entry.repo_id) is spec


def test_cli_refuses_with_exit_2_and_one_line(tmp_path, capsys) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA, "num_key_value_heads": -8}))
    assert main(["check", str(tmp_path), "--gpu", "4090"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "config.json" in err and "num_key_value_heads" in err and "-8" in err


def test_a_number_too_long_to_convert_is_our_error(tmp_path) -> None:
    """json.loads raises a plain ValueError past 4,300 digits: both JSON readers refuse it as bad input."""
    from vramcalc.sources.hf_config import read_config_file

    (tmp_path / "config.json").write_text('{"hidden_size": ' + "9" * 5000 + "}")
    with pytest.raises(ConfigError, match="too long"):
        read_config_file(tmp_path)
    with pytest.raises(VramcalcError, match="too long"):
        parse_header(b'{"t": {"dtype": "F16", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 2]}}', "m.safetensors")


def test_the_spec_itself_holds_no_negative_size() -> None:
    """Whoever builds a ModelSpec: its constraints refuse a negative or zero size, and a source's
    build turns that into the one-line error naming the source's field."""
    from pydantic import ValidationError

    from vramcalc.spec import AttentionSpec, MLPSpec

    with pytest.raises(ValidationError):
        AttentionSpec(kind="full", num_heads=8, num_kv_heads=-2, head_dim_k=64, head_dim_v=64)
    with pytest.raises(ValidationError):
        MLPSpec(kind="dense", intermediate_size=-1)
    e = gguf_refused({"llama.attention.head_count": 8}, hidden=7)  # 7 // 8 = a head size of 0
    assert isinstance(e, ConfigError) and e.field == "llama.attention.key_length", str(e)


@pytest.mark.parametrize("value", [-0.5, 0, 1.5, float("nan"), float("inf"), True, "0.5"])
def test_partial_rotary_factor_is_a_fraction(value: Any) -> None:
    """vLLM's rotary cache is sized by it: a negative factor gave a negative weights term."""
    e = refused({**LLAMA, "rope_scaling": {"rope_type": "default", "partial_rotary_factor": value}})
    assert e.field == "rope_scaling.partial_rotary_factor"
    assert read({**LLAMA, "rope_scaling": {"rope_type": "default", "partial_rotary_factor": 0.5}})


@pytest.mark.parametrize("base,field", [("google__gemma-3-4b-it", "sliding_window_pattern"),
                                        ("Qwen__Qwen3-Next-80B-A3B-Thinking", "full_attention_interval"),
                                        ("deepseek-ai__DeepSeek-V3", "moe_layer_freq"),
                                        ("meta-llama__Llama-4-Scout-17B-16E-Instruct", "no_rope_layer_interval")])
def test_layer_periods_are_positive(base: str, field: str) -> None:
    """A period of 0 divided by zero; it is refused naming the field."""
    cfg = json.loads(json.dumps(catalog_config(base)))
    target = cfg.get("text_config", cfg)
    target.pop("layer_types", None)
    target.pop("no_rope_layers", None)
    target[field] = 0
    with pytest.raises(ConfigError) as e:
        read(cfg)
    assert e.value.field == field, str(e.value)


def _gguf_file(path, head_count_kv: int) -> None:
    """A small Llama GGUF written by the real writer, head_count_kv stored as int32 (GGUF allows it)."""
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_embedding_length(256)
    w.add_head_count(8)
    w.add_int32("llama.attention.head_count_kv", head_count_kv)
    w.add_feed_forward_length(512)
    w.add_tensor("token_embd.weight", np.zeros((1024, 256), np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("command", [["check"], ["plan"], ["check", "--engine", "llamacpp"], ["explain"]])
def test_the_issues_gguf_is_refused_by_every_command(tmp_path, capsys, command: list[str]) -> None:
    """A GGUF whose head_count_kv is negative gave a negative KV cache that 'fitted' a 24 GB card,
    and plan recommended it with a negative TTFT: every command now refuses it with one line."""
    good, bad = tmp_path / "good.gguf", tmp_path / "bad.gguf"
    _gguf_file(good, 2)
    _gguf_file(bad, -8)
    assert main([command[0], str(good), "--gpu", "4090", *command[1:]]) in (0, 1)
    capsys.readouterr()
    assert main([command[0], str(bad), "--gpu", "4090", *command[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.gguf" in err and "llama.attention.head_count_kv" in err and "-8" in err


def test_a_nemotron_h_gguf_reads_its_mlp_only_layers() -> None:
    """nemotron-h.cpp: no KV heads and no FFN is a Mamba-2 layer, KV heads an attention layer, an
    FFN alone an MLP-only layer: a KV head count of 0 there is real, not refused."""
    md = {"general.architecture": "nemotron_h", "nemotron_h.block_count": 3, "nemotron_h.attention.head_count": 8,
          "nemotron_h.attention.head_count_kv": [0, 2, 0], "nemotron_h.feed_forward_length": [0, 0, 1536],
          "nemotron_h.ssm.conv_kernel": 4, "nemotron_h.ssm.inner_size": 1024, "nemotron_h.ssm.state_size": 128,
          "nemotron_h.ssm.time_step_rank": 16, "nemotron_h.ssm.group_count": 1}
    tensors = [GGUFTensorInfo(name="token_embd.weight", ne=(512, 1024), type="F16", offset=0, nbytes=0)]
    spec = spec_from_gguf(GGUFHeader(version=3, metadata=md, tensors=tensors, header_bytes=0), model_id="m",
                          source="gguf:m", where="m.gguf")
    assert [(la.ssm is not None, la.attention is not None, la.mlp.kind) for la in spec.layers] == [
        (True, False, "none"), (False, True, "none"), (False, False, "dense")]
