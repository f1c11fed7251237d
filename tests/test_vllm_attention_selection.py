"""rules.attention_backend against vLLM 0.34.0's own per-layer selection run on CPU
(tests/data/vllm_kv_layout_backend_oracle_v0.34.0.json, tools/vllm_kv_layout_backend_oracle.py): the backends the
model's layers run, --attention-backend validated per layer and refused in CudaPlatform.get_attn_backend_cls's words,
and FlashInfer's workspace counted only where a layer runs FlashInfer (vllm/v1/attention/backends/flashinfer.py
FlashInferMetadataBuilder._get_workspace_buffer; composite.py builds it inside TRITON_FLASHINFER)."""

from __future__ import annotations

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, _flashinfer_workspace, check_vllm, per_head_attention
from vramcalc.vllm.rules import attention_backend

HERE = os.path.join(os.path.dirname(__file__), "data")
ORACLE = json.load(open(os.path.join(HERE, "vllm_kv_layout_backend_oracle_v0.34.0.json")))
ORACLE_033 = json.load(open(os.path.join(HERE, "vllm_kv_layout_backend_oracle_v0.33.0.json")))
GPU_BY_CC = {"8.0": "a100-80gb-sxm", "8.6": "rtx-3090", "8.9": "l40s", "9.0": "h100-sxm", "10.0": "b200",
             "12.0": "rtx-5090"}
# MLA layers run backends vramcalc does not model (attention_backend answers None)
CASES = [(o["release"], c) for o in (ORACLE, ORACLE_033) for c in o["cases"]
         if not any(k["use_mla"] for k in c["layer_kinds"])]


def _id(rc: tuple[str, dict]) -> str:
    release, c = rc
    return (f"{release}-{c['model']}-sm{c['compute_capability']}-{c['kv_cache_dtype']}-{c.get('attention_backend') or 'auto'}"
            + ("-" + "-".join(f"{k}={v}" for k, v in c["env"].items()) if c.get("env") else ""))


def test_oracle_covers_forced_backends_and_mla_disable():
    assert ORACLE["release"] == "0.34.0" and "--cases 54 55 56 57 58 59 60 61 62 63 64" in ORACLE["produced_by"]
    assert ORACLE_033["release"] == "0.33.0"
    forced = [c for r, c in CASES if c.get("attention_backend")]
    assert len(forced) == 9 and {c["compute_capability"] for c in forced} == {"8.0", "9.0", "10.0"}
    assert len([c for r, c in CASES if c.get("env", {}).get("VLLM_MLA_DISABLE") == "1"]) == 2


@pytest.mark.parametrize("release,c", CASES, ids=[_id(rc) for rc in CASES])
def test_attention_backend_matches_vllm(release, c):
    """The backends vramcalc names are those vLLM's CUDA selector gives the model's layers; a refused
    --attention-backend is refused with the first layer's reasons, word for word."""
    spec = load(c["model"])
    if c.get("env", {}).get("VLLM_MLA_DISABLE") == "1":
        spec = per_head_attention(spec)
    gpu = find_gpu(GPU_BY_CC[c["compute_capability"]])
    name, msgs = attention_backend(spec, gpu, c["kv_cache_dtype"], release, forced=c.get("attention_backend"))
    refused = [m for m in msgs if m.code == "vllm.attention.selected_invalid"]
    errors = [k for k in c["layer_kinds"] if "error" in k]
    if errors:
        first = next(la.attention for la in spec.layers if la.attention is not None)  # built first, refused first
        (kind,) = [k for k in c["layer_kinds"] if k["head_size"] == first.head_dim_k]
        (m,) = refused
        assert m.text.startswith(kind["error"] + " ["), (m.text, kind["error"])
        return
    assert not refused
    assert set(name.split("+")) == {k["backend"] for k in c["layer_kinds"]}


def test_gemma4_runs_no_flashinfer_off_sm10_and_keeps_its_workspace_out():
    """Gemma 4 (head sizes 256 / 512, bidirectional image prefix): TRITON_ATTN on an A100 (Gemma4Config's choice),
    Triton + FlashAttention (TRITON_FLASH_ATTN) on an H100: no FlashInfer workspace; Triton + FlashInfer on a B200,
    where FlashInfer's builder (and on SM 10.x the TRT-LLM buffer) is kept."""
    spec = load("google/gemma-4-31B-it")
    opts = VLLMOptions(max_model_len=8192, max_num_batched_tokens=8192)
    a100, h100, b200 = (find_gpu(g) for g in ("a100-80gb-sxm", "h100-sxm", "b200"))
    assert attention_backend(spec, a100, "auto")[0] == "TRITON_ATTN"
    assert attention_backend(spec, h100, "auto")[0] == "TRITON_FLASH_ATTN"
    assert attention_backend(spec, b200, "auto")[0] == "TRITON_FLASHINFER"
    # text only: no image prefix, so FlashInfer takes both head sizes where it is named
    text = VLLMOptions(max_model_len=8192, max_num_batched_tokens=8192, language_model_only=True)
    fi = check_vllm(spec, h100, text.model_copy(update={"attention_backend": "FLASHINFER"}))
    auto = check_vllm(spec, h100, text)
    assert not [e for e in fi.errors if "attention" in e.code]
    assert fi.devices[0].activation_bytes - auto.devices[0].activation_bytes == _flashinfer_workspace(
        spec, text, h100, 8192)
    on_b200 = check_vllm(spec, b200, opts)
    triton = check_vllm(spec, b200, opts.model_copy(update={"attention_backend": "TRITON_ATTN"}))
    assert on_b200.devices[0].activation_bytes - triton.devices[0].activation_bytes == _flashinfer_workspace(
        spec, opts, b200, 8192)


def test_flash_attn_named_for_gemma4_on_h100_is_accepted_and_refused_on_a100():
    spec = load("google/gemma-4-31B-it")
    ok = check_vllm(spec, find_gpu("h100-sxm"), VLLMOptions(max_model_len=8192, attention_backend="FLASH_ATTN"))
    assert not [e for e in ok.errors if e.code == "vllm.attention.selected_invalid"]
    no = check_vllm(spec, find_gpu("a100-80gb-sxm"), VLLMOptions(max_model_len=8192, attention_backend="FLASH_ATTN"))
    assert not no.fits and any(e.code == "vllm.attention.selected_invalid" for e in no.errors)


def test_mla_disabled_fp8_on_a100_runs_triton_which_refuses_fp8():
    """VLLM_MLA_DISABLE=1: K head 192, which FlashInfer does not take (get_supported_head_sizes 64/128/256/512) and
    FlashAttention takes without an fp8 KV cache on SM 8.0: TRITON_ATTN (oracle case 64), whose fp8 KV cache
    TritonAttentionImpl refuses below SM 8.9."""
    r = check_vllm(load("deepseek-ai/DeepSeek-V2-Lite"), find_gpu("a100-80gb-sxm"),
                   VLLMOptions(mla_disable=True, kv_cache_dtype="fp8", max_model_len=8192))
    assert any(e.code == "vllm.attention.fp8_kv_unsupported" for e in r.errors)
