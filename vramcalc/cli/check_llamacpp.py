"""`vramcalc check --engine llamacpp`: its options, llama.cpp's buffers on each device, and the report."""

from __future__ import annotations

import argparse
from typing import get_args

from tabulate import tabulate

from ..bars import LEGEND, bar, use_color
from ..engine_checks import LlamaReport, gpu_layers, llama_ftype, llamacpp_on_system
from ..errors import InputError
from ..ggml import kv_cache_types
from ..llamacpp.extras import LlamaExtra
from ..llamacpp.engine import (UNCHECKED_HOST_RAM_GIB, blocks_all, FlashAttn, GPUBackend, Program, SpecType, SplitMode,
                               unchecked_host_need)
from ..llamacpp.weights import HostCPU
from ..sources import ModelSource
from ..sources.limits import redact
from ..systems import System
from ..limits import MAX_CONTEXT, MAX_GPUS, MAX_LAYER_FLAG, MAX_RAM_GIB, MAX_SLOTS
from .common import bounded_int, gib, host_ram_bytes, positive_float, verdict_out

BACKEND_NAMES = {"cpu": "CPU", "cuda": "CUDA", "rocm": "ROCm/HIP", "vulkan": "Vulkan", "metal": "Metal", "sycl": "SYCL",
                 "rpc": "RPC"}



SPEC_TYPES = get_args(SpecType)


def _spec_types(value: str) -> tuple[str, ...]:
    """--spec-type a,b,...: each one vramcalc models (llamacpp/engine.py SpecType); a list holding none is none."""
    types = [t.strip() for t in value.split(",") if t.strip()]
    bad = [t for t in types if t != "none" and t not in SPEC_TYPES]
    if bad:
        raise argparse.ArgumentTypeError(f"{', '.join(bad)}: expected none or {', '.join(SPEC_TYPES)}")
    return () if "none" in types else tuple(dict.fromkeys(types))

def _ngl(value: str) -> int | None:
    """-ngl N | auto | all: auto (None) lets vramcalc find the largest that fits, as --fit does."""
    try:
        return gpu_layers(value)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).replace("n_gpu_layers", "--n-gpu-layers")) from None


def _tensor_split(value: str) -> tuple[float, ...]:
    try:
        parts = tuple(float(x) for x in value.replace("/", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected proportions such as 3,1, got {value!r}") from None
    if not parts or any(x < 0 for x in parts) or not any(parts):
        raise argparse.ArgumentTypeError("--tensor-split takes non-negative proportions, at least one above 0")
    return parts


def _device_list(value: str) -> tuple[str, ...]:
    parts = tuple(x.strip() for x in value.split(",") if x.strip())
    if not parts:
        raise argparse.ArgumentTypeError("expected device names such as CUDA0,CUDA1, or none")
    return parts


def add_arguments(c: argparse.ArgumentParser) -> None:
    lc = c.add_argument_group("llama.cpp options (with --engine llamacpp; --gpu cpu for CPU only)")
    lc.add_argument("--parallel", "-np", type=bounded_int(MAX_SLOTS, "slots"),
                    default=None, help="slots (llama-server's auto: 4, unified; the other programs: 1)")
    lc.add_argument("--no-kv-unified", action="store_true", help="split the context between slots")
    lc.add_argument("--ubatch", "--ubatch-size", "-ub", type=bounded_int(MAX_CONTEXT, "tokens"), default=None,
                    help="default 512")
    lc.add_argument("--batch-size", "-b", type=bounded_int(MAX_CONTEXT, "tokens"), default=None,
                    help="default 2048 (Ollama: its batch x parallel)")
    lc.add_argument("--program", choices=list(get_args(Program)), default="llama-server",
                    help="what runs llama.cpp: its defaults and the logits rows it reserves (llama-server: one per "
                         "slot; llama-cli, llama-bench, LM Studio: n_batch; Ollama: n_batch, 4096 context, 1 slot, "
                         "embeddings in the output buffer)")
    lc.add_argument("--cache-type-k", "-ctk", default="f16", choices=kv_cache_types())
    lc.add_argument("--cache-type-v", "-ctv", default="f16", choices=kv_cache_types())
    lc.add_argument("--flash-attn", "-fa", default="auto", choices=get_args(FlashAttn))
    lc.add_argument("--n-gpu-layers", "--gpu-layers", "-ngl", dest="n_gpu_layers", type=_ngl, default=None,
                    help="N, all, or auto (default): the largest that fits, as llama.cpp's --fit chooses")
    lc.add_argument("--split-mode", "-sm", default="layer", choices=get_args(SplitMode),
                    help="with several GPUs (--gpu 2x3090): layer (default); tensor (experimental: weights and KV "
                         "in segments, needs flash attention, no --fit); row (refused by CUDA/ROCm/Vulkan/Metal "
                         "builds since it lost its split buffers)")
    lc.add_argument("--backend", default="auto", choices=["auto", *get_args(GPUBackend)],
                    help="the llama.cpp build's GPU backend (default: CUDA for NVIDIA, ROCm for AMD, Metal for Apple)")
    lc.add_argument("--tensor-split", "-ts", type=_tensor_split, default=None,
                    help="share of the layers per GPU, e.g. 3,1 (default: by each GPU's memory)")
    lc.add_argument("--main-gpu", "-mg", type=bounded_int(MAX_GPUS - 1, "(a GPU index)", minimum=0), default=0,
                    help="the GPU used with --split-mode none")
    lc.add_argument("--swa-full", action="store_true")
    lc.add_argument("--ctx-checkpoints", "--swa-checkpoints", "-ctxcp", dest="n_ctx_checkpoints",
                    type=bounded_int(MAX_CONTEXT, "checkpoints", minimum=0), default=None,
                    help="llama-server's context checkpoints per slot (default 32): host RAM as conversations run")
    lc.add_argument("--cache-ram", "-cram", dest="cache_ram_mib", type=_cache_ram, default=None, metavar="MIB",
                    help="llama-server's prompt cache limit in MiB (default 8192; -1: no limit, 0: off)")
    lc.add_argument("--cpu-moe", action="store_true")
    lc.add_argument("--n-cpu-moe", "-ncmoe", type=bounded_int(MAX_LAYER_FLAG, "layers", minimum=0), default=0,
                    help="keep the experts of the first N layers on the CPU (above the layer count: every layer)")
    lc.add_argument("--no-kv-offload", "-nkvo", action="store_true", help="keep the KV cache in host RAM")
    lc.add_argument("--override-tensor", "-ot", dest="override_tensor", action="append", default=[],
                    metavar="PATTERN=DEVICE", help="place the tensors whose names match the regex on DEVICE (CPU, "
                    "CUDA0, CUDA1 ...); repeatable, the first match wins")
    lc.add_argument("--no-mmap", action="store_true", help="read the CPU weights into allocated host memory")
    lc.add_argument("--mlock", action="store_true", help="lock the mapped CPU weights in RAM")
    lc.add_argument("--device", "-dev", dest="devices", type=_device_list, default=None, metavar="DEV1,DEV2",
                    help="the GPUs llama.cpp uses, in order (CUDA0,CUDA1 ...; none: CPU only)")
    lc.add_argument("--llamacpp-build", dest="llamacpp_build", default="4df29be", metavar="TAG|COMMIT|DATE",
                    help="the llama.cpp build: latest, the modelled commit 4df29be (default), a release (b4351) or "
                         "a master build's date (2025-02-01); the rules that changed since follow it, a build "
                         "that cannot be placed against a change is refused naming it")
    lc.add_argument("--blas", action="store_true",
                    help="the build has a BLAS backend (GGML_BLAS: on by default in macOS builds, Accelerate): it "
                         "runs the matmuls on weights in host memory, so none of them is copied to the first GPU")
    lc.add_argument("--host-cpu", choices=list(get_args(HostCPU)), default="x86_avx2",
                    help="the host CPU: which weight types llama.cpp repacks for it (CPU_REPACK)")
    x = c.add_argument_group("llama-server beside the model (with --engine llamacpp): LoRA, draft model, projector")
    x.add_argument("--lora", action="append", default=[], metavar="FNAME",
                   help="a LoRA adapter's GGUF (repeatable, or comma-separated): its tensors on their layer's device")
    x.add_argument("--lora-scaled", action="append", default=[], metavar="FNAME:SCALE")
    x.add_argument("--lora-rank", type=bounded_int(65536, "(a LoRA rank)"), default=None,
                   help="without the file: an F16 adapter of this rank on every attention and FFN projection")
    x.add_argument("--model-draft", "--spec-draft-model", "-md", dest="model_draft", default=None, metavar="FNAME",
                   help="the draft model for speculative decoding: its weights, KV cache and compute buffer (a GGUF "
                        "here, or a file name naming a catalog model and file type)")
    x.add_argument("--override-tensor-draft", "--spec-draft-override-tensor", "-otd", dest="override_tensor_draft",
                   action="append", default=[], metavar="PATTERN=DEVICE",
                   help="place the draft's tensors whose names match the regex on DEVICE (the target's -ot does not "
                        "reach the draft)")
    x.add_argument("--gpu-layers-draft", "--n-gpu-layers-draft", "--spec-draft-ngl", "-ngld", dest="n_gpu_layers_draft",
                   type=_ngl, default=None, help="N, all or auto (default: every layer, llama.cpp's -1)")
    x.add_argument("--device-draft", "--spec-draft-device", "-devd", dest="device_draft", type=_device_list,
                   default=None, metavar="DEV1,DEV2", help="the draft's devices (none: the CPU)")
    x.add_argument("--spec-draft-n-max", "--draft-max", dest="draft_max", type=bounded_int(1024, "tokens", minimum=0),
                   default=None, help="tokens drafted per step (default 3; llama-server 4df29be spells it "
                                      "--spec-draft-n-max: --draft-max was removed)")
    x.add_argument("--cache-type-k-draft", "-ctkd", dest="type_k_draft", default=None, choices=kv_cache_types())
    x.add_argument("--cache-type-v-draft", "-ctvd", dest="type_v_draft", default=None, choices=kv_cache_types())
    x.add_argument("--draft-acceptance", type=positive_float(1.0, "(a share of drafted tokens)"), default=None,
                   help="the share of drafted tokens the target accepts, for the speed estimate (default: "
                        "data/llamacpp_speculative.json)")
    x.add_argument("--spec-type", dest="spec_types", type=_spec_types, default=None, metavar="TYPE[,TYPE...]",
                   help="speculative types (none, " + ", ".join(SPEC_TYPES) + "): llama-server reserves 1 + n_max "
                        "output rows per slot; ngram-mod / ngram-map-k* keep host tables; draft-simple drafts with "
                        "-md (since PR #23988 -md alone drafts nothing)")
    x.add_argument("--spec-ngram-mod-n-max", dest="spec_ngram_mod_n_max", type=bounded_int(1024, "tokens", minimum=0),
                   default=None, help="ngram-mod's most drafted tokens a step (default 64)")
    for kind in ("simple", "map-k", "map-k4v"):
        x.add_argument(f"--spec-ngram-{kind}-size-m", dest=f"spec_ngram_{kind.replace('-', '_')}_size_m",
                       type=bounded_int(1024, "tokens", minimum=1), default=None,
                       help=f"ngram-{kind}'s m-gram size, its most drafted tokens a step (default 48)")
    x.add_argument("--control-vector", "--control-vector-scaled", dest="control_vectors", action="append", default=[],
                   metavar="FNAME[:SCALE]", help="a control vector (repeatable, or comma-separated): one n_embd F32 "
                   "tensor per layer on its layer's device, whatever the number of files")
    x.add_argument("--override-kv", dest="kv_overrides", action="append", default=[], metavar="KEY=TYPE:VALUE,...",
                   help="llama.cpp's overrides of the GGUF metadata (repeatable, or comma-separated): "
                   "expert_used_count, context_length and sliding_window are read as overridden; a key that sets "
                   "tensor shapes is refused at another value than the file's")
    x.add_argument("--mmproj", "-mm", default=None, metavar="FNAME",
                   help="the multimodal projector's GGUF: its weights and warmup compute buffer on the first GPU")
    x.add_argument("--no-mmproj-offload", action="store_true", help="keep the projector on the CPU")
    lc.add_argument("--ram", type=positive_float(MAX_RAM_GIB, "GiB"), default=None,
                    help="host RAM in GiB, to check the host's share (without it the verdict is about the GPUs only)")


def _cache_ram(v: str) -> int:
    n = int(v)
    if n < -1:
        raise argparse.ArgumentTypeError(f"{v}: -1 (no limit), 0 (off) or a size in MiB")
    return n


def gather(args: argparse.Namespace, source: ModelSource, system: System) -> LlamaReport:
    cpu = args.gpu.strip().lower() == "cpu"
    ftype = llama_ftype(args.quant)
    options = dict(n_ctx=args.ctx, n_parallel=args.parallel, kv_unified=not args.no_kv_unified,
                   n_batch=args.batch_size, n_ubatch=args.ubatch, type_k=args.cache_type_k,
                   type_v=args.cache_type_v, flash_attn=args.flash_attn, n_gpu_layers=args.n_gpu_layers,
                   split_mode=args.split_mode, tensor_split=args.tensor_split, main_gpu=args.main_gpu,
                   swa_full=args.swa_full, n_ctx_checkpoints=args.n_ctx_checkpoints,
                   cache_ram_mib=args.cache_ram_mib, cpu_moe=args.cpu_moe, n_cpu_moe=args.n_cpu_moe,
                   no_kv_offload=args.no_kv_offload, backend=args.backend,
                   override_tensor=tuple(args.override_tensor), no_mmap=args.no_mmap, mlock=args.mlock,
                   devices=args.devices, host_cpu=args.host_cpu, program=args.program, blas=args.blas,
                   build=args.llamacpp_build, lora=tuple(args.lora), lora_scaled=tuple(args.lora_scaled),
                   lora_rank=args.lora_rank, model_draft=args.model_draft, n_gpu_layers_draft=args.n_gpu_layers_draft,
                   device_draft=args.device_draft, draft_max=args.draft_max, type_k_draft=args.type_k_draft,
                   type_v_draft=args.type_v_draft, draft_acceptance=args.draft_acceptance, mmproj=args.mmproj,
                   mmproj_offload=not args.no_mmproj_offload, control_vectors=tuple(args.control_vectors),
                   spec_types=args.spec_types or None,
                   spec_ngram_mod_n_max=args.spec_ngram_mod_n_max,
                   spec_ngram_simple_size_m=args.spec_ngram_simple_size_m,
                   spec_ngram_map_k_size_m=args.spec_ngram_map_k_size_m,
                   spec_ngram_map_k4v_size_m=args.spec_ngram_map_k4v_size_m, override_tensor_draft=tuple(args.override_tensor_draft),
                   kv_overrides=tuple(args.kv_overrides) or None)
    options = {k: v for k, v in options.items() if v is not None or k in ("n_ctx", "n_gpu_layers", "tensor_split",
                                                                         "devices")}
    if args.ctx is None and args.program == "ollama":
        options.pop("n_ctx")  # Ollama's own default context
    model_ref = redact(args.model) if args.model.endswith(".gguf") else f"<{source.spec.id} {ftype}>.gguf"
    return llamacpp_on_system(source, None if cpu else system, options, host_ram_bytes(args), model_ref, args.quant)


def print_report(report: LlamaReport) -> int:
    r, n_layer, n_gpus = report.result, blocks_all(report.spec), report.n_gpus  # MTP blocks count as layers
    print(f"model   {report.spec.id}  ({report.weights}, {r.model_size_bytes / 2**30:.2f} GiB, {r.bpw:.2f} BPW)")
    where = "CPU only" if not n_gpus else f"{r.gpu_layers} of {n_layer} layers on the GPU" + ("s" if n_gpus > 1 else "")
    built = f" {r.build}" if r.build else ""  # the build the figures are for (--llamacpp-build)
    print(f"engine  llama.cpp{built} ({BACKEND_NAMES[r.backend]}), context {r.n_ctx:,} cells ({r.n_ctx_seq:,} per request, {r.n_parallel} slots"
          f"{', unified' if r.kv_unified else ''}) [{r.context_source}], {where}, "
          f"flash attention {'on' if r.flash_attn else 'off'}")
    extra = bool(r.extras)
    cvec = any(e.kind == "cvec" for e in r.extras)
    spec = any(e.kind == "spec" for e in r.extras)
    rows = [[d.device, gib(d.model_buffer_bytes + d.repack_buffer_bytes), gib(d.kv_buffer_bytes + d.recurrent_buffer_bytes),
             gib(d.compute_buffer_bytes), gib(d.output_buffer_bytes)]
            + ([gib(d.lora_buffer_bytes), gib(d.draft_bytes), gib(d.mmproj_bytes)] if extra else [])
            + ([gib(d.control_vector_bytes)] if cvec else []) + ([gib(d.speculative_bytes)] if spec else [])
            + [gib(d.total_bytes), gib(d.uncertainty_bytes), gib(d.available_bytes) if d.available_bytes >= 0 else "-"]
            for d in r.devices]
    print()
    print(tabulate(rows, headers=["device", "model", "KV+state", "compute (est.)", "output"]
                   + (["LoRA", "draft", "mmproj"] if extra else []) + (["cvec"] if cvec else []) + (["ngram"] if spec else [])
                   + ["total", "margin", "available"],
                   tablefmt="simple", disable_numparse=True))
    print("(GiB; margin = the compute estimate's uncertainty, counted in the verdict; available = CUDA-reported "
          "total (system RAM on an integrated GPU) less llama.cpp's 1 GiB --fit margin)")
    for e in r.extras:
        print(_extra_line(e))
    if r.checkpoint_bytes:  # llama-server's host RAM as conversations run (llamacpp/checkpoints.py)
        print(f"as conversations run (not counted above): context checkpoints {r.checkpoint_bytes / 2**20:.1f} MiB "
              f"each, up to {r.checkpoints_max_bytes / 2**30:.2f} GiB for all slots; prompt cache up to "
              + ("no limit" if r.prompt_cache_max_bytes is None else "off" if not r.prompt_cache_max_bytes else
                 f"{r.prompt_cache_max_bytes / 2**30:.2f} GiB"))
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
    if n_gpus:
        _print_offload(report)
    host = unchecked_host_need(r)
    if host is None:
        return verdict_out(r, "FITS", "DOES NOT FIT", report.command_label)
    need = f"host RAM not checked: needs {gib(host.total_bytes + host.uncertainty_bytes)} GiB"
    if any(e.code == "llamacpp.host.ram_unchecked" for e in r.errors):  # the rest fits
        no = (f"{'GPUS FIT' if n_gpus else 'NOT CHECKED'}; {need}, more than the {UNCHECKED_HOST_RAM_GIB} GiB "
              "assumed without --ram (pass --ram)")
    else:
        no = "DOES NOT FIT"
    return verdict_out(r, f"FITS{' ON THE GPUS' if n_gpus else ''}; {need}, within the {UNCHECKED_HOST_RAM_GIB} GiB "
                          "assumed without --ram (pass --ram)", no, report.command_label)


def _print_offload(report: LlamaReport) -> None:
    """With GPUs: the largest -ngl and context that fit, the experts kept on the CPU, the best file types."""
    r, n_layer = report.result, report.spec.num_layers
    if r.max_gpu_layers is not None:
        full = r.max_gpu_layers >= n_layer + 1
        print(f"largest -ngl that fits at this context: {'all' if full else r.max_gpu_layers} "
              f"({n_layer + 1} = every layer and the output)")
    else:
        print("largest -ngl that fits at this context: none (not even the output layer)")
    if r.n_cpu_moe and not report.n_cpu_moe_asked:
        print(f"experts kept on the CPU: those of {r.n_cpu_moe} of {n_layer} layers (--n-cpu-moe {r.n_cpu_moe}, "
              "the fewest that fit with every layer offloaded, as llama.cpp's --fit moves MoE tensors first)")
    if r.max_ctx is not None:
        print(f"largest context that fits with -ngl {r.n_gpu_layers}: {r.max_ctx:,} cells")
    else:
        print(f"largest context that fits with -ngl {r.n_gpu_layers}: none (from 256 cells)")
    print(f"best file type at this context: {r.best_ftype_full_offload or 'none'} with every layer on the GPU"
          + ("s" if report.n_gpus > 1 else "") + f", {r.best_ftype or 'none'} with offload (Q8_0 down to IQ2_M)")


def _extra_line(e: LlamaExtra) -> str:
    """One line per LoRA adapter, draft model, projector or control vector: what it adds and where."""
    mib = (sum(e.gpu_bytes) + e.host_bytes) / 2**20
    where = "GPU" if sum(e.gpu_bytes) and not e.host_bytes else "host" if not sum(e.gpu_bytes) else "GPU + host"
    d = e.detail
    if e.kind == "lora":
        what = f"LoRA {e.ref}: rank {d['rank']}, {d['tensors']} tensors, scale {d['scale']:g}"
    elif e.kind == "draft":
        what = (f"draft {e.ref}: weights {int(d['model']) / 2**20:.2f} + KV {int(d['kv']) / 2**20:.2f} + compute "
                f"{int(d['compute']) / 2**20:.2f} + output {int(d['output']) / 2**20:.2f} MiB, {d['n_ctx']} cells, "
                f"{d['gpu_layers']}/{d['n_layer']} layers offloaded, drafts {d['draft_max']} tokens a step")
        if "target_layers" in d:  # --spec-type draft-eagle3 (llamacpp/eagle3.py), draft-dflash / -dspark (dflash.py)
            head = "an EAGLE-3 head" if d["type"] == "draft-eagle3" else f"a {d['type']} drafter"
            what += (f"; {head} on the target's layers {d['target_layers']}, backend sampling "
                     + ("on" if d["backend_sampling"] else "off"))
    elif e.kind == "spec":
        what = f"--spec-type {e.ref}: a token table of {d['entries']:,} int32 entries"
    elif e.kind == "mtp":
        what = (f"--spec-type draft-mtp: the MTP context on the model's {d['layers']} MTP block(s): KV "
                f"{int(d['kv']) / 2**20:.2f} ({d['type_k']}/{d['type_v']}) + compute {int(d['compute']) / 2**20:.2f} + "
                f"output {int(d['output']) / 2**20:.2f} MiB, {d['n_ctx']} cells, drafts {d['draft_max']} tokens a step")
    elif e.kind == "cvec":
        what = f"control vector {e.ref}: {d['tensors']} F32 tensors of {d['n_embd']} (layers 1 to {d['tensors']})"
    else:
        what = (f"mmproj {e.ref} ({d['projector']}): weights {int(d['weights']) / 2**20:.2f} + compute "
                f"{int(d['compute']) / 2**20:.2f} MiB ({d['image_size']}px warmup image, {d['patches']} patches)")
    return f"{what}: {mib:.2f} MiB on the {where}"
