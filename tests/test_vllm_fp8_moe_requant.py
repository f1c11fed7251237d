"""VLLM_FP8_MOE_REQUANT=mxfp4 / VLLM_FP8_MOE_REQUANT_ACT (vLLM 0.34.0, ROCm): a block-FP8 checkpoint's routed experts
re-quantized to MXFP4 at load, against vLLM's own MoE layer built and loaded on CPU
(tests/data/vllm_fp8_moe_requant_oracle_v0.34.0.json, tools/vllm_fp8_moe_requant_oracle.py): the backend vLLM picks,
the bytes each layout holds, and create_weights' refusal."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vramcalc import check_command, load_model
from vramcalc.quant import matrix_tensors, scheme_from_config
from vramcalc.vllm.weights import (fp8_moe_requant_layer_bytes, fp8_moe_requant_per_rank, fp8_moe_requant_refusal,
                                   weights_per_rank)

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_fp8_moe_requant_oracle_v0.34.0.json").read_text())
ROCM_ROWS = [r for r in ORACLE["rows"] if r["VLLM_ROCM_USE_AITER"] == "1"]  # the others stop at the CPU build's FP8
BACKENDS = {"AITER_MXFP4_MXFP4": "aiter_mxfp4_mxfp4", "AITER_TRITON_MXFP4_BF16": "aiter_triton_mxfp4_bf16"}
FP8 = scheme_from_config({"quant_method": "fp8", "weight_block_size": [128, 128], "activation_scheme": "dynamic"})


def _id(r: dict) -> str:
    return f"{r['case']}-{r['act']}-{r['gfx_arch']}"


def _vramcalc_backend(r: dict) -> str:
    """The backend vramcalc takes for the row (engine.py _fp8_moe_requant), AITER's MoE on."""
    if r["act"] == "a16w4":
        return "AITER_TRITON_MXFP4_BF16"
    return "AITER_MXFP4_MXFP4" if r["gfx_arch"] == "gfx950" else "AITER_TRITON_MXFP4_BF16"  # without amd-quark


@pytest.mark.parametrize("row", ROCM_ROWS, ids=_id)
def test_the_backend_is_the_one_vllm_picks(row):
    # a8w4 and a4w4 alike: Mxfp4OnlineMoEMethod asks for MXFP4 activations whatever the variable says
    assert row["backend"] == _vramcalc_backend(row)


@pytest.mark.parametrize("row", [r for r in ROCM_ROWS if "mxfp4_bytes" in r], ids=_id)
def test_each_layout_holds_the_bytes_vllm_leaves(row):
    e, h, i = row["experts"], row["hidden"], row["intermediate_per_partition"]
    backend = BACKENDS[row["backend"]]
    assert fp8_moe_requant_refusal(h, i, backend) is None
    assert fp8_moe_requant_layer_bytes(e * 2 * i, h, e * h, i, backend) == row["mxfp4_bytes"]
    # what vramcalc counts for the FP8 experts is what create_weights registers
    fp8 = sum(b for _, _, b in matrix_tensors(FP8, i, h)) * 2 * e + sum(b for _, _, b in matrix_tensors(FP8, h, i)) * e
    assert fp8 == sum(p["bytes"] for p in row["fp8_params"].values())


@pytest.mark.parametrize("row", [r for r in ROCM_ROWS if "error" in r], ids=_id)
def test_create_weights_refuses_dims_the_backend_would_round(row):
    got = re.search(r"got (\d+)x(\d+)", row["error"])
    assert got and row["error"].startswith("ValueError: FP8 -> MXFP4 re-quant does not pad expert dims")
    refused = fp8_moe_requant_refusal(row["hidden"], row["intermediate_per_partition"], BACKENDS[row["backend"]])
    assert refused == (int(got.group(1)), int(got.group(2)))


def test_the_e8m0_padding_shows_where_the_intermediate_is_not_a_multiple_of_256():
    row = next(r for r in ROCM_ROWS if r["case"] == "i384" and r["act"] == "a8w4")
    plain = fp8_moe_requant_layer_bytes(8 * 2 * 384, 512, 8 * 512, 384, "emulation")
    assert row["mxfp4_bytes"] - plain == 8 * 512 * (16 - 12)  # w2's 12 scale columns padded to 16


CMD = "vllm serve Qwen/Qwen3-30B-A3B-FP8 --max-model-len 8192"


def _weights(command: str, system: str) -> int:
    return check_command(command, system=system).result.table()[0]["weights_bytes"]


def test_on_an_mi355x_with_aiter_the_experts_are_counted_as_mxfp4():
    spec = load_model("Qwen/Qwen3-30B-A3B-FP8")
    delta, peak, refused = fp8_moe_requant_per_rank(spec, 1)
    assert refused is None and delta[0] < 0 and peak[0] > 0
    r = check_command("VLLM_FP8_MOE_REQUANT=mxfp4 VLLM_ROCM_USE_AITER=1 " + CMD, system="mi355x")
    assert r.result.table()[0]["weights_bytes"] == _weights(CMD, "mi355x") + delta[0]
    assert r.result.command.startswith("VLLM_FP8_MOE_REQUANT=mxfp4 VLLM_ROCM_USE_AITER=1 vllm serve")
    assert "--fp8-moe-requant" in r.vramcalc_command and "VLLM_ROCM_USE_AITER" not in r.no_effect
    assert any(w.code == "vllm.fp8_moe_requant.sized" for w in r.result.warnings)
    # the experts are about half their FP8 bytes: 30.5B parameters, 29 GiB of FP8 checkpoint
    assert 0.4 < -delta[0] / weights_per_rank(spec, 1)[0].bytes < 0.5


def test_not_read_on_cuda_nor_in_upper_case_nor_without_aiter_sized():
    cuda = check_command("VLLM_FP8_MOE_REQUANT=mxfp4 " + CMD, system="h100-sxm")
    assert cuda.result.table()[0]["weights_bytes"] == _weights(CMD, "h100-sxm")
    assert any(w.code == "vllm.fp8_moe_requant.ignored" for w in cuda.result.warnings)
    upper = check_command("VLLM_FP8_MOE_REQUANT=MXFP4 " + CMD, system="mi355x")
    assert "VLLM_FP8_MOE_REQUANT" in upper.no_effect
    assert upper.result.table()[0]["weights_bytes"] == _weights(CMD, "mi355x")
    # without VLLM_ROCM_USE_AITER the backend follows packages a command does not show: FP8 bytes, an upper bound
    off = check_command("VLLM_FP8_MOE_REQUANT=mxfp4 " + CMD, system="mi355x")
    assert off.result.table()[0]["weights_bytes"] == _weights(CMD, "mi355x")
    assert any(w.code == "vllm.fp8_moe_requant.not_sized" for w in off.result.warnings)
    act = check_command("VLLM_FP8_MOE_REQUANT_ACT=a4w4 " + CMD, system="mi355x")
    assert "VLLM_FP8_MOE_REQUANT_ACT" in act.no_effect  # not read without VLLM_FP8_MOE_REQUANT=mxfp4


def test_a16w4_at_tp2_is_refused_as_vllm_refuses_it():
    r = check_command("VLLM_FP8_MOE_REQUANT=mxfp4 VLLM_FP8_MOE_REQUANT_ACT=a16w4 VLLM_ROCM_USE_AITER=1 " + CMD +
                      " -tp 2", system="2xmi355x")
    assert not r.fits
    errs = [e for e in r.result.errors if e.code == "vllm.fp8_moe_requant.refused"]
    assert errs and errs[0].text.endswith("got 2048x512")  # 384 intermediate per partition, 256-aligned


def test_direct_reload_refuses_the_online_moe_method():
    r = check_command("VLLM_RELOAD_MODE=direct VLLM_FP8_MOE_REQUANT=mxfp4 VLLM_ROCM_USE_AITER=1 " + CMD,
                      system="mi355x")
    assert [e.text.split(" (")[0] for e in r.result.errors if e.code == "vllm.reload_mode.refused"] == [
        "RuntimeError: direct reload: online quantization is not supported"]


def test_the_load_peak_is_the_mxfp4_model_plus_one_layers_fp8_experts():
    from vramcalc.gpus import find_gpu
    from vramcalc.vllm.engine import VLLMOptions, _startup_free, check_vllm

    spec = load_model("Qwen/Qwen3-30B-A3B-FP8")
    opts = VLLMOptions(max_model_len=8192, fp8_moe_requant=True, rocm_aiter_moe=True)
    gpu = find_gpu("mi355x")
    weights = check_vllm(spec, gpu, opts).devices[0].weights_bytes
    layer = fp8_moe_requant_per_rank(spec, 1)[1][0]  # 576 MiB: one layer's 128 FP8 experts and block scales
    free = _startup_free(gpu, 1, 1)[0]

    def codes(room: int) -> list[str]:  # a GPU whose memory free at start-up is the MXFP4 weights and `room`
        total = gpu.usable_bytes or gpu.memory_bytes
        smaller = gpu.model_copy(update={"usable_bytes": total - (free - weights - room)})
        r = check_vllm(spec, smaller, opts)
        return [e.code for e in r.errors]

    assert "vllm.fp8_moe_requant.load_oom" in codes(layer - 2**20)
    assert "vllm.fp8_moe_requant.load_oom" not in codes(layer + 2**20)
