"""The decode speed llama-server gives with a draft model (-md) or with the KV cache in host memory (-nkvo), on top of
the serving estimate (vramcalc/serving.py).

Draft (tools/server/server-context.cpp update_slots at 4df29be): each step the draft decodes --spec-draft-n-max k
tokens one at a time (k steps of the draft's weights for the running slots), then the target verifies the sampled token
and the k drafts of every slot in one batch (its weights read once, its matmuls over k + 1 tokens a slot, each slot's KV
read once). With a per-token acceptance a (Leviathan et al., 'Fast Inference from Transformers via Speculative
Decoding', ICML 2023, eq. 1) a step yields (1 - a^(k+1)) / (1 - a) tokens. The acceptance llama.cpp prints is the share
of drafted tokens kept, rate(k) = a (1 - a^k) / (k (1 - a)); a stated rate is read at the command's k.

-nkvo (src/llama-graph.cpp build_attn_mha: with offload_kqv off every node between the KV store and the attention
output runs on the CPU): each step the CPU reads each running slot's KV at the host's memory bandwidth
(data/speed.json host_ram_bandwidth_gbs), and each layer's Q/K/V cross to the host and the attention output back (two
PCIe hops a layer).
"""

from __future__ import annotations

from ..data_files import load
from ..data_models import LlamaSpecRun, LlamaSpeculative
from ..gpus import GPU
from ..serving import Deployment, ServingEstimate, kv_bytes, step_terms
from ..spec import ModelSpec
from ..speed import reads_from_gguf, speed_data, weight_reads


# the speculative estimate's error on the held-out run of data/llamacpp_speculative.json (tests/test_llamacpp_extras.py
# checks it): 15.8 tok/s predicted against 10.8 measured
HELD_OUT_ERROR = 0.47


def spec_data() -> LlamaSpeculative:
    return load("llamacpp_speculative.json", LlamaSpeculative)


def default_run() -> LlamaSpecRun:
    d = spec_data()
    return next(r for r in d.runs if r.id == d.default)


def per_token(rate: float, k: int) -> float:
    """The per-token acceptance a whose printed rate at k drafted tokens is `rate` (bisection; rate(k) rises with a)."""
    if k <= 1 or rate <= 0:
        return max(0.0, min(rate, 0.999999))
    lo, hi = 0.0, 0.999999
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid * (1 - mid ** k) / (k * (1 - mid)) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def printed_rate(a: float, k: int) -> float:
    return a * (1 - a ** k) / (k * (1 - a)) if k and a < 1 else (1.0 if k else 0.0)


def tokens_per_step(a: float, k: int) -> float:
    """Tokens a draft-and-verify step yields: the accepted drafts and the target's own token."""
    return float(k + 1) if a >= 1 else (1 - a ** (k + 1)) / (1 - a)


def _step_ms(terms: dict[str, float]) -> float:
    return sum(terms.values())


def speculative_ms(spec: ModelSpec, dep: Deployment, quant: str | None, draft_spec: ModelSpec, draft_tensors: list,
                   k: int, running: int, context: int) -> tuple[float, float, float]:
    """(draft ms, verify ms, plain target step ms) of one step of `running` slots at `context`."""
    reads = weight_reads(spec, quant)
    d_reads = reads_from_gguf(draft_spec, draft_tensors)
    plain = step_terms(reads, spec, dep, running, context)
    wide = step_terms(reads, spec, dep, running * (k + 1), context)
    # the verify batch reads the weights and each slot's KV once, and multiplies over k + 1 tokens a slot
    compute = wide["memory"] + wide.get("compute_over_memory", 0.0)
    verify = max(plain["memory"], compute) + sum(v for t, v in wide.items() if t not in ("memory", "compute_over_memory"))
    overhead = spec_data().draft_token_overhead.ms  # fitted on a published run (data/llamacpp_speculative.json)
    draft = k * (_step_ms(step_terms(d_reads, draft_spec, dep.model_copy(update={"quant": None}), running, context))
                 + overhead)
    return draft, verify, _step_ms(plain)


def with_draft(est: ServingEstimate, spec: ModelSpec, gpu: GPU, dep: Deployment, quant: str | None,
               draft_spec: ModelSpec, draft_tensors: list, k: int, rate: float | None, running: int
               ) -> tuple[ServingEstimate, str]:
    """The estimate with speculative decoding, and the line that says how (acceptance and its source)."""
    run = default_run()
    given = rate is not None
    a = per_token(rate, k) if rate is not None else per_token(run.accept, run.n_draft)
    shown = rate if rate is not None else printed_rate(a, k)
    context = est.prompt_tokens + est.output_tokens // 2
    draft_ms, verify_ms, plain_ms = speculative_ms(spec, dep, quant, draft_spec, draft_tensors, k, running, context)
    e = tokens_per_step(a, k)
    step_ms = draft_ms + verify_ms
    extra_ms = max(0.0, est.itl_s * 1e3 - plain_ms)  # what the estimate adds beside the decode step (other prompts)
    itl = (step_ms / e + extra_ms) / 1e3
    factor = est.itl_s / itl
    source = "--draft-acceptance" if given else f"{run.accept:.1%} at {run.n_draft} drafted tokens, {run.target} with " \
        f"{run.draft} ({run.url})"
    line = (f"speculative decoding: {k} drafted tokens a step at acceptance {shown:.0%} ({source}; per token "
            f"{a:.2f}): {e:.2f} tokens per step of {draft_ms:.2f} ms drafting + {verify_ms:.2f} ms verifying; "
            f"{factor:.2f}x the decode speed without the draft")
    terms = {**est.terms_ms, "draft": round(draft_ms / e, 4), "verify": round(verify_ms / e, 4)}
    for t in ("memory", "compute_over_memory", "mmvq_low_bit", "fixed", "allreduce"):
        terms.pop(t, None)
    held = spec_data().draft_token_overhead
    return est.model_copy(update={
        "per_stream_tokens_per_s": 1 / itl, "itl_s": itl, "aggregate_tokens_per_s": est.aggregate_tokens_per_s * factor,
        "single_stream_tokens_per_s": est.single_stream_tokens_per_s * factor,
        "uncertainty": max(est.uncertainty, HELD_OUT_ERROR), "uncertainty_p90": max(est.uncertainty_p90, HELD_OUT_ERROR),
        "uncertainty_slice": f"llama.cpp speculative decoding: {HELD_OUT_ERROR:.0%} on the held-out published run "
                             f"({', '.join(held.held_out)})",
        "basis": est.basis + "; " + line, "terms_ms": terms}), line


def with_host_kv(est: ServingEstimate, spec: ModelSpec, running: int, kv_dtype: str | None = None
                 ) -> tuple[ServingEstimate, str]:
    """The estimate with the attention on the CPU over a KV cache in host memory (-nkvo)."""
    sd = speed_data()
    context = est.prompt_tokens + est.output_tokens // 2
    host_bw = float(sd.host_ram_bandwidth_gbs) * 1e9
    read_ms = running * kv_bytes(spec, context, kv_dtype, "llamacpp") / host_bw * 1e3
    hops_ms = 2 * spec.num_layers * sd.links["pcie"].hop_us * 1e-3
    add = (read_ms + hops_ms) / 1e3
    itl = est.itl_s + add
    factor = est.itl_s / itl
    line = (f"-nkvo: attention runs on the CPU over the KV cache in host memory: {read_ms:.2f} ms a step reading "
            f"{running} slot(s) x {context} cells at {sd.host_ram_bandwidth_gbs} GB/s (data/speed.json, an assumed "
            f"desktop) + {hops_ms:.2f} ms of PCIe hops (2 a layer); {factor:.2f}x the decode speed with the KV on the "
            "GPU. Prompt processing's attention on the CPU is not in the TTFT")
    return est.model_copy(update={
        "per_stream_tokens_per_s": 1 / itl, "itl_s": itl, "aggregate_tokens_per_s": est.aggregate_tokens_per_s * factor,
        "single_stream_tokens_per_s": 1 / (1 / est.single_stream_tokens_per_s + add),
        "basis": est.basis + "; " + line,
        "terms_ms": {**est.terms_ms, "host_kv": round(read_ms + hops_ms, 4)}}), line


def llamacpp_speed(est: ServingEstimate, spec: ModelSpec, result: object, gpu: GPU, dep: Deployment,
                   quant: str | None, concurrency: int) -> tuple[ServingEstimate, list]:
    """The serving estimate of a llama.cpp check with its draft model and -nkvo, and the warnings that say how."""
    from ..messages import warning
    from .extras import read_draft

    notes = []
    running = max(1, min(concurrency, dep.parallel))
    if getattr(result, "no_kv_offload", False):
        est, line = with_host_kv(est, spec, running)
        notes.append(warning("llamacpp.speed.no_kv_offload", line))
    draft = next((e for e in getattr(result, "extras", []) if e.kind == "draft"), None)
    kind = draft.detail.get("type") if draft is not None else None
    if draft is not None and kind in ("draft-dflash", "draft-dspark", "draft-eagle3"):
        what = ("the EAGLE-3 head's memory is counted; its drafts' speed-up (common_speculative_impl_draft_eagle3)"
                if kind == "draft-eagle3" else "the DFlash drafter's memory is counted; its block drafts' speed-up "
                "(one non-causal pass per block, common_speculative_impl_draft_dflash)")
        notes.append(warning("llamacpp.speed.draft", f"--spec-type {kind} -md {draft.ref}: {what} is not modelled, "
                             "and the estimate is the target's alone"))
    elif draft is not None and not draft.detail.get("speculates", True):
        notes.append(warning("llamacpp.speed.draft", f"-md {draft.ref}: this build does not draft with it (no "
                             "--spec-type draft-simple, llamacpp.draft.unused): the estimate is the target's alone"))
    elif draft is not None and int(draft.detail.get("gpu_layers", 0)) > 0:
        dm = read_draft(draft.ref)
        rate = draft.detail.get("acceptance")
        est, line = with_draft(est, spec, gpu, dep, quant, dm.spec, list(dm.tensors), int(draft.detail["draft_max"]),
                               float(rate) if rate is not None else None, running)
        notes.append(warning("llamacpp.speed.draft", line))
    elif draft is not None:
        notes.append(warning("llamacpp.speed.draft", "the draft model runs on the CPU (-ngld 0 or -devd none): its "
                             "speed is not modelled, and the estimate is the target's alone"))
    if any(e.kind == "mtp" for e in getattr(result, "extras", [])):
        notes.append(warning("llamacpp.speed.draft", "--spec-type draft-mtp: the MTP context's memory is counted; its "
                             "drafts' speed-up is not modelled, and the estimate is the target's alone"))
    return est, notes
