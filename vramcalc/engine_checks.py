"""An engine's check on a whole system, as `vramcalc check --engine ...` and `vramcalc.check(engine=...)` both
ask it: vLLM's TP x PP over the system's GPUs (defaults: GPUs per node x nodes), llama.cpp's GPUs, CPU or
RPC nodes, and what the planner would run instead when it does not fit."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .engines import Engine
from .errors import InputError, NotModelledError
from .gpus import GPU
from .limits import MAX_GPUS, MAX_LAYER_FLAG
from .llamacpp.engine import LlamaOptions, LlamaResult, check_llamacpp
from .messages import Message, warning
from .sources import ModelSource
from .spec import ModelSpec
from .systems import System
from .vllm.engine import VLLMOptions, VLLMResult, check_vllm

@dataclass(frozen=True)
class VLLMReport:
    result: VLLMResult
    gpu: GPU  # the smallest GPU, which sets every rank's block count
    ranks: int  # TP x PP
    speculative: Any = None  # serving.SpecDecode: --speculative-config for the speed estimate
    command_label: str = "command"  # "checked" under a pasted command: the engine command as vramcalc checked it


@dataclass(frozen=True)
class LlamaReport:
    result: LlamaResult
    spec: ModelSpec
    weights: str | None  # "GGUF file", or the file type predicted without one
    n_gpus: int  # 0: CPU only
    n_cpu_moe_asked: int  # --n-cpu-moe as given (0: solved, as --fit does)
    command_label: str = "command"  # as VLLMReport.command_label


# False while a caller asks only for the verdict (a pasted command's fix search re-checks many variants): the
# planner's other layouts and the best file type are left out, the figures and the verdict are the same
ADVICE: ContextVar[bool] = ContextVar("vramcalc_advice", default=True)
# False while a pasted command is checked: its own search (pasted_command._smallest_fix) names the fix in the
# command's words, so the check's own (plain_fix) is not searched as well
FIX: ContextVar[bool] = ContextVar("vramcalc_fix", default=True)


def _with_fix(r: Any, engine: Engine, source: ModelSource, system: System | None, options: dict[str, Any],
              host_ram_bytes: int | None) -> Any:
    """A refused check with its smallest fix, re-checked by the engine model (pasted_command.plain_fix), as a pasted
    command gets it; fix None where no single change makes it start."""
    if r.fits or not ADVICE.get() or not FIX.get():
        return r
    from .pasted_command import plain_fix

    found = plain_fix(engine, source, system, options, r, host_ram_bytes)  # type: ignore[arg-type]
    return r.model_copy(update={"fix": found[0], "corrected_command": found[1]}) if found else r


def instead(spec: ModelSpec, system: System, context: int, quant: str | None, engine: Engine,
            host_ram_bytes: int | None, engine_version: str | None = None) -> list[str]:
    """What the planner would run instead when an engine check does not fit (vLLM layouts on the check's release)."""
    from .plan import alternatives

    planner_quant = None
    if quant:  # the planner's names: awq, fp8 ... and gguf:Q4_K_M
        kind, _, ftype = quant.partition(":")
        planner_quant = f"gguf:{ftype.upper()}" if kind.lower() == "gguf" else quant.lower()
    return alternatives(spec, system, context, quant=planner_quant, prefer_engine=engine, host_ram_bytes=host_ram_bytes,
                        engine_version=engine_version)


def vllm_layout(system: System, tp: int | None, pp: int | None, system_name: str | None = None, dp: int = 1
                ) -> tuple[System, int, int]:
    """TP and PP over the system (defaults: TP = GPUs per node, PP = nodes). Refused: more than MAX_GPUS, one
    GPU asked to be several (`--gpu 4090 --tp 3`: the system says how many), a product other than the GPU
    count, TP across nodes. `system_name`: the system as the user wrote it, for the message. `dp`: vLLM's
    --data-parallel-size, engines of TP x PP GPUs each over the system's GPUs (TP then defaults to what is left)."""
    n_gpus = system.nodes * system.gpus_per_node
    if dp > 1:
        if n_gpus % dp:
            raise InputError(f"--data-parallel-size {dp} does not divide the system's {n_gpus} GPUs")
        n_gpus //= dp
        if tp is None:
            tp = max(1, n_gpus // (pp or 1))
    ranks = (tp or 1) * (pp or 1) * dp
    if ranks > MAX_GPUS:
        raise InputError(f"--tp {tp or 1} x --pp {pp or 1} is above the limit of {MAX_GPUS:,} GPUs in a "
                         "system (vramcalc/limits.py)")
    if system.nodes * system.gpus_per_node == 1 and ranks > 1:
        asked = " x ".join(f"--{k} {v}" for k, v in (("tp", tp), ("pp", pp)) if v)
        name = system_name or system.gpus[0].id
        raise InputError(f"{asked} needs {ranks} GPUs, but --gpu {name!r} is one GPU: --gpu {ranks}x{name} gives "
                         f"{ranks} of them")
    tp_ = tp or (system.gpus_per_node if not pp else max(1, n_gpus // pp))
    pp_ = pp or (system.nodes if not tp else max(1, n_gpus // tp_))
    if tp_ * pp_ != n_gpus:
        if dp > 1:
            raise InputError(f"--data-parallel-size {dp} x --tp {tp_} x --pp {pp_} = {dp * tp_ * pp_} GPUs, but the "
                             f"system has {dp * n_gpus}")
        raise InputError(f"--tp {tp_} x --pp {pp_} = {tp_ * pp_} GPUs, but the system has {n_gpus}; "
                         "one engine uses every GPU given (run replicas as separate checks)")
    if system.nodes > 1 and tp_ > system.gpus_per_node:
        raise InputError(f"TP {tp_} spans nodes of {system.gpus_per_node} GPUs: keep TP within a node and use PP "
                         "across nodes, as vLLM's docs advise")
    return system, tp_, pp_


def vllm_on_system(source: ModelSource, system: System, options: dict[str, Any],
                   host_ram_bytes: int | None = None, system_name: str | None = None) -> VLLMReport:
    """vLLM on every GPU of the system; `options`: VLLMOptions' fields, tp and pp None (or absent) for the
    defaults vllm_layout derives. The smallest GPU sets every rank's budget."""
    opts = dict(options)
    system, tp, pp = vllm_layout(system, opts.pop("tp", None), opts.pop("pp", None), system_name,
                                 int(opts.get("data_parallel_size") or 1))
    # every rank gets the same fraction of its own GPU; the smallest GPU decides the block count
    gpu = min(system.gpus, key=lambda g: g.usable_bytes)
    if "ep_internode" not in opts:  # DeepEP's `internode`: the EP group (DP x TP x PCP ranks) spans machines
        ep_ranks = int(opts.get("data_parallel_size") or 1) * tp * int(opts.get("prefill_context_parallel_size") or 1)
        opts["ep_internode"] = system.nodes > 1 and ep_ranks > system.gpus_per_node
    vopts = VLLMOptions(tp=tp, pp=pp, **opts)
    draft = _draft_spec(vopts)
    r = check_vllm(source.spec, gpu, vopts, file_weight_bytes=source.weight_bytes, draft=draft)
    if len({g.id for g in system.gpus}) > 1:
        r = r.model_copy(update={"warnings": r.warnings + [
            warning("system.mixed_gpus", f"mixed GPUs: sized for the smallest, {gpu.name}")]})
    if system.notes:
        r = r.model_copy(update={"warnings": r.warnings + [warning(system.note_code(n), n) for n in system.notes]})
    if not r.fits and ADVICE.get():
        r = r.model_copy(update={"alternatives": instead(source.spec, system, r.max_model_len, vopts.quantization,
                                                         "vllm", host_ram_bytes, vopts.engine_version)})
    r = _with_fix(r, "vllm", source, system, options, host_ram_bytes)
    return VLLMReport(result=r, gpu=gpu, ranks=tp * pp, speculative=_spec_speed(source.spec, vopts, r, draft))


def _draft_spec(vopts: VLLMOptions) -> ModelSpec | None:
    """The draft model or EAGLE head --speculative-config names (catalog, Hub or a local config)."""
    cfg = vopts.speculative_config or {}
    model = cfg.get("model")
    if not model or cfg.get("method") in ("ngram", "suffix", "[ngram]") or model in ("ngram", "[ngram]"):
        return None
    from .sources import open_model

    return open_model(str(model), cfg.get("revision")).spec


def _spec_speed(spec: ModelSpec, vopts: VLLMOptions, r: VLLMResult, draft: ModelSpec | None) -> Any:
    """The drafter as the speed estimate takes it (serving.SpecDecode), when the config was accepted."""
    if r.speculative is None or vopts.speculative_config is None:
        return None
    from .serving import SpecDecode
    from .speed import weight_reads
    from .vllm.spec_decode import plan_speculative

    plan = plan_speculative(vopts.speculative_config, spec, vopts.tp, vopts.pp, r.max_model_len, None, draft,
                            vopts.spec_acceptance)
    reads = weight_reads(plan.draft_spec, vopts.quantization if plan.method == "mtp" else None) \
        if plan.draft_spec is not None else None
    return SpecDecode(method=plan.method, k=plan.num_speculative_tokens, acceptance=plan.acceptance,
                      acceptance_source=plan.acceptance_source, draft_reads=reads, draft_spec=plan.draft_spec)


def gpu_layers(value: int | str | None) -> int | None:
    """-ngl as llama.cpp reads it: N, "auto" (None: the largest that fits, as --fit finds it) or "all"; a count
    above the model's layers means every layer (-ngl 99 / 999), capped at limits.MAX_LAYER_FLAG."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str) and value.strip().lower() == "all":
        return MAX_LAYER_FLAG
    try:
        n = int(value) if not isinstance(value, bool) else -1
    except ValueError:
        raise InputError(f"expected a layer count, 'auto' or 'all', got {value!r}") from None
    if n < 0:
        raise InputError(f"n_gpu_layers must be >= 0 (or auto / all), got {value!r}")
    return min(n, MAX_LAYER_FLAG)


def llama_ftype(quant: str | None) -> str | None:
    """A quant for llama.cpp, gguf:Q4_K_M, as the file type Q4_K_M (None: the file's own)."""
    if not quant:
        return None
    if not quant.lower().startswith("gguf:"):
        raise InputError("with --engine llamacpp, --quant takes a llama.cpp file type: Q4_K_M, Q8_0 ... (or "
                         "gguf:Q4_K_M)")
    return quant.split(":", 1)[1]


def llamacpp_on_system(source: ModelSource, system: System | None, options: dict[str, Any],
                       host_ram_bytes: int | None = None, model_ref: str | None = None,
                       quant: str | None = None) -> LlamaReport:
    """llama-server on the system's GPUs (remote nodes' GPUs first, over RPC), or on the CPU (system None).
    `options`: LlamaOptions' fields but rpc_nodes (from the system); `quant` gguf:FTYPE predicts that file type
    instead of reading the file's tensors. model_ref: the file named in the command."""
    gpus = [] if system is None else list(system.gpus) * system.nodes  # remote nodes' GPUs first
    ftype = llama_ftype(quant) if quant else options.get("ftype")
    kv_notes: list[Message] = []
    if options.get("kv_overrides"):  # --override-kv: the metadata llama.cpp reads (sources/gguf_overrides.py)
        from .sources.gguf_overrides import apply as apply_kv_overrides

        if ftype:
            raise NotModelledError("--override-kv with a predicted file type: the GGUF's own metadata is not read; "
                                   "give the .gguf file")
        source, kv_notes = apply_kv_overrides(source, tuple(options["kv_overrides"]))
    tensors = None if ftype else source.llama_tensors()
    opts = LlamaOptions(**{**options, "ftype": ftype}, rpc_nodes=system.nodes - 1 if system is not None else 0)
    r = check_llamacpp(source.spec, gpus or None, opts, tensors, host_ram_bytes,
                       model_ref=model_ref or f"<{source.spec.id} {ftype}>.gguf")
    if system is not None and ADVICE.get():
        from .plan import best_gguf_ftype

        full, any_fit = best_gguf_ftype(source.spec, gpus, opts.model_copy(update={"n_ctx": r.n_ctx}), host_ram_bytes)
        r = r.model_copy(update={"best_ftype_full_offload": full, "best_ftype": any_fit})
        if not r.fits:
            r = r.model_copy(update={"alternatives": instead(source.spec, system, r.n_ctx_seq, quant or (
                f"gguf:{ftype}" if ftype else None), "llamacpp", host_ram_bytes)})
    r = _with_fix(r, "llamacpp", source, system, {**options, **({"quant": quant} if quant else {})}, host_ram_bytes)
    if kv_notes:
        r = r.model_copy(update={"warnings": kv_notes + r.warnings})
    return LlamaReport(result=r, spec=source.spec, weights="GGUF file" if tensors else ftype, n_gpus=len(gpus),
                       n_cpu_moe_asked=opts.n_cpu_moe)


SPEED_OPTIONS = ("concurrency", "prompt", "output", "shared_prefix")  # the serving estimate's load, for the CLI and the library


def _prefix_note(shared: int, prompt: int, on: bool | None) -> Message:
    """vLLM's automatic prefix caching (vllm/v1/core/kv_cache_manager.py get_computed_blocks, on by default in V1):
    the cached blocks sit in the same KV pool, so memory is unchanged; only TTFT moves."""
    if on is False:
        return warning("vllm.prefix_caching.ttft", f"prefix caching is off: every request prefills its {shared:,} "
                       "shared prompt tokens again; on (vLLM's default) it would cut the TTFT estimate, with the same "
                       "memory", fix="drop --no-enable-prefix-caching")
    return warning("vllm.prefix_caching.ttft", f"prefix caching (on by default) keeps the {min(shared, prompt - 1):,} "
                   f"shared prompt tokens' KV blocks: memory is unchanged (they sit in the same KV pool), and the TTFT "
                   f"estimate prefills only the other {max(1, prompt - shared):,} tokens of each {prompt:,}-token prompt "
                   "once the prefix is cached (block-aligned in vLLM: up to one block less is reused)")


def _speed_kv_dtype(kv_cache_dtype: str | None) -> str | None:
    """The --kv-cache-dtype the speed model reads the KV at: a packed format (data/vllm_kv_formats.json) by its own
    page bytes (vramcalc/speed.py packed_kv_read_bytes), fp8 at one byte, anything else at the model dtype."""
    from .vllm.kv import kv_formats

    name = str(kv_cache_dtype or "")
    if name in kv_formats().formats:
        return name
    return "fp8" if name.startswith("fp8") else None


def with_speed(report: Any, spec: ModelSpec, system: System | None, quant: str | None, *, enforce_eager: bool = False,
               kv_cache_dtype: str | None = None, concurrency: int = 1, prompt: int | None = None,
               output: int | None = None, shared_prefix: int = 0, prefix_caching: bool | None = None,
               llamacpp_build: str | None = None) -> Any:
    """`report` (a VLLMReport or LlamaReport) with its result's serving estimate (vramcalc/serving.py) at
    `concurrency` streams of `prompt` / `output` tokens; no estimate for the CPU or a device of unknown bandwidth."""
    from dataclasses import replace

    from .serving import DEFAULT_OUTPUT, DEFAULT_PROMPT, for_engine_check

    if system is None or any(m.code in ("vllm.platform.unsupported_device", "llamacpp.no_backend")
                             for m in report.result.errors):  # no engine runs there: no speed either
        return report
    gpu = min(system.gpus, key=lambda g: g.usable_bytes)
    backend = "metal" if gpu.id.startswith("apple-") else "rocm" if gpu.vendor == "amd" else "cuda"
    if isinstance(report, LlamaReport) and report.result.backend not in ("cpu", "rpc"):
        backend = report.result.backend  # the build's backend as the check resolved it (--backend vulkan ...)
    n, p, o = max(1, concurrency), prompt or DEFAULT_PROMPT, output or DEFAULT_OUTPUT
    link = "nvlink" if gpu.nvlink else "pcie"
    r = report.result
    if isinstance(report, VLLMReport):
        est = for_engine_check(spec, "vllm", gpu, quant=quant, tp=r.layout.tp, pp=r.layout.pp, link=link, backend=backend,
                               enforce_eager=enforce_eager,
                               kv_dtype=_speed_kv_dtype(kv_cache_dtype),
                               concurrency=n, prompt=p, output=o, speculative=report.speculative,
                               cpu_offload_bytes=r.cpu_offload_bytes,
                               cached_prefix=min(shared_prefix, p - 1) if prefix_caching is not False else 0)
        if shared_prefix:
            r = r.model_copy(update={"warnings": [*r.warnings, _prefix_note(shared_prefix, p, prefix_caching)]})
    else:
        est = for_engine_check(spec, "llamacpp", gpu, quant=quant, link=link, backend=backend,
                               parallel=max(1, r.n_parallel), concurrency=n, prompt=p, output=o,
                               kv_unified=bool(getattr(r, "kv_unified", False)) and r.n_parallel > 1,
                               llamacpp_build=llamacpp_build)
        if est is not None and (r.extras or r.no_kv_offload):  # a draft model, -nkvo (llamacpp/spec_speed.py)
            from .llamacpp.spec_speed import llamacpp_speed
            from .serving import Deployment

            dep = Deployment(engine="llamacpp", backend=backend, gpu=gpu, quant=quant, link=link,
                             llamacpp_build=llamacpp_build,
                             parallel=max(1, r.n_parallel), kv_unified=bool(r.kv_unified) and r.n_parallel > 1)
            est, notes = llamacpp_speed(est, spec, r, gpu, dep, quant, n)
            r = r.model_copy(update={"warnings": r.warnings + notes})
    return replace(report, result=r.model_copy(update={"speed": est}))
