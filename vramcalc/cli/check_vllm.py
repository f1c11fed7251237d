"""`vramcalc check --engine vllm`: its options, the engine's start-up on each rank, and the report."""

from __future__ import annotations

import argparse
import json
from typing import Any, get_args

from tabulate import tabulate

from ..bars import LEGEND, bar, use_color
from ..engine_checks import VLLMReport, vllm_on_system
from ..sources import ModelSource
from ..systems import System
from ..errors import InputError
from ..vllm.engine import DTYPES, KVCacheDtype
from ..vllm.features import features
from ..vllm.spec_decode import parse_speculative_config
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
    v.add_argument("--kv-cache-dtype", default="auto", choices=list(get_args(KVCacheDtype)),
                   help="vLLM's --kv-cache-dtype; the packed formats (turboquant_*, *_per_token_head) are modelled "
                        "on vLLM 0.33.0, the others of its list are refused as not modelled")
    v.add_argument("--block-size", type=bounded_int(MAX_BLOCK_SIZE, "tokens per block"), default=None)
    v.add_argument("--dtype", default=None, choices=DTYPES)
    v.add_argument("--enforce-eager", action="store_true")
    v.add_argument("--no-rocm-fp8-padding", action="store_true",
                   help="VLLM_ROCM_FP8_PADDING=0: on AMD GPUs, FP8 weights without vLLM's 256-byte row padding")
    v.add_argument("--no-mxfp8-emulation-dequant", action="store_true",
                   help="VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0: MXFP8 weights kept at 1 byte on AMD GPUs without "
                        "native MX (dequantized every step instead of to bf16 at load)")
    v.add_argument("--fp8-moe-requant", action="store_true",
                   help="VLLM_FP8_MOE_REQUANT=mxfp4 (vLLM 0.34, AMD GPUs): a block-FP8 checkpoint's routed experts "
                        "re-quantized to MXFP4 at load")
    v.add_argument("--fp8-moe-requant-act", choices=["a8w4", "a4w4", "a16w4"], default=None,
                   help="VLLM_FP8_MOE_REQUANT_ACT: the re-quantized experts' activations (default a8w4)")
    v.add_argument("--humming-online-quant-config", default=None, metavar="JSON",
                   help="VLLM_HUMMING_ONLINE_QUANT_CONFIG (vLLM 0.34, with --quant humming): the Humming weight "
                        "schema an unquantized checkpoint is quantized to at load, e.g. '{\"dtype\": \"uint4\", "
                        "\"group_size\": 128}'")
    v.add_argument("--humming-input-quant-config", default=None, metavar="JSON",
                   help="VLLM_HUMMING_INPUT_QUANT_CONFIG (vLLM 0.34, with --quant humming): the activation schema")
    v.add_argument("--rocm-aiter-moe", action="store_true",
                   help="VLLM_ROCM_USE_AITER=1: AITER's MoE kernels on AMD GPUs (read with --fp8-moe-requant, where "
                        "they set the MXFP4 layout)")
    v.add_argument("--mxfp4-emulation-dequant", action="store_true",
                   help="VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1: compressed-tensors MXFP4 linear weights on vLLM's "
                        "emulation kernel held at bf16")
    v.add_argument("--reload-mode", choices=["layerwise", "direct"], default=None,
                   help="VLLM_RELOAD_MODE (vLLM 0.34): direct's refusals (weight offloading, online quantization, "
                        "LoRA, ...)")
    v.add_argument("--simple-kv-offload", action="store_true",
                   help="VLLM_USE_SIMPLE_KV_OFFLOAD=1: --kv-offloading-size's native backend through "
                        "SimpleCPUOffloadConnector (host memory; the GPU figures as OffloadingConnector's)")
    v.add_argument("--moe-backend", choices=list(MXFP4_MOE_BACKENDS),
                   help="vLLM --moe-backend: the MXFP4 expert kernel, whose padded layout sets the weight size "
                        "(default: the one vLLM picks for the GPU)")
    v.add_argument("--flashinfer-sampler", choices=list(ON_OFF), default=None,
                   help="VLLM_USE_FLASHINFER_SAMPLER: top-k/top-p sampling with FlashInfer, which sets the sampler's "
                        "memory peak (default: the release's choice; up to 0.11.0 FlashInfer is used when installed, "
                        "and the larger PyTorch-sort peak is planned for)")
    v.add_argument("--disable-custom-all-reduce", action="store_true",
                   help="vLLM --disable-custom-all-reduce: no custom all-reduce buffers under TP")
    v.add_argument("--enable-elastic-ep", action="store_true",
                   help="vLLM --enable-elastic-ep: from 0.34 it keeps the extensible KV cache off (elastic scaling "
                        "itself is not sized)")
    ext = v.add_mutually_exclusive_group()
    ext.add_argument("--enable-extensible-kv-cache", dest="extensible_kv_cache", action="store_const", const=True,
                     default=None, help="vLLM 0.34+: size the KV cache from the memory measured after warmup (the "
                                        "default on CUDA and ROCm)")
    ext.add_argument("--disable-extensible-kv-cache", dest="extensible_kv_cache", action="store_const", const=False,
                     help="vLLM 0.34+: size the KV cache from the profile's estimate, as 0.33 does (utilization 0.92 "
                          "unless given)")
    v.add_argument("--speculative-config", default=None, metavar="JSON",
                   help="vLLM --speculative-config, e.g. '{\"method\":\"mtp\",\"num_speculative_tokens\":1}': the "
                        "drafter's weights and KV layers (MTP, EAGLE/EAGLE-3, a draft model; ngram / suffix add none) "
                        "and the speed estimate's accepted tokens per step")
    v.add_argument("--spec-acceptance", type=float, default=None, metavar="RATE",
                   help="per-token acceptance rate of the drafts for the speed estimate (default: the method's "
                        "published figure, data/vllm_spec.json)")
    v.add_argument("--data-parallel-size", "-dp", dest="data_parallel_size", type=bounded_int(MAX_GPUS, "engines"),
                   default=1, help="vLLM --data-parallel-size: engines of TP x PP GPUs each over the system's GPUs; an "
                                   "MoE model's experts are split over all of them")
    v.add_argument("--decode-context-parallel-size", "-dcp", dest="decode_context_parallel_size",
                   type=bounded_int(MAX_GPUS, "GPUs"), default=None,
                   help="vLLM --decode-context-parallel-size: each request's KV dealt over this many of the TP ranks "
                        "(full attention and MLA; GQA needs TP above the KV heads)")
    v.add_argument("--prefill-context-parallel-size", "-pcp", dest="prefill_context_parallel_size",
                   type=bounded_int(MAX_GPUS, "GPUs"), default=None,
                   help="vLLM --prefill-context-parallel-size: vLLM's refusals (DCP sizes; no backend without MLA); "
                        "a PCP layout that starts is not modelled")
    v.add_argument("--enable-expert-parallel", "-ep", action="store_true",
                   help="vLLM --enable-expert-parallel: whole experts per GPU over TP x DP ranks")
    v.add_argument("--enable-eplb", action="store_true",
                   help="vLLM --enable-eplb: expert load balancing (with --enable-expert-parallel): its redundant "
                        "experts and rearranging buffers per GPU")
    v.add_argument("--eplb-config", default=None, metavar="JSON",
                   help="vLLM --eplb-config, e.g. '{\"num_redundant_experts\": 4}' (with --enable-eplb)")
    v.add_argument("--monokernel", action="store_true",
                   help="vLLM --monokernel: MiniMax-M3's ROCm specialized decode (vLLM 0.34.0): vLLM's refusals in "
                        "its words, its buffers per GPU where taken; no effect on NVIDIA GPUs and other models")
    v.add_argument("--enable-return-routed-experts", action="store_true",
                   help="vLLM --enable-return-routed-experts (MoE): the routed experts of each token returned; a "
                        "device buffer per GPU outside the budget and a host store sized from the KV cache")
    v.add_argument("--aux-output-config", default=None, metavar="JSON",
                   help="vLLM --aux-output-config, e.g. '{\"enable_return_routed_experts\": true, \"max_bytes\": "
                        "268435456}' (max_bytes: the host store's size)")
    v.add_argument("--attention-backend", default=None, metavar="BACKEND",
                   help="vLLM --attention-backend (FLASH_ATTN, FLASHINFER, TRITON_ATTN): the selected backend alone, "
                        "refused where it does not run (FlashInfer's workspace counted)")
    v.add_argument("--attention-config", default=None, metavar="JSON",
                   help="vLLM --attention-config, e.g. '{\"backend\": \"TRITON_ATTN\"}' (backend only)")
    v.add_argument("--enable-dbo", action="store_true",
                   help="vLLM --enable-dbo: dual-batch overlap (needs --all2all-backend deepep_low_latency, "
                        "deepep_high_throughput or nixl_ep)")
    v.add_argument("--all2all-backend", default=None,
                   help="vLLM --all2all-backend: the MoE all-to-all under expert parallelism (DeepEP's buffer per GPU; "
                        "deepep_low_latency / nixl_ep under DP make max_num_batched_tokens default to 256)")
    v.add_argument("--deepep-buffer-size-mb", dest="deepep_buffer_size_mb", type=int, default=None, metavar="MIB",
                   help="as vLLM's VLLM_DEEPEP_BUFFER_SIZE_MB: DeepEP's NVLink buffer (and high throughput's RDMA "
                        "buffer across machines), MiB per GPU (default 1024)")
    v.add_argument("--deepep-force-intra-node", dest="deepep_force_intra_node", action="store_true",
                   help="as vLLM's VLLM_DEEPEP_HIGH_THROUGHPUT_FORCE_INTRA_NODE=1: no DeepEP RDMA buffer across machines")
    v.add_argument("--load-format", default=None, metavar="FORMAT",
                   help="vLLM --load-format: the formats whose loader builds the default model change nothing; a "
                        "format the release does not register is refused as vLLM refuses it")
    v.add_argument("--kv-transfer-config", default=None, metavar="JSON",
                   help="vLLM --kv-transfer-config, e.g. '{\"kv_connector\": \"NixlConnector\", \"kv_role\": "
                        "\"kv_both\"}': a connector without hybrid-KV-manager support sizes sliding-window layers at "
                        "full length")
    v.add_argument("--disable-chunked-mm-input", action="store_true",
                   help="vLLM --disable-chunked-mm-input: refused where a multimodal item vramcalc sizes is larger "
                        "than max_num_batched_tokens")
    v.add_argument("--disable-chunked-prefill", action="store_true",
                   help="vLLM --disable-chunked-prefill: max_num_batched_tokens defaults to max_model_len")
    f = c.add_argument_group("vLLM serving features (with --engine vllm)")
    f.add_argument("--enable-lora", action="store_true",
                   help="LoRA adapter slots on every GPU: max_loras x rank per projection, in the weights")
    f.add_argument("--max-loras", type=bounded_int(1024, "adapters"), default=None, help="GPU adapter slots (default 1)")
    f.add_argument("--max-lora-rank", type=int, choices=features().lora.ranks, default=None,
                   help="the slots' rank (default 16)")
    f.add_argument("--max-cpu-loras", type=bounded_int(1_000_000, "adapters"), default=None,
                   help="adapters cached in host memory (no GPU memory; must be >= --max-loras)")
    f.add_argument("--lora-extra-vocab-size", type=bounded_int(MAX_CONTEXT, "tokens"), default=None,
                   help="extra vocabulary rows per adapter (vLLM up to 0.11.x; default 256 there)")
    f.add_argument("--fully-sharded-loras", action="store_true", help="shard the LoRA A / B slots by TP too")
    f.add_argument("--hf-config-path", default=None, metavar="PATH",
                   help="size the model from this config (a folder, config.json, catalog id or Hub repo), as vLLM "
                        "builds it from --hf-config-path")
    f.add_argument("--enable-moe-shared-loras", action="store_true",
                   help="with --enable-lora on a MoE model: the experts' gate/up lora_A and down lora_B once for all "
                        "experts")
    f.add_argument("--enable-tower-connector-lora", action="store_true",
                   help="with --enable-lora on a multimodal model: LoRA slots on the vision tower and connector too")
    f.add_argument("--enable-mixed-moe-lora-format", action="store_true",
                   help="with --enable-lora: the 2D MoE LoRA wrapper for 3D-weight MoE classes too (two gate/up "
                        "lora_A per expert)")
    f.add_argument("--specialize-active-lora", action="store_true",
                   help="with --enable-lora: CUDA graphs for each captured active-adapter count (powers of 2 up to "
                        "--max-loras, and --max-loras + 1)")
    f.add_argument("--lora-dtype", choices=["auto", "float16", "bfloat16"], default=None,
                   help="the slots' dtype (default auto: the model's)")
    f.add_argument("--cpu-offload-params", nargs="+", default=None, metavar="SEGMENT",
                   help="vLLM --cpu-offload-params: only parameters with this name segment are offloaded by "
                        "--cpu-offload-gb (sized: experts, the routed experts)")
    f.add_argument("--cpu-offload-gb", type=float, default=0.0,
                   help="GiB of weights per GPU moved to host memory; each forward step reads them over PCIe")
    f.add_argument("--offload-backend", choices=["auto", "uva", "prefetch"], default=None,
                   help="vLLM's weight offloader (default auto: prefetch with --offload-group-size, else uva with "
                        "--cpu-offload-gb)")
    f.add_argument("--offload-group-size", type=bounded_int(1_000_000, "layers", 0), default=None,
                   help="prefetch offloading: the last --offload-num-in-group layers of every group of this many "
                        "live in host memory and are copied into GPU buffers ahead of use")
    f.add_argument("--offload-num-in-group", type=bounded_int(1_000_000, "layers"), default=None,
                   help="prefetch offloading: layers offloaded per group (default 1)")
    f.add_argument("--offload-prefetch-step", type=bounded_int(1_000_000, "layers", 0), default=None,
                   help="prefetch offloading: layers prefetched ahead, the GPU buffer slots (default 1)")
    f.add_argument("--offload-params", nargs="+", default=None, metavar="SEGMENT",
                   help="prefetch offloading: only parameters with this name segment (sized: experts)")
    f.add_argument("--kv-cache-memory-bytes", type=_human_bytes, default=None,
                   help="the KV cache size per GPU as given (replaces the gpu_memory_utilization budget; 8G = 8 GiB)")
    f.add_argument("--language-model-only", action="store_true",
                   help="multimodal model without its vision encoder (its weights and profiling left out)")
    f.add_argument("--enable-mm-embeds", action="store_true",
                   help="take precomputed multimodal embeddings: with every modality at 0 their run-time encoder "
                        "cache is checked against what the KV cache leaves")
    f.add_argument("--mm-ipc-gpu-memory-gb", type=float, default=0.0,
                   help="GiB per GPU vLLM carves out of the KV cache for GPU-side multimodal decoding (multimodal models)")
    f.add_argument("--mm-encoder-attn-dtype", choices=["fp8"], default=None,
                   help="fp8 attention in the vision encoder (refused where vLLM's encoder backends cannot run it)")
    f.add_argument("--mm-encoder-attn-backend", default=None, metavar="BACKEND",
                   help="the vision encoder's attention backend (FLASH_ATTN, TRITON_ATTN, TORCH_SDPA, FLASHINFER on "
                        "NVIDIA): refused where vLLM refuses it, and the encoder's profile peak sized for it")
    f.add_argument("--video-pruning-rate", type=float, default=None,
                   help="the share of each video's tokens pruned (Qwen3-VL / Qwen3.5: above 0 the M-RoPE cache holds "
                        "4x the positions)")
    f.add_argument("--num-gpu-blocks-override", type=bounded_int(2**40, "blocks"), default=None,
                   help="KV cache blocks vLLM allocates whatever its profile found")
    f.add_argument("--cudagraph-capture-sizes", type=bounded_int(MAX_CONTEXT, "tokens"), nargs="+", default=None,
                   help="the batch sizes vLLM captures as CUDA graphs, replacing its default list")
    f.add_argument("--max-cudagraph-capture-size", type=bounded_int(MAX_CONTEXT, "tokens"), default=None,
                   help="the largest CUDA graph capture size (default min(2 x max_num_seqs, 512))")
    f.add_argument("--performance-mode", choices=["balanced", "interactivity", "throughput"], default=None,
                   help="interactivity: every capture size 1-32; throughput: default max_num_seqs and "
                        "max_num_batched_tokens doubled")
    f.add_argument("--disable-sliding-window", action="store_true",
                   help="sliding-window layers attend in full; max_model_len capped at the window")
    f.add_argument("--hf-overrides", default=None, metavar="JSON",
                   help="vLLM --hf-overrides, e.g. '{\"num_hidden_layers\": 4}': applied onto the model's config before "
                        "it is sized (a JSON object merges into text_config; data/vllm.json hf_overrides lists the keys)")
    f.add_argument("--kv-offloading-size", type=float, default=None,
                   help="GiB of host memory for offloaded KV blocks, summed over the TP ranks (no GPU memory)")
    f.add_argument("--kv-offloading-backend", choices=["native", "lmcache"], default=None,
                   help="with --kv-offloading-size: lmcache turns vLLM's hybrid KV cache manager off")
    for flag in ("--mamba-cache-dtype", "--mamba-ssm-cache-dtype"):
        f.add_argument(flag, choices=["auto", "bfloat16", "float16", "float32"], default=None,
                       help="the recurrent state's dtype (conv and SSM; SSM only), auto: the model's")
    f.add_argument("--model-impl", choices=["auto", "vllm", "transformers", "terratorch"], default=None,
                   help="vLLM's --model-impl: transformers sizes the Transformers backend's buffers (its activations "
                        "are taken from vLLM's own class, with a warning); auto and vllm: vLLM's own class")
    f.add_argument("--mm-encoder-tp-mode", choices=["weights", "data"], default=None,
                   help="data: the whole vision tower on every TP rank (weights, the default, shards it)")
    f.add_argument("--pp-layer-partition", type=_partition, default=None,
                   help="layers per PP stage, as vLLM's VLLM_PP_LAYER_PARTITION (e.g. 20,16)")
    f.add_argument("--kv-cache-dtype-skip-layers", nargs="+", default=None, metavar="LAYER",
                   help="layer indices (0 1 ...) or sliding_window kept at the model dtype in a quantized KV cache")
    f.add_argument("--no-estimate-cudagraphs", dest="estimate_cudagraphs", action="store_false", default=None,
                   help="as vLLM's VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0: the KV cache takes the CUDA-graph "
                        "memory, the graphs are captured outside the budget")
    f.add_argument("--kv-cache-layout", default=None, choices=["LBNHC", "LBHNC", "LHBNC", "NHD", "HND", "BLHNC", "BLNHC",
                                                                "BHLNC"],
                   help="as vLLM's VLLM_KV_CACHE_LAYOUT: refused where the attention backends vLLM picks on the GPU "
                        "do not all accept it; the KV figures do not change")
    f.add_argument("--flashinfer-workspace-bytes", type=int, default=None, metavar="BYTES",
                   help="as vLLM's VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE: FlashInfer's workspace floor and its "
                        "TRT-LLM kernels' buffer (default 394 MiB)")
    f.add_argument("--sparse-indexer-max-logits-mb", type=int, default=None, metavar="MIB",
                   help="as vLLM's VLLM_SPARSE_INDEXER_MAX_LOGITS_MB: the DSA sparse indexer's profile-run dummy "
                        "logits tensor (default 512 MiB; DeepSeek-V3.2)")
    f.add_argument("--sparse-indexer-max-decode-logits-mb", type=int, default=None, metavar="MIB",
                   help="as vLLM's VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB (vLLM 0.34): the DSA sparse indexer's "
                        "decode logits budget on SM 10.x, which caps the decode rows of its profile-run dummy "
                        "(default 2048 MiB, 0 off)")
    f.add_argument("--no-fused-mqa-topk", dest="use_fused_mqa_topk", action="store_false", default=None,
                   help="as vLLM's VLLM_USE_FUSED_MQA_TOPK=0 (vLLM 0.34): the DSA indexer's prefill stays on the "
                        "dense MQA-logits path, without the fused kernel's profile-run scratch (SM 10.x)")
    f.add_argument("--max-tokens-per-expert-fp4-moe", type=int, default=None, metavar="TOKENS",
                   help="as vLLM's VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE: the rows (x top-k) of the CUTLASS FP4 MoE "
                        "kernels' block-scale tensor, counted with --moe-backend cutlass on NVFP4 experts "
                        "(default 163840)")
    f.add_argument("--mamba-block-size", type=int, default=None,
                   help="the Mamba state's block with prefix caching (no memory change; refused without prefix caching)")
    f.add_argument("--gdn-prefill-backend", choices=["flashinfer", "triton", "cutedsl", "aiter_flydsl", "sycl"],
                   default=None, help="the Gated DeltaNet prefill kernel (default auto: FlashInfer's on SM 9.0 and, "
                   "with head_k_dim 128, SM 10.x / 12.x, which keeps a prefill checkpoint block per GDN layer with "
                   "prefix caching)")
    f.add_argument("--linear-backend", choices=["auto", "cutlass", "flashinfer_cutlass", "flashinfer_cutedsl", "flashinfer_trtllm", "flashinfer_cudnn", "flashinfer_b12x", "b12x", "marlin", "humming", "triton", "deep_gemm", "torch", "aiter", "machete", "fbgemm", "conch", "exllama", "emulation", "xpu", "xpu_woq"], default=None,
                   help="the kernel family quantized linear layers prefer (no change on an unquantized checkpoint; "
                   "on a quantized one not modelled, with a warning)")
    f.add_argument("--sparse-indexer-topk-backend", choices=["auto", "deep_select", "cooperative", "persistent", "per_row", "flashinfer", "torch", "aiter"], default=None,
                   help="the DSA indexer's decode top-k kernel (no change to the budget; on a model with the indexer "
                   "its decode transients are not modelled, with a warning)")
    f.add_argument("--kda-prefill-backend", choices=["auto", "triton", "flashkda", "flashinfer", "fused"], default=None,
                   help="the Kimi delta attention prefill kernel: changes no memory; read for vLLM's refusal of "
                   "flashkda off CUDA, fused off ROCm, and any choice but auto / triton on Kimi-Linear")
    f.add_argument("--use-replayssm", action="store_true", default=None,
                   help="ReplaySSM's Mamba-2 decode kernel: x / dt / B rings in each state (Nemotron-H)")
    f.add_argument("--replayssm-buffer-len", type=int, default=None, help="ReplaySSM's ring rows (default 16)")
    f.add_argument("--mamba-backend", choices=["triton", "flashinfer"], default=None,
                   help="the Mamba state-update kernel (FlashInfer's ReplaySSM ring has 1 + speculative rows more)")
    f.add_argument("--mamba-ssu-algorithm", choices=["auto", "simple", "vertical", "horizontal"], default=None,
                   help="FlashInfer's state-update algorithm (no memory change; refused without --mamba-backend "
                        "flashinfer)")
    f.add_argument("--enable-prefix-caching", dest="enable_prefix_caching", action="store_true", default=None,
                   help="prefix caching on (the default, except for attention-free models)")
    f.add_argument("--runner", choices=["auto", "generate", "pooling", "draft"], default=None,
                   help="pooling: the model as an embedding / classification model (no lm_head)")
    f.add_argument("--convert", choices=["auto", "none", "embed", "classify"], default=None,
                   help="embed / classify: adapt a causal LM into a pooling model (implies --runner pooling)")
    f.add_argument("--mla-disable", action="store_true",
                   help="as vLLM's VLLM_MLA_DISABLE=1: MLA models keep full per-head K and V instead of the latent")
    f.add_argument("--dcp-q-replicate", action="store_true",
                   help="vLLM --dcp-q-replicate (or VLLM_DCP_Q_REPLICATE=1): with DCP, the MLA query projection whole "
                        "within each DCP group")
    f.add_argument("--replicate-embed", action="store_true",
                   help="as vLLM's VLLM_REPLICATE_EMBED=1: DeepSeek-V3.2's embedding whole on every TP rank (CUDA)")
    f.add_argument("--weight-offloading-disable-uva", action="store_true",
                   help="as vLLM's VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1: --cpu-offload-gb's weights copied to the GPU "
                        "layer by layer instead of read in place (the largest layer's copy at the activation peak)")
    f.add_argument("--confidential-compute", action="store_true",
                   help="as vLLM 0.34's VLLM_CONFIDENTIAL_COMPUTE=1 (NVIDIA Confidential Computing): no UVA, so the "
                        "model runner's token-id table, M-RoPE positions and buffer pools are held on the GPU")
    f.add_argument("--disable-hybrid-kv-cache-manager", action="store_true",
                   help="sliding-window layers beside full attention keep the full context, as full attention does")
    f.add_argument("--limit-mm-per-prompt", type=_mm_limits, default=None,
                   help="items per modality, JSON ('{\"image\": 1, \"video\": 0}'); all 0 skips the encoder profile")
    f.add_argument("--mm-processor-kwargs", type=_mm_processor_kwargs, default=None,
                   help="the processor's options, JSON as vLLM takes them ('{\"max_pixels\": 1003520}', "
                        "images_kwargs / videos_kwargs nested): size the profiled dummy image or video for "
                        "Qwen2.5-VL-3B and Qwen3.6-27B")
    f.add_argument("--no-enable-prefix-caching", dest="enable_prefix_caching", action="store_false", default=None,
                   help="prefix caching off (memory is the same; repeated prompt prefixes are prefilled again)")
    f.add_argument("--shared-prefix", type=bounded_int(MAX_CONTEXT, "tokens"), default=0,
                   help="prompt tokens every request repeats (an agent's system prompt and tools): with prefix "
                        "caching on, the speed estimate's TTFT prefills only the rest")


def _human_bytes(v: str) -> int:
    from ..pasted_command import human_int

    try:
        return human_int("--kv-cache-memory-bytes", v)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _partition(v: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(x) for x in v.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--pp-layer-partition takes layer counts such as 20,16, got {v!r}") from None
    if any(n < 1 for n in parts):
        raise argparse.ArgumentTypeError("--pp-layer-partition: every stage needs at least one layer")
    return parts


def _mm_processor_kwargs(v: str) -> dict[str, object] | None:
    from ..vllm.mm_profile import parse_processor_kwargs

    try:
        return parse_processor_kwargs(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _mm_limits(v: str) -> dict[str, int]:
    try:
        d = json.loads(v)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"--limit-mm-per-prompt takes JSON such as '{{\"image\": 1}}', got {v!r}")
    if not isinstance(d, dict) or not all(isinstance(k, str) and isinstance(n, int) and not isinstance(n, bool)
                                          and 0 <= n <= MAX_SEQUENCES for k, n in d.items()):
        raise argparse.ArgumentTypeError("--limit-mm-per-prompt: a JSON object of modality: count (0 or more)")
    return d


def feature_options(args: argparse.Namespace) -> dict[str, Any]:
    """The serving features' VLLMOptions fields (the defaults left out, so a command without them reads as before)."""
    out: dict[str, Any] = {}
    for name in ("enable_lora", "fully_sharded_loras", "enable_moe_shared_loras", "enable_mixed_moe_lora_format",
                 "specialize_active_lora", "enable_tower_connector_lora", "language_model_only", "enable_mm_embeds",
                 "disable_hybrid_kv_cache_manager",
                 "disable_sliding_window", "enable_eplb", "mla_disable", "enable_return_routed_experts",
                 "enable_dbo", "dcp_q_replicate", "replicate_embed", "deepep_force_intra_node",
                 "weight_offloading_disable_uva", "confidential_compute", "disable_chunked_mm_input", "monokernel"):
        if getattr(args, name, False):
            out[name] = True
    for name in ("max_loras", "max_lora_rank", "max_cpu_loras", "lora_extra_vocab_size", "kv_cache_memory_bytes",
                 "num_gpu_blocks_override", "max_cudagraph_capture_size", "performance_mode", "kv_offloading_size",
                 "kv_offloading_backend", "mamba_cache_dtype", "mamba_ssm_cache_dtype", "pp_layer_partition",
                 "mm_encoder_tp_mode", "model_impl",
                 "lora_dtype", "hf_config_path",
                 "limit_mm_per_prompt", "mm_processor_kwargs", "enable_prefix_caching", "hf_overrides",
                 "decode_context_parallel_size", "prefill_context_parallel_size", "eplb_config", "aux_output_config", "kv_transfer_config", "load_format", "attention_backend", "attention_config",
                 "all2all_backend", "deepep_buffer_size_mb", "estimate_cudagraphs", "flashinfer_workspace_bytes", "kv_cache_layout",
                 "sparse_indexer_max_logits_mb", "sparse_indexer_max_decode_logits_mb", "use_fused_mqa_topk",
                 "max_tokens_per_expert_fp4_moe",
                 "mamba_block_size", "runner", "convert", "gdn_prefill_backend", "kda_prefill_backend", "linear_backend",
                 "sparse_indexer_topk_backend", "use_replayssm",
                 "replayssm_buffer_len", "mamba_backend", "mamba_ssu_algorithm", "offload_backend",
                 "offload_group_size", "offload_num_in_group", "offload_prefetch_step"):
        if getattr(args, name, None) is not None:
            out[name] = getattr(args, name)
    if getattr(args, "kv_cache_dtype_skip_layers", None):
        out["kv_cache_dtype_skip_layers"] = tuple(args.kv_cache_dtype_skip_layers)
    if getattr(args, "cpu_offload_params", None):
        out["cpu_offload_params"] = tuple(args.cpu_offload_params)
    if getattr(args, "offload_params", None):
        out["offload_params"] = tuple(args.offload_params)
    if getattr(args, "cudagraph_capture_sizes", None) is not None:
        out["cudagraph_capture_sizes"] = tuple(args.cudagraph_capture_sizes)
    for name in ("cpu_offload_gb", "mm_ipc_gpu_memory_gb"):
        if getattr(args, name, 0):
            out[name] = getattr(args, name)
    if getattr(args, "video_pruning_rate", None) is not None:
        out["video_pruning_rate"] = args.video_pruning_rate
    if getattr(args, "mm_encoder_attn_dtype", None) is not None:
        out["mm_encoder_attn_dtype"] = args.mm_encoder_attn_dtype
    if getattr(args, "mm_encoder_attn_backend", None) is not None:
        out["mm_encoder_attn_backend"] = args.mm_encoder_attn_backend
    if getattr(args, "no_rocm_fp8_padding", False):
        out["rocm_fp8_padding"] = False
    if getattr(args, "no_mxfp8_emulation_dequant", False):
        out["mxfp8_emulation_dequant"] = False
    if getattr(args, "simple_kv_offload", False):
        out["simple_kv_offload"] = True
    for f in ("humming_online_quant_config", "humming_input_quant_config"):
        if getattr(args, f, None) is not None:
            out[f] = getattr(args, f)
    if getattr(args, "fp8_moe_requant", False):
        out["fp8_moe_requant"] = True
    if getattr(args, "fp8_moe_requant_act", None):
        out["fp8_moe_requant_act"] = args.fp8_moe_requant_act
    if getattr(args, "rocm_aiter_moe", False):
        out["rocm_aiter_moe"] = True
    if getattr(args, "mxfp4_emulation_dequant", False):
        out["mxfp4_emulation_dequant"] = True
    if getattr(args, "reload_mode", None):
        out["reload_mode"] = args.reload_mode
    return out


def gather(args: argparse.Namespace, source: ModelSource, system: System) -> VLLMReport:
    options = dict(tp=args.tp, pp=args.pp, engine_version=args.engine_version,
                   gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len or args.ctx,
                   max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                   kv_cache_dtype=args.kv_cache_dtype, quantization=args.quant, dtype=args.dtype,
                   enforce_eager=args.enforce_eager, block_size=args.block_size,
                   moe_backend=args.moe_backend, flashinfer_sampler=ON_OFF.get(args.flashinfer_sampler),
                   disable_custom_all_reduce=args.disable_custom_all_reduce,
                   enable_extensible_kv_cache=args.extensible_kv_cache, enable_elastic_ep=args.enable_elastic_ep,
                   speculative_config=parse_speculative_config(args.speculative_config)
                   if args.speculative_config else None, spec_acceptance=args.spec_acceptance, **feature_options(args),
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
        d0 = r.devices[0]
        if d0.lora_bytes:
            print(f"LoRA adapter slots {gib(d0.lora_bytes)} GiB per GPU (rank 0), inside the weights")
        if d0.cpu_offload_bytes:
            print(f"CPU offload {gib(d0.cpu_offload_bytes)} GiB per GPU (rank 0) of weights in host memory, "
                  "read over PCIe at every step")
        print()
    if r.speculative:
        sp = r.speculative
        print(f"spec    {sp.method}, {sp.num_speculative_tokens} speculative tokens"
              + (f" from {sp.draft_model}" if sp.draft_model else "")
              + f": drafter weights {gib(sp.draft_weight_bytes)} GiB per rank, {sp.draft_kv_layers} KV layer(s) in "
              "the pool")
    if r.kv_cache_tokens:
        print(f"KV cache {r.kv_cache_tokens:,} tokens; maximum concurrency for {r.max_model_len:,} tokens per request: "
              f"{r.max_concurrency:.2f}x")
    # the encoder's profiling peak is not in the KV figure (vllm.mm.encoder_profile): the KV shown is an upper bound,
    # and a real start has been refused where this one fits (tests/data/vllm_mm_profile_logs.json, vllm#18124); where
    # vramcalc/vllm/mm_profile.py sizes it, the estimate (not applied: its held-out error) is named
    unsized = any(getattr(w, "code", None) == "vllm.mm.encoder_profile" for w in r.warnings)
    est = max((d.encoder_profile_bytes for d in r.devices), default=0)
    what = (f"about {gib(est)} GiB of KV by vramcalc's estimate, not applied: see the warning" if est
            else "not sized: see the warning")
    return verdict_out(r, f"STARTS IF the encoder's profiling peak ({what}) leaves room for the KV cache"
                       if unsized else "STARTS", "DOES NOT START", report.command_label)
