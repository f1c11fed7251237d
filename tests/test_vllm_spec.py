"""vLLM speculative decoding (--speculative-config, vramcalc/vllm/spec_decode.py) against real start-up logs
(tests/data/vllm_spec_logs.json), published speed-ups (tests/data/vllm_spec_speedups.json) and vLLM's own
refusals (vllm/config/speculative.py SpeculativeConfig, v0.33 line)."""

import json
from statistics import median

import pytest

import vramcalc
from conftest import DATA
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.kv import KVSettings, capacity, kv_pool
from vramcalc.vllm.spec_decode import parse_speculative_config, plan_speculative, tokens_per_step

GIB = 2**30
LOGS = json.loads((DATA / "vllm_spec_logs.json").read_text())["cases"]
SPEEDUPS = json.loads((DATA / "vllm_spec_speedups.json").read_text())["cases"]


def _pool(case):
    """The KV pool vLLM builds for the logged flags: the drafter's layers join the target's
    (check_vllm does the same through plan_speculative)."""
    spec, o = load(case["model"]), case["options"]
    plan = plan_speculative(o["speculative_config"], spec, o["tp"], 1, o["max_model_len"], None) \
        if "speculative_config" in o else None
    s = KVSettings(tp=o["tp"], kv_cache_dtype=o["kv_cache_dtype"], max_num_batched_tokens=o["max_num_batched_tokens"],
                   num_speculative_tokens=plan.num_speculative_tokens if plan else 0)
    pool_spec = spec.model_copy(update={"layers": spec.layers + plan.draft_layers}) if plan else spec
    return kv_pool(pool_spec, s), s


WITH_MEMORY = [c for c in LOGS if c["logged"]["available_kv_gib"] is not None]


def _kv_token_errors():
    out = {}
    for c in WITH_MEMORY:
        pool, s = _pool(c)
        cap = capacity(pool, int(c["logged"]["available_kv_gib"] * GIB), c["options"]["max_model_len"], s)
        out[c["id"]] = cap.kv_cache_tokens / c["logged"]["kv_tokens"] - 1
    return out


def test_kv_tokens_replay_the_logs():
    """From the logged available KV memory, the KV tokens vLLM printed: target median within 3%. Each case is
    within 0.5% (the log rounds the memory to 0.01 GiB, about one block here)."""
    errors = _kv_token_errors()
    abs_err = [abs(e) for e in errors.values()]
    print(f"\nKV tokens vs logs: median |error| {median(abs_err):.2%}, worst {max(abs_err):.2%} over {len(abs_err)} logs")
    assert WITH_MEMORY and any("speculative_config" in c["options"] for c in WITH_MEMORY)
    assert median(abs_err) <= 0.03
    assert all(abs(e) <= 0.005 for e in errors.values()), errors


@pytest.mark.parametrize("case", [c for c in LOGS if "speculative_config" in c["options"]], ids=lambda c: c["id"])
def test_logged_tokens_lie_on_the_predicted_block_lattice(case):
    """vLLM logs int(blocks / blocks_per_request x max_model_len): with num_speculative_tokens 3 the GDN conv
    state grows, the attention block rises to 1600 tokens and a 262144-token request takes 179 blocks; the
    logged count is a whole number of blocks only on that lattice (without the drafter: 1568 and 174)."""
    pool, s = _pool(case)
    L = case["options"]["max_model_len"]
    per = pool.blocks_per_request(L, s)
    blocks = case["logged"]["kv_tokens"] * per / L
    assert abs(blocks - round(blocks)) * L / per < 1  # int() drops less than one token
    assert round(round(blocks) / per, 2) == case["logged"]["max_concurrency"]
    plain, ps = _pool({**case, "options": {k: v for k, v in case["options"].items() if k != "speculative_config"}})
    off = case["logged"]["kv_tokens"] * plain.blocks_per_request(L, ps) / L
    assert abs(off - round(off)) * L / plain.blocks_per_request(L, ps) >= 1


def test_mtp_adds_one_attention_layer_to_the_pool():
    """The MTP layer's KV joins the full-attention group (17 layers where the model has 16), and the Mamba groups
    are padded to it: the logged case is off by 6% without that layer."""
    c = next(c for c in WITH_MEMORY if "speculative_config" in c["options"])
    pool, s = _pool(c)
    assert [g.layers for g in pool.groups if g.kind == "full"] == [17] and pool.group_size == 17
    spec = load(c["model"])
    plain = kv_pool(spec, s)  # the speculative tokens' state, but no MTP layer
    avail = int(c["logged"]["available_kv_gib"] * GIB)
    without = capacity(plain, avail, c["options"]["max_model_len"], s).kv_cache_tokens
    assert without / c["logged"]["kv_tokens"] - 1 > 0.05


def test_check_vllm_carries_the_drafter():
    gpu = find_gpu("rtx-3090")
    spec = load("Qwen/Qwen3.6-27B")
    base = dict(tp=2, max_model_len=262144, kv_cache_dtype="fp8", max_num_batched_tokens=8192, max_num_seqs=2,
                quantization="awq")
    off = check_vllm(spec, gpu, VLLMOptions(**base))
    on = check_vllm(spec, gpu, VLLMOptions(**base, speculative_config={"method": "mtp", "num_speculative_tokens": 3}))
    sp = on.speculative
    assert sp and sp.method == "mtp" and sp.draft_kv_layers == 1 and sp.num_speculative_tokens == 3
    assert on.devices[0].weights_bytes - off.devices[0].weights_bytes == sp.draft_weight_bytes > 0
    assert on.kv_cache_tokens < off.kv_cache_tokens
    assert "--speculative-config '{\"method\":\"mtp\",\"num_speculative_tokens\":3}'" in on.command
    assert any(w.code == "vllm.spec.acceptance" for w in on.warnings)


def test_draft_model_layers_join_one_uniform_group():
    """A draft model's full-attention layers of another page size: one group whose page is the sum of the
    layers' pages (UniformTypeKVCacheSpecs), so a block costs target and draft pages together."""
    spec, draft = load("meta-llama/Llama-3.1-8B-Instruct"), load("meta-llama/Llama-3.2-1B-Instruct")
    plan = plan_speculative({"model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 3}, spec, 1, 1,
                            8192, None, draft)
    assert plan.method == "draft_model" and not plan.errors and len(plan.draft_layers) == 16
    s = KVSettings()
    pool = kv_pool(spec.model_copy(update={"layers": spec.layers + plan.draft_layers}), s)
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 x 2 bytes; Llama-3.2-1B: 16 x 8 x 64 x 2 x 2
    assert len(pool.groups) == 1 and pool.bytes_per_block == 16 * (32 * 8 * 128 * 4 + 16 * 8 * 64 * 4)


@pytest.mark.parametrize("cfg,words", [
    ({"method": "medusa2", "num_speculative_tokens": 1}, "Input should be 'custom_class'"),
    ({"model": "Qwen/Qwen3-0.6B", "num_speculative_tokens": 3},
     "Target and draft model should have the same vocabulary size. Target model vocab_size=128256. "
     "Draft model vocab_size=151936."),
    ({"method": "eagle3", "num_speculative_tokens": 3}, "num_speculative_tokens was provided but without speculative model."),
    ({"method": "ngram", "num_speculative_tokens": 3, "tensor_parallel_size": 1},
     "'tensor_parallel_size' is not a valid argument in the speculative_config. Please pass "
     "'draft_tensor_parallel_size' instead."),
    ({"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_min": 5, "prompt_lookup_max": 2},
     "prompt_lookup_min=5 must be <= prompt_lookup_max=2"),
    ({"model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 2, "draft_tensor_parallel_size": 3},
     "speculative_draft_tensor_parallel_size=3 cannot be other value than 1 or target model tensor_parallel_size"),
])
def test_refusals_in_vllms_words(cfg, words):
    r = check_vllm(load("meta-llama/Llama-3.1-8B-Instruct"), find_gpu("h100-sxm"), VLLMOptions(speculative_config=cfg))
    assert not r.fits and any(words in e.text and e.code == "vllm.spec.config" for e in r.errors), r.errors


def test_mtp_count_must_divide_and_old_names_are_replaced():
    spec = load("deepseek-ai/DeepSeek-V3")
    # one MTP layer: any k is a multiple of it; the per-model name is replaced with mtp (with vLLM's warning)
    plan = plan_speculative({"method": "deepseek_mtp", "num_speculative_tokens": 2}, spec, 8, 1, 8192, None)
    assert plan.method == "mtp" and not plan.errors
    assert [w.text for w in plan.warnings][0] == "method `deepseek_mtp` is deprecated and replaced with mtp."
    two = spec.model_copy(update={"mtp_layers": 2})
    bad = plan_speculative({"method": "mtp", "num_speculative_tokens": 3}, two, 8, 1, 8192, None)
    assert bad.errors[0].text.startswith("num_speculative_tokens:3 must be divisible by n_predict=2")
    dflt = plan_speculative({"method": "mtp"}, two, 8, 1, 8192, None)
    assert dflt.num_speculative_tokens == 2  # defaults to n_predict


def test_ngram_adds_nothing_but_the_state_steps():
    spec = load("Qwen/Qwen3-8B")
    plan = plan_speculative({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4}, spec, 1, 1,
                            8192, None)
    assert plan.weight_bytes == 0 and plan.draft_layers == () and plan.acceptance == []
    assert tokens_per_step(plan.acceptance) == 1.0  # no published default: no speed-up planned


def test_config_json_is_checked():
    with pytest.raises(vramcalc.InputError, match="not a field of vLLM's SpeculativeConfig"):
        parse_speculative_config('{"method": "mtp", "num_spec_tokens": 1}')
    with pytest.raises(vramcalc.InputError, match="not valid JSON"):
        parse_speculative_config("{method: mtp}")


@pytest.mark.parametrize("command", [
    "vllm serve Qwen/Qwen3.6-27B -tp 2 --speculative-config '{\"method\":\"mtp\",\"num_speculative_tokens\":2}'",
    "vllm serve Qwen/Qwen3.6-27B -tp 2 --spec-method mtp --spec-tokens 2",
    "vllm serve Qwen/Qwen3.6-27B -tp 2 --speculative-config.method mtp --speculative-config.num_speculative_tokens 2",
    "vllm serve Qwen/Qwen3.6-27B -tp 2 -sc '{\"method\":\"mtp\",\"num_speculative_tokens\":2}'",
])
def test_pasted_commands_read_the_config(command):
    _, r = read_command(command)
    assert r.options["speculative_config"] == {"method": "mtp", "num_speculative_tokens": 2}


def _speedup(case, run):
    common = dict(max_model_len=case["max_model_len"], quant=case["quant"], prompt=case["prompt"],
                  output=case["output"])
    base = vramcalc.check(case["model"], case["gpu"], engine="vllm", **common).speed.single_stream_tokens_per_s
    spec = vramcalc.check(case["model"], case["gpu"], engine="vllm", speculative_config=run["speculative_config"],
                          **common).speed.single_stream_tokens_per_s
    return spec / base, run["tok_s"] / case["baseline_tok_s"]


def test_speed_up_against_published_runs():
    """The estimate's speed-up at the default MTP acceptance against the published ones (no acceptance printed
    there). With the fitted verify overhead (data/vllm_spec.json verify_overhead) the Strix Halo sweep is
    under-predicted by 6-12% (it was within 3.5% without it, at an acceptance nobody printed); the 2x RTX 3090
    run, where MTP made decode slower (a regression reported with high variance), is over-predicted by 36%:
    stated, not hidden (README)."""
    errors = {}
    for case in SPEEDUPS:
        for run in case["with_spec"]:
            got, want = _speedup(case, run)
            errors[f"{case['id']}:k={run['speculative_config']['num_speculative_tokens']}"] = got / want - 1
    print("\nspeed-up error: " + ", ".join(f"{k} {v:+.0%}" for k, v in errors.items()))
    # these runs join the wider set whose figures the speed line prints (data/vllm_spec.json speedup_check,
    # recomputed by tests/test_spec_speed_measurements.py)
    strix = [v for k, v in errors.items() if k.startswith("strix")]
    assert len(strix) == 4 and -0.13 <= min(strix) and max(strix) <= -0.05
    assert 0.3 <= errors["vllm-38182-qwen36-35b-a3b-2x3090-mtp1:k=1"] <= 0.45


@pytest.mark.parametrize("case", json.loads((DATA / "vllm_spec_logs.json").read_text())["weights"], ids=lambda c: c["id"])
def test_weights_with_the_mtp_layer_against_the_log(case):
    """'Model loading took' covers the target and its MTP layer (embedding and LM head shared): within 1.5% with
    the layer, 3.5% short without it."""
    o = case["options"]
    gpu = find_gpu("rtx-3090")
    spec = load(case["model"])
    on = check_vllm(spec, gpu, VLLMOptions(**o)).devices[0].weights_bytes / GIB
    off = check_vllm(spec, gpu, VLLMOptions(**{k: v for k, v in o.items() if k != "speculative_config"}))
    want = case["logged"]["model_loading_gib"]
    print(f"\nweights with MTP {on:.2f} GiB ({on / want - 1:+.1%}), without {off.devices[0].weights_bytes / GIB:.2f} GiB")
    assert abs(on / want - 1) <= 0.015
    assert off.devices[0].weights_bytes / GIB / want - 1 < -0.02


ORACLE = json.loads((DATA / "vllm_spec_oracle.json").read_text())


def test_oracle_names_its_release_and_method():
    assert ORACLE["release"] == "0.33.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"] and ORACLE["cases"]


@pytest.mark.parametrize("case", ORACLE["cases"], ids=lambda c: f"{c['model']}-tp{c['tp']}-{c['kv_cache_dtype']}-k"
                         f"{c['num_speculative_tokens']}")
def test_pool_with_the_mtp_drafter_equals_vllms_own(case):
    """vLLM 0.33.0's planning on the target's and the MTP drafter's KV specs (tools/vllm_spec_oracle.py): block
    size, groups, blocks, tokens and concurrency equal for each budget."""
    spec = load(case["model"])
    k = case["num_speculative_tokens"]
    plan = plan_speculative({"method": "mtp", "num_speculative_tokens": k}, spec, case["tp"], 1,
                            case["max_model_len"], None)
    assert len([layer for layer in spec.layers + plan.draft_layers if layer.attention is not None]) \
        == case["attention_layers"]
    s = KVSettings(tp=case["tp"], kv_cache_dtype=case["kv_cache_dtype"],
                   max_num_batched_tokens=case["max_num_batched_tokens"], num_speculative_tokens=k)
    pool = kv_pool(spec.model_copy(update={"layers": spec.layers + plan.draft_layers}), s)
    for p in case["plans"]:
        want = sorted((g["kind"].replace("FullAttentionSpec", "full").replace("MambaSpec", "mamba")
                       .replace("MLAAttentionSpec", "full"), g["layers"]) for g in p["groups"])
        assert sorted((g.kind, g.layers) for g in pool.groups) == want
        if "refusal" in p:
            assert not capacity(pool, p["memory_bytes"], case["max_model_len"], s).fits_one_request
            continue
        cap = capacity(pool, p["memory_bytes"], case["max_model_len"], s)
        assert (pool.block_size, cap.num_blocks, cap.kv_cache_tokens) == (p["block_size"], p["num_blocks"],
                                                                         p["kv_cache_tokens"])
        assert round(cap.max_concurrency, 4) == p["max_concurrency"]


@pytest.mark.parametrize("case", json.loads((DATA / "vllm_spec_logs.json").read_text())["not_modelled"],
                         ids=lambda c: c["id"])
def test_unmodelled_drafters_are_refused_and_their_kv_matters(case):
    """Held out: a DFlash start-up whose drafter is a local folder with no published config. vramcalc refuses
    rather than answer without the drafter (it sizes a DFlash drafter from its config, tests/test_vllm_dflash.py);
    the log shows why: the target's pool alone, from the same logged memory, holds over 3% more tokens than vLLM
    printed (a false 'fits' at long contexts)."""
    from vramcalc.errors import NotModelledError, UnknownModelError

    o = case["options"]
    with pytest.raises((NotModelledError, UnknownModelError)):
        plan_speculative(o["speculative_config"], load(case["model"]), o["tp"], 1, o["max_model_len"], None)
    s = KVSettings(tp=o["tp"], kv_cache_dtype=o["kv_cache_dtype"], max_num_batched_tokens=o["max_num_batched_tokens"],
                   num_speculative_tokens=o["speculative_config"]["num_speculative_tokens"])
    cap = capacity(kv_pool(load(case["model"]), s), int(case["logged"]["available_kv_gib"] * GIB),
                   o["max_model_len"], s)
    err = cap.kv_cache_tokens / case["logged"]["kv_tokens"] - 1
    print(f"\n{case['id']}: target-only pool {cap.kv_cache_tokens:,} tokens vs logged "
          f"{case['logged']['kv_tokens']:,} ({err:+.1%})")
    assert err > 0.03
