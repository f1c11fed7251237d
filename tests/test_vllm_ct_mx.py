"""compressed-tensors MX checkpoints (float weights in groups of 32 with e8m0 scales) against vLLM 0.34.0's own
schemes (tests/data/vllm_ct_mx_oracle_v0.34.0.json, tools/vllm_ct_mx_oracle.py): the scheme vLLM picks, its
minimum compute capability and the parameters it registers for each matrix."""

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.quant import matrix_tensors, scheme_from_config
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.rules import quant_messages

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_ct_mx_oracle_v0.34.0.json")))
# the vLLM scheme class each vramcalc method stands for
SCHEMES = {"ct_mxfp4": ("CompressedTensorsW4A4Mxfp4", "CompressedTensorsW4A8Mxfp4"),
           "ct_mxfp8": ("CompressedTensorsW8A8Mxfp8",), "nvfp4": ("CompressedTensorsW4A4Fp4",)}


@pytest.mark.parametrize("row", ORACLE["rows"], ids=lambda r: f"{r['case']}-{r['out']}x{r['in']}")
def test_each_matrix_holds_the_parameters_vllm_registers(row):
    scheme = scheme_from_config(row["config"])
    assert row["scheme"] in SCHEMES[scheme.method]
    mine = {n: b for n, _, b in matrix_tensors(scheme, row["out"], row["in"])}
    assert mine == {n: p["bytes"] for n, p in row["params"].items()}


@pytest.mark.parametrize("row", [r for r in ORACLE["rows"] if r["out"] == 4096 and r["in"] == 4096],
                         ids=lambda r: r["case"])
def test_refused_below_the_schemes_own_minimum_capability_in_vllms_words(row):
    """compressed-tensors passes get_quant_config from SM 7.0; each layer's scheme then wants its own minimum
    (CompressedTensorsConfig._check_scheme_supported), refused in its words below it and accepted from it."""
    spec = load("Qwen/Qwen3-8B")
    scheme = scheme_from_config(row["config"])
    need = row["min_capability"]
    for cc in ("7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"):
        errors = [m for m in quant_messages(spec, scheme, 1, cc) if m.level == "error"]
        if int(cc.replace(".", "")) < need:
            assert [m.text for m in errors] == [f"Quantization scheme is not supported for the current GPU. Min "
                                                f"capability: {need}. Current capability: {cc.replace('.', '')}."]
        else:
            assert errors == []


def test_a_t4_no_longer_fits_an_mxfp4_checkpoint():
    """Read as NVFP4 (SM 7.5 and up through Marlin) an MXFP4 checkpoint used to fit a T4; vLLM refuses it there,
    while the same model in compressed-tensors MXFP8 (SM 7.5) and NVFP4 start."""
    spec = load("Qwen/Qwen3-8B")
    by_case = {r["case"]: r["config"] for r in ORACLE["rows"]}
    mx4 = check_vllm(spec.model_copy(update={"quantization_config": by_case["mxfp4 weight-only (mxfp4-pack-quantized)"]}),
                     find_gpu("t4"), VLLMOptions(max_model_len=4096))
    assert not mx4.fits and any("Min capability: 80. Current capability: 75." in m.text for m in mx4.errors)
    nv4 = check_vllm(spec.model_copy(update={"quantization_config": by_case["nvfp4 weights (nvfp4-pack-quantized, A16)"]}),
                     find_gpu("t4"), VLLMOptions(max_model_len=4096))
    assert not any(m.code == "vllm.quant.capability" for m in nv4.errors)
