"""--mm-processor-kwargs: vramcalc/vllm/mm_profile.py's dummy items (sizes, tokens per item, the modality profiled,
items per batch) against vLLM 0.34.0's own MultiModalBudget and dummy inputs builder run on CPU over the same kwargs
(tools/vllm_mm_processor_kwargs_oracle.py, tests/data/vllm_mm_processor_kwargs_oracle_v0.34.0.json), case by case."""

import json

import pytest

from conftest import DATA
from vramcalc.vllm.features import features
from vramcalc.vllm.mm_profile import ProcessorKwargsError, dummy_under_kwargs, max_items

ORACLE = json.loads((DATA / "vllm_mm_processor_kwargs_oracle_v0.34.0.json").read_text())
CASES = [c for c in ORACLE["cases"] if not c.get("disable_chunked_mm_input")]
CHUNKED = [c for c in ORACLE["cases"] if c.get("disable_chunked_mm_input")]


def _id(c):
    return (f"{c['model'].split('/')[1]}-{json.dumps(c['mm_processor_kwargs'], separators=(',', ':'))}"
            f"-L{c['max_model_len']}-b{c['max_num_batched_tokens']}-{c['limit_mm_per_prompt']}")


def test_the_fixture_names_its_release_and_maker():
    assert ORACLE["release"] == "0.34.0"
    assert "vllm_mm_processor_kwargs_oracle.py" in ORACLE["produced_by"]
    assert len(CASES) >= 100 and {c["model"] for c in CASES} == {"Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen3.6-27B"}


def test_the_routed_keys_are_vllms():
    cfg = features().multimodal.encoder_peak.processors
    for c in CASES:
        if "supported_mm_processor_kwargs" in c:
            assert c["supported_mm_processor_kwargs"] == cfg.routed


def test_the_processor_defaults_are_the_catalogs_dummy_items():
    """With no kwargs the computed image is the recorded dummy item (data/vllm_features.json dummy_items)."""
    items = features().multimodal.encoder_peak.dummy_items
    for m in ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen3.6-27B"):
        d = dummy_under_kwargs(m, {}, 128000, True)
        assert d.image == (tuple(items[m].image.grid), items[m].image.tokens)


@pytest.mark.parametrize("c", CASES, ids=[_id(c) for c in CASES])
def test_dummy_tokens_modality_and_items_equal_vllms(c):
    limits = c["limit_mm_per_prompt"] or {}
    video = limits.get("video", 999) > 0
    if "error" in c:
        with pytest.raises(ProcessorKwargsError) as e:
            dummy_under_kwargs(c["model"], c["mm_processor_kwargs"] or {}, c["max_model_len"], video)
        assert str(e.value) == f"{c['error']['type']}: {c['error']['message']}"
        return
    d = dummy_under_kwargs(c["model"], c["mm_processor_kwargs"] or {}, c["max_model_len"], video)
    assert d.image_px == (c["dummy_image"]["width"], c["dummy_image"]["height"])
    v = c.get("dummy_video")
    if d.not_sized and d.video:  # cap_pixels_per_frame spreads the video dummy over more frames: not sized, said
        assert v and (v["frames"], v["height"], v["width"]) != d.video_px
    else:
        assert d.video_px == (v and (v["frames"], v["height"], v["width"]))
    tokens = {"image": d.image[1]} | ({"video": d.video[1]} if d.video else {})
    assert tokens == c["tokens_per_item"]
    assert max(tokens, key=lambda m: (tokens[m], m)) == c["modality"]
    mnbt = c["max_num_batched_tokens"]
    budget = max(mnbt, max(tokens.values()))  # compute_mm_encoder_budget over the modalities allowed
    assert budget == c["encoder_cache_size"] == c["encoder_compute_budget"]
    for m, t in tokens.items():
        assert max_items(t, mnbt, budget, budget, limits.get(m, 999), c["max_model_len"], c["max_num_seqs"]) == \
            c["items_per_batch"][m]


# the pasted command: the flag read, the dummy it sizes in the encoder_profile warning, vLLM's refusals in its words

import re  # noqa: E402

from vramcalc.errors import InputError  # noqa: E402
from vramcalc.pasted_command import check_command  # noqa: E402

SAID = re.compile(r"encodes (\d+) (image|video) items? of (\d+)x(\d+)x(\d+) patches \(the largest dummy "
                  r"--limit-mm-per-prompt allows under --mm-processor-kwargs, (\d+) tokens each\)")


def _command(c):
    cmd = (f"vllm serve {c['model']} --max-model-len {c['max_model_len']} --max-num-seqs {c['max_num_seqs']} "
           f"--max-num-batched-tokens {c['max_num_batched_tokens']} --mm-processor-kwargs "
           f"'{json.dumps(c['mm_processor_kwargs'] or {})}'")
    if c["limit_mm_per_prompt"]:
        cmd += f" --limit-mm-per-prompt '{json.dumps(c['limit_mm_per_prompt'])}'"
    return cmd


@pytest.mark.parametrize("c", CASES[::10], ids=[_id(c) for c in CASES[::10]])
def test_a_pasted_command_profiles_vllms_dummy(c):
    """Every tenth case through the pasted command: the items, modality and tokens the warning names are vLLM's;
    a value vLLM raises on is refused in its words."""
    r = check_command(_command(c), "h100-sxm")
    if "error" in c:
        (e,) = [e for e in r.result.errors if e.code == "vllm.mm.processor_kwargs"]
        assert e.text.endswith(f"raises {c['error']['type']}: {c['error']['message']}") and not r.fits
        return
    (w,) = [w for w in r.result.warnings if w.code == "vllm.mm.encoder_profile"]
    if "cap_pixels_per_frame" in (c["mm_processor_kwargs"] or {}) and c["modality"] == "video":
        assert SAID.search(w.text) is None  # not sized
        return
    n, modality, t, h, wd, tokens = SAID.search(w.text).groups()
    assert modality == c["modality"] and int(tokens) == c["tokens_per_item"][modality]
    assert int(n) == c["items_per_batch"][modality]
    assert int(t) * int(h) * int(wd) // 4 == int(tokens)


def test_keys_that_do_not_move_the_dummy_are_named():
    r = check_command("vllm serve Qwen/Qwen3.6-27B --mm-processor-kwargs "
                      "'{\"max_pixels\": 1003520, \"fps\": 1, \"videos_kwargs\": {\"num_frames\": 8}}'", "h100-sxm")
    (w,) = [w for w in r.result.warnings if w.code == "vllm.mm.processor_kwargs_no_dummy"]
    assert w.text.startswith("--mm-processor-kwargs fps, videos_kwargs.num_frames:")
    r = check_command("vllm serve Qwen/Qwen3.6-27B --mm-processor-kwargs '{\"cap_pixels_per_frame\": true}'", "h100-sxm")
    assert [w.code for w in r.result.warnings if w.code.startswith("vllm.mm.processor_kwargs")] == \
        ["vllm.mm.processor_kwargs_not_sized"]


def test_the_json_is_read_as_vllm_reads_it():
    with pytest.raises(InputError, match=r"argument --mm-processor-kwargs: Value \{bad cannot be converted"):
        check_command("vllm serve Qwen/Qwen3.6-27B --mm-processor-kwargs '{bad'", "h100-sxm")
    with pytest.raises(InputError, match=r"Input should be a valid dictionary \[type=dict_type, input_value=\[1, 2\]"):
        check_command("vllm serve Qwen/Qwen3.6-27B --mm-processor-kwargs '[1, 2]'", "h100-sxm")
    r = check_command("vllm serve Qwen/Qwen3.6-27B --mm-processor-kwargs '{\"max_pixels\": 1003520}'", "h100-sxm")
    assert r.options["mm_processor_kwargs"] == {"max_pixels": 1003520}
    assert "--mm-processor-kwargs '{\"max_pixels\":1003520}'" in r.result.command


def test_another_multimodal_model_keeps_the_not_sized_path():
    r = check_command("vllm serve Qwen/Qwen3-VL-2B-Instruct --mm-processor-kwargs '{\"max_pixels\": 1003520}'",
                      "h100-sxm")
    (w,) = [w for w in r.result.warnings if w.code == "vllm.mm.encoder_profile"]
    assert "that peak is not modelled" in w.text
    assert not [w for w in r.result.warnings if w.code.startswith("vllm.mm.processor_kwargs")]


def test_check_vllm_takes_the_flag(capsys):
    from vramcalc.cli import main

    main(["check", "Qwen/Qwen3.6-27B", "--gpu", "h100-sxm", "--engine", "vllm", "--max-num-batched-tokens", "8192",
          "--mm-processor-kwargs", '{"max_pixels": 1003520}', "--json"])
    d = json.loads(capsys.readouterr().out)
    assert "--mm-processor-kwargs '{\"max_pixels\":1003520}'" in d["command"]
    (w,) = [w for w in d["warnings"] if w["code"] == "vllm.mm.encoder_profile"]
    assert "encodes 8 image items of 1x56x70 patches" in w["text"] and "980 tokens each" in w["text"]
    from vramcalc.cli.common import UsageExit

    with pytest.raises(UsageExit):
        main(["check", "Qwen/Qwen3.6-27B", "--gpu", "h100-sxm", "--engine", "vllm", "--mm-processor-kwargs", "[1]"])
    assert "Input should be a valid dictionary [type=dict_type, input_value=[1]" in capsys.readouterr().err


@pytest.mark.parametrize("c", CHUNKED, ids=[_id(c) for c in CHUNKED])
def test_disable_chunked_mm_input_refuses_as_vllm_does(c):
    """compute_mm_encoder_budget's refusal of an item larger than max_num_batched_tokens, through the pasted command,
    in vLLM's words; the starts vLLM makes are not refused."""
    from vramcalc.vllm.mm_profile import max_item_tokens

    tokens = max_item_tokens(c["model"], c["mm_processor_kwargs"], c["limit_mm_per_prompt"], c["max_model_len"])
    r = check_command(_command(c) + " --disable-chunked-mm-input", "h100-sxm")
    refused = [e for e in r.result.errors if e.code == "vllm.mm.chunked_mm_input"]
    if "error" in c:
        assert [e.text for e in refused] == [f"{c['error']['type']}: {c['error']['message']}"]
    else:
        assert tokens == max(c["tokens_per_item"].values()) and not refused
    assert "--disable-chunked-mm-input" in r.result.command


def test_enable_chunked_mm_input_is_the_default():
    r = check_command("vllm serve Qwen/Qwen2.5-VL-3B-Instruct --max-num-batched-tokens 8192 "
                      "--enable-chunked-mm-input", "h100-sxm")
    assert not r.options.get("disable_chunked_mm_input")
    assert not [e for e in r.result.errors if e.code == "vllm.mm.chunked_mm_input"]


EMBEDS = ORACLE["embeds"]


@pytest.mark.parametrize("c", EMBEDS, ids=[f"{c['model'].split('/')[1]}-{c['mm_processor_kwargs']}-"
                                           f"{'lmo' if c.get('language_model_only') else 'zero'}" for c in EMBEDS])
def test_the_precomputed_embeds_cache_takes_the_largest_item(c):
    """--enable-mm-embeds with every modality at 0 (or --language-model-only): the encoder cache is
    max(max_num_batched_tokens, the largest item of every modality) tokens, as vLLM 0.34.0's MultiModalBudget has it
    (above the scheduler's floor, scheduler_encoder_cache_size, where the item is larger)."""
    from vramcalc.gpus import find_gpu
    from vramcalc.sources.catalog import load
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    opts = VLLMOptions(max_model_len=c["max_model_len"], max_num_batched_tokens=c["max_num_batched_tokens"],
                       limit_mm_per_prompt=c.get("limit_mm_per_prompt"), enable_mm_embeds=True,
                       language_model_only=bool(c.get("language_model_only")),
                       mm_processor_kwargs=c["mm_processor_kwargs"])
    r = check_vllm(load(c["model"]), find_gpu("h100-sxm"), opts)
    (t,) = [t for t in r.trace if t.name.startswith("encoder cache, precomputed embeddings")]
    assert t.inputs["tokens"] == c["encoder_cache_size"]
