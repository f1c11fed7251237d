"""VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE and FlashInfer's workspaces, against vLLM 0.33.0's own size functions run on
the CPU (tests/data/vllm_flashinfer_workspace_oracle_v0.33.0.json, tools/vllm_flashinfer_workspace_oracle.py)."""

import json
import os

import pytest

from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, _flashinfer_workspace, check_vllm, flashinfer_trtllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data",
                                      "vllm_flashinfer_workspace_oracle_v0.33.0.json")))
MIB = 2**20


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["builder"]) >= 12 and len(FIXTURE["trtllm"]) >= 8
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_flashinfer_workspace_oracle.py" in FIXTURE["produced_by"]
    # the cases reach both sides of the max: the variable, and the batch's head footprint above it
    assert any(c["workspace_bytes"] == (c["env"] or 394 * MIB) for c in FIXTURE["builder"])
    assert any(c["workspace_bytes"] > (c["env"] or 394 * MIB) for c in FIXTURE["builder"])


def _id(c):
    return f"{c['model'].split('/')[1]}-tp{c['tp']}-{c['max_num_batched_tokens']}-{c['env']}"


@pytest.mark.parametrize("c", FIXTURE["builder"], ids=_id)
def test_workspace_as_vllm_sizes_it(c):
    """The builder's buffer alone on an SM 8.6 GPU; with the TRT-LLM kernels' buffer on an H100."""
    spec = load(c["model"])
    opts = VLLMOptions(tp=c["tp"], max_num_batched_tokens=c["max_num_batched_tokens"],
                       flashinfer_workspace_bytes=c["env"])
    mnbt = c["max_num_batched_tokens"]
    assert _flashinfer_workspace(spec, opts, find_gpu("3090"), mnbt) == c["workspace_bytes"]
    assert _flashinfer_workspace(spec, opts, find_gpu("h100-sxm"), mnbt) == \
        c["workspace_bytes"] + c["trtllm_workspace_bytes"]


@pytest.mark.parametrize("c", FIXTURE["trtllm"], ids=lambda c: c["compute_capability"])
def test_trtllm_buffer_where_vllm_runs_its_kernels(c):
    assert flashinfer_trtllm(c["compute_capability"]) == c["decode"]
    assert c["decode"] or not c["prefill"]


def test_variable_moves_the_kv_cache():
    """On an RTX 3090 (no TRT-LLM kernels), at the default 2048-token batch where the floor decides: 1 GiB set
    leaves the KV cache 1 GiB - 394 MiB smaller."""
    spec, gpu = load("Qwen/Qwen3-8B"), find_gpu("3090")
    base = VLLMOptions(max_model_len=4096, max_num_batched_tokens=2048, attention_backend="FLASHINFER")
    a = check_vllm(spec, gpu, base)
    b = check_vllm(spec, gpu, base.model_copy(update={"flashinfer_workspace_bytes": 2**30}))
    assert b.devices[0].activation_bytes - a.devices[0].activation_bytes == 2**30 - 394 * MIB
    assert b.command.startswith(f"VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE={2**30} vllm serve ")
    # not read by the other backends
    fa = VLLMOptions(max_model_len=4096, max_num_batched_tokens=2048)
    assert check_vllm(spec, gpu, fa).devices[0].kv_cache_bytes == \
        check_vllm(spec, gpu, fa.model_copy(update={"flashinfer_workspace_bytes": 2**30})).devices[0].kv_cache_bytes


def test_pasted_variable_is_read_as_modelled():
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 4096 --attention-backend FLASHINFER"
    _, r = read_command(f"VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE=536870912 {base}")
    assert r.options["flashinfer_workspace_bytes"] == 536870912 and not r.warnings
    out = check_command(f"VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE=536870912 {base}", "3090")
    assert "--flashinfer-workspace-bytes 536870912" in out.vramcalc_command
    with pytest.raises(InputError, match="invalid literal for int"):
        read_command(f"VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE=512MB {base}")
