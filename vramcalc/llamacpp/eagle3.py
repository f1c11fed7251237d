"""--spec-type draft-eagle3 -md DRAFT: an EAGLE-3 head drafting from the target's hidden states (llama.cpp 4df29be).

What llama-server holds for it (common/speculative.cpp common_speculative_init_result and
common_speculative_impl_draft_eagle3; src/models/eagle3.cpp; src/llama-context.cpp):

- the draft model (an `eagle3` GGUF: fc, one decoder block, output_norm, optional token_embd / output / d2t) and its
  context, made from common_base_params_to_speculative's copy of the target's parameters (-c, slots, batch, ubatch,
  -fa; -ctkd / -ctvd, -ngld, -devd, -otd): a KV cache of its one layer; cparams.n_outputs_max is n_batch, not the
  slots, because the model has an encoder (llama_context: llama_model_has_encoder), so its worst-case decoder graph
  has the logits of every reserved token; the impl sets a backend top-k sampler on every slot (unless
  --no-spec-draft-backend-sampling), which re-reserves that graph with llm_graph_context::build_sampling's padded
  logits; llama_encode then runs the encoder on chunks of n_ubatch target tokens, and its output_reserve(n_ubatch)
  holds n_ubatch rows of logits, pre-norm states (embeddings_nextn, masked) and, with the samplers, their logits,
  probabilities, sampled tokens and candidates;
- on the target context: llama_set_embeddings_layer_inp for each target layer id below its n_layer (n_embd floats
  per token of a batch each, in its output buffer, and the layer inputs kept as graph outputs, so its compute buffer
  is re-reserved), llama_set_embeddings_nextn (unmasked: n_embd floats per token of a batch) for an id equal to it.

Checked against real llama.cpp 4df29be runs on CPU (tests/data/llamacpp_eagle3_runs.json,
tools/record_llamacpp_eagle3.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from ..errors import NotModelledError
from ..messages import Message, error
from ..spec import ModelSpec
from .graphs import Eagle3Head

EAGLE3_SOURCE = ("common/speculative.cpp common_speculative_init_result, common_speculative_impl_draft_eagle3; "
                 "src/models/eagle3.cpp; src/llama-context.cpp llama_context, output_reserve (4df29be)")
# the target architectures recorded (tests/data/llamacpp_eagle3_runs.json), whose graph keeps the layer inputs
# (res->t_layer_inp, src/models/llama.cpp, qwen3.cpp, qwen3moe.cpp) and whose replay (graphs.py build_transformer) marks
# them as outputs; the other layer_inp_gguf_archs are not modelled, the rest refused (dflash.layer_inp_refusal)
TARGET_ARCHS = ("llama", "qwen3", "qwen3moe")
# common_speculative_impl_draft_eagle3: llama_sampler_init_top_k(10) per slot on the draft context
SAMPLER_TOP_K = 10
# the cache fills up to which the draft's decoder graph is replayed beside sched_reserve's (graphs.py eagle3_peak): a
# decode at a small n_kv can need more than the reservation (recorded: eagle3-own at n_kv 512, +0.5 MiB); past a few
# thousand cells the mask and scores only grow with n_kv, so the full cache's graph bounds them
REALLOC_SWEEP_CELLS = 8192


@dataclass(frozen=True)
class Eagle3File:
    """What an eagle3 GGUF's header says beyond its ModelSpec (src/models/eagle3.cpp load_arch_hparams / tensors)."""
    layers: tuple[int, ...] | None  # eagle3.target_layers (None: absent)
    target_hidden: int  # eagle3.target_hidden_size
    norm_before_fc: bool
    norm_before_residual: bool
    n_draft_vocab: int  # d2t's length (0: no d2t)
    own_tok_embd: bool
    own_output: bool


def is_eagle3(spec: ModelSpec) -> bool:
    return spec.architecture == "gguf:eagle3"


def read_eagle3(path: str) -> Eagle3File:
    st = os.stat(path)
    return _read(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _read(path: str, _mtime: int, _size: int) -> Eagle3File:
    from ..sources.gguf_header import read_local as read_gguf

    h = read_gguf(path)
    md = h.metadata
    names = {t.name: t for t in h.tensors}
    layers = md.get("eagle3.target_layers")
    d2t = names.get("d2t")
    return Eagle3File(layers=tuple(int(x) for x in layers) if isinstance(layers, (list, tuple)) else None,
                      target_hidden=int(md.get("eagle3.target_hidden_size") or 0),
                      norm_before_fc=bool(md.get("eagle3.norm_before_fc", False)),
                      norm_before_residual=bool(md.get("eagle3.norm_before_residual", False)),
                      n_draft_vocab=int(d2t.ne[0]) if d2t is not None else 0,
                      own_tok_embd="token_embd.weight" in names, own_output="output.weight" in names)


def check(target: ModelSpec, arch: str, dspec: ModelSpec, f: Eagle3File, where: str) -> list[Message]:
    """llama.cpp's refusals of the pair, in its words; what it does not refuse but vramcalc cannot size raises."""
    if f.layers is None:  # load_arch_hparams throws: the draft is not loaded and llama-server stops
        return [error("llamacpp.spec.eagle3", "llama_model_load: error loading model: error loading model "
                      "hyperparameters: EAGLE3 model requires 'extract_layers' in GGUF metadata; "
                      "common_speculative_init_result: failed to load draft model, "
                      f"'{where}'; llama-server: failed to load draft model [src/models/eagle3.cpp load_arch_hparams, "
                      "tools/server/server-context.cpp load_model]", fix="an EAGLE-3 GGUF with eagle3.target_layers",
                      source="src/models/eagle3.cpp load_arch_hparams")]
    if len(f.layers) != 3:
        return [error("llamacpp.spec.eagle3", "llama_model_load: error loading model: error loading model "
                      "hyperparameters: EAGLE3 requires exactly 3 entries in 'extract_layers'; "
                      f"common_speculative_init_result: failed to load draft model, '{where}' [src/models/eagle3.cpp "
                      "load_arch_hparams]", source="src/models/eagle3.cpp load_arch_hparams")]
    n_layer = target.num_layers
    far = [i for i in f.layers if i > n_layer]
    if far:  # common_speculative_impl_draft_eagle3: GGML_ABORT, llama-server dies at start-up
        return [error("llamacpp.spec.eagle3", f"EAGLE3: target layer id {far[0]} exceeds target n_layer {n_layer} "
                      "(GGML_ABORT in common_speculative_impl_draft_eagle3: llama-server aborts at start-up)",
                      fix="the EAGLE-3 head trained for this target model",
                      source="common/speculative.cpp common_speculative_impl_draft_eagle3")]
    from .dflash import layer_inp_refusal
    refused = layer_inp_refusal(arch, "draft-eagle3", "llamacpp.spec.eagle3") if layer_inputs(target, f) else None
    if refused is not None:  # llm_graph_result::set_outputs asserts, as for draft-dflash
        return [refused]
    if arch not in TARGET_ARCHS:
        raise NotModelledError(f"--spec-type draft-eagle3 on a {arch} target: modelled for {', '.join(TARGET_ARCHS)} "
                               "targets (its graph keeps the layer inputs, but the EAGLE-3 pair is not recorded on it)")
    if f.target_hidden != target.hidden_size:
        raise NotModelledError(f"an EAGLE-3 head for a target of n_embd {f.target_hidden} on a target of n_embd "
                               f"{target.hidden_size}: common_speculative_impl_draft_eagle3 copies the target's "
                               "rows into features of another width; llama.cpp does not refuse it and vramcalc "
                               "does not size it")
    if (not f.own_tok_embd or not f.own_output) and dspec.hidden_size != target.hidden_size:
        raise NotModelledError("an EAGLE-3 head wider than its target that borrows the target's token_embd or output "
                               "(cparams.ctx_other): the decoder graph's shapes do not agree; not modelled")
    return []


def head(dspec: ModelSpec, f: Eagle3File, backend_sampling: bool) -> Eagle3Head:
    return Eagle3Head(n_enc=3 * f.target_hidden, n_vocab=dspec.vocab_size,
                      n_draft_vocab=f.n_draft_vocab or dspec.vocab_size,
                      norm_before_fc=f.norm_before_fc, norm_before_residual=f.norm_before_residual,
                      sampler_top_k=SAMPLER_TOP_K if backend_sampling else 0)


def layer_inputs(target: ModelSpec, f: Eagle3File) -> tuple[int, ...]:
    """The target layers whose input llama_set_embeddings_layer_inp extracts (ids below n_layer)."""
    return tuple(sorted({i for i in f.layers or () if i < target.num_layers}))


def target_nextn_bytes(target: ModelSpec, f: Eagle3File, n_batch: int) -> int:
    """What the target's output buffer adds at its next output_reserve (src/llama-context.cpp) beyond the n_embd x
    n_batch floats per extracted layer input (engine.py, as for draft-dflash): n_embd_out x n_batch for an id equal to
    n_layer (llama_set_embeddings_nextn, unmasked)."""
    last = any(i == target.num_layers for i in f.layers or ())
    return 4 * n_batch * target.hidden_size * int(last)


def draft_output_rows(n_ubatch: int, n_parallel: int) -> int:
    """The draft context's output buffer at its largest: llama_encode's output_reserve(n_tokens) for a chunk of n_ubatch
    target tokens (at least n_seq_max rows); each row as dflash.draft_output_bytes lays it out (n_vocab logits, n_embd
    masked pre-norm floats, and with backend samplers their logits, probabilities and tokens)."""
    return max(n_ubatch, n_parallel)
