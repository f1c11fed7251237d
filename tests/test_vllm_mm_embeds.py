"""--enable-mm-embeds and --ec-transfer-config consumers (vramcalc/vllm/mm_embeds.py) against vLLM 0.34.0's own
config run on CPU (tests/data/vllm_mm_embeds_oracle_v0.34.0.json, made by tools/vllm_mm_embeds_oracle.py): with
every modality at 0 the runner keeps an encoder cache of at least max_num_batched_tokens tokens, each a row of the
hidden size in the model dtype (an EC consumer's rows as wide as the producer's tower emits), which the profile run
leaves empty; vramcalc counts it against what the KV cache leaves of the GPU."""

import json

import pytest

from conftest import DATA
from vramcalc.gpus import find_gpu
from vramcalc.kv import dtype_bytes
from vramcalc.pasted_command import check_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.features import features
from vramcalc.vllm.mm_embeds import embedding_only, embeds_cache, embeds_on

ORACLE = json.loads((DATA / "vllm_mm_embeds_oracle_v0.34.0.json").read_text())
RULE = features().multimodal.mm_embeds
SIZED = [c for c in ORACLE["cases"] if c["architecture"] in RULE.modalities]
ZERO = "--limit-mm-per-prompt '{\"image\": 0, \"video\": 0}'"


def _id(c):
    return f"{c['model']}-tp{c['tp']}"


def test_oracle_names_release_and_method():
    assert ORACLE["release"] == "0.34.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"]
    assert not ORACLE["failed"]
    # every catalog model with a vision config, at TP 1 and 2
    assert {c["tp"] for c in ORACLE["cases"]} == {1, 2} and len(ORACLE["cases"]) == 70 and len(SIZED) == 64


@pytest.mark.parametrize("c", SIZED, ids=_id)
def test_encoder_cache_tokens_width_and_bytes_equal_vllms_own(c):
    """tokens: SchedulerConfig.encoder_cache_size, which compute_mm_encoder_budget keeps for an item no larger than
    max_num_batched_tokens (the floor vramcalc takes); width: ModelConfig.get_inputs_embeds_size; bytes per rank: one
    row per token in the model dtype, the same on every TP rank."""
    spec = load(c["model"])
    args = c["engine_args"]
    assert c["supports_multimodal_inputs"] and embedding_only(spec, args["limit_mm_per_prompt"], False)
    e = embeds_cache(spec, args["max_num_batched_tokens"], None, None)
    assert e.tokens == c["encoder_cache_size"] == c["budget_item_below"][1] == args["max_num_batched_tokens"]
    assert c["budget_item_above"][1] > e.tokens  # a larger item raises it: the floor, said as such
    assert e.width == c["inputs_embeds_size"] and e.itemsize == dtype_bytes(c["dtype"])
    assert e.refusal == (None if c["image_embeds_refusal"] is None else RULE.refusals[c["architecture"]])
    if c["image_embeds_refusal"]:
        assert c["image_embeds_refusal"] in e.refusal and e.bytes == 0 and not c["casts_embeds"]
    else:
        assert c["casts_embeds"] and c["architecture"] in RULE.casting
        assert e.bytes == c["encoder_cache_size"] * c["inputs_embeds_size"] * dtype_bytes(c["dtype"])


def test_classes_not_read_are_not_sized():
    """Llama 4 reads pixel_values only and Kimi-K2.5's processor is not built offline: vramcalc does not size them."""
    rest = {c["architecture"] for c in ORACLE["cases"]} - set(RULE.modalities)
    assert rest == {"Llama4ForConditionalGeneration", "KimiK25ForConditionalGeneration"}


def test_ec_roles_as_vllm_resolves_them():
    """VllmConfig._resolve_mm_embedding_inputs turns --enable-mm-embeds on for ec_consumer and ec_both;
    _resolve_mm_encoder_only makes an ec_producer encoder-only."""
    for c in ORACLE["ec"]:
        assert embeds_on(False, c["ec_role"]) == c["enable_mm_embeds"]
        assert (c["ec_role"] == "ec_producer") == c["is_mm_encoder_only"]


def test_ec_consumer_width_is_the_producers_packed_tower_output():
    """vLLM's Qwen3-VL tower built on the meta device emits out_hidden_size x (1 + DeepStack levels): the rows an EC
    consumer loads (vllm/distributed/ec_transfer/ec_connector/encoder_output_width.py)."""
    assert len(ORACLE["packed_width"]) == 4
    for model, width in ORACLE["packed_width"].items():
        spec = load(model)
        assert embeds_cache(spec, 8192, None, "ec_consumer").width == width
        assert embeds_cache(spec, 8192, None, None).width == spec.hidden_size


@pytest.mark.parametrize("c", [c for c in SIZED if c["model"] in ("Qwen/Qwen3-VL-8B-Instruct",
                                                                  "Qwen/Qwen2.5-VL-7B-Instruct", "google/gemma-3-4b-it")],
                         ids=_id)
def test_check_reports_the_oracles_bytes_per_rank(c):
    args = c["engine_args"]
    opts = VLLMOptions(tp=c["tp"], max_model_len=8192, max_num_batched_tokens=args["max_num_batched_tokens"],
                       limit_mm_per_prompt=args["limit_mm_per_prompt"], enable_mm_embeds=True)
    r = check_vllm(load(c["model"]), find_gpu("h100"), opts)
    said = [w for w in r.warnings if w.code.startswith("vllm.mm.embeds")]
    assert len(said) == 1
    if c["image_embeds_refusal"]:
        assert said[0].code == "vllm.mm.embeds_refused" and c["image_embeds_refusal"] in said[0].text
        return
    want = c["encoder_cache_size"] * c["inputs_embeds_size"] * dtype_bytes(c["dtype"])
    assert said[0].code == "vllm.mm.embeds_cache" and f"{want / 2**30:.2f} GiB" in said[0].text
    (t,) = [t for t in r.trace if t.name.startswith("encoder cache, precomputed embeddings")]
    assert t.value == want and t.inputs["tokens"] == c["encoder_cache_size"]


def test_pasted_embeds_that_do_not_fit_warn_that_the_kv_cache_still_starts():
    """A budget that leaves less than the encoder cache's floor: the KV cache starts, the embeddings may not (0.33's
    sizing, --disable-extensible-kv-cache: the budget is the KV cache's; the extensible cache leaves its margin
    free, max(1 GiB, 0.75 x the transient), which holds them)."""
    base = f"vllm serve Qwen/Qwen3-VL-8B-Instruct --max-model-len 8192 {ZERO} --enable-mm-embeds"
    r = check_command(f"{base} --max-num-batched-tokens 65536 --gpu-memory-utilization 0.99 "
                      "--disable-extensible-kv-cache", "h100")
    assert r.fits
    (w,) = [w for w in r.result.warnings if w.code.startswith("vllm.mm.embeds")]
    assert w.code == "vllm.mm.embeds_oom" and "the KV cache still starts" in w.text and "65,536 tokens" in w.text
    assert "x 4,096 x 2 bytes = 0.50 GiB" in w.text and w.fix
    ok = check_command(base, "h100")
    (w,) = [w for w in ok.result.warnings if w.code.startswith("vllm.mm.embeds")]
    assert w.code == "vllm.mm.embeds_cache" and "no promise" in w.text and "fits" not in w.text.replace("fit", "")
    assert not [w for w in ok.warnings if w.code == "command.not_modelled"]
    assert "--enable-mm-embeds" in ok.result.command


def test_pasted_embeds_with_limits_above_zero_change_nothing():
    """With a modality above 0 the tower is built and profiled as without the flag: the same figures."""
    cmd = "vllm serve Qwen/Qwen3-VL-8B-Instruct --max-model-len 8192"
    a, b = check_command(cmd, "h100"), check_command(f"{cmd} --enable-mm-embeds", "h100")
    assert a.result.kv_cache_tokens == b.result.kv_cache_tokens
    assert not [w for w in b.result.warnings if w.code.startswith("vllm.mm.embeds")]


def test_pasted_ec_roles():
    base = f"vllm serve Qwen/Qwen3-VL-8B-Instruct --max-model-len 8192 {ZERO} --ec-transfer-config "
    consumer = check_command(base + "'{\"ec_connector\": \"ECExampleConnector\", \"ec_role\": \"ec_consumer\"}'", "h100")
    (w,) = [w for w in consumer.result.warnings if w.code.startswith("vllm.mm.embeds")]
    assert "EC producer's encoder outputs" in w.text and "x 16,384 x 2 bytes" in w.text
    assert not [w for w in consumer.warnings if w.code == "command.not_modelled"]
    producer = check_command(base + "'{\"ec_connector\": \"ECExampleConnector\", \"ec_role\": \"ec_producer\"}'",
                             "h100")
    (w,) = [w for w in producer.warnings if w.code == "command.not_modelled"]
    assert "ec_producer" in w.text and "the figures ignore it" in w.text
    assert not [w for w in producer.result.warnings if w.code.startswith("vllm.mm.embeds")]
    cpu = check_command(base + "'{\"ec_connector\": \"ECCPUConnector\", \"ec_role\": \"ec_consumer\"}'", "h100")
    (w,) = [w for w in cpu.warnings if w.code == "command.not_modelled"]
    assert "ECCPUConnector's own buffers" in w.text


def test_unread_class_and_older_release_are_warned():
    llama = check_command("vllm serve meta-llama/Llama-4-Scout-17B-16E-Instruct -tp 8 --max-model-len 8192 "
                          "--limit-mm-per-prompt '{\"image\": 0}' --enable-mm-embeds", "8xh100")
    assert [w.code for w in llama.result.warnings if w.code.startswith("vllm.mm.embeds")] == ["vllm.mm.embeds_unread"]
    old = check_command("docker run --gpus all vllm/vllm-openai:v0.33.0 Qwen/Qwen3-VL-8B-Instruct --max-model-len 8192 "
                        f"{ZERO} --enable-mm-embeds", "h100")
    assert [w.code for w in old.result.warnings if w.code.startswith("vllm.mm.embeds")] == ["vllm.mm.embeds_unread"]


def test_cli_flag_reads_as_the_pasted_one(capsys):
    from vramcalc.cli import main

    main(["check", "Qwen/Qwen3-VL-8B-Instruct", "--gpu", "h100", "--engine", "vllm", "--max-model-len", "8192",
          "--limit-mm-per-prompt", '{"image": 0, "video": 0}', "--enable-mm-embeds"])
    out = capsys.readouterr().out
    assert "x 4,096 x 2 bytes = 0.06 GiB" in out and "--enable-mm-embeds" in out
