"""vLLM serve flags that reshape the model or its KV cache, against vLLM's own planner run on the CPU
(tests/data/vllm_flag_oracle.json for vLLM 0.30.0 and vllm_flag_oracle_v0.33.0.json for the modelled 0.33.0,
tools/vllm_flag_oracle.py; each case is checked at the release its file names).

Per case: max_model_len, the layer kinds, and for each KV budget the blocks, tokens and concurrency vLLM plans (or
its refusal), and the weights per rank; a flag value vLLM refuses is refused by vramcalc too."""

import json
import os

import pytest

from vramcalc.errors import InputError, NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.hf_overrides import apply_hf_overrides
from vramcalc.vllm.kv import KVSettings, capacity, kv_pool, release_settings
from vramcalc.vllm.weights import weights_per_rank

FIXTURES = [json.load(open(os.path.join(os.path.dirname(__file__), "data", name)))
            for name in ("vllm_flag_oracle.json", "vllm_flag_oracle_v0.33.0.json")]
# every case and refusal, each with the release its file was produced by
FIXTURE = {key: [dict(c, release=f["release"]) for f in FIXTURES for c in f[key]] for key in ("cases", "unsupported")}


def _cases(field):
    return [c for c in FIXTURE["cases"] if field in c["engine_args"]]


def _refused(field):
    return [u for u in FIXTURE["unsupported"] if field in u["engine_args"]]


def _id(c):
    return f"{c['release']}-{c['model']}-tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def test_fixture_names_release_and_method():
    assert [f["release"] for f in FIXTURES] == ["0.30.0", "0.33.0"]
    for f in FIXTURES:
        assert "VLLM_TARGET_DEVICE=cpu" in f["produced_by"] and "tools/vllm_flag_oracle.py" in f["produced_by"]


def _kinds(spec):
    out = {}
    for la in spec.layers:
        if la.attention is not None:
            k = {"full": "FullAttentionSpec", "sliding": "SlidingWindowSpec", "mla": "MLAAttentionSpec"}[
                la.attention.kind]
            out[k] = out.get(k, 0) + 1
    return out


def _vllm_kinds(c):
    out = {}
    for k in c["layer_kinds"]:
        out[k["kind"]] = out.get(k["kind"], 0) + k["layers"]
    return out


@pytest.mark.parametrize("c", _cases("hf_overrides"), ids=_id)
def test_hf_overrides_equal_vllm(c):
    """--hf-overrides applied to the config as vLLM applies it: the layers, their kinds and KV heads, the derived
    max_model_len, each budget's blocks / tokens / concurrency (vLLM's planner with the case's own scheduling
    settings) and the weights per rank."""
    spec = apply_hf_overrides(load(c["model"]), c["engine_args"]["hf_overrides"])
    assert _kinds(spec) == _vllm_kinds(c)
    heads = {la.attention.num_kv_heads for la in spec.layers if la.attention is not None}
    assert {max(1, h // c["tp"]) for h in heads} == {k["num_kv_heads"] for k in c["layer_kinds"]}
    s = KVSettings(tp=c["tp"], max_num_batched_tokens=c["max_num_batched_tokens"],
                   async_scheduling=c["async_scheduling"], max_model_len=c["max_model_len"],
                   **release_settings(spec, c["release"]))
    pool = kv_pool(spec, s)
    r = check_vllm(load(c["model"]), find_gpu("h100-sxm"), VLLMOptions(
        hf_overrides=c["engine_args"]["hf_overrides"], engine_version=c["release"], tp=c["tp"],
        kv_cache_memory_bytes=2**30, max_num_batched_tokens=c["max_num_batched_tokens"]))
    assert r.max_model_len == c["max_model_len"]
    for p in c["plans"]:
        cap = capacity(pool, p["memory_bytes"], c["max_model_len"], s)
        if "refusal" in p:
            assert not cap.fits_one_request
            continue
        assert cap.fits_one_request and cap.num_blocks == p["num_blocks"]
        assert abs(cap.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
        assert abs(cap.max_concurrency - p["max_concurrency"]) <= 0.005
    ours = weights_per_rank(spec, c["tp"], 1, version=c["release"])[0].bytes
    theirs = c["weights_bytes_rank0"] + c["buffer_bytes_rank0"]
    assert abs(ours - theirs) <= 0.01 * theirs


@pytest.mark.parametrize("c", [c for c in _cases("hf_overrides") if c["async_scheduling"]], ids=_id)
def test_hf_overrides_through_check_vllm(c):
    """The same figures from check_vllm (the engine path a command takes), where vLLM scheduled asynchronously as
    check_vllm plans (vLLM 0.30.0 turned it off for Gemma 3's multimodal model: those cases are in the test above)."""
    for p in c["plans"]:
        r = check_vllm(load(c["model"]), find_gpu("h100-sxm"), VLLMOptions(
            hf_overrides=c["engine_args"]["hf_overrides"], engine_version=c["release"], tp=c["tp"],
            kv_cache_memory_bytes=p["memory_bytes"], max_num_batched_tokens=c["max_num_batched_tokens"]))
        if "refusal" in p:
            assert not r.fits and any(e.code == "vllm.kv.max_model_len" for e in r.errors) or \
                "max seq len" in " ".join(e.text for e in r.errors)
            continue
        assert r.num_gpu_blocks == p["num_blocks"] and abs(r.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
        assert abs(r.max_concurrency - p["max_concurrency"]) <= 0.0051  # the result rounds to 2 places


def test_hf_overrides_rope_scaling_without_rope_theta_is_refused_as_vllm_fails():
    us = [u for u in _refused("hf_overrides") if "rope_scaling" in u["engine_args"]["hf_overrides"]]
    assert [u["release"] for u in us] == ["0.30.0", "0.33.0"]  # both releases fail the same way
    for u in us:
        assert u["error"].startswith("TypeError: unsupported operand type(s) for ** or pow(): 'NoneType' and 'Tensor'")
    with pytest.raises(InputError, match=r"without rope_theta in it vLLM \(0\.30\.0, 0\.33\.0\) fails building the rotary embedding"
                                         r" \(TypeError: unsupported operand type\(s\) for \*\* or pow\(\)"):
        check_vllm(load(u["model"]), find_gpu("h100-sxm"), VLLMOptions(hf_overrides=u["engine_args"]["hf_overrides"]))


def test_hf_overrides_keys_not_modelled_and_gguf_are_refused():
    with pytest.raises(NotModelledError, match="--hf-overrides hidden_act: not modelled"):
        check_vllm(load("Qwen/Qwen3-0.6B"), find_gpu("h100-sxm"), VLLMOptions(hf_overrides={"hidden_act": "gelu"}))
    with pytest.raises(NotModelledError, match="--hf-overrides text_config.hidden_act: not modelled"):
        check_vllm(load("google/gemma-3-4b-it"), find_gpu("h100-sxm"),
                   VLLMOptions(hf_overrides={"text_config": {"hidden_act": "gelu"}}))
    spec = load("Qwen/Qwen3-0.6B").model_copy(update={"config": None, "source": "gguf:x.gguf"})
    with pytest.raises(NotModelledError, match="applies it to the model's config.json"):
        apply_hf_overrides(spec, {"num_hidden_layers": 4})
    with pytest.raises(InputError, match="argument --hf-overrides"):
        VLLMOptions(hf_overrides="[1, 2]")


def _dcp_options(c, memory):
    return VLLMOptions(tp=c["tp"], decode_context_parallel_size=c["engine_args"]["decode_context_parallel_size"],
                       engine_version=c["release"], kv_cache_memory_bytes=memory,
                       max_num_batched_tokens=c["max_num_batched_tokens"])


@pytest.mark.parametrize("c", _cases("decode_context_parallel_size"), ids=_id)
def test_decode_context_parallel_equals_vllm(c):
    """--decode-context-parallel-size: each rank's page as without it, each request's full-attention / MLA KV dealt
    over the DCP ranks (cdiv(max_model_len, dcp) tokens a rank), so the same blocks hold dcp times the tokens and
    concurrency; a budget too small for one request gets vLLM's refusal with its figures."""
    for p in c["plans"]:
        r = check_vllm(load(c["model"]), find_gpu("h100-sxm"), _dcp_options(c, p["memory_bytes"]))
        assert r.max_model_len == c["max_model_len"]
        if "refusal" in p:
            (e,) = [e for e in r.errors if "To serve at least one request" in e.text]
            assert e.text.split(" Try increasing")[0] == p["refusal"].split(" Try increasing")[0]
            continue
        assert not [e for e in r.errors if e.code.startswith("vllm.dcp")]
        assert r.num_gpu_blocks == p["num_blocks"] and abs(r.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
        assert abs(r.max_concurrency - p["max_concurrency"]) <= 0.0051  # the result rounds to 2 places


@pytest.mark.parametrize("u", _refused("decode_context_parallel_size"), ids=_id)
def test_decode_context_parallel_refusals_are_vllms(u):
    """What vLLM refuses (ParallelConfig, ModelConfig.verify_with_parallel_config, the sliding-window assertion)
    is refused with the same words."""
    r = check_vllm(load(u["model"]), find_gpu("h100-sxm"), VLLMOptions(
        tp=u["tp"], decode_context_parallel_size=u["engine_args"]["decode_context_parallel_size"],
        engine_version=u["release"]))
    assert not r.fits
    theirs = u["error"].removeprefix("ValidationError: 1 validation error for VllmConfig Value error, ")
    theirs = theirs.removeprefix("ValidationError: 1 validation error for ParallelConfig Value error, ")
    theirs = theirs.split(" [type=value_error")[0]
    assert any(theirs in e.text for e in r.errors), (theirs, [e.text for e in r.errors])


def _eplb_options(args, tp, release, **kw):
    return VLLMOptions(tp=tp, enable_expert_parallel=args.get("enable_expert_parallel", False),
                       enable_eplb=args.get("enable_eplb", False), eplb_config=args.get("eplb_config"),
                       engine_version=release, **kw)


@pytest.mark.parametrize("c", [c for c in FIXTURE["cases"] if "enable_expert_parallel" in c["engine_args"]], ids=_id)
def test_eplb_weights_and_state_equal_vllm(c):
    """--enable-eplb / --eplb-config num_redundant_experts: (experts + redundant) / EP experts per rank in the
    weights vLLM builds, and the tensors EplbState.add_model allocates (maps, load window, one MoE layer's expert
    buffer) to the byte."""
    from vramcalc.vllm.engine import _moe, eplb_state_bytes
    args = c["engine_args"]
    spec = load(c["model"])
    opts = _eplb_options(args, c["tp"], c["release"])
    w = weights_per_rank(spec, c["tp"], 1, moe=_moe(spec, opts), version=c["release"])[0]
    theirs = c["weights_bytes_rank0"] + c["buffer_bytes_rank0"]
    assert abs(w.bytes - theirs) <= 0.001 * theirs
    assert eplb_state_bytes(spec, opts, w) == sum(c.get("eplb_state", {}).values())
    r = check_vllm(spec, find_gpu("h100-sxm"), _eplb_options(args, c["tp"], c["release"], kv_cache_memory_bytes=2**34))
    plain = check_vllm(spec, find_gpu("h100-sxm"), _eplb_options({"enable_expert_parallel": True}, c["tp"], c["release"],
                                                                 kv_cache_memory_bytes=2**34))
    assert r.devices[0].weights_bytes - plain.devices[0].weights_bytes == \
        w.bytes - weights_per_rank(spec, c["tp"], 1, moe=_moe(spec, opts.model_copy(update={"enable_eplb": False})),
                                   version=c["release"])[0].bytes + eplb_state_bytes(spec, opts, w)


@pytest.mark.parametrize("u", [u for u in FIXTURE["unsupported"] if {"enable_eplb", "eplb_config"} & set(u["engine_args"])],
                         ids=_id)
def test_eplb_refusals_are_vllms(u):
    r = check_vllm(load(u["model"]), find_gpu("h100-sxm"), _eplb_options(u["engine_args"], u["tp"], u["release"]))
    theirs = u["error"].removeprefix("ValidationError: 1 validation error for ParallelConfig Value error, ")
    theirs = theirs.removeprefix("ValueError: ").split(" [type=value_error")[0]
    assert not r.fits and any(theirs in e.text for e in r.errors), (theirs, [e.text for e in r.errors])
