"""vLLM's optional serving features (vramcalc/vllm/features.py): LoRA adapter slots against vLLM 0.33.0's own
LoRAModelManager (tests/data/vllm_lora_oracle.json, made by tools/vllm_lora_oracle.py on CPU), and what each
flag changes in the budget, the verdict, the speed estimate and a pasted command."""

import json

import pytest

from conftest import DATA
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.features import LoraSettings, features, lora_bytes, lora_graph_cases
from vramcalc.vllm.weights import moe_shards

GIB = 2**30
ORACLE = json.loads((DATA / "vllm_lora_oracle.json").read_text())
OPTS = dict(max_model_len=8192, engine_version="0.33.0")


def _id(c):
    return (f"{c['model']}-tp{c['tp']}-{c['max_loras']}x{c['max_lora_rank']}{'-fs' if c['fully_sharded_loras'] else ''}"
            f"{'-shared' if c.get('enable_moe_shared_loras') else ''}"
            f"{'-mixed' if c.get('enable_mixed_moe_lora_format') else ''}{'-ep' if c.get('enable_expert_parallel') else ''}")


def _settings(c):
    return LoraSettings(max_loras=c["max_loras"], rank=c["max_lora_rank"], fully_sharded=c["fully_sharded_loras"],
                        moe_shared=c.get("enable_moe_shared_loras", False),
                        mixed_moe=c.get("enable_mixed_moe_lora_format", False))


def test_oracle_names_release_and_method():
    assert ORACLE["release"] == "0.33.0" and "LoRAModelManager" in ORACLE["produced_by"] and len(ORACLE["cases"]) >= 40


@pytest.mark.parametrize("c", ORACLE["cases"], ids=_id)
def test_lora_slots_equal_vllm_own(c):
    spec = load(c["model"])
    shards = moe_shards(c["tp"], 1, True) if c.get("enable_expert_parallel") else None  # whole experts per rank
    assert lora_bytes(spec, _settings(c), c["tp"], 0, spec.num_layers, True, True, shards=shards) == \
        c["lora_bytes_rank0"]


def test_moe_oracle_covers_both_wrappers_and_both_flags():
    # vllm/lora/model_manager.py: FusedMoE3DWithLoRA for an is_3d_moe_weight class (GPT-OSS), FusedMoEWithLoRA for
    # the others and for every class under either MoE flag
    moe = [c for c in ORACLE["cases"] if "moe_wrappers" in c]
    assert {c["model"] for c in moe} >= {"Qwen/Qwen3-30B-A3B", "openai/gpt-oss-20b", "deepseek-ai/DeepSeek-V2-Lite",
                                         "Qwen/Qwen3-Next-80B-A3B-Thinking"}
    assert {c["tp"] for c in moe} == {1, 2}
    for c in moe:
        three_d = c["is_3d_moe_weight"] and not (c["enable_moe_shared_loras"] or c["enable_mixed_moe_lora_format"])
        assert c["moe_wrappers"] == ["FusedMoE3DWithLoRA" if three_d else "FusedMoEWithLoRA"]
    assert any(c["is_3d_moe_weight"] for c in moe)
    # the shared-outer layout stores the gate/up lora_A and the down lora_B once: far smaller on many experts
    by = {_id(c): c["lora_bytes_rank0"] for c in moe}
    assert by["Qwen/Qwen3-30B-A3B-tp1-1x16-shared"] < by["Qwen/Qwen3-30B-A3B-tp1-1x16"] / 2
    # the mixed format changes nothing on a 2D class, and adds a gate/up lora_A per expert on a 3D one
    assert by["Qwen/Qwen3-30B-A3B-tp1-1x16-mixed"] == by["Qwen/Qwen3-30B-A3B-tp1-1x16"]
    assert by["openai/gpt-oss-20b-tp1-1x16-mixed"] > by["openai/gpt-oss-20b-tp1-1x16"]


@pytest.mark.parametrize("g", ORACLE["graphs"][1:], ids=lambda g: f"{g['max_loras']}-{g['specialize_active_lora']}")
def test_lora_graph_captures_equal_vllm_own_dispatcher_keys(g):
    base = ORACLE["graphs"][0]  # LoRA off: one key per capture size
    assert base["max_loras"] is None and base["piecewise_keys"] == base["capture_sizes"]
    n = lora_graph_cases(g["max_loras"], g["specialize_active_lora"])
    assert (n * base["piecewise_keys"], n * base["full_keys"]) == (g["piecewise_keys"], g["full_keys"])


def test_specialize_active_lora_captures_more_graphs_and_moe_flags_reach_the_slots():
    # the dense estimate counts capture sizes (an MoE model's graphs are a figure per GPU)
    plain = _run("meta-llama/Llama-3.1-8B-Instruct", enable_lora=True, max_loras=4)
    spec = _run("meta-llama/Llama-3.1-8B-Instruct", enable_lora=True, max_loras=4, specialize_active_lora=True)
    assert spec.devices[0].cuda_graph_bytes > plain.devices[0].cuda_graph_bytes
    assert spec.devices[0].lora_bytes == plain.devices[0].lora_bytes
    assert "5 times" in str([w.text for w in spec.warnings]) and "--specialize-active-lora" in spec.command
    shared = _run("Qwen/Qwen3-30B-A3B", enable_lora=True, enable_moe_shared_loras=True)
    want = next(c["lora_bytes_rank0"] for c in ORACLE["cases"]
                if _id(c) == "Qwen/Qwen3-30B-A3B-tp1-1x16-shared")
    assert shared.devices[0].lora_bytes == want and "--enable-moe-shared-loras" in shared.command
    r = check_command("vllm serve Qwen/Qwen3-30B-A3B --max-model-len 8192 --enable-lora --enable-moe-shared-loras "
                      "--enable-mixed-moe-lora-format --specialize-active-lora", "a100-80gb-sxm")
    assert {k: r.options[k] for k in ("enable_moe_shared_loras", "enable_mixed_moe_lora_format",
                                      "specialize_active_lora")} == dict.fromkeys(
        ("enable_moe_shared_loras", "enable_mixed_moe_lora_format", "specialize_active_lora"), True)
    assert "--enable-moe-shared-loras --enable-mixed-moe-lora-format --specialize-active-lora" in r.vramcalc_command


def _run(model, gpu="a100-80gb-sxm", **kw):
    return check_vllm(load(model), find_gpu(gpu), VLLMOptions(**{**OPTS, **kw}))


def test_lora_slots_are_weights_and_come_out_of_the_kv_cache():
    # gpu_model_runner.py load_model builds the slots inside 'Model loading took'
    base, lora = _run("meta-llama/Llama-3.1-8B-Instruct"), _run("meta-llama/Llama-3.1-8B-Instruct", enable_lora=True,
                                                                 max_loras=4, max_lora_rank=64)
    want = next(c["lora_bytes_rank0"] for c in ORACLE["cases"] if c["model"] == "meta-llama/Llama-3.1-8B-Instruct"
                and c["tp"] == 1 and c["max_loras"] == 4)
    b, d = base.devices[0], lora.devices[0]
    assert d.lora_bytes == want and d.weights_bytes - b.weights_bytes == want
    # and every CUDA-graph size is captured twice, without and with LoRA (vllm/v1/cudagraph_dispatcher.py
    # _get_lora_cases, cudagraph_specialize_lora on by default)
    assert d.cuda_graph_bytes == 2 * b.cuda_graph_bytes > 0
    assert b.kv_cache_bytes - d.kv_cache_bytes == want + d.cuda_graph_bytes - b.cuda_graph_bytes
    assert "--enable-lora --max-loras 4 --max-lora-rank 64" in lora.command


def test_lora_config_refusals_in_vllm_words():
    r = _run("Qwen/Qwen3-8B", enable_lora=True, max_loras=4, max_cpu_loras=2)
    assert not r.fits and r.errors[0].code == "vllm.lora.max_cpu_loras"
    assert r.errors[0].text.startswith("max_cpu_loras (2) must be >= max_loras (4).")
    r = _run("Qwen/Qwen3-8B", enable_lora=True, max_lora_rank=24)
    assert r.errors[0].code == "vllm.lora.rank" and "invalid choice: 24" in r.errors[0].text
    r = _run("Qwen/Qwen3-8B", enable_lora=True, lora_extra_vocab_size=256)  # removed in 0.12.0 (PR #28545)
    assert r.errors[0].code == "vllm.lora.extra_vocab_removed"


def test_extra_vocab_before_0_12():
    # vLLM 0.10.1.1 vllm/lora/layers.py and model_executor/models/llama.py: lora_extra_vocab_size 256 widens the
    # embedding slots ((vocab + 256) x rank, 256 x hidden), the head's ((vocab + 256) padded to 256, 256 x hidden)
    # and the model's own embedding by 256 x max_loras rows (tied head: no rows of its own)
    spec = load("meta-llama/Llama-3.2-3B-Instruct")
    new = lora_bytes(spec, LoraSettings(max_loras=1, rank=16), 1, 0, spec.num_layers, True, True)
    old = lora_bytes(spec, LoraSettings(max_loras=1, rank=16, extra_vocab=256), 1, 0, spec.num_layers, True, True)
    assert old - new == 2 * (256 * 16 + 256 * 3072 + (128512 - 128256) * 16 + 256 * 3072 + 256 * 3072)
    assert "extra_vocab_removed" not in str(_run("Qwen/Qwen3-8B", enable_lora=True, engine_version="0.11.0",
                                                 lora_extra_vocab_size=256).errors)


def test_cpu_offload_moves_weights_and_costs_pcie_time_per_step():
    base = _run("meta-llama/Llama-3.1-8B-Instruct", gpu="rtx4090")
    off = _run("meta-llama/Llama-3.1-8B-Instruct", gpu="rtx4090", cpu_offload_gb=4)
    assert base.devices[0].weights_bytes - off.devices[0].weights_bytes == 4 * GIB == off.cpu_offload_bytes
    codes = [w.code for w in off.warnings]
    assert "vllm.cpu_offload.speed" in codes and "vllm.cpu_offload.not_needed" in codes  # 8B bf16 fits a 4090
    from vramcalc.serving import for_engine_check

    gpu = find_gpu("rtx4090")
    slow = for_engine_check(load("meta-llama/Llama-3.1-8B-Instruct"), "vllm", gpu, quant=None,
                            cpu_offload_bytes=off.cpu_offload_bytes)
    fast = for_engine_check(load("meta-llama/Llama-3.1-8B-Instruct"), "vllm", gpu, quant=None)
    # PCIe 4.0 x16: 16 x 1.969 GB/s x the fitted efficiency
    assert slow.terms_ms["cpu_offload"] == pytest.approx(4 * GIB / (16 * 1.969 * 0.449e9) * 1e3, rel=1e-3)
    assert slow.itl_s > 5 * fast.itl_s  # vLLM issue #57771: a large slowdown when left on while the weights fit


LOGS = json.loads((DATA / "vllm_feature_logs.json").read_text())


def test_cpu_offload_weights_replay_the_printed_load():
    # vLLM PR #6496 (0.5.2, GH200): Llama-3-70B-Instruct with --cpu-offload-gb 70 loads 61.2922 GiB on the GPU;
    # vLLM offloads whole tensors until it passes 70 GiB, so its figure may be a little smaller, never larger
    run = next(r for r in LOGS["cpu_offload"] if r["id"] == "vllm6496")
    r = check_vllm(load(run["catalog_model"]), find_gpu("h100-sxm"),
                   VLLMOptions(cpu_offload_gb=run["cpu_offload_gb"], max_model_len=8192))
    got = r.devices[0].weights_bytes / GIB
    assert 0 <= got - run["weights_gib_printed"] <= 0.005 * run["weights_gib_printed"]


@pytest.mark.parametrize("run", [r for r in LOGS["cpu_offload"] if r["split"] != "context"], ids=lambda r: r["id"])
def test_cpu_offload_decode_speed(run):
    from vramcalc.serving import for_engine_check

    gpu = find_gpu(run["gpu_for_step"])
    if run["link"] == "NVLink-C2C":  # GH200 is not in the GPU table: its link is Grace's, the rest an H100's
        gpu = gpu.model_copy(update={"id": "gb200"})
    est = for_engine_check(load(run["catalog_model"]), "vllm", gpu, quant=None,
                           cpu_offload_bytes=int(run["cpu_offload_gb"] * GIB))
    err = 1 / est.itl_s / run["decode_tok_s"] - 1
    if run["split"] == "fit":
        assert abs(err) < 0.05
    else:  # held out: -44% today (slower than measured: the estimate errs slow)
        assert -0.6 < err <= 0


def test_kv_cache_memory_bytes_replaces_the_budget():
    r = _run("Qwen/Qwen3-8B", kv_cache_memory_bytes=8 * GIB)
    assert r.devices[0].kv_cache_bytes == 8 * GIB and r.fits
    r = _run("Qwen/Qwen3-8B", gpu="rtx4090", kv_cache_memory_bytes=12 * GIB)
    assert not r.fits and "vllm.kv_bytes.oom" in [e.code for e in r.errors]


def test_language_model_only_and_the_encoder_profile():
    vl = "Qwen/Qwen3-VL-8B-Instruct"
    full, text = _run(vl), _run(vl, language_model_only=True)
    spec = load(vl)
    tower = spec.vision.params * 2  # bf16, TP 1
    assert full.devices[0].weights_bytes - text.devices[0].weights_bytes == pytest.approx(tower, rel=0.01)
    assert "vllm.mm.encoder_profile" in [w.code for w in full.warnings]
    assert "vllm.mm.encoder_profile" not in [w.code for w in text.warnings]
    still = _run(vl, limit_mm_per_prompt={"video": 0})  # images keep their default limit
    assert "vllm.mm.encoder_profile" in [w.code for w in still.warnings]
    off = _run(vl, limit_mm_per_prompt={"image": 0, "video": 0})
    assert "vllm.mm.encoder_profile" not in [w.code for w in off.warnings]


def test_pasted_command_reads_the_feature_flags():
    r = check_command("vllm serve Qwen/Qwen3-8B --enable-lora --max-loras 2 --max-lora-rank 32 --max-cpu-loras 8 "
                      "--fully-sharded-loras --cpu-offload-gb 2 --kv-cache-memory-bytes 6G "
                      "--limit-mm-per-prompt.video 0 --max-model-len 8192", "h100")
    assert r.options == {"enable_lora": True, "max_loras": 2, "max_lora_rank": 32, "max_cpu_loras": 8,
                         "fully_sharded_loras": True, "cpu_offload_gb": 2.0, "kv_cache_memory_bytes": 6 * GIB,
                         "limit_mm_per_prompt": {"video": 0}, "max_model_len": 8192}


def test_prefix_caching_moves_ttft_not_memory():
    import vramcalc

    plain = vramcalc.check("Qwen/Qwen3-8B", "h100-sxm", engine="vllm", context=8192, prompt=4096)
    agent = vramcalc.check("Qwen/Qwen3-8B", "h100-sxm", engine="vllm", context=8192, prompt=4096, shared_prefix=3584)
    off = vramcalc.check("Qwen/Qwen3-8B", "h100-sxm", engine="vllm", context=8192, prompt=4096, shared_prefix=3584,
                         enable_prefix_caching=False)
    assert plain.kv_cache_tokens == agent.kv_cache_tokens == off.kv_cache_tokens
    assert agent.speed.ttft_s < plain.speed.ttft_s == off.speed.ttft_s
    assert [w.code for w in agent.warnings if w.code.startswith("vllm.prefix")] == ["vllm.prefix_caching.ttft"]
    assert "prefix caching is off" in next(w.text for w in off.warnings if w.code == "vllm.prefix_caching.ttft")


def test_lora_dtype_and_target_modules_in_a_pasted_command():
    r = check_command("vllm serve Qwen/Qwen3-8B --enable-lora --lora-dtype float16 --lora-target-modules o_proj "
                      "--max-model-len 8192", "h100")
    assert r.options["lora_dtype"] == "float16"
    assert [w.code for w in r.warnings if w.code == "command.upper_bound"] == ["command.upper_bound"]


def _vl_weights(run, **extra):
    r = check_vllm(load(run["model"]), find_gpu("h100-sxm"), VLLMOptions(max_model_len=8192, **extra))
    return r.devices[0].weights_bytes / GIB


@pytest.mark.parametrize("run", LOGS["multimodal_weights"], ids=lambda r: r["id"])
def test_vision_language_weights_against_the_log(run):
    """Held out (never fitted): 'Model loading took' of a vision-language model with its tower. vramcalc counts
    the checkpoint's tensors (tower included: without it, 23% short); vLLM's figure is 0.21 GiB (5%) above
    them on Qwen3-VL-2B, load-time buffers not identified from one log: an underestimate, bounded here."""
    want = run["logged"]["model_loading_gib"]
    got, text_only = _vl_weights(run), _vl_weights(run, language_model_only=True)
    print(f"\n{run['id']}: weights {got:.2f} GiB vs logged {want} ({got / want - 1:+.1%}); "
          f"language model only {text_only:.2f} GiB")
    assert text_only / want - 1 < -0.15  # the tower is in vLLM's figure
    assert -0.06 <= got / want - 1 <= 0


@pytest.mark.xfail(strict=True, reason="vLLM's Qwen3-VL load holds 0.21 GiB beyond the checkpoint's tensors "
                   "(vLLM PR #34051's log); one log does not say what, so it is not modelled")
def test_vision_language_weights_within_3_percent():
    run = LOGS["multimodal_weights"][0]
    assert abs(_vl_weights(run) / run["logged"]["model_loading_gib"] - 1) <= 0.03


def _drafter_kv_tokens(r, with_drafter=True):
    """KV tokens from the printed available memory, the drafter's KV layers in the pool (vramcalc/vllm/spec_decode.py
    plan_speculative, the drafter's config as the record gives it)."""
    from vllm_feature_records import drafter_pool
    from vramcalc.vllm.kv import capacity

    pool, s = drafter_pool(r, with_drafter)
    return capacity(pool, r["logged"]["available_kv_bytes"], r["options"]["max_model_len"], s)


@pytest.mark.parametrize("r", [r for r in LOGS["spec_decode_kv"] if "available_kv_bytes" in r["logged"]],
                         ids=lambda r: r["id"])
def test_eagle_head_kv_layer_joins_the_pool_against_the_log(r):
    """Held out (never fitted): an EAGLE-3 head's decoder layer gets its KV spec beside the target's
    (gpu_model_runner.get_kv_cache_spec), so each block holds 33 layers' pages for Llama-3.1-8B. From the printed
    available memory the printed tokens and concurrency come out exactly; without the head's layer 3% too many."""
    want = r["logged"]["kv_tokens"]
    cap, plain = _drafter_kv_tokens(r), _drafter_kv_tokens(r, with_drafter=False)
    print(f"\n{r['id']}: KV tokens {cap.kv_cache_tokens} vs logged {want} ({cap.kv_cache_tokens / want - 1:+.2%}); "
          f"without the drafter's layer {plain.kv_cache_tokens} ({plain.kv_cache_tokens / want - 1:+.2%})")
    assert cap.kv_cache_tokens == want
    assert round(cap.max_concurrency, 2) == r["logged"]["max_concurrency"]
    assert plain.kv_cache_tokens / want - 1 > 0.03


@pytest.mark.parametrize("r", [r for r in LOGS["spec_decode_kv"] if "model_loading_gb" in r["logged"]],
                         ids=lambda r: r["id"])
def test_eagle3_head_weights_against_the_log(r):
    """'Loading model weights took 15.7847 GB' (GiB) covers the target and the EAGLE-3 head. The head's shapes
    follow vLLM's Eagle3LlamaForCausalLM (llama_eagle3.py): the embedding is the target's (the log prints it
    shared), the LM head has draft_vocab_size rows, layer 0's qkv reads 2 x hidden. Counted as a plain Llama
    decoder with its own embedding and a full-vocabulary head it would be 6% over."""
    from vramcalc.sources.hf_config import spec_from_config

    o, sc = r["options"], r["options"]["speculative_config"]
    draft = spec_from_config(r["draft_config"], model_id=sc["model"], source=r["draft_config_source"], where=r["id"])
    spec = load(r["model"])
    res = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(tp=o["tp"], max_model_len=o["max_model_len"],
                                                             speculative_config=sc), draft=draft)
    got, want = res.devices[0].weights_bytes / GIB, r["logged"]["model_loading_gb"]
    head = res.speculative.draft_weight_bytes / GIB
    print(f"\n{r['id']}: weights {got:.4f} GiB (head {head:.3f}) vs logged {want} ({got / want - 1:+.2%})")
    assert abs(got / want - 1) <= 0.01
    assert 0.7 <= head <= 0.9  # one decoder layer, fc 3h -> h, a 32k-row LM head
    assert any(w.code == "vllm.spec.eagle_head" and "shared" in w.text for w in res.warnings)


@pytest.mark.parametrize("r", LOGS["lora_weights"], ids=lambda r: r["id"])
def test_lora_weights_against_the_log(r):
    """Held out (never fitted): 'Model loading took' with --enable-lora counts the adapter slots. Qwen2.5-7B at rank
    16, one adapter, vLLM 0.19.1 on an MI300X: 14.43 GiB logged, 0.18 GiB above the same model's 14.25 GiB without
    LoRA (vLLM 0.19.0, H100); the slots are 0.075 GiB of it, the rest (the ROCm build, or LoRA buffers beyond the
    slots) is not identified from one log: an underestimate of 1.1%, bounded here."""
    spec, gpu = load(r["model"]), find_gpu(r["gpu_for_check"])
    on = check_vllm(spec, gpu, VLLMOptions(**r["options"])).devices[0]
    off = check_vllm(spec, gpu, VLLMOptions(**{**r["options"], "enable_lora": False})).devices[0]
    want = r["logged"]["model_loading_gib"]
    print(f"\n{r['id']}: weights {on.weights_bytes / GIB:.2f} GiB (slots {on.lora_bytes / GIB:.3f}) vs logged {want} "
          f"({on.weights_bytes / GIB / want - 1:+.2%}); without LoRA {off.weights_bytes / GIB:.2f} GiB")
    assert on.weights_bytes - off.weights_bytes == on.lora_bytes > 0
    assert -0.015 <= on.weights_bytes / GIB / want - 1 <= 0


def test_mm_ipc_gpu_memory_is_carved_out_of_the_kv_cache():
    """vllm/multimodal/gpu_ipc_memory.py reserve_mm_ipc_gpu_memory (0.33.0): on a multimodal model the KV cache
    loses int(mm_ipc_gpu_memory_gb * GiB) per GPU (after --kv-cache-memory-bytes too, and with the vision tower off:
    ModelConfig keeps a multimodal config); nothing left is vLLM's ValueError; a text model reserves nothing."""
    vl = "Qwen/Qwen3-VL-8B-Instruct"
    base, res = _run(vl), _run(vl, mm_ipc_gpu_memory_gb=1.5)
    assert base.devices[0].kv_cache_bytes - res.devices[0].kv_cache_bytes == int(1.5 * GIB)
    assert res.kv_cache_tokens < base.kv_cache_tokens
    fixed = _run(vl, kv_cache_memory_bytes=8 * GIB, mm_ipc_gpu_memory_gb=2, language_model_only=True)
    assert fixed.devices[0].kv_cache_bytes == 6 * GIB
    over = _run(vl, kv_cache_memory_bytes=8 * GIB, mm_ipc_gpu_memory_gb=8)
    assert not over.fits and "vllm.mm_ipc.no_kv" in [e.code for e in over.errors]
    text, text_res = _run("Qwen/Qwen3-8B"), _run("Qwen/Qwen3-8B", mm_ipc_gpu_memory_gb=4)
    assert text.devices[0].kv_cache_bytes == text_res.devices[0].kv_cache_bytes
    assert "vllm.mm_ipc.text_model" in [w.code for w in text_res.warnings]


def test_num_gpu_blocks_override_sets_the_pool():
    """vllm/v1/core/kv_cache_planning.py get_kv_cache_configs (0.33.0): with num_gpu_blocks_override the planned memory
    is override x bytes per block (may_override_num_blocks), whatever the profile left; the blocks are allocated as
    given, so more than the GPU has left runs out of memory."""
    base = _run("Qwen/Qwen3-8B", gpu="rtx4090")
    # Qwen3-8B (config.json): 36 layers, 8 KV heads of 128, bf16; a block of 16 tokens (vllm/config/cache.py on CUDA)
    # is K and V of each: vllm/v1/kv_cache_interface.py page_size_bytes x layers
    per_block = 2 * 8 * 128 * 2 * 16 * 36
    r = _run("Qwen/Qwen3-8B", gpu="rtx4090", num_gpu_blocks_override=100)
    assert r.num_gpu_blocks == 100 and r.devices[0].kv_cache_bytes == 100 * per_block
    assert r.kv_cache_tokens == 100 * 16
    # 1,600 tokens cannot hold one request of the default max_model_len: vLLM's own admission check refuses
    assert "vllm.kv.max_model_len" in [e.code for e in r.errors]
    assert _run("Qwen/Qwen3-8B", gpu="rtx4090", max_model_len=1600, num_gpu_blocks_override=101).fits
    big = _run("Qwen/Qwen3-8B", gpu="rtx4090", num_gpu_blocks_override=base.num_gpu_blocks * 10)
    assert not big.fits and "vllm.kv_blocks.oom" in [e.code for e in big.errors]


def test_mm_encoder_tp_mode_data_keeps_the_whole_tower_on_each_rank():
    """vllm/config/multimodal.py mm_encoder_tp_mode (0.33.0): "data" builds the vision tower without TP on every rank,
    so each TP rank's weights carry the whole tower (its parameters x 2 bytes, bf16), as TP 1 does; "weights" shards
    it. Checked as data even where the model would fall back to weights (conservative), with a warning."""
    vl = "Qwen/Qwen3-VL-8B-Instruct"
    spec = load(vl)
    data, text = _run(vl, tp=2, mm_encoder_tp_mode="data"), _run(vl, tp=2, language_model_only=True)
    sharded = _run(vl, tp=2)
    for r in range(2):
        assert data.devices[r].weights_bytes - text.devices[r].weights_bytes == pytest.approx(spec.vision.params * 2,
                                                                                               rel=0.01)
        assert data.devices[r].weights_bytes > sharded.devices[r].weights_bytes
    assert "vllm.mm.encoder_tp_data" in [w.code for w in data.warnings]
    assert _run(vl, mm_encoder_tp_mode="data").devices[0].weights_bytes == _run(vl).devices[0].weights_bytes  # TP 1


def test_kv_offloading_takes_host_memory_and_lmcache_turns_the_hybrid_manager_off():
    """--kv-offloading-size (vllm/config/cache.py CacheConfig, 0.30.0): pinned host memory for offloaded blocks,
    summed over the ranks, so the GPU figures are unchanged with the native backend, whose connectors
    (OffloadingConnector, SimpleCPUOffloadConnector) subclass SupportsHMA; vLLM's own LMCacheMPConnectorUpstream does
    not, and VllmConfig.__post_init__ then sets disable_hybrid_kv_cache_manager: Gemma 3's sliding layers are
    allocated at full length, as with --disable-hybrid-kv-cache-manager (tests/test_vllm_kv.py pins that path).
    Without --kv-offloading-size the backend activates nothing (_post_init_kv_transfer_config)."""
    model, kw = "google/gemma-3-27b-it", dict(max_model_len=32768, language_model_only=True)
    base = _run(model, **kw)
    native = _run(model, kv_offloading_size=64, **kw)
    assert native.num_gpu_blocks == base.num_gpu_blocks and native.devices == base.devices
    (w,) = [w for w in native.warnings if w.code == "vllm.kv_offload.host_memory"]
    assert "64 GiB of pinned host memory" in w.text
    lm = _run(model, kv_offloading_size=64, kv_offloading_backend="lmcache", **kw)
    off = _run(model, disable_hybrid_kv_cache_manager=True, **kw)
    assert lm.kv_cache_tokens == off.kv_cache_tokens < base.kv_cache_tokens
    assert lm.max_concurrency == off.max_concurrency < base.max_concurrency
    alone = _run(model, kv_offloading_backend="lmcache", **kw)
    assert alone.kv_cache_tokens == base.kv_cache_tokens


def test_lora_refused_where_vllms_class_lacks_it():
    # tools/vllm_lora_oracle.py --support: vLLM 0.33.0's registry, SupportsLoRA per catalog architecture
    unsupported = sorted(a for a, ok in ORACLE["lora_support"].items() if not ok)
    assert unsupported == sorted(features().lora.unsupported) and len(ORACLE["lora_support"]) >= 20
    r = _run("Zyphra/Zamba2-7B", enable_lora=True, max_model_len=4096)
    (e,) = [e for e in r.errors if e.code == "vllm.lora.unsupported"]
    assert not r.fits and e.text.startswith("LoRA is not supported for Zamba2ForCausalLM (Zyphra/Zamba2-7B).")
    assert "vllm.lora.unsupported" not in str(_run("ai21labs/Jamba-v0.1", enable_lora=True, max_model_len=4096).errors)


def test_expert_parallel_lora_slots_and_refusals():
    # with EP each rank's FusedMoEWithLoRA holds its whole experts (local_num_experts, the MoE TP size 1)
    want = next(c["lora_bytes_rank0"] for c in ORACLE["cases"] if _id(c) == "Qwen/Qwen3-30B-A3B-tp2-1x16-ep")
    r = _run("Qwen/Qwen3-30B-A3B", tp=2, enable_lora=True, enable_expert_parallel=True)
    assert r.devices[0].lora_bytes == want and not r.errors
    r = _run("Qwen/Qwen3-30B-A3B", tp=2, enable_lora=True, enable_expert_parallel=True, fully_sharded_loras=True)
    assert [e.code for e in r.errors] == ["vllm.lora.ep_fully_sharded"] and not r.fits
    r = _run("Qwen/Qwen3-30B-A3B", tp=2, enable_lora=True, enable_expert_parallel=True, all2all_backend="deepep_low_latency")
    assert "vllm.lora.ep_all2all" in [e.code for e in r.errors]
    # naive and pplx are gone in 0.33: ParallelConfig falls back to allgather_reducescatter before the LoRA check
    r = _run("Qwen/Qwen3-30B-A3B", tp=2, enable_lora=True, enable_expert_parallel=True, all2all_backend="naive")
    assert "vllm.lora.ep_all2all" not in [e.code for e in r.errors]
