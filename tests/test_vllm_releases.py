"""Per-release budget rules below 0.11 and the checks that depend on the release: the oldest release modelled,
the start-up free-memory gate (from 0.9.1), CUDA graphs outside the budget before 0.20, fp8 KV on Ampere.
Oracles: vLLM's sources at the release tags (named in data/vllm.json / data/vllm_platforms.json) and the
failed start-ups of tests/data/vllm_startup_failures.json."""

import json
from pathlib import Path

from conftest import DATA
from vramcalc.gpus import GPU, find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

GRAPH_FAILURES = json.loads((DATA / "vllm_startup_failures.json").read_text())["cases"]


def codes(r):
    return [e.code for e in r.errors]


def test_releases_below_0_8_are_refused_by_name():
    """v0.7.3 vllm/envs.py: VLLM_USE_V1 defaults to 0 (V0's profiler is not modelled); v0.8.5: 1."""
    r = check_vllm(load("llama-3.1-8b"), find_gpu("h100-sxm"), VLLMOptions(engine_version="0.7.3"))
    assert not r.fits and codes(r) == ["vllm.version.unmodelled"]
    assert "vramcalc models vLLM 0.8.0 and later" in r.errors[0].text
    assert check_vllm(load("llama-3.1-8b"), find_gpu("h100-sxm"), VLLMOptions(engine_version="0.8.5",
                                                                                max_model_len=8192)).fits


def test_free_memory_gate_only_from_0_9_1():
    """Worker.init_device raises 'Free memory on device ... on startup' in v0.9.1 and later, not in v0.9.0 or
    v0.8.5: DeepSeek-V3-AWQ on 16 RTX 3090s at utilization 0.99 passes start-up on the V1 releases without it."""
    spec = load("deepseek-ai/DeepSeek-R1")  # DeepSeek-V3's architecture and shapes
    gpu = find_gpu("rtx3090")
    for v, gated in (("0.8.5", False), ("0.9.0", False), ("0.9.1", True), ("0.10.1", True), ("0.19.1", True)):
        r = check_vllm(spec, gpu, VLLMOptions(engine_version=v, tp=16, quantization="awq", max_model_len=4096,
                                              gpu_memory_utilization=0.99, enforce_eager=True))
        assert ("vllm.startup.free_memory" in codes(r)) == gated, (v, codes(r))


def test_non_torch_before_0_9_1_counts_the_whole_device():
    """v0.8.5 determine_available_memory charges total - free - torch allocated: the CUDA context (and, under
    TP, NCCL) sits inside the budget, so less is left for the KV cache than in 0.9.1-0.10, where only what
    grows after the snapshot (NCCL included) counts, and in 0.11, where NCCL precedes the snapshot."""
    spec, gpu = load("llama-3.1-8b"), find_gpu("h100-sxm")
    kv = {v: check_vllm(spec, gpu, VLLMOptions(engine_version=v, tp=2, max_model_len=8192)).devices[0].kv_cache_bytes
          for v in ("0.8.5", "0.10.1", "0.11.0")}
    assert kv["0.8.5"] < kv["0.10.1"] < kv["0.11.0"]


def _gpu(case):
    gpu = find_gpu(case["gpu"])
    if case.get("gpu_total_gib"):
        gpu = GPU(**{**gpu.model_dump(), "usable_bytes": int(case["gpu_total_gib"] * 2**30), "usable_source": "as logged"})
    return gpu


def test_no_recorded_failure_is_a_fit():
    """Every failed start-up of tests/data/vllm_startup_failures.json, as it was run, is not a 'fits'."""
    for case in GRAPH_FAILURES:
        assert not check_vllm(load(case["model"]), _gpu(case), VLLMOptions(**case["options"])).fits, case["id"]


def test_growth_past_the_budget_at_tp8_is_guarded():
    """vllm-project/vllm#51590: gpt-oss-120b at TP 8 on 31.38 GiB cards, utilization 0.95, grew 1.37 GiB past its
    budget and failed. The memory model fits at its estimate; vramcalc's outside-budget guard refuses it and names
    the utilization that leaves 1.6 GiB."""
    case = next(c for c in GRAPH_FAILURES if c["id"] == "gpt_oss_120b_8x_rtx_pro_4500")
    r = check_vllm(load(case["model"]), _gpu(case), VLLMOptions(**case["options"]))
    assert r.fits_at_estimate and codes(r) == ["vllm.verdict.headroom"] and r.errors[0].fix == "--gpu-memory-utilization 0.94"


def test_graph_capture_failure_is_not_a_fit():
    """QwenLM/Qwen3#1387: Qwen3-30B-A3B on 4x A10, vLLM 0.8.5, died capturing CUDA graphs. Neither the logged
    command nor the default utilization is a 'fits'; the default one fails on the graphs, in torch's words."""
    for case in GRAPH_FAILURES[:1]:
        spec, gpu = load(case["model"]), find_gpu(case["gpu"])
        assert not check_vllm(spec, gpu, VLLMOptions(**case["options"])).fits, case["id"]
        default = check_vllm(spec, gpu, VLLMOptions(**{**case["options"], "gpu_memory_utilization": None}))
        assert not default.fits and "vllm.cudagraph.oom" in codes(default)
        assert default.errors[-1].text.startswith("torch.OutOfMemoryError: CUDA out of memory.")
        assert default.errors[-1].fix.startswith("--enforce-eager")
        eager = check_vllm(spec, gpu, VLLMOptions(**{**case["options"], "gpu_memory_utilization": None,
                                                      "enforce_eager": True}))
        assert "vllm.cudagraph.oom" not in codes(eager)


def test_graph_headroom_is_not_checked_from_0_20():
    """From 0.20 determine_available_memory subtracts the graph estimate inside the budget instead."""
    case = GRAPH_FAILURES[0]
    r = check_vllm(load(case["model"]), find_gpu(case["gpu"]),
                   VLLMOptions(**{**case["options"], "gpu_memory_utilization": None, "engine_version": "0.20.0"}))
    assert "vllm.cudagraph.oom" not in codes(r)


def test_fp8_kv_on_ampere_as_vllm_selects():
    """The CUDA selector's order on SM 8.x is FLASH_ATTN (fp8 only with FA3 on SM 9.0), FLASHINFER (head sizes
    up to 256 in v0.19.1, 512 in v0.33.0), TRITON_ATTN (no native fp8 below SM 8.9: a compile error in v0.19.1,
    vllm-project/vllm#26431; an explicit ValueError in v0.33.0). Gemma-4's 512-wide full-attention heads leave
    Triton on a 3090 in 0.19.1; in 0.33.0 / 0.34.0 Gemma4Config.verify_and_update_config names TRITON_ATTN for
    every layer where FA4 does not run, whatever the KV dtype (vLLM's own selection on CPU:
    tests/data/vllm_kv_layout_backend_oracle_v0.33.0.json and v0.34.0.json, Gemma 4 on SM 8.6 with fp8_e4m3), so
    it is refused there too. Llama's 128 take FlashInfer at both releases."""
    gpu = find_gpu("rtx3090")
    gemma, llama = load("google/gemma-4-31B-it"), load("llama-3.1-8b")
    old = check_vllm(gemma, gpu, VLLMOptions(engine_version="0.19.1", tp=4, max_model_len=8192,
                                             kv_cache_dtype="fp8_e4m3"))
    assert not old.fits and "vllm.attention.fp8_kv_unsupported" in codes(old)
    assert "type fp8e4nv not supported in this architecture" in old.errors[0].text
    new = check_vllm(gemma, gpu, VLLMOptions(engine_version="0.33.0", tp=4, max_model_len=8192,
                                             kv_cache_dtype="fp8_e4m3"))
    assert not new.fits and "vllm.attention.fp8_kv_unsupported" in codes(new)
    assert "Gemma4Config.verify_and_update_config selects TRITON_ATTN" in next(
        e.text for e in new.errors if e.code == "vllm.attention.fp8_kv_unsupported")
    for v in ("0.19.1", "0.33.0"):
        r = check_vllm(llama, gpu, VLLMOptions(engine_version=v, max_model_len=8192, kv_cache_dtype="fp8"))
        assert "vllm.attention.fp8_kv_unsupported" not in codes(r)
    ada = check_vllm(gemma, find_gpu("rtx4090"), VLLMOptions(engine_version="0.19.1", tp=4, max_model_len=8192,
                                                             kv_cache_dtype="fp8_e4m3"))
    assert "vllm.attention.fp8_kv_unsupported" not in codes(ada)  # SM 8.9: native fp8


def test_cuda_graph_terms_hold_on_every_logged_estimate():
    """vLLM's own 'Estimated CUDA graph memory' lines (tests/data/vllm_cudagraph_estimates.json), calibration and
    held-out alike: none is above the upper end the verdict takes for its model kind."""
    from vramcalc.vllm.weights import vllm_rules
    upper = vllm_rules().verdict_margin.cuda_graph_upper_gib
    cases = json.loads((DATA / "vllm_cudagraph_estimates.json").read_text())["cases"]
    for c in cases:
        moe, hyb = c["kind"] == "moe", c["kind"] == "hybrid"
        top = (upper.graphs_gib(moe, hyb, c["layers_per_rank"], c["piecewise_sizes"], c.get("tp", 1),
                                c.get("full_sizes", 0)) if c.get("layers_per_rank") else upper.of(moe, hyb))
        assert c["estimated_gib"] <= top, c["id"]
    # the hybrid kind is what pushes past the dense / MoE band (FULL decode graphs for the recurrent layers)
    assert max(c["estimated_gib"] for c in cases if c["kind"] == "hybrid") > upper.moe


def test_pasted_image_release_gets_its_rules_and_the_one_flag_fix(monkeypatch):
    """A vllm/vllm-openai image tag names the release: 0.8.5 takes 0.8.0's rules (the A10 capture failure is refused
    and --enforce-eager is the re-checked fix, written back as the image takes it); 0.7.3 is refused by name."""
    from vramcalc import engine_checks
    from vramcalc.pasted_command import check_command, read_command

    monkeypatch.setattr(engine_checks, "instead", lambda *a, **k: [])  # the planner's other layouts: not tested here
    case = GRAPH_FAILURES[0]
    cmd = "docker run --gpus all vllm/vllm-openai:v0.8.5 --model Qwen/Qwen3-30B-A3B --tensor-parallel-size 4"
    r = check_command(cmd, "4xa10")
    assert r.result.engine_version == case["vllm_version"] and "vllm.cudagraph.oom" in codes(r.result)
    assert r.corrected_command == cmd + " --enforce-eager" and check_command(r.corrected_command, "4xa10").fits
    p, _ = read_command("docker run --gpus all vllm/vllm-openai:v0.7.3 --model Qwen/Qwen3-8B")
    assert p.engine_version == "0.7.3"  # the engine then refuses it by name (test_releases_below_0_8_...)


def test_the_seeds_70b_awq_starts_on_0_19_1():
    """The seeds' `vllm serve casperhansen/llama-3.3-70b-instruct-awq -tp 2 --max-model-len 8192 --quantization awq
    --gpu-memory-utilization 0.92` on 2x RTX 4090 starts at 0.19.1 (users run it): its graphs fit in what the budget
    leaves, counting vLLM's share at the snapshot without custom all-reduce (GeForce: no P2P), as logged on 2x RTX
    5090 (1.13 GiB, noonghunna/club-3090#1087)."""
    r = check_vllm(load("meta-llama/Llama-3.3-70B-Instruct"), find_gpu("rtx4090"),
                   VLLMOptions(engine_version="0.19.1", tp=2, max_model_len=8192, quantization="awq",
                               gpu_memory_utilization=0.92))
    assert r.fits, codes(r)


def test_dense_graph_figures_are_the_calibration_fit():
    """data/vllm.json's dense CUDA-graph figures per PIECEWISE piece graph (layers + 1 per capture size) are
    tools/fit_cudagraph.py's fit on the calibration logs (median for the estimate, maximum for the verdict's upper
    end, after the TP > 1 factor of the one TP 1 / TP 2 pair), rounded up, never below it; the FULL decode graphs
    take vLLM v0.33.0's own floor per graph (vllm/v1/worker/gpu/cudagraph_utils.py _MIN_PER_GRAPH_BYTES, 1 MiB)."""
    import importlib.util

    from vramcalc.vllm.weights import vllm_rules
    spec = importlib.util.spec_from_file_location("fit_cudagraph", Path(__file__).parent.parent / "tools/fit_cudagraph.py")
    assert spec and spec.loader
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    dense = fit.fit()["dense"]
    est = vllm_rules().versions.by_version["0.33.0"].cudagraph_gib
    upper = vllm_rules().verdict_margin.cuda_graph_upper_gib
    assert est is not None and est.dense_per_piece_graph is not None and upper.dense_per_piece_graph is not None
    assert dense["n"] >= 5
    assert dense["estimate"] <= est.dense_per_piece_graph < dense["estimate"] + 1e-6
    assert dense["upper"] <= upper.dense_per_piece_graph < dense["upper"] + 1e-6
    assert est.dense_tp_factor == upper.dense_tp_factor == 1.3 and abs(dense["tp_factor"] - 1.3) < 1e-9  # 0.65 / 0.50
    assert est.dense_per_full_graph == upper.dense_per_full_graph == dense["per_full_graph"] == 2**20 / 2**30


def test_graph_logs_added_after_the_fit_are_held_out():
    """Logs added to tests/data/vllm_cudagraph_estimates.json after the dense fit carry calibration: false
    (the 80-layer vLLM 0.19.0 logs of llm-d-incubation/llm-d-planner's accuracy sweep, at TP 2 and 4): the fit tool
    holds them out whatever their URL's hash, so the fit is the same without them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_cudagraph", Path(__file__).parent.parent / "tools/fit_cudagraph.py")
    assert spec and spec.loader
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    late = [c for c in fit.CASES if c.get("calibration") is False]
    assert {c["id"] for c in late} >= {"plannerlog_qwen25_72b_tp2", "plannerlog_llama33_70b_fp8dyn_tp2",
                                       "plannerlog_llama33_70b_w8a8_tp2", "plannerlog_llama33_70b_fp8dyn_tp4",
                                       "kagaho_llama3_70b_awq_l40s_tp2"}
    assert all(fit.held_out(c) for c in late)
    with_them = fit.fit()
    fit.CASES = [c for c in fit.CASES if c.get("calibration") is not False]
    assert fit.fit() == with_them


def test_capture_sizes_follow_vllm_and_the_logs():
    """vLLM v0.33.0's default capture sizes (vllm/config/vllm.py _set_cudagraph_sizes; FULL decode up to
    max_num_seqs, vllm/v1/cudagraph_dispatcher.py) against the logged counts of tests/data/vllm_cudagraph_estimates.json
    capture_counts: 'PIECEWISE=51 (largest=512), FULL=35 (largest=256)' at the default 256 sequences
    (LMCache/LMCache#3430, vllm-project/vllm#39559) and 'PIECEWISE=19 (largest=128), FULL=11 (largest=64)' at 64
    (a GB300 worker's log quoted in arpera/srt-slurm tests/test_memory_report.py). 2048 batched tokens: any budget
    above the largest size (the logs' 512 and 128). Fewer sequences capture fewer graphs, so the dense estimate
    shrinks with them; more than 256 add FULL decode graphs."""
    from vramcalc.vllm.engine import cudagraph_capture_counts
    logs = json.loads((DATA / "vllm_cudagraph_estimates.json").read_text())["capture_counts"]["logs"]
    by_seqs = {log["max_num_seqs"]: (log["piecewise"], log["full"]) for log in logs}
    assert set(by_seqs) == {64, 256}
    for seqs, counts in by_seqs.items():
        assert cudagraph_capture_counts(seqs, 2048) == counts, seqs
    assert cudagraph_capture_counts(256, 2048) == cudagraph_capture_counts(256, 8192, sm100=True)
    assert cudagraph_capture_counts(512, 8192) == (51, 51)
    llama = load("meta-llama/Llama-3.3-70B-Instruct")
    g = {n: check_vllm(llama, find_gpu("h100"), VLLMOptions(tp=2, max_model_len=8192, max_num_seqs=n)
                       ).devices[0].cuda_graph_bytes for n in (64, 256)}
    assert 0 < g[64] < g[256]  # fewer sequences, fewer graphs (the sizes themselves are checked above)


def test_capture_sizes_follow_vllms_own_function():
    """--cudagraph-capture-sizes, --max-cudagraph-capture-size and --performance-mode against vLLM 0.30.0's own
    VllmConfig._set_cudagraph_sizes (tests/data/vllm_cudagraph_sizes_oracle.json, tools/vllm_cudagraph_sizes_oracle.py):
    the same sizes, the same PIECEWISE and FULL decode counts, and vLLM's ValueError where a list and a different
    largest size are both given."""
    import pytest
    from vramcalc.vllm.engine import cudagraph_capture_counts, cudagraph_capture_sizes
    fx = json.loads((DATA / "vllm_cudagraph_sizes_oracle.json").read_text())
    assert fx["release"] == "0.30.0" and len(fx["cases"]) >= 20
    for c in fx["cases"]:
        i, want = c["input"], c["vllm"]
        args = (i["max_num_seqs"], i["max_num_batched_tokens"], False, 1, tuple(i["cudagraph_capture_sizes"])
                if "cudagraph_capture_sizes" in i else None, i.get("max_cudagraph_capture_size"),
                i.get("performance_mode", "balanced"))
        if "error" in want:
            with pytest.raises(ValueError) as e:
                cudagraph_capture_sizes(*args)
            assert str(e.value) == want["error"]
            continue
        assert cudagraph_capture_sizes(*args) == want["sizes"], i
        assert cudagraph_capture_counts(*args) == (want["piecewise"], want["full_decode"]), i


def test_capture_size_flags_scale_the_dense_graph_term():
    """The dense graph term is per decoder layer x PIECEWISE size (data/vllm.json cudagraph_gib), so the sizes vLLM
    keeps (vllm/config/vllm.py _set_cudagraph_sizes, as the oracle above pins) scale it; vLLM's ValueError for an
    inconsistent pair is the verdict; with --enforce-eager vLLM never reads them (no graphs, no error)."""
    llama = load("meta-llama/Llama-3.3-70B-Instruct")
    h100 = find_gpu("h100")

    def run(**kw: object) -> object:
        return check_vllm(llama, h100, VLLMOptions(tp=2, max_model_len=8192, **kw))  # type: ignore[arg-type]

    base = run().devices[0].cuda_graph_bytes
    capped = run(max_cudagraph_capture_size=100).devices[0].cuda_graph_bytes  # 15 sizes (oracle), 51 by default
    assert round(capped / base, 4) == round(15 / 51, 4)
    listed = run(cudagraph_capture_sizes=(32, 1, 8, 8, 4, 2, 1)).devices[0].cuda_graph_bytes  # 5 sizes
    assert round(listed / base, 4) == round(5 / 51, 4)
    inter = run(performance_mode="interactivity", max_num_batched_tokens=2048).devices[0].cuda_graph_bytes  # 76
    assert round(inter / base, 4) == round(76 / 51, 4)
    bad = run(cudagraph_capture_sizes=(1, 2, 4, 8), max_cudagraph_capture_size=16)
    assert not bad.fits and [e.code for e in bad.errors] == ["vllm.cudagraph.sizes_inconsistent"]
    assert "should be consistent with the max value of cudagraph_capture_sizes(=8)" in bad.errors[0].text
    eager = run(cudagraph_capture_sizes=(1, 2, 4, 8), max_cudagraph_capture_size=16, enforce_eager=True)
    assert eager.fits and eager.devices[0].cuda_graph_bytes == 0


def test_throughput_mode_doubles_the_batch_defaults():
    """v0.30.0 vllm/engine/arg_utils.py _set_default_max_num_seqs_and_batched_tokens_args: --performance-mode
    throughput doubles the default max_num_seqs and max_num_batched_tokens (given values are kept), so the
    activation peak grows as at those values given."""
    from vramcalc.vllm.engine import _batch_defaults
    qwen, gpu = load("Qwen/Qwen3-8B"), find_gpu("4090")
    mnbt, seqs = _batch_defaults(gpu)
    tput = check_vllm(qwen, gpu, VLLMOptions(max_model_len=8192, performance_mode="throughput")).devices[0]
    given = check_vllm(qwen, gpu, VLLMOptions(max_model_len=8192, max_num_seqs=2 * seqs,
                                              max_num_batched_tokens=2 * mnbt)).devices[0]
    assert tput.activation_bytes == given.activation_bytes and tput.cuda_graph_bytes == given.cuda_graph_bytes
    kept = check_vllm(qwen, gpu, VLLMOptions(max_model_len=8192, performance_mode="throughput", max_num_seqs=seqs,
                                             max_num_batched_tokens=mnbt)).devices[0]
    plain = check_vllm(qwen, gpu, VLLMOptions(max_model_len=8192)).devices[0]
    assert kept.activation_bytes == plain.activation_bytes


def test_margins_cover_the_held_out_errors_of_each_term():
    """Each term's verdict margin (data/vllm.json verdict_margin) is at least the worst error that term makes on the
    held-out start-up logs (tests/data/vllm_budget_cases.json: every model but Llama-3.1-8B-Instruct)."""
    from vramcalc.vllm.weights import vllm_rules
    vm = vllm_rules().verdict_margin
    cases = json.loads((DATA / "vllm_budget_cases.json").read_text())["cases"]
    worst = {"weights": 0.0, "activation": 0.0, "non_torch": 0.0}
    for c in (c for c in cases if not c.get("calibration")):
        gpu = find_gpu(c["gpu"])
        if c.get("gpu_total_gib"):
            gpu = GPU(**{**gpu.model_dump(), "usable_bytes": int(c["gpu_total_gib"] * 2**30), "usable_source": "logged"})
        r = check_vllm(load(c["model"]), gpu, VLLMOptions(**c["options"]))
        d = r.devices[0]
        got = {"weights": d.weights_bytes, "activation": d.activation_bytes, "non_torch": d.non_torch_bytes}
        for k in worst:
            if c["logged"].get(k):
                worst[k] = max(worst[k], abs(got[k] / 2**30 - c["logged"][k]) / c["logged"][k])
    assert all(worst.values()), worst  # each term has held-out logs
    assert vm.weights_from_config >= worst["weights"] and vm.activation >= worst["activation"]
    assert vm.non_torch >= worst["non_torch"], worst


def test_the_seeds_70b_awq_tp2_on_0_33_is_refused_with_a_rechecked_fix():
    """At 0.33 the CUDA graphs are inside the budget. An 80-layer dense model at TP 2 capturing the default 51
    PIECEWISE sizes (81 piece graphs each) and 35 FULL graphs is estimated at 0.000258 GiB per piece graph x1.3 plus
    1 MiB per FULL graph (1.42 GiB per GPU; tools/fit_cudagraph.py), which leaves 0.88 GiB of KV cache on 2x RTX 4090
    against the 1.25 GiB one 8,192-token request needs: refused at the estimate in vLLM's words, whatever the margin.
    It would take an estimate of 1.05 GiB to start; the one logged 80-layer model (Qwen2.5-72B at TP 4 on 4x L40S,
    vllm_cudagraph_estimates.json agentic_eks_72b_tp4) printed 2.73 GiB, the 80-layer logs at TP 2 1.22-1.92 GiB
    (test_the_80_layer_tp2_graph_logs_keep_the_seeds_70b_refused_on_0_33), and every dense log's cost per piece graph
    is above the 0.000189 that 1.05 GiB would take. The offered fix (shorter context and fewer sequences, sized at the
    upper end of the graph term) re-checks as starting. The recorded start-up failures stay refused (no false
    'fits')."""
    from vramcalc.pasted_command import check_command

    r = check_vllm(load("meta-llama/Llama-3.3-70B-Instruct"), find_gpu("rtx4090"),
                   VLLMOptions(engine_version="0.33.0", tp=2, max_model_len=8192, quantization="awq",
                               gpu_memory_utilization=0.92))
    assert not r.fits and not r.fits_at_estimate and "vllm.kv.max_model_len" in codes(r)
    d = r.devices[0]
    assert round(d.weights_bytes / 2**30, 2) == 18.55 and round(d.cuda_graph_bytes / 2**30, 2) == 1.42
    cmd = ("docker run --gpus all vllm/vllm-openai:v0.33.0 casperhansen/llama-3.3-70b-instruct-awq "
           "--tensor-parallel-size 2 --max-model-len 8192 --quantization awq --gpu-memory-utilization 0.92")
    c = check_command(cmd, "2x4090")
    assert c.result.engine_version == "0.33.0"
    assert not c.fits and c.corrected_command and check_command(c.corrected_command, "2x4090").fits
    # sized at the graph term's upper end: 32 sequences capture 11 PIECEWISE and 7 FULL sizes, and 5,760 tokens fit
    assert c.corrected_command.endswith("--gpu-memory-utilization 0.92 --max-model-len 5760 --max-num-seqs 32")
    for f in GRAPH_FAILURES:
        gpu = find_gpu(f["gpu"])
        if f.get("gpu_total_gib"):
            gpu = GPU(**{**gpu.model_dump(), "usable_bytes": int(f["gpu_total_gib"] * 2**30), "usable_source": "logged"})
        assert not check_vllm(load(f["model"]), gpu, VLLMOptions(**f["options"])).fits, f["id"]


def test_the_80_layer_tp2_graph_logs_keep_the_seeds_70b_refused_on_0_33():
    """Every logged graph pool of an 80-layer dense model at TP 2 (tests/data/vllm_cudagraph_estimates.json: the
    Llama-3-70B AWQ capture on two L40S, vLLM 0.16.0, 1.22 GiB for 51 PIECEWISE and 35 FULL sizes,
    kagaho/VLLM_Serve_llama3-70b-awq_on_L40S_with_Tensor_Parallelism_2; the H100 0.19.0 estimates of
    llm-d-incubation/llm-d-planner, 1.63-1.92 GiB for 51 and 51) costs more per piece graph than the seeds' 70B AWQ
    command on 2x RTX 4090 would need to start at 0.33 (1.25 GiB of KV for one 8,192-token request: Llama-3.3-70B's
    80 layers x K and V x 4 KV heads per rank x head size 128 x 2 bytes a token). The graph term alone does not
    decide it: at the L40S log's own 1.22 GiB the KV cache is still 0.17 GiB short, and the log leaves 1.25 GiB for
    activation and non-torch together where vramcalc plans 0.86 on the GeForce pair."""
    from vramcalc.vllm.weights import vllm_rules
    est = vllm_rules().versions.by_version["0.33.0"].cudagraph_gib
    assert est is not None and est.dense_tp_factor
    r = check_vllm(load("meta-llama/Llama-3.3-70B-Instruct"), find_gpu("rtx4090"),
                   VLLMOptions(engine_version="0.33.0", tp=2, max_model_len=8192, quantization="awq",
                               gpu_memory_utilization=0.92))
    d = r.devices[0]
    need = 80 * 2 * 4 * 128 * 2 * 8192
    short = need - d.kv_cache_bytes
    assert not r.fits_at_estimate and round(short / 2**30, 2) == 0.37
    allowed = (d.cuda_graph_bytes - short) / 2**30  # the largest graph term with which it would start
    logs = [c for c in json.loads((DATA / "vllm_cudagraph_estimates.json").read_text())["cases"]
            if c["kind"] == "dense" and c.get("layers_per_rank") == 80 and c.get("tp") == 2]
    assert {c["id"] for c in logs} >= {"kagaho_llama3_70b_awq_l40s_tp2", "plannerlog_qwen25_72b_tp2"}

    def per_piece(gib: float, full: int, sizes: int) -> float:
        return (gib - full * 2**-10) / (81 * sizes * est.dense_tp_factor)

    for c in logs:
        assert per_piece(c["estimated_gib"], c["full_sizes"], c["piecewise_sizes"]) > per_piece(allowed, 35, 51), c["id"]
    l40s = next(c for c in logs if c["id"] == "kagaho_llama3_70b_awq_l40s_tp2")
    assert round(short / 2**30 - (d.cuda_graph_bytes / 2**30 - l40s["estimated_gib"]), 2) == 0.17
    budget = next(c for c in json.loads((DATA / "vllm_budget_cases.json").read_text())["cases"]
                  if c["id"] == l40s["id"])
    rest = (budget["options"]["gpu_memory_utilization"] * find_gpu("l40s").usable_bytes / 2**30
            - budget["logged"]["weights"] - budget["logged"]["kv_gib"])
    assert round(rest, 2) == 1.25 and (d.activation_bytes + d.non_torch_bytes) / 2**30 < rest


def test_max_model_len_above_the_model_is_refused_unless_allowed():
    """vllm/config/model.py _get_and_verify_max_len (v0.30.0, v0.33.0): a --max-model-len above the config's
    max_position_embeddings (Qwen3-8B's config.json: 40960) raises, in these words, unless
    VLLM_ALLOW_LONG_MAX_MODEL_LEN=1; at the model's own length it starts."""
    from vramcalc.pasted_command import check_command

    spec, gpu = load("Qwen/Qwen3-8B"), find_gpu("h100-sxm")
    over = check_vllm(spec, gpu, VLLMOptions(max_model_len=100000))
    assert not over.fits
    e = next(m for m in over.errors if m.code == "vllm.max_model_len.exceeds_model")
    assert e.text.startswith("ValueError: User-specified max_model_len (100000) is greater than the derived "
                             "max_model_len (max_position_embeddings=40960.0 or model_max_length=None in model's "
                             "config.json). To allow overriding this maximum, set the env var "
                             "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.")
    assert check_vllm(spec, gpu, VLLMOptions(max_model_len=40960)).fits
    allowed = check_vllm(spec, gpu, VLLMOptions(max_model_len=100000, allow_long_max_model_len=True))
    assert allowed.fits and "vllm.max_model_len.long_allowed" in [w.code for w in allowed.warnings]
    pasted = check_command("VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 vllm serve Qwen/Qwen3-8B --max-model-len 100000",
                           system="h100-sxm")
    assert pasted.fits and pasted.options.get("allow_long_max_model_len") is True
    assert not check_command("vllm serve Qwen/Qwen3-8B --max-model-len 100000", system="h100-sxm").fits


def test_a_pasted_command_above_the_model_length_gets_the_models_length_as_its_fix():
    from vramcalc.pasted_command import check_command

    r = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 100000", system="h100-sxm")
    assert not r.fits and r.fix is not None and r.fix.startswith("--max-model-len 40960")
    assert r.corrected_command == "vllm serve Qwen/Qwen3-8B --max-model-len 40960"
