"""--model-impl transformers against vLLM 0.33.0's Transformers backend built on the meta device on a CPU machine
(tests/data/vllm_model_impl_oracle_v0.33.0.json, tools/vllm_oracle.py with VLLM_ORACLE_ENGINE_ARGS='{"model_impl":
"transformers"}'), each case beside vLLM's own class for the same model and TP (tests/data/vllm_oracle/v0.33.0.json):
the parameters and buffers of rank 0 to the byte, and the KV cache plan."""

import json
import os
import shlex

import pytest

from vramcalc.cli import main
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, flag_classes, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.weights import transformers_rope_bytes, weights_per_rank

HERE = os.path.join(os.path.dirname(__file__), "data")
FIXTURE = json.load(open(os.path.join(HERE, "vllm_model_impl_oracle_v0.33.0.json")))
OWN = {(c["model"], c["tp"], c["kv_cache_dtype"]): c
       for c in json.load(open(os.path.join(HERE, "vllm_oracle", "v0.33.0.json")))["cases"]}
CASES = FIXTURE["cases"]


def _id(c):
    return f"{c['model']}-tp{c['tp']}"


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0"
    assert '"model_impl": "transformers"' in FIXTURE["produced_by"]
    assert all(c["engine_args"] == {"model_impl": "transformers"} for c in CASES) and len(CASES) >= 6
    # one case with TP above the KV heads (gemma-3-1b: 1 KV head at TP 2)
    assert any(c["tp"] > 1 and c["model"] == "google/gemma-3-1b-it" for c in CASES)


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_parameters_equal_vllm_to_the_byte(c):
    """The Transformers backend's parameters: vLLM's linear layers swapped into transformers' modules, the k/v
    projections split by column even where TP exceeds the KV heads (gemma-3-1b at TP 2 holds half a head of each,
    where vLLM's own class replicates the head)."""
    spec = load(c["model"])
    w = weights_per_rank(spec, c["tp"], 1, version="0.33.0", kv_colwise=True)[0]
    assert w.bytes - w.rotary_cache_bytes == c["weights_bytes_rank0"]


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_buffers_drop_by_the_rotary_cache_to_the_byte(c):
    """vLLM's own class holds its cos/sin cache (vramcalc's rotary_cache_bytes) and the backend transformers'
    inv_freq buffers instead: the difference of vLLM's two buffer totals, to the byte."""
    own = OWN[(c["model"], c["tp"], "auto")]
    spec = load(c["model"])
    vllm_rope = weights_per_rank(spec, c["tp"], 1, version="0.33.0")[0].rotary_cache_bytes
    assert own["buffer_bytes_rank0"] - c["buffer_bytes_rank0"] == vllm_rope - transformers_rope_bytes(spec)
    assert c["buffer_bytes_rank0"] < 2**12


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_kv_plan_is_vllms_own_class_and_vramcalc_keeps_it(c):
    """The backend builds vLLM's Attention layers: the same layer specs and the same blocks for each memory as vLLM's
    own class, and vramcalc's KV figures with a fixed KV memory do not move."""
    own = OWN[(c["model"], c["tp"], "auto")]
    assert c["layer_kinds"] == own["layer_kinds"]
    assert [(p.get("num_blocks"), p.get("kv_cache_tokens")) for p in c["plans"]] == \
        [(p.get("num_blocks"), p.get("kv_cache_tokens")) for p in own["plans"]]
    spec = load(c["model"])
    kw = dict(tp=c["tp"], engine_version="0.33.0", kv_cache_memory_bytes=2**34, max_model_len=8192)
    tf = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(model_impl="transformers", **kw))
    base = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(**kw))
    assert (tf.num_gpu_blocks, tf.kv_cache_tokens) == (base.num_gpu_blocks, base.kv_cache_tokens)
    theirs = (own["weights_bytes_rank0"] + own["buffer_bytes_rank0"]) - (c["weights_bytes_rank0"] +
                                                                         c["buffer_bytes_rank0"])
    assert base.devices[0].weights_bytes - tf.devices[0].weights_bytes == theirs
    codes = {w.code for w in tf.warnings}
    assert "vllm.model_impl.transformers_activations" in codes
    assert "vllm.model_impl.transformers_activations" not in {w.code for w in base.warnings}


def test_pasted_command_and_cli_read_the_flag():
    assert flag_classes()["vllm"]["--model-impl"]["class"] == "modelled"
    cmd = "vllm serve google/gemma-3-1b-it -tp 2 --max-model-len 8192"
    assert read_command(f"{cmd} --model-impl transformers")[1].options["model_impl"] == "transformers"
    on, off = check_command(f"{cmd} --model-impl transformers", "2xh100"), check_command(cmd, "2xh100")
    (c,) = [c for c in CASES if c["model"] == "google/gemma-3-1b-it" and c["tp"] == 2]
    own = OWN[("google/gemma-3-1b-it", 2, "auto")]
    assert off.result.devices[0].weights_bytes - on.result.devices[0].weights_bytes == \
        own["weights_bytes_rank0"] + own["buffer_bytes_rank0"] - c["weights_bytes_rank0"] - c["buffer_bytes_rank0"]
    assert "--model-impl transformers" in on.result.command and "--model-impl transformers" in on.vramcalc_command
    assert not [w for w in on.warnings if w.code == "command.not_modelled"]
    assert main(shlex.split(on.vramcalc_command)[1:] + ["--json"]) == 0
    for v in ("auto", "vllm"):
        r = check_command(f"{cmd} --model-impl {v}", "2xh100")
        assert r.result.devices[0].weights_bytes == off.result.devices[0].weights_bytes
    terra = check_vllm(load("Qwen/Qwen3-0.6B"), find_gpu("h100-sxm"), VLLMOptions(model_impl="terratorch"))
    assert "vllm.model_impl.terratorch" in {w.code for w in terra.warnings}


LAYOUT = json.load(open(os.path.join(HERE, "vllm_kv_layout_oracle_v0.33.0.json")))


def test_kv_cache_layout_note_holds_against_vllm():
    """VLLM_KV_CACHE_LAYOUT keeps the KV figures (its refusal is checked in tests/test_vllm_kv_layout.py): what its
    note says is what vLLM 0.33.0's planner did with FlashAttention's (undeclared, so default) layout set: NHD / HND
    are LBNHC / LBHNC, the KV tokens per memory are the default layout's wherever it starts, and LHBNC / BHLNC are
    refused on the models that mix KV shapes."""
    from vramcalc.pasted_command import flag_classes

    entry = flag_classes()["vllm_env"]["VLLM_KV_CACHE_LAYOUT"]
    assert entry["class"] == "modelled" and "vllm_kv_layout_oracle_v0.33.0.json" in entry["note"]
    assert LAYOUT["release"] == "0.33.0" and "VLLM_TARGET_DEVICE=cpu" in LAYOUT["produced_by"]
    default = {r["model"]: r for r in LAYOUT["layouts"]["default"]}
    assert {p["kv_cache_layout"] for r in default.values() for p in r["plans"]} == {"LBNHC"}
    mixed = {"google/gemma-4-31B-it", "Qwen/Qwen3-Next-80B-A3B-Thinking", "ai21labs/Jamba-v0.1"}
    assert set(LAYOUT["layouts"]) == {"default", "LBNHC", "LBHNC", "LHBNC", "NHD", "HND", "BLHNC", "BLNHC", "BHLNC"}
    for name, rows in LAYOUT["layouts"].items():
        for r in rows:
            refused = name in ("LHBNC", "BHLNC") and r["model"] in mixed
            for p, q in zip(r["plans"], default[r["model"]]["plans"]):
                if refused:
                    assert "does not satisfy every supported set" in p["refusal"] and "num_blocks" not in p
                    continue
                assert p["kv_cache_layout"] == {"NHD": "LBNHC", "HND": "LBHNC", "default": "LBNHC"}.get(name, name)
                assert p.get("kv_cache_tokens") == q.get("kv_cache_tokens")
                if r["model"] == "google/gemma-4-31B-it" and name.startswith("BL") and "num_blocks" in q:
                    assert p["num_blocks"] == 2 * q["num_blocks"]  # two page sizes packed into one block
                else:
                    assert p.get("num_blocks") == q.get("num_blocks")


@pytest.mark.parametrize("flag,value,inert", [
    ("--pooler-config", '{"pooling_type": "MEAN", "dimensions": 256}', True),
    ("--pooler-config.pooling_type", "MEAN", True),
    ("--pooler-config", '{"enable_chunked_processing": true, "max_embed_len": 100000, "task": "embed"}', True),
    ("--quantization-config", '{"linear": {"weight": "fp8_per_tensor_static"}}', None),
])
def test_json_config_flags_read_their_keys(flag, value, inert):
    """--pooler-config / --kernel-config / --quantization-config: the keys checked against the fields of vLLM
    0.33.0's config class (vllm/config/pooler.py PoolerConfig, kernel.py KernelConfig, quantization.py
    QuantizationConfigArgs); the pooler's output-shaping keys listed as no effect, the rest named in the warning;
    --quantization-config read as its option."""
    r = read_command(f"vllm serve Qwen/Qwen3-0.6B {flag} {shlex.quote(value)}")[1]
    nm = [w for w in r.warnings if w.code == "command.not_modelled"]
    if inert is None:  # read as its option (tests/test_vllm_online_quant.py sizes it)
        assert not r.no_effect and not nm and r.options == {"quantization_config": value}
    elif inert:
        assert r.no_effect and not nm
    else:
        assert not r.no_effect and len(nm) == 1
        for k in json.loads(value):
            assert k in nm[0].text


@pytest.mark.parametrize("flag,cls,said", [
    ("--pooler-config", "PoolerConfig", "PoolerConfig has no field 'foo'"),
    ("--kernel-config", "KernelConfig", "KernelConfig has no field 'foo'"),
    # vLLM's own pydantic words (tests/data/vllm_quant_config_oracle_v0.34.0.json, tests/test_vllm_quant_config.py)
    ("--quantization-config", "QuantizationConfigArgs",
     "1 validation error for QuantizationConfigArgs foo Unexpected keyword argument")])
def test_json_config_flags_refuse_a_key_the_class_lacks(flag, cls, said):
    from vramcalc.errors import InputError

    with pytest.raises(InputError, match=said):
        read_command(f"vllm serve Qwen/Qwen3-0.6B {flag} '{{\"foo\": 1}}'")
    assert flag_classes()["vllm"][flag]["config_class"] == cls


def test_kernel_config_moe_backend_is_read_as_moe_backend():
    """--kernel-config '{"moe_backend": ...}' is the key --moe-backend sets (vllm/engine/arg_utils.py, 0.33.0): read
    as it, normalised as KernelConfig does, and --moe-backend other than auto wins in either order; beside another
    key the modelled key is still read and the other one named as not modelled."""
    base = "vllm serve openai/gpt-oss-20b --max-model-len 8192"
    kc = check_command(f"{base} --kernel-config '{{\"moe_backend\": \"marlin\"}}'", "h100")
    flag = check_command(f"{base} --moe-backend marlin", "h100")
    assert kc.result.devices[0].weights_bytes == flag.result.devices[0].weights_bytes
    assert not [w for w in kc.warnings if w.code == "command.not_modelled"]
    assert read_command(f"{base} --moe-backend triton --kernel-config.moe_backend marlin")[1].options[
        "moe_backend"] == "triton"
    both = read_command(f"{base} --kernel-config "
                        "'{\"moe_backend\": \"marlin\", \"monokernel\": true}'")[1]
    # monokernel is read as --monokernel is (MiniMax-M3's ROCm decode path, command_flags.json --monokernel)
    assert both.options["moe_backend"] == "marlin" and both.options["monokernel"] is True
    assert not [w for w in both.warnings if w.code == "command.not_modelled"]

    for cmd in (f"{base} --kernel-config '{{\"moe_backend\": \"Marlin\"}}' --moe-backend auto",
                f"{base} --moe-backend auto --kernel-config '{{\"moe_backend\": \"marlin\"}}'"):
        assert read_command(cmd)[1].options["moe_backend"] == "marlin"  # arg_utils: auto leaves the key as it is
    assert read_command(f"{base} --kernel-config '{{\"moe_backend\": null}}'")[1].options.get("moe_backend") is None

def test_kernel_config_linear_backend_per_quant_is_read_as_linear_backend():
    """linear_backend_per_quant is linear_backend for the schemes it names (vLLM 0.34.0 kernels/linear/__init__.py
    _get_linear_backend): no change on an unquantized checkpoint, warned about on a quantized one as
    --linear-backend is."""
    v = shlex.quote('{"linear_backend_per_quant": {"fp8_w8a8": "marlin"}}')
    plain = check_command(f"vllm serve Qwen/Qwen3-0.6B --kernel-config {v}", "h100")
    alone = check_command("vllm serve Qwen/Qwen3-0.6B", "h100")
    assert plain.result.devices[0].weights_bytes == alone.result.devices[0].weights_bytes
    assert not [w for w in plain.warnings if w.code in ("command.not_modelled", "vllm.linear_backend.not_modelled")]
    fp8 = check_command(f"vllm serve Qwen/Qwen3-0.6B --quantization fp8 --kernel-config {v}", "h100")
    assert "vllm.linear_backend.not_modelled" in [w.code for w in fp8.result.warnings]
