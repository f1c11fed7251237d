"""KV cache and recurrent state per layer kind, against hand-checked values.

Each expected figure is worked out from the published architecture in the comment beside it."""

import pytest

from vramcalc.kv import kv_by_layer_kind, kv_bytes_per_token
from vramcalc.sources.catalog import load

KIB = 1024


def kinds(name, ctx):
    return {k.kind: k for k in kv_by_layer_kind(load(name), ctx)}


def test_llama_3_1_8b_is_128_kib_per_token():
    # 32 layers x 8 KV heads x 128 dims x (K+V) x 2 bytes = 131,072 B
    assert kv_bytes_per_token(load("meta-llama/Llama-3.1-8B")) == 128 * KIB


def test_qwen2_5_7b_is_56_kib_per_token():
    # 28 layers x 4 KV heads x 128 x 2 x 2 B = 57,344 B
    assert kv_bytes_per_token(load("Qwen/Qwen2.5-7B")) == 56 * KIB


def test_deepseek_v3_mla_caches_576_values_per_layer():
    # MLA: one latent of kv_lora_rank 512 + rope 64 per token per layer, not 128 heads of K and V
    k = kinds("deepseek-ai/DeepSeek-V3", 4096)
    assert list(k) == ["mla"] and k["mla"].layers == 61
    assert k["mla"].kv_bytes_per_token == 61 * 576 * 2
    # what a calculator treating it as MHA would claim: 61 x 128 heads x (192 + 128) x 2 B
    assert k["mla"].kv_bytes_per_token < 61 * 128 * 320 * 2 / 70


def test_deepseek_v3_2_adds_the_indexer_cache():
    # DSA indexer K cache: 128 fp8 values + one fp32 scale = 132 B per token per layer
    k = kinds("deepseek-ai/DeepSeek-V3.2", 4096)
    assert k["mla"].kv_bytes_per_token == 61 * (576 * 2 + 132)


def test_gpt_oss_120b_sliding_window_128_on_half_the_layers():
    k = kinds("openai/gpt-oss-120b", 100_000)
    assert k["sliding"].layers == k["full"].layers == 18
    per_layer = 8 * 64 * 2 * 2  # 8 KV heads x head_dim 64 x (K+V) x 2 B
    assert k["sliding"].tokens_held == 128
    assert k["sliding"].kv_bytes == 18 * per_layer * 128
    assert k["full"].kv_bytes == 18 * per_layer * 100_000


def test_gemma_3_27b_window_1024_on_5_of_6_layers():
    k = kinds("google/gemma-3-27b-it", 32_768)
    assert (k["sliding"].layers, k["full"].layers) == (52, 10)
    per_layer = 16 * 128 * 2 * 2  # 16 KV heads x 128 x (K+V) x 2 B
    assert k["sliding"].kv_bytes == 52 * per_layer * 1024
    assert k["full"].kv_bytes == 10 * per_layer * 32_768


def test_short_context_is_not_padded_to_the_window():
    k = kinds("google/gemma-3-27b-it", 100)
    assert k["sliding"].tokens_held == 100


def test_qwen3_next_state_on_linear_layers_kv_on_one_in_four():
    k = kinds("Qwen/Qwen3-Next-80B-A3B-Thinking", 65_536)
    assert (k["gated_deltanet"].layers, k["full"].layers) == (36, 12)
    assert k["gated_deltanet"].kv_bytes == 0
    # GDN state: conv (2 x 16 x 128 + 32 x 128) x (4 - 1) + recurrent 32 x 128 x 128, in bf16
    per_layer_state = ((2 * 16 * 128 + 32 * 128) * 3 + 32 * 128 * 128) * 2
    assert k["gated_deltanet"].state_bytes == 36 * per_layer_state
    assert k["full"].kv_bytes_per_token == 12 * 2 * 256 * 2 * 2  # 2 KV heads x 256 x (K+V) x 2 B


def test_mamba_codestral_has_no_kv_at_all():
    k = kinds("mistralai/Mamba-Codestral-7B-v0.1", 1_000_000)
    assert list(k) == ["mamba2"]
    assert k["mamba2"].kv_bytes == 0
    # conv (8192 + 2 x 8 groups x 128 state) x 3 + ssm 128 heads x 64 x 128, in bf16
    assert k["mamba2"].state_bytes == 64 * ((8192 + 2 * 8 * 128) * 3 + 128 * 64 * 128) * 2


def test_falcon_mamba_state_is_mamba1_shaped():
    k = kinds("tiiuae/falcon-mamba-7b", 10)
    # conv 8192 x 3 + ssm 8192 x 16 state, bf16, 64 layers
    assert k["mamba1"].state_bytes == 64 * (8192 * 3 + 8192 * 16) * 2


def test_zamba2_attention_is_twice_hidden_wide():
    k = kinds("Zyphra/Zamba2-7B", 1)
    # 13 hybrid layers, 32 KV heads x (2 x 3584 / 32 = 224) x (K+V) x 2 B
    assert k["full+mamba2"].kv_bytes_per_token == 13 * 32 * 224 * 2 * 2


def test_gemma4_global_layers_use_their_own_heads_and_dims():
    spec = load("nvidia/Gemma-4-31B-IT-NVFP4")
    full = [layer.attention for layer in spec.layers if layer.attention.kind == "full"]
    sliding = [layer.attention for layer in spec.layers if layer.attention.kind == "sliding"]
    assert len(full) == 10 and len(sliding) == 50
    assert (full[0].num_kv_heads, full[0].head_dim_k, full[0].k_eq_v) == (4, 512, True)
    assert (sliding[0].num_kv_heads, sliding[0].head_dim_k) == (16, 256)


def test_llama4_chunked_layers_are_counted_full_length_as_vllm_allocates_them():
    k = kinds("meta-llama/Llama-4-Scout-17B-16E-Instruct", 100_000)
    assert (k["chunked"].layers, k["full"].layers) == (36, 12)
    assert k["chunked"].tokens_held == 100_000


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.1-8B", "Qwen/Qwen3-Next-80B-A3B-Thinking"])
def test_kv_grows_linearly_with_context(name):
    a = sum(k.kv_bytes for k in kv_by_layer_kind(load(name), 1000))
    b = sum(k.kv_bytes for k in kv_by_layer_kind(load(name), 2000))
    assert b == 2 * a
