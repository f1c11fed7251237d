"""VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1 on a compressed-tensors MXFP4 checkpoint's linear layers (vLLM 0.34.0
EmulationMxfp4LinearKernel), against vLLM's own CompressedTensorsW4A4Mxfp4 layer on that kernel on CPU
(tests/data/vllm_mxfp4_emulation_dequant_oracle_v0.34.0.json, tools/vllm_mxfp4_emulation_dequant_oracle.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramcalc.quant import matrix_tensors, scheme_from_config
from vramcalc.spec import ModelSpec
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.weights import mxfp4_emulation_dequant_per_rank

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_mxfp4_emulation_dequant_oracle_v0.34.0.json").read_text())
SCHEME = scheme_from_config(ORACLE["config"])


def _bytes(params: dict) -> dict[str, int]:
    return {n: p["storage_bytes"] for n, p in params.items()}


@pytest.mark.parametrize("row", ORACLE["rows"], ids=lambda r: f"{r['VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD']}-"
                                                              f"{r['out']}x{r['in']}")
def test_each_matrix_holds_what_the_emulation_kernel_leaves(row):
    assert SCHEME.method == "ct_mxfp4" and row["kernel"] == "EmulationMxfp4LinearKernel"
    packed = {n: b for n, _, b in matrix_tensors(SCHEME, row["out"], row["in"])}
    assert packed == _bytes(row["before"])
    after = sum(_bytes(row["after"]).values())
    gained = after - sum(packed.values())
    if row["VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD"] == "0":
        assert gained == 0
    else:  # the per-matrix rule mxfp4_emulation_dequant_per_rank sums
        assert gained == 2 * row["out"] * row["in"] - row["out"] * row["in"] // 2
        assert row["after"]["weight_packed"]["dtype"] == "bfloat16"


def _ct_mxfp4(spec: ModelSpec) -> ModelSpec:
    return spec.model_copy(update={"quantization_config": ORACLE["config"]})


def test_counted_below_gfx950_and_with_the_emulation_backend_on_cuda_only():
    spec = _ct_mxfp4(load("Qwen/Qwen3-8B"))
    extra = mxfp4_emulation_dequant_per_rank(spec, 1)[0]
    assert extra > 0

    def weights(gpu: str, **kw) -> tuple[int, list[str]]:
        r = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=4096, **kw))
        return r.devices[0].weights_bytes, [w.code for w in r.warnings]

    base, _ = weights("mi300x")
    on, codes = weights("mi300x", mxfp4_emulation_dequant=True)
    assert on - base == extra and "vllm.mxfp4_emulation.dequant" in codes
    # gfx950: AITER's kernel where aiter is installed, not shown by a command: warned, not counted
    base355, _ = weights("mi355x")
    on355, codes = weights("mi355x", mxfp4_emulation_dequant=True)
    assert on355 == base355 and "vllm.mxfp4_emulation.not_sized" in codes
    # CUDA: Marlin / FlashInfer first, unless --linear-backend emulation
    h, _ = weights("h100-sxm")
    h_on, codes = weights("h100-sxm", mxfp4_emulation_dequant=True)
    assert h_on == h and "vllm.mxfp4_emulation.ignored" in codes
    h_em, _ = weights("h100-sxm", linear_backend="emulation")
    h_em_on, _ = weights("h100-sxm", linear_backend="emulation", mxfp4_emulation_dequant=True)
    assert h_em_on - h_em == extra


def test_no_effect_on_other_checkpoints():
    spec = load("Qwen/Qwen3-8B")
    assert mxfp4_emulation_dequant_per_rank(spec, 1) == [0]
    r = check_vllm(spec, find_gpu("mi300x"), VLLMOptions(max_model_len=4096, mxfp4_emulation_dequant=True))
    assert "vllm.mxfp4_emulation.ignored" in [w.code for w in r.warnings]
