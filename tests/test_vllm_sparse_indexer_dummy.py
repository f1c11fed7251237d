"""vLLM 0.34.0's DSA sparse indexer profile-run transients: the dummy logits tensor sized from the prefill budget
(VLLM_SPARSE_INDEXER_MAX_LOGITS_MB) and the decode rows (chunked on SM 10.x to VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB),
and the fused MQA + top-k scratch allocated before it (VLLM_USE_FUSED_MQA_TOPK), against vLLM 0.34.0's own
sparse_attn_indexer run on the CPU as an SM 9.0 / 10.x device (tests/data/vllm_sparse_indexer_dummy_oracle_v0.34.0.json,
tools/vllm_sparse_indexer_dummy_oracle.py)."""

import json
import os
import shlex

import pytest

from vramcalc.cli import main
from vramcalc.errors import InputError, NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, _sparse_indexer, check_vllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data",
                                      "vllm_sparse_indexer_dummy_oracle_v0.34.0.json")))
CASES = FIXTURE["cases"]
MIB = 2**20
V32 = "deepseek-ai/DeepSeek-V3.2"
GPUS = {("10.0", 148): "b200", ("10.3", 160): "b300", ("9.0", 132): "h100-sxm"}


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.34.0" and len(CASES) >= 30 and not [c for c in CASES if "error" in c]
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_sparse_indexer_dummy_oracle.py" in FIXTURE["produced_by"]
    # both peaks, both logits dtypes, decode chunked and not, SM 9.0 and 10.x, both models
    assert {c["peak"] for c in CASES} == {"dummy_logits", "fused_scratch"}
    assert {c["indexer_logits_dtype"] for c in CASES} == {"float32", "bfloat16"}
    assert {c["max_decode_logits_mb"] for c in CASES} >= {0, 2048}
    assert {c["compute_capability"] for c in CASES} == {"9.0", "10.0", "10.3"}
    assert {c["architecture"] for c in CASES} == {"DeepseekV32ForCausalLM", "GlmMoeDsaForCausalLM"}
    assert any(c["num_speculative_tokens"] for c in CASES) and any(not c["use_fused_mqa_topk"] for c in CASES)


def _id(c):
    return (f"{c['architecture'][:8]}-sm{c['compute_capability']}-tp{c['tp']}-"
            f"{json.dumps(c['engine_args'], sort_keys=True)}-{json.dumps(c['env'])}-{json.dumps(c['call'])}")


def _spec(c):
    """DeepSeek-V3.2, or the oracle's GLM-5-style variant of it (its architecture and 32 indexer heads)."""
    spec = load(V32)
    if c["architecture"] == spec.architecture:
        return spec

    def glm(la):
        if la.attention is None or la.attention.mla is None:
            return la
        mla = la.attention.mla.model_copy(update={"index_n_heads": c["index_n_heads"]})
        return la.model_copy(update={"attention": la.attention.model_copy(update={"mla": mla})})
    return spec.model_copy(update={"architecture": c["architecture"], "layers": [glm(la) for la in spec.layers]})


def _options(c):
    env = c["env"]
    return VLLMOptions(
        tp=c["tp"], max_model_len=c["max_model_len"], max_num_seqs=c["max_num_seqs"],
        max_num_batched_tokens=c["max_num_batched_tokens"],
        decode_context_parallel_size=c["decode_context_parallel_size"],
        prefill_context_parallel_size=2 if c["use_pcp"] else 1,
        attention_config=c["engine_args"].get("attention_config"),
        sparse_indexer_topk_backend=c["engine_args"].get("sparse_indexer_topk_backend"),
        sparse_indexer_max_logits_mb=int(env["VLLM_SPARSE_INDEXER_MAX_LOGITS_MB"])
        if "VLLM_SPARSE_INDEXER_MAX_LOGITS_MB" in env else None,
        sparse_indexer_max_decode_logits_mb=int(env["VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB"])
        if "VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB" in env else None,
        use_fused_mqa_topk=env.get("VLLM_USE_FUSED_MQA_TOPK", "1") != "0", engine_version="0.34.0")


def _indexer(c):
    gpu = find_gpu(GPUS[c["compute_capability"], c["sm_count"]])
    return _sparse_indexer(_spec(c), _options(c), gpu, c["max_num_batched_tokens"], c["max_model_len"],
                           c["max_num_seqs"], c["num_speculative_tokens"])


@pytest.mark.parametrize("c", [c for c in CASES if not c["batch_invariant"]], ids=_id)
def test_dummy_and_fused_scratch_equal_vllm_to_the_byte(c):
    """The dummy logits tensor, the fused scratch and the indexer's transient peak (the larger: the scratch is
    dropped before the dummy is allocated), the logits dtype vLLM resolves, the workspace, and no row-shard
    exchange (0.34.0 reserves none), as vLLM 0.34.0's own profile run allocates them."""
    idx = _indexer(c)
    assert idx is not None and idx.release_034
    assert idx.logits == c["dummy_logits_bytes"]
    assert idx.fused_scratch == c["fused_scratch_bytes"]
    assert idx.transient == c["peak_bytes"] and idx.exchange == 0
    assert ("fused_scratch" if idx.fused_scratch > idx.logits else "dummy_logits") == c["peak"]
    assert idx.logits_dtype == c["indexer_logits_dtype"]
    assert idx.workspace == c["workspace_bytes"] and idx.rows == c["max_prefill_buffer_rows"]


@pytest.mark.parametrize("c", [c for c in CASES if c["batch_invariant"]], ids=_id)
def test_batch_invariant_keeps_the_fused_scratch_counted_an_upper_bound(c):
    """VLLM_BATCH_INVARIANT (not modelled) keeps vLLM off the fused kernel: vramcalc still counts its scratch,
    at least vLLM's peak; the dummy itself is vLLM's."""
    idx = _indexer(c)
    assert idx is not None and idx.logits == c["dummy_logits_bytes"] and c["fused_scratch_bytes"] == 0
    assert idx.transient >= c["peak_bytes"]


def _case(arch, cc, env, **args):
    (c,) = [c for c in CASES if c["architecture"] == arch and c["compute_capability"] == cc and c["env"] == env
            and c["engine_args"] == dict({"max_num_seqs": 256, "max_num_batched_tokens": 8192}, **args)
            and not c["call"]]
    return c


def test_the_decode_budget_moves_the_activation_and_kv_by_what_vllm_allocates():
    """DeepSeek-V3.2 on 8 B200s, 256 sequences with 3 MTP tokens (1024 decode rows; the forward pass, not the
    sampler, sets the activation peak): VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB=0 stops the decode chunking, whose
    rows with their FP32 copy outgrow the prefill budget; rank 0's activation moves by the change in vLLM's dummy,
    and the KV cache by at least that (0.34.0's extensible KV cache also keeps a margin of the transient)."""
    mtp = {"method": "mtp", "num_speculative_tokens": 3}
    base = _case("DeepseekV32ForCausalLM", "10.0", {}, speculative_config=mtp)
    off = _case("DeepseekV32ForCausalLM", "10.0", {"VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB": "0"},
                speculative_config=mtp)
    theirs = off["peak_bytes"] - base["peak_bytes"]
    assert theirs > 0 and off["num_speculative_tokens"] == 3
    runs = [check_vllm(load(V32), find_gpu("b200"), VLLMOptions(tp=8, max_num_seqs=256, max_num_batched_tokens=8192,
                                                                speculative_config=mtp,
                                                                sparse_indexer_max_decode_logits_mb=mb))
            for mb in (None, 0)]
    assert runs[1].devices[0].activation_bytes - runs[0].devices[0].activation_bytes == theirs
    assert runs[0].devices[0].kv_cache_bytes - runs[1].devices[0].kv_cache_bytes >= theirs
    (t,) = [t for t in runs[1].trace if t.name == "sparse indexer (rank 0)"]
    assert t.inputs["logits"] == off["dummy_logits_bytes"] and t.inputs["row_shard_exchange"] == 0
    assert "vllm.sparse_indexer.buffers" in [m.code for m in runs[0].warnings]


def test_the_fused_scratch_is_the_peak_for_a_small_prefill_budget_and_the_variable_drops_it():
    """A GLM-5-style indexer (32 heads) on 8 B200s at 16384 tokens, 8 sequences and a 64 MiB prefill budget: the
    fused kernel's scratch is above the dummy, so it is the indexer's peak; VLLM_USE_FUSED_MQA_TOPK=0 leaves the
    dummy alone."""
    env = {"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": "64"}
    on = _case("GlmMoeDsaForCausalLM", "10.0", env, max_model_len=16384, max_num_seqs=8)
    off = _case("GlmMoeDsaForCausalLM", "10.0", dict(env, VLLM_USE_FUSED_MQA_TOPK="0"), max_model_len=16384,
                max_num_seqs=8)
    assert on["peak"] == "fused_scratch" and off["peak"] == "dummy_logits" and off["fused_scratch_bytes"] == 0
    spec = _spec(on)
    runs = [check_vllm(spec, find_gpu("b200"), VLLMOptions(
        tp=8, max_model_len=16384, max_num_seqs=8, max_num_batched_tokens=8192, sparse_indexer_max_logits_mb=64,
        use_fused_mqa_topk=fused)) for fused in (True, False)]
    assert runs[0].devices[0].activation_bytes - runs[1].devices[0].activation_bytes == \
        on["peak_bytes"] - off["peak_bytes"]
    (w,) = [m for m in runs[0].warnings if m.code == "vllm.sparse_indexer.buffers"]
    assert "fused MQA + top-k" in w.text and "148 SMs" in w.text


def test_release_033_keeps_its_rule():
    """0.33.0: the dummy is VLLM_SPARSE_INDEXER_MAX_LOGITS_MB MiB beside the row-shard exchange, whatever the
    decode budget and fused kernel (0.33.0 reads neither variable)."""
    spec = load(V32)
    opts = VLLMOptions(tp=8, max_num_seqs=1024, engine_version="0.33.0", sparse_indexer_max_decode_logits_mb=0,
                       use_fused_mqa_topk=False)
    idx = _sparse_indexer(spec, opts, find_gpu("b200"), 8192, 163840, 1024, 0)
    assert idx is not None and not idx.release_034
    assert idx.logits == 512 * MIB and idx.exchange == 2 * 8192 * 2048 * 4 and idx.fused_scratch == 0


def test_pasted_commands_read_both_variables_and_the_logits_dtype():
    base = f"vllm serve {V32} -tp 8 --max-num-seqs 1024"
    o = read_command(f"VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB=0 VLLM_USE_FUSED_MQA_TOPK=0 {base}")[1].options
    assert o["sparse_indexer_max_decode_logits_mb"] == 0 and o["use_fused_mqa_topk"] is False
    with pytest.raises(InputError, match="invalid literal"):
        read_command(f"VLLM_USE_FUSED_MQA_TOPK=yes {base}")
    r = check_command(f"VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB=0 {base}", "8xb200")
    assert "--sparse-indexer-max-decode-logits-mb 0" in r.vramcalc_command
    assert r.result.command.startswith("VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB=0 vllm serve")
    g = check_command(f"VLLM_USE_FUSED_MQA_TOPK=0 {base}", "8xb200")
    assert "--no-fused-mqa-topk" in g.vramcalc_command and g.result.command.startswith("VLLM_USE_FUSED_MQA_TOPK=0 ")
    assert main(shlex.split(g.vramcalc_command)[1:] + ["--json"]) == 0
    assert not [m for m in r.result.warnings if m.code == "command.not_modelled"]
    (c,) = [c for c in CASES if c["env"] == {"VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB": "0"}
            and c["architecture"] == "DeepseekV32ForCausalLM" and c["compute_capability"] == "10.0"
            and c["engine_args"].get("max_num_seqs") == 1024 and len(c["engine_args"]) == 2]
    (t,) = [t for t in r.result.trace if t.name == "sparse indexer (rank 0)"]
    assert t.inputs["logits"] == c["dummy_logits_bytes"]
    f = check_command(base + " --attention-config '{\"indexer_logits_dtype\": \"float32\"}'", "8xb200")
    (c32,) = [c for c in CASES if c["engine_args"].get("attention_config") == {"indexer_logits_dtype": "float32"}
              and not c["env"]]
    (t,) = [t for t in f.result.trace if t.name == "sparse indexer (rank 0)"]
    assert t.inputs["logits"] == c32["dummy_logits_bytes"] and t.inputs["logits_dtype"] == "float32"
    with pytest.raises(InputError, match="Input should be 'auto', 'float32' or 'bfloat16'"):
        check_vllm(load(V32), find_gpu("b200"), VLLMOptions(tp=8, attention_config={"indexer_logits_dtype": "fp8"}))
    with pytest.raises(NotModelledError, match="indexer_logits_dtype"):
        check_vllm(load(V32), find_gpu("b200"), VLLMOptions(tp=8, engine_version="0.33.0",
                                                             attention_config={"indexer_logits_dtype": "float32"}))
