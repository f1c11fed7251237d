"""`vramcalc check --engine vllm`: its options, the engine's start-up on each rank, and the report."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from ..bars import LEGEND, bar, use_color
from ..engine_checks import VLLMReport, vllm_on_system
from ..sources import ModelSource
from ..systems import System
from ..vllm.engine import DTYPES
from ..vllm.kv import KV_DTYPES
from ..vllm.weights import MXFP4_MOE_BACKENDS
from ..limits import MAX_BLOCK_SIZE, MAX_CONTEXT, MAX_GPUS, MAX_SEQUENCES
from .common import bounded_int, gib, host_ram_bytes, verdict_out

ON_OFF = {"on": True, "off": False}


def add_arguments(c: argparse.ArgumentParser) -> None:
    v = c.add_argument_group("vLLM options (with --engine vllm)")
    v.add_argument("--tp", "--tensor-parallel-size", "-tp", dest="tp", type=bounded_int(MAX_GPUS, "GPUs"),
                   default=None, help="--tensor-parallel-size (default: GPUs per node)")
    v.add_argument("--pp", "--pipeline-parallel-size", "-pp", dest="pp", type=bounded_int(MAX_GPUS, "GPUs"),
                   default=None, help="--pipeline-parallel-size (default: nodes)")
    v.add_argument("--engine-version", default=None, help="vLLM release (default: the newest modelled)")
    v.add_argument("--gpu-memory-utilization", type=float, default=None)
    v.add_argument("--max-model-len", type=bounded_int(MAX_CONTEXT, "tokens"),
                   default=None, help="default: --ctx, else the model's")
    v.add_argument("--max-num-seqs", type=bounded_int(MAX_SEQUENCES, "sequences"), default=None)
    v.add_argument("--max-num-batched-tokens", type=bounded_int(MAX_CONTEXT, "tokens"), default=None)
    v.add_argument("--kv-cache-dtype", default="auto", choices=list(KV_DTYPES))
    v.add_argument("--block-size", type=bounded_int(MAX_BLOCK_SIZE, "tokens per block"), default=None)
    v.add_argument("--dtype", default=None, choices=DTYPES)
    v.add_argument("--enforce-eager", action="store_true")
    v.add_argument("--moe-backend", choices=list(MXFP4_MOE_BACKENDS),
                   help="vLLM --moe-backend: the MXFP4 expert kernel, whose padded layout sets the weight size "
                        "(default: the one vLLM picks for the GPU)")
    v.add_argument("--flashinfer-sampler", choices=list(ON_OFF), default=None,
                   help="VLLM_USE_FLASHINFER_SAMPLER: top-k/top-p sampling with FlashInfer, which sets the sampler's "
                        "memory peak (default: the release's choice; up to 0.11.0 FlashInfer is used when installed, "
                        "and the larger PyTorch-sort peak is planned for)")
    v.add_argument("--disable-custom-all-reduce", action="store_true",
                   help="vLLM --disable-custom-all-reduce: no custom all-reduce buffers under TP")
    v.add_argument("--data-parallel-size", "-dp", dest="data_parallel_size", type=bounded_int(MAX_GPUS, "engines"),
                   default=1, help="vLLM --data-parallel-size: engines of TP x PP GPUs each over the system's GPUs; an "
                                   "MoE model's experts are split over all of them")
    v.add_argument("--enable-expert-parallel", "-ep", action="store_true",
                   help="vLLM --enable-expert-parallel: whole experts per GPU over TP x DP ranks")
    v.add_argument("--disable-chunked-prefill", action="store_true",
                   help="vLLM --disable-chunked-prefill: max_num_batched_tokens defaults to max_model_len")


def gather(args: argparse.Namespace, source: ModelSource, system: System) -> VLLMReport:
    options = dict(tp=args.tp, pp=args.pp, engine_version=args.engine_version,
                   gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len or args.ctx,
                   max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                   kv_cache_dtype=args.kv_cache_dtype, quantization=args.quant, dtype=args.dtype,
                   enforce_eager=args.enforce_eager, block_size=args.block_size,
                   moe_backend=args.moe_backend, flashinfer_sampler=ON_OFF.get(args.flashinfer_sampler),
                   disable_custom_all_reduce=args.disable_custom_all_reduce,
                   data_parallel_size=args.data_parallel_size, enable_expert_parallel=args.enable_expert_parallel,
                   enable_chunked_prefill=not args.disable_chunked_prefill)
    return vllm_on_system(source, system, options, host_ram_bytes(args), args.gpu.strip())


def print_report(report: VLLMReport) -> int:
    r, gpu = report.result, report.gpu
    print(f"model   {r.model.id}  ({r.model.params_total / 1e9:.2f}B params)")
    dp = f" (one of {r.layout.replicas} data-parallel engines)" if r.layout.replicas > 1 else ""
    print(f"engine  vLLM {r.engine_version}, TP {r.layout.tp} x PP {r.layout.pp}{dp}, max_model_len {r.max_model_len:,}, "
          f"max_num_seqs {r.layout.max_num_seqs}, max_num_batched_tokens {r.layout.max_num_batched_tokens}")
    print(f"device  {gpu.name} x {len(r.devices) or report.ranks}, {gib(gpu.usable_bytes)} GiB usable")
    if r.devices:
        print()
        rows = [[d.rank, gib(d.budget_bytes), gib(d.weights_bytes), gib(d.activation_bytes), gib(d.non_torch_bytes),
                 gib(d.cuda_graph_bytes), gib(d.kv_cache_bytes), gib(d.uncertainty_bytes)] for d in r.devices]
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
    return verdict_out(r, "STARTS", "DOES NOT START")
