"""The `vramcalc` command. Exit codes: 0 fits, 1 does not fit, 2 bad input, 3 an internal error (a bug)."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import NoReturn, Sequence

from tabulate import tabulate

from .bars import LEGEND, bar, use_color
from .check import check
from .errors import InputError, VramcalcError
from .gpus import all_gpus
from .messages import warning
from .sources import catalog, open_model

GIB = 1024**3
EXIT_FITS, EXIT_NO_FIT, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"vramcalc: error: {message} (see `vramcalc --help`)\n")


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        if text.lower().endswith("k") and text[:-1].isdigit():
            value = int(text[:-1]) * 1024
        else:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _json_out(result) -> int:
    print(json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True))
    return EXIT_FITS if result.fits else EXIT_NO_FIT


def _value(t) -> str:
    if t.unit == "bytes":
        if abs(t.value) >= GIB:
            return f"{t.value / GIB:,.2f} GiB"
        return f"{t.value / 2**20:,.2f} MiB" if abs(t.value) >= 2**20 else f"{int(t.value):,} B"
    return f"{t.value:,g} {t.unit}"


def _explain_out(result, args: argparse.Namespace) -> int:
    """`vramcalc explain`: each term of the result with its formula, inputs and rule."""
    if args.json:
        from .trace import Explanation

        out = Explanation(fits=result.fits, trace=result.trace, errors=getattr(result, "errors", []))
        print(json.dumps(out.model_dump(mode="json"), indent=2, sort_keys=True))
        return EXIT_FITS if result.fits else EXIT_NO_FIT
    width = max(len(t.name) for t in result.trace)
    for t in result.trace:
        print(f"{t.name:<{width}}  {_value(t)}")
        print(f"{'':<{width}}    = {t.formula}")
        if t.inputs:
            print(f"{'':<{width}}    inputs: " + ", ".join(f"{k}={v}" for k, v in t.inputs.items()))
        if t.source:
            print(f"{'':<{width}}    rule: {t.source}")
    print(f"verdict {'fits' if result.fits else 'does not fit'}"
          + "".join(f"\nerror   {e}" for e in getattr(result, "errors", [])))
    return EXIT_FITS if result.fits else EXIT_NO_FIT


def _structured_out(result, args: argparse.Namespace) -> int | None:
    """`explain` or `--json`: the result as a trace or as data; None when the report is text."""
    if args.explain:
        return _explain_out(result, args)
    if args.json:
        return _json_out(result)
    return None


def _verdict_out(result, yes: str, no: str) -> int:
    """The tail every engine report shares: verdict, the engine's errors, warnings, the command."""
    print(f"verdict {yes if result.fits else no}")
    for e in result.errors:
        print(f"error   {e}")
    for w in result.warnings:
        print(f"warning {w}")
    print(f"command {result.command}")
    for a in result.alternatives:
        print(f"instead {a}")
    return EXIT_FITS if result.fits else EXIT_NO_FIT


def _alternatives(spec, system, context: int, args: argparse.Namespace) -> list[str]:
    from .plan import alternatives

    quant = None
    if args.quant:  # the planner's names: awq, fp8 ... and gguf:Q4_K_M
        kind, _, ftype = args.quant.partition(":")
        quant = f"gguf:{ftype.upper()}" if kind.lower() == "gguf" else args.quant.lower()
    engine = {"vllm": "vllm", "llamacpp": "llama.cpp"}.get(args.engine)
    return alternatives(spec, system, context, quant=quant, prefer_engine=engine,
                        host_ram_bytes=int(args.ram * 2**30) if args.ram else None)


def _cmd_check_vllm(args: argparse.Namespace, source, system) -> int:
    from .vllm.engine import VLLMOptions, check_vllm

    n_gpus = system.nodes * system.gpus_per_node
    if n_gpus == 1 and (args.tp or 1) * (args.pp or 1) > 1:  # `--gpu h100 --tp 2`: that many of this GPU
        system = system.model_copy(update={"gpus": system.gpus * (args.tp or 1) * (args.pp or 1)})
        n_gpus = system.gpus_per_node
    tp = args.tp or (system.gpus_per_node if not args.pp else max(1, n_gpus // args.pp))
    pp = args.pp or (system.nodes if not args.tp else max(1, n_gpus // tp))
    if tp * pp != n_gpus:
        raise InputError(f"--tp {tp} x --pp {pp} = {tp * pp} GPUs, but the system has {n_gpus}; "
                         "one engine uses every GPU given (run replicas as separate checks)")
    if system.nodes > 1 and tp > system.gpus_per_node:
        raise InputError(f"TP {tp} spans nodes of {system.gpus_per_node} GPUs: keep TP within a node and use PP "
                         "across nodes, as vLLM's docs advise")
    # every rank gets the same fraction of its own GPU; the smallest GPU decides the block count
    gpu = min(system.gpus, key=lambda g: g.usable_bytes)
    opts = VLLMOptions(tp=tp, pp=pp, engine_version=args.engine_version,
                       gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len or args.ctx,
                       max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                       kv_cache_dtype=args.kv_cache_dtype, quantization=args.quant, dtype=args.dtype,
                       enforce_eager=args.enforce_eager, block_size=args.block_size,
                       moe_backend=args.moe_backend,
                       flashinfer_sampler={"on": True, "off": False}.get(args.flashinfer_sampler),
                       disable_custom_all_reduce=args.disable_custom_all_reduce)
    r = check_vllm(source.spec, gpu, opts, file_weight_bytes=source.weight_bytes)
    if len({g.id for g in system.gpus}) > 1:
        r = r.model_copy(update={"warnings": r.warnings + [
            warning("system.mixed_gpus", f"mixed GPUs: sized for the smallest, {gpu.name}")]})
    if system.notes:
        r = r.model_copy(update={"warnings": r.warnings + [warning("system.note", n) for n in system.notes]})
    if not r.fits:
        r = r.model_copy(update={"alternatives": _alternatives(source.spec, system, r.max_model_len, args)})
    if (code := _structured_out(r, args)) is not None:
        return code
    print(f"model   {r.model['id']}  ({r.model['params_total'] / 1e9:.2f}B params)")
    print(f"engine  vLLM {r.engine_version}, TP {r.layout['tp']} x PP {r.layout['pp']}, max_model_len {r.max_model_len:,}, "
          f"max_num_seqs {r.layout['max_num_seqs']}, max_num_batched_tokens {r.layout['max_num_batched_tokens']}")
    print(f"device  {gpu.name} x {len(r.devices) or tp * pp}, {_gib(gpu.usable_bytes)} GiB usable")
    if r.devices:
        print()
        rows = [[d.rank, _gib(d.budget_bytes), _gib(d.weights_bytes), _gib(d.activation_bytes), _gib(d.non_torch_bytes),
                 _gib(d.cuda_graph_bytes), _gib(d.kv_cache_bytes), _gib(d.uncertainty_bytes)] for d in r.devices]
        print(tabulate(rows, headers=["rank", "budget", "weights", "activation", "non-torch", "cuda graphs", "KV cache",
                                      "margin"], tablefmt="simple", disable_numparse=True))
        print("(GiB; budget = gpu_memory_utilization x total; margin = how much more the other terms may take: "
              "the verdict holds with it)")
        print()
        for d in r.devices:
            work = d.activation_bytes + d.non_torch_bytes + d.cuda_graph_bytes
            print(f"rank {d.rank}  " + bar([("weights", d.weights_bytes), ("workspace", work),
                                            ("KV", max(0, d.kv_cache_bytes))], d.total_bytes, use_color()))
        print(f"        {LEGEND} (outside the budget)")
        print()
    if r.kv_cache_tokens:
        print(f"KV cache {r.kv_cache_tokens:,} tokens; maximum concurrency for {r.max_model_len:,} tokens per request: "
              f"{r.max_concurrency:.2f}x")
    return _verdict_out(r, "STARTS", "DOES NOT START")


def _ngl(value: str) -> int | None:
    """-ngl N | auto | all: auto (None) lets vramcalc find the largest that fits, as --fit does."""
    v = value.strip().lower()
    if v == "auto":
        return None
    if v == "all":
        return 10**6
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a layer count, 'auto' or 'all', got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("--n-gpu-layers must be >= 0 (or auto / all)")
    return n


def _tensor_split(value: str) -> tuple[float, ...]:
    try:
        parts = tuple(float(x) for x in value.replace("/", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected proportions such as 3,1, got {value!r}") from None
    if not parts or any(x < 0 for x in parts) or not any(parts):
        raise argparse.ArgumentTypeError("--tensor-split takes non-negative proportions, at least one above 0")
    return parts


_BACKEND_NAMES = {"cpu": "CPU", "cuda": "CUDA", "rocm": "ROCm/HIP", "vulkan": "Vulkan", "metal": "Metal", "sycl": "SYCL",
                  "rpc": "RPC"}


def _cmd_check_llamacpp(args: argparse.Namespace, source, system) -> int:
    from .llamacpp.engine import LlamaOptions, check_llamacpp

    gpus = [] if args.gpu.strip().lower() == "cpu" else list(system.gpus) * system.nodes  # remote nodes' GPUs first
    ftype = None
    if args.quant:
        if not args.quant.lower().startswith("gguf:"):
            raise InputError("with --engine llamacpp, --quant takes a llama.cpp file type: gguf:Q4_K_M, gguf:Q8_0 ...")
        ftype = args.quant.split(":", 1)[1]
    tensors = None if ftype else source.llama_tensors()
    opts = LlamaOptions(n_ctx=args.ctx, n_parallel=args.parallel, kv_unified=not args.no_kv_unified,
                        n_batch=args.batch_size, n_ubatch=args.ubatch, type_k=args.cache_type_k,
                        type_v=args.cache_type_v, flash_attn=args.flash_attn, n_gpu_layers=args.n_gpu_layers,
                        split_mode=args.split_mode, tensor_split=args.tensor_split, main_gpu=args.main_gpu,
                        swa_full=args.swa_full, cpu_moe=args.cpu_moe, n_cpu_moe=args.n_cpu_moe,
                        no_kv_offload=args.no_kv_offload, ftype=ftype, backend=args.backend,
                        rpc_nodes=system.nodes - 1 if gpus else 0)
    ram = int(args.ram * 2**30) if args.ram else None
    r = check_llamacpp(source.spec, gpus or None, opts, tensors, ram,
                       model_ref=args.model if args.model.endswith(".gguf") else f"<{source.spec.id} {ftype}>.gguf")
    if gpus:
        from .plan import best_gguf_ftype

        full, any_fit = best_gguf_ftype(source.spec, gpus, opts.model_copy(update={"n_ctx": r.n_ctx}), ram)
        r = r.model_copy(update={"best_ftype_full_offload": full, "best_ftype": any_fit})
    if not r.fits and gpus:
        r = r.model_copy(update={"alternatives": _alternatives(source.spec, system, r.n_ctx_seq, args)})
    if (code := _structured_out(r, args)) is not None:
        return code
    n_layer = source.spec.num_layers
    print(f"model   {source.spec.id}  ({'GGUF file' if tensors else ftype}, {r.model_size_bytes / 2**30:.2f} GiB, "
          f"{r.bpw:.2f} BPW)")
    where = "CPU only" if not gpus else f"{r.gpu_layers} of {n_layer} layers on the GPU" + ("s" if len(gpus) > 1 else "")
    print(f"engine  llama.cpp ({_BACKEND_NAMES[r.backend]}), context {r.n_ctx:,} cells ({r.n_ctx_seq:,} per request, {r.n_parallel} slots"
          f"{', unified' if r.kv_unified else ''}) [{r.context_source}], {where}, "
          f"flash attention {'on' if r.flash_attn else 'off'}")
    rows = [[d.device, _gib(d.model_buffer_bytes + d.repack_buffer_bytes), _gib(d.kv_buffer_bytes + d.recurrent_buffer_bytes),
             _gib(d.compute_buffer_bytes), _gib(d.output_buffer_bytes), _gib(d.total_bytes),
             _gib(d.uncertainty_bytes), _gib(d.available_bytes) if d.available_bytes >= 0 else "-"] for d in r.devices]
    print()
    print(tabulate(rows, headers=["device", "model", "KV+state", "compute (est.)", "output", "total", "margin",
                                  "available"], tablefmt="simple", disable_numparse=True))
    print("(GiB; margin = the compute estimate's uncertainty, counted in the verdict; available = CUDA-reported "
          "total (system RAM on an integrated GPU) less llama.cpp's 1 GiB --fit margin)")
    print()
    width = max(len(d.device) for d in r.devices)
    for d in r.devices:
        if d.available_bytes > 0:
            print(f"{d.device:{width}}  " + bar([("weights", d.model_buffer_bytes), ("KV", d.kv_buffer_bytes + d.recurrent_buffer_bytes),
                                         ("workspace", d.compute_buffer_bytes + d.output_buffer_bytes)],
                                        d.available_bytes, use_color()))
    if any(d.available_bytes > 0 for d in r.devices):
        print(f"{'':{width}}  {LEGEND} (of the available)")
    print()
    if gpus:
        if r.max_gpu_layers is not None:
            full = r.max_gpu_layers >= n_layer + 1
            print(f"largest -ngl that fits at this context: {'all' if full else r.max_gpu_layers} "
                  f"({n_layer + 1} = every layer and the output)")
        else:
            print("largest -ngl that fits at this context: none (not even the output layer)")
        if r.n_cpu_moe and not args.n_cpu_moe:
            print(f"experts kept on the CPU: those of {r.n_cpu_moe} of {n_layer} layers (--n-cpu-moe {r.n_cpu_moe}, "
                  "the fewest that fit with every layer offloaded, as llama.cpp's --fit moves MoE tensors first)")
        if r.max_ctx is not None:
            print(f"largest context that fits with -ngl {r.n_gpu_layers}: {r.max_ctx:,} cells")
        else:
            print(f"largest context that fits with -ngl {r.n_gpu_layers}: none (from 256 cells)")
        print(f"best file type at this context: {r.best_ftype_full_offload or 'none'} with every layer on the GPU"
              + ("s" if len(gpus) > 1 else "") + f", {r.best_ftype or 'none'} with offload (Q8_0 down to IQ2_M)")
    return _verdict_out(r, "FITS", "DOES NOT FIT")


def _cmd_check(args: argparse.Namespace) -> int:
    from .systems import parse_system

    system = parse_system("1GiB" if args.gpu.strip().lower() == "cpu" else args.gpu)
    source = open_model(args.model, revision=args.revision)
    if args.engine == "llamacpp":
        return _cmd_check_llamacpp(args, source, system)
    if args.engine == "vllm":
        return _cmd_check_vllm(args, source, system)
    if system.nodes * system.gpus_per_node > 1:
        raise InputError(f"{args.gpu!r} has several GPUs: add --engine vllm (with --tp/--pp) to place the model on them")
    gpu = system.gpus[0]
    result = check(source.spec, gpu, context=args.ctx, sequences=args.sequences, file_weight_bytes=source.weight_bytes,
                   quant=args.quant)
    if (code := _structured_out(result, args)) is not None:
        return code
    m = result.model
    print(f"model   {m.id}  ({m.model_type}, {m.dtype})")
    active = f", {m.params_active / 1e9:.2f}B active" if m.params_active != m.params_total else ""
    print(f"params  {m.params_total:,} ({m.params_total / 1e9:.2f}B{active})")
    kinds = ", ".join(f"{n} {k}" for k, n in m.layer_kinds.items())
    print(f"layers  {kinds}")
    d = result.device
    print(f"device  {d.name}, {_gib(d.usable_bytes)} GiB usable ({d.usable_source.split(' (')[0]})")
    print(f"context {result.context:,} tokens x {result.sequences} sequence(s)  [{result.context_source}]")
    print()
    rows = [[t.name, _gib(t.bytes), t.detail] for t in result.breakdown]
    rows.append(["total", _gib(result.required_bytes), ""])
    rows.append(["free" if result.fits else "short by", _gib(abs(result.free_bytes)), ""])
    print(tabulate(rows, headers=["memory", "GiB", "how"], tablefmt="simple", disable_numparse=True))
    print()
    print(f"{d.id}  " + bar([("weights", result.weights_bytes), ("KV", result.kv_bytes + result.state_bytes)],
                             result.available_bytes, use_color()) + "   (# weights  = KV and state  . free)")
    print()
    verdict = "WEIGHTS AND KV FIT" if result.fits else "DOES NOT FIT"
    print(f"verdict {verdict}: needs {_gib(result.required_bytes)} of {_gib(result.available_bytes)} GiB"
          + (" (not a start-up verdict: --engine vllm or --engine llamacpp adds the engine's workspace)"
             if result.fits else ""))
    for w in result.warnings:
        print(f"warning {w}")
    print("not counted: " + "; ".join(result.not_counted))
    return EXIT_FITS if result.fits else EXIT_NO_FIT


def _matches(text: str | None, *fields: str) -> bool:
    return not text or any(text.lower().replace(" ", "") in f.lower().replace(" ", "") for f in fields)


def _cmd_models(args: argparse.Namespace) -> int:
    items = [e for e in catalog.entries() if _matches(args.match, e.repo_id, *e.aliases)]
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in items], indent=2))
        return 0
    rows = [[e.repo_id, ", ".join(e.aliases[:2]), "partial" if e.partial else "full"] for e in items]
    print(tabulate(rows, headers=["model", "aliases", "config copy"], tablefmt="simple"))
    return 0


def _cmd_gpus(args: argparse.Namespace) -> int:
    items = [g for g in all_gpus() if _matches(args.match, g.id, g.name)]
    if args.json:
        print(json.dumps([g.model_dump(mode="json") for g in items], indent=2))
        return 0
    rows = [[g.id, g.name, _gib(g.memory_bytes), _gib(g.usable_bytes or g.memory_bytes),
             f"{g.memory_bandwidth_gbs:g}" if g.memory_bandwidth_gbs else "", g.compute_capability or "",
             g.verification or ""] for g in items]
    print(tabulate(rows, headers=["id", "name", "GiB", "usable GiB", "GB/s", "cc", "verification"],
                   tablefmt="simple", disable_numparse=True))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .plan import layout_text, plan
    from .systems import parse_system

    source = open_model(args.model, revision=args.revision)
    system = parse_system(args.gpu)
    result = plan(source.spec, system, context=args.ctx, concurrency=args.concurrency, goal=args.goal,
                  engine=args.engine, engine_version=args.engine_version,
                  host_ram_bytes=int(args.ram * GIB) if args.ram else None, top=args.top)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True))
        return EXIT_FITS if result.fits else EXIT_NO_FIT
    m = result.model
    print(f"model   {m['id']}: {m['params_total'] / 1e9:.1f}B parameters, {m['params_active'] / 1e9:.1f}B active "
          f"per token; checkpoint {m['checkpoint']}")
    print(f"system  {result.system}")
    print(f"asked   {result.context} tokens of context ({result.context_source}), {result.concurrency} concurrent "
          f"sequence(s), goal: {result.goal}")
    for n in result.notes:
        print(f"note    {n}")
    if result.recommendations:
        rows = []
        for c in result.recommendations:
            sp = c.speed
            rows.append([c.rank, c.engine + (f" {c.engine_version}" if c.engine_version else ""), c.quant,
                         c.kv_cache_dtype, layout_text(c), f"{sp.decode_tokens_per_s:.0f}",
                         f"{sp.aggregate_tokens_per_s:.0f}", f"{sp.ttft_s:.2f}" if sp.ttft_s is not None else "-",
                         c.max_context, f"{c.max_concurrency:g}"])
        print()
        print(tabulate(rows, headers=["#", "engine", "quant", "KV", "layout", "tok/s 1 stream",
                                      f"tok/s at {result.concurrency}", "TTFT s", "max ctx", "seqs at ctx"],
                       tablefmt="simple", disable_numparse=True))
        for c in result.recommendations:
            print(f"\n[{c.rank}] {c.quant_note}; speed ±{c.speed.uncertainty:.0%}, {c.speed.basis}")
            for cmd in c.commands:
                print(f"    $ {cmd}")
            if c.router_config:
                print("    router.yaml:")
                for line in c.router_config.rstrip().splitlines():
                    print(f"      {line}")
            for n in c.notes:
                print(f"    note: {n}")
    else:
        print("\nverdict nothing fits: every layout is listed below with the reason")
    if result.rejected:
        print("\nrejected")
        for r in result.rejected:
            print(f"  {r.family}: {r.reason}")
    return EXIT_FITS if result.fits else EXIT_NO_FIT


SCHEMAS = {"check": "vramcalc.check:CheckResult", "check-vllm": "vramcalc.vllm.engine:VLLMResult",
           "check-llamacpp": "vramcalc.llamacpp.engine:LlamaResult", "plan": "vramcalc.plan:PlanResult",
           "explain": "vramcalc.trace:Explanation", "models": "list of vramcalc.sources.catalog:CatalogEntry",
           "gpus": "list of vramcalc.gpus:GPU"}


def json_schema(name: str) -> dict:
    """The JSON Schema of a --json output (published in docs/schema/)."""
    import importlib

    from pydantic import TypeAdapter

    target = SCHEMAS[name]
    many = target.startswith("list of ")  # `models` and `gpus` print a JSON array of entries
    module, cls = target.removeprefix("list of ").split(":")
    model = getattr(importlib.import_module(module), cls)
    return TypeAdapter(list[model]).json_schema() if many else model.model_json_schema()  # type: ignore[valid-type]


def _cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(args.output), indent=2, sort_keys=True))
    return 0


def _check_arguments(c: argparse.ArgumentParser) -> None:
    """The arguments of `check` and `explain`."""
    c.add_argument("model", help="catalog id or alias (see `vramcalc models`), a local config.json, model folder "
                                 "or .gguf file")
    c.add_argument("--gpu", required=True,
                   help="GPU or system: rtx4090, 2x4090, 4090,3090, 2x8xH100, 24GiB, 48GiB@1000GB/s, 4090-1.5GiB "
                        "(held by a desktop), m4-max(64GiB) (unified memory)")
    c.add_argument("--ctx", type=_positive_int, default=None,
                   help="context length in tokens (default: the model's maximum, as vLLM)")
    c.add_argument("--sequences", type=_positive_int, default=1, help="sequences held at that context")
    c.add_argument("--quant", "--quantization", dest="quant", default=None,
                   help="weigh the model converted to a format: fp8, fp8-block, int8, awq, gptq, w4a16, nvfp4, "
                        "mxfp4, bnb-nf4, bnb-int8, or gguf:<FTYPE> such as gguf:Q4_K_M (default: as the checkpoint is)")
    c.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) for a Hub repo id")
    c.add_argument("--engine", choices=["none", "vllm", "llamacpp"], default="none",
                   help="model an engine's own memory use (vllm, llamacpp); default: weights + KV only")
    v = c.add_argument_group("vLLM options (with --engine vllm)")
    v.add_argument("--tp", type=_positive_int, default=None, help="--tensor-parallel-size (default: GPUs per node)")
    v.add_argument("--pp", type=_positive_int, default=None, help="--pipeline-parallel-size (default: nodes)")
    v.add_argument("--engine-version", default=None, help="vLLM release (default: the newest modelled)")
    v.add_argument("--gpu-memory-utilization", type=float, default=None)
    v.add_argument("--max-model-len", type=_positive_int, default=None, help="default: --ctx, else the model's")
    v.add_argument("--max-num-seqs", type=_positive_int, default=None)
    v.add_argument("--max-num-batched-tokens", type=_positive_int, default=None)
    v.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "bfloat16", "float16", "fp8", "fp8_e4m3",
                                                                "fp8_e5m2"])
    v.add_argument("--block-size", type=_positive_int, default=None)
    v.add_argument("--dtype", default=None, choices=["auto", "bfloat16", "float16", "float32"])
    v.add_argument("--enforce-eager", action="store_true")
    v.add_argument("--moe-backend", choices=["marlin", "triton", "flashinfer_trtllm"],
                   help="vLLM --moe-backend: the MXFP4 expert kernel, whose padded layout sets the weight size "
                        "(default: the one vLLM picks for the GPU)")
    v.add_argument("--flashinfer-sampler", choices=["on", "off"], default=None,
                   help="VLLM_USE_FLASHINFER_SAMPLER: top-k/top-p sampling with FlashInfer, which sets the sampler's "
                        "memory peak (default: the release's choice; up to 0.11.0 FlashInfer is used when installed, "
                        "and the larger PyTorch-sort peak is planned for)")
    v.add_argument("--disable-custom-all-reduce", action="store_true",
                   help="vLLM --disable-custom-all-reduce: no custom all-reduce buffers under TP")
    lc = c.add_argument_group("llama.cpp options (with --engine llamacpp; --gpu cpu for CPU only)")
    lc.add_argument("--parallel", "-np", type=_positive_int, default=4, help="slots (llama-server's auto: 4, unified)")
    lc.add_argument("--no-kv-unified", action="store_true", help="split the context between slots")
    lc.add_argument("--ubatch", "--ubatch-size", "-ub", type=_positive_int, default=512)
    lc.add_argument("--batch-size", "-b", type=_positive_int, default=2048)
    lc.add_argument("--cache-type-k", "-ctk", default="f16", choices=["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1",
                                                                       "iq4_nl", "q5_0", "q5_1"])
    lc.add_argument("--cache-type-v", "-ctv", default="f16", choices=["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1",
                                                                       "iq4_nl", "q5_0", "q5_1"])
    lc.add_argument("--flash-attn", "-fa", default="auto", choices=["on", "off", "auto"])
    lc.add_argument("--n-gpu-layers", "-ngl", type=_ngl, default=None,
                    help="N, all, or auto (default): the largest that fits, as llama.cpp's --fit chooses")
    lc.add_argument("--split-mode", "-sm", default="layer", choices=["none", "layer", "row", "tensor"],
                    help="with several GPUs (--gpu 2x3090): layer (default); tensor (experimental: weights and KV "
                         "in segments, needs flash attention, no --fit); row (refused by CUDA/ROCm/Vulkan/Metal "
                         "builds since it lost its split buffers)")
    lc.add_argument("--backend", default="auto", choices=["auto", "cuda", "rocm", "vulkan", "metal", "sycl"],
                    help="the llama.cpp build's GPU backend (default: CUDA for NVIDIA, ROCm for AMD, Metal for Apple)")
    lc.add_argument("--tensor-split", "-ts", type=_tensor_split, default=None,
                    help="share of the layers per GPU, e.g. 3,1 (default: by each GPU's memory)")
    lc.add_argument("--main-gpu", "-mg", type=int, default=0, help="the GPU used with --split-mode none")
    lc.add_argument("--swa-full", action="store_true")
    lc.add_argument("--cpu-moe", action="store_true")
    lc.add_argument("--n-cpu-moe", "-ncmoe", type=int, default=0, help="keep the experts of the first N layers on the CPU")
    lc.add_argument("--no-kv-offload", "-nkvo", action="store_true", help="keep the KV cache in host RAM")
    lc.add_argument("--ram", type=float, default=None, help="host RAM in GiB, to check the host's share")
    c.add_argument("--json", action="store_true", help="print the result as JSON")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vramcalc", description="Will this LLM fit on this GPU? Memory before the download.")
    p.add_argument("--debug", action="store_true", help="print the traceback of an internal error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("check", help="weights + KV cache at a context against one GPU")
    _check_arguments(c)
    c.set_defaults(func=_cmd_check, explain=False)
    e = sub.add_parser("explain", help="the formula trace of a check: each term, its inputs and its rule")
    _check_arguments(e)
    e.set_defaults(func=_cmd_check, explain=True)
    pl = sub.add_parser("plan", help="recommend engine, quant and layout for a system, with speed and commands")
    pl.add_argument("model", help="catalog id or alias, a Hub repo id, a local config.json, model folder or .gguf")
    pl.add_argument("--gpu", required=True, help="system: 2x4090, 4x3090, rtx4070, 2x8xH100, "
                                                 "ryzen-ai-max-plus-395(128GiB), ... (as for check)")
    pl.add_argument("--ctx", type=_positive_int, default=None, help="context per sequence (default 8192)")
    pl.add_argument("--concurrency", type=_positive_int, default=1, help="sequences served at once")
    pl.add_argument("--goal", choices=["latency", "throughput", "context"], default="latency",
                    help="rank by single-stream speed, aggregate speed at --concurrency, or the longest context")
    pl.add_argument("--engine", choices=["vllm", "llamacpp", "any"], default="any")
    pl.add_argument("--engine-version", default=None, help="vLLM release (default: the newest modelled)")
    pl.add_argument("--ram", type=float, default=None, help="host RAM in GiB, to check offloaded weights")
    pl.add_argument("--top", type=_positive_int, default=5, help="recommendations to show")
    pl.add_argument("--revision", default=None, help="Hub revision for a Hub repo id")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.set_defaults(func=_cmd_plan)
    m = sub.add_parser("models", help="list the bundled offline catalog")
    m.add_argument("match", nargs="?", help="only entries whose id or alias contains this (qwen3, 70b)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_cmd_models)
    sc = sub.add_parser("schema", help="print the JSON Schema of a --json output")
    sc.add_argument("output", choices=sorted(SCHEMAS), help="the command whose --json output to describe")
    sc.set_defaults(func=_cmd_schema)
    g = sub.add_parser("gpus", help="list known GPUs")
    g.add_argument("match", nargs="?", help="only GPUs whose id or name contains this (4090, h100)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=_cmd_gpus)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VramcalcError as e:  # bad input: one line naming what to change
        print(f"vramcalc: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `vramcalc ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return EXIT_FITS
    except Exception as e:  # a bug in vramcalc, not the input's fault
        if args.debug:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"vramcalc: internal error: {type(e).__name__}: {first} (a bug in vramcalc: please report it with the "
              "command line" + ("" if args.debug else "; `vramcalc --debug ...` prints the traceback") + ")",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
