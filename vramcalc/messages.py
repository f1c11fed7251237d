"""Every refusal and warning vramcalc reports: a typed message with a stable code.

`text` is what the CLI prints (an engine's refusal in the engine's own words); `fix` says what would work
instead and `source` where the engine raises it, when known. Code and CLI branch on `code`, never on `text`.
Every code is registered in CODES with a one-line meaning; a Message with an unregistered code is refused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

Level = Literal["error", "warning", "note"]

CODES: dict[str, str] = {
    # vLLM: online quantization (--quantization online / a shorthand, --quantization-config; vllm/quant_config.py)
    "vllm.online_quant.not_sized": "an online weight format whose post-load bytes vramcalc does not size (upper bound)",
    "vllm.online_quant.ptpc_kernel": "online FP8 per-channel needs a per-token FP8 GEMM (SM 8.9+ or ROCm MI3xx)",
    "vllm.online_quant.unused": "--quantization-config without --quantization online: vLLM builds no online method",
    "vllm.humming.not_sized": "a part of --quantization humming vramcalc does not size (counted as stored or at the "
                              "base schema)",
    "vllm.humming.unused": "a VLLM_HUMMING_* schema variable without --quantization humming: nothing reads it",
    # vLLM: speculative decoding (--speculative-config; vramcalc/vllm/spec_decode.py)
    "vllm.spec.config": "vLLM refuses the --speculative-config (SpeculativeConfig's own words)",
    "vllm.spec.deprecated_method": "a per-model MTP method name, which vLLM replaces with mtp",
    "vllm.spec.suffix_needs_arctic": "suffix decoding needs the Arctic Inference package installed",
    "vllm.diffusion.flashinfer": "FlashInfer refused for DiffusionGemma's mixed causal/bidirectional attention",
    "vllm.diffusion.no_canvas": "--diffusion-config without canvas_length: no canvas is sized",
    "vllm.diffusion.not_a_diffusion_model": "--diffusion-config on a model that is no diffusion LLM",
    "vllm.diffusion.speed": "a diffusion LLM's denoising steps are not in the speed estimate",
    "vllm.diffusion.sampler_peak": "a diffusion decode step samples every request's canvas; the profile run one",
    "vllm.spec.mtp_reuse": "more speculative tokens than MTP layers: vLLM runs the same MTP layer again",
    "vllm.spec.eagle_head": "how an EAGLE head's embedding, LM head and attention input are counted",
    "vllm.spec.dflash_head": "how a DFlash drafter's shared embedding and LM head and its fused context K/V weight are counted",
    "vllm.spec.acceptance": "the acceptance rate the speed estimate assumes, and where it was measured",
    # vLLM: release and device
    "vllm.scheduler.unchunked_batch": "without chunked prefill, max_num_batched_tokens below max_model_len is refused",
    "vllm.version.nearest": "the release asked for is not calibrated: the nearest older release's constants are used",
    "vllm.version.uncalibrated": "the chosen release's constants are not calibrated against logs",
    "vllm.version.unmodelled": "the release is older than the oldest vLLM release vramcalc models",
    "vllm.cudagraph.oom": "before 0.20 (or with VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0), the CUDA graphs do not fit "
                          "in what the budget leaves on the GPU",
    "vllm.cudagraph.not_estimated": "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0: the KV cache takes the CUDA-graph "
                                    "memory; the graphs are captured outside the budget",
    "vllm.verdict.headroom": "vramcalc's guard: the budget leaves too little of the GPU for what grows outside it",
    "vllm.kv_cache_dtype.unknown": "the release asked for has no such --kv-cache-dtype choice (it came in a later release)",
    "vllm.quant.mxfp8_emulated": "MXFP8 on an AMD GPU without native MX: vLLM's emulation kernels, bf16 weights at load by default",
    "vllm.attention.fp8_kv_unsupported": "the attention backend vLLM picks cannot read an fp8 KV cache on this GPU",
    "vllm.gpu.usable_estimated": "the GPU's usable memory is an estimate, not a measured CUDA total",
    "vllm.platform.metal": "vLLM has no Metal backend (Apple GPUs)",
    "vllm.platform.rocm_arch": "vLLM's ROCm build does not support this gfx architecture",
    "vllm.platform.rocm_version": "vLLM on ROCm needs a given ROCm release for this gfx architecture",
    "vllm.platform.rocm_unified": "vLLM on an AMD APU with unified memory",
    "vllm.platform.cuda_capability": "the GPU's compute capability is below the minimum vLLM's CUDA build runs on",
    "vllm.platform.unsupported_device": "vLLM has no platform for the device (it refuses to start)",
    "vllm.dtype.float16_refused": "the model family refuses float16",
    "vllm.dtype.bf16_refused": "bfloat16 asked for on a GPU before SM 8.0",
    "vllm.dtype.bf16_fallback": "a bfloat16 checkpoint runs in another dtype before SM 8.0",
    "vllm.source.gguf_plugin": "a GGUF checkpoint needs vLLM's out-of-tree GGUF plugin",
    "vllm.attention.fallback": "the attention backend vLLM picks is not the first in its priority list",
    "vllm.sampler.assumed": "the sampler path depends on the install: vramcalc assumed one",
    # vLLM: parallel layout and quantization refusals
    "vllm.parallel.attention_heads": "TP does not divide the attention heads",
    "vllm.parallel.kv_heads": "TP and the KV heads do not divide one another",
    "vllm.parallel.vocab": "TP does not divide the padded vocab",
    "vllm.parallel.mlp_intermediate": "TP does not divide the MLP intermediate size",
    "vllm.parallel.moe_intermediate": "TP does not divide the MoE intermediate size",
    "vllm.parallel.ssm_heads": "TP does not divide the SSM / linear-attention heads",
    "vllm.parallel.pp_layers": "more PP stages than layers",
    "vllm.quant.capability": "the quantization method is refused on this GPU's compute capability",
    "vllm.rdna.prefill_dequant_budget": "the RDNA W4A16 kernel's dense prefill copies leave too little memory: vLLM "
                                        "refuses to start",
    "vllm.quant.degraded": "the quantization method runs weight-only (degraded) on this GPU",
    "vllm.quant.plugin": "the quantization method needs a plugin",
    "vllm.quant.marlin_shape": "a sharded weight breaks Marlin's shape limits",
    "vllm.quant.fp8_block_shape": "a sharded weight is not a multiple of the FP8 quantization block",
    "vllm.weights.mxfp4_layout": "the MXFP4 expert kernel layout on this GPU is not modelled",
    # vLLM: the memory budget and the verdict
    "vllm.startup.free_memory": "free memory at start-up is below gpu_memory_utilization x total (init_device)",
    "vllm.kv.no_memory": "no memory is left for the KV cache blocks",
    "vllm.kv.max_model_len": "one request of max_model_len does not fit in the KV cache",
    "vllm.mamba.seqs_exceed_blocks": "max_num_seqs exceeds the Mamba cache blocks (one per decode sequence)",
    "vllm.verdict.margin": "fits at the estimate but not within its uncertainty margin",
    "vllm.lora.unsupported": "vLLM's class for the architecture does not support LoRA",
    "vllm.lora.ep_fully_sharded": "vLLM's MoE LoRA refuses expert parallelism with --fully-sharded-loras",
    "vllm.lora.ep_all2all": "vLLM's MoE LoRA with expert parallelism takes only the allgather_reducescatter backend",
    "vllm.lora.rank": "--max-lora-rank is not one of the ranks vLLM accepts",
    "vllm.lora.max_cpu_loras": "--max-cpu-loras is below --max-loras",
    "vllm.lora.vocab": "the vocabulary is too large for LoRA on the lm_head",
    "vllm.lora.extra_vocab_removed": "--lora-extra-vocab-size was removed from this release",
    "vllm.lora.cuda_graphs": "LoRA's extra CUDA graphs (one set per LoRA specialisation) are not counted beyond the graph estimate",
    "vllm.mm.encoder_fp8": "--mm-encoder-attn-dtype fp8 on a GPU where vLLM's encoder attention cannot run it",
    "vllm.mm.encoder_fp8_backend": "--mm-encoder-attn-dtype fp8 starts only on one encoder attention backend",
    "vllm.mm.encoder_fp8_unchecked": "whether the vision tower builds vLLM's MMEncoderAttention (fp8) is not checked",
    "vllm.mm.embeds_cache": "precomputed embeddings: the run-time encoder cache outside the KV budget, its floor and what is left",
    "vllm.mm.embeds_oom": "precomputed embeddings: the encoder cache's floor exceeds what the KV cache leaves (run-time OOM)",
    "vllm.mm.embeds_refused": "precomputed embeddings on a class that asserts on them: nothing held, such requests fail",
    "vllm.weight_transfer.buffers": "--weight-transfer-config: a weight update's default receive buffers per GPU against what the KV cache leaves (the trainer's init info can change them)",
    "vllm.weight_transfer.oom": "--weight-transfer-config: a weight update's default receive buffers exceed what the KV cache leaves (run-time OOM)",
    "vllm.mm.embeds_unread": "precomputed embeddings with every modality at 0 on a class or release not read",
    "vllm.mm.video_pruning_rate": "--video-pruning-rate is outside [0, 1), which vLLM refuses",
    "vllm.lora.tower_ignored": "--enable-tower-connector-lora has no effect here (no vision tower, or --language-model-only)",
    "vllm.lora.tower_not_counted": "the vision tower's LoRA slots of a tower whose layer shapes are not read are not counted",
    "vllm.lora.unchecked_layers": "the model's MoE / MLA / SSM adapter slots follow vLLM's layer code but no log checks them",
    "vllm.mm.chunked_mm_input": "--disable-chunked-mm-input with an item larger than max_num_batched_tokens (vLLM's words)",
    "vllm.mm.processor_kwargs": "--mm-processor-kwargs: a value vLLM's start-up raises on (its words)",
    "vllm.mm.processor_kwargs_no_dummy": "--mm-processor-kwargs: keys that do not change the profiled dummy item",
    "vllm.mm.processor_kwargs_not_sized": "--mm-processor-kwargs: keys that change the dummy in a way not sized",
    "vllm.minimax_m3.mega_moe": "--moe-backend deep_gemm_mega_moe on MiniMax-M3: vLLM's refusal without NVFP4 "
                                "routed experts or expert parallelism",
    "vllm.minimax_m3.monokernel": "--monokernel on MiniMax-M3 (ROCm): vLLM's refusal of the deployment "
                                  "(DecodeConfig.refusal_reasons, its words)",
    "vllm.minimax_m3.monokernel_model": "--monokernel on MiniMax-M3 (ROCm): vLLM's refusal of the loaded model or GPU "
                                        "(guards.py model_refusals, its words)",
    "vllm.minimax_m3.monokernel_runner": "--monokernel on MiniMax-M3 with MXFP4 experts on gfx950: its buffers counted; "
                                         "whether vLLM takes the loaded MoE kernel is not told",
    "vllm.minimax_m3.monokernel_figures": "--monokernel refused beside --attention-config indexer_kv_dtype (not "
                                          "modelled): the figures are those without the key",
    "vllm.minimax_m3.indexer_scores": "MiniMax-M3's indexer score tensor, allocated at run time outside the profile "
                                      "run: not counted",
    "vllm.mm.encoder_profile": "the multimodal encoder's profiling peak: estimated for the towers vramcalc/vllm/mm_profile.py sizes, not applied; the KV figure is an upper bound",
    "vllm.cpu_offload.speed": "weights offloaded with --cpu-offload-gb cross PCIe at every forward step",
    "vllm.cpu_offload.not_needed": "--cpu-offload-gb is set although the weights fit without it",
    "vllm.cpu_offload.no_uva": "VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1: each layer's offloaded weights are copied to "
                               "the GPU for its forward, counted at the activation peak",
    "vllm.conf_compute.buffers": "VLLM_CONFIDENTIAL_COMPUTE=1: the model runner's UVA buffers get device copies, "
                                 "counted before the KV cache; its smaller pools and staging copies are not sized",
    "vllm.fp8_moe_requant.sized": "VLLM_FP8_MOE_REQUANT=mxfp4: the routed experts counted at their MXFP4 layout (ROCm)",
    "vllm.fp8_moe_requant.not_sized": "VLLM_FP8_MOE_REQUANT=mxfp4 with a backend vramcalc cannot tell: FP8 bytes kept (upper bound)",
    "vllm.fp8_moe_requant.ignored": "VLLM_FP8_MOE_REQUANT=mxfp4 not read here (CUDA, an older release, no block-FP8 experts)",
    "vllm.fp8_moe_requant.refused": "VLLM_FP8_MOE_REQUANT=mxfp4: create_weights refuses expert dims the MXFP4 backend would pad",
    "vllm.fp8_moe_requant.load_oom": "VLLM_FP8_MOE_REQUANT=mxfp4: the MXFP4 model plus one layer's FP8 experts exceed free memory",
    "vllm.reload_mode.refused": "VLLM_RELOAD_MODE=direct refused with a setting it does not support (vLLM's own words)",
    "vllm.reload_mode.not_sized": "VLLM_RELOAD_MODE=direct on a quantized checkpoint: post-load storage kept, not sized",
    "vllm.reload_mode.ignored": "VLLM_RELOAD_MODE not read by this release",
    "vllm.mxfp4_emulation.dequant": "VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1: MXFP4 linear weights on the emulation kernel held at bf16",
    "vllm.mxfp4_emulation.not_sized": "VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1 where the kernel depends on aiter being installed",
    "vllm.mxfp4_emulation.ignored": "VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1 where no MXFP4 linear layer reaches the emulation kernel",
    "vllm.conf_compute.ignored": "VLLM_CONFIDENTIAL_COMPUTE=1 has no effect on this release or platform",
    "vllm.offload.refused": "vLLM refuses the prefetch offloader's settings (OffloadConfig.validate_offload_config)",
    "vllm.config.not_read": "--config=FILE: vLLM reads a config file only for --config FILE (two words)",
    "vllm.pcp.dcp_size": "with --prefill-context-parallel-size, vLLM takes DCP only as 1, PCP or TP x PCP",
    "vllm.pcp.backend": "no attention backend of vLLM supports prefill context parallelism for a model without MLA",
    "vllm.offload.ignored": "both offloaders' flags are set: vLLM uses one and ignores the other's",
    "vllm.kv_bytes.oom": "--kv-cache-memory-bytes asks for more than the GPU has left after the other terms",
    "vllm.extensible_kv.unsupported": "--enable-extensible-kv-cache where vLLM cannot use it (a platform other than "
                                      "CUDA or ROCm, or a fixed KV size): vLLM's refusal",
    "vllm.extensible_kv.connector": "a KV connector with the extensible KV cache's default: vLLM turns it off for "
                                    "some connectors; vramcalc sizes the cache as without it",
    "vllm.cudagraph.sizes_inconsistent": "--max-cudagraph-capture-size differs from the largest of the given "
                                         "--cudagraph-capture-sizes that vLLM keeps",
    "vllm.kv_offload.host_memory": "--kv-offloading-size takes pinned host memory, not GPU memory",
    "vllm.kv_blocks.oom": "--num-gpu-blocks-override asks for more KV blocks than the GPU has left after the other terms",
    "vllm.mm.encoder_tp_data": "--mm-encoder-tp-mode data keeps the whole vision tower on every TP rank",
    "vllm.mm_ipc.no_kv": "--mm-ipc-gpu-memory-gb reserves all the KV cache memory vLLM found",
    "vllm.mm_ipc.text_model": "--mm-ipc-gpu-memory-gb on a text model reserves nothing",
    "vllm.aux_output.refused": "--enable-return-routed-experts where vLLM refuses it (not MoE, no prefix caching, PP, DCP)",
    "vllm.aux_output.oom": "the routed-experts device buffer does not fit in what the budget leaves of the GPU",
    "vllm.aux_output.buffers": "the routed-experts output's device buffer and host store, with their sizes",
    "vllm.mm.encoder_attn_backend": "--mm-encoder-attn-backend naming a backend the platform's vision attention does not offer",
    "vllm.mm.encoder_attn_backend_unchecked": "--mm-encoder-attn-backend for a tower whose attention layer is not checked",
    "vllm.attention.selected_invalid": "--attention-backend naming a backend that does not run this model on this GPU",
    "vllm.kv_layout.refused": "VLLM_KV_CACHE_LAYOUT naming a layout the attention backends vLLM picks do not all accept",
    "vllm.kv_layout.resolved": "the KV cache layout VLLM_KV_CACHE_LAYOUT resolves to, and the backends that accept it",
    "vllm.kv_layout.not_modelled": "VLLM_KV_CACHE_LAYOUT on a GPU whose attention backend selection is not modelled",
    "vllm.ubatch.refused": "--enable-dbo / --ubatch-size with an all-to-all backend that does not micro-batch",
    "vllm.ubatch.unsized": "micro-batching's CUDA graphs and buffers, which vramcalc does not size",
    "vllm.all2all.batched_tokens": "deepep_low_latency / nixl_ep under DP + EP make max_num_batched_tokens default to 256",
    "vllm.all2all.deepep_buffer": "DeepEP's all-to-all buffer per GPU (VLLM_DEEPEP_BUFFER_SIZE_MB), inside the budget",
    "vllm.all2all.unsized": "an all-to-all backend's communication buffers, which vramcalc does not size",
    "vllm.load_format.unsupported": "--load-format that the release does not register (vLLM refuses it at load)",
    "vllm.load_format.unsized": "--load-format whose load-time buffers or own loading path vramcalc does not size",
    "vllm.kv_transfer.refused": "--kv-transfer-config that vLLM refuses (no kv_role, an unknown connector)",
    "vllm.kv_transfer.hma_off": "a KV connector without hybrid-KV-manager support: sliding-window layers sized at full length",
    "vllm.kv_transfer.unsized": "a KV connector whose own buffers vramcalc does not size",
    "vllm.kv_transfer.host_copy": "NIXL with kv_buffer_device cpu: a host copy of the KV cache",
    "vllm.eplb.not_enabled": "num_redundant_experts in --eplb-config without --enable-eplb",
    "vllm.eplb.needs_ep": "--enable-eplb without --enable-expert-parallel",
    "vllm.eplb.needs_parallel": "--enable-eplb on one rank",
    "vllm.eplb.uneven": "--enable-eplb: the physical experts do not divide by the EP ranks",
    "vllm.dcp.tp_divisible": "--decode-context-parallel-size does not divide --tensor-parallel-size",
    "vllm.dcp.kv_heads": "--decode-context-parallel-size on GQA/MQA needs TP above the model's KV heads",
    "vllm.dcp.max_size": "--decode-context-parallel-size above TP / KV heads",
    "vllm.dcp.q_per_kv": "--decode-context-parallel-size does not divide the query heads per KV head",
    "vllm.dcp.sliding_window": "--decode-context-parallel-size on a model with sliding-window layers",
    "vllm.kv_skip.unify": "--kv-cache-dtype-skip-layers keeps a full-attention layer at the model dtype beside "
                          "sliding-window layers: vLLM fails to unify the page sizes",
    "vllm.mamba_block_size.no_prefix_caching": "--mamba-block-size without prefix caching",
    "vllm.replayssm.refused": "--use-replayssm / --mamba-ssu-algorithm in a setting vLLM refuses (architecture, backend, prefix caching, ring length)",
    "vllm.sparse_indexer_topk.not_modelled": "--sparse-indexer-topk-backend on a model with the DSA indexer: its "
                                             "decode-time transients are not sized",
    "vllm.linear_backend.not_modelled": "--linear-backend on a quantized checkpoint: the kernels it prefers are not sized",
    "vllm.kda_prefill.refused": "--kda-prefill-backend names a kernel of another platform (flashkda off CUDA, fused off ROCm), or one Kimi-Linear's KDA layers do not run (only Triton)",
    "vllm.mamba.kda_state_dtype": "--mamba-ssm-cache-dtype float16 or bfloat16 on Kimi-Linear, which vLLM refuses (its KDA state stays float32)",
    "vllm.gdn_prefill.refused": "--gdn-prefill-backend names a kernel of another platform (ROCm's AITER FlyDSL, XPU's SYCL)",
    "vllm.model_impl.transformers_activations": "--model-impl transformers: weights and buffers modelled, the "
                                                "activation peak and speed taken from vLLM's own class (uncertain)",
    "vllm.model_impl.transformers_default": "an architecture vLLM builds with its Transformers backend by default: "
                                            "weights and buffers modelled, the activation peak uncertain",
    "vllm.model_impl.terratorch": "--model-impl terratorch: the TerraTorch backend is not modelled",
    "vllm.pooling.unchecked": "a pooling runner: what vramcalc sizes from vLLM's code, and what it takes from the "
                              "generate runner",
    "vllm.mla_disable.sparse_indexer": "VLLM_MLA_DISABLE=1 on a model with the sparse-attention indexer "
                                       "(DeepSeek-V3.2): vLLM cannot build its attention",
    "vllm.sparse_indexer.buffers": "the DSA sparse indexer's workspace, index buffer and profile-run dummy logits "
                                   "tensor, counted in the activation (an upper bound: the workspace is shared)",
    "vllm.moe.fp4_blockscale": "the CUTLASS FP4 MoE kernels' block-scale tensor is counted in the forward peak",
    "vllm.moe.fp4_blockscale_unsized": "VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE where the CUTLASS FP4 MoE kernels are not "
                                       "known to run: nothing added",
    "vllm.moe.cutlass_fp4_device": "--moe-backend cutlass with NVFP4 experts on a GPU outside SM 10.x / 11.x / 12.x "
                                   "(vLLM refuses)",
    "vllm.moe.fp4_max_tokens": "the profile run's tokens pass VLLM_MAX_TOKENS_PER_EXPERT_FP4_MOE (vLLM's assertion)",
    "vllm.sparse_indexer.absent": "VLLM_SPARSE_INDEXER_MAX_LOGITS_MB or sparse_mla_prefill_workspace_factor on a "
                                  "model without the DSA sparse indexer: no indexer buffer to size",
    "vllm.sparse_indexer.rocm": "ROCm's sparse indexer reserves a decode-logits workspace vramcalc does not size",
    "vllm.max_model_len.exceeds_model": "--max-model-len above the model's derived length without "
                                        "VLLM_ALLOW_LONG_MAX_MODEL_LEN",
    "vllm.max_model_len.long_allowed": "--max-model-len above the model's length, allowed by VLLM_ALLOW_LONG_MAX_MODEL_LEN",
    "vllm.prefix_caching.ttft": "prefix caching leaves memory alone but shortens TTFT for repeated prompt prefixes",
    # llama.cpp
    "llamacpp.kv.quant_v_needs_fa": "a quantized V cache needs flash attention",
    "llamacpp.kv.mla_kv_types": "an MLA model refuses different K and V cache types",
    "llamacpp.kv.no_swa": "llama.cpp's graph for this architecture keeps no sliding-window cache",
    "llamacpp.split.unsupported": "the backend's device does not support split buffers (--split-mode row)",
    "llamacpp.no_backend": "llama.cpp has no backend for the device: -ngl is ignored and every layer runs on the CPU",
    "llamacpp.split.tensor_experimental": "--split-mode tensor is experimental; its memory is estimated",
    "llamacpp.split.tensor_arch": "--split-mode tensor does not support this architecture",
    "llamacpp.split.tensor_needs_fa": "--split-mode tensor needs flash attention",
    "llamacpp.split.tensor_no_fit": "--fit does not run with --split-mode tensor",
    "llamacpp.host.ram_unknown": "host RAM not given: the host column is not checked",
    "llamacpp.cvec.tensor_split": "--control-vector with --split-mode tensor: every GPU is sized with all its tensors",
    "llamacpp.server.host_growth": "llama-server's context checkpoints and prompt cache can take more host RAM as "
                                   "conversations run than the machine has left after start-up",
    "llamacpp.host.ram_unchecked": "host RAM not given, and the host column needs more than a machine is assumed "
                                   "to have (64 GiB): not a fit until --ram says so",
    "llamacpp.compute.estimated": "compute buffers are estimated; llama.cpp's --fit margin is left free",
    "llamacpp.fit.target_below_margin": "a -fitt below the 1024 MiB vramcalc leaves free per GPU",
    "llamacpp.compute.pipeline_copies": "a layer split keeps several copies of the compute buffers",
    "llamacpp.rpc.nodes": "other machines through llama.cpp's RPC backend",
    "llamacpp.lora.refused": "llama.cpp refuses the LoRA adapter (its kind, architecture or tensors)",
    "llamacpp.lora.compute": "the LoRA matmuls' share of the compute buffer",
    "llamacpp.draft.vocab": "the draft model's vocabulary is not compatible with the target's",
    "llamacpp.kv_override.applied": "--override-kv changes metadata llama.cpp sizes buffers from: the figures follow it",
    "llamacpp.kv_override.unread": "an --override-kv item llama.cpp does not apply (another architecture's key, or a "
                                   "per-layer array in the file)",
    "llamacpp.kv_override.bad_type": "an --override-kv item whose type the key's reader does not take: llama.cpp "
                                     "warns and keeps the file's value",
    "llamacpp.draft.predicted": "the draft model's file is not here: predicted from its name",
    "llamacpp.draft.sidecar": "-hfd without -md: a draft repo's mtp- / eagle3- / dflash- / dspark- sidecar would be "
                              "loaded in place of its model file",
    "llamacpp.draft.unused": "-md without --spec-type draft-simple (since PR #23988): the draft is loaded and drafts "
                             "nothing; counted, with no speed-up",
    "llamacpp.spec.host_table_grows": "--spec-type ngram-map-k / -k4v / ngram-cache: host tables that grow with the "
                                      "text are not counted",
    "llamacpp.spec.no_draft": "--spec-type draft-simple, draft-eagle3, draft-dflash or draft-dspark without -md: no "
                              "draft context, no speculation; its output rows are still reserved",
    "llamacpp.spec.eagle3": "--spec-type draft-eagle3: llama.cpp refuses the EAGLE-3 draft or aborts with it",
    "llamacpp.spec.not_eagle3": "--spec-type draft-eagle3 with a -md that is not an EAGLE-3 head: no speculation",
    "llamacpp.spec.no_mtp": "--spec-type draft-mtp on a model without MTP (nextn) layers: llama.cpp makes no MTP "
                            "context and llama-server stops",
    "llamacpp.spec.not_dflash": "--spec-type draft-dflash / draft-dspark with a -md llama.cpp cannot draft with: "
                                "not a DFlash drafter, or one without target_layers",
    "llamacpp.spec.rs_ubatch": "a recurrent rollback (n_rs_seq = --spec-draft-n-max with draft-mtp / draft-dflash on "
                               "qwen35, qwen35moe ...) with -ub no larger than n_rs_seq + 1: llama.cpp aborts at its "
                               "first decode (llama-batch.cpp split_equal GGML_ASSERT)",
    "llamacpp.spec.dflash_clamp": "--spec-draft-n-max above the DFlash drafter's trained block size: llama.cpp "
                                  "clamps the drafted tokens",
    "llamacpp.router.fit": "router mode: each child is checked alone; its --fit sizes it to the memory then free",
    "llamacpp.router.together": "router mode: the --models-max largest models do not fit together",
    "llamacpp.mmproj.url": "-mmu: the projector's download is not here: not counted",
    "llamacpp.docker.offline": "-dr: the Docker Hub model's download is not here: read by its name and tag",
    "llamacpp.mmproj.auto": "-hf downloads the repo's projector too (--mmproj-auto): not counted without --mmproj",
    "llamacpp.hf.default_file": "-hf without :quant: the file llama.cpp picks is assumed",
    "llamacpp.speed.draft": "the speed estimate with a draft model at a stated acceptance rate",
    "llamacpp.speed.no_kv_offload": "-nkvo: attention reads the KV cache from host memory every token",
    # weights + KV check
    "check.gguf.unchecked_layout": "the GGUF tensor layout of this model type is not checked against real files",
    "quant.stand_in_bracket": "a conversion stands in for third-party checkpoints with differing ignore lists: "
                              "the most conservative published recipe counted, the bracket named",
    "check.weights.unmodelled_format": "the checkpoint's format is not modelled: weights counted at the dtype",
    "check.spec.approximate": "the architecture was read approximately",
    "check.context.exceeds_trained": "the context exceeds the model's trained maximum",
    "check.verdict.tight": "little memory is left, and engine workspace is not counted",
    "gpu.note": "a note on the GPU entry",
    "gpu.unverified": "the GPU entry's figures are not yet cross-checked against a second public page",
    "gpu.ambiguous_name": "the GPU name names several entries: the one with the least memory was assumed",
    "gpu.memory_assumed": "the GPU name gives no memory size and the product is sold with several: the least was assumed",
    "gpu.unknown": "the GPU name names no entry",
    "gpu.not_planned_device": "the device is known but has no entry: not a device the modelled engines run on, or a name "
                              "that gives neither memory nor bandwidth",
    # systems and the CLI
    "system.note": "a note on the system as parsed (--gpu)",
    "system.mixed_gpus": "mixed GPUs: the engine is sized for the smallest",
    # a pasted command (vramcalc check -- <command>)
    "command.engine_refuses": "the engine refuses the command as written; the corrected command is checked",
    "command.hf_config_path": "--hf-config-path: the model is sized from that config, as vLLM builds it",
    "command.upper_bound": "a flag that lowers memory: vramcalc's figure without it is an upper bound",
    "command.speed_not_estimated": "a flag with no effect on memory that changes speed: the speed estimate ignores it",
    "command.not_modelled": "a flag that changes memory in a way vramcalc does not model: the figures ignore it",
    "command.not_modelled_verdict": "the command starts without a flag vramcalc does not model; with it, no start is promised",
    "command.image_version": "the docker image's tag is not a modelled vLLM release: the default release is used",
    "command.repo_offline": "a quantized release that could not be read: checked as its base model with that quant",
    "command.catalog_name": "a model that could not be read: its name is read as a catalog model of the same architecture",
    "command.gguf_mix": "a publisher's own GGUF mix of tensor types: sized as the larger standard type around it",
    "command.idle_gpus": "the command's parallel sizes use fewer GPUs than are visible (vLLM's TP and PP default to 1)",
    "command.no_gpu": "no --gpu: the command is checked on reference GPUs, smallest first, and answered for the first it starts on",
    "command.gguf_predicted": "no GGUF file here: its size is predicted for the file type its name gives",
    # the planner
    "plan.startup_utilization": "the planner lowered --gpu-memory-utilization to pass vLLM's free-memory gate",
    "plan.extensible_off": "the layout starts only with vLLM 0.34's extensible KV cache off "
                           "(--disable-extensible-kv-cache)",
    "plan.high_utilization": "the layout fits only with a higher --gpu-memory-utilization",
    "plan.max_num_seqs": "the planner lowered --max-num-seqs to the Mamba cache blocks",
    "plan.context.exceeds_model": "the context asked for exceeds the model's maximum",
    "plan.reject.below_4_bits": "quants below 4 bits fit, but a 4-bit or better one does too: not offered",
    "plan.reject.metal": "vLLM does not run on Apple GPUs",
    "plan.reject.format": "the quant format is not modelled for this model",
    "plan.reject.weights": "the weights alone exceed the GPUs of the layout",
    "plan.reject.concurrency": "the KV cache holds fewer sequences than asked for",
    "plan.reject.pinned": "layouts that fit but differ from what the user pinned (--quant, --tp, --pp, --replicas, --kv-cache-dtype)",
    "plan.reject.memory": "llama.cpp's buffers exceed a device's memory",
    "plan.note.gguf_file": "llama.cpp runs the GGUF file given, as it is",
    "plan.note.also_fits": "other quants that also fit in the layout",
    "plan.note.hub_checkpoint": "the quant needs a converted checkpoint from the Hub",
    "plan.note.pcie_tp": "TP over PCIe: all-reduces cost decode speed",
    "plan.note.host_offload": "part of the weights in host RAM: decode at host-RAM speed",
    "plan.note.q8_kv": "a q8_0 KV cache needs flash attention",
    "plan.note.tensor_split": "llama.cpp's --split-mode tensor is experimental",
    "plan.note.rpc": "llama.cpp's RPC backend is a proof of concept",
    "plan.note.slots": "llama.cpp slots share one unified KV cache",
}


class Message(BaseModel):
    """One refusal ("error"), warning, or note, with a registered code."""

    model_config = ConfigDict(frozen=True)

    code: str
    level: Level
    text: str  # the words printed; an engine's refusal in its own words
    fix: str | None = None  # what would work instead
    source: str | None = None  # where the engine raises it

    @field_validator("code")
    @classmethod
    def _registered(cls, code: str) -> str:
        if code not in CODES:
            raise ValueError(f"message code {code!r} is not registered in vramcalc.messages.CODES")
        return code

    def __str__(self) -> str:
        return self.text


def error(code: str, text: str, fix: str | None = None, source: str | None = None) -> Message:
    return Message(code=code, level="error", text=text, fix=fix, source=source)


def warning(code: str, text: str, fix: str | None = None, source: str | None = None) -> Message:
    return Message(code=code, level="warning", text=text, fix=fix, source=source)


def note(code: str, text: str, fix: str | None = None, source: str | None = None) -> Message:
    return Message(code=code, level="note", text=text, fix=fix, source=source)


def codes(messages: list[Message]) -> set[str]:
    """The codes among `messages`, for branching: `"vllm.kv.no_memory" in codes(r.errors)`."""
    return {m.code for m in messages}
