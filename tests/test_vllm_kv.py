"""vLLM KV pool: page sizes, groups, blocks and the logged capacity, against real vLLM logs.

Logs print 'Available KV cache memory' rounded to 0.01 GiB, so a logged token count is checked
against the range that rounding allows."""

import pytest

from vramcalc.sources.catalog import load
from vramcalc.errors import NotModelledError
from vramcalc.vllm.engine import VLLMOptions
from vramcalc.vllm.kv import KVSettings, capacity, kv_pool

GIB = 2**30


def token_range(model, gib, max_model_len, stages=1, **kw):
    s = KVSettings(**kw)
    spec = load(model)
    pools = [kv_pool(spec, s, st) for st in range(s.pp)]
    out = []
    for g in (gib - 0.005, gib + 0.005):
        caps = [capacity(p, int(g * GIB), max_model_len, s) for p in pools[:stages]]
        c = min(caps, key=lambda c: c.num_blocks)  # get_kv_cache_configs: the minimum over workers
        out.append(c)
    return out


@pytest.mark.parametrize("model,gib,L,kw,tokens,conc", [
    # llm-d report, vLLM 0.19.0, H100 (each tests/data case keeps its source)
    ("meta-llama/Llama-3.1-8B-Instruct", 58.11, 2048, {}, 476_016, None),
    ("meta-llama/Llama-3.1-8B-Instruct", 58.11, 32768, {}, 476_016, None),
    ("meta-llama/Llama-3.1-8B-Instruct", 58.11, 8192, {"kv_cache_dtype": "fp8"}, 952_032, None),
    # vLLM 0.11.0, H100, --block-size 128 (llm-d-benchmark empirical results); Mistral-Small-3.2's text
    # stack is Mistral-Small-24B's: 40 layers x 8 KV heads x 128
    ("mistralai/Mistral-Small-24B-Instruct-2501", 28.20, 16000, {"block_size": 128}, 184_832, 11.55),
    # vLLM 0.24.0, RTX 5090 (club-3090#652, vllm_dev id 55): a GDN hybrid MoE with fp8 KV and its float32
    # SSM state (block 2096, as the "Setting attention block size to 2096 tokens" lines of such runs print)
    ("Qwen/Qwen3.6-35B-A3B", 6.01, 131072, {"kv_cache_dtype": "fp8"}, 569_878, 4.35),
])
def test_logged_capacity_within_rounding(model, gib, L, kw, tokens, conc):
    lo, hi = token_range(model, gib, L, **kw)
    assert lo.kv_cache_tokens <= tokens <= hi.kv_cache_tokens
    if conc is not None:
        assert round(lo.max_concurrency, 2) <= conc <= round(hi.max_concurrency, 2)


def test_mla_pp2_tp2_min_over_stages_and_legacy_token_count():
    # vllm#20665 (vLLM ~0.9.2): DeepSeek-V2-Lite, TP 2 x PP 2 on L4s, L = 1024. Stage 0 (14 of 27
    # layers) logs 12.13 GiB, stage 1 (13 layers) 11.33 GiB; the engine takes the smaller block count.
    s = KVSettings(tp=2, pp=2)
    spec = load("deepseek-ai/DeepSeek-V2-Lite")
    p0, p1 = kv_pool(spec, s, 0), kv_pool(spec, s, 1)
    assert p0.bytes_per_block == 16 * 14 * 576 * 2 and p1.bytes_per_block == 16 * 13 * 576 * 2  # TP-independent
    for g0 in (12.125, 12.135):
        n = min(p0.num_blocks(int(g0 * GIB)), p1.num_blocks(int(11.33 * GIB)))
        assert n == p0.num_blocks(int(g0 * GIB))  # stage 0 is the tighter one
    lo = capacity(p0, int(12.125 * GIB), 1024, s, "legacy")
    hi = capacity(p0, int(12.135 * GIB), 1024, s, "legacy")
    assert lo.kv_cache_tokens <= 807_792 <= hi.kv_cache_tokens
    assert round(lo.max_concurrency, 2) <= 788.86 <= round(hi.max_concurrency, 2)


def test_hybrid_gdn_block_size_qwen3_next():
    # docs/vllm.md#hybrid-block-size: GDN state 1,097,728 B; attention 2 KV heads x 256 x 2 x 2 B = 2048 B/token;
    # block size 16 x ceil(1,097,728 / 32,768) = 544 at TP 1 and 272 at TP 4
    spec = load("Qwen/Qwen3-Next-80B-A3B-Thinking")
    p1 = kv_pool(spec, KVSettings())
    assert (p1.block_size, p1.page_bytes) == (544, 544 * 2048)
    assert [(g.kind, g.layers) for g in p1.groups] == [("full", 12), ("mamba", 12), ("mamba", 12), ("mamba", 12)]
    assert kv_pool(spec, KVSettings(tp=4)).block_size == 272


def test_sliding_window_reservation_gpt_oss():
    # docs/vllm.md#kv-groups: 18 sliding (W 128) + 18 full layers, bytes_per_block 589,824; at L 131072,
    # mnbt 8192 and async scheduling: 8192 full blocks + ceil((127 + 16384) / 16) + 1 = 1033
    spec = load("openai/gpt-oss-120b")
    s = KVSettings(max_num_batched_tokens=8192)
    p = kv_pool(spec, s)
    assert p.bytes_per_block == 589_824
    assert p.blocks_per_request(131072, s) == 8192 + 1033
    # without the hybrid manager every layer holds the full length
    off = KVSettings(max_num_batched_tokens=8192, hybrid_manager=False)
    assert kv_pool(spec, off).blocks_per_request(131072, off) == 8192


def test_sliding_window_reservation_and_token_count_before_0_21():
    # vllm_dev id 6: vLLM 0.10.1.1, gpt-oss-120b at TP 4, L 16384, A100 default mnbt 2048. The window holds
    # W - 1 + one batch (no in-flight batches before 0.26): 1024 + ceil(2175 / 16) + 1 = 1161 blocks, and
    # the log prints num_blocks // 2 groups x 16 (before 0.21)
    s = KVSettings(tp=4, max_num_batched_tokens=2048, in_flight_batches=False)
    p = kv_pool(load("openai/gpt-oss-120b"), s)
    assert p.blocks_per_request(16384, s) == 1161
    c = capacity(p, 330_018 * p.bytes_per_block, 16384, s, "legacy")  # the logged num_gpu_blocks
    assert (c.num_blocks, c.kv_cache_tokens, round(c.max_concurrency, 2)) == (330_018, 2_640_144, 284.25)


def test_gemma3_groups_and_padding_layers():
    # 52 sliding + 10 full: group size 10, sliding layers dealt i::6 into 9,9,9,9,8,8 (8 padding slots)
    p = kv_pool(load("google/gemma-3-27b-it"), KVSettings())
    assert [g.layers for g in p.groups if g.kind == "sliding"] == [9, 9, 9, 9, 8, 8]
    assert p.padding_layers == 8 and p.bytes_per_block == 10 * 16 * 16 * 128 * 2 * 2


def test_kv_heads_replicate_past_tp():
    spec = load("meta-llama/Llama-3.1-8B")  # 8 KV heads: per-token bytes stop falling at TP 8
    pages = [kv_pool(spec, KVSettings(tp=tp)).page_bytes for tp in (1, 2, 4, 8, 16)]
    assert pages == [65536, 32768, 16384, 8192, 8192]


def test_mla_is_not_sharded_by_tp():
    spec = load("deepseek-ai/DeepSeek-V3")
    assert kv_pool(spec, KVSettings(tp=1)).page_bytes == kv_pool(spec, KVSettings(tp=8)).page_bytes == 16 * 576 * 2


def test_qwen35_state_in_float32_sets_the_logged_block_size():
    """vLLM 0.19.1 start-up of kaitchup/Qwen3.5-27B-autoround-W4A16 (Qwen3_5ForConditionalGeneration, the
    Qwen3.6-27B text dims), a public transcript: "Setting attention block size to 784 tokens" and "Padding
    mamba page size by 0.13%". 784 needs the GDN temporal state in float32 (the config's mamba_ssm_dtype,
    applied by vLLM's Qwen3_5ForConditionalGenerationConfig hook); at bf16 it would be 400."""
    spec = load("qwen3.6-27b")
    assert spec.ssm_state_dtype == "float32"
    pool = kv_pool(spec, KVSettings())
    assert pool.block_size == 784
    mamba = 10240 * 3 * 2 + 48 * 128 * 128 * 4  # conv state at bf16 + temporal state at fp32
    assert round((pool.page_bytes / mamba - 1) * 100, 2) == 0.13
    bf16 = spec.model_copy(update={"ssm_state_dtype": None, "architecture": "Qwen3NextForCausalLM"})
    assert kv_pool(bf16, KVSettings()).block_size == 400  # an architecture whose hook does not read it


def test_hybrid_refuses_more_sequences_than_blocks_from_0_20():
    """vllm/config/compilation.py (0.20.0+): max_num_seqs above the block count stops CUDA-graph capture;
    0.19 capped the capture sizes silently. The recipe logs (vllm_dev ids 59-61) show the message."""
    from vramcalc.gpus import find_gpu
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    spec, gpu = load("qwen3.6-27b"), find_gpu("rtx-pro-6000-blackwell")
    r = check_vllm(spec, gpu, VLLMOptions(gpu_memory_utilization=0.95))
    assert not r.fits and r.num_gpu_blocks < 1024
    assert r.errors[-1].code == "vllm.mamba.seqs_exceed_blocks"
    assert f"max_num_seqs (1024) exceeds available Mamba cache blocks ({r.num_gpu_blocks})" in r.errors[-1].text
    lower = check_vllm(spec, gpu, VLLMOptions(gpu_memory_utilization=0.95, max_num_seqs=r.num_gpu_blocks))
    assert lower.fits_at_estimate  # the promise keeps a margin: a few blocks fewer
    assert check_vllm(spec, gpu, VLLMOptions(gpu_memory_utilization=0.95, max_num_seqs=r.num_gpu_blocks - 40)).fits
    assert check_vllm(spec, gpu, VLLMOptions(gpu_memory_utilization=0.95, enforce_eager=True)).fits
    assert check_vllm(spec, gpu, VLLMOptions(gpu_memory_utilization=0.95, engine_version="0.19.0")).fits


def test_mamba_cache_dtypes_set_the_state_page():
    """vLLM 0.33.0 vllm/model_executor/layers/mamba/mamba_utils.py _mamba_state_dtype: --mamba-ssm-cache-dtype sets
    the temporal state, --mamba-cache-dtype the conv state (and the temporal one when the former is auto). Qwen3-Next's
    Gated DeltaNet state (config.json: 32 value heads of 128, 16 key heads of 128, conv kernel 4): conv 8192 x 3,
    temporal 32 x 128 x 128. The attention block then grows to hold the page (platforms/interface.py
    _align_hybrid_block_size: 16 x cdiv(mamba page, 16 x 2048 bytes per token)); the default page is the oracle's
    (tests/data/vllm_oracle/v0.33.0.json: block 544, 1114112 bytes)."""
    spec = load("Qwen/Qwen3-Next-80B-A3B-Thinking")
    conv, temporal = 8192 * 3, 32 * 128 * 128
    assert kv_pool(spec, KVSettings()).block_size == 544
    for ssm, cache, conv_b, temp_b in (("float32", "auto", 2, 4), ("auto", "float32", 4, 4),
                                       ("bfloat16", "float32", 4, 2)):
        page = conv * conv_b + temporal * temp_b
        p = kv_pool(spec, KVSettings(mamba_ssm_cache_dtype=ssm, mamba_cache_dtype=cache))
        assert p.block_size == 16 * -(-page // (16 * 2048)) and p.page_bytes == p.block_size * 2048, (ssm, cache)


def test_disable_hybrid_kv_cache_manager_allocates_local_layers_as_full():
    """vLLM 0.33.0 vllm/v1/core/kv_cache_planning.py unify_hybrid_kv_cache_specs / _promote_local_kv_cache_specs:
    with the hybrid manager off, sliding-window layers beside full attention become FullAttentionSpec (one uniform
    group, every layer at max_model_len); a model of one attention kind keeps its specs; attention + Mamba is not
    modelled. Gemma-3-27B: 62 layers, 16 KV heads of 128, bf16 (config.json)."""
    from vramcalc.vllm.engine import _kv_settings

    spec = load("google/gemma-3-27b-it")
    s = _kv_settings(spec, VLLMOptions(disable_hybrid_kv_cache_manager=True), "0.33.0", 8192, 131072)
    p = kv_pool(spec, s)
    assert [(g.kind, g.layers) for g in p.groups] == [("full", 62)]
    assert p.blocks_per_request(131072, s) * p.bytes_per_block == 131072 * 62 * 16 * 128 * 2 * 2
    on = _kv_settings(spec, VLLMOptions(), "0.33.0", 8192, 131072)
    assert kv_pool(spec, on).blocks_per_request(131072, on) * kv_pool(spec, on).bytes_per_block < \
        p.blocks_per_request(131072, s) * p.bytes_per_block
    llama = load("meta-llama/Llama-3.1-8B-Instruct")
    assert _kv_settings(llama, VLLMOptions(disable_hybrid_kv_cache_manager=True), "0.33.0", 8192, 8192).hybrid_manager
    with pytest.raises(NotModelledError, match="recurrent"):
        _kv_settings(load("Qwen/Qwen3-Next-80B-A3B-Thinking"), VLLMOptions(disable_hybrid_kv_cache_manager=True),
                     "0.33.0", 8192, 8192)


def test_pp_layer_partition_sets_each_stages_kv_layers():
    # vllm/distributed/utils.py get_pp_indices: VLLM_PP_LAYER_PARTITION=20,16 on Qwen3-8B's 36 layers
    spec = load("Qwen/Qwen3-8B")
    s = KVSettings(pp=2, pp_partition=(20, 16))
    assert [sum(g.layers for g in kv_pool(spec, s, st).groups) for st in (0, 1)] == [20, 16]
    assert [sum(g.layers for g in kv_pool(spec, KVSettings(pp=2), st).groups) for st in (0, 1)] == [18, 18]
