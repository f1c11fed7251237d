"""vLLM's multimodal serve flags against vLLM 0.33.0's own code run on CPU (tests/data/vllm_mm_oracle_v0.33.0.json,
made by tools/vllm_mm_oracle.py): --enable-tower-connector-lora's slots on the vision tower and connector
(LoRAModelManager on the model built on the meta device)."""

import json

import pytest

from conftest import DATA
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.features import LoraSettings, tower_lora_bytes
from vramcalc.vllm.weights import rotary_cache_bytes

ORACLE = json.loads((DATA / "vllm_mm_oracle_v0.33.0.json").read_text())
TOWER = [c for c in ORACLE["lora"] if c["enable_tower_connector_lora"]]


def _id(c):
    extra = "-".join(f"{k}={v}" for k, v in c["engine_args"].items())
    return (f"{c['model']}-tp{c['tp']}-{c['max_loras']}x{c['max_lora_rank']}{'-fs' if c['fully_sharded_loras'] else ''}"
            f"{'-tower' if c['enable_tower_connector_lora'] else ''}{'-' + extra if extra else ''}")


def _opts(c, **kw):
    return VLLMOptions(max_model_len=4096, engine_version="0.33.0", tp=c["tp"], enable_lora=True,
                       max_loras=c["max_loras"], max_lora_rank=c["max_lora_rank"],
                       fully_sharded_loras=c["fully_sharded_loras"],
                       enable_tower_connector_lora=c["enable_tower_connector_lora"], **c["engine_args"], **kw)


def test_oracle_names_release_and_method():
    assert ORACLE["release"] == "0.33.0" and "LoRAModelManager" in ORACLE["produced_by"]
    assert not ORACLE["failed"] and len(TOWER) >= 36
    # the four towers, both TP degrees, --fully-sharded-loras and --mm-encoder-tp-mode data all covered
    assert {c["architecture"] for c in TOWER} >= {"Qwen3VLForConditionalGeneration", "Qwen3_5ForConditionalGeneration",
                                                  "Qwen3VLMoeForConditionalGeneration"}
    assert {c["tp"] for c in TOWER} == {1, 2} and any(c["engine_args"] for c in TOWER)
    assert all(c["supports_tower_connector_lora"] for c in ORACLE["lora"])


@pytest.mark.parametrize("c", TOWER, ids=_id)
def test_tower_slots_equal_vllm_own(c):
    spec = load(c["model"])
    s = LoraSettings(max_loras=c["max_loras"], rank=c["max_lora_rank"], fully_sharded=c["fully_sharded_loras"])
    tp = 1 if c["engine_args"].get("mm_encoder_tp_mode") == "data" else c["tp"]
    assert tower_lora_bytes(spec, s, tp) == c["tower_lora_bytes_rank0"]


@pytest.mark.parametrize("c", ORACLE["lora"], ids=_id)
def test_rank0_slots_with_and_without_the_tower_equal_vllm_own(c):
    r = check_vllm(load(c["model"]), find_gpu("h100-80gb-sxm"), _opts(c))
    assert r.devices[0].lora_bytes == c["lora_bytes_rank0"]
    assert ("--enable-tower-connector-lora" in r.command) == c["enable_tower_connector_lora"]


def test_qwen3_vl_moe_vision_qkv_gets_no_slots():
    # Qwen3VLMoeForConditionalGeneration's packed_modules_mapping has no 'qkv': 3 wrapped linears per block, not 4
    moe = next(c for c in TOWER if c["architecture"] == "Qwen3VLMoeForConditionalGeneration")
    dense = next(c for c in TOWER if c["architecture"] == "Qwen3VLForConditionalGeneration")
    depth = {c["architecture"]: load(c["model"]).vision for c in (moe, dense)}
    assert moe["tower_wrapped_modules"] == 3 * depth[moe["architecture"]].num_layers + 2 * depth[moe["architecture"]].mergers
    assert dense["tower_wrapped_modules"] == 4 * depth[dense["architecture"]].num_layers + \
        2 * depth[dense["architecture"]].mergers


def test_tower_lora_is_skipped_where_vllm_skips_it():
    c = next(c for c in TOWER if c["model"] == "Qwen/Qwen3-VL-8B-Instruct" and c["tp"] == 1 and c["max_loras"] == 1)
    base = next(x for x in ORACLE["lora"] if x["model"] == c["model"] and x["tp"] == 1 and x["max_loras"] == 1
                and not x["enable_tower_connector_lora"])
    spec, gpu = load(c["model"]), find_gpu("h100-80gb-sxm")
    r = check_vllm(spec, gpu, _opts(c, language_model_only=True))
    assert r.devices[0].lora_bytes == base["lora_bytes_rank0"]
    assert any(w.code == "vllm.lora.tower_ignored" and "language model only" in w.text for w in r.warnings)
    r = check_vllm(spec, gpu, _opts(c, limit_mm_per_prompt={"image": 0, "video": 0}))  # no tower built
    assert r.devices[0].lora_bytes == base["lora_bytes_rank0"]
    r = check_vllm(load("Qwen/Qwen3-8B"), gpu, _opts(c))
    assert any(w.code == "vllm.lora.tower_ignored" for w in r.warnings)
    r = check_vllm(load("google/gemma-3-4b-it"), gpu, _opts(c))  # a tower whose linears are not read
    assert any(w.code == "vllm.lora.tower_not_counted" for w in r.warnings)


def test_pasted_command_reads_the_flag():
    r = check_command("vllm serve Qwen/Qwen3-VL-8B-Instruct --max-model-len 4096 --enable-lora "
                      "--enable-tower-connector-lora", "h100-80gb-sxm")
    assert r.options["enable_tower_connector_lora"] is True
    assert "--enable-lora --enable-tower-connector-lora" in r.vramcalc_command


# --video-pruning-rate: the M-RoPE cache of the classes that keep pruned tokens' positions (mrope_positions_factor)
BUILDS = ORACLE["builds"]
PRUNED = [c for c in BUILDS if "video_pruning_rate" in c["engine_args"]]


def _twin(c):
    """The same build without --video-pruning-rate."""
    rest = {k: v for k, v in c["engine_args"].items() if k != "video_pruning_rate"}
    return next(b for b in BUILDS if b["model"] == c["model"] and b["tp"] == c["tp"] and b["engine_args"] == rest)


def test_pruning_builds_cover_both_qwen_towers_and_a_model_without_mrope():
    assert {c["architecture"] for c in PRUNED} >= {"Qwen3VLForConditionalGeneration", "Qwen3_5ForConditionalGeneration",
                                                   "Qwen3_5MoeForConditionalGeneration",
                                                   "Gemma3ForConditionalGeneration"}
    grown = [c for c in PRUNED if c["cos_sin_cache_bytes"] > _twin(c)["cos_sin_cache_bytes"]]
    assert grown and any(c["engine_args"].get("language_model_only") for c in grown)


@pytest.mark.parametrize("c", PRUNED, ids=lambda c: f"{c['model']}-{c['engine_args']}")
def test_pruned_rotary_cache_equals_vllm_own(c):
    spec = load(c["model"])
    on = c["engine_args"]["video_pruning_rate"] > 0
    want = c["cos_sin_cache_bytes"] - _twin(c)["cos_sin_cache_bytes"]
    assert rotary_cache_bytes(spec, "0.33.0", video_pruning=on) - rotary_cache_bytes(spec, "0.33.0") == want
    # and in the budget: the weights (which hold the cache, as 'Model loading took' does) grow by as much
    gpu, args = find_gpu("h200-141gb-sxm"), {k: v for k, v in c["engine_args"].items()}
    base = check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, engine_version="0.33.0",
                                             **{k: v for k, v in args.items() if k != "video_pruning_rate"}))
    pruned = check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, engine_version="0.33.0", **args))
    assert pruned.devices[0].weights_bytes - base.devices[0].weights_bytes == want
    assert f"--video-pruning-rate {args['video_pruning_rate']:g}" in pruned.command


def test_pruning_rate_outside_0_1_is_refused_in_vllm_words():
    spec, gpu = load("Qwen/Qwen3-VL-8B-Instruct"), find_gpu("h100-80gb-sxm")
    for rate, said in ((1.0, "Input should be less than 1 [type=less_than, input_value=1.0"),
                       (-0.1, "Input should be greater than or equal to 0 [type=greater_than_equal")):
        r = check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, video_pruning_rate=rate))
        assert not r.fits and r.errors[0].code == "vllm.mm.video_pruning_rate" and said in r.errors[0].text
    # a text model has no multimodal config, so vLLM never reads the rate
    r = check_vllm(load("Qwen/Qwen3-8B"), gpu, VLLMOptions(max_model_len=4096, video_pruning_rate=1.0))
    assert not any(e.code == "vllm.mm.video_pruning_rate" for e in r.errors)
    p = check_command("vllm serve Qwen/Qwen3.5-0.8B --max-model-len 4096 --video-pruning-rate 0.5", "h100-80gb-sxm")
    assert p.options["video_pruning_rate"] == 0.5 and "--video-pruning-rate 0.5" in p.vramcalc_command


@pytest.mark.parametrize("model", sorted({b["model"] for b in BUILDS}))
def test_zero_limits_leave_the_tower_out_as_vllm_builds_it(model):
    """vLLM 0.33.0 builds no vision tower when every modality it is marked with is at 0 (--enable-mm-embeds or
    not): the parameters are those of --language-model-only, and the tower's bytes those vramcalc drops."""
    by = {json.dumps(b["engine_args"], sort_keys=True): b for b in BUILDS if b["model"] == model and b["tp"] == 1}
    full, lmo = by["{}"], by['{"language_model_only": true}']
    spec, gpu = load(model), find_gpu("h200-141gb-sxm")

    def weights(version="0.33.0", **kw):
        return check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, engine_version=version, **kw)).devices[0] \
            .weights_bytes

    plain, text = weights(), weights(language_model_only=True)
    assert plain - text == full["param_bytes_rank0"] - lmo["param_bytes_rank0"] == full["tower_param_bytes_rank0"]
    limited = [b for b in by.values() if set(b["engine_args"]) <= {"limit_mm_per_prompt", "enable_mm_embeds"}
               and "limit_mm_per_prompt" in b["engine_args"]]
    assert len(limited) == 5
    for b in limited:
        skipped = b["tower_param_bytes_rank0"] == 0
        assert b["param_bytes_rank0"] == (lmo if skipped else full)["param_bytes_rank0"]
        assert weights(limit_mm_per_prompt=b["engine_args"]["limit_mm_per_prompt"]) == (text if skipped else plain)
    # releases before the one checked keep the tower counted (data/vllm.json zero_limits_skip_tower_since)
    assert weights("0.30.0", limit_mm_per_prompt={"image": 0, "video": 0}) == weights("0.30.0")


def test_kimi_tower_is_marked_with_vision_chunk():
    # vllm/model_executor/models/kimi_k25.py marks its tower with vision_chunk: image and video at 0 keep it
    spec, gpu = load("moonshotai/Kimi-K2.5"), find_gpu("h200-141gb-sxm")
    opts = dict(max_model_len=4096, tp=8)
    a = check_vllm(spec, gpu, VLLMOptions(**opts)).devices[0].weights_bytes
    b = check_vllm(spec, gpu, VLLMOptions(**opts, limit_mm_per_prompt={"image": 0, "video": 0})).devices[0]
    c = check_vllm(spec, gpu, VLLMOptions(**opts, limit_mm_per_prompt={"vision_chunk": 0})).devices[0]
    assert b.weights_bytes == a > c.weights_bytes


# --mm-encoder-attn-dtype fp8: vLLM builds the encoder's attention and refuses fp8 on any backend but FlashInfer's
# cuDNN one (SM 100+) or ROCM_AITER_FA (MI300 / MI350); on CPU its build raised this for every tower setting
FP8 = ORACLE["encoder_fp8"]


def test_fp8_encoder_attention_refused_in_vllm_words():
    assert len(FP8) == 3 and not any(c["built"] for c in FP8)  # the tower skipped or not, the build is refused
    said = FP8[0]["error"].removeprefix("ValueError: ").split(", got ")[0]
    spec = load(FP8[0]["model"])
    for c in FP8:
        assert c["error"].removeprefix("ValueError: ").split(", got ")[0] == said
        args = {k: v for k, v in c["engine_args"].items()}
        for gpu in ("h100-80gb-sxm", "a100-80gb-sxm", "rtx-4090"):
            r = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=4096, **args))
            (e,) = [e for e in r.errors if e.code == "vllm.mm.encoder_fp8"]
            assert not r.fits and e.text.startswith("ValueError: " + said) and "Hopper (H100/H200)" in e.text
    # on Blackwell the encoder's default backend (FLASH_ATTN, vLLM's pick there) is refused as the oracle's
    # TORCH_SDPA is, in the same words with its own name ...
    r = check_vllm(spec, find_gpu("b200"), VLLMOptions(max_model_len=4096, mm_encoder_attn_dtype="fp8"))
    (e,) = [e for e in r.errors if e.code == "vllm.mm.encoder_fp8"]
    assert e.text.startswith(FP8[0]["error"].split(", got ")[0] + ", got AttentionBackendEnum.FLASH_ATTN.")
    assert "--mm-encoder-attn-backend FLASHINFER" in (e.fix or "")
    # ... and it may start on FlashInfer's cuDNN backend only: a warning, and both flags written back
    r = check_vllm(spec, find_gpu("b200"), VLLMOptions(max_model_len=4096, mm_encoder_attn_dtype="fp8",
                                                       mm_encoder_attn_backend="FLASHINFER"))
    assert not any(e.code == "vllm.mm.encoder_fp8" for e in r.errors)
    assert any(w.code == "vllm.mm.encoder_fp8_backend" for w in r.warnings)
    assert "--mm-encoder-attn-dtype fp8" in r.command
    # a text model has no encoder; a tower whose attention class is not checked is warned about, not refused
    assert not check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100-80gb-sxm"),
                          VLLMOptions(max_model_len=4096, mm_encoder_attn_dtype="fp8")).errors
    g = check_vllm(load("google/gemma-3-4b-it"), find_gpu("h100-80gb-sxm"),
                   VLLMOptions(max_model_len=4096, mm_encoder_attn_dtype="fp8"))
    assert any(w.code == "vllm.mm.encoder_fp8_unchecked" for w in g.warnings)
    p = check_command("vllm serve Qwen/Qwen3-VL-2B-Instruct --max-model-len 4096 --mm-encoder-attn-dtype fp8",
                      "h100-80gb-sxm")
    assert not p.fits and p.options["mm_encoder_attn_dtype"] == "fp8"
    assert check_command("vllm serve Qwen/Qwen3-VL-2B-Instruct --max-model-len 4096 --mm-encoder-attn-dtype None",
                         "h100-80gb-sxm").fits
