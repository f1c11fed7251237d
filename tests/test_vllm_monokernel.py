"""--monokernel (and --kernel-config's monokernel) on vLLM 0.34.0: vLLM's refusals on MiniMax-M3's ROCm class in its
own words, checked against tests/data/vllm_monokernel_oracle_v0.34.0.json (tools/vllm_monokernel_oracle.py:
EngineArgs.create_engine_config -> specialized_decode_config, and guards.py model_refusals, run on CPU); no effect on
NVIDIA GPUs and on the other families vramcalc reads."""

import json
import os

import pytest

from vramcalc.api import model_source
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, flag_classes
from vramcalc.quant import scheme_from_config
from vramcalc.vllm.engine import VLLMOptions, _minimax_m3_monokernel

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_monokernel_oracle_v0.34.0.json")))
CASES = {r["case"]: r for r in ORACLE["deployment"]}
SPEC = model_source("minimax-m3").spec
# EngineArgs field -> VLLMOptions field
ARGS = {"tensor_parallel_size": "tp", "pipeline_parallel_size": "pp", "data_parallel_size": "data_parallel_size",
        "enable_expert_parallel": "enable_expert_parallel", "kv_cache_dtype": "kv_cache_dtype",
        "block_size": "block_size", "moe_backend": "moe_backend", "attention_config": "attention_config",
        "kv_offloading_size": "kv_offloading_size", "speculative_config": "speculative_config",
        "cpu_offload_gb": "cpu_offload_gb", "enable_return_routed_experts": "enable_return_routed_experts"}


def _opts(args: dict, **extra) -> VLLMOptions:
    return VLLMOptions(monokernel=True, **{ARGS[k]: v for k, v in args.items()}, **extra)


def _mono(opts: VLLMOptions, gpu: str = "mi355x"):
    return _minimax_m3_monokernel(SPEC, opts, find_gpu(gpu), scheme_from_config(SPEC.quantization_config, SPEC),
                                  "0.34.0")


def test_the_fixture_is_vllms():
    assert ORACLE["release"] == "0.34.0" and ORACLE["produced_by"].startswith("tools/vllm_monokernel_oracle.py")
    assert ORACLE["model"] == SPEC.id or ORACLE["model"] in SPEC.id


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_deployment_refusals_are_vllms(case):
    row = CASES[case]
    errors, warnings, torch_b, peer_b = _mono(_opts(row["engine_args"]))
    if row["refusal"] is None:  # taken by DecodeConfig: the model-state stage answers (the bf16 catalog checkpoint)
        assert not any(e.code == "vllm.minimax_m3.monokernel" for e in errors)
        return
    assert [e.text for e in errors] == ["ValueError: " + row["refusal"]]
    assert errors[0].code == "vllm.minimax_m3.monokernel" and not warnings and torch_b == peer_b == 0


@pytest.mark.parametrize("row", ORACLE["model_state"], ids=lambda r: f"{r['gfx_arch']}-fse{r['use_aiter_moe_fse']}")
def test_the_model_state_refusals_are_vllms(row):
    """The bf16 catalog checkpoint past DecodeConfig: every sparse layer refused, then the GPU. Without AITER's MoE
    (VLLM_ROCM_USE_AITER unset) no fused shared expert; on gfx942 AITER's fused shared expert is off either way."""
    gpu = {("gfx950", 256): "mi355x", ("gfx942", 304): "mi300x"}[(row["gfx_arch"], row["compute_units"])]
    taken = CASES["accepted"]["engine_args"]
    if not row["is_fused_shared_expert_enabled"] or row["gfx_arch"] != "gfx950":
        for aiter in ((False, True) if row["gfx_arch"] != "gfx950" else (False,)):
            errors = _mono(_opts(taken, rocm_aiter_moe=aiter), gpu)[0]
            assert [e.text for e in errors] == ["ValueError: " + row["refusal"]], aiter
            assert errors[0].code == "vllm.minimax_m3.monokernel_model"
    else:  # AITER's MoE on gfx950: the layer reason follows VLLM_ROCM_USE_AITER_FUSION_SHARED_EXPERTS, not read;
        errors = _mono(_opts(taken, rocm_aiter_moe=True), gpu)[0]  # both of vLLM's texts are given, still refused
        fse_off = next(r for r in ORACLE["model_state"] if r["gfx_arch"] == "gfx950"
                       and not r["is_fused_shared_expert_enabled"])
        layer = row["refusal"].split(": ", 1)[1].split("; ")[0].replace(" 3 ", " N ")
        other = fse_off["refusal"].split(": ", 1)[1].split("; ")[0].replace(" 3 ", " N ")
        assert len(errors) == 1 and layer in errors[0].text and other in errors[0].text
        assert errors[0].text.startswith("ValueError: MiniMax-M3 specialized decode model unsupported: ")


def test_pasted_commands_on_mi355x_give_vllms_refusal():
    for tp, case in ((8, "defaults_tp8"), (4, "defaults_tp4")):
        r = check_command(f"vllm serve MiniMaxAI/MiniMax-M3 -tp {tp} --monokernel", f"{tp}xmi355x")
        assert not r.fits
        assert [e.text for e in r.result.errors if e.code.startswith("vllm.minimax_m3.monokernel")] == \
            ["ValueError: " + CASES[case]["refusal"]]
        assert not any(w.code == "command.not_modelled" and "monokernel" in w.text for w in r.warnings)
    r = check_command("vllm serve MiniMaxAI/MiniMax-M3 -tp 4 --kernel-config '{\"monokernel\": true}' "
                      "--kv-cache-dtype fp8 --block-size 128 --moe-backend aiter", "4xmi355x")
    assert [e.text for e in r.result.errors if e.code.startswith("vllm.minimax_m3.monokernel")] == \
        ["ValueError: " + CASES["indexer_default"]["refusal"]]
    assert not any(n.startswith("--kernel-config") for n in r.no_effect)


def _same(a, b):
    assert a.fits == b.fits and a.result.kv_cache_tokens == b.result.kv_cache_tokens
    assert a.result.devices == b.result.devices
    assert [e.text for e in a.result.errors] == [e.text for e in b.result.errors]


@pytest.mark.parametrize("cmd,system", [
    ("vllm serve MiniMaxAI/MiniMax-M3 -tp 8", "8xh200"),  # the NVIDIA class never reads it
    ("vllm serve Qwen/Qwen3-8B", "mi355x"),  # another family on ROCm
])
def test_no_effect_where_vllm_does_not_read_it(cmd, system):
    _same(check_command(cmd + " --monokernel", system), check_command(cmd, system))
    _same(check_command(cmd + " --kernel-config '{\"monokernel\": true}'", system), check_command(cmd, system))


def test_the_entry_is_modelled_and_names_its_sources():
    e = flag_classes()["vllm"]["--monokernel"]
    assert e["class"] == "modelled" and e["field"] == "monokernel"
    assert "tests/data/vllm_monokernel_oracle_v0.34.0.json" in e["note"] and "spec.py" in e["note"]
    kc = flag_classes()["vllm"]["--kernel-config"]
    assert "monokernel" in kc["modelled_keys"] and "monokernel" not in (kc.get("no_effect_keys") or [])


def test_where_taken_the_buffers_are_vllms():
    """An MXFP4 checkpoint past DecodeConfig on MI355X with AITER's MoE: the buffers of
    tests/data/vllm_minimax_m3_mono_oracle_v0.34.0.json (vLLM's layout functions) per rank, with the warning that
    the loaded MoE kernel is not told."""
    sd = json.load(open(os.path.join(os.path.dirname(__file__), "data",
                                     "vllm_minimax_m3_mono_oracle_v0.34.0.json")))["specialized_decode"]
    opts = _opts(CASES["accepted"]["engine_args"], rocm_aiter_moe=True)
    errors, warnings, torch_b, peer_b = _minimax_m3_monokernel(
        SPEC, opts, find_gpu("mi355x"), scheme_from_config({"quant_method": "mxfp4"}, SPEC), "0.34.0")
    assert not errors and [w.code for w in warnings] == ["vllm.minimax_m3.monokernel_runner"]
    assert peer_b == sd["peer_bytes"] and torch_b + peer_b == sd["per_rank_bytes"]
    # the same on MI300X: refused for the GPU
    errors = _minimax_m3_monokernel(SPEC, opts, find_gpu("mi300x"), scheme_from_config({"quant_method": "mxfp4"},
                                    SPEC), "0.34.0")[0]
    assert errors and errors[0].text.endswith("; requires CDNA4/gfx950; requires 256 compute units, found 304")


def test_the_flag_and_the_key_combine_as_vllms_parser_does():
    """--no-monokernel undoes an earlier --monokernel (the last one given) but not --kernel-config's key: vLLM's own
    parser and create_engine_config on each tail (the fixture's flags)."""
    import shlex

    from vramcalc.pasted_command import read_command

    for row in ORACLE["flags"]:
        cmd = "vllm serve MiniMaxAI/MiniMax-M3 -tp 4 " + " ".join(shlex.quote(w) for w in row["tail"])
        assert bool(read_command(cmd)[1].options.get("monokernel")) is row["monokernel"], row["tail"]


@pytest.mark.parametrize("system,row", [("4xmi355x", ("gfx950", False)), ("4xmi300x", ("gfx942", False))])
def test_pasted_commands_past_decodeconfig_give_vllms_model_refusal(system, row):
    """Every deployment condition met (--attention-config indexer_kv_dtype fp8 is not modelled, but vLLM refuses the
    bf16 checkpoint anyway): vLLM's model-state refusal, the figures those without the key, said so."""
    base = ("vllm serve MiniMaxAI/MiniMax-M3 -tp 4 --kv-cache-dtype fp8 --block-size 128 --moe-backend aiter "
            "--attention-config '{\"indexer_kv_dtype\": \"fp8\"}'")
    want = next(r for r in ORACLE["model_state"] if (r["gfx_arch"], r["is_fused_shared_expert_enabled"]) == row)
    r = check_command(base + " --monokernel", system)
    assert not r.fits and r.result.errors[0].text == "ValueError: " + want["refusal"]
    assert any(w.code == "vllm.minimax_m3.monokernel_figures" for w in r.result.warnings)
    r8 = check_command(base.replace("-tp 4", "-tp 8") + " --monokernel", "8" + system[1:])
    assert [e.text for e in r8.result.errors if e.code.startswith("vllm.minimax_m3")] == \
        ["ValueError: " + CASES["tp8"]["refusal"]]
