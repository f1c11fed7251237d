"""--attention-backend / --attention-config against vLLM 0.33.0's own selector run on the CPU
(tests/data/vllm_attention_backend_oracle_v0.33.0.json, tools/vllm_attention_backend_oracle.py): the selected
backend validated alone, and refused in vLLM's words where it does not run."""

import json
import os

import pytest

from vramcalc.errors import InputError, NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.rules import attention_backend

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_attention_backend_oracle_v0.33.0.json")))
GPU = {"7.0": "v100", "7.5": "t4", "8.0": "a100", "8.6": "3090", "8.9": "4090", "9.0": "h100-sxm", "10.0": "b200",
       "12.0": "5090"}


def _spec(head):
    """Qwen3-8B with every attention layer's head size set to the case's."""
    s = load("Qwen/Qwen3-8B")
    layers = [la.model_copy(update={"attention": la.attention.model_copy(update={"head_dim_k": head, "head_dim_v": head})})
              if la.attention is not None else la for la in s.layers]
    return s.model_copy(update={"layers": layers})


def _id(c):
    return f"{c['backend']}-sm{c['compute_capability']}-h{c['head_size']}-{c['kv_cache_dtype']}"


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["cases"]) >= 12
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_attention_backend_oracle.py" in FIXTURE["produced_by"]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_selected_backend_as_vllm_judges_it(c):
    gpu = find_gpu(GPU[c["compute_capability"]])
    name, msgs = attention_backend(_spec(c["head_size"]), gpu, c["kv_cache_dtype"], FIXTURE["release"], forced=c["backend"])
    refused = [m for m in msgs if m.code == "vllm.attention.selected_invalid"]
    assert name == c["backend"]
    if "error" in c:
        (m,) = refused
        assert m.text.startswith(c["error"]), (m.text, c["error"])
    else:
        assert not refused and c["path"].endswith({"FLASH_ATTN": "FlashAttentionBackend",
                                                   "TRITON_ATTN": "TritonAttentionBackend"}[c["backend"]])


def test_flashinfer_selected_counts_its_workspace():
    """Forced on an RTX 3090, where vLLM's own pick is FlashAttention: FlashInfer's persistent workspace leaves the
    KV cache (data/vllm_platforms.json attention FLASHINFER.workspace_mib)."""
    spec = load("Qwen/Qwen3-8B")
    auto = check_vllm(spec, find_gpu("3090"), VLLMOptions(max_model_len=4096))
    fi = check_vllm(spec, find_gpu("3090"), VLLMOptions(max_model_len=4096, attention_backend="FLASHINFER"))
    assert fi.devices[0].activation_bytes - auto.devices[0].activation_bytes == 394 * 2**20
    assert fi.devices[0].kv_cache_bytes == auto.devices[0].kv_cache_bytes - 394 * 2**20
    same = check_vllm(spec, find_gpu("3090"), VLLMOptions(max_model_len=4096, attention_config={"backend": "flashinfer"}))
    assert same.devices[0].kv_cache_bytes == fi.devices[0].kv_cache_bytes


def test_refusals_and_what_is_not_modelled():
    spec = load("Qwen/Qwen3-8B")
    r = check_vllm(spec, find_gpu("t4"), VLLMOptions(max_model_len=4096, dtype="float16", attention_backend="FLASH_ATTN"))
    assert not r.fits and any("Selected backend AttentionBackendEnum.FLASH_ATTN is not valid" in e.text for e in r.errors)
    with pytest.raises(NotModelledError, match="--attention-backend FLEX_ATTENTION: not modelled"):
        check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(attention_backend="FLEX_ATTENTION"))
    with pytest.raises(NotModelledError, match="without MLA"):
        check_vllm(load("deepseek-ai/DeepSeek-V2-Lite"), find_gpu("h100-sxm"), VLLMOptions(attention_backend="TRITON_ATTN"))
    with pytest.raises(NotModelledError, match="--attention-config flash_attn_version: not modelled"):
        check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(attention_config={"flash_attn_version": 3}))
    with pytest.raises(InputError, match="mutually exclusive"):
        check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(attention_backend="FLASH_ATTN",
                                                           attention_config={"backend": "TRITON_ATTN"}))
    assert check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(attention_backend="auto", max_model_len=4096)).fits


def test_pasted_flags_are_read_as_modelled():
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 4096"
    _, r = read_command(f"{base} --attention-backend TRITON_ATTN")
    assert r.options["attention_backend"] == "TRITON_ATTN" and not r.warnings
    _, r = read_command(f"{base} --attention-config '{{\"backend\": \"FLASHINFER\"}}'")
    assert r.options["attention_config"] == {"backend": "FLASHINFER"}
    out = check_command(f"{base} --attention-backend FLASHINFER", "3090")
    assert "--attention-backend FLASHINFER" in out.result.command and "--attention-backend FLASHINFER" in out.vramcalc_command
