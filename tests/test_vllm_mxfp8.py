"""MXFP8 checkpoints on AMD GPUs without native MX: vLLM 0.33.0's emulation kernel dequantizes the weights to bf16
at load unless VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0 (tests/data/vllm_mxfp8_oracle_v0.33.0.json, emulated: the
parameters vLLM's own EmulationMxfp8LinearKernel leaves, run on CPU tensors)."""

import json
import os

import pytest

from conftest import catalog_config
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command
from vramcalc.quant import matrix_tensors, scheme_from_config
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_mxfp8_oracle_v0.33.0.json")))
MXFP8 = {"quant_method": "mxfp8", "ignored_layers": ["lm_head"]}


@pytest.mark.parametrize("row", ORACLE["emulated"], ids=lambda r: f"{r['VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD']}-"
                                                                  f"{r['out']}x{r['in']}")
def test_what_the_emulation_kernel_leaves_of_one_matrix(row):
    """Dequantized: a bf16 weight (one byte more a weight than the checkpoint's e4m3) and the e8m0 scales kept;
    with the variable 0, the checkpoint's own two tensors."""
    stored = {n: b for n, _, b in matrix_tensors(scheme_from_config(MXFP8), row["out"], row["in"])}
    theirs = {n: p["bytes"] for n, p in row["params"].items()}
    gain = row["out"] * row["in"] if row["VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD"] == "1" else 0
    assert theirs == {"weight": stored["weight"] + gain, "weight_scale": stored["weight_scale"]}


def _weights(gpu, **opts):
    spec = load("Qwen/Qwen3-8B").model_copy(update={"quantization_config": MXFP8})
    r = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=8192, **opts))
    return r.devices[0].weights_bytes, [w.code for w in r.warnings]


def test_an_mi300x_holds_the_dequantized_weights_an_mi355x_does_not():
    """gfx942 has no native MX kernel (rocm_native.py is_supported: supports_mx, gfx95x): every quantized weight
    at bf16, so the checkpoint weighs the bf16 model plus its e8m0 scales; gfx950 keeps the checkpoint's bytes."""
    bf16 = check_vllm(load("Qwen/Qwen3-8B"), find_gpu("mi300x"), VLLMOptions(max_model_len=8192)).devices[0].weights_bytes
    emulated, codes = _weights("mi300x")
    native, native_codes = _weights("mi355x")
    kept, _ = _weights("mi300x", mxfp8_emulation_dequant=False)
    scales = emulated - bf16
    assert "vllm.quant.mxfp8_emulated" in codes and "vllm.quant.mxfp8_emulated" not in native_codes
    assert kept == native and scales > 0
    # 6.95B quantized weights: one byte each more; their e8m0 scales, one per 32, the same either way
    assert 6.9e9 < emulated - kept < 7.0e9 and abs(scales - (emulated - kept) / 32) < 1e6


def test_the_variable_in_a_pasted_command(tmp_path):
    cfg = {**catalog_config("Qwen__Qwen3-8B"), "quantization_config": MXFP8}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    base = f"vllm serve {tmp_path} --max-model-len 8192"
    on = check_command(base, "mi300x")
    off = check_command("VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0 " + base, "mi300x")
    assert 6.9e9 < on.result.devices[0].weights_bytes - off.result.devices[0].weights_bytes < 7.0e9
    assert off.result.command.startswith("VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0 vllm serve")
    assert "--no-mxfp8-emulation-dequant" in off.vramcalc_command
