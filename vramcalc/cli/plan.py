"""`vramcalc plan`: engine, quant and layout recommended for a system, with speed and commands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, get_args

from tabulate import tabulate

from ..engines import ENGINE_NAMES
from ..plan import EngineChoice, Goal, Pins, PlanResult, gguf_file_of, layout_text, plan
from ..serving import DEFAULT_OUTPUT, DEFAULT_PROMPT
from ..sources import open_model
from ..systems import parse_system
from ..limits import MAX_CONTEXT, MAX_GPUS, MAX_RAM_GIB, MAX_SEQUENCES, MAX_SLOTS, MAX_TOP
from ..quant import quant_name
from .common import bounded_int, engine_name, exit_code, host_ram_bytes, json_out, positive_float

if TYPE_CHECKING:
    from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    pl = sub.add_parser("plan", help="recommend engine, quant and layout for a system, with speed and commands")
    pl.add_argument("model", help="catalog id or alias, a Hub repo id, a local config.json, model folder or .gguf")
    pl.add_argument("--gpu", required=True, help="system: 2x4090, 4x3090, rtx4070, 2x8xH100, "
                                                 "ryzen-ai-max-plus-395(128GiB), ... (as for check)")
    pl.add_argument("--ctx", "--ctx-size", "-c", dest="ctx", type=bounded_int(MAX_CONTEXT, "tokens"),
                    default=None, help="context per sequence (default 8192)")
    pl.add_argument("--concurrency", type=bounded_int(MAX_SEQUENCES, "sequences"),
                    default=1, help="sequences served at once")
    pl.add_argument("--prompt", type=bounded_int(MAX_CONTEXT, "tokens"), default=DEFAULT_PROMPT,
                    help=f"prompt tokens a request brings (default {DEFAULT_PROMPT}): TTFT and the prefill load")
    pl.add_argument("--output", type=bounded_int(MAX_CONTEXT, "tokens"), default=DEFAULT_OUTPUT,
                    help=f"output tokens a request asks for (default {DEFAULT_OUTPUT})")
    pl.add_argument("--goal", choices=get_args(Goal), default="latency",
                    help="rank by the speed one stream sees at --concurrency, by all streams' tokens/s together, "
                         "or by the longest context")
    pl.add_argument("--engine", type=engine_name, choices=get_args(EngineChoice), default="any",
                    help="vllm, llamacpp (or llama.cpp), any")
    pl.add_argument("--engine-version", default=None, help="vLLM release (default: the newest modelled)")
    pin = pl.add_argument_group("pins: what you already run (only layouts that keep it are ranked)")
    pin.add_argument("--quant", "--quantization", dest="quant", default=None,
                     help="the weight format: checkpoint, awq, fp8, gguf:Q4_K_M (Q4_K_M with --engine llamacpp) ...")
    pin.add_argument("--tp", "--tensor-parallel-size", "-tp", dest="tp", type=bounded_int(MAX_GPUS, "GPUs"), default=None)
    pin.add_argument("--pp", "--pipeline-parallel-size", "-pp", dest="pp", type=bounded_int(MAX_GPUS, "GPUs"), default=None)
    pin.add_argument("--replicas", type=bounded_int(MAX_GPUS, "replicas"), default=None)
    pin.add_argument("--kv-cache-dtype", default=None, help="vLLM auto / fp8; llama.cpp f16 / q8_0")
    pin.add_argument("--enforce-eager", action="store_true", help="vLLM without CUDA graphs")
    pin.add_argument("--backend", choices=["cuda", "rocm", "vulkan", "metal", "sycl", "cpu"], default=None,
                     help="the GPU backend (default: the GPU's own: CUDA, ROCm or Metal)")
    pin.add_argument("--parallel", "-np", type=bounded_int(MAX_SLOTS, "slots"), default=None,
                     help="llama-server -np slots (default: one per --concurrency stream); the other streams queue")
    pin.add_argument("--llamacpp-build", dest="llamacpp_build", default=None, metavar="TAG|COMMIT|DATE",
                     help="the llama.cpp build of the llama.cpp rows: latest (default), 4df29be, a release (b4351) "
                          "or a master build's date (2025-02-01); also the speed model's build era")
    pl.add_argument("--ram", type=positive_float(MAX_RAM_GIB, "GiB"),
                    default=None, help="host RAM in GiB, to check offloaded weights")
    pl.add_argument("--top", type=bounded_int(MAX_TOP, "recommendations"), default=5, help="recommendations to show")
    pl.add_argument("--revision", default=None, help="Hub revision for a Hub repo id")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.set_defaults(func=run)


def gather(args: argparse.Namespace) -> PlanResult:
    source = open_model(args.model, revision=args.revision)
    system = parse_system(args.gpu)
    gguf_file = gguf_file_of(source, args.model)  # a GGUF file: llama.cpp runs it as it is
    return plan(source.spec, system, context=args.ctx, concurrency=args.concurrency, goal=args.goal,
                prompt_tokens=args.prompt, output_tokens=args.output,
                pins=Pins(quant=quant_name(args.quant, args.engine), tp=args.tp, pp=args.pp, replicas=args.replicas,
                          kv_cache_dtype=args.kv_cache_dtype, enforce_eager=args.enforce_eager, backend=args.backend,
                          parallel=args.parallel, llamacpp_build=args.llamacpp_build),
                engine=args.engine, engine_version=args.engine_version, host_ram_bytes=host_ram_bytes(args),
                top=args.top, gguf_file=gguf_file)


def run(args: argparse.Namespace) -> int:
    result = gather(args)
    return json_out(result) if args.json else print_report(result)


def print_report(result: PlanResult) -> int:
    m = result.model
    print(f"model   {m['id']}: {m['params_total'] / 1e9:.1f}B parameters, {m['params_active'] / 1e9:.1f}B active "
          f"per token; checkpoint {m['checkpoint']}")
    print(f"system  {result.system}")
    print(f"asked   {result.context} tokens of context ({result.context_source}), {result.concurrency} concurrent "
          f"sequence(s), goal: {result.goal}")
    for n in result.notes:
        print(f"note    {n}")
    if result.recommendations:
        _print_recommendations(result)
    else:
        print("\nverdict nothing fits: every layout is listed below with the reason")
    if result.rejected:
        print("\nrejected")
        for r in result.rejected:
            print(f"  {r.family}: {r.reason}")
    return exit_code(result.fits)


def _print_recommendations(result: PlanResult) -> None:
    rows = []
    for c in result.recommendations:
        sp = c.speed
        rows.append([c.rank, ENGINE_NAMES[c.engine] + (f" {c.engine_version}" if c.engine_version else ""), c.quant,
                     c.kv_cache_dtype, layout_text(c), f"{sp.decode_tokens_per_s:.0f}",
                     f"{sp.per_stream_tokens_per_s:.0f}", f"{sp.aggregate_tokens_per_s:.0f}",
                     f"{sp.ttft_s:.2f}" if sp.ttft_s is not None else "-",
                     f"{sp.itl_s * 1e3:.1f}" if sp.itl_s is not None else "-",
                     c.max_context, f"{c.max_concurrency:g}"])
    print()
    print(tabulate(rows, headers=["#", "engine", "quant", "KV", "layout", "tok/s 1 stream",
                                  f"per stream at {result.concurrency}", f"all at {result.concurrency}", "TTFT s",
                                  "ITL ms", "max ctx", "seqs at ctx"],
                   tablefmt="simple", disable_numparse=True))
    for c in result.recommendations:
        where = f" (held-out error of {c.speed.uncertainty_slice})" if c.speed.uncertainty_slice else ""
        print(f"\n[{c.rank}] {c.quant_note}; speed ±{c.speed.uncertainty:.0%}{where}, {c.speed.basis}")
        for cmd in c.commands:
            print(f"    $ {cmd}")
        if c.router_config:
            print("    router.yaml:")
            for line in c.router_config.rstrip().splitlines():
                print(f"      {line}")
        for n in c.notes:
            print(f"    note: {n}")
