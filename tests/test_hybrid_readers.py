"""The exact readers of LFM2 (lfm2), MiniCPM3 (minicpm3) and Kimi-Linear (kimi_linear), which the generic-fallback
survey found vramcalc had to refuse, against vLLM 0.34.0's own model classes and KV planning
(tests/data/vllm_hybrid_readers_oracle_v0.34.0.json, tools/vllm_hybrid_readers_oracle.py, on the Hub configs the survey
keeps): parameters and weight bytes of rank 0 at TP 1 and TP 2, each layer's KV spec (attention bytes per token, the
short-conv / KDA state shapes, dtypes and bytes) and, for each KV memory budget, the groups, block size, page, block
count, token count and concurrency vLLM plans, or its refusal; and what vLLM refuses on Kimi-Linear, in its words."""

import json
from collections import Counter
from math import prod

import pytest

from conftest import DATA
from vramcalc.cache_kinds import cache_layers
from vramcalc.gpus import find_gpu
from vramcalc.kv import dtype_bytes
from vramcalc.params import count_params, inventory
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.kv import KVSettings, conv_state_dtype, kv_pool, release_settings, ssm_state_dtype
from vramcalc.vllm.weights import padded_vocab, weights_per_rank

ORACLE = json.loads((DATA / "vllm_hybrid_readers_oracle_v0.34.0.json").read_text())
SURVEY = {c["name"]: c for c in json.loads((DATA / "vllm_generic_fallback_oracle_v0.34.0.json").read_text())["cases"]}
CASES = [c for c in ORACLE["cases"] if "vllm" in c]
REFUSED = [c for c in ORACLE["cases"] if "error" in c]
RELEASE = ORACLE["release"]


def _id(c):
    named = {**c["engine_args"], **c.get("config_edit", {})}
    return f"{c['name']}-tp{c['tp']}" + "".join(f"-{k}={v}" for k, v in named.items())


def _spec(c):
    config = {**SURVEY[c["name"]]["config"], **c.get("config_edit", {})}
    return spec_from_config(config, model_id=c["name"], source="test", where=f"{c['name']}/config.json")


def test_fixture_is_vllm_0_34_0_on_the_surveys_hub_configs():
    assert RELEASE == "0.34.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"]
    assert {c["model_type"] for c in CASES} == {"lfm2", "minicpm3", "kimi_linear"}
    assert len(CASES) + len(REFUSED) == len(ORACLE["cases"]) and len(REFUSED) == 3
    for c in ORACLE["cases"]:
        assert c["source"] == SURVEY[c["name"]]["source"]
        assert c["source"]["config_json"].startswith("https://huggingface.co/")


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_reading_is_exact_not_approximate(c):
    spec = _spec(c)
    assert not spec.approximate and spec.model_type == c["model_type"]
    assert spec.architecture == c["vllm"]["architecture"]


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_parameters_and_weight_bytes_equal_vllm(c):
    spec = _spec(c)
    v = c["vllm"]
    w = weights_per_rank(spec, c["tp"], 1, version=RELEASE)[0]
    # vLLM's parameters of rank 0, exactly (its vocabulary padded to vllm.json vocab_padding, as weights_per_rank does)
    assert w.bytes - w.rotary_cache_bytes == v["weights_bytes_rank0"]
    if c["tp"] == 1:
        rows = (padded_vocab(spec.vocab_size) - spec.vocab_size) * spec.hidden_size
        # the score-correction bias is a transformers buffer (vramcalc's inventory marks it so) but a vLLM parameter
        bias = sum(prod(t.shape) for t in inventory(spec) if t.buffer)
        assert count_params(spec).total + bias + rows * (1 if spec.tie_word_embeddings else 2) == v["params_rank0"]
    # the buffers: the rotary cos/sin caches exactly (none for Kimi-Linear's NoPE MLA); the rest are the few fp32 scale
    # scalars each Attention layer registers (16 or 20 B a layer), which vramcalc does not count
    assert w.rotary_cache_bytes == v["cos_sin_cache_bytes_rank0"]
    attn = sum(1 for r in v["layers"].values() if r["kind"] != "MambaSpec")
    assert v["buffer_bytes_rank0"] - v["cos_sin_cache_bytes_rank0"] <= 20 * attn


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_kv_and_state_per_layer_equal_vllms_specs(c):
    spec = _spec(c)
    tp = c["tp"]
    model_bytes = 2  # bfloat16, the configs' dtype and vLLM's (fixture dtype)
    assert c["vllm"]["dtype"] == spec.dtype == "bfloat16"
    conv_dt, temporal_dt = conv_state_dtype(spec), ssm_state_dtype(spec)
    ours = []
    for cache in cache_layers(spec):
        if cache.attention is not None:
            ours.append(("attention", cache.attention.bytes_per_token(model_bytes, tp)))
        if cache.recurrent is not None:
            conv, temporal = cache.recurrent.state_shapes(tp)
            ours.append(("state", (list(reversed(conv)),) + ((list(temporal),) if temporal else ()),
                         [conv_dt] + ([temporal_dt] if temporal else []),
                         cache.recurrent.state_bytes(dtype_bytes(conv_dt), dtype_bytes(temporal_dt), tp)))
    theirs = []
    for name in sorted(c["vllm"]["layers"], key=lambda n: int(n.split(".")[2])):
        r = c["vllm"]["layers"][name]
        if r["kind"] == "MambaSpec":  # vLLM orients the conv state (kernel - 1, channels)
            theirs.append(("state", tuple(r["shapes"]), r["dtypes"], r["state_bytes"]))
        else:
            theirs.append(("attention", r["page_size_bytes"] // r["block_size"]))
    assert ours == theirs


def _options(c, memory):
    return VLLMOptions(engine_version=RELEASE, tp=c["tp"], max_model_len=c["vllm"]["max_model_len"],
                       max_num_batched_tokens=c["vllm"]["max_num_batched_tokens"], kv_cache_memory_bytes=memory,
                       **c["engine_args"])


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_pages_groups_and_blocks_equal_vllms_plan(c):
    spec = _spec(c)
    v = c["vllm"]
    off = {"prefix_caching": False} if c["engine_args"].get("enable_prefix_caching") is False else {}
    s = KVSettings(tp=c["tp"], max_num_batched_tokens=v["max_num_batched_tokens"],
                   async_scheduling=v["async_scheduling"], max_model_len=v["max_model_len"],
                   **{**release_settings(spec, RELEASE), **off})
    pool = kv_pool(spec, s)
    for p in v["plans"]:
        assert {g["page_size_bytes"] for g in p["groups"]} == {pool.page_bytes}
        assert Counter((g["kind"] == "MambaSpec", g["layers"], g["block_size"]) for g in p["groups"]) == \
            Counter((g.kind == "mamba", g.layers, g.block_size) for g in pool.groups)
        r = check_vllm(spec, find_gpu("h100"), _options(c, p["memory_bytes"]))
        if "refusal" in p:  # one request of max_model_len does not fit: vLLM's words, its estimated length
            assert not r.max_model_len_fits and r.estimated_max_model_len == p["estimated_max_model_len"]
            assert any(e.text.split(" [vllm/")[0] == p["refusal"] for e in r.errors)
            continue
        assert r.max_model_len_fits
        assert r.num_gpu_blocks == p["num_blocks"]
        assert r.kv_cache_tokens == p["kv_cache_tokens"]
        assert abs(r.max_concurrency - p["max_concurrency"]) <= 0.005  # the result rounds it to 0.01


def test_lfm2_is_tied_whatever_the_config_says():
    """vLLM's Lfm2ForCausalLM ties lm_head to the embedding unconditionally: a copy of the config that says
    tie_word_embeddings (and tie_embedding) false builds the same parameters (the fixture's edited case)."""
    c = next(c for c in CASES if c.get("config_edit"))
    assert c["config_edit"] == {"tie_embedding": False, "tie_word_embeddings": False}
    spec = spec_from_config({**SURVEY[c["name"]]["config"], **c["config_edit"]}, model_id="x", source="t")
    assert spec.tie_word_embeddings
    w = weights_per_rank(spec, 1, 1, version=RELEASE)[0]
    assert w.bytes - w.rotary_cache_bytes == c["vllm"]["weights_bytes_rank0"]


@pytest.mark.parametrize("name", ["LFM2-1.2B", "MiniCPM3-4B", "Kimi-Linear-48B-A3B-Instruct"])
def test_llamacpp_refuses_what_it_does_not_model(name):
    """vramcalc reads these configs as vLLM builds them; llama.cpp's graphs for lfm2 / minicpm3 are not transcribed
    (and a GGUF of either is refused by its shortconv.* / MLA keys), so a llama.cpp check says so."""
    from vramcalc.errors import NotModelledError
    from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp

    spec = spec_from_config(SURVEY[name]["config"], model_id=name, source="test")
    with pytest.raises(NotModelledError, match="llama.cpp graph and cache"):
        check_llamacpp(spec, find_gpu("h100"), LlamaOptions(ftype="Q4_K_M"))


@pytest.mark.parametrize("c", REFUSED, ids=_id)
def test_what_vllm_refuses_on_kimi_linear_is_refused_in_its_words(c):
    """--kda-prefill-backend other than Triton (KimiGatedDeltaNetAttention's assert) and --mamba-ssm-cache-dtype
    float16 (kda_state_dtype's ValueError) or bfloat16 (a page padded for a bfloat16 state below the float32 one the
    layers keep: MambaSpec.page_size_bytes's bare assert)."""
    spec = _spec(c)
    r = check_vllm(spec, find_gpu("h100"), VLLMOptions(engine_version=RELEASE, tp=c["tp"], max_model_len=4096,
                                                       **c["engine_args"]))
    assert not r.fits
    theirs = c["error"].rstrip(": ")  # a bare AssertionError prints as "AssertionError: "
    assert any(e.text.split(" [vllm/")[0].split(" (assert")[0] == theirs for e in r.errors), [e.text for e in r.errors]


def test_kimi_linear_state_stays_float32_under_an_explicit_float32():
    c = next(c for c in CASES if c["engine_args"] == {"mamba_ssm_cache_dtype": "float32"})
    assert ssm_state_dtype(_spec(c), "auto", "float32") == "float32"
    assert {tuple(r["dtypes"]) for r in c["vllm"]["layers"].values() if r["kind"] == "MambaSpec"} == \
        {("bfloat16", "float32")}


def test_the_planner_keeps_vllm_and_rejects_llamacpp_for_them(capsys):
    from vramcalc.cli import main

    assert main(["plan", "LiquidAI/LFM2-1.2B", "--gpu", "4090", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] and {r["engine"] for r in out["recommendations"]} == {"vllm"}
    gguf = [r for r in out["rejected"] if r["family"].startswith("llama.cpp")]
    assert gguf and all("llama.cpp graph and cache" in r["reason"]["text"] for r in gguf)
