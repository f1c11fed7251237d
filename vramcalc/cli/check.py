"""`vramcalc check`: weights + KV cache at a context against one GPU, or an engine's start-up (--engine)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, TypeVar, get_args

from tabulate import tabulate

from ..bars import bar, use_color
from ..check import CheckResult, check
from ..errors import InputError, VramcalcError
from ..messages import Message, warning
from ..llamacpp.engine import LlamaResult
from ..engines import Engine
from ..engine_checks import with_speed
from ..serving import DEFAULT_OUTPUT, DEFAULT_PROMPT, ServingEstimate
from ..sources import ModelSource, open_model
from ..sources.model_names import offline_quantized
from ..systems import System, parse_system
from ..vllm.engine import VLLMResult
from . import check_llamacpp, check_vllm
from .check_llamacpp import LlamaReport
from .check_vllm import VLLMReport
from ..limits import MAX_CONTEXT, MAX_SEQUENCES
from ..quant import quant_name
from .common import bounded_int, engine_name, exit_code, gib, json_out

if TYPE_CHECKING:
    from .common import Subparsers

Report = CheckResult | VLLMReport | LlamaReport  # what `check` found, with what its report needs
R = TypeVar("R", VLLMReport, LlamaReport)


def add_arguments(c: argparse.ArgumentParser) -> None:
    """The arguments of `check` and `explain`."""
    c.add_argument("model", help="catalog id or alias (see `vramcalc models`), a local config.json, model folder "
                                 "or .gguf file")
    c.add_argument("--gpu", required=True,
                   help="GPU or system: rtx4090, 2x4090, 4090,3090, 2x8xH100, 24GiB, 48GiB@1000GB/s, 4090-1.5GiB "
                        "(held by a desktop), m4-max(64GiB) (unified memory)")
    c.add_argument("--ctx", "--ctx-size", "-c", dest="ctx", type=bounded_int(MAX_CONTEXT, "tokens", minimum=0),
                   default=None,
                   help="context length in tokens (default, or 0 as llama.cpp's -c 0: the model's maximum); with "
                        "--engine llamacpp the total over the --parallel slots, as llama-server's -c")
    c.add_argument("--sequences", type=bounded_int(MAX_SEQUENCES, "sequences"),
                   default=1, help="sequences held at that context")
    c.add_argument("--quant", "--quantization", dest="quant", default=None,
                   help="weigh the model converted to a format: fp8, fp8-block, int8, awq, gptq, w4a16, nvfp4, "
                        "mxfp4, bnb-nf4, bnb-int8, or a llama.cpp file type, Q4_K_M or gguf:Q4_K_M (default: as the checkpoint is)")
    c.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) for a Hub repo id")
    c.add_argument("--engine", type=engine_name, choices=["none", *get_args(Engine)], default="none",
                   help="model an engine's own memory use (vllm, llamacpp or llama.cpp); default: weights + KV only")
    s = c.add_argument_group("serving speed (with --engine)")
    s.add_argument("--concurrency", type=bounded_int(MAX_SEQUENCES, "sequences"), default=1,
                   help="streams served at once for the speed figures (default 1)")
    s.add_argument("--prompt", type=bounded_int(MAX_CONTEXT, "tokens"), default=DEFAULT_PROMPT,
                   help=f"prompt tokens a request brings (default {DEFAULT_PROMPT})")
    s.add_argument("--output", type=bounded_int(MAX_CONTEXT, "tokens"), default=DEFAULT_OUTPUT,
                   help=f"output tokens a request asks for (default {DEFAULT_OUTPUT})")
    seen = set(c._action_groups)
    check_vllm.add_arguments(c)
    vllm_groups = [g for g in c._action_groups if g not in seen]
    check_llamacpp.add_arguments(c)
    llama_groups = [g for g in c._action_groups if g not in seen and g not in vllm_groups]
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    # each engine's options, to refuse them where another engine (or none) would leave them unread
    c.set_defaults(_engine_only={
        "vllm": [(a.dest, a.default, a.option_strings[0]) for g in vllm_groups for a in g._group_actions
                 if a.dest not in ENGINE_NEUTRAL],
        "llamacpp": [(a.dest, a.default, a.option_strings[0]) for g in llama_groups for a in g._group_actions
                     if a.dest not in ENGINE_NEUTRAL],
        "speed": [(a.dest, a.default, a.option_strings[0]) for a in s._group_actions] +
                 [(a.dest, a.default, a.option_strings[0]) for g in vllm_groups + llama_groups for a in g._group_actions
                  if a.dest in ENGINE_NEUTRAL]})


# read by either engine's check, though listed in one engine's group: the serving estimate's shared prefix, and the
# host RAM (llama.cpp's host buffers; vLLM's fix and alternatives search, check_vllm.gather)
ENGINE_NEUTRAL = frozenset({"shared_prefix", "ram"})
ENGINE_NAMES = {"vllm": "vLLM", "llamacpp": "llama.cpp"}


def refuse_unread_options(args: argparse.Namespace) -> None:
    """An option of one engine given with another engine, or with none, would be silently ignored: refused."""
    groups: dict[str, list[tuple[str, object, str]]] = getattr(args, "_engine_only", {})
    for engine, options in groups.items():
        if engine == args.engine or (engine == "speed" and args.engine != "none"):
            continue
        given = [flag for dest, default, flag in options if getattr(args, dest, default) != default]
        if not given:
            continue
        if engine == "speed":
            raise InputError(f"{given[0]} is read by the engine checks only: add --engine vllm or --engine llamacpp")
        if args.engine == "none":
            raise InputError(f"{given[0]} is a {ENGINE_NAMES[engine]} option: add --engine {engine} (without "
                             "--engine, check weighs the weights and KV cache only)")
        raise InputError(f"{given[0]} is a {ENGINE_NAMES[engine]} option, which --engine {args.engine} does not "
                         f"read: drop it, or check with --engine {engine}")


def add_parser(sub: Subparsers) -> None:
    c = sub.add_parser("check", help="weights + KV cache at a context against one GPU",
                       epilog="or paste the command you run: vramcalc check --gpu SYSTEM [--ram GiB] [--json] -- "
                              "vllm serve MODEL ... | llama-server -m FILE.gguf ... | docker run ...")
    add_arguments(c)
    c.set_defaults(func=run)


def gather(args: argparse.Namespace) -> Report:
    """The check the arguments ask for: weights + KV on one GPU, or the engine's (--engine)."""
    refuse_unread_options(args)
    system = parse_system("1GiB" if args.gpu.strip().lower() == "cpu" else args.gpu)
    fallback: Message | None = None
    path = getattr(args, "hf_config_path", None)
    try:
        if args.engine == "vllm" and path and path != args.model:  # sized (its speed too) from that config alone
            from ..api import config_source

            source, fallback = config_source(args.model, path, args.revision)
        else:
            source = open_model(args.model, revision=args.revision)
    except VramcalcError as e:  # a quantized release not fetched: its base model in the catalog, with that quant
        base = offline_quantized(args.model, e) if args.engine != "llamacpp" else None
        if base is None or (args.quant is not None and quant_name(args.quant, args.engine) != base[1]):
            raise  # a --quant other than the one the repo's name says: no stand-in for its bytes
        source, args.quant = open_model(base[0]), base[1]
        fallback = warning("command.repo_offline", base[2])
    args.quant = quant_name(args.quant, args.engine)
    args.ctx = args.ctx or None  # -c 0: the model's own context, as llama.cpp reads it (common/arg.cpp --ctx-size)
    report = _gather(args, source, system)
    if fallback is None:
        return report
    if isinstance(report, CheckResult):
        return report.model_copy(update={"warnings": [fallback] + report.warnings})
    if isinstance(report, VLLMReport):
        return dataclasses.replace(report, result=report.result.model_copy(
            update={"warnings": [fallback] + report.result.warnings}))
    return dataclasses.replace(report, result=report.result.model_copy(
        update={"warnings": [fallback] + report.result.warnings}))


def _gather(args: argparse.Namespace, source: ModelSource, system: System) -> Report:
    if args.engine == "llamacpp":
        report = check_llamacpp.gather(args, source, system)  # its spec: --override-kv applied
        return _with_speed(report, args, source.model_copy(update={"spec": report.spec}), system)
    if args.engine == "vllm":
        return _with_speed(check_vllm.gather(args, source, system), args, source, system)
    if system.nodes * system.gpus_per_node > 1:
        raise InputError(f"{args.gpu!r} has several GPUs: add --engine vllm (with --tp/--pp) to place the model on them")
    return check(source.spec, system.gpus[0], context=args.ctx, sequences=args.sequences,
                 file_weight_bytes=source.weight_bytes, quant=args.quant)


def _with_speed(report: R, args: argparse.Namespace, source: ModelSource, system: System) -> R:
    """The engine result with its serving estimate at --concurrency / --prompt / --output."""
    sys_ = None if args.gpu.strip().lower() == "cpu" else system
    return with_speed(report, source.spec, sys_, args.quant, enforce_eager=bool(getattr(args, "enforce_eager", False)),  # type: ignore[no-any-return]
                      kv_cache_dtype=getattr(args, "kv_cache_dtype", None), concurrency=args.concurrency,
                      prompt=args.prompt, output=args.output, shared_prefix=getattr(args, "shared_prefix", 0) or 0,
                      prefix_caching=getattr(args, "enable_prefix_caching", None),
                      llamacpp_build=getattr(args, "llamacpp_build", None))


def result_of(report: Report) -> CheckResult | VLLMResult | LlamaResult:
    return report if isinstance(report, CheckResult) else report.result


def run(args: argparse.Namespace) -> int:
    report = gather(args)
    if args.json:
        return json_out(result_of(report))
    if isinstance(report, VLLMReport):
        code = check_vllm.print_report(report)
        print_speed(report.result.speed)
        return code
    if isinstance(report, LlamaReport):
        code = check_llamacpp.print_report(report)
        print_speed(report.result.speed)
        return code
    return print_report(report)


def print_speed(est: ServingEstimate | None) -> None:
    if est is None:
        return
    print(f"speed   {est.concurrency} stream(s) of {est.prompt_tokens} prompt / {est.output_tokens} output tokens: "
          f"{est.per_stream_tokens_per_s:.0f} tok/s per stream, {est.aggregate_tokens_per_s:.0f} tok/s together, "
          f"TTFT {est.ttft_s:.2f} s, ITL {est.itl_s * 1e3:.1f} ms; one stream alone {est.single_stream_tokens_per_s:.0f} "
          f"tok/s (±{est.uncertainty:.0%}, held-out error of {est.uncertainty_slice}; {est.basis})")
    if est.speculative_acceptance:
        print(f"        speculative decoding: {est.speculative_acceptance}")


def print_report(result: CheckResult) -> int:
    m = result.model
    print(f"model   {m.id}  ({m.model_type}, {m.dtype})")
    active = f", {m.params_active / 1e9:.2f}B active" if m.params_active != m.params_total else ""
    print(f"params  {m.params_total:,} ({m.params_total / 1e9:.2f}B{active})")
    kinds = ", ".join(f"{n} {k}" for k, n in m.layer_kinds.items())
    print(f"layers  {kinds}")
    d = result.device
    print(f"device  {d.name}, {gib(d.usable_bytes)} GiB usable ({d.usable_source.split(' (')[0]})")
    print(f"context {result.context:,} tokens x {result.sequences} sequence(s)  [{result.context_source}]")
    print()
    rows = [[t.name, gib(t.bytes), t.detail] for t in result.breakdown]
    rows.append(["total", gib(result.required_bytes), ""])
    rows.append(["free" if result.fits else "short by", gib(abs(result.free_bytes)), ""])
    print(tabulate(rows, headers=["memory", "GiB", "how"], tablefmt="simple", disable_numparse=True))
    print()
    print(f"{d.id}  " + bar([("weights", result.weights_bytes), ("KV", result.kv_bytes + result.state_bytes)],
                             result.available_bytes, use_color()) + "   (# weights  = KV and state  . free)")
    print()
    verdict = "WEIGHTS AND KV FIT" if result.fits else "DOES NOT FIT"
    print(f"verdict {verdict}: needs {gib(result.required_bytes)} of {gib(result.available_bytes)} GiB"
          + (" (not a start-up verdict: --engine vllm or --engine llamacpp adds the engine's workspace)"
             if result.fits else ""))
    for w in result.warnings:
        print(f"warning {w}")
    print("not counted: " + "; ".join(result.not_counted))
    return exit_code(result.fits)
