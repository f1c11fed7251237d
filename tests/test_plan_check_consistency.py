"""One verdict: every layout `plan` recommends, re-checked with the options it was checked with
(Candidate.vllm_options / llamacpp_options), fits, and its max context and memory figures are the
check's own (issue 20 item 5)."""

from __future__ import annotations

from functools import lru_cache

import vramcalc
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.plan import Candidate, plan
from vramcalc.spec import ModelSpec
from vramcalc.systems import System, parse_system
from vramcalc.vllm.engine import check_vllm, derived_max_model_len
import pytest

# its module-level caches are shared by its tests: one xdist worker runs them all (pyproject --dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_plan_check_consistency")

GIB = 2**30
# (model, system, context, concurrency, host RAM GiB, goals): dense, MoE, hybrid, MLA, sliding-window models
# on one and several GPUs, several nodes and unified memory; a few contexts and concurrencies
CASES = [
    ("qwen3-30b-a3b", "rtx4070", 8192, 1, None, ("latency", "context")),      # MoE, experts on the CPU
    ("qwen3-30b-a3b", "rtx4090", 32768, 2, None, ("latency",)),
    ("qwen3-8b", "2x4090", 8192, 1, None, ("latency", "context")),            # dense: TP, PP, replicas, layer and tensor split
    ("qwen3-8b", "rtx4070", 16384, 4, None, ("latency",)),
    ("llama-3.1-70b", "rtx4090", 8192, 1, 128, ("latency", "context")),       # dense, -ngl offload
    ("llama-3.3-70b", "4x3090", 16384, 2, None, ("latency", "context")),
    ("gemma-3-12b", "rtx4090", 32768, 1, None, ("latency", "context")),       # sliding window
    ("gemma-3-27b", "h100-sxm", 65536, 4, None, ("latency",)),
    ("deepseek-v2-lite", "rtx4090", 16384, 1, None, ("latency", "context")),  # MLA
    ("deepseek-v2-lite", "strix-halo", 8192, 2, None, ("latency",)),
    ("granite-4.0-h-small", "rtx4090", 16384, 1, None, ("latency",)),  # hybrid (Mamba2 + attention + MoE)
    ("falcon-h1-7b", "2x4090", 8192, 8, None, ("latency",)),
    ("gpt-oss-20b", "rtx4070", 8192, 1, None, ("latency", "context")),        # MXFP4 MoE, sliding window
    ("gpt-oss-120b", "m4-max(64GiB)", 8192, 1, None, ("latency",)),
    ("qwen3-235b-a22b", "2x8xH100", 32768, 16, None, ("latency",)),  # several nodes
    ("mixtral-8x7b-instruct-v0.1", "4x3090", 8192, 1, None, ("latency",)),
    ("llama-3.1-8b", "4x3090", 8192, 4, None, ("throughput",)),
    ("qwen3-4b", "h100-sxm", 32768, 1, None, ("latency",)),
]


@lru_cache(maxsize=None)
def _model(name: str) -> ModelSpec:
    return vramcalc.load_model(name)


@lru_cache(maxsize=None)
def _plans() -> list[tuple[ModelSpec, System, int | None, Candidate]]:
    out = []
    for model, system_text, ctx, conc, ram, goals in CASES:
        spec, system = _model(model), parse_system(system_text)
        ram_bytes = ram * GIB if ram else None
        for goal in goals:
            r = plan(spec, system, context=ctx, concurrency=conc, goal=goal, host_ram_bytes=ram_bytes, top=10)
            out += [(spec, system, ram_bytes, c) for c in r.recommendations]
    return out


def disagreements(spec: ModelSpec, system: System, ram: int | None, c: Candidate) -> list[str]:
    """What the check with the recommendation's own options says differently (empty: one verdict)."""
    model_max = derived_max_model_len(spec)
    why = []
    if c.engine == "vllm":
        assert c.vllm_options is not None
        gpu = min(system.gpus, key=lambda g: g.usable_bytes)
        v = check_vllm(spec, gpu, c.vllm_options)
        if not v.fits:
            why.append(f"does not fit: {[m.code for m in v.errors]}")
        if c.max_context != min(v.safe_max_model_len, model_max):
            why.append(f"max context {c.max_context} vs check {v.safe_max_model_len}")
        if [(d.used_bytes, d.available_bytes) for d in c.devices] != [(d.budget_bytes, d.total_bytes) for d in v.devices]:
            why.append("device figures differ")
        if c.max_concurrency != round(v.max_concurrency * c.layout.replicas, 2):
            why.append(f"concurrency {c.max_concurrency} vs check {v.max_concurrency} x {c.layout.replicas}")
        if not any(v.command in cmd for cmd in c.commands):
            why.append(f"command {v.command!r} not among the plan's")
        return why
    opts = c.llamacpp_options
    assert opts is not None
    gl = (list(system.gpus) * system.nodes)[:c.layout.gpus_per_replica]
    r = check_llamacpp(spec, gl if len(gl) > 1 else gl[0], opts, None, ram)
    if not r.fits:
        why.append(f"does not fit: {[m.code for m in r.errors]}")
    largest = max(c.context, min(model_max, (r.max_ctx or 0) // opts.n_parallel))
    if c.max_context != largest:
        why.append(f"max context {c.max_context} vs check {largest} (largest -c {r.max_ctx})")
    if [(d.device, d.used_bytes, d.available_bytes) for d in c.devices] != \
            [(d.device, d.total_bytes, d.available_bytes) for d in r.devices]:
        why.append("device figures differ")
    if r.command.split(" ", 3)[3] not in c.commands[-1 if c.layout.nodes > 1 else 0]:
        why.append(f"command {r.command!r} not the plan's")
    return why


def test_at_least_100_recommendations_of_every_kind():
    recs = _plans()
    assert len(recs) >= 100
    kinds = {(c.engine, c.layout.split if c.engine == "llamacpp" else "tp") for _, _, _, c in recs}
    assert {("vllm", "tp"), ("llamacpp", "none"), ("llamacpp", "layer"), ("llamacpp", "offload")} <= kinds


def test_check_confirms_every_recommendation():
    bad = {}
    for spec, system, ram, c in _plans():
        why = disagreements(spec, system, ram, c)
        if why:
            bad[f"{spec.id} on {system.gpus[0].id} x{len(system.gpus) * system.nodes} {c.engine} {c.quant} "
                f"kv {c.kv_cache_dtype} {c.layout} ctx {c.context}"] = why
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


def test_the_max_context_is_the_boundary():
    """It fits at the plan's max context and not one step above: a token for vLLM's --max-model-len,
    256 cells for llama.cpp's -c (as llama.cpp pads it)."""
    bad, seen = [], set()
    for spec, system, ram, c in _plans():
        key = (spec.id, system.gpus[0].id, len(system.gpus), c.engine, str(c.vllm_options or c.llamacpp_options))
        if key in seen or c.max_context >= derived_max_model_len(spec):
            continue
        seen.add(key)
        if c.engine == "vllm":
            o, gpu = c.vllm_options, min(system.gpus, key=lambda g: g.usable_bytes)
            assert o is not None
            fits = [check_vllm(spec, gpu, o.model_copy(update={"max_model_len": n})).fits
                    for n in (c.max_context, c.max_context + 1)]
        else:
            lo = c.llamacpp_options
            assert lo is not None
            gl = (list(system.gpus) * system.nodes)[:c.layout.gpus_per_replica]
            cells = check_llamacpp(spec, gl if len(gl) > 1 else gl[0], lo, None, ram, limits="context").max_ctx or 0
            fits = [check_llamacpp(spec, gl if len(gl) > 1 else gl[0], lo.model_copy(update={"n_ctx": n}), None, ram,
                                   solve=False).fits for n in (cells, cells + 256)]
        if fits != [True, False]:
            bad.append(f"{spec.id} {c.engine} {c.quant} {c.layout}: fits at the max context and above: {fits}")
    assert len(seen) >= 30 and not bad, bad


def test_offload_is_the_boundary():
    """-ngl N fits and N + 1 does not; --n-cpu-moe N fits and N - 1 does not (the plan's offload rows)."""
    bad, seen = [], set()
    for spec, system, ram, c in _plans():
        o = c.llamacpp_options
        if c.engine != "llamacpp" or c.layout.split != "offload" or o is None or (spec.id, str(o)) in seen:
            continue
        seen.add((spec.id, str(o)))
        nearer = {"n_cpu_moe": o.n_cpu_moe - 1} if o.n_cpu_moe else {"n_gpu_layers": (o.n_gpu_layers or 0) + 1}
        if check_llamacpp(spec, system.gpus[0], o.model_copy(update=nearer), None, ram, solve=False).fits:
            bad.append(f"{spec.id} {c.quant} {c.layout}: {nearer} fits too")
    assert len(seen) >= 20 and not bad, bad


def test_check_reports_the_largest_context_for_every_slot_and_for_tensor_split():
    from vramcalc.gpus import find_gpu

    spec = _model("llama-3.1-8b")
    opts = LlamaOptions(n_ctx=16384, n_parallel=4, ftype="Q4_K_M")
    r = check_llamacpp(spec, find_gpu("rtx4090"), opts)
    # 4 slots share the cells: the search goes up to 4 x the training context, not to -c or the training context
    assert spec.max_position_embeddings < r.max_ctx < 4 * spec.max_position_embeddings
    big, gpus = _model("llama-3.3-70b"), parse_system("4x3090").gpus
    tensor = LlamaOptions(n_ctx=16384, n_parallel=4, ftype="IQ4_XS", split_mode="tensor")
    t = check_llamacpp(big, gpus, tensor)  # --fit does not run with tensor split; the largest context is still known
    assert t.fits and t.max_gpu_layers == big.num_layers + 1 and t.max_ctx is not None
    for n, fits in ((t.max_ctx, True), (t.max_ctx + 256, False)):
        assert check_llamacpp(big, gpus, tensor.model_copy(update={"n_ctx": n}), solve=False).fits is fits

if __name__ == "__main__":
    import time
    t = time.time()
    recs = _plans()
    print(f"{len(recs)} recommendations, planned in {time.time() - t:.1f} s")
    n_bad = 0
    for spec, system, ram, c in recs:
        why = disagreements(spec, system, ram, c)
        if why:
            n_bad += 1
            print(spec.id, system.gpus[0].id, c.engine, c.quant, c.kv_cache_dtype, c.layout, c.context, why)
    print(f"{n_bad} of {len(recs)} disagree; {time.time() - t:.1f} s")
