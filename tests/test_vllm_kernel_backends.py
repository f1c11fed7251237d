"""--linear-backend and --sparse-indexer-topk-backend against vLLM 0.33.0's own code run on CPU
(tests/data/vllm_kernel_backend_oracle_v0.33.0.json, tools/vllm_kernel_backend_oracle.py): an unquantized checkpoint
(a model without the DSA indexer) has the weights, KV specs and plans of auto for every choice, as vramcalc's; a
quantized checkpoint (a model with the indexer) is warned about, what the choice changes there not being sized."""

from __future__ import annotations

import functools
import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load as _load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

DOC = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_kernel_backend_oracle_v0.33.0.json")))
load = functools.lru_cache(maxsize=None)(_load)
SAME = ("weights_bytes_rank0", "buffer_bytes_rank0", "layers", "plans", "cache_block_size", "max_model_len")


def _id(c):
    return f"{c['model']}-{json.dumps(c['engine_args'])}"


def _auto(c):
    return next(a for a in DOC["cases"] if a["model"] == c["model"] and a["engine_args"] == {"linear_backend": "auto"})


def test_fixture_names_release_and_method():
    assert DOC["release"] == "0.33.0" and len(DOC["cases"]) >= 19
    assert "tools/vllm_kernel_backend_oracle.py" in DOC["produced_by"] and "VLLM_TARGET_DEVICE=cpu" in DOC["produced_by"]
    # the choice reached vLLM's KernelConfig
    assert all(c["kernel_config"][k] == v for c in DOC["cases"] for k, v in c["engine_args"].items())
    assert {c["engine_args"].get("sparse_indexer_topk_backend") for c in DOC["cases"]} >= {
        "deep_select", "cooperative", "persistent", "per_row", "flashinfer", "torch", "aiter"}


@pytest.mark.parametrize("c", DOC["cases"], ids=_id)
def test_unchanged_where_unread_as_in_vllm(c):
    a = _auto(c)
    assert {k: c[k] for k in SAME} == {k: a[k] for k in SAME}
    gpu = find_gpu("h100-sxm")
    mem = int(c["plans"][0]["memory_bytes"])
    rel = DOC["release"]
    base = check_vllm(load(c["model"]), gpu, VLLMOptions(engine_version=rel, max_model_len=8192, kv_cache_memory_bytes=mem))
    r = check_vllm(load(c["model"]), gpu, VLLMOptions(engine_version=rel, max_model_len=8192, kv_cache_memory_bytes=mem,
                                                      **c["engine_args"]))
    assert r.num_gpu_blocks == base.num_gpu_blocks == c["plans"][0]["num_blocks"]
    assert not [w for w in r.warnings if w.code.endswith(".not_modelled")]


@pytest.mark.parametrize("model", ["Qwen/Qwen3-8B-FP8", "Qwen/Qwen3-8B-AWQ"])
def test_quantized_checkpoint_is_warned_about(model):
    r = check_command(f"vllm serve {model} --max-model-len 8192 --linear-backend marlin", "h100-sxm").result
    (w,) = [w for w in r.warnings if w.code == "vllm.linear_backend.not_modelled"]
    assert w.text.startswith("--linear-backend marlin:")
    auto = check_command(f"vllm serve {model} --max-model-len 8192 --linear-backend auto", "h100-sxm").result
    assert not [w for w in auto.warnings if w.code == "vllm.linear_backend.not_modelled"]
    assert auto.num_gpu_blocks == r.num_gpu_blocks


def test_pasted_flag_is_read_and_written_back():
    _, read = read_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --linear-backend Emulation")
    assert read.options["linear_backend"] == "emulation"
    assert not [w for w in read.warnings if w.code == "command.not_modelled"]
    r = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --linear-backend emulation", "h100-sxm")
    assert "--linear-backend emulation" in r.result.command and "--linear-backend emulation" in r.vramcalc_command


def test_sparse_indexer_topk_backend_on_a_dsa_model_is_warned_about_and_keeps_the_budget():
    """DeepSeek-V3.2: the profile run's branch of sparse_attn_indexer reserves what it reserves whatever the backend
    (its buffers are vLLM's to the byte: tests/test_vllm_sparse_indexer.py); the decode transients are named."""
    base = "vllm serve deepseek-ai/DeepSeek-V3.2 -tp 8 --max-model-len 8192"
    auto = check_command(f"{base} --sparse-indexer-topk-backend auto", "8xh200").result
    r = check_command(f"{base} --sparse-indexer-topk-backend Torch", "8xh200").result
    (w,) = [w for w in r.warnings if w.code == "vllm.sparse_indexer_topk.not_modelled"]
    assert w.text.startswith("--sparse-indexer-topk-backend torch:")
    assert not [w for w in auto.warnings if w.code == "vllm.sparse_indexer_topk.not_modelled"]
    assert r.num_gpu_blocks and r.num_gpu_blocks == auto.num_gpu_blocks and "--sparse-indexer-topk-backend torch" in r.command


def test_kernel_config_backend_keys_are_read_as_their_flags():
    """--kernel-config's linear_backend / sparse_indexer_topk_backend are the flags' KernelConfig fields; a flag other
    than auto wins over the key in either order (vllm/engine/arg_utils.py EngineArgs.create_engine_config, 0.33.0),
    values normalised as KernelConfig's validators do (lower case, - as _)."""
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    _, r = read_command(f"{base} --kernel-config '{{\"linear_backend\": \"Flashinfer-Cutlass\", "
                        "\"sparse_indexer_topk_backend\": \"torch\"}'")
    assert (r.options["linear_backend"], r.options["sparse_indexer_topk_backend"]) == ("flashinfer_cutlass", "torch")
    assert not [w for w in r.warnings if w.code == "command.not_modelled"]
    for cmd, want in ((f"{base} --linear-backend cutlass --kernel-config.linear_backend marlin", "cutlass"),
                      (f"{base} --kernel-config.linear_backend marlin --linear-backend cutlass", "cutlass"),
                      (f"{base} --kernel-config.linear_backend marlin --linear-backend auto", "marlin"),
                      (f"{base} --linear-backend auto --kernel-config.linear_backend marlin", "marlin")):
        assert read_command(cmd)[1].options["linear_backend"] == want, cmd
