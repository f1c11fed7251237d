"""4-bit GPTQ / compressed-tensors WNA16 weights on a Strix Halo (gfx1151): vLLM 0.32.0 and later run them on the
RDNA hybrid W4A16 kernel, whose int4 rows are one cache line wider where they alias. Checked against vLLM 0.34.0's
own kernel choice (RDNAHybridW4A16LinearKernel.can_implement) and layout (pack_skinny_int4):
tests/data/vllm_rdna_int4_oracle_v0.34.0.json."""

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.quant import scheme_from_config
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.weights import rdna_int4_pad_per_rank

ORACLE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_rdna_int4_oracle_v0.34.0.json")))
LAYOUT = {(r["gfx_arch"], r["n"], r["k"]): r["storage_bytes"] - r["checkpoint_bytes"] for r in ORACLE["layouts"]}
QWEN3_8B_LINEARS = [(6144, 4096), (4096, 4096), (24576, 4096), (4096, 12288)]  # qkv, o, gate_up, down


def _gptq(group: int, bits: int = 4) -> dict:
    return {"quant_method": "gptq", "bits": bits, "group_size": group, "sym": True, "desc_act": False}


def test_qwen3_8b_gptq_pads_as_vllms_own_layout():
    spec = load("Qwen/Qwen3-8B")
    scheme = scheme_from_config(_gptq(128), spec)
    per_layer = sum(LAYOUT[("gfx1151", n, k)] for n, k in QWEN3_8B_LINEARS)
    assert per_layer > 0
    assert rdna_int4_pad_per_rank(spec, 1, 1, scheme) == [per_layer * spec.num_layers]
    assert all(LAYOUT[("gfx1100", n, k)] == 0 for n, k in QWEN3_8B_LINEARS)  # the pad is gfx1151's alone


@pytest.mark.parametrize("group", [32, 64, 128, 256, -1])
def test_only_the_group_sizes_the_kernel_implements_are_padded(group):
    """Groups of 256 or channel-wise go to the Triton kernel (can_implement refuses them), which keeps the bytes."""
    spec = load("Qwen/Qwen3-8B")
    rows = [r for r in ORACLE["choices"] if r["gfx_arch"] == "gfx1151" and r["weight_type"] == "uint4b8"
            and r["group_size"] == group and r["k"] == 4096]
    pad = rdna_int4_pad_per_rank(spec, 1, 1, scheme_from_config(_gptq(group), spec))[0]
    assert rows and (pad > 0) == rows[0]["rdna_hybrid"]


def test_eight_bit_weights_are_not_the_kernels():
    spec = load("Qwen/Qwen3-8B")
    assert not any(r["rdna_hybrid"] for r in ORACLE["choices"] if r["weight_type"] == "uint8b128")
    assert rdna_int4_pad_per_rank(spec, 1, 1, scheme_from_config(_gptq(128, bits=8), spec)) == [0]


@pytest.mark.parametrize("gpu,version,padded", [("ryzen-ai-max-plus-395", "0.31.0", False),
                                                ("ryzen-ai-max-plus-395", "0.32.0", True),
                                                ("ryzen-ai-max-plus-395", "0.34.0", True),
                                                ("rx-7900-xtx", "0.34.0", False)])
def test_the_engine_counts_it_on_a_strix_halo_from_0_32(gpu, version, padded):
    spec = load("Qwen/Qwen3-8B").model_copy(update={"quantization_config": _gptq(128)})
    per_layer = sum(LAYOUT[("gfx1151", n, k)] for n, k in QWEN3_8B_LINEARS)
    base = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=4096, engine_version="0.31.0"))
    r = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=4096, engine_version=version))
    extra = r.devices[0].weights_bytes - base.devices[0].weights_bytes
    assert extra == (per_layer * spec.num_layers if padded else 0)


GFX11 = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_gfx11_pad_oracle_v0.34.0.json")))


@pytest.mark.parametrize("gpu,gfx,padded", [("ryzen-ai-max-plus-395", "gfx1151", True),
                                            ("radeon-ai-pro-r9700", "gfx1201", False)])
def test_the_dense_prefill_copies_are_laid_out_as_vllms_unquantized_weights(gpu, gfx, padded):
    """--kernel-config '{"rdna_hybrid_w4a16_prefill_dequant": "enable"}' (vLLM 0.34.0): each copy is an [N, K] bf16
    weight that UnquantizedLinearMethod lays out (_cache_dequant_weight), so it weighs what vLLM's own method leaves
    of Qwen3-8B's four linears on that GPU (tests/data/vllm_gfx11_pad_oracle_v0.34.0.json: padded on gfx11 only)."""
    spec = load("Qwen/Qwen3-8B").model_copy(update={"quantization_config": _gptq(128)})
    rows = [r for r in GFX11["rows"] if r["model"] == "Qwen/Qwen3-8B" and r["tp"] == 1 and r["gfx_arch"] == "gfx1151"]
    per_layer = sum(r["storage_bytes_after" if padded else "storage_bytes_before"] for r in rows)
    opts = dict(max_model_len=4096)
    off = check_vllm(spec, find_gpu(gpu), VLLMOptions(**opts)).devices[0].weights_bytes
    on = check_vllm(spec, find_gpu(gpu), VLLMOptions(rdna_w4a16_prefill_dequant=True, **opts)).devices[0].weights_bytes
    assert on - off == per_layer * spec.num_layers


def test_no_copies_where_the_kernel_does_not_run_or_the_release_has_no_key():
    spec = load("Qwen/Qwen3-8B").model_copy(update={"quantization_config": _gptq(128)})
    for gpu, version in (("rx-7900-xtx", "0.34.0"), ("mi300x", "0.34.0"), ("h100-sxm", "0.34.0")):
        a = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=4096, engine_version=version))
        b = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=4096, engine_version=version,
                                                        rdna_w4a16_prefill_dequant=True))
        assert a.devices[0].weights_bytes == b.devices[0].weights_bytes, gpu


def test_copies_that_leave_too_little_refuse_in_vllms_words():
    """_fits_in_memory_budget keeps the unrequested memory, 4 GiB and one request's KV cache free: Qwen3-32B GPTQ's
    copies (about 61 GiB) do not fit a 32 GB Radeon AI PRO R9700, Qwen3-8B's do."""
    words = ("ValueError: Not enough room in the gpu_memory_utilization budget to cache a dequantized W4A16 prefill "
             "weight (kernel_config.rdna_hybrid_w4a16_prefill_dequant) while keeping KV cache for one max_model_len "
             "request. Increase `gpu_memory_utilization`, lower `max_model_len`, or disable it.")
    big = load("Qwen/Qwen3-32B").model_copy(update={"quantization_config": _gptq(128)})
    r = check_vllm(big, find_gpu("radeon-ai-pro-r9700"), VLLMOptions(max_model_len=4096,
                                                                     rdna_w4a16_prefill_dequant=True))
    assert not r.fits and words in [m.text for m in r.errors]
    small = load("Qwen/Qwen3-8B").model_copy(update={"quantization_config": _gptq(128)})
    r = check_vllm(small, find_gpu("radeon-ai-pro-r9700"), VLLMOptions(max_model_len=4096,
                                                                       rdna_w4a16_prefill_dequant=True))
    assert "vllm.rdna.prefill_dequant_budget" not in [m.code for m in r.errors]
