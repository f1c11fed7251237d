"""The DSA sparse indexer's buffers (DeepSeek-V3.2): VLLM_SPARSE_INDEXER_MAX_LOGITS_MB's dummy logits tensor, the
K-gather / top-k workspace (sparse_mla_prefill_workspace_factor), the index buffer and the TP row-shard exchange
transient, against vLLM 0.33.0's own get_max_prefill_buffer_size and sparse_attn_indexer profile-run branch run on
the CPU (tests/data/vllm_sparse_indexer_oracle_v0.33.0.json, tools/vllm_sparse_indexer_oracle.py)."""

import json
import os
import shlex

import pytest

from vramcalc.cli import main
from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, _sparse_indexer, check_vllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_sparse_indexer_oracle_v0.33.0.json")))
CASES = FIXTURE["cases"]
MIB = 2**20
V32 = "deepseek-ai/DeepSeek-V3.2"


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(CASES) >= 15 and not [c for c in CASES if "error" in c]
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_sparse_indexer_oracle.py" in FIXTURE["produced_by"]
    # the cases reach both default factors, a given factor, TP with and without the exchange, PCP + DCP
    assert {c["sparse_mla_prefill_workspace_factor"] for c in CASES} >= {2, 3, 5}
    assert any(c["max_model_len"] > 262144 for c in CASES) and any(c["call"] for c in CASES)
    assert any(len(c["transient_bytes"]) == 2 for c in CASES)  # the logits tensor and the exchange
    assert any(c["max_logits_mb"] == 0 and c["transient_bytes"] for c in CASES)  # the exchange alone


def _id(c):
    return f"tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}-{json.dumps(c['env'])}-{json.dumps(c['call'])}"


def _options(c, **kw):
    mb = c["env"].get("VLLM_SPARSE_INDEXER_MAX_LOGITS_MB")
    return VLLMOptions(tp=c["tp"], max_model_len=c["max_model_len"], max_num_batched_tokens=c["max_num_batched_tokens"],
                       decode_context_parallel_size=c["decode_context_parallel_size"],
                       prefill_context_parallel_size=2 if c["call"].get("use_pcp") else 1,
                       attention_config=c["engine_args"].get("attention_config"),
                       sparse_indexer_max_logits_mb=int(mb) if mb is not None else None,
                       engine_version="0.33.0", **kw)


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_buffers_equal_vllm_to_the_byte(c):
    """The factor, the K-gather rows, the workspace the profile run leaves, the index buffer and the transients the
    profile run allocates (the dummy logits tensor; the exchange under TP with DCP 1), as vLLM's own code gives them."""
    spec = load(V32)
    assert spec.layers[0].attention.mla.index_topk == c["index_topk"]
    idx = _sparse_indexer(spec, _options(c), find_gpu("h100-sxm"), c["max_num_batched_tokens"], c["max_model_len"])
    assert idx is not None
    assert idx.factor == c["sparse_mla_prefill_workspace_factor"] and idx.rows == c["max_prefill_buffer_rows"]
    assert idx.workspace == c["workspace_bytes"]
    assert idx.index_buffer == c["topk_indices_buffer_bytes"]
    assert sorted(b for b in (idx.logits, idx.exchange) if b) == sorted(c["transient_bytes"])


def _pair(env_mb):
    """The TP 8 default-length cases: vLLM's default and the variable set."""
    (c,) = [c for c in CASES if c["tp"] == 8 and not c["engine_args"] and not c["call"] and
            c["env"] == ({"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": env_mb} if env_mb else {})]
    return c


def test_the_variable_moves_the_activation_by_what_vllm_allocates():
    """Where the forward pass sets the activation peak (a small max_num_seqs keeps the sampler below it), the
    variable moves rank 0's activation, and the KV cache the other way, by the change in vLLM's dummy tensor."""
    base, small = _pair(None), _pair("64")
    gpu = find_gpu("h200-sxm")
    runs = [check_vllm(load(V32), gpu, VLLMOptions(tp=8, max_num_seqs=8, engine_version="0.33.0",
                                                   sparse_indexer_max_logits_mb=mb)) for mb in (None, 64)]
    theirs = sum(base["transient_bytes"]) - sum(small["transient_bytes"])
    assert theirs == 448 * MIB
    assert runs[0].devices[0].activation_bytes - runs[1].devices[0].activation_bytes == theirs
    assert runs[1].devices[0].kv_cache_bytes - runs[0].devices[0].kv_cache_bytes == theirs


def test_the_persistent_buffers_are_in_the_activation_and_the_trace():
    """The workspace and index buffer are counted with the persistent attention workspace (the activation's part the
    profiler does not free), the whole in a trace term, with the coded warning."""
    r = check_vllm(load(V32), find_gpu("h200-sxm"), VLLMOptions(tp=8, engine_version="0.33.0"))
    c = _pair(None)
    (t,) = [t for t in r.trace if t.name == "sparse indexer (rank 0)"]
    assert t.inputs["workspace"] == c["workspace_bytes"] and t.inputs["index_buffer"] == c["topk_indices_buffer_bytes"]
    assert t.value == c["workspace_bytes"] + c["topk_indices_buffer_bytes"] + sum(c["transient_bytes"])
    (act,) = [t for t in r.trace if t.name == "activation (rank 0)"]
    assert act.inputs["attention_workspace"] >= c["workspace_bytes"] + c["topk_indices_buffer_bytes"]
    assert "vllm.sparse_indexer.buffers" in [m.code for m in r.warnings]
    # a model without the indexer: nothing counted, and the variable is said to change nothing
    q = check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100-sxm"), VLLMOptions(sparse_indexer_max_logits_mb=64))
    assert not [t for t in q.trace if t.name == "sparse indexer (rank 0)"]
    assert "vllm.sparse_indexer.absent" in [m.code for m in q.warnings]
    assert check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100-sxm"), VLLMOptions()).devices[0].activation_bytes == \
        q.devices[0].activation_bytes


def test_rocm_path_warns_of_its_decode_workspace():
    r = check_vllm(load(V32), find_gpu("mi300x"), VLLMOptions(tp=8, engine_version="0.33.0"))
    codes = [m.code for m in r.warnings + r.errors]
    assert "vllm.sparse_indexer.rocm" in codes


def test_pasted_commands_read_the_variable_and_the_factor():
    base = f"vllm serve {V32} -tp 8 --max-num-seqs 8"
    assert read_command(f"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB=64 {base}")[1].options["sparse_indexer_max_logits_mb"] == 64
    with pytest.raises(InputError, match="invalid literal"):
        read_command(f"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB=lots {base}")
    r = check_command(f"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB=64 {base}", "8xh200")
    assert r.result.command.startswith("VLLM_SPARSE_INDEXER_MAX_LOGITS_MB=64 vllm serve")
    assert "--sparse-indexer-max-logits-mb 64" in r.vramcalc_command
    assert main(shlex.split(r.vramcalc_command)[1:] + ["--json"]) == 0
    f = check_command(base + " --attention-config '{\"sparse_mla_prefill_workspace_factor\": 2}'", "8xh200")
    (c,) = [c for c in CASES if c["engine_args"] == {"attention_config": {"sparse_mla_prefill_workspace_factor": 2}}]
    (t,) = [t for t in f.result.trace if t.name == "sparse indexer (rank 0)"]
    assert t.inputs["workspace"] == c["workspace_bytes"]
    default = check_command(base, "8xh200")
    assert f.result.devices[0].activation_bytes - default.result.devices[0].activation_bytes == \
        c["workspace_bytes"] - _pair(None)["workspace_bytes"]
    with pytest.raises(InputError, match="greater than or equal to 2"):
        check_vllm(load(V32), find_gpu("h200-sxm"),
                   VLLMOptions(tp=8, attention_config={"sparse_mla_prefill_workspace_factor": 1}))
