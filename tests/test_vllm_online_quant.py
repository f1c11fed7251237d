"""--quantization online / an online shorthand with --quantization-config: the weight bytes vramcalc gives each
layer and rank against vLLM 0.34.0's own online quantization methods run on CPU
(tests/data/vllm_online_quant_oracle_v0.34.0.json, tools/vllm_online_quant_oracle.py: decoder layer 0 of each model
built by vLLM's model class, its weights quantized by vLLM's process_weights_after_loading)."""

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

DATA = Path(__file__).parent / "data"
ORACLES = {v: json.loads((DATA / f"vllm_online_quant_oracle_v{v}.json").read_text()) for v in ("0.33.0", "0.34.0")}
ORACLE = ORACLES["0.34.0"]
ALL = [dict(r, release=v) for v, o in ORACLES.items() for r in o["rows"]]
ROWS = [r for r in ALL if "after_loading" in r]
# the rows vramcalc sizes (the routed experts' formats, warned and left at the checkpoint dtype, are not compared:
# their post-load step does not run on CPU, _compared)
SIZED = ROWS

# vramcalc's tensor names (after model.layers.N.) -> the vLLM module holding them (packed_modules_mapping)
_MODULE = [(r"self_attn\.[qkv]_proj\.", "self_attn.qkv_proj"), (r"self_attn\.o_proj\.", "self_attn.o_proj"),
           (r"mlp\.(gate|up)_proj\.", "mlp.gate_up_proj"), (r"mlp\.down_proj\.", "mlp.down_proj"),
           (r"mlp\.router\.", "mlp.gate"), (r"mlp\.experts\.", "mlp.experts.routed_experts")]


def _module(name: str) -> str | None:
    return next((m for p, m in _MODULE if re.match(p, name)), None)


def _opts(row: dict) -> VLLMOptions:
    return VLLMOptions(tp=row["tp"], quantization=row["quantization"], engine_version=row["release"],
                       quantization_config=json.dumps(row["quantization_config"]))


def _oracle_modules(params: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for n, p in params.items():
        m = next((m for _, m in _MODULE if n.startswith(m + ".")), None)
        if m is not None:
            out[m] = out.get(m, 0) + p["bytes"]
    return out


def _compared(row: dict) -> dict[str, int]:
    """The oracle's bytes per linear / MoE module of layer 0, leaving out a module whose post-load step could not
    run on CPU (it keeps its bf16 weights there, which CUDA would not)."""
    errors = row.get("after_loading_errors") or {}
    return {m: b for m, b in _oracle_modules(row["after_loading"]).items() if m not in errors}


def test_the_fixtures_are_vllms():
    for v, o in ORACLES.items():
        assert o["release"] == v and "run on CPU" in o["produced_by"]
    assert {r["model"] for r in ROWS} == {"Qwen/Qwen3-0.6B", "Qwen/Qwen3-30B-A3B"} and {r["tp"] for r in ROWS} == {1, 2}


@pytest.mark.parametrize("row", SIZED, ids=lambda r: f"{r['release']} {r['model']} tp{r['tp']} {r['quantization']} "
                                                     f"{json.dumps(r['quantization_config'])}")
def test_layer_bytes_as_vllm_keeps_them(row):
    spec = model_source(row["model"]).spec
    opts = _opts(row)
    scheme, _ = _scheme(spec, opts)
    mine: dict[str, int] = {}
    for t in layer_tensors(spec, row["tp"], scheme)[0]:
        m = _module(t.name)
        if m is not None:
            mine[m] = mine.get(m, 0) + t.bytes
    theirs = _compared(row)
    assert theirs and {m: mine[m] for m in theirs} == theirs


@pytest.mark.parametrize("row", SIZED, ids=lambda r: f"{r['release']} {r['model']} tp{r['tp']} {r['quantization']} "
                                                      f"{json.dumps(r['quantization_config'])}")
def test_rank_weights_change_by_the_oracles_layer_bytes(row):
    """Every decoder layer of these models is alike and only decoder layers hold LinearBase layers: each rank's
    weights move by the layer count times what vLLM's layer 0 gained or lost at load (the routed experts, whose
    post-load step does not run on CPU, left out: vramcalc keeps them at the checkpoint dtype either way)."""
    spec = model_source(row["model"]).spec
    before = weights_per_rank(spec, row["tp"], scheme=_scheme(spec, VLLMOptions(tp=row["tp"],
                                                                                engine_version=row["release"]))[0])
    after = weights_per_rank(spec, row["tp"], scheme=_scheme(spec, _opts(row))[0])
    errors = tuple(f"{m}." for m in row.get("after_loading_errors") or {})
    assert all(m == "mlp.experts.routed_experts." for m in errors)
    delta = sum(p["bytes"] for n, p in row["after_loading"].items() if not n.startswith(errors)) - \
        sum(p["bytes"] for n, p in row["created"].items() if not n.startswith(errors))
    assert [a.bytes - b.bytes for a, b in zip(after, before)] == [spec.num_layers * delta] * row["tp"]


def _cmd(model: str, extra: str) -> str:
    return f"vllm serve {model} --max-model-len 4096 -tp 2 {extra}"


@pytest.mark.parametrize("model", ["Qwen/Qwen3-0.6B", "Qwen/Qwen3-30B-A3B"])
def test_a_pasted_command_quantizes_the_linear_layers(model):
    cfg = shlex.quote(json.dumps({"linear": "fp8_per_channel_static"}))
    plain = check_command(_cmd(model, ""), "2xh100").result.devices[0].weights_bytes
    online = check_command(_cmd(model, f"--quantization online --quantization-config {cfg}"), "2xh100")
    assert online.result.devices[0].weights_bytes < plain
    assert f"--quantization-config {cfg}" in online.result.command
    # without --quantization online, vLLM builds no online method (the oracle's row without it: bf16 weights)
    alone = check_command(_cmd(model, f"--quantization-config {cfg}"), "2xh100")
    assert alone.result.devices[0].weights_bytes == plain
    assert any(w.code == "vllm.online_quant.unused" for w in alone.result.warnings)


def test_the_oracle_row_without_quantization_online_is_unquantized():
    rows = [r for r in ROWS if r["quantization"] is None]
    assert rows and all(p["dtype"] == "bfloat16" for r in rows for p in r["after_loading"].values())


def test_the_unsized_parts_are_warned_and_counted_at_the_checkpoint_dtype():
    cfg = shlex.quote(json.dumps({"linear": "fp8_per_channel_static", "moe": "fp8_per_block_static"}))
    r = check_command(_cmd("Qwen/Qwen3-30B-A3B", f"--quantization online --quantization-config {cfg}"), "2xh100")
    lin = check_command(_cmd("Qwen/Qwen3-30B-A3B", "--quantization online --quantization-config "
                             + shlex.quote(json.dumps({"linear": "fp8_per_channel_static"}))), "2xh100")
    assert r.result.devices[0].weights_bytes == lin.result.devices[0].weights_bytes  # experts at bf16: upper bound
    said = [w.text for w in r.result.warnings if w.code == "vllm.online_quant.not_sized"]
    assert len(said) == 1 and "moe fp8_per_block_static" in said[0]


def test_a_shorthand_merges_with_the_config():
    # --quantization fp8_per_tensor with a linear override: the override's format on linear layers
    cfg = shlex.quote(json.dumps({"linear": "fp8_per_channel_static"}))
    a = check_command(_cmd("Qwen/Qwen3-0.6B", f"--quantization fp8_per_tensor --quantization-config {cfg}"), "2xh100")
    b = check_command(_cmd("Qwen/Qwen3-0.6B", f"--quantization online --quantization-config {cfg}"), "2xh100")
    assert a.result.devices[0].weights_bytes == b.result.devices[0].weights_bytes


def test_refusals_in_vllms_words():
    with pytest.raises(InputError, match=r"OnlineQuantizationConfig requires at least one of "
                                         r"quantization_config.linear, quantization_config.moe, or "
                                         r"quantization_config.targets to be set."):
        check_command(_cmd("Qwen/Qwen3-0.6B", "--quantization online"), "2xh100")
    cfg = shlex.quote(json.dumps({"linear": "fp8_per_channel_static"}))
    r = check_command(_cmd("Qwen/Qwen3-0.6B", f"--quantization online --quantization-config {cfg}"), "2xa100")
    assert any(e.code == "vllm.online_quant.ptpc_kernel" and "FP8 PTPC online quant requires a kernel" in e.text
               for e in r.result.errors)


def test_an_empty_config_has_no_effect():
    _, r = read_command(_cmd("Qwen/Qwen3-0.6B", "--quantization-config '{}'"))
    assert "quantization_config" not in r.options and any("--quantization-config" in n for n in r.no_effect)


BUILD_REFUSALS = [r for r in ALL if (r.get("build_error") or "").startswith(
    ("ValueError: online quantization for", "NotImplementedError: hadamard_size",
     "ValueError: Found different quantization schemes"))]


@pytest.mark.parametrize("row", BUILD_REFUSALS, ids=lambda r: f"{r['release']} {r['model']} tp{r['tp']} "
                                                              f"{json.dumps(r['quantization_config'])}")
def test_build_time_refusals_in_vllms_words(row):
    """A weight no online method of the layer kind takes, hadamard_size beside another than MXFP4 linear, an ignore
    list taking some shards of a fused module: vLLM refuses them as it builds the first such layer (online/base.py
    OnlineQuantizationConfig._get_method_cls, compressed_tensors/utils.py should_ignore_layer)."""
    said = row["build_error"]  # the oracle keeps the first 400 characters of vLLM's message
    with pytest.raises(InputError) as e:
        _scheme(model_source(row["model"]).spec, _opts(row))
    assert str(e.value)[:len(said)] == said
    if row["release"] == "0.34.0":  # a pasted command (the default release) stops there too
        cfg = shlex.quote(json.dumps(row["quantization_config"]))
        with pytest.raises(InputError) as e:
            check_command(f"vllm serve {row['model']} --max-model-len 4096 -tp {row['tp']} --quantization online "
                          f"--quantization-config {cfg}", f"{row['tp']}xh100")
        assert str(e.value)[:len(said)] == said


def test_each_release_refuses_what_its_online_methods_do_not_take():
    # 0.33.0: a spec's mxfp4 weight is the dynamic key, which no online method takes (the shorthand's is static)
    assert [r for r in BUILD_REFUSALS if r["release"] == "0.33.0"]
    opts = VLLMOptions(quantization="online", engine_version="0.33.0",
                       quantization_config=json.dumps({"linear": {"weight": "mxfp4"}}))
    with pytest.raises(InputError, match=r"QKVParallelLinear with weight=QuantKey\(u8,scale\(u8,dynamic,"):
        _scheme(model_source("Qwen/Qwen3-0.6B").spec, opts)
    ok = VLLMOptions(quantization="online", engine_version="0.33.0", quantization_config='{"linear": "mxfp4"}')
    assert _scheme(model_source("Qwen/Qwen3-0.6B").spec, ok)[0].method == "none"  # taken, not sized


def test_a_moe_spec_on_a_dense_model_is_never_checked():
    # vLLM builds no RoutedExperts for Qwen3-0.6B, so the moe spec is neither refused nor warned about
    cfg = shlex.quote(json.dumps({"linear": "fp8_per_channel_static", "moe": {"weight": "nvfp4_per_token"}}))
    r = check_command(_cmd("Qwen/Qwen3-0.6B", f"--quantization online --quantization-config {cfg}"), "2xh100")
    assert not [w for w in r.result.warnings if w.code == "vllm.online_quant.not_sized"]
