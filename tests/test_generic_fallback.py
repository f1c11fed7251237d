"""An unknown model_type is read as a generic (Llama-style) decoder only where that reading cannot undercount;
configs with fields it would ignore (experts, latent / sparse attention, recurrent layers, per-layer sizes) are
refused. Checked against vLLM 0.34.0's own model classes built on the meta device
(tests/data/vllm_generic_fallback_oracle_v0.34.0.json, tools/vllm_generic_fallback_oracle.py): where vramcalc
refuses, its old Llama reading undercounts vLLM's weights or KV cache; where it keeps the reading, its counts
are upper bounds of vLLM's. The same question for GGUF files of architectures vramcalc has no traits for."""

import json
import re
from math import prod

import numpy as np
import pytest
from gguf import GGUFWriter

import vramcalc
from conftest import DATA
from vramcalc.cli import main
from vramcalc.data_files import load
from vramcalc.data_models import GenericFallback
from vramcalc.errors import NotModelledError
from vramcalc.kv import kv_by_layer_kind, kv_bytes_per_token
from vramcalc.params import count_params
from vramcalc.sources import gguf_spec
from vramcalc.sources.gguf_header import read_local
from vramcalc.sources.gguf_spec import spec_from_gguf
from vramcalc.sources.hf_config import READERS, spec_from_config
from vramcalc.vllm.engine import VLLMOptions, transformers_backend
from vramcalc.vllm.weights import _rank_shape, _vllm_tensors, transformers_rope_bytes, weights_per_rank

ORACLE = json.loads((DATA / "vllm_generic_fallback_oracle_v0.34.0.json").read_text())
CASES = {c["name"]: c for c in ORACLE["cases"]}
KEPT = ["EXAONE-4.0-32B", "ERNIE-4.5-0.3B-PT"]  # no field the Llama reading would ignore
REFUSED = ["Step-3.5-Flash"]
# refused until their readers (vramcalc/sources/hf_config.py READERS), now read exactly: tests/test_moe_readers.py
# (tests/data/vllm_moe_readers_oracle_v0.34.0.json) and tests/test_hybrid_readers.py (with vLLM's KV planning)
# check them against vLLM 0.34.0 at TP 1 and 2
READ = ["OLMoE-1B-7B-0924", "ERNIE-4.5-21B-A3B-PT", "Hunyuan-A13B-Instruct", "MiniCPM3-4B", "LFM2-1.2B",
        "Kimi-Linear-48B-A3B-Instruct"]


def _spec(case, model_type=None):
    config = case["config"] if model_type is None else {**case["config"], "model_type": model_type}
    return spec_from_config(config, model_id=case["name"], source="test", where=f"{case['name']}/config.json")


def _unknown(name):
    """A surveyed config under a model_type vramcalc has no reader for (the refusal as an unknown family meets it)."""
    return {**CASES[name], "model_type": "brand_new_moe", "config": {**CASES[name]["config"], "model_type": "brand_new_moe"}}


def _attention_layers(case):
    return [r for r in case["vllm"]["kv_layers"].values() if "bytes_per_token" in r]


def test_fixture_is_vllm_0_34_0_with_a_source_per_config():
    assert ORACLE["release"] == "0.34.0" and "meta device" in ORACLE["produced_by"]
    assert len(CASES) >= 8 and set(KEPT + REFUSED + READ) <= set(CASES)
    for c in ORACLE["cases"]:
        assert c["source"]["config_json"].startswith("https://huggingface.co/")
        assert c["config"]["model_type"] == c["model_type"]
        assert (c["model_type"] in READERS) == (c["name"] in READ)
        assert c["vllm"]["params_rank0"] > 0 and "error" not in c


@pytest.mark.parametrize("name", READ)
def test_surveyed_types_with_a_reader_count_vllms_parameters(name):
    """vLLM 0.34.0 at TP 1: its parameters (the Transformers backend's sharding where it builds the model) and its
    KV bytes per token, exactly; the refusal still holds for the same config under an unknown model_type."""
    case = CASES[name]
    spec = _spec(case)
    assert not spec.approximate
    hf = transformers_backend(spec, VLLMOptions(engine_version=ORACLE["release"]))
    assert hf == (case["vllm"]["model_class"] == "TransformersMoEForCausalLM")
    n = sum(prod(_rank_shape(t, spec, 1, spec.layers[int(m.group(1))] if (m := re.match(r"model\.layers\.(\d+)\.",
                                                                                      t.name)) else None,
                             kv_colwise=hf)) for t in _vllm_tensors(spec))
    assert n == case["vllm"]["params_rank0"]
    assert kv_bytes_per_token(spec) == case["vllm"]["kv_bytes_per_token_all_layers"]
    with pytest.raises(NotModelledError, match="'brand_new_moe' is not modelled"):
        _spec(_unknown(name))


@pytest.mark.parametrize("name", REFUSED)
def test_configs_the_llama_reading_would_undercount_are_refused(name):
    case = CASES[name]
    with pytest.raises(NotModelledError) as e:
        _spec(case)
    msg = str(e.value)
    assert f"model_type {case['model_type']!r} is not modelled" in msg and f"{name}/config.json" in msg
    assert len(msg) <= 500  # the CLI's one line is not cut
    # the refusal is right: the old fallback (the llama reader on the same config) undercounts vLLM's own model,
    # its weights or its KV cache per token
    old = spec_from_config({**case["config"], "model_type": "llama"}, model_id=name, source="test")
    v = case["vllm"]
    assert count_params(old).total < v["params_rank0"] or kv_bytes_per_token(old) < v["kv_bytes_per_token_all_layers"] \
        or any(r["state_page_bytes"] for r in v["kv_layers"].values() if "state_page_bytes" in r)


def test_refusals_name_the_fields_and_say_where_a_gguf_may_answer():
    olmoe = str(pytest.raises(NotModelledError, _spec, _unknown("OLMoE-1B-7B-0924")).value)
    assert "experts (num_experts, num_experts_per_tok)" in olmoe and "GGUF file of the model may answer" in olmoe
    hunyuan = str(pytest.raises(NotModelledError, _spec, _unknown("Hunyuan-A13B-Instruct")).value)
    assert "moe_topk" in hunyuan and "num_shared_expert" in hunyuan
    # MiniCPM3's and LFM2's configs are read now; under a model_type vramcalc does not know they are still refused
    mla = str(pytest.raises(NotModelledError, _spec, CASES["MiniCPM3-4B"], "minicpm_new").value)
    assert "latent or sparse attention (kv_lora_rank" in mla and "GGUF" not in mla  # a GGUF of it is refused too
    kimi = str(pytest.raises(NotModelledError, _spec, CASES["Kimi-Linear-48B-A3B-Instruct"], "kimi_new").value)
    assert "recurrent layers (linear_attn_config)" in kimi
    lfm2 = str(pytest.raises(NotModelledError, _spec, CASES["LFM2-1.2B"], "lfm_new").value)
    assert "full_attn_idxs" in lfm2 and "conv_L_cache" in lfm2


@pytest.mark.parametrize("name", READ)
def test_surveyed_types_with_a_reader_are_read_exactly(name):
    """The survey's own figures (vLLM 0.34.0, TP 1): the exact reading's parameter bytes and KV bytes per token equal
    vLLM's; its rotary cache is vLLM's buffers less the few scale scalars each Attention layer registers."""
    case = CASES[name]
    spec = _spec(case)
    v = case["vllm"]
    assert not spec.approximate and spec.model_type == case["model_type"]
    w = weights_per_rank(spec, 1, 1, version=ORACLE["release"])[0]
    attn = len(_attention_layers(case))
    assert w.bytes - w.rotary_cache_bytes == v["weights_bytes_rank0"]
    # under vLLM's Transformers backend (OLMoE, Hunyuan at 0.34.0) transformers' rotary buffers replace the cache
    hf = transformers_backend(spec, VLLMOptions(engine_version=ORACLE["release"]))
    rope = transformers_rope_bytes(spec) if hf else w.rotary_cache_bytes
    assert 0 <= v["buffer_bytes_rank0"] - rope <= 20 * attn
    assert kv_bytes_per_token(spec) == v["kv_bytes_per_token_all_layers"]
    assert [m.layers for m in kv_by_layer_kind(spec, 1) if m.kv_bytes_per_token] == [attn]


@pytest.mark.parametrize("name", KEPT)
def test_the_kept_generic_reading_is_an_upper_bound_of_vllm(name):
    case = CASES[name]
    spec = _spec(case)
    v = case["vllm"]
    assert spec.approximate and "upper bound" in spec.notes[0]
    params = count_params(spec).total
    # every optional norm and bias counted: never below vLLM's parameters, and within 0.1 % of them
    assert v["params_rank0"] <= params <= v["params_rank0"] * 1.001
    # and the bytes vramcalc's vLLM engine puts on the GPU (vocab padded to 64, the rotary cache) likewise
    ours = weights_per_rank(spec, 1, 1, version=ORACLE["release"])[0].bytes
    theirs = v["weights_bytes_rank0"] + v["buffer_bytes_rank0"]
    assert theirs <= ours <= theirs * 1.001
    # KV: every layer full attention, each at least vLLM's bytes per token for its layers, sliding or not
    attn = _attention_layers(case)
    mine = kv_by_layer_kind(spec, 1)
    assert [m.kind for m in mine] == ["full"] and mine[0].layers == len(attn)
    assert mine[0].kv_bytes_per_token >= v["kv_bytes_per_token_all_layers"]
    assert mine[0].kv_bytes_per_token / mine[0].layers >= max(r["bytes_per_token"] for r in attn)


def test_exaone4_sliding_layers_are_counted_as_full():
    """EXAONE-4.0-32B slides three layers in four (vLLM: 48 SlidingWindowSpec, 16 FullAttentionSpec); the old
    reading slid every layer, holding a 4096-token window where vLLM holds the whole context in 16 layers."""
    case = CASES["EXAONE-4.0-32B"]
    kinds = [r["kind"] for r in _attention_layers(case)]
    assert kinds.count("SlidingWindowSpec") == 48 and kinds.count("FullAttentionSpec") == 16
    old = spec_from_config({**case["config"], "model_type": "llama"}, model_id="x", source="t")
    assert {layer.attention.kind for layer in old.layers} == {"sliding"}
    spec = _spec(case)
    assert {layer.attention.kind for layer in spec.layers} == {"full"} and "4,096 not applied" in spec.notes[1]


def test_every_field_in_the_data_says_why_and_where():
    data = load("generic_fallback.json", GenericFallback)
    for field in data.hf_config.fields.values():
        assert field.reason and "vLLM v0.34.0" in field.read_by
    for field in data.gguf.key_prefixes.values():
        assert "llama.cpp" in field.read_by
    # each refused case trips on fields from the data (or the per-layer rule), not on a hard-coded list
    assert {"num_experts", "kv_lora_rank", "linear_attn_config", "conv_L_cache"} <= set(data.hf_config.fields)


@pytest.mark.parametrize("extra, needle", [
    ({"layer_types": ["full_attention", "linear_attention"] * 16}, "layer_types linear_attention"),
    ({"num_key_value_heads_per_layer": [8] * 32}, "per-layer sizes (num_key_value_heads_per_layer)"),
    ({"n_routed_experts": 64}, "experts (n_routed_experts)"),
    ({"mamba_d_state": 128}, "recurrent layers (mamba_d_state)"),
])
def test_other_ignored_fields_are_refused(extra, needle):
    from conftest import catalog_config

    cfg = {**catalog_config("meta-llama__Llama-3.1-8B"), "model_type": "brand_new_llm", **extra}
    with pytest.raises(NotModelledError, match="brand_new_llm") as e:
        spec_from_config(cfg, model_id="x", source="t")
    assert needle in str(e.value)


def test_null_or_zero_fields_do_not_refuse():
    from conftest import catalog_config

    cfg = {**catalog_config("meta-llama__Llama-3.1-8B"), "model_type": "brand_new_llm", "num_experts": 0,
           "q_lora_rank": None, "layer_types": ["full_attention"] * 32}
    assert spec_from_config(cfg, model_id="x", source="t").approximate


def test_cli_and_check_report_the_refusal_as_one_line(tmp_path, capsys):
    d = tmp_path / "olmoe"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(_unknown("OLMoE-1B-7B-0924")["config"]))
    with pytest.raises(NotModelledError, match="brand_new_moe"):
        vramcalc.check(str(d), "h100-sxm")
    for engine in ([], ["--engine", "vllm"]):
        assert main(["check", str(d), "--gpu", "h100-sxm", *engine]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "'brand_new_moe' is not modelled" in err
    assert main(["check", str(d), "--gpu", "h100-sxm", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["code"] == "input.not_modelled" and "num_experts" in out["error"]["message"]


# ---------------------------------------------------------------- GGUF: architectures without traits


def _gguf(path, arch, kv=2, extra=lambda w: None, tensors=()):
    """A small GGUF of an architecture vramcalc has no traits for, written by gguf.GGUFWriter."""
    w = GGUFWriter(str(path), arch)
    w.add_block_count(4)
    w.add_context_length(512)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(kv)
    w.add_feed_forward_length(128)
    extra(w)
    w.add_token_list([f"t{i}" for i in range(100)])
    w.add_tensor("token_embd.weight", np.zeros((100, 64), np.float16))
    for name, shape in tensors:
        w.add_tensor(name, np.zeros(shape, np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return read_local(str(path))


def _ssm(w):
    w.add_ssm_state_size(16)
    w.add_ssm_conv_kernel(4)
    w.add_ssm_inner_size(128)


def _mla(w):
    w.add_kv_lora_rank(32)
    w.add_key_length(48)
    w.add_value_length(32)


EXPERTS = [(f"blk.{i}.ffn_{p}_exps.weight", (8, 128, 64) if p != "down" else (8, 64, 128))
           for i in range(4) for p in ("gate", "up", "down")] + [(f"blk.{i}.ffn_gate_inp.weight", (8, 64))
                                                                 for i in range(4)]


def test_a_plain_unknown_gguf_architecture_is_still_read(tmp_path):
    spec = spec_from_gguf(_gguf(tmp_path / "a.gguf", "brandnew"), model_id="x", source="t", where="a.gguf")
    assert spec.approximate and "generic decoder" in spec.notes[0]


def test_an_unknown_moe_architecture_with_its_expert_count_is_read(tmp_path):
    """What the config refusal's GGUF hint promises: a MoE GGUF (experts in its metadata) is read, experts and all."""
    def moe(w):
        w.add_expert_count(8)
        w.add_expert_used_count(2)
        w.add_expert_feed_forward_length(128)
    spec = spec_from_gguf(_gguf(tmp_path / "m.gguf", "brandmoe", extra=moe, tensors=EXPERTS), model_id="x",
                          source="t", where="m.gguf")
    assert {(layer.mlp.kind, layer.mlp.num_experts) for layer in spec.layers} == {("moe", 8)}


@pytest.mark.parametrize("extra, tensors, needle", [
    (_ssm, (), "brandhybrid.ssm.*"),
    (_mla, (), "brandhybrid.attention.kv_lora_rank"),
    (lambda w: None, EXPERTS, "expert tensors without brandhybrid.expert_count"),
])
def test_unknown_gguf_architectures_the_generic_reading_would_undercount_are_refused(tmp_path, monkeypatch, extra,
                                                                                     tensors, needle):
    h = _gguf(tmp_path / "h.gguf", "brandhybrid", extra=extra, tensors=tensors)
    with pytest.raises(NotModelledError) as e:
        spec_from_gguf(h, model_id="x", source="t", where="h.gguf")
    assert "llama.cpp architecture 'brandhybrid' is not modelled" in str(e.value) and needle in str(e.value)
    # the reading it refuses: a state-space file gets no recurrent state, experts without a count a dense FFN
    monkeypatch.setattr(gguf_spec, "_refuse_unknown_arch", lambda *a: None)
    old = spec_from_gguf(h, model_id="x", source="t", where="h.gguf")
    assert all(layer.ssm is None and layer.mlp.kind == "dense" for layer in old.layers)
    assert all(m.state_bytes == 0 for m in kv_by_layer_kind(old, 1))


def test_a_config_without_the_standard_fields_is_refused_as_before():
    """DeepSeek-V4-Flash names no intermediate_size: never read generically (vLLM counts 284 B parameters)."""
    case = CASES["DeepSeek-V4-Flash"]
    assert case["vllm"]["params_rank0"] > 280e9
    with pytest.raises(vramcalc.ConfigError, match="lacks the standard decoder fields"):
        _spec(case)


@pytest.mark.parametrize("name", ["OLMoE-1B-7B-0924", "ERNIE-4.5-21B-A3B-PT", "Hunyuan-A13B-Instruct",
                                  "Kimi-Linear-48B-A3B-Instruct", "Step-3.5-Flash"])
def test_the_readme_share_of_the_old_llama_reading(name):
    """README: read as Llama, these MoE models came to 4-15% of vLLM 0.34.0's parameters."""
    case = CASES[name]
    old = spec_from_config({**case["config"], "model_type": "llama"}, model_id=name, source="test")
    assert 0.035 < count_params(old).total / case["vllm"]["params_rank0"] < 0.155


def test_a_refused_gguf_is_one_line_through_the_cli(tmp_path, capsys):
    _gguf(tmp_path / "h.gguf", "brandhybrid", extra=_ssm)
    for engine in ([], ["--engine", "llamacpp"]):
        assert main(["check", str(tmp_path / "h.gguf"), "--gpu", "4090", *engine]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "llama.cpp architecture 'brandhybrid' is not modelled" in err
