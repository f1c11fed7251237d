"""--quantization humming with VLLM_HUMMING_ONLINE_QUANT_CONFIG / VLLM_HUMMING_INPUT_QUANT_CONFIG: the weight bytes
vramcalc gives each layer and rank, and what it refuses, against vLLM 0.34.0's own HummingConfig and model classes
run on CPU with humming's own schema modules (tests/data/vllm_humming_oracle_v0.34.0.json,
tools/vllm_humming_oracle.py: decoder layer 0 as create_weights registers it, and each Humming module at the padded
shapes humming's get_padded_tensors_attrs gives at the multiples vLLM's post-load step pads to)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from vramcalc.api import model_source
from vramcalc.errors import InputError
from vramcalc.pasted_command import check_command, read_command
from vramcalc.vllm.engine import VLLMOptions, _scheme
from vramcalc.vllm.weights import layer_tensors, weights_per_rank

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_humming_oracle_v0.34.0.json").read_text())
ALL = [r for r in ORACLE["rows"] if "created" in r]
ROWS = [r for r in ALL if r["model"].startswith("Qwen/")]  # one decoder layer, vLLM's module names as vramcalc's
REFUSED = [r for r in ORACLE["rows"] if "error" in r]
ONLINE, INPUT = "VLLM_HUMMING_ONLINE_QUANT_CONFIG", "VLLM_HUMMING_INPUT_QUANT_CONFIG"

# vramcalc's tensor names (after model.layers.N.) -> the vLLM module holding them (packed_modules_mapping)
_MODULE = [(r"self_attn\.[qkv]_proj\.", "self_attn.qkv_proj"), (r"self_attn\.o_proj\.", "self_attn.o_proj"),
           (r"mlp\.(gate|up)_proj\.", "mlp.gate_up_proj"), (r"mlp\.down_proj\.", "mlp.down_proj"),
           (r"mlp\.router\.", "mlp.gate"), (r"mlp\.experts\.", "mlp.experts.routed_experts")]
L0 = "model.layers.0."


def _module(name: str) -> str:
    return next((m for p, m in _MODULE if re.match(p, name)), "other")


def _opts(row: dict) -> VLLMOptions:
    env = row["env"]
    return VLLMOptions(tp=row["tp"], quantization="humming", humming_online_quant_config=env.get(ONLINE),
                       humming_input_quant_config=env.get(INPUT))


def _theirs(params: dict) -> dict[str, int]:
    """The oracle's bytes of layer 0 per vLLM module ("other": the parameters outside those modules, the norms)."""
    out: dict[str, int] = {}
    for n, p in params.items():
        if n.startswith(L0):
            m = next((m for _, m in _MODULE if n[len(L0):].startswith(m + ".")), "other")
            out[m] = out.get(m, 0) + p["bytes"]
    return out


def _mine(row: dict, padded: bool) -> dict[str, int]:
    spec = model_source(row["model"]).spec
    scheme = _scheme(spec, _opts(row))[0]
    if not padded:  # as create_weights registers them: the same schema, nothing padded
        scheme = scheme.model_copy(update={"pad_nk": (1, 1)})
    out: dict[str, int] = {}
    for t in layer_tensors(spec, row["tp"], scheme)[0]:
        m = _module(t.name)
        out[m] = out.get(m, 0) + t.bytes
    return out


def _id(r: dict) -> str:
    return f"{r['model']} tp{r['tp']} {json.dumps(r['env'])}"


def test_the_fixture_is_vllms():
    assert ORACLE["release"] == "0.34.0" and "run on CPU" in ORACLE["produced_by"]
    assert {r["model"] for r in ROWS} == {"Qwen/Qwen3-0.6B", "Qwen/Qwen3-30B-A3B"} and {r["tp"] for r in ROWS} == {1, 2}
    assert all(v in ("HummingLinearMethod", "HummingMoEMethod", "UnquantizedEmbeddingMethod", "UnquantizedLinearMethod",
                     "UnquantizedFusedMoEMethod")
               for r in ALL for v in r["methods"].values())


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_layer_bytes_as_vllm_creates_them(row):
    """Each module of decoder layer 0 as HummingLinearMethod / HummingMoEMethod.create_weights registers it."""
    assert _mine(row, padded=False) == _theirs(row["created"])


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_layer_bytes_as_vllm_keeps_them_after_loading(row):
    """The Humming modules at the shapes check_and_pad_tensors pads them to (N to 256, K to 128), the rest of the
    layer as created."""
    padded = {n.removeprefix(L0): sum(p["bytes"] for p in t.values()) for n, t in row["after_loading_padded"].items()
              if n.startswith(L0)}
    assert _mine(row, padded=True) == {m: padded.get(m, b) for m, b in _theirs(row["created"]).items()}


@pytest.mark.parametrize("row", [r for r in ROWS if INPUT not in r["env"]], ids=_id)
def test_rank_weights_change_by_the_oracles_layer_bytes(row):
    """Every decoder layer of these models is alike and only decoder layers hold Humming modules (the embeddings and
    the LM head stay as they are): each rank's weights move by the layer count times what layer 0 gained."""
    spec = model_source(row["model"]).spec
    outside = {n: p for n, p in row["created"].items() if not n.startswith("model.layers.")}
    assert outside and all(p["dtype"] == "bfloat16" for p in outside.values())
    before = weights_per_rank(spec, row["tp"], scheme=_scheme(spec, VLLMOptions(tp=row["tp"]))[0])
    after = weights_per_rank(spec, row["tp"], scheme=_scheme(spec, _opts(row))[0])
    unquantized = sum(p["bytes"] for n, p in row["created"].items() if n.startswith(L0)
                      and not any(n.startswith(m + ".") for m in row["after_loading_padded"]))
    padded = sum(p["bytes"] for n, t in row["after_loading_padded"].items() if n.startswith(L0) for p in t.values())
    layer_bf16 = sum(t.bytes for t in layer_tensors(spec, row["tp"])[0])
    delta = unquantized + padded - layer_bf16
    assert delta < 0 and [a.bytes - b.bytes for a, b in zip(after, before)] == [spec.num_layers * delta] * row["tp"]


@pytest.mark.parametrize("row", ALL, ids=_id)
def test_each_layer_as_vllm_creates_and_keeps_it(row):
    """Every decoder layer of the cut model, summed (DeepSeek-V2-Lite's dense first layer, whose down_proj input
    partition at TP 4, 2736, is no multiple of 32 and stays bf16, and its MoE layer, whose GateLinear router vLLM
    builds without the quant config, beside shared experts): as created, and after loading."""
    spec = model_source(row["model"]).spec
    scheme = _scheme(spec, _opts(row))[0]
    n = max(int(k.split(".")[2]) for k in row["created"] if k.startswith("model.layers.")) + 1
    for padded in (False, True):
        s = scheme if padded else scheme.model_copy(update={"pad_nk": (1, 1)})
        mine = [sum(t.bytes for t in layer) for layer in layer_tensors(spec, row["tp"], s)[:n]]
        theirs = []
        for i in range(n):
            pre = f"model.layers.{i}."
            mods = {m: t for m, t in row["after_loading_padded"].items() if m.startswith(pre)} if padded else {}
            theirs.append(sum(p["bytes"] for k, p in row["created"].items() if k.startswith(pre) and
                              not any(k.startswith(m + ".") for m in mods)) +
                          sum(p["bytes"] for t in mods.values() for p in t.values()))
        assert mine == theirs, padded
    if row["model"] == "deepseek-ai/DeepSeek-V2-Lite":
        assert row["methods"]["model.layers.0.mlp.down_proj"] == row["methods"]["model.layers.1.mlp.gate"] == \
            "UnquantizedLinearMethod"


def test_keys_humming_does_not_know_are_dropped():
    base = next(r for r in ROWS if json.loads(r["env"][ONLINE]) == {"dtype": "uint4", "group_size": 128}
                and r["tp"] == 1 and r["model"] == "Qwen/Qwen3-0.6B" and INPUT not in r["env"])
    odd = next(r for r in ROWS if "unknown_key" in r["env"][ONLINE] and r["tp"] == 1 and r["model"] == base["model"])
    assert odd["created"] == base["created"] and _mine(odd, True) == _mine(base, True)


@pytest.mark.parametrize("row", REFUSED, ids=_id)
def test_refusals_in_vllms_words(row):
    said = row["error"]  # the first 400 characters of vLLM's message
    spec = model_source(row["model"]).spec
    with pytest.raises(InputError) as e:
        _scheme(spec, _opts(row))
    assert str(e.value)[:len(said)] == said
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in row["env"].items())
    with pytest.raises(InputError) as e:
        check_command(f"{env} vllm serve {row['model']} --max-model-len 4096 --quantization humming", "h100-sxm")
    assert str(e.value)[:len(said)] == said


def test_a_pasted_command_quantizes_and_says_the_variables_it_reads():
    cfg = shlex.quote(json.dumps({"dtype": "uint4", "group_size": 128}))
    base = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 4096 -tp 2"
    plain = check_command(base, "2xh100-sxm").result.devices[0].weights_bytes
    r = check_command(f"{ONLINE}={cfg} {INPUT}='{{\"dtype\": \"int8\"}}' {base} --quantization humming", "2xh100-sxm")
    assert r.result.devices[0].weights_bytes < plain / 3
    assert f"{ONLINE}={cfg}" in r.result.command and "--quantization humming" in r.result.command
    assert any(w.code == "command.speed_not_estimated" and INPUT in w.text for w in r.warnings)
    # without --quantization humming nothing reads them
    alone = check_command(f"{ONLINE}={cfg} {base}", "2xh100-sxm")
    assert alone.result.devices[0].weights_bytes == plain
    assert any(w.code == "vllm.humming.unused" for w in alone.result.warnings)


def test_a_quantized_checkpoint_is_counted_as_stored_and_warned():
    cfg = shlex.quote(json.dumps({"dtype": "uint4", "group_size": 128, "force_requant": True}))
    base = "vllm serve Qwen/Qwen3-30B-A3B-FP8 --max-model-len 4096 -tp 2"
    plain = check_command(base, "2xh100-sxm").result.devices[0].weights_bytes
    r = check_command(f"{ONLINE}={cfg} {base} --quantization humming", "2xh100-sxm")
    assert r.result.devices[0].weights_bytes == plain
    said = [w.text for w in r.result.warnings if w.code == "vllm.humming.not_sized"]
    assert len(said) == 2 and "force_requant" in said[1]


def test_an_older_release_is_not_modelled():
    with pytest.raises(InputError, match="not modelled for vLLM 0.33.0"):
        _scheme(model_source("Qwen/Qwen3-0.6B").spec, VLLMOptions(quantization="humming", engine_version="0.33.0",
                                                                  humming_online_quant_config='{"dtype": "uint4"}'))
    _, r = read_command(f"{ONLINE}='{{\"dtype\": \"uint4\"}}' vllm serve Qwen/Qwen3-0.6B")
    assert r.options["humming_online_quant_config"] == '{"dtype": "uint4"}'


def test_gpt_oss_mxfp4_is_refused_in_vllms_words():
    # HummingConfig.override_quantization_method (vLLM 0.34.0 quantization/humming.py): gpt-oss's MXFP4 experts take
    # the Humming MoE backend instead
    with pytest.raises(InputError, match=r"For gpt-oss model, use '--moe-backend humming' instead of "
                                         r"'--quantization humming'\."):
        check_command("vllm serve openai/gpt-oss-20b --max-model-len 4096 --quantization humming", "h100-sxm")


def test_check_takes_the_schema_as_a_flag(capsys):
    from vramcalc.cli import main

    cfg = json.dumps({"dtype": "uint4", "group_size": 128})
    argv = ["check", "Qwen/Qwen3-30B-A3B", "--engine", "vllm", "--gpu", "h100-sxm", "--ctx", "4096", "--json"]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(argv + ["--quant", "humming", "--humming-online-quant-config", cfg]) == 0
    r = json.loads(capsys.readouterr().out)
    pasted = check_command(f"{ONLINE}={shlex.quote(cfg)} vllm serve Qwen/Qwen3-30B-A3B --max-model-len 4096 "
                           "--quantization humming", "h100-sxm")
    assert r["devices"][0]["weights_bytes"] == pasted.result.devices[0].weights_bytes \
        < plain["devices"][0]["weights_bytes"] / 3
