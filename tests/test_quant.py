"""Checkpoint bytes per quantization format against real checkpoints' recorded statistics
(stored element counts and file sizes from the catalog entries' sources)."""

import json
import os

import pytest

from conftest import catalog_config
from vramcalc.errors import NotModelledError
from vramcalc.quant import QuantScheme, matrix_tensors, quantized_bytes, scheme_from_config
from vramcalc.sources.catalog import load
from vramcalc.sources.hf_config import spec_from_config

GIB = 2**30


def test_deepseek_v32_fp8_block_stored_elements_exact():
    # 685,396,921,376 stored elements (163 files, 642.13 GiB) incl. the MTP layer and fp32 block scales
    q = quantized_bytes(load("deepseek-ai/DeepSeek-V3.2"), include_mtp=True)
    assert q.stored_elements == 685_396_921_376
    assert abs(q.total / GIB - 642.13) < 0.02  # the rest: 163 safetensors headers


def test_kimi_k2_fp8_block_stored_elements():
    # 1,026,470,731,056 stored elements incl. "small rotary inv_freq buffers" (not weights; we do
    # not count them): within 64 elements per layer; 958.51 GiB over 61 files
    q = quantized_bytes(load("moonshotai/Kimi-K2-Instruct"), include_mtp=True)
    assert 0 <= 1_026_470_731_056 - q.stored_elements <= 64 * 61
    assert abs(q.total / GIB - 958.51) < 0.05


def test_qwen3_30b_fp8_block_stored_elements_exact():
    # The catalog copy lacks num_experts; its notes quote num_local_experts 128 from the same file.
    cfg = {**catalog_config("Qwen__Qwen3-30B-A3B-Thinking-2507-FP8"), "num_experts": 128}
    q = quantized_bytes(spec_from_config(cfg, model_id="x", source="t"))
    assert q.stored_elements == 30_533_947_392  # as the report counts them
    assert round(q.total / GIB, 2) == 29.03  # 4 files totalling 29.03 GiB
    # modules_to_not_convert keeps lm_head and the routers (mlp.gate) in bf16
    assert q.by_group["router"] == 48 * 128 * 2048 * 2 and q.by_group["lm_head"] == 151936 * 2048 * 2


def test_gptq_int4_file_size():
    # Qwen2.5-Coder-1.5B-Instruct-GPTQ-Int4: model.safetensors is 1,149,862,960 bytes and holds
    # 233,518,592 F16 elements. The copy lacks vocab_size; that F16 count gives it: (233,518,592 -
    # 87,552 norm - 57,344 bias elements) / 1536 = 151,936, with tied embeddings.
    cfg = {**catalog_config("Qwen__Qwen2.5-Coder-1.5B-Instruct-GPTQ-Int4"), "vocab_size": 151936,
           "tie_word_embeddings": True}
    q = quantized_bytes(spec_from_config(cfg, model_id="x", source="t"))
    assert q.unquantized_params == 233_518_592
    header = 1_149_862_960 - q.total
    assert 0 < header < 926 * 120  # 926 tensors' header entries of ~110 bytes


def test_gpt_oss_mxfp4_quantizes_experts_only():
    spec = load("openai/gpt-oss-120b")
    q = quantized_bytes(spec)
    experts = 36 * 128 * 3 * 2880 * 2880
    assert q.quantized_params == experts
    assert q.by_group["routed_experts"] == experts * 17 // 32 + 36 * 128 * (2 * 2880 + 2880) * 2  # + bf16 biases
    bf16 = quantized_bytes(spec, QuantScheme(method="none"))
    assert q.by_group["attention"] == bf16.by_group["attention"]


def test_nvfp4_ignore_list_keeps_listed_attention_in_bf16():
    spec = load("nvidia/Gemma-4-31B-IT-NVFP4")
    q = quantized_bytes(spec)
    bf16 = quantized_bytes(spec, QuantScheme(method="none"))
    assert q.scheme.method == "modelopt_nvfp4"  # quant_method "modelopt": ModelOpt's NVFP4 export
    assert q.by_group["attention"] == bf16.by_group["attention"]  # every layer's self_attn is ignored
    assert q.by_group["dense_mlp"] < bf16.by_group["dense_mlp"] * 0.3


def test_compressed_tensors_int4_regex_ignores():
    # Kimi-K2-Thinking's quantization_config on the Kimi-K2 architecture: routed experts int4
    # (group 32); self_attn, shared experts and the dense MLP of layer 0 ignored by regex
    spec = load("moonshotai/Kimi-K2-Instruct")
    spec = spec.model_copy(update={"quantization_config": catalog_config("moonshotai__Kimi-K2-Thinking")[
        "quantization_config"]})
    q = quantized_bytes(spec)
    bf16 = quantized_bytes(spec, QuantScheme(method="none"))
    assert q.scheme.method == "int_pack" and q.scheme.group_size == 32
    for group in ("attention", "shared_experts", "dense_mlp", "lm_head", "embeddings"):
        assert q.by_group[group] == bf16.by_group[group], group
    # 4 bits + one bf16 scale per 32 values = 4.5 bits per routed-expert weight
    assert q.by_group["routed_experts"] == pytest.approx(bf16.by_group["routed_experts"] * 4.5 / 16, rel=1e-3)


@pytest.mark.parametrize("scheme,out,inp,expected", [
    # GPTQ 4-bit g128: qweight in/8 x out int32, qzeros (in/128) x out/8 int32, scales fp16, g_idx in int32
    (QuantScheme(method="gptq", bits=4, group_size=128), 4096, 4096, 4096 * 4096 // 2 + 32 * 512 * 4 + 32 * 4096 * 2 + 4096 * 4),
    # AWQ 4-bit g128 with zero points: no g_idx
    (QuantScheme(method="awq", bits=4, group_size=128, zero_point=True), 4096, 4096,
     4096 * 4096 // 2 + 32 * 4096 * 2 + 32 * 512 * 4),
    # FP8 128x128 blocks with fp32 inverse scales
    (QuantScheme(method="fp8_block", bits=8, block=(128, 128), scale_dtype="float32"), 1536, 7168, 1536 * 7168 + 12 * 56 * 4),
    # NVFP4: 2 values per byte, fp8 scale per 16, fp32 global scale (+ input scale)
    (QuantScheme(method="modelopt_nvfp4", bits=4, group_size=16, static_input_scale=True), 64, 64, 2048 + 256 + 8),
    # MXFP4: 16 bytes + one e8m0 scale per 32 values
    (QuantScheme(method="mxfp4", bits=4, group_size=32), 2880, 2880, 2880 * 2880 * 17 // 32),
    # bitsandbytes NF4 with double quantization, blocks of 64 (as bitsandbytes 0.50 writes it): packed
    # weight, uint8 absmax, fp32 nested absmax per 256 blocks, 256-entry nested and 16-entry code
    # books, and the quant state as JSON (its float nested_offset taken as 19 characters)
    (QuantScheme(method="bnb_nf4", bits=4, group_size=64, double_quant=True), 4096, 4096,
     4096 * 4096 // 2 + 262144 + 1024 * 4 + 256 * 4 + 16 * 4
     + len('{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 4096], '
           '"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0XXXXXXXXXXXXXXXX}')),
])
def test_per_matrix_storage(scheme, out, inp, expected):
    assert sum(b for _, _, b in matrix_tensors(scheme, out, inp)) == expected


def test_unmodelled_method_is_refused():
    with pytest.raises(NotModelledError, match="not modelled"):
        scheme_from_config({"quant_method": "hqq"})


def test_awq_config_parses():
    s = scheme_from_config(catalog_config("Qwen__Qwen3-32B-AWQ")["quantization_config"])
    assert (s.method, s.bits, s.group_size, s.zero_point) == ("awq", 4, 128, True)


MXFP8 = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_mxfp8_oracle_v0.33.0.json")))


@pytest.mark.parametrize("row", MXFP8["rows"], ids=[f"{r['config']['quant_method']}-{r['out']}x{r['in']}"
                                                     for r in MXFP8["rows"]])
def test_mxfp8_matrix_equals_the_parameters_vllm_registers(row):
    """ModelOpt MXFP8 (either config form) against vLLM 0.33.0's own ReplicatedLinear on the meta device:
    an e4m3 weight and a uint8 e8m0 scale per 32 inputs, read before as per-tensor FP8 (3% fewer bytes)."""
    qc = row["config"] if row["config"]["quant_method"] == "mxfp8" else \
        {"quant_method": "modelopt", **row["config"]["quantization"]}  # as hf_quant_config.json is read
    scheme = scheme_from_config(qc)
    assert scheme.method == "mxfp8"
    ours = {name: (dtype, nbytes) for name, dtype, nbytes in matrix_tensors(scheme, row["out"], row["in"])}
    theirs = {name: ({"float8_e4m3fn": "F8_E4M3", "uint8": "U8"}[p["dtype"]], p["bytes"])
              for name, p in row["params"].items()}
    assert ours == theirs


def test_mxfp8_on_each_gpu_generation_as_vllm_gates_it():
    """ModelOptMxFp8Config.get_min_capability is 80 (vLLM 0.33.0); Marlin below SM 10.0, FlashInfer from it."""
    from vramcalc.vllm.rules import quant_messages
    spec = load("Qwen/Qwen3-8B")
    scheme = scheme_from_config({"quant_method": "modelopt", "quant_algo": "MXFP8"})
    codes = {cc: [m.code for m in quant_messages(spec, scheme, 1, cc)] for cc in ("7.5", "8.6", "9.0", "10.0")}
    assert codes == {"7.5": ["vllm.quant.capability"], "8.6": ["vllm.quant.degraded"], "9.0": ["vllm.quant.degraded"],
                     "10.0": []}
    assert "Minimum capability: 80. Current capability: 75." in quant_messages(spec, scheme, 1, "7.5")[0].text


def test_modelopt_checkpoints_prefill_on_their_own_formats_kernels():
    """An hf_quant_config.json checkpoint (quant_method modelopt) runs its algorithm's GEMM, not bf16's."""
    from vramcalc.serving import weight_format
    assert weight_format(None, load("nvidia/MiniMax-M2.5-NVFP4")) == "nvfp4"
    fp8 = load("Qwen/Qwen3-8B").model_copy(update={"quantization_config": {"quant_method": "modelopt",
                                                                            "quant_algo": "FP8"}})
    assert weight_format(None, fp8) == "fp8"
