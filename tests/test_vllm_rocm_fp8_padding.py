"""vLLM on ROCm pads a pre-quantized FP8 checkpoint's linear weights (vramcalc/vllm/weights.py
rocm_fp8_padding_per_rank) as vLLM 0.33.0's own code does (tests/data/vllm_rocm_fp8_padding_oracle.json,
tools/vllm_rocm_fp8_padding_oracle.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramcalc import check, check_command, load_model
from vramcalc.vllm.weights import rocm_fp8_padding_per_rank

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_rocm_fp8_padding_oracle.json").read_text())


@pytest.mark.parametrize("case", ORACLE["cases"], ids=[f"{c['model']}-tp{c['tp']}" for c in ORACLE["cases"]])
def test_padding_per_rank_is_vllms(case):
    assert rocm_fp8_padding_per_rank(load_model(case["model"]), case["tp"])[0] == case["padding_bytes_rank0"]


def test_the_check_adds_it_on_amd_gpus_only_and_the_variable_turns_it_off():
    case = next(c for c in ORACLE["cases"] if c["model"] == "Qwen/Qwen3-32B-FP8" and c["tp"] == 1)
    rocm = check("Qwen/Qwen3-32B-FP8", "mi300x", engine="vllm", max_model_len=8192).table()[0]["weights_bytes"]
    cuda = check("Qwen/Qwen3-32B-FP8", "h100-sxm", engine="vllm", max_model_len=8192).table()[0]["weights_bytes"]
    assert rocm - cuda == case["padding_bytes_rank0"]  # 1.09 GiB: 3.4% of the checkpoint's weights
    off = check_command("VLLM_ROCM_FP8_PADDING=0 vllm serve Qwen/Qwen3-32B-FP8 --max-model-len 8192",
                        system="mi300x").result
    assert off.table()[0]["weights_bytes"] == cuda
    assert off.command.startswith("VLLM_ROCM_FP8_PADDING=0 vllm serve")  # the command to run keeps the variable


def test_online_fp8_and_unquantized_checkpoints_are_not_padded():
    # --quantization fp8 on a bf16 checkpoint quantizes at load (online/fp8.py) without the padding
    spec = load_model("Qwen/Qwen3-32B")
    assert rocm_fp8_padding_per_rank(spec, 1) == [0]
    on = check("Qwen/Qwen3-32B", "mi300x", engine="vllm", quantization="fp8", max_model_len=8192).table()[0]
    off = check("Qwen/Qwen3-32B", "h100-sxm", engine="vllm", quantization="fp8", max_model_len=8192).table()[0]
    assert on["weights_bytes"] == off["weights_bytes"]
