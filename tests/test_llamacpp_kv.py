"""llama.cpp KV cache sizes against the K and V MiB its load logs print."""

import json

import pytest

from conftest import DATA
from vramcalc.llamacpp.kv import LlamaKVOptions, context_cells, llama_caches
from vramcalc.sources.catalog import load

MIB = 2**20
CASES = json.loads((DATA / "llamacpp_kv_logs.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_kv_cache_mib_as_logged(case):
    caches = llama_caches(load(case["model"]), LlamaKVOptions(**case["options"]))
    got = {c.name: (c.k_bytes / MIB, c.v_bytes / MIB) for c in caches}
    if {x["cache"] for x in case["caches"]} == set(got):
        for logged in case["caches"]:
            assert got[logged["cache"]] == (logged["k_mib"], logged["v_mib"])
    # builds before the separate SWA cache log one 'single' cache (c12, --swa-full): same bytes in all
    assert sum(k for k, _ in got.values()) == sum(x["k_mib"] for x in case["caches"])
    assert sum(v for _, v in got.values()) == sum(x["v_mib"] for x in case["caches"])


def test_swa_cache_cells_gpt_oss():
    # pad256(min(131072, 128 + 2048)) = 2304 cells at -ub 2048 (case c02)
    caches = llama_caches(load("gpt-oss-20b"), LlamaKVOptions(n_ctx=131072, n_ubatch=2048))
    assert {c.name: c.cells for c in caches} == {"non-SWA": 131072, "SWA": 2304}


def test_parallel_slots_split_the_context_and_pad_up():
    # -c 8192 -np 3 without --kv-unified: 3 streams of pad256(8192 / 3) = 2816 cells = 8448 in all
    assert context_cells(LlamaKVOptions(n_ctx=8192, n_seq_max=3)) == (2816, 3)
    assert context_cells(LlamaKVOptions(n_ctx=8192, n_seq_max=3, kv_unified=True)) == (8192, 1)


def test_mla_k_only_in_current_builds():
    spec = load("deepseek-ai/DeepSeek-R1")
    now = llama_caches(spec, LlamaKVOptions(n_ctx=32768))[0]
    assert now.v_bytes == 0 and now.k_bytes == 61 * 576 * 2 * 32768  # 68.6 KiB per token


def test_recurrent_state_is_f32_per_sequence():
    # Qwen3-Next: 36 GDN layers of (24,576 + 524,288) floats, per sequence, any context
    caches = {c.name: c for c in llama_caches(load("qwen3-next-80b-a3b-thinking"), LlamaKVOptions(n_ctx=4096, n_seq_max=2))}
    assert caches["recurrent"].k_bytes == 2 * 36 * (24_576 + 524_288) * 4


@pytest.mark.parametrize("model,seqs,mib", [
    # "output buffer size" in the logs of cases c01, c02, c04, c12, c35 (llamacpp_dev.json)
    ("Qwen/Qwen3-30B-A3B", 4, 2.32), ("openai/gpt-oss-20b", 1, 0.77), ("meta-llama/Llama-3.1-70B-Instruct", 1, 0.49),
    ("google/gemma-3-1b-it", 1, 1.00), ("deepseek-ai/DeepSeek-R1", 4, 1.97),
])
def test_output_buffer(model, seqs, mib):
    from vramcalc.llamacpp.kv import output_buffer_bytes
    assert round(output_buffer_bytes(load(model), seqs) / MIB, 2) == mib


def test_sliding_window_only_where_the_graph_keeps_an_iswa_cache():
    """Ministral-8B's config gives every layer a 32K window, but convert_hf_to_gguf writes it as a llama
    GGUF and llama.cpp's llama graph (src/models/llama.cpp) reads no window: every layer caches the whole
    context. Gemma 3 keeps its SWA cache (models/gemma3.cpp builds llm_graph_input_attn_kv_iswa)."""
    from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
    spec = load("mistralai/Ministral-8B-Instruct-2410")
    assert all(la.attention.kind == "sliding" for la in spec.layers)
    r = check_llamacpp(spec, None, LlamaOptions(n_ctx=65536, ftype="Q4_K_M"), solve=False)
    a = spec.layers[0].attention
    assert [c.name for c in r.caches] == ["single"]
    assert r.devices[-1].kv_buffer_bytes == 36 * 65536 * a.num_kv_heads * (a.head_dim_k + a.head_dim_v) * 2
    assert any(w.code == "llamacpp.kv.no_swa" and "keeps no sliding-window cache" in w.text for w in r.warnings)
    g = check_llamacpp(load("google/gemma-3-4b-it"), None, LlamaOptions(n_ctx=65536, ftype="Q4_K_M"), solve=False)
    assert {c.name for c in g.caches} == {"non-SWA", "SWA"}
    assert not any(w.code == "llamacpp.kv.no_swa" for w in g.warnings)
