"""Planner decisions that follow from engine rules, and the plans the issue names."""

from __future__ import annotations

import json

import pytest

import vramcalc
from vramcalc.cli import main
from vramcalc.gpus import find_gpu
from vramcalc.plan import plan
from vramcalc.systems import parse_system
from vramcalc.vllm.engine import VLLMOptions, check_vllm


def _plan(model, system, **kw):
    return plan(vramcalc.load_model(model), parse_system(system), **kw)


def test_tp3_is_never_proposed_for_64_heads():
    r = _plan("llama-3.3-70b", "3x3090", top=20)
    assert r.recommendations
    # vLLM's TP needs the heads to divide; llama.cpp's tensor split rounds head slices per GPU instead
    # (llama_meta_device_get_split_state), so it may use all three
    assert all(c.layout.tp != 3 for c in r.recommendations if c.engine == "vllm")
    tp3 = [x for x in r.rejected if "TP=3" in x.family]
    assert tp3 and tp3[0].reason.code == "vllm.parallel.attention_heads" and "divisible" in tp3[0].reason.text


def test_a_model_that_fits_one_gpu_gets_a_replica_per_gpu_option():
    r = _plan("llama-3.1-8b", "2x4090", top=20)
    reps = [c for c in r.recommendations if c.layout.replicas == 2 and c.layout.gpus_per_replica == 1]
    assert reps
    c = reps[0]
    assert c.router_config.count("api_base") == 2
    assert any(cmd.startswith("CUDA_VISIBLE_DEVICES=1 ") for cmd in c.commands)
    assert any(cmd.startswith("litellm --config router.yaml") for cmd in c.commands)
    # replicas double the aggregate, not the single stream
    assert c.speed.aggregate_tokens_per_s == pytest.approx(c.speed.decode_tokens_per_s * 2, rel=0.05) or \
        r.concurrency == 1


def test_every_vllm_recommendation_starts_under_the_engine_model():
    r = _plan("qwen3.6-27b", "2x4090", context=32768, top=20)
    gpu = find_gpu("rtx4090")
    spec = vramcalc.load_model("qwen3.6-27b")
    checked = 0
    for c in r.recommendations:
        if c.engine != "vllm":
            continue
        quant = None if c.quant == "checkpoint" else c.quant
        opts = VLLMOptions(tp=c.layout.tp, pp=c.layout.pp, max_model_len=32768, quantization=quant,
                           kv_cache_dtype=c.kv_cache_dtype)
        if "--max-num-seqs" in c.commands[0]:  # hybrid: fewer sequences than vLLM's default, said in a note
            seqs = int(c.commands[0].split("--max-num-seqs ")[1].split()[0])
            opts = opts.model_copy(update={"max_num_seqs": seqs})
            assert any(n.code == "plan.max_num_seqs" and f"--max-num-seqs {seqs}" in n.text for n in c.notes)
        if "--disable-extensible-kv-cache" in c.commands[0]:  # vLLM 0.34's cache off: said in a note
            opts = opts.model_copy(update={"enable_extensible_kv_cache": False})
            assert any(n.code == "plan.extensible_off" for n in c.notes)
        res = check_vllm(spec, gpu, opts)
        if not res.fits:  # the planner may raise the budget: it must say so
            assert any(n.code == "plan.high_utilization" for n in c.notes)
        checked += 1
        assert "--max-model-len 32768" in c.commands[0]
        assert c.max_concurrency >= 1
    assert checked


def test_qwen36_27b_at_128k_on_two_4090s_rejects_one_gpu_for_kv():
    r = _plan("qwen3.6-27b", "2x4090", context=131072)
    assert r.fits
    top = r.recommendations[0]
    assert top.engine == "vllm" and top.layout.tp == 2  # the KV of 128k does not fit beside 4-bit weights on one
    assert any("TP=1" in x.family and "KV cache" in x.reason.text for x in r.rejected)


def test_moe_on_a_12gb_gpu_keeps_experts_on_the_cpu():
    r = _plan("qwen3-30b-a3b", "rtx4070")
    assert r.fits
    assert all(c.engine == "llamacpp" for c in r.recommendations)
    top = r.recommendations[0]
    assert top.layout.cpu_moe and 0 < top.layout.n_cpu_moe < 48
    assert f"--n-cpu-moe {top.layout.n_cpu_moe}" in top.commands[0]
    assert any(n.code == "plan.note.host_offload" for n in top.notes)
    assert "host-RAM bandwidth" in top.speed.basis  # the offload speed is an assumption, said so


def test_gpt_oss_on_strix_halo_uses_its_mxfp4_gguf():
    r = _plan("gpt-oss-120b", "ryzen-ai-max-plus-395(128GiB)")
    assert r.fits
    assert any(c.quant == "gguf:MXFP4_MOE" for c in r.recommendations)


def test_deepseek_v3_on_two_h100_nodes_keeps_tp_in_a_node():
    r = _plan("deepseek-v3", "2x8xH100")
    vllm = [c for c in r.recommendations if c.engine == "vllm"]
    assert vllm
    for c in vllm:
        assert c.layout.tp <= 8
        if c.layout.tp * c.layout.pp > 8:
            assert c.layout.nodes == 2
            assert any("ray start --head" in cmd for cmd in c.commands)
            assert "--distributed-executor-backend ray" in c.commands[-1]
    # llama.cpp reaches the second machine through ggml-rpc-server, only when one machine is not enough
    r = _plan("deepseek-v3", "2x8xH100", engine="llamacpp", top=20)
    rpc = [c for c in r.recommendations if c.layout.nodes == 2]
    assert rpc and all(c.quant not in {x.quant for x in r.recommendations if x.layout.nodes == 1} for c in rpc)
    assert rpc[0].commands[0].endswith("ggml-rpc-server -H 0.0.0.0 -p 50052")
    assert "--rpc <node-2>:50052" in rpc[0].commands[1] and "network_hops" in rpc[0].speed.terms_ms


def test_apple_has_no_vllm():
    r = _plan("llama-3.1-8b", "m4-max(64GiB)")
    assert all(c.engine == "llamacpp" for c in r.recommendations)
    assert any(x.family == "vLLM" and x.reason.code == "plan.reject.metal" for x in r.rejected)


def test_concurrency_is_a_requirement():
    r = _plan("llama-3.1-8b", "rtx4090", context=32768, concurrency=64, engine="vllm")
    assert all(c.max_concurrency >= 64 for c in r.recommendations)


def test_nothing_fits_lists_why():
    r = _plan("llama-3.1-405b", "rtx4070", engine="vllm")
    assert not r.fits and not r.recommendations
    assert r.rejected and all(x.reason.text for x in r.rejected)


def test_goals_rank_differently():
    lat = _plan("llama-3.1-8b", "2x4090", goal="latency", concurrency=8)
    thr = _plan("llama-3.1-8b", "2x4090", goal="throughput", concurrency=8)
    # latency: the speed one stream sees at the asked concurrency; throughput: all streams together;
    # both at the low end of the estimate's measured error band
    low = lambda c: 1 - min(0.9, c.speed.uncertainty)  # noqa: E731
    key_l = [c.speed.per_stream_tokens_per_s * low(c) for c in lat.recommendations]
    key_t = [c.speed.aggregate_tokens_per_s * low(c) for c in thr.recommendations]
    assert key_l == sorted(key_l, reverse=True) and key_t == sorted(key_t, reverse=True)


def test_plan_json_is_deterministic_and_exit_codes(capsys):
    assert main(["plan", "llama-3.1-8b", "--gpu", "rtx4090", "--json"]) == 0
    a = capsys.readouterr().out
    assert main(["plan", "llama-3.1-8b", "--gpu", "rtx4090", "--json"]) == 0
    assert capsys.readouterr().out == a
    assert json.loads(a)["recommendations"][0]["rank"] == 1
    assert main(["plan", "llama-3.1-405b", "--gpu", "rtx4070", "--engine", "vllm"]) == 1
    assert "rejected" in capsys.readouterr().out
    assert main(["plan", "llama-3.1-8b", "--gpu", "rtx9999"]) == 2
    assert "unknown GPU" in capsys.readouterr().err


def test_llama_cpp_tensor_split_is_offered_where_llama_cpp_allows_it():
    r = _plan("qwen3.6-27b", "2x4090", context=32768, engine="llamacpp", top=20)
    tensor = [c for c in r.recommendations if c.layout.split == "tensor"]
    assert tensor and "-sm tensor" in tensor[0].commands[0] and tensor[0].layout.tp == 2
    assert any(n.code == "plan.note.tensor_split" for n in tensor[0].notes)
    ds = _plan("deepseek-v3", "8xh100-sxm", context=8192, engine="llamacpp", top=20)
    assert not any(c.layout.split == "tensor" for c in ds.recommendations)
    assert any(x.family == "llama.cpp tensor split" and x.reason.code == "llamacpp.split.tensor_arch"
               and "'deepseek2'" in x.reason.text for x in ds.rejected)


def test_plan_and_check_give_no_fits_on_a_host_of_unknown_ram_that_needs_hundreds_of_gib():
    """DeepSeek-V3 on one 4090 needs some 300 GiB of host RAM with its experts on the CPU. Without the host's
    RAM, neither plan nor the engine check says it fits; with enough RAM given, plan offers the offload."""
    from vramcalc.llamacpp.engine import UNCHECKED_HOST_RAM_GIB, LlamaOptions, check_llamacpp

    r = _plan("deepseek-v3", "rtx4090", context=8192)
    assert not r.recommendations
    host = [j for j in r.rejected if j.reason.code == "llamacpp.host.ram_unchecked"]
    assert host and all(f"{UNCHECKED_HOST_RAM_GIB} GiB assumed without --ram" in j.reason.text for j in host)
    one = check_llamacpp(vramcalc.load_model("deepseek-v3"), find_gpu("rtx4090"),
                         LlamaOptions(n_ctx=8192, n_gpu_layers=None, ftype="IQ4_XS"))
    assert not one.fits and "llamacpp.host.ram_unchecked" in {e.code for e in one.errors}
    roomy = _plan("deepseek-v3", "rtx4090", context=8192, host_ram_bytes=768 * 2**30)
    assert roomy.recommendations and all(c.engine == "llamacpp" and c.layout.split == "offload"
                                         for c in roomy.recommendations)


def test_plan_h100_8b_at_64_streams_ranks_vllm_ahead_of_llamacpp():
    """The published comparisons (tests/data/serving_seeds.json): at 32+ streams vLLM's aggregate is ahead."""
    r = _plan("llama-3.1-8b-instruct", "h100-sxm", concurrency=64, goal="throughput")
    assert r.recommendations[0].engine == "vllm"
    # the llama.cpp row is a slot per stream (-np 64 --kv-unified), not the default 4 slots, and still behind:
    # the masked attention over every slot's cells and the int8 mmq share fitted on published llama.cpp runs
    llama = [c for c in r.recommendations if c.engine == "llamacpp"]
    assert llama and any("-np 64" in cmd for cmd in llama[0].commands)
    assert r.recommendations[0].speed.aggregate_tokens_per_s >= 1.25 * llama[0].speed.aggregate_tokens_per_s


def test_plan_replicas_give_one_stream_one_replicas_speed():
    r = _plan("llama-3.1-8b", "2x4090", context=16384, top=5)
    for c in r.recommendations:
        if c.layout.replicas > 1:
            assert c.speed.per_stream_tokens_per_s <= c.speed.decode_tokens_per_s * (1 + 1e-9)
            assert c.speed.aggregate_tokens_per_s <= c.speed.per_stream_tokens_per_s * (1 + 1e-9)  # one stream


def test_plan_pins_keep_what_the_user_runs():
    from vramcalc.plan import Pins

    r = _plan("qwen3.6-27b", "4x3090", pins=Pins(quant="gptq", tp=2, enforce_eager=True), engine="vllm")
    assert r.recommendations and all(c.quant == "gptq" and c.layout.tp == 2 for c in r.recommendations)
    assert all(c.vllm_options and c.vllm_options.enforce_eager for c in r.recommendations)
    assert "plan.reject.pinned" in {x.reason.code for x in r.rejected}
    free = _plan("qwen3.6-27b", "4x3090", pins=Pins(quant="gptq", tp=2), engine="vllm")
    assert free.recommendations[0].speed.per_stream_tokens_per_s > r.recommendations[0].speed.per_stream_tokens_per_s


def test_plan_one_stream_on_4x3090_is_not_ranked_by_replica_count():
    """Issue 21: at concurrency 1 four replicas ranked first at 4x one replica's speed; one stream gets one replica."""
    r = _plan("llama-3.1-8b", "4x3090", goal="throughput", top=6)
    top = r.recommendations[0]
    assert top.layout.replicas == 1 or top.speed.aggregate_tokens_per_s <= top.speed.per_stream_tokens_per_s
    for c in r.recommendations:
        assert c.speed.aggregate_tokens_per_s <= c.speed.per_stream_tokens_per_s * (1 + 1e-9)


def test_a_plan_row_names_the_band_it_prints():
    """A row whose speed band is the single-stream model's own (a layout with no measured run: llama.cpp's tensor
    split, a layer split) says so instead of quoting the held-out slice's error as that band."""
    from vramcalc.serving import serving_data

    r = _plan("qwen3-32b", "2x3090", concurrency=8, top=20)
    held = serving_data().holdout_errors
    rows = [c for c in r.recommendations if c.speed.uncertainty_slice]
    assert any("widened" in c.speed.uncertainty_slice for c in rows)
    for c in rows:
        name = c.speed.uncertainty_slice.split(",")[0].split(" ")[0]
        if "widened" not in c.speed.uncertainty_slice:
            assert c.speed.uncertainty == pytest.approx(held[name].median)
        else:
            assert c.speed.uncertainty > held[name].median


def test_a_margin_refusal_with_no_shorter_length_still_reads_as_a_sentence():
    """Qwen3-32B FP8 at TP=2 on 3090s at 8K (the planner's rejected row): no length fits within the margin, and the
    message ends on an action instead of a dangling 'or'."""
    res = check_vllm(vramcalc.load_model("qwen3-32b"), find_gpu("3090"),
                     VLLMOptions(max_model_len=8192, quantization="fp8", tp=2))
    [text] = [e.text for e in res.errors if e.code == "vllm.verdict.margin"]
    assert text.endswith("so no promise that vLLM starts; raise --gpu-memory-utilization or use more memory per GPU")


def test_alternatives_are_planned_once_per_question_and_equal_a_fresh_plan():
    """A refused check names what to run instead; the same question again (the CLI's check, then the same call from
    Python) reuses the planned answer, which must equal planning it afresh, and a different question is planned anew."""
    import importlib

    plan_module = importlib.import_module("vramcalc.plan")
    from vramcalc.sources import load_model

    spec, system = load_model("qwen3-8b"), parse_system("4060")
    plan_module._ALTERNATIVES.clear()
    first = plan_module.alternatives(spec, system, 32768, prefer_engine="vllm")
    assert len(plan_module._ALTERNATIVES) == 1
    first.append("changed by the caller")  # a caller's list is its own
    again = plan_module.alternatives(load_model("qwen3-8b"), parse_system("4060"), 32768, prefer_engine="vllm")
    assert len(plan_module._ALTERNATIVES) == 1
    fresh = plan_module._alternatives(spec, system, 32768, None, "any", "vllm", None, 3, None)
    assert again == fresh and first[:-1] == fresh and fresh
    plan_module.alternatives(spec, system, 8192, prefer_engine="vllm")
    assert len(plan_module._ALTERNATIVES) == 2
