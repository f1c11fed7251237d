"""VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE: the CUTLASS FP4 MoE kernels' block-scale tensor, held at each MoE layer's
forward with --moe-backend cutlass on NVFP4 experts (tests/data/vllm_fp4_moe_blockscale_oracle_v0.33.0.json: the
scale tensors vLLM 0.33.0's own _custom_ops wrappers allocate, run on meta tensors, and the GPUs CutlassExpertsFp4
runs on)."""

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data",
                                     "vllm_fp4_moe_blockscale_oracle_v0.33.0.json")))
DEEPSEEK = "nvidia/DeepSeek-V3-0324-NVFP4"  # hidden 7168, expert intermediate 2048, top-k 8; ModelOpt NVFP4
GPU_BY_CC = {"7.5": "t4", "8.0": "a100-40gb-pcie", "8.6": "rtx-3060-12gb", "8.9": "rtx-4060-ti-16gb",
             "9.0": "h100-pcie", "10.0": "b200", "10.3": "b300", "12.0": "rtx-5060-ti-16gb", "12.1": "dgx-spark-gb10"}


def _activation(gpu="b200", tp=8, **opts):
    spec = load(DEEPSEEK)
    r = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=8192, tp=tp, max_num_seqs=4, **opts))
    return r.devices[0].activation_bytes, {m.code: m for m in r.warnings + r.errors}


def _oracle_case(hidden, inter, topk, rows):
    return next(c["scale_bytes"] for c in ORACLE["cases"] if (c["hidden"], c["intermediate"], c["topk"],
                                                               c["max_tokens_per_expert"]) == (hidden, inter, topk, rows))


@pytest.mark.parametrize("rows", [163840, 16384, 1024])
@pytest.mark.parametrize("tp, inter", [(8, 256), (1, 2048)])
def test_the_larger_scale_tensor_joins_the_forward_peak(rows, tp, inter):
    """The expert input's tensor (K = 7168) is freed before the down projection's (K = 2048 / TP) is allocated:
    the larger, vLLM's own bytes, is added to the forward (max_num_seqs 4: the forward, not the sampler, peaks)."""
    base, _ = _activation(tp=tp)
    got, codes = _activation(tp=tp, moe_backend="cutlass", max_tokens_per_expert_fp4_moe=rows)
    theirs = _oracle_case(7168, inter, 8, rows)
    assert got - base == max(theirs["nvfp4_input"], theirs["nvfp4_down_silu"], theirs["nvfp4_down_other"])
    assert "vllm.moe.fp4_blockscale" in codes


def test_the_default_is_vllms():
    default, _ = _activation(moe_backend="cutlass")
    given, _ = _activation(moe_backend="cutlass", max_tokens_per_expert_fp4_moe=163840)
    assert default == given and default - _activation()[0] == _oracle_case(7168, 256, 8, 163840)["nvfp4_input"]


@pytest.mark.parametrize("cc", sorted(GPU_BY_CC))
def test_only_where_cutlass_experts_fp4_runs(cc):
    """CutlassExpertsFp4._supports_current_device: the SM 10.x / 11.x / 12.x families (the oracle's answer);
    elsewhere vLLM refuses the explicit backend (select_nvfp4_moe_backend's ValueError)."""
    assert ORACLE["cutlass_kernel"] == ["CutlassExpertsFp4"]
    base, _ = _activation(gpu=GPU_BY_CC[cc], tp=1)
    got, _ = _activation(gpu=GPU_BY_CC[cc], tp=1, moe_backend="cutlass")
    assert (got > base) == ORACLE["cutlass_fp4_devices"][cc]
    _, codes = _activation(gpu=GPU_BY_CC[cc], tp=1, moe_backend="cutlass")
    assert ("vllm.moe.cutlass_fp4_device" in codes) == (not ORACLE["cutlass_fp4_devices"][cc])
    if not ORACLE["cutlass_fp4_devices"][cc]:  # oracle/nvfp4.py _make_log_unsupported, modular_kernel.py _make_reason
        assert codes["vllm.moe.cutlass_fp4_device"].text.startswith(
            "ValueError: NvFp4 MoE backend 'VLLM_CUTLASS' does not support the deployment configuration since kernel "
            "does not support current device ")


def test_not_counted_where_vllm_chooses_and_said_so():
    """vLLM's auto choice puts FlashInfer's kernels first (by the installed package): nothing is added."""
    base, _ = _activation()
    got, codes = _activation(max_tokens_per_expert_fp4_moe=1024)
    assert got == base and "vllm.moe.fp4_blockscale_unsized" in codes and "vllm.moe.fp4_blockscale" not in codes


def test_vllms_assertion_where_the_profile_run_passes_it():
    """_custom_ops.py scaled_fp4_experts_quant asserts tokens x top-k <= VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE x top-k;
    the profile run sends max_num_batched_tokens (here 8192 by --max-num-batched-tokens)."""
    _, codes = _activation(moe_backend="cutlass", max_tokens_per_expert_fp4_moe=1024, max_num_batched_tokens=8192)
    assert codes["vllm.moe.fp4_max_tokens"].level == "error"
    assert codes["vllm.moe.fp4_max_tokens"].text.startswith(
        "AssertionError: m_numtopk must be less than MAX_TOKENS_PER_EXPERT(1024) for cutlass_moe_fp4, observed "
        "m_numtopk = 65536.")
    _, fine = _activation(moe_backend="cutlass", max_tokens_per_expert_fp4_moe=8192, max_num_batched_tokens=8192)
    assert "vllm.moe.fp4_max_tokens" not in fine


def test_the_variable_in_a_pasted_command():
    base = f"vllm serve {DEEPSEEK} -tp 8 --moe-backend cutlass --max-model-len 8192 --max-num-seqs 4"
    on = check_command(base, "8xb200")
    small = check_command("VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE=16384 " + base, "8xb200")
    full = _oracle_case(7168, 256, 8, 163840)["nvfp4_input"]
    assert on.result.devices[0].activation_bytes - small.result.devices[0].activation_bytes == full - full // 10
    assert small.result.command.startswith("VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE=16384 vllm serve")
    assert "--max-tokens-per-expert-fp4-moe 16384" in small.vramcalc_command
