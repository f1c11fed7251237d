"""The per-layer cache kinds (vramcalc/cache_kinds.py) against figures real engines printed.

llama.cpp: every KV cache and recurrent-state buffer a real llama.cpp (build 4df29be, CPU) printed for
the GGUF models of tests/llamacpp_models.py (tests/data/llamacpp_runs.json): K and V MiB per cache from
the kinds' row widths (ggml row bytes, q8_0 / q4_0 included, the V-less MLA latent), the r and s MiB of
the recurrent state from the kinds' conv and temporal state shapes. The cells and streams are the
ones the log printed, so only the per-layer figures are under test here.

vLLM: block sizes and token counts vLLM logged, which follow from the per-layer page sizes."""

from __future__ import annotations

from math import ceil

import pytest

from test_llamacpp_oracle import RUNS, _id, _source, gguf_dir  # noqa: F401 (gguf_dir: the fixture)
from vramcalc.cache_kinds import FullAttention, MLALatent, Recurrent, SharedKV, SlidingWindow, cache_layers
from vramcalc.ggml import row_bytes
from vramcalc.sources.catalog import load

MIB = 2**20
GIB = 2**30
KV_RUNS = [r for r in RUNS if r["kv_caches"]]
RS_RUNS = [r for r in RUNS if r["rs"]]


@pytest.mark.parametrize("run", KV_RUNS, ids=[_id(r) for r in KV_RUNS])
def test_kv_row_widths_give_the_printed_k_and_v(run, gguf_dir):
    own = [c.attention for c in cache_layers(_source(run["model"], gguf_dir).spec)
           if c.attention is not None and not isinstance(c.attention, SharedKV)]
    # llama_kv_cache_iswa logs the base cache, then the SWA one
    groups = [g for g in ([a for a in own if not isinstance(a, SlidingWindow)],
                          [a for a in own if isinstance(a, SlidingWindow)]) if g]
    assert len(groups) == len(run["kv_caches"])
    for group, printed in zip(groups, run["kv_caches"]):
        assert len(group) == printed["layers"]
        cells = printed["cells"] * printed["seqs"]  # cells per stream x streams
        widths = [a.row_widths("latent_k") for a in group]
        k = sum(row_bytes(printed["type_k"], kw) for kw, _ in widths) * cells
        v = sum(row_bytes(printed["type_v"], vw) for _, vw in widths if vw) * cells
        assert (k / MIB, v / MIB) == (pytest.approx(printed["k_mib"], abs=0.0051),
                                      pytest.approx(printed["v_mib"], abs=0.0051))


def test_the_recorded_runs_cover_every_attention_kind_llama_cpp_caches(gguf_dir):
    kinds = {type(c.attention) for r in KV_RUNS for c in cache_layers(_source(r["model"], gguf_dir).spec)}
    assert {FullAttention, SlidingWindow, MLALatent} <= kinds
    assert {r["kv_caches"][0]["type_k"] for r in KV_RUNS} >= {"f16", "q8_0", "q4_0"}


@pytest.mark.parametrize("run", RS_RUNS, ids=[_id(r) for r in RS_RUNS])
def test_recurrent_state_shapes_give_the_printed_r_and_s(run, gguf_dir):
    spec = _source(run["model"], gguf_dir).spec
    states = [c.recurrent for c in cache_layers(spec) if c.recurrent is not None]
    printed = run["rs"][0]
    assert printed["layers"] == spec.num_layers  # the log counts every layer; attention layers hold no state
    seqs = printed["cells"]  # one state per sequence, F32 (llama_memory_recurrent)
    conv = sum(s.state_elements()[0] for s in states) * 4 * seqs
    temporal = sum(s.state_elements()[1] for s in states) * 4 * seqs
    assert (conv / MIB, temporal / MIB) == (pytest.approx(printed["r_mib"], abs=0.0051),
                                            pytest.approx(printed["s_mib"], abs=0.0051))


def test_the_recorded_runs_cover_every_recurrent_kind(gguf_dir):
    kinds = {c.recurrent.kind for r in RS_RUNS for c in cache_layers(_source(r["model"], gguf_dir).spec)
             if isinstance(c.recurrent, Recurrent)}
    assert kinds == {"mamba1", "mamba2", "gated_deltanet"}


def _first(name: str) -> tuple[FullAttention | SlidingWindow | MLALatent, Recurrent | None]:
    caches = cache_layers(load(name))
    attn = next(c.attention for c in caches if isinstance(c.attention, (FullAttention, SlidingWindow, MLALatent)))
    return attn, next((c.recurrent for c in caches if c.recurrent is not None), None)


@pytest.mark.parametrize("model,kv_bytes,block", [
    # vLLM 0.19.1, kaitchup/Qwen3.5-27B-autoround-W4A16 (the Qwen3.6-27B text dims): "Setting attention block
    # size to 784 tokens", "Padding mamba page size by 0.13%"; bf16 KV, GDN temporal state in float32
    ("qwen3.6-27b", 2, 784),
    # vLLM 0.24.0, RTX 5090 (club-3090#652): Qwen3.6-35B-A3B with fp8 KV, "Setting attention block size to 2096"
    ("Qwen/Qwen3.6-35B-A3B", 1, 2096),
])
def test_gdn_state_over_attention_page_gives_the_logged_block_size(model, kv_bytes, block):
    attn, state = _first(model)
    assert state is not None
    mamba = state.state_bytes(2, 4)  # conv state at the model's bf16, temporal state at float32
    per_token = attn.bytes_per_token(kv_bytes)  # one attention layer, TP 1
    assert 16 * ceil(mamba / (16 * per_token)) == block  # Platform._align_hybrid_block_size, kernel block 16
    if model == "qwen3.6-27b":
        assert round((block * per_token / mamba - 1) * 100, 2) == 0.13


def test_mla_latent_is_whole_on_each_tp_rank_as_logged():
    # vllm#20665 (vLLM ~0.9.2): DeepSeek-V2-Lite at TP 2 x PP 2; stage 0 (14 layers) logs 12.13 GiB free for
    # KV and 807,792 tokens (num_blocks // 1 group x 16): a 576-wide bf16 latent per layer on each rank
    attn, _ = _first("deepseek-ai/DeepSeek-V2-Lite")
    page = 16 * 14 * attn.bytes_per_token(2, tp=2)
    lo, hi = (int(g * GIB) // page * 16 for g in (12.125, 12.135))
    assert lo <= 807_792 <= hi


@pytest.mark.parametrize("kv_bytes,tokens", [(2, 476_016), (1, 952_032)])
def test_llama_kv_page_gives_the_logged_token_count(kv_bytes, tokens):
    # llm-d report, vLLM 0.19.0, H100: Llama-3.1-8B-Instruct, 58.11 GiB for KV, bf16 and fp8 KV
    caches = cache_layers(load("meta-llama/Llama-3.1-8B-Instruct"))
    per_token = sum(c.attention.bytes_per_token(kv_bytes) for c in caches if c.attention is not None)
    lo, hi = (int(g * GIB) // (16 * per_token) * 16 for g in (58.105, 58.115))
    assert lo <= tokens <= hi
