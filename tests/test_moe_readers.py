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


def _spec(name):
    c = ORACLE["configs"][name]
    return spec_from_config(c["config"], model_id=name, source="test", where=f"{name}/config.json")


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


@pytest.mark.parametrize("c", [c for c in CASES if "transformers_params" in c], ids=_id)
def test_parameters_equal_transformers(c):
    spec = _spec(c["name"])
    assert not spec.approximate and spec.is_moe
    # transformers 5.24 Ernie4_5_MoeStatics holds e_score_correction_bias as a parameter; vramcalc's inventory keeps
    # it as the router's buffer (as DeepSeek-V3's)
    buffers = sum(prod(t.shape) for t in inventory(spec) if t.buffer)
    assert count_params(spec).total + buffers == c["transformers_params"]


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
    assert n == c["params_rank0"]


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
    assert {d.weights_bytes for d in r.devices} == {c["weights_bytes_rank0"] + rotary}
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


def test_layer_layouts():
    ernie = _spec("ERNIE-4.5-21B-A3B-PT")
    assert [la.mlp.kind for la in ernie.layers] == ["dense"] + ["moe"] * 27
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


def test_hunyuan_fields_transformers_does_not_read_are_noted():
    c = ORACLE["configs"]["Hunyuan-A13B-Instruct"]["config"]
    cfg = {**c, "use_cla": True, "cla_share_factor": 2, "moe_intermediate_size": [1536] * 32}
    spec = spec_from_config(cfg, model_id="x", source="t")
    assert spec.layers[0].mlp.expert_intermediate_size == 3072  # transformers 5.24 sizes experts by intermediate_size
    assert any("use_cla" in n for n in spec.notes) and any("moe_intermediate_size" in n for n in spec.notes)


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
