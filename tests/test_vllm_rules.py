"""What vLLM refuses, in its own words (docs/vllm.md#refusals; each text is the one the
vLLM v0.33.0 function named in the message raises)."""

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


def test_attention_backend_follows_vllms_priorities_and_support_checks():
    """platforms/cuda.py _get_backend_priorities, then the first backend that supports the GPU, head
    size and KV dtype; FlashInfer's 394 MiB workspace is a persistent buffer."""
    from vramcalc.gpus import find_gpu
    from vramcalc.vllm.engine import VLLMOptions, check_vllm
    from vramcalc.vllm.rules import attention_backend

    llama = load("llama-3.1-8b")
    pick = lambda gpu, kv="auto": attention_backend(llama, find_gpu(gpu), kv)[0]  # noqa: E731
    assert (pick("h100-sxm"), pick("h100-sxm", "fp8"), pick("rtx3090"), pick("rtx3090", "fp8"), pick("t4"),
            pick("b200")) == ("FLASH_ATTN", "FLASH_ATTN", "FLASH_ATTN", "FLASHINFER", "TRITON_ATTN", "FLASHINFER")
    assert attention_backend(load("deepseek-v2-lite"), find_gpu("h100-sxm"), "auto") == (None, [])  # MLA backends
    assert attention_backend(llama, find_gpu("mi300x"), "auto") == (None, [])  # ROCm has its own selector
    _, msgs = attention_backend(llama, find_gpu("rtx3090"), "fp8")  # FlashAttention's refusal, in vLLM's words
    assert msgs[0].text.startswith("attention backend FLASHINFER: head size 128 runs FLASHINFER (FLASH_ATTN: "
                                   "['kv_cache_dtype not supported', 'FP8 KV requires FA3 (SM90)")
    _, msgs = attention_backend(llama, find_gpu("rtx3090"), "fp8", "0.25.0")  # before the per-layer rules
    assert msgs[0].text.startswith("attention backend FLASHINFER: FLASH_ATTN supports an fp8 KV cache only on SM 9.0")
    auto = check_vllm(llama, find_gpu("rtx3090"), VLLMOptions(max_model_len=8192))
    fp8 = check_vllm(llama, find_gpu("rtx3090"), VLLMOptions(max_model_len=8192, kv_cache_dtype="fp8"))
    assert fp8.devices[0].activation_bytes - auto.devices[0].activation_bytes == 394 * 2**20


def test_bfloat16_needs_sm80_and_some_families_refuse_float16():
    from vramcalc.gpus import find_gpu
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    t4 = find_gpu("t4")
    r = check_vllm(load("llama-3.2-1b"), t4, VLLMOptions(max_model_len=4096, dtype="bfloat16"))
    assert r.errors[0].code == "vllm.dtype.bf16_refused"
    assert r.errors[0].text.startswith("Bfloat16 is only supported on GPUs with compute capability of at least 8.0. "
                                  "Your Tesla T4 GPU has compute capability 7.5.")
    auto = check_vllm(load("llama-3.2-1b"), t4, VLLMOptions(max_model_len=4096))
    half = check_vllm(load("llama-3.2-1b"), t4, VLLMOptions(max_model_len=4096, dtype="float16"))
    assert auto.fits and auto.devices[0].weights_bytes == half.devices[0].weights_bytes  # auto: float16
    # gemma 3 may not run in float16 (_FLOAT16_NOT_SUPPORTED_MODELS): auto falls back to float32
    g_auto = check_vllm(load("gemma-3-1b"), t4, VLLMOptions(max_model_len=4096))
    g_32 = check_vllm(load("gemma-3-1b"), t4, VLLMOptions(max_model_len=4096, dtype="float32"))
    assert g_auto.devices[0].weights_bytes == g_32.devices[0].weights_bytes
    assert any(w.code == "vllm.dtype.bf16_fallback" and "float16 is refused for this family" in w.text
               for w in g_auto.warnings)
    r = check_vllm(load("gemma-3-1b"), find_gpu("rtx4090"), VLLMOptions(max_model_len=4096, dtype="float16"))
    assert r.errors[0].code == "vllm.dtype.float16_refused"
    assert r.errors[0].text.startswith("The model type 'gemma3_text' does not support float16. Reason: Numerical "
                                  "instability. Please use bfloat16 or float32 instead.")


def test_ssm_heads_and_pipeline_stages():
    # Mamba-Codestral: 128 Mamba-2 heads; TP 3 divides neither them nor the 32768 vocab
    t = texts(parallel_messages(load("mamba-codestral-7b-v0.1"), 3))
    assert "128 is not divisible by 3" in t and "32768 is not divisible by 3" in t
    assert not texts(parallel_messages(load("mamba-codestral-7b-v0.1"), 4))
    # Qwen3-Next: 32 GDN value heads under TP 3
    assert "32 is not divisible by 3" in texts(parallel_messages(load("qwen3-next-80b-a3b-thinking"), 3))
    assert texts(parallel_messages(load("llama-3.2-1b"), 1, 17))[0].startswith("pipeline_parallel_size 17 exceeds "
                                                                                "the 16 layers")


def test_bitsandbytes_is_an_out_of_tree_plugin_in_033():
    w = texts(quant_messages(load("llama-3.1-8b"), target_scheme("bnb-nf4"), 1, "8.6"), level="warning")
    assert w and "plugin" in w[0]


def test_moe_width_under_tp_and_gguf_as_a_plugin(tmp_path):
    # Qwen3-30B-A3B at TP 5: its 768-wide experts do not split (FusedMoEConfig), besides heads and vocab
    assert "768 is not divisible by 5" in texts(parallel_messages(load("qwen3-30b-a3b"), 5))
    from llamacpp_models import write_gguf
    from vramcalc.gpus import find_gpu
    from vramcalc.sources import open_model
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    path = write_gguf("qwen3", tmp_path / "m.gguf")
    r = check_vllm(open_model(str(path)).spec, find_gpu("rtx4090"), VLLMOptions(max_model_len=2048))
    assert any(w.code == "vllm.source.gguf_plugin" and w.text.startswith("GGUF in vLLM 0.33 is an out-of-tree plugin")
               for w in r.warnings)
