"""The olmoe, ernie4_5_moe and hunyuan_v1_moe readers against vLLM's own model classes built on the meta device at TP 1
and TP 2, at v0.34.0 and v0.33.0 (tests/data/vllm_moe_readers_oracle_v0.34.0.json, tools/vllm_moe_readers_oracle.py),
and against transformers' parameter counts. The configs are the Hub files of the generic-fallback survey
(tests/data/vllm_generic_fallback_oracle_v0.34.0.json)."""

import json
import re
from math import prod

import pytest

from conftest import DATA
from vramcalc.gpus import find_gpu
from vramcalc.kv import kv_by_layer_kind
from vramcalc.params import count_params, inventory
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.engine import VLLMOptions, _kv_settings, check_vllm, transformers_backend
from vramcalc.vllm.kv import kv_pool
from vramcalc.vllm.weights import _rank_shape, _vllm_tensors

ORACLE = json.loads((DATA / "vllm_moe_readers_oracle_v0.34.0.json").read_text())
CASES = ORACLE["cases"]
# --model-impl vllm: vLLM 0.34.0 still builds OLMoE and Hunyuan with its Transformers backend
IMPL_VLLM = ORACLE["model_impl_vllm_cases"]


def _config(name):
    """The survey's config, or a variant of it (the tool's VARIANTS: the readers' other branches)."""
    return (ORACLE["configs"].get(name) or ORACLE["variants"][name])["config"]


def _spec(name):
    return spec_from_config(_config(name), model_id=name, source="test", where=f"{name}/config.json")


# vLLM 0.33.0's own models/olmoe.py builds no attention bias whatever attention_bias says (QKVParallelLinear and
# RowParallelLinear with bias=False); the reader follows 0.34.0's Transformers backend, which builds them
def _olmoe_033_biases(c, spec):
    if c["name"] != "OLMoE-variant" or c["release"] != "0.33.0":
        return 0
    a = spec.layers[0].attention
    per_layer = a.num_heads * a.head_dim_k // c["tp"] + 2 * a.num_kv_heads * a.head_dim_k + spec.hidden_size
    return per_layer * len(spec.layers)


def _id(c):
    return f"{c['name']}-tp{c['tp']}-v{c['release']}" + ("-impl-vllm" if c.get("engine_args") else "")


def _opts(c):
    return VLLMOptions(engine_version=c["release"], tp=c["tp"], max_model_len=4096, **c.get("engine_args", {}))


def test_fixture_is_vllm_with_the_survey_configs():
    assert ORACLE["release"] == "0.34.0" and "meta device" in ORACLE["produced_by"]
    assert {(c["release"], c["tp"]) for c in CASES} == {(r, t) for r in ("0.33.0", "0.34.0") for t in (1, 2)}
    assert {(c["release"], c["tp"], c["engine_args"]["model_impl"]) for c in IMPL_VLLM} == {("0.34.0", 1, "vllm")}
    survey = {c["name"]: c for c in json.loads((DATA / "vllm_generic_fallback_oracle_v0.34.0.json").read_text())["cases"]}
    for name, c in ORACLE["configs"].items():
        assert c["config"] == survey[name]["config"] and c["source"]["config_json"].startswith("https://huggingface.co/")
    # vLLM 0.34.0 builds OLMoE and Hunyuan with its Transformers backend, ERNIE with its own class
    by = {(c["name"], c["release"]): c["model_class"] for c in CASES}
    assert by["OLMoE-1B-7B-0924", "0.34.0"] == by["Hunyuan-A13B-Instruct", "0.34.0"] == "TransformersMoEForCausalLM"
    assert by["OLMoE-1B-7B-0924", "0.33.0"] == "OlmoeForCausalLM"
    assert by["ERNIE-4.5-21B-A3B-PT", "0.34.0"] == "Ernie4_5_MoeForCausalLM"


@pytest.mark.parametrize("c", [c for c in CASES if "transformers_params" in c and c["name"] in ORACLE["configs"]],
                         ids=_id)
def test_parameters_equal_transformers(c):
    spec = _spec(c["name"])
    assert not spec.approximate and spec.is_moe
    assert count_params(spec).total == c["transformers_params"]
    assert not any(t.buffer for t in inventory(spec))  # ERNIE's score bias is a parameter (Ernie4_5_MoeStatics)


@pytest.mark.parametrize("c", CASES + IMPL_VLLM, ids=_id)
def test_parameters_per_rank_equal_vllm(c):
    spec = _spec(c["name"])
    opts = _opts(c)
    hf = transformers_backend(spec, opts)
    assert hf == (c["model_class"] == "TransformersMoEForCausalLM")
    n = 0
    for t in _vllm_tensors(spec):
        m = re.match(r"model\.layers\.(\d+)\.", t.name)
        n += prod(_rank_shape(t, spec, c["tp"], spec.layers[int(m.group(1))] if m else None, kv_colwise=hf))
    assert n - _olmoe_033_biases(c, spec) == c["params_rank0"]


@pytest.mark.parametrize("c", CASES + IMPL_VLLM, ids=_id)
def test_gpu_weight_bytes_equal_vllm(c):
    """check_vllm's weights on every rank: vLLM's parameter bytes (ERNIE's float32 router and score bias included)
    and its rotary buffers (vLLM's cos/sin cache, or transformers' inv_freq pair under the Transformers backend); the
    attention layers' four 4-byte scale buffers are not counted."""
    spec = _spec(c["name"])
    r = check_vllm(spec, find_gpu("h100-sxm"), _opts(c))
    rotary = sum(v for k, v in c["buffers_rank0"].items() if k.endswith(("cos_sin_cache", "inv_freq")))
    scales = sum(v for k, v in c["buffers_rank0"].items() if re.search(r"\._(k|v|q|prob)_scale$", k))
    assert rotary + scales == c["buffer_bytes_rank0"]
    assert {d.weights_bytes for d in r.devices} == {c["weights_bytes_rank0"] + rotary + 2 * _olmoe_033_biases(c, spec)}
    assert len(r.devices) == c["tp"]


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_kv_bytes_per_token_equal_vllms_kv_cache_spec(c):
    spec = _spec(c["name"])
    (kind,) = kv_by_layer_kind(spec, 1)
    (row,) = c["kv_layer_specs"]
    assert row["kind"] == "FullAttentionSpec" and row["layers"] == kind.layers == len(spec.layers)
    opts = _opts(c)
    s = _kv_settings(spec, opts, c["release"], 8192, 4096)
    pool = kv_pool(spec, s)
    assert (pool.block_size, pool.page_bytes) == (row["block_size"], row["page_size_bytes"])
    assert pool.page_bytes // pool.block_size * kind.layers == c["kv_bytes_per_token_all_layers"]


def test_where_vllm_builds_other_weights_than_transformers_the_readers_follow_vllm():
    """vLLM 0.34.0 against transformers 5.24 on the variants: ERNIE's use_bias biases o_proj and lm_head in
    transformers only; Hunyuan's routed experts are sized by moe_intermediate_size in vLLM's Transformers backend and by
    intermediate_size in transformers (vLLM also pads the vocabulary to 64)."""
    rows = {c["name"]: c for c in CASES if "transformers_params" in c and "variant" in c["name"]}
    ernie, e = _config("ERNIE-variant"), rows["ERNIE-variant"]
    assert e["transformers_params"] - e["params_rank0"] == ernie["num_hidden_layers"] * ernie["hidden_size"] + \
        ernie["vocab_size"]
    hy, h = _config("Hunyuan-variant"), rows["Hunyuan-variant"]
    wider = sum(3 * hy["num_experts"] * hy["hidden_size"] * (hy["intermediate_size"] - w)
                for w in hy["moe_intermediate_size"])
    pad = (-hy["vocab_size"] % 64) * hy["hidden_size"]
    assert h["transformers_params"] - h["params_rank0"] == wider - pad
    assert _spec("Hunyuan-variant").layers[0].mlp.expert_intermediate_size == 1536


def test_layer_layouts():
    ernie = _spec("ERNIE-4.5-21B-A3B-PT")
    assert [la.mlp.kind for la in ernie.layers] == ["dense"] + ["moe"] * 27
    # MoE every second layer from moe_layer_start_index to the last (moe_layer_end_index -1)
    assert [la.mlp.kind for la in _spec("ERNIE-variant").layers] == ["dense", "moe"] * 3
    assert [la.mlp.experts_per_token for la in _spec("Hunyuan-variant").layers] == [1, 2, 4, 8]
    assert ernie.layers[1].mlp.shared_intermediate_size == 2 * 1536 and ernie.layers[1].mlp.router_score_bias
    hunyuan = _spec("Hunyuan-A13B-Instruct")
    a = hunyuan.layers[0].attention
    assert a.qk_norm and not a.qk_norm_full and hunyuan.layers[0].mlp.shared_intermediate_size == 3072
    olmoe = _spec("OLMoE-1B-7B-0924")
    assert olmoe.layers[0].attention.qk_norm_full and not olmoe.layers[0].mlp.shared_intermediate_size


def test_the_transformers_backend_warns_that_its_activations_are_not_sized():
    spec = _spec("Hunyuan-A13B-Instruct")
    codes = [w.code for w in check_vllm(spec, find_gpu("h200-sxm"), VLLMOptions(tp=2)).warnings]
    assert "vllm.model_impl.transformers_default" in codes
    ernie = check_vllm(_spec("ERNIE-4.5-21B-A3B-PT"), find_gpu("h200-sxm"), VLLMOptions())
    assert "vllm.model_impl.transformers_default" not in [w.code for w in ernie.warnings]


def test_hunyuan_fields_vllm_does_not_read_are_noted():
    """The variant's use_cla and num_shared_expert change nothing in vLLM (one KV cache per layer, one shared MLP of
    intermediate_size: the oracle rows above); the reader says so."""
    notes = " ".join(_spec("Hunyuan-variant").notes)
    assert "use_cla" in notes and "num_shared_expert" in notes and "moe_intermediate_size" in notes
    assert not _spec("Hunyuan-A13B-Instruct").notes


@pytest.mark.parametrize("repo,name", [("allenai/OLMoE-1B-7B-0924", "OLMoE-1B-7B-0924"),
                                       ("baidu/ERNIE-4.5-21B-A3B-PT", "ERNIE-4.5-21B-A3B-PT"),
                                       ("tencent/Hunyuan-A13B-Instruct", "Hunyuan-A13B-Instruct")])
def test_catalog_entries_read_the_oracle_configs(repo, name):
    from vramcalc.sources import load_model
    from vramcalc.sources.catalog import config_of

    assert config_of(repo) == ORACLE["configs"][name]["config"]
    spec = load_model(repo)
    assert spec.layers == _spec(name).layers and spec.architecture == ORACLE["configs"][name]["config"]["architectures"][0]
    c = next(c for c in CASES if c["name"] == name and c["release"] == ORACLE["release"] and c["tp"] == 2)
    r = check_vllm(spec, find_gpu("h200-sxm"), VLLMOptions(tp=2, max_model_len=4096))
    assert {d.weights_bytes for d in r.devices} == {c["weights_bytes_rank0"] + c["buffer_bytes_rank0"]
                                                    - sum(v for k, v in c["buffers_rank0"].items() if "_scale" in k)}
