"""--diffusion-config and DiffusionGemma against vLLM 0.34.0's and 0.33.0's own code
(tests/data/vllm_diffusion_oracle_v0.3[34].0.json, tools/vllm_diffusion_oracle.py): the model's parameters per rank and
KV plan, and per --diffusion-config case the speculative-token count, max_num_seqs, the CUDA-graph capture sizes (each
release's rule), the runner's diffusion state and the refusals."""

import json
import os

import pytest

from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import config_of
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.diffusion import plan_diffusion, request_state_bytes
from vramcalc.vllm.engine import VLLMOptions, _decode_shapes, _graph_sizes_rule, check_vllm, cudagraph_capture_sizes
from vramcalc.vllm.kv import KVSettings, capacity, kv_pool, release_settings
from vramcalc.vllm.weights import weights_per_rank

DATA = os.path.join(os.path.dirname(__file__), "data")
DOCS = {r: json.load(open(os.path.join(DATA, f"vllm_diffusion_oracle_v{r}.json"))) for r in ("0.34.0", "0.33.0")}
DOC = DOCS["0.34.0"]
RULE = {"0.34.0": "split", "0.33.0": "uniform"}  # engine.py _graph_sizes_rule
BUILDS = [(r, b) for r, d in DOCS.items() for b in d["builds"]]
CASES = [(r, c) for r, d in DOCS.items() for c in d["cases"]]
REFUSED = [(r, c) for r, d in DOCS.items() for c in d["refused"]]
SPEC = spec_from_config(DOC["config"], model_id="google/diffusiongemma-26B-A4B-it", source="fixture")
DEFAULT_SEQS = 1024  # a --max-num-seqs default above DEFAULT_MAX_NUM_SEQS, as every CUDA default is


def _spec(case):
    stem = case["engine_args"].get("model")
    if stem is None:
        return SPEC
    repo = case["model"]
    return spec_from_config(config_of(repo), model_id=repo, source="catalog")


def test_fixtures_name_release_and_method():
    for r, d in DOCS.items():
        assert d["release"] == r and "VLLM_TARGET_DEVICE=cpu" in d["produced_by"] and d["config"] == DOC["config"]
        assert len(d["cases"]) == 22 and len(d["refused"]) == 4 and [b["tp"] for b in d["builds"]] == [1, 2]
    assert _graph_sizes_rule("0.34.0") == "split" and _graph_sizes_rule("0.33.0") == "uniform"


def test_diffusion_gemma_is_read_as_vllm_builds_it():
    assert SPEC.model_type == "diffusion_gemma_text" and SPEC.architecture == "DiffusionGemmaForBlockDiffusion"
    full = [la.attention for la in SPEC.layers if la.attention.kind == "full"]
    assert len(full) == 5 and all(a.k_eq_v and a.num_kv_heads == 2 and a.head_dim_k == 512 for a in full)
    assert all(la.mlp.kind == "moe" and la.mlp.num_experts == 128 for la in SPEC.layers)


@pytest.mark.parametrize("rb", BUILDS, ids=lambda rb: f"{rb[0]}-tp{rb[1]['tp']}")
def test_weights_per_rank_equal_vllm(rb):
    """vLLM's parameters and buffers per rank, the V slot QKVParallelLinear keeps in each k_eq_v full-attention
    layer (into which vLLM loads K: vllm/model_executor/models/gemma4.py _gemma4_layer_weights_mapper) included."""
    release, b = rb
    w = weights_per_rank(SPEC, b["tp"], 1, version=release)[0]
    assert w.bytes - w.rotary_cache_bytes == b["param_bytes_per_rank"]
    assert abs(w.rotary_cache_bytes - b["buffer_bytes_per_rank"]) < 2**13  # vLLM's few small buffers beside it
    theirs = b["param_bytes_per_rank"] + b["buffer_bytes_per_rank"]
    assert abs(w.bytes - theirs) <= 0.01 * theirs
    assert SPEC.vision.params * 2 == b["vision_bytes_per_rank"]  # the tower whole on every rank
    # the self-conditioning MLP, whole on every rank: the difference from the Gemma 4 backbone alone
    base = spec_from_config({**DOC["config"], "text_config": {**DOC["config"]["text_config"],
                                                              "model_type": "gemma4_text", "attention_k_eq_v": True,
                                                              "hidden_size_per_layer_input": 0,
                                                              "enable_moe_block": True}},
                            model_id="backbone", source="fixture")
    assert w.bytes - weights_per_rank(base, b["tp"], 1, version=release)[0].bytes == \
        b["self_conditioning_bytes_per_rank"]


@pytest.mark.parametrize("rb", BUILDS, ids=lambda rb: f"{rb[0]}-tp{rb[1]['tp']}")
def test_kv_pool_equals_vllm(rb):
    release, b = rb
    s = KVSettings(tp=b["tp"], kv_cache_dtype="auto", max_num_batched_tokens=b["max_num_batched_tokens"],
                   async_scheduling=b["async_scheduling"], max_model_len=b["max_model_len"],
                   **release_settings(SPEC, release))
    pool = kv_pool(SPEC, s)
    assert len(b["layers"]) == 30
    for p in b["plans"]:
        groups = p["groups"]
        assert pool.block_size == min(g["block_size"] for g in groups)
        assert {g["page_size_bytes"] for g in groups} == {pool.page_bytes}
        assert len(pool.groups) == len(groups)
        cap = capacity(pool, p["memory_bytes"], b["max_model_len"], s, "current")
        if "refusal" in p:
            assert not cap.fits_one_request
        else:
            assert cap.num_blocks == p["num_blocks"]
            assert abs(cap.max_concurrency - p["max_concurrency"]) <= 0.005
            assert abs(cap.kv_cache_tokens - p["kv_cache_tokens"]) <= 1


@pytest.mark.parametrize("rc", CASES, ids=lambda rc: rc[0] + "-" + json.dumps(rc[1]["engine_args"], sort_keys=True))
def test_case_equals_vllm(rc):
    release, c = rc
    args = c["engine_args"]
    spec = _spec(c)
    mnbt = args.get("max_num_batched_tokens", DOC["base_engine_args"]["max_num_batched_tokens"])
    given = args.get("max_num_seqs")
    opts = VLLMOptions(diffusion_config=args.get("diffusion_config"))  # the library's reading of the flag
    plan = plan_diffusion(opts.diffusion_config, spec, given or DEFAULT_SEQS, mnbt, False, None)
    assert plan is not None
    assert plan.is_diffusion == c["is_diffusion"]
    assert plan.canvas_length == c["diffusion_config"]["canvas_length"]
    assert plan.num_speculative_tokens == c["num_speculative_tokens"] == c["uniform_decode_query_len"] - 1
    assert c["num_lookahead_tokens"] == 0 and c["max_num_scheduled_tokens"] is None  # no KV slots past the query
    assert c["scheduler_cls"].endswith(".DiffusionScheduler")  # the CPU platform runs without async scheduling
    if given is not None or c["is_diffusion"]:  # the CPU platform's own default (128) is not CUDA's
        assert plan.max_num_seqs == c["max_num_seqs"]
    q, seqs = 1 + plan.num_speculative_tokens, c["max_num_seqs"]
    cg = c["cudagraph"]
    if args.get("enforce_eager"):
        assert cg["sizes"] == []
    else:
        cap = args.get("max_cudagraph_capture_size")
        assert cudagraph_capture_sizes(seqs, mnbt, False, q, None, cap, rule=RULE[release]) == cg["sizes"]
        if release == "0.34.0":  # the split into prefill and decode sizes
            shared = cudagraph_capture_sizes(seqs, mnbt, False, q, None, cap, rule="uniform")
            assert shared == cg["prefill_token_sizes"]
            assert _decode_shapes(shared, seqs, mnbt, q) == cg["decode_request_sizes"]
    if c["diffusion_state_bytes"] is not None:
        assert request_state_bytes(seqs, plan.canvas_length, spec.hidden_size) == c["diffusion_state_bytes"]
        assert plan.state_bytes > c["diffusion_state_bytes"]  # and the persistent inputs_embeds buffer
    else:
        assert plan.state_bytes == 0


@pytest.mark.parametrize("rr", REFUSED, ids=lambda rr: rr[0] + "-" + json.dumps(rr[1]["engine_args"], sort_keys=True))
def test_refusals_in_vllms_words(rr):
    r = rr[1]
    from vramcalc.pasted_command import read_command

    if "attention_backend" in r["engine_args"]:  # DiffusionGemma's own refusal, at check time
        got = check_vllm(SPEC, find_gpu("H100"), VLLMOptions(max_model_len=8192,
                                                             attention_backend=r["engine_args"]["attention_backend"],
                                                             diffusion_config=r["engine_args"]["diffusion_config"]))
        theirs = r["error"].split("Value error, ")[1].split(" [type=")[0]
        assert not got.fits and any(e.text == f"ValueError: {theirs}" for e in got.errors)
        return

    theirs = r["error"].split(" [type=")[0]  # pydantic's type tag and link left out
    with pytest.raises(InputError) as e:
        VLLMOptions(diffusion_config=r["engine_args"]["diffusion_config"])
    assert str(e.value).endswith(theirs)  # the options model names the field first
    with pytest.raises(InputError) as e:
        read_command(f"vllm serve Qwen/Qwen3-8B --diffusion-config '{json.dumps(r['engine_args']['diffusion_config'])}'")
    assert str(e.value) == theirs


def test_check_sizes_the_canvas():
    """End to end on one H100: a wider canvas adds CUDA-graph sizes and runner buffers; the sampler warning names
    the run-time logits the profile run does not hold; DiffusionGemma's max_num_seqs is cut to 8."""
    gpu = find_gpu("H100")
    small = check_vllm(SPEC, gpu, VLLMOptions(max_model_len=8192, diffusion_config={"canvas_length": 16}))
    wide = check_vllm(SPEC, gpu, VLLMOptions(max_model_len=8192, diffusion_config={"canvas_length": 256}))
    own = check_vllm(SPEC, gpu, VLLMOptions(max_model_len=8192))  # the model's own canvas, 256
    assert not small.errors and not wide.errors
    assert wide.devices[0].activation_bytes > small.devices[0].activation_bytes
    assert own.devices[0].activation_bytes == wide.devices[0].activation_bytes
    assert any(m.code == "vllm.diffusion.sampler_peak" for m in wide.warnings)
    assert any(m.code == "vllm.diffusion.speed" for m in own.warnings)
    assert "--diffusion-config '{\"canvas_length\":16}'" in small.command


def test_pasted_command_models_the_flag():
    from vramcalc.pasted_command import read_command

    _, r = read_command("vllm serve Qwen/Qwen3-8B --diffusion-config '{\"canvas_length\": 16}'")
    assert r.options["diffusion_config"] == {"canvas_length": 16}
    assert not any(m.code == "command.not_modelled" for m in r.warnings)


def test_catalog_entry_is_the_oracles_config():
    assert config_of("google/diffusiongemma-26B-A4B-it") == DOC["config"]


def test_pasted_diffusion_gemma_command():
    """The catalog model pasted with --diffusion-config: sized with the canvas, no not-modelled warning, DiffusionGemma's
    own refusal where FlashInfer is asked for."""
    from vramcalc.pasted_command import check_command

    r = check_command("vllm serve google/diffusiongemma-26B-A4B-it --max-model-len 8192 "
                      "--diffusion-config '{\"canvas_length\": 64}'", "H100")
    assert r.fits and not any(m.code == "command.not_modelled" for m in r.warnings)
    assert any(m.code == "vllm.diffusion.sampler_peak" for m in r.result.warnings)
    refused = check_command("vllm serve google/diffusiongemma-26B-A4B-it --max-model-len 8192 "
                            "--attention-backend FLASHINFER", "H100")
    assert not refused.fits and any(m.code == "vllm.diffusion.flashinfer" for m in refused.result.errors)


@pytest.mark.parametrize("rb", BUILDS, ids=lambda rb: f"{rb[0]}-tp{rb[1]['tp']}")
def test_tower_left_out_as_vllm_leaves_it(rb):
    """--limit-mm-per-prompt with image and video at 0, or --language-model-only: no vision tower is built (its
    modalities, SupportsMultiModal._mark_tower_model); image alone at 0 keeps it."""
    release, b = rb
    gpu = find_gpu("H100")

    def weights(**kw):
        return check_vllm(SPEC, gpu, VLLMOptions(max_model_len=8192, tp=b["tp"], engine_version=release,
                                                 **kw)).devices[0].weights_bytes

    full = weights()
    for t in b["tower_builds"]:
        assert full - weights(**t["engine_args"]) == b["param_bytes_per_rank"] - t["param_bytes_per_rank"]
