"""--spec-type draft-dflash / draft-dspark with -md DRAFT (llama.cpp 4df29be; DFLASH_SOURCE): a DFlash / DSpark
drafter (src/models/dflash.cpp, the Qwen3-style backbone) and its context, and what the target keeps for it.

llama-server loads -md's model with the draft's -ngld / -devd / -otd (common_base_params_to_speculative) and makes its
context with the target's -c, slots, batch, ubatch and -fa, the cache types of -ctkd / -ctvd, ctx_other = the target
(its token embedding and output weight are used: the drafter has no output tensor). common_speculative_impl_draft_dflash
then turns on the extraction of the input of each of the drafter's target_layers on the target
(llama_set_embeddings_layer_inp: the target re-reserves its graph with those layer inputs kept as outputs, and its output
buffer holds n_embd x n_batch floats per layer), sets the draft's masked nextn rows and non-causal attention and attaches
a backend top-k sampler to each slot (backend_sampling, on by default): the draft re-reserves its graph with the
sampling nodes (graphs.py build_dflash) and its output buffer, at the encode of a prompt chunk, holds per row n_vocab
logits, n_embd nextn floats, 2 n_vocab sampling floats and 1 + n_vocab sampled tokens. Every figure is checked against
a real llama.cpp (tests/data/llamacpp_dflash_runs.json, tools/record_llamacpp_dflash.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from ..errors import InputError, NotModelledError
from ..gpus import GPU
from ..messages import Message, error, warning
from ..spec import ModelSpec
from .extras import LlamaExtra

DFLASH_TYPES = ("draft-dflash", "draft-dspark")
DFLASH_SOURCE = ("common/speculative.cpp common_speculative_impl_draft_dflash, common_base_params_to_speculative, "
                 "common_speculative_init_result; src/models/dflash.cpp; src/llama-context.cpp output_reserve (4df29be)")
NO_LAYERS = ("llama_model_load: error loading model: DFlash model requires 'target_layers' in GGUF metadata; "
             "common_speculative_init_result: failed to load draft model [src/models/dflash.cpp load_arch_hparams]")
NOT_DFLASH = ("GGML_ASSERT(target_layer_ids_n > 0 && \"DFlash model has no target_layer_ids\") failed "
              "[common/speculative.cpp common_speculative_impl_draft_dflash]: llama-server aborts")


@dataclass(frozen=True)
class DFlashFile:
    arch: str
    target_layers: tuple[int, ...]
    block_size: int
    markov_rank: int
    conf_bias: bool
    hc_mult: int
    swa: int


@lru_cache(maxsize=16)
def _read(path: str, stamp: float) -> DFlashFile:
    from ..sources.gguf_header import read_local
    h = read_local(path)
    md = h.metadata
    arch = str(md.get("general.architecture"))
    layers = md.get(f"{arch}.target_layers")
    names = {t.name: t for t in h.tensors}
    w1 = names.get("markov_w1.weight")
    return DFlashFile(arch=arch, target_layers=tuple(int(x) for x in layers) if isinstance(layers, list) else (),
                      block_size=int(md.get(f"{arch}.block_size", 16)),  # common_speculative_impl_draft_dflash: 16
                      markov_rank=int(w1.ne[0]) if w1 is not None else 0, conf_bias="conf_proj.bias" in names,
                      hc_mult=int(md.get(f"{arch}.hyper_connection_count", 0) or 0),
                      swa=int(md.get(f"{arch}.attention.sliding_window", 0) or 0))


def read_dflash(ref: str) -> DFlashFile | None:
    """The drafter's header, where -md is a file here (else None)."""
    path = os.path.expanduser(ref)
    if not os.path.isfile(path):
        return None
    return _read(path, os.path.getmtime(path))


def target_layer_inputs(opts) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """The target layers whose inputs the DFlash drafter conditions on (dflash.target_layers), when a DFlash type
    drafts with -md's DFlash file; () otherwise."""
    if not opts.model_draft or not any(t in DFLASH_TYPES for t in opts.spec_types):
        return ()
    f = read_dflash(opts.model_draft)
    if f is None or f.arch != "dflash":
        return ()
    return tuple(sorted(set(f.target_layers)))


def auto_type(ref: str | None) -> tuple[str, ...]:
    """common/arg.cpp with no --spec-type and a draft path: common_speculative_types_from_gguf: a dflash file is
    draft-dspark when it carries markov_w1.weight, else draft-dflash."""
    f = read_dflash(ref) if ref else None
    if f is None or f.arch != "dflash":
        return ()
    return ("draft-dspark",) if f.markov_rank else ("draft-dflash",)


def draft_rows(opts) -> int:  # type: ignore[no-untyped-def]
    """Rows of the draft's output buffer at its largest: an encode of a prompt chunk of up to n_ubatch tokens
    (llama_context::encode -> output_reserve(n_tokens)), the drafting decode's blocks (n_parallel x (n_max + 1)), and
    at least one per slot."""
    return max(min(opts.n_ubatch, opts.n_batch), opts.n_parallel * (opts.draft_max + 1), opts.n_parallel)


def draft_output_bytes(n_vocab: int, n_embd: int, rows: int, sampling: bool = True) -> int:
    """llama_context::output_reserve with embeddings_nextn (masked) and the backend samplers: per row n_vocab logits and
    n_embd nextn floats, and with sampling 2 n_vocab floats (logits, probs) and 1 + n_vocab tokens (int32)."""
    per = n_vocab + n_embd + (2 * n_vocab + 1 + n_vocab if sampling else 0)
    return per * rows * 4


def layer_inp_refusal(arch: str, kind: str, code: str) -> Message | None:
    """A target whose graph keeps no layer inputs (data/llamacpp_backends.json layer_inp_gguf_archs): once the drafter
    (draft-dflash / draft-dspark, draft-eagle3) turns on llama_set_embeddings_layer_inp, llama.cpp aborts reserving the
    target's graph; llama.cpp's words, or None where the graph keeps them."""
    from .engine import backend_rules
    if arch in backend_rules().layer_inp_gguf_archs:
        return None
    return error(code, f"--spec-type {kind} on a {arch} target: its graph keeps no layer inputs, so llama.cpp aborts: "
                 "GGML_ASSERT(t_layer_inp[il] != nullptr && \"layer input tensor is null\") [src/llama-graph.cpp "
                 "llm_graph_result::set_outputs]", fix=f"a target architecture {kind} drafts for "
                 "(data/llamacpp_backends.json layer_inp_gguf_archs)",
                 source="src/llama-graph.cpp llm_graph_result::set_outputs")


def sampling_pad_bytes(n_vocab: int, n_tokens: int) -> int:
    """llm_graph_context::build_sampling's padded copy of the logits (ggml_pad: one more row, F32), what the backend
    samplers add where the phase formula sizes a draft's compute buffer."""
    return 4 * n_vocab * (n_tokens + 1)


def dflash_extra(spec: ModelSpec, gl: list[GPU], opts, errors: list[Message],  # type: ignore[no-untyped-def]
                 warnings: list[Message]) -> LlamaExtra | None:
    """The drafter's weights, KV cache, compute and output buffers (DFLASH_SOURCE)."""
    from .extras import read_draft
    from .graphs import DFlashGraph, dflash_peak
    from .compute import CPU_ALIGNMENT, GPU_ALIGNMENT
    kind = next(t for t in opts.spec_types if t in DFLASH_TYPES)
    f = read_dflash(opts.model_draft)
    if f is None:
        raise NotModelledError(f"--spec-type {kind} with -md {opts.model_draft}: the drafter's file is not here; its "
                               "target layers, block size and heads are in its header: give the .gguf")
    if f.arch != "dflash":
        errors.append(error("llamacpp.spec.not_dflash", f"-md {opts.model_draft} is a {f.arch} model, not a DFlash "
                            f"drafter: {NOT_DFLASH}", fix="a DFlash / DSpark drafter GGUF (general.architecture "
                            "dflash), or another --spec-type", source="common/speculative.cpp"))
        return None
    if not f.target_layers:
        errors.append(error("llamacpp.spec.not_dflash", NO_LAYERS, fix="a DFlash GGUF converted with its "
                            "dflash_config.target_layer_ids (conversion/qwen.py DFlashModel)",
                            source="src/models/dflash.cpp load_arch_hparams"))
        return None
    if f.hc_mult:
        raise NotModelledError(f"-md {opts.model_draft}: a DeepSeek-V4 DSpark drafter (hyper-connections, MLA, MoE "
                               "stages: dflash.cpp graph_dsv4 and its sliding-window KV ring) is not modelled; the "
                               "Qwen3-style DFlash / DSpark backbone is")
    if opts.split_mode == "tensor" and len(gl) > 1:
        raise NotModelledError(f"--spec-type {kind} with --split-mode tensor is not modelled; use --split-mode layer")
    from .engine import check_draft_model, gguf_arch
    if f.swa:
        raise NotModelledError(f"-md {opts.model_draft}: a DFlash drafter with sliding-window layers (dflash.cpp's "
                               "iSWA cache and attention input) is not modelled")
    refused = layer_inp_refusal(gguf_arch(spec), kind, "llamacpp.spec.not_dflash")
    if refused is not None:
        errors.append(refused)
        return None
    if max(f.target_layers) >= spec.num_layers:
        # llama_context::set_embeddings_layer_inp: GGML_ASSERT(lid <= n_layer()); the graph asserts the layer input
        errors.append(error("llamacpp.spec.not_dflash", f"the drafter's target_layers {list(f.target_layers)} name a "
                            f"layer the target ({spec.num_layers} layers) has no input for: GGML_ASSERT(t_layer_inp[il] "
                            "!= nullptr && \"layer input tensor is null\") [src/llama-graph.cpp]",
                            fix="the drafter made for this target", source="src/llama-graph.cpp set_outputs"))
        return None
    dm = read_draft(opts.model_draft)
    if dm.spec.hidden_size * len(f.target_layers) and dm.spec.hidden_size != spec.hidden_size:
        raise NotModelledError(f"a DFlash drafter of width {dm.spec.hidden_size} on a target of width "
                               f"{spec.hidden_size}: its fc input (target_layers x n_embd) does not match the target's "
                               "features; not modelled")
    n_dev = len(gl)
    dgl = gl
    if opts.device_draft is not None and [d.lower() for d in opts.device_draft] == ["none"]:
        dgl = []
    elif opts.device_draft is not None or opts.devices is not None:
        raise NotModelledError(f"--spec-type {kind} with --device / --device-draft lists is not modelled")
    # the drafter's context: n_outputs_max = n_batch (src/llama-context.cpp: a model with an encoder)
    _, dr = check_draft_model(dm, dgl, opts, opts.n_batch, errors)
    n_draft = f.block_size if kind == "draft-dspark" else f.block_size - 1
    if opts.draft_max > n_draft:
        warnings.append(warning("llamacpp.spec.dflash_clamp", (
            f"common_speculative_impl_draft_dflash: requested draft size (n_max={opts.draft_max}, n_min=0) exceeds the "
            f"trained block size {f.block_size} -- clamping to {n_draft} (the output rows are reserved for "
            f"--spec-draft-n-max {opts.draft_max} all the same)")))
    # the compute buffer once the backend samplers are attached (re-reserved), replayed where one backend runs it all
    sampling = opts.draft_backend_sampling  # common_speculative_impl_draft_dflash: llama_set_sampler per slot
    d = DFlashGraph(markov_rank=f.markov_rank, conf_bias=f.conf_bias, block_size=f.block_size,
                    samplers=opts.n_parallel if sampling else 0, per_seq=opts.draft_max + 1,
                    n_outputs_max=opts.n_batch)
    comp_start = sum(x.compute_buffer_bytes for x in dr.devices)
    one_backend = not dgl or (dr.gpu_layers == dm.spec.num_layers and len(dgl) == 1)
    n_kv = dr.n_ctx // (1 if opts.kv_unified or opts.n_parallel == 1 else opts.n_parallel)
    fa = opts.fa
    n_ub = min(opts.n_ubatch, opts.n_batch, dr.n_ctx)
    if one_backend:
        comp = dflash_peak(dm.spec, d, dr.n_ctx, min(opts.n_ubatch, opts.n_batch), opts.n_parallel, n_kv,
                           opts.kv_unified or opts.n_parallel == 1, bool(fa), opts.type_k_draft.upper(),
                           opts.type_v_draft.upper(), CPU_ALIGNMENT if not dgl else GPU_ALIGNMENT)
        exact = True
    else:  # the phase formula's buffer and the padded logits copy of build_sampling
        comp = comp_start + (sampling_pad_bytes(dm.spec.vocab_size, n_ub) if sampling else 0)
        exact = False
    rows = draft_rows(opts)
    out_start = sum(x.output_buffer_bytes for x in dr.devices)
    out = draft_output_bytes(dm.spec.vocab_size, dm.spec.hidden_size, rows, sampling)
    gpu_b = [0] * n_dev
    host_b = 0
    for i, x in enumerate(dr.devices):
        rest = x.total_bytes - x.compute_buffer_bytes - x.output_buffer_bytes
        if x.device == "host RAM":
            host_b += rest
        elif dgl:
            gpu_b[i] += rest
    comp_dev = [x for x in dr.devices if x.compute_buffer_bytes and x.device != "host RAM"]
    if dgl and comp_dev:
        gpu_b[dr.devices.index(comp_dev[0])] += comp - sum(x.compute_buffer_bytes for x in dr.devices
                                                           if x.device == "host RAM")
        host_b += sum(x.compute_buffer_bytes for x in dr.devices if x.device == "host RAM")
    else:
        host_b += comp
    host_b += out
    return LlamaExtra(kind="draft", ref=opts.model_draft, gpu_bytes=gpu_b, host_bytes=host_b,
                      # outside the replay: the draft's phase-formula margin (check_llamacpp on the drafter)
                      uncertainty_gpu_bytes=[0 if exact or not dgl else x.uncertainty_bytes
                                             for x in dr.devices if x.device != "host RAM"] or [0] * n_dev,
                      uncertainty_host_bytes=0 if exact else sum(x.uncertainty_bytes for x in dr.devices
                                                                 if x.device == "host RAM"),
                      detail={"model": sum(x.model_buffer_bytes + x.repack_buffer_bytes for x in dr.devices),
                              "kv": sum(x.kv_buffer_bytes for x in dr.devices), "compute_start": comp_start,
                              "compute": comp, "output_start": out_start, "output": out, "output_rows": rows,
                              "n_ctx": dr.n_ctx, "gpu_layers": dr.gpu_layers, "n_layer": dm.spec.num_layers,
                              "type": kind, "target_layers": ",".join(map(str, f.target_layers)), "block_size": f.block_size,
                              "n_draft": min(opts.draft_max, n_draft), "markov_rank": f.markov_rank,
                              "draft_max": opts.draft_max, "speculates": True, "backend_sampling": sampling},
                      how=f"--spec-type {kind}: the DFlash drafter ({dm.spec.num_layers} layers, {dr.gpu_layers} on the "
                          f"GPUs by -ngld; the target's token embedding and output weight) and its context: a KV cache "
                          f"of {dr.n_ctx} cells ({opts.type_k_draft.lower()}/{opts.type_v_draft.lower()}), the compute "
                          "buffer of its decoder graph" + (" with a backend top-k sampler per slot" if sampling else "")
                          + " ("
                          + ("exact replay" if exact else "estimated") + f"), an output buffer of {rows} rows (logits, "
                          "nextn" + (" and sampling" if sampling else "") + " rows); the target keeps the inputs of layers "
                          f"{list(f.target_layers)} (in its compute and output buffers)", source=DFLASH_SOURCE)


__all__ = ["DFLASH_TYPES", "InputError", "auto_type", "dflash_extra", "draft_output_bytes", "read_dflash",
           "sampling_pad_bytes", "target_layer_inputs"]
