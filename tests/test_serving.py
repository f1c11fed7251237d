"""The serving model (vramcalc/serving.py) against measured figures: the seeds' scenarios
(tests/data/serving_seeds.json, sources there) and the held-out serving runs (tests/serving_cases.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vramcalc.gpus import find_gpu
from vramcalc.serving import Deployment, serve
from vramcalc.sources import load_model
from vramcalc.speed import weight_reads

sys.path.insert(0, str(Path(__file__).parent))
SEEDS = json.loads((Path(__file__).parent / "data" / "serving_seeds.json").read_text())


def _serve(model: str, quant: str, gpu: str, n: int = 1, prompt: int = 500, output: int = 256, **dep: object):
    spec = load_model(model)
    return serve(weight_reads(spec, quant), spec, Deployment(gpu=find_gpu(gpu), quant=quant, **dep),  # type: ignore[arg-type]
                 concurrency=n, prompt=prompt, output=output)


def test_gemma4_31b_awq_on_3090s_tp4_and_tp2():
    s = SEEDS["rtx3090_vllm_0_19_1"]
    tp4 = _serve("gemma-4-31b-it-nvfp4", "awq", "rtx-3090", engine="vllm", tp=4, link="pcie")
    tp2 = _serve("gemma-4-31b-it-nvfp4", "awq", "rtx-3090", engine="vllm", tp=2, link="pcie")
    lo, hi = s["gemma4_31b_awq_tp4_tok_s"]
    assert lo * 0.95 <= tp4.per_stream_tokens_per_s <= hi * 1.05
    assert tp2.per_stream_tokens_per_s == pytest.approx(s["gemma4_31b_awq_tp2_tok_s"], rel=0.08)


@pytest.mark.xfail(strict=True, reason="issue 21: vLLM --enforce-eager on Qwen3.6-27B at TP=2 on 3090s is modelled "
                   "2.7x slower, measured 6.1x. The kernels a step launches are counted per layer from vLLM v0.33.0's code "
                   "(896 here) at 26.3 us each, fitted on three TP=1 pairs (tp112, ve02, ve04); two held-out published "
                   "pairs come out near measured, a hybrid Gated-DeltaNet 27B at TP=1 (RTX 5090, -21%) and a MoE at TP=4 "
                   "(4x 4090D, -5%, two all-reduces a layer at one launch each), so neither a per-all-reduce nor a "
                   "Gated-DeltaNet (Triton) premium is seen in published runs. 6.1x needs about 80 us a launch on the "
                   "seed rig, whose host CPU is not recorded, or some 370 us more per eager all-reduce than a launch")
def test_enforce_eager_about_six_times_slower_on_qwen36_27b():
    s = SEEDS["rtx3090_vllm_0_19_1"]
    graphs = _serve("qwen3.6-27b", "gptq", "rtx-3090", engine="vllm", tp=2, link="pcie")
    eager = _serve("qwen3.6-27b", "gptq", "rtx-3090", engine="vllm", tp=2, link="pcie", enforce_eager=True)
    measured = s["qwen36_27b_gptq_tp2_tok_s"] / s["qwen36_27b_gptq_tp2_enforce_eager_tok_s"]
    assert graphs.per_stream_tokens_per_s / eager.per_stream_tokens_per_s == pytest.approx(measured, rel=0.2)


@pytest.mark.parametrize("n", [32, 64, 128])
def test_h100_8b_vllm_ahead_of_llamacpp_at_32_plus_streams(n):
    """What the published comparisons measured: llama-server at its default slots (-np 4), whose requests queue
    (Red Hat, tests/data/serving_seeds.json: llama.cpp's throughput 'remains consistent' as the load grows and 'its
    queuing model leads to high TTFT and constant ITL'), against vLLM's continuous batching."""
    need = SEEDS["h100_8b_vllm_vs_llamacpp"]["min_ratio_at_32_plus"]
    vllm = _serve("llama-3.1-8b-instruct", "awq", "h100-sxm", n, 1024, 256, engine="vllm")
    llama = _serve("llama-3.1-8b-instruct", "gguf:Q4_K_M", "h100-sxm", n, 1024, 256, engine="llamacpp")
    assert vllm.aggregate_tokens_per_s >= need * llama.aggregate_tokens_per_s
    # llama-server's aggregate is flat past its slots, and its requests queue (TTFT grows with the queue)
    at4 = _serve("llama-3.1-8b-instruct", "gguf:Q4_K_M", "h100-sxm", 4, 1024, 256, engine="llamacpp")
    assert llama.aggregate_tokens_per_s == pytest.approx(at4.aggregate_tokens_per_s, rel=0.05)
    assert llama.ttft_s > 4 * at4.ttft_s


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("replicas", [2, 4])
def test_replicas_never_faster_per_stream_than_one_replica_at_its_share(n, replicas):
    one = _serve("llama-3.1-8b-instruct", "awq", "rtx-3090", 1, engine="vllm")
    spread = _serve("llama-3.1-8b-instruct", "awq", "rtx-3090", n, engine="vllm", replicas=replicas)
    share = -(-n // replicas)  # the busiest replica's streams
    at_share = _serve("llama-3.1-8b-instruct", "awq", "rtx-3090", share, engine="vllm")
    assert spread.per_stream_tokens_per_s <= at_share.per_stream_tokens_per_s * (1 + 1e-9)
    assert spread.per_stream_tokens_per_s <= one.per_stream_tokens_per_s * (1 + 1e-9)
    if n == 1:  # one stream gets one replica's speed, however many replicas there are
        assert spread.aggregate_tokens_per_s == pytest.approx(one.aggregate_tokens_per_s)


def test_strix_halo_vllm_batch_scaling():
    """vLLM ROCm on the Strix Halo iGPU, 1 to 16 streams: the batch figures were not fitted on (only the
    single-stream run tp110 fixes the vllm:rocm efficiency)."""
    s = SEEDS["strix_halo"]["vllm_rocm_qwen3_0_6b"]
    for n, tok_s in s.items():
        e = _serve("qwen3-0.6b", "bf16", "ryzen-ai-max-plus-395", int(n), engine="vllm", backend="rocm")
        assert e.aggregate_tokens_per_s == pytest.approx(tok_s, rel=0.25)


@pytest.mark.xfail(strict=True, reason="issue 21: llama-server -np 4 on Qwen3.5-2B (a Gated DeltaNet hybrid) on the "
                   "Strix Halo measured 68 / 99 / 127 tok/s at 1 / 2 / 4 streams (steps 14.7 / 20.2 / 31.5 ms, about "
                   "+5.6 ms a sequence); the step model gives 3.8x at every file type (Q8_0: 78 / 153 / 295: +0.65 ms a "
                   "sequence of KV and recurrent state). Not modelled and not enough to close it: llama-server's host "
                   "sampling, n_vocab logits per slot copied into the candidate array and partial-sorted for top-k on "
                   "one CPU thread (common/sampling.cpp set_logits, src/llama-sampler.cpp top_k at 4df29be), which "
                   "llama-batched-bench skips; llama.cpp issue #27050 puts it at about 0.5 ms a slot a step "
                   "(RTX 5090 host, 32 slots: 41.2 ms TPOT on CPU sampling, 25.4 ms with -bs: 15.8 ms over 32), so "
                   "~1.5 ms of the measured ~17 ms from 1 to 4 streams; the gated_delta_net op runs on the HIP "
                   "backend (ggml-cuda.cu), so no CPU fallback either. The rest needs a llama-batched-bench run on gfx1151 at B = 1-8. vLLM ROCm on the "
                   "same model comes out at 20 tok/s alone because its one fitted efficiency (0.298 of 256 GB/s, "
                   "fixed by tp110, Qwen3-0.6B) carries a per-step overhead as bandwidth and scales with the weights; "
                   "no vLLM run of Qwen3.5-2B on this box is recorded to split it, so the ranking from 8 streams is "
                   "reversed; the run's file type is not recorded")
def test_strix_halo_llama_server_np4_against_vllm():
    """The seeds' Strix Halo series: llama-server -np 4's scaling from 1 to 4 streams as measured (a ratio, since
    the run's file type is not recorded), at least vLLM's speed on the same model up to 4 streams, and behind it
    from 8 streams on."""
    s = SEEDS["strix_halo"]["llama_server_np4_qwen35_2b"]
    for quant in ("gguf:Q4_K_M", "gguf:Q8_0", "gguf:BF16"):
        llama = {n: _serve("qwen3.5-2b", quant, "ryzen-ai-max-plus-395", n, engine="llamacpp", backend="rocm",
                           parallel=4).aggregate_tokens_per_s for n in (1, 2, 4, 8)}
        assert llama[4] / llama[1] == pytest.approx(s["4"] / s["1"], rel=0.25)
        vllm = {n: _serve("qwen3.5-2b", "bf16", "ryzen-ai-max-plus-395", n, engine="vllm",
                          backend="rocm").aggregate_tokens_per_s for n in (1, 2, 4, 8)}
        assert all(llama[n] >= vllm[n] for n in (1, 2, 4)) and vllm[8] > llama[8]


def test_batched_decode_terms_against_measured_h100_runs():
    """The decode step of a batch: TPOT at 4 to 64 streams of the held-out H100 runs within 25% median."""
    from serving_cases import deployment_of, load_runs, spec_reads

    from vramcalc import serving

    errs = []
    for r in load_runs():
        if r["role"] != "holdout" or r["gpu"] != "h100-sxm":
            continue
        dep = deployment_of(r)
        spec, reads = spec_reads(r["model"], r["quant"])
        itl = serving._one_replica(reads, spec, dep, r["batch_size"], r["isl"], r["osl"], serving.constants(dep))[0]
        errs.append(abs(r["silicon_tpot_ms"] / (itl * 1e3) - 1))
    assert len(errs) >= 20
    assert np.median(errs) <= 0.15


def test_moe_batches_against_measured_runs():
    """MoE decode at 4 to 256 streams (touched experts, every stream's KV): held-out TPOT within 20% median."""
    from serving_cases import deployment_of, load_runs, spec_reads

    from vramcalc import serving

    errs = []
    for r in load_runs():
        spec, reads = spec_reads(r["model"], r["quant"])
        if r["role"] != "holdout" or not reads.num_experts or r["batch_size"] < 4:
            continue
        dep = deployment_of(r)
        itl = serving._one_replica(reads, spec, dep, r["batch_size"], r["isl"], r["osl"], serving.constants(dep))[0]
        errs.append(abs(r["silicon_tpot_ms"] / (itl * 1e3) - 1))
    assert len(errs) >= 20
    assert np.median(errs) <= 0.2


def _llamacpp_batched_errors(role: str, min_batch: int = 2, source: str = "") -> list[float]:
    from llamacpp_batched_cases import deployment_of as lc_deployment
    from llamacpp_batched_cases import load_rows as lc_rows
    from serving_cases import spec_reads

    from vramcalc import serving

    errs = []
    for r in lc_rows():
        if r["role"] != role or r["B"] < min_batch or source not in r["source"]:
            continue
        spec, reads = spec_reads(r["model"], r["quant"])
        pred = sum(serving.step_terms(reads, spec, lc_deployment(r), r["B"], r["context"]).values())
        errs.append(abs(r["step_ms"] / pred - 1))
    return errs


def test_llamacpp_batched_decode_against_published_held_out_runs():
    """llama-batched-bench on a DGX Spark (benches/dgx-spark.md, build 6918) at 2 to 32 sequences and 512 to 8192
    prompt tokens, never fitted on: the step of B sequences (weights once, every sequence's KV, the fixed cost)."""
    errs = _llamacpp_batched_errors("holdout")
    assert len(errs) >= 60
    assert np.median(errs) <= 0.2
    assert np.percentile(errs, 90) <= 0.45


def test_llamacpp_int8_mmq_share_transfers_to_a_datacenter_ada_gpu():
    """The share of the int8 MMA rate fitted on the GeForce RTX 3090/4090 rows, on a held-out L40S (AD102, the
    RTX 4090's chip at the datacenter's full-rate FP16/BF16): llama-bench pp512 of Qwen3-8B Q5_K_M at b7199, 512
    tokens a forward, as measured (7,788 tok/s)."""
    errs = _llamacpp_batched_errors("holdout", min_batch=512, source="benchmark_results_20251203_182746.md")
    assert len(errs) == 1 and errs[0] <= 0.15


@pytest.mark.xfail(strict=True, reason="issue 21: the held-out A30 (GA100, Ampere datacenter) llama-bench pp512 of "
                   "Qwen3-8B Q5_K_M at b7199 measures 2,426 tok/s against 3,815 modelled (+57%): at 512 tokens a "
                   "forward it reaches 0.12 of its 330 int8 TOPS where the GeForce-fitted share is 0.195 (GA100's SM "
                   "has twice the MMA rate of GA102's, so mmq's per-SM dequantization work weighs more). A share for "
                   "GA100 / GH100 parts needs a calibration-split llama.cpp batched run on one; the only A30 row is "
                   "held out by the source-URL rule (tests/llamacpp_batched_cases.py)")
def test_llamacpp_int8_mmq_on_an_ampere_datacenter_gpu():
    errs = _llamacpp_batched_errors("holdout", min_batch=512, source="benchmark_results_4gpu_20251203_182732.md")
    assert len(errs) == 1 and errs[0] <= 0.25


def test_llamacpp_int8_mmq_compute_against_rtx4090_microbatches():
    """The quantized-GGUF compute bound (int8 MMA at one fitted share for every quantized type) against the
    published RTX 4090 microbatch sweeps of llama.cpp PR #7676 (Q4_0) and PR #7921 (Q2_K), 16 to 512 tokens a
    forward: flat while memory-bound, then linear in the tokens. These are calibration rows (the share is fitted
    on them with the other calibration rows): the check is that one share follows both curves over a 32x range
    of batch; the held-out check is the test above. Q2_K's slower dequantization at 16-64 tokens is the worst."""
    q4 = _llamacpp_batched_errors("calibrate", min_batch=16, source="llama.cpp/pull/7676")
    q2 = _llamacpp_batched_errors("calibrate", min_batch=16, source="llama.cpp/pull/7921")
    assert len(q4) == 6 and len(q2) == 6
    assert np.median(q4) <= 0.15 and max(q4) <= 0.3
    assert np.median(q4 + q2) <= 0.2 and max(q2) <= 0.65


@pytest.mark.parametrize("n", [32, 64, 128])
def test_h100_8b_vllm_ahead_of_llama_server_with_a_slot_per_stream(n):
    """The planner's llama.cpp layout at n streams: -np n --kv-unified (one KV buffer, every query masked over all
    cells). vLLM's aggregate stays ahead, and the gap widens with the streams."""
    vllm = _serve("llama-3.1-8b-instruct", "awq", "h100-sxm", n, 1024, 256, engine="vllm")
    llama = _serve("llama-3.1-8b-instruct", "gguf:Q4_K_M", "h100-sxm", n, 1024, 256, engine="llamacpp",
                   parallel=n, kv_unified=True)
    assert vllm.aggregate_tokens_per_s > 1.1 * llama.aggregate_tokens_per_s
    if n == 128:
        at32 = _serve("llama-3.1-8b-instruct", "gguf:Q4_K_M", "h100-sxm", 32, 1024, 256, engine="llamacpp",
                      parallel=32, kv_unified=True)
        assert llama.aggregate_tokens_per_s <= 1.1 * at32.aggregate_tokens_per_s  # flat: the masked attention grows as n^2


def test_h100_8b_vllm_twice_llama_server_at_64_with_a_slot_per_stream():
    """The published 2-3x at 32+ concurrent requests holds even against llama-server with a slot per stream (-np 64
    --kv-unified, 1024-token prompts, 256 out): vLLM 5,180 tok/s against llama.cpp's 2,580 on an H100 SXM (2.01x).
    llama.cpp's batched compute is a share of the int8 MMA rate (serving.format_tflops: 2 x the FP16-accumulate rate,
    1,979 TOPS here) fitted on the RTX 3090/4090 rows (0.195); the held-out L40S pp512 row (b7199) comes out within
    5% at that share. No llama.cpp batched run on a Hopper GPU is recorded (tests/data/llamacpp_batched_runs.json
    _coverage); the held-out A30 (GA100, twice the MMA rate per SM of the consumer chips) reaches only 0.12, and a
    Hopper share as low as that would widen vLLM's lead, never narrow it."""
    need = SEEDS["h100_8b_vllm_vs_llamacpp"]["min_ratio_at_32_plus"]
    vllm = _serve("llama-3.1-8b-instruct", "awq", "h100-sxm", 64, 1024, 256, engine="vllm")
    llama = _serve("llama-3.1-8b-instruct", "gguf:Q4_K_M", "h100-sxm", 64, 1024, 256, engine="llamacpp",
                   parallel=64, kv_unified=True)
    assert vllm.aggregate_tokens_per_s >= need * llama.aggregate_tokens_per_s
