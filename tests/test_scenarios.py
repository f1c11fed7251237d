"""Issue 6's scenarios end to end through `vramcalc check --json`: what the engine would do, in its
own words, and what to do instead. Each assertion names the rule it pins."""

import json

from vramcalc.cli import main


def _check(capsys, *argv):
    code = main(["check", *argv, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == (0 if out["fits"] else 1)
    return out


def test_llama_70b_awq_on_three_3090s_at_tp3(capsys):
    r = _check(capsys, "llama-3.3-70b", "--quant", "awq", "--gpu", "3x3090", "--engine", "vllm", "--tp", "3",
               "--ctx", "8192")
    assert not r["fits"]
    assert r["errors"][0]["code"] == "vllm.parallel.attention_heads"
    assert r["errors"][0]["text"].startswith("Total number of attention heads (64) must be divisible by "
                                             "tensor parallel size (3).")  # vllm/config/model.py verify_with_parallel_config
    assert "8 is not divisible by 3" in r["errors"][1]["text"]  # QKVParallelLinear: 8 KV heads
    # instead: the same AWQ checkpoint at TP=2 on two of the cards (GeForce cards have no P2P, so no custom
    # all-reduce buffers) or with pipeline stages on all three, never TP=3
    assert r["alternatives"][0].startswith(("vllm TP=2, awq:", "vllm TP=1, PP=")) and ", awq:" in r["alternatives"][0]
    assert any(a.startswith("vllm TP=1, PP=3, awq:") for a in r["alternatives"])
    assert not any("--tensor-parallel-size 3" in a for a in r["alternatives"])


def test_fp8_checkpoint_on_a_3090(capsys):
    small = _check(capsys, "llama-3.1-8b", "--quant", "fp8", "--gpu", "3090", "--engine", "vllm", "--ctx", "8192")
    assert small["fits"] and any(w["code"] == "vllm.quant.degraded" and w["text"].startswith(
        "FP8 weights run through Marlin W8A16 below SM 8.9") for w in small["warnings"])
    assert "--quantization fp8" in small["command"]  # vLLM quantizes the bf16 checkpoint as it loads
    big = _check(capsys, "qwen3-30b-a3b-thinking-2507-fp8", "--gpu", "3090", "--engine", "vllm", "--ctx", "8192")
    assert not big["fits"] and any("Marlin W8A16" in w["text"] for w in big["warnings"])
    assert big["errors"][0]["code"] == "vllm.kv.no_memory"
    assert big["errors"][0]["text"].startswith("No available memory for the cache blocks.")
    assert big["alternatives"]  # a smaller quant, or llama.cpp with experts on the CPU


def test_nvfp4_checkpoint_on_a_4090_and_a_5090(capsys):
    ada = _check(capsys, "nvidia/Qwen3-32B-NVFP4", "--gpu", "4090", "--engine", "vllm", "--ctx", "4096")
    assert any(w["code"] == "vllm.quant.degraded" and w["text"].startswith(
        "NVFP4 runs as W4A16 through Marlin FP4 below Blackwell") for w in ada["warnings"])
    blackwell = _check(capsys, "nvidia/Qwen3-32B-NVFP4", "--gpu", "5090", "--engine", "vllm", "--ctx", "4096")
    assert blackwell["fits"] and not any(w["code"] == "vllm.quant.degraded" for w in blackwell["warnings"])
    # the ModelOpt export's kv_cache_quant_algo FP8: --kv-cache-dtype auto is fp8, 1 byte per element
    per_token = 64 * 2 * 8 * 128  # layers x (K, V) x KV heads x head_dim
    assert blackwell["kv_cache_tokens"] * per_token <= blackwell["devices"][0]["kv_cache_bytes"] + 16 * per_token


def test_phi3_medium_at_tp4(capsys):
    r = _check(capsys, "phi-3-medium-4k", "--gpu", "4x3090", "--engine", "vllm", "--tp", "4")
    assert not r["fits"] and r["errors"][0]["code"] == "vllm.parallel.kv_heads"
    assert r["errors"][0]["text"].startswith("10 is not divisible by 4")  # 10 KV heads
    assert r["alternatives"][0].startswith("vllm TP=2") and "as the checkpoint is" in r["alternatives"][0]


def test_qwen3_32b_on_a_128gb_strix_halo(capsys):
    vk = _check(capsys, "qwen3-32b", "--gpu", "strix-halo", "--engine", "llamacpp", "--backend", "vulkan",
                "--quant", "gguf:Q4_K_M", "--ctx", "32768")
    assert vk["fits"] and vk["backend"] == "vulkan" and vk["n_gpu_layers"] == 65
    # the GTT pool (~124 GiB), not the 0.5-4 GiB carve-out, less llama.cpp's 1 GiB --fit margin
    assert vk["devices"][0]["available_bytes"] == (124 - 1) * 2**30
    vl = _check(capsys, "qwen3-32b", "--gpu", "strix-halo", "--engine", "vllm", "--ctx", "32768")
    assert vl["fits"]
    assert any(w["code"] == "vllm.platform.rocm_version"
               and w["text"].startswith("vLLM on ROCm 7.0.2 or later for gfx1151") for w in vl["warnings"])
    # the APU budget caveat
    assert any(w["code"] == "vllm.platform.rocm_unified" and "needs a shim" in w["text"] for w in vl["warnings"])


def test_70b_q4_k_m_across_a_4090_and_a_3060(capsys):
    r = _check(capsys, "llama-3.3-70b", "--gpu", "4090,3060-12gb", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M",
               "--ctx", "8192", "--ram", "64")
    gpu0, gpu1, host = r["devices"]
    assert r["fits"] and r["split_mode"] == "layer" and r["n_gpu_layers"] < 81  # partial offload, solved
    assert r["max_gpu_layers"] == r["n_gpu_layers"]  # -ngl auto took the largest that fits
    assert gpu0["model_buffer_bytes"] > gpu1["model_buffer_bytes"] > 0 and host["model_buffer_bytes"] > 0
    assert f"-ngl {r['n_gpu_layers']} -fa on -sm layer --fit off" in r["command"]


def test_vllm_on_apple_is_refused_with_the_fix(capsys):
    r = _check(capsys, "qwen3-8b", "--gpu", "m4-max", "--engine", "vllm", "--ctx", "8192")
    assert not r["fits"] and r["errors"][0]["code"] == "vllm.platform.metal"
    assert r["errors"][0]["text"].startswith("vLLM has no Metal backend")
    assert r["alternatives"][0].startswith("llama.cpp")
