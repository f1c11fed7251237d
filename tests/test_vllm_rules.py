"""What vLLM refuses, in its own words (texts from vllm_rules.md sections 3-4, which quote the
vLLM source named in each message)."""

from vramcalc.quant import scheme_from_config, target_scheme
from vramcalc.sources.catalog import load
from vramcalc.vllm.rules import parallel_messages, quant_messages


def texts(msgs, level="error"):
    return [m.text for m in msgs if m.level == level]


def test_tp3_on_llama_70b():
    t = texts(parallel_messages(load("llama-3.3-70b"), 3))
    assert "Total number of attention heads (64) must be divisible by tensor parallel size (3)." in t
    assert "8 is not divisible by 3" in t  # QKVParallelLinear: KV heads
    assert not texts(parallel_messages(load("llama-3.3-70b"), 4))


def test_vocab_must_divide_after_padding():
    # 151936 (Qwen3) is not divisible by 3; 128256 (Llama 3) would be, were it not for the heads
    assert "151936 is not divisible by 3" in texts(parallel_messages(load("qwen3-32b"), 3))


def test_kv_heads_fewer_than_tp_must_divide_it():
    # Qwen3-30B-A3B has 4 KV heads: TP 8 replicates them (fine), TP 6 cannot
    assert not [t for t in texts(parallel_messages(load("qwen3-30b-a3b"), 8)) if "is not divisible" in t and t.startswith("8")]
    assert "6 is not divisible by 4" in texts(parallel_messages(load("qwen3-30b-a3b"), 6))


def test_awq_qwen_72b_at_tp8_marlin_shape():
    # the intermediate 29568 / 8 = 3696 is not a multiple of Marlin's 128-wide k tile
    t = texts(quant_messages(load("qwen2.5-72b-instruct"), target_scheme("awq"), 8, "9.0"))
    assert ("Weight input_size_per_partition = 3696 is not divisible by min_thread_k = 128. Consider reducing "
            "tensor_parallel_size or running with --quantization gptq.") in t
    # TP 4 fails too (7392 % 128 = 96); TP 1 is fine. This is why Qwen's own AWQ/GPTQ 72B releases pad
    # intermediate_size to 29696 (= 29 x 1024): then TP 8 gives 3712 = 29 x 128
    assert "7392" in texts(quant_messages(load("qwen2.5-72b-instruct"), target_scheme("awq"), 4, "9.0"))[0]
    assert not texts(quant_messages(load("qwen2.5-72b-instruct"), target_scheme("awq"), 1, "9.0"))
    padded = load("qwen2.5-72b-instruct")
    padded = padded.model_copy(update={"layers": tuple(layer.model_copy(update={"mlp": layer.mlp.model_copy(
        update={"intermediate_size": 29696})}) for layer in padded.layers)})
    assert not texts(quant_messages(padded, target_scheme("awq"), 8, "9.0"))


def test_fp8_on_ampere_is_weight_only_with_a_warning():
    msgs = quant_messages(load("qwen3-32b"), target_scheme("fp8"), 1, "8.6")
    assert not texts(msgs) and "Marlin W8A16" in texts(msgs, "warning")[0]
    assert not quant_messages(load("qwen3-32b"), target_scheme("fp8"), 1, "8.9")


def test_nvfp4_native_only_on_blackwell():
    assert "W4A16" in texts(quant_messages(load("qwen3-32b"), target_scheme("nvfp4"), 1, "8.9"), "warning")[0]
    assert not quant_messages(load("qwen3-32b"), target_scheme("nvfp4"), 1, "12.0")


def test_mxfp4_refused_on_turing():
    spec = load("gpt-oss-20b")
    t = texts(quant_messages(spec, scheme_from_config(spec.quantization_config), 1, "7.5"))
    assert t == ["The quantization method mxfp4 is not supported for the current GPU. Minimum capability: 80. "
                 "Current capability: 75."]


def test_fp8_block_shapes_under_tp():
    spec = load("deepseek-v3")
    scheme = scheme_from_config(spec.quantization_config)
    assert not texts(quant_messages(spec, scheme, 16, "9.0"))  # 2048 / 16 = 128: fine
    assert ("Weight input_size_per_partition = 64 is not divisible by weight quantization block_k = 128."
            in texts(quant_messages(spec, scheme, 32, "9.0")))  # experts' 2048 / 32
