"""The recurrent-layer kernel flags against vLLM 0.33.0's own code run on CPU
(tests/data/vllm_mamba_backend_oracle_v0.33.0.json, tools/vllm_mamba_backend_oracle.py)."""

from __future__ import annotations

import functools
import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load as _load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.rules import gdn_prefill_backend

DOC = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_mamba_backend_oracle_v0.33.0.json")))
load = functools.lru_cache(maxsize=None)(_load)
# a catalog GPU of each compute capability the oracle answered
GPU_OF = {"8.0": "a100", "8.6": "rtx3090", "8.9": "l40s", "9.0": "h100", "10.0": "b200", "12.0": "rtx5090"}
GDN = [c for c in DOC["cases"] if c["compute_capability"]]
GDN_REFUSED = [u for u in DOC["unsupported"] if u["compute_capability"]]


def _id(c):
    return f"{c['model']}-tp{c['tp']}-sm{c['compute_capability']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def _opts(c, p=None, **kw):
    ea = c["engine_args"]
    return VLLMOptions(engine_version=DOC["release"], tp=c["tp"], max_model_len=8192, allow_long_max_model_len=True,
                       max_num_batched_tokens=8192, kv_cache_memory_bytes=p["memory_bytes"] if p else None,
                       gdn_prefill_backend=ea.get("gdn_prefill_backend"),
                       enable_prefix_caching=ea.get("enable_prefix_caching"), **kw)


def test_fixture_names_release_and_method():
    assert DOC["release"] == "0.33.0" and "VLLM_TARGET_DEVICE=cpu" in DOC["produced_by"]
    assert len(GDN) >= 30 and GDN_REFUSED


@pytest.mark.parametrize("c", GDN, ids=_id)
def test_gdn_prefill_backend_equals_vllm(c):
    """--gdn-prefill-backend and its auto choice per GPU: FlashInfer's kernel on SM 9.0 / 10.0 / 12.0 (head_k_dim
    128) keeps a prefill checkpoint block per GDN layer with prefix caching and a block on the 64-token grid (576
    where Triton's is 544 for Qwen3.5-0.8B), Triton on SM 8.x or when chosen; the same kernel, blocks, tokens and
    concurrency as vLLM's planner."""
    spec, gpu = load(c["model"]), find_gpu(GPU_OF[c["compute_capability"]])
    (active,) = c["gdn_prefill_backend"]
    assert gdn_prefill_backend(spec, gpu, c["engine_args"].get("gdn_prefill_backend"), "0.33.0") == (active, [])
    mamba = [k for k in c["layer_kinds"] if k["kind"] == "MambaSpec"]
    assert {k["num_prefill_checkpoint_blocks"] for k in mamba} == {int(active == "flashinfer" and
                                                                       c["mamba_cache_mode"] == "align")}
    for p in c["plans"]:
        r = check_vllm(spec, gpu, _opts(c, p))
        assert r.num_gpu_blocks == p["num_blocks"] and abs(r.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
        assert abs(r.max_concurrency - p["max_concurrency"]) <= 0.0051  # the result rounds to 2 places
        assert not [e for e in r.errors if e.code == "vllm.gdn_prefill.refused"]


@pytest.mark.parametrize("u", GDN_REFUSED, ids=_id)
def test_gdn_prefill_backend_of_another_platform_is_vllm_s_refusal(u):
    """aiter_flydsl (ROCm) on an NVIDIA GPU, sycl off XPU: vLLM's words."""
    r = check_vllm(load(u["model"]), find_gpu(GPU_OF[u["compute_capability"]]), _opts(u))
    (e,) = [e for e in r.errors if e.code == "vllm.gdn_prefill.refused"]
    assert not r.fits and e.text.split(" [")[0] == u["error"]


def test_gdn_prefill_backend_is_read_by_gdn_models_only():
    """A model without GDN layers never builds the kernel that reads the flag: no refusal, no change."""
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    assert gdn_prefill_backend(spec, find_gpu("h100"), "sycl", "0.33.0") == ("none", [])
    a = check_vllm(spec, find_gpu("h100"), VLLMOptions(gdn_prefill_backend="sycl"))
    b = check_vllm(spec, find_gpu("h100"), VLLMOptions())
    assert a.fits == b.fits and a.num_gpu_blocks == b.num_gpu_blocks


def test_gdn_prefill_backend_from_a_pasted_command():
    from vramcalc.pasted_command import read_command

    spec, gpu = load("Qwen/Qwen3.5-0.8B"), find_gpu("h100")
    (c,) = [c for c in GDN if c["model"] == "Qwen/Qwen3.5-0.8B" and c["tp"] == 1 and c["compute_capability"] == "9.0"
            and c["engine_args"] == {"gdn_prefill_backend": "triton"}]
    p = c["plans"][0]
    _, read = read_command(f"vllm serve Qwen/Qwen3.5-0.8B --gdn-prefill-backend triton --max-model-len 8192 "
                         f"--kv-cache-memory-bytes {p['memory_bytes']}")
    r = check_vllm(spec, gpu, VLLMOptions(**read.options, max_num_batched_tokens=8192, engine_version=DOC["release"]))
    assert r.num_gpu_blocks == p["num_blocks"]


MAMBA = [c for c in DOC["cases"] if not c["compute_capability"]]
MAMBA_REFUSED = [u for u in DOC["unsupported"] if not u["compute_capability"]]


def _mamba_opts(c, p=None):
    ea = c["engine_args"]
    kw = {k: ea[k] for k in ("use_replayssm", "replayssm_buffer_len", "mamba_backend", "mamba_ssu_algorithm")
          if k in ea}
    return VLLMOptions(engine_version=DOC["release"], tp=c["tp"], max_model_len=8192, allow_long_max_model_len=True,
                       max_num_batched_tokens=8192, kv_cache_memory_bytes=p["memory_bytes"] if p else None,
                       enable_prefix_caching=ea.get("enable_prefix_caching"), **kw)


def _mid(c):
    return f"{c['model']}-tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}-{json.dumps(c['env'])}"


@pytest.mark.parametrize("c", MAMBA, ids=_mid)
def test_mamba_kernel_flags_equal_vllm(c):
    """--use-replayssm (Triton's ring of 16 or 32 rows, FlashInfer's of 17 / 33, no speculative blocks),
    --mamba-backend and --mamba-ssu-algorithm alone, --enable-mamba-shared-prefix-checkpoint: the state page, the
    hybrid block and the blocks, tokens and concurrency of vLLM's planner (an H200, whose GDN choice these
    Mamba-2 models do not read). vLLM's CPU build runs Model Runner V1, under which Triton's ReplaySSM starts: the
    KV plan is checked without vramcalc's V2 refusal, which the V2 cases below check."""
    from vramcalc.vllm.engine import _kv_settings, replayssm_messages
    from vramcalc.vllm.kv import capacity, kv_pool

    spec, gpu = load(c["model"]), find_gpu("h200")
    mamba = [k for k in c["layer_kinds"] if k["kind"] == "MambaSpec"]
    assert c["use_v2_model_runner"] == bool(c["env"]) and {k["num_speculative_blocks"] for k in mamba} == {0}
    o = _mamba_opts(c)
    rows, refused = replayssm_messages(spec, o, c["enable_prefix_caching"], 0)
    assert all(e.text.startswith("ValueError: Triton ReplaySSM requires Model Runner V1") for e in refused)
    s = _kv_settings(spec, o, "0.33.0", 8192, 8192, 0, "triton", rows)
    pool = kv_pool(spec, s)
    assert pool.page_bytes == max(k["page_size_bytes"] for k in c["layer_kinds"])
    assert pool.block_size == c["cache_block_size"]
    for p in c["plans"]:
        cap = capacity(pool, p["memory_bytes"], 8192, s)
        if "refusal" in p:
            assert not cap.fits_one_request
            continue
        assert cap.num_blocks == p["num_blocks"] and abs(cap.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
        assert abs(cap.max_concurrency - p["max_concurrency"]) <= 0.0051
        if not refused:  # the whole check, where vLLM under Model Runner V2 starts too
            r = check_vllm(spec, gpu, _mamba_opts(c, p))
            assert r.num_gpu_blocks == p["num_blocks"] and abs(r.kv_cache_tokens - p["kv_cache_tokens"]) <= 1
            assert not [e for e in r.errors if e.code == "vllm.replayssm.refused"]


@pytest.mark.parametrize("u", MAMBA_REFUSED, ids=_mid)
def test_mamba_kernel_flag_refusals_are_vllm_s(u):
    """What vLLM refuses: an SSU algorithm without FlashInfer, ReplaySSM on an architecture without it
    (Falcon-H1), FlashInfer's ReplaySSM with prefix caching or more than 16 rows, Triton's under Model Runner V2
    (VLLM_USE_V2_MODEL_RUNNER=1, CUDA's default): in vLLM's words."""
    if "shape '[-1" in u["error"]:
        pytest.skip("the CPU oracle's TP group, not vLLM's refusal")
    r = check_vllm(load(u["model"]), find_gpu("h200"), _mamba_opts(u))
    texts = [e.text.split(" [")[0] for e in r.errors if e.code == "vllm.replayssm.refused"]
    assert not r.fits and texts
    if "Falcon" in u["model"] and "architecture" in u["error"]:  # the catalog's partial config names none
        assert texts[0].startswith("ValueError: --use-replayssm is not supported for architecture")
    else:
        assert texts[0] == u["error"].replace("ValidationError: Value error, ", "ValueError: ")


def test_the_v2_cases_ran_under_model_runner_v2():
    """The oracle's V2 cases: Triton's ReplaySSM refused, FlashInfer's without prefix caching planned."""
    v2 = [c for c in DOC["cases"] + DOC["unsupported"] if c.get("env")]
    assert len(v2) == 2
    assert any("Triton ReplaySSM requires Model Runner V1" in u.get("error", "") for u in v2)
    assert any(c.get("use_v2_model_runner") for c in v2)


def test_replayssm_flags_from_a_pasted_command():
    """The flags as a command gives them reach the check: FlashInfer's ReplaySSM without prefix caching plans as the
    oracle's case; --mamba-ssu-algorithm alone is vLLM's refusal."""
    from vramcalc.pasted_command import read_command

    (c,) = [c for c in MAMBA if c["model"] == "nvidia/Nemotron-H-8B-Base-8K" and c["tp"] == 1 and not c["env"] and
            c["engine_args"] == {"use_replayssm": True, "mamba_backend": "flashinfer", "enable_prefix_caching": False}]
    p = c["plans"][0]
    _, read = read_command("vllm serve nvidia/Nemotron-H-8B-Base-8K --use-replayssm --mamba-backend flashinfer "
                           f"--disable-prefix-caching --max-model-len 8192 --kv-cache-memory-bytes {p['memory_bytes']}")
    assert read.options["use_replayssm"] and read.options["mamba_backend"] == "flashinfer"
    r = check_vllm(load(c["model"]), find_gpu("h200"), VLLMOptions(**read.options, max_num_batched_tokens=8192,
                                                                   engine_version=DOC["release"]))
    assert r.num_gpu_blocks == p["num_blocks"]
    _, read = read_command("vllm serve nvidia/Nemotron-H-8B-Base-8K --mamba-ssu-algorithm simple")
    r = check_vllm(load(c["model"]), find_gpu("h200"), VLLMOptions(**read.options))
    assert [e.code for e in r.errors if e.code == "vllm.replayssm.refused"] == ["vllm.replayssm.refused"]


@pytest.mark.parametrize("extra", [{"kv_offloading_size": 8.0},
                                   {"kv_transfer_config": {"kv_connector": "NixlConnector", "kv_role": "kv_both"}}])
def test_replayssm_with_a_kv_connector_is_vllm_s_refusal(extra):
    """VllmConfig.validate_mamba_cached_kernel (vllm/config/vllm.py, 0.33.0): after the kernel checks, any KV-transfer
    instance, --kv-offloading-size's kv_both connector included, is refused."""
    opts = VLLMOptions(use_replayssm=True, mamba_backend="flashinfer", enable_prefix_caching=False, max_model_len=8192,
                       **extra)
    r = check_vllm(load("nvidia/Nemotron-H-8B-Base-8K"), find_gpu("h100"), opts)
    assert not r.fits and any("--use-replayssm is incompatible with KV connectors" in e.text for e in r.errors)
