"""What llama-server holds beside the model and its context (llama.cpp 4df29be): LoRA adapters (--lora,
--lora-scaled), a draft model for speculative decoding (-md with --spec-draft-n-max, -ngld, -devd, -ctkd/-ctvd) and a
multimodal projector (--mmproj, --no-mmproj-offload). docs/llamacpp.md#extras.

- LoRA (src/llama-adapter.cpp llama_adapter_lora_init_impl): each lora_a / lora_b pair is allocated in the buffer type
  of the base tensor it adapts, so on the device of its layer; a base tensor in a CPU extra buffer (CPU_REPACK) sends
  it to the plain CPU buffer. One buffer per buffer type (ggml_backend_alloc_ctx_tensors_from_buft: each tensor padded
  to the buffer type's alignment). The header is checked as llama.cpp checks it, and refused in its words.
- Draft (common/speculative.cpp common_base_params_to_speculative, common_speculative_init_result): a second model
  and context with the target's context size (-c as given: 0 is the draft's own training context), slots, batch,
  ubatch, flash attention and split, its own -ngld (default -1: every layer), -devd, -otd and cache types, and one
  logits row per slot (n_outputs_max = n_parallel).
- mmproj (tools/mtmd/clip.cpp clip_ctx, clip_model_loader::load_tensors, warmup): every tensor in one buffer on the
  first GPU (CPU with --no-mmproj-offload), and the compute buffer of the graph for the warmup image
  (mmproj_compute_bytes).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import InputError
from ..ggml import tensor_bytes
from ..messages import Message, error
from ..sources.gguf_header import GGUFError, read_local

CPU = -1
LORA_SOURCE = "src/llama-adapter.cpp llama_adapter_lora_init_impl"
# the adapter's projections when it is given by rank (--lora-rank): every attention and dense FFN projection, as
# PEFT's target_modules="all-linear" gives them
LORA_TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
# MATRIX_ROW_PADDING (ggml-cuda/common.cuh): CUDA and HIP allocate one extra row's bytes for a quantized tensor whose
# row is not a multiple of 512 (ggml_backend_cuda_buffer_type_get_alloc_size)
MATRIX_ROW_PADDING = 512
QUANTIZED_FREE = ("F32", "F16", "BF16", "I8", "I16", "I32", "I64", "F64")


def padded(type_: str, ne: tuple[int, ...], alignment: int, row_padding: bool = False) -> int:
    """ggml_backend_alloc_ctx_tensors_from_buft: a tensor's allocation (with the CUDA row padding), padded to the
    buffer type's alignment."""
    size = tensor_bytes(type_, ne)
    if row_padding and type_.upper() not in QUANTIZED_FREE and ne[0] % MATRIX_ROW_PADDING:
        size += tensor_bytes(type_, (MATRIX_ROW_PADDING - ne[0] % MATRIX_ROW_PADDING,))
    return -(-size // alignment) * alignment


def _stamp(path: str) -> tuple[str, int, int]:
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        return str(p), -1, -1
    return str(p), st.st_mtime_ns, st.st_size


# ---------------------------------------------------------------- LoRA

class LoraPair(BaseModel):
    model_config = ConfigDict(frozen=True)

    base: str  # the model tensor it adapts
    a_ne: tuple[int, ...]
    a_type: str
    b_ne: tuple[int, ...]
    b_type: str


class LoraAdapter(BaseModel):
    model_config = ConfigDict(frozen=True)

    ref: str
    arch: str
    alpha: float
    scale: float = 1.0
    pairs: tuple[LoraPair, ...]
    problem: str | None = None  # llama.cpp's refusal of the file itself (general.type, adapter.type, a lone tensor)

    @property
    def rank(self) -> int:
        return max((p.b_ne[0] for p in self.pairs if not p.base.endswith("token_embd.weight")), default=0)

    @property
    def nbytes(self) -> int:
        return sum(tensor_bytes(p.a_type, p.a_ne) + tensor_bytes(p.b_type, p.b_ne) for p in self.pairs)


def split_scaled(item: str) -> tuple[str, float]:
    """--lora-scaled FNAME:SCALE (common/arg.cpp: exactly one ':' per item)."""
    parts = item.split(":")
    if len(parts) != 2:
        raise InputError("lora-scaled format: FNAME:SCALE")
    try:
        return parts[0], float(parts[1])
    except ValueError:
        raise InputError(f"lora-scaled format: FNAME:SCALE (scale {parts[1]!r} is not a number)") from None


def read_lora(path: str, scale: float = 1.0) -> LoraAdapter:
    """A LoRA GGUF's header as llama.cpp reads it; a file that is not there or not a GGUF is refused in its words."""
    return _read_lora(_stamp(path), scale)


@lru_cache(maxsize=64)
def _read_lora(stamp: tuple[str, int, int], scale: float) -> LoraAdapter:
    path = stamp[0]
    try:
        h = read_local(path)
    except (GGUFError, OSError, InputError) as e:
        raise InputError(f"llama_adapter_lora_init_impl: failed to apply lora adapter: failed to load lora adapter "
                         f"file from {path} ({str(e).split(': ')[-1]}) [{LORA_SOURCE}]") from None
    md = h.metadata
    problem = None
    if md.get("general.type") != "adapter":
        problem = f"expect general.type to be 'adapter', but got: {md.get('general.type', '')}"
    elif md.get("adapter.type") != "lora":
        problem = f"expect adapter.type to be 'lora', but got: {md.get('adapter.type', '')}"
    halves: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
    for t in h.tensors:
        if t.name.endswith(".lora_a") or t.name.endswith(".lora_b"):
            halves.setdefault(t.name[:-7], {})[t.name[-1]] = (t.ne, t.type)
        elif t.name.endswith("_norm.weight"):
            continue  # llama.cpp skips norm vectors
        elif problem is None:
            problem = f"LoRA tensor '{t.name}' has unexpected suffix"
    pairs = []
    for base, ab in halves.items():
        if ("a" not in ab or "b" not in ab) and problem is None:
            problem = f"LoRA tensor pair for '{base}' is missing one component"
            continue
        if "a" in ab and "b" in ab:
            pairs.append(LoraPair(base=base, a_ne=ab["a"][0], a_type=ab["a"][1], b_ne=ab["b"][0], b_type=ab["b"][1]))
    return LoraAdapter(ref=path, arch=str(md.get("general.architecture", "")), alpha=float(md.get("adapter.lora.alpha", 0)),
                       scale=scale, pairs=tuple(pairs), problem=problem)


def lora_of_rank(rank: int, tensors: list[tuple[Any, str]], type_: str = "F16") -> LoraAdapter:
    """An adapter of this rank on every attention and dense FFN projection of the model (LORA_TARGETS), in type_:
    lora_a {n_in, rank}, lora_b {rank, n_out} per base tensor, as convert_lora_to_gguf.py writes them."""
    rx = re.compile(r"blk\.\d+\.(" + "|".join(LORA_TARGETS) + r")\.weight$")
    pairs = tuple(LoraPair(base=t.name, a_ne=(t.ne[0], rank), a_type=type_, b_ne=(rank, t.ne[1]), b_type=type_)
                  for t, _ in tensors if len(t.ne) == 2 and rx.match(t.name))
    return LoraAdapter(ref=f"<rank-{rank} adapter>", arch="", alpha=float(rank), pairs=pairs)


def lora_graph(opts: Any) -> tuple[tuple[tuple[str, int], ...], ...]:
    """The adapters set on the context as graphs.Reserve.lora takes them: per adapter of non-zero scale
    (llama_context::set_adapters_lora skips the others), its projections and their largest rank."""
    items = [(p.strip(), 1.0) for it in opts.lora for p in it.split(",") if p.strip()]
    items += [split_scaled(p.strip()) for it in opts.lora_scaled for p in it.split(",") if p.strip()]
    out = []
    for path, scale in items:
        if not scale:
            continue
        ranks: dict[str, int] = {}
        for p in read_lora(path, scale).pairs:
            kind = p.base.split(".")[-2] if p.base.startswith("blk.") else p.base.split(".")[0]
            ranks[kind] = max(ranks.get(kind, 0), p.b_ne[0])
        out.append(tuple(sorted(ranks.items())))
    if opts.lora_rank:
        out.append(tuple(sorted((k, int(opts.lora_rank)) for k in LORA_TARGETS)))
    return tuple(out)


def lora_problems(adapters: list[LoraAdapter], arch: str, tensors: list[tuple[Any, str]]) -> list[Message]:
    """llama_adapter_lora_init_impl's refusals, in its words: the file's kind, the architecture, a base tensor
    that is missing or of another shape."""
    shapes = {t.name: tuple(t.ne) for t, _ in tensors}
    out = []
    for ad in adapters:
        said = ad.problem
        if said is None and ad.arch and ad.arch != arch:
            said = "model arch and LoRA arch mismatch"
        if said is None:
            for p in ad.pairs:
                ne = shapes.get(p.base)
                if ne is None:
                    said = f"LoRA tensor '{p.base}' does not exist in base model (hint: maybe wrong base model?)"
                elif p.base.endswith("token_embd.weight"):
                    if ne[0] != p.b_ne[1] or ne[1] != p.a_ne[1]:
                        said = f"tensor '{p.base}' has incorrect shape (hint: maybe wrong base model?)"
                elif ne[0] != p.a_ne[0] or ne[1] != p.b_ne[1]:
                    said = f"tensor '{p.base}' has incorrect shape (hint: maybe wrong base model?)"
                elif p.a_ne[1] != p.b_ne[0]:
                    said = ("lora_a tensor is not transposed (hint: adapter from \"finetune\" example is no longer "
                            "supported)")
                if said:
                    break
        if said:
            out.append(error("llamacpp.lora.refused", f"llama_adapter_lora_init_impl: failed to apply lora adapter: "
                             f"{said}; failed to load lora adapter '{ad.ref}' [{LORA_SOURCE}]",
                             fix="the adapter made for this model", source=LORA_SOURCE))
    return out


def lora_bytes(adapters: list[LoraAdapter], tensor_device: dict[str, int], n_gpus: int, cpu_align: int,
               gpu_align: int, row_padding: bool) -> tuple[list[int], int]:
    """(bytes per GPU, host bytes) of the adapters' buffers: each pair on its base tensor's device."""
    gpu = [0] * n_gpus
    host = 0
    for ad in adapters:
        for p in ad.pairs:
            dev = tensor_device.get(p.base, CPU)
            if dev == CPU or dev >= n_gpus:
                host += padded(p.a_type, p.a_ne, cpu_align) + padded(p.b_type, p.b_ne, cpu_align)
            else:
                gpu[dev] += (padded(p.a_type, p.a_ne, gpu_align, row_padding)
                             + padded(p.b_type, p.b_ne, gpu_align, row_padding))
    return gpu, host


# ---------------------------------------------------------------- mmproj

MMPROJ_SOURCE = "tools/mtmd/clip.cpp clip_model_loader"


class Mmproj(BaseModel):
    model_config = ConfigDict(frozen=True)

    ref: str
    projector: str
    tensors: tuple[tuple[str, tuple[int, ...], str], ...]
    image_size: int
    patch_size: int
    n_embd: int
    n_ff: int
    n_head: int
    n_layer: int
    projection_dim: int
    n_merge: int = 4  # clip.vision.projector.scale_factor (Gemma 3's default 4: load_hparams)
    metadata_keys: tuple[str, ...] = ()

    @property
    def model_size(self) -> int:
        """clip_model_loader's 'model size' (the tensors' bytes)."""
        return sum(tensor_bytes(ty, ne) for _, ne, ty in self.tensors)

    def buffer_bytes(self, alignment: int, row_padding: bool = False) -> int:
        return sum(padded(ty, ne, alignment, row_padding) for _, ne, ty in self.tensors)


def read_mmproj(path: str) -> Mmproj:
    return _read_mmproj(_stamp(path))


@lru_cache(maxsize=16)
def _read_mmproj(stamp: tuple[str, int, int]) -> Mmproj:
    path = stamp[0]
    try:
        h = read_local(path)
    except (GGUFError, OSError, InputError) as e:
        raise InputError(f"failed to load multimodal model, '{path}' ({str(e).split(': ')[-1]}) "
                         "[tools/server/server-context.cpp load_model]") from None
    md = h.metadata
    if md.get("general.architecture") != "clip" or not md.get("clip.has_vision_encoder"):
        raise InputError(f"failed to load multimodal model, '{path}': not a vision projector (general.architecture "
                         f"{md.get('general.architecture')!r}; audio-only projectors are not modelled) [{MMPROJ_SOURCE}]")

    def u(key: str, default: int | None = None) -> int:
        v = md.get(f"clip.vision.{key}", default)
        if v is None:
            raise InputError(f"failed to load multimodal model, '{path}': key clip.vision.{key} not found in file")
        return int(v)

    proj = str(md.get("clip.projector_type") or md.get("clip.vision.projector_type") or "mlp")
    return Mmproj(ref=path, projector=proj, tensors=tuple((t.name, t.ne, t.type) for t in h.tensors),
                  image_size=u("image_size"), patch_size=u("patch_size"), n_embd=u("embedding_length"),
                  n_ff=u("feed_forward_length"), n_head=u("attention.head_count"), n_layer=u("block_count"),
                  projection_dim=u("projection_dim", 0), n_merge=int(md.get("clip.vision.projector.scale_factor", 4)),
                  metadata_keys=tuple(sorted(md)))


def file_is_here(path: str) -> bool:
    return os.path.isfile(os.path.expanduser(path))


# ---------------------------------------------------------------- what each extra adds, per device

class LlamaExtra(BaseModel):
    """One extra's buffers: per GPU (in the result's device order) and in host memory."""
    model_config = ConfigDict(frozen=True)

    kind: str  # lora, draft, mmproj
    ref: str  # the file (or the catalog model and file type predicted)
    gpu_bytes: list[int]
    host_bytes: int
    uncertainty_gpu_bytes: list[int] = []  # of an estimated compute buffer (draft, mmproj)
    uncertainty_host_bytes: int = 0
    detail: dict[str, int | float | str] = {}  # the buffers it is made of
    how: str
    source: str


class DraftModel(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    ref: str
    spec: Any  # ModelSpec
    tensors: tuple[Any, ...]  # (GGUFTensor, ggml type)
    predicted: str | None = None  # the file type predicted when the file is not here
    said: str | None = None  # how the name was read (-hfd without :quant: the file llama.cpp picks)


def read_draft(ref: str) -> DraftModel:
    return _read_draft(_stamp(ref), ref)


@lru_cache(maxsize=8)
def _read_draft(stamp: tuple[str, int, int], ref: str) -> DraftModel:
    from ..sources import open_model
    from ..sources import model_names as mn

    if ref.startswith("hf:"):  # -hfd REPO[:QUANT] (with -md FILE: that file of the repo)
        return _hf_draft(ref)
    if file_is_here(ref):
        if not ref.endswith(".gguf"):
            raise InputError(f"failed to load draft model, '{ref}': llama.cpp loads a GGUF file")
        src = open_model(ref)
        return DraftModel(ref=ref, spec=src.spec, tensors=tuple(src.llama_tensors() or ()))
    base, ftype = mn.gguf_name(ref)
    if base is None or ftype is None:
        raise InputError(f"failed to load draft model, '{ref}' [tools/server/server-context.cpp load_model]: the file "
                         "is not here and its name names no catalog model and file type (such as "
                         "qwen2.5-0.5b-instruct-q8_0.gguf): give the downloaded file")
    return _predicted_draft(ref, base, ftype)


def _predicted_draft(ref: str, base: str, ftype: str, said: str | None = None) -> DraftModel:
    """A draft the file is not here for: the catalog model at llama-quantize's file type (a named mix: its upper
    bracketing type, so a fit holds for the real file)."""
    from ..gguf_mix import plan_gguf
    from ..sources import catalog
    from ..sources import model_names as mn

    mix = mn.gguf_mix(ftype)
    ftype = mix.upper if mix is not None else ftype
    spec = catalog.load(base)
    return DraftModel(ref=ref, spec=spec, tensors=tuple(plan_gguf(spec, ftype)), predicted=f"{base} {ftype}",
                      said=said)


def _hf_draft(ref: str) -> DraftModel:
    """--spec-draft-hf / -hfd <user>/<model>[:quant] (common/arg.cpp at 4df29be: the draft's hf_repo; -md FILE beside it
    sets the draft's hf_file too): common_models_handler_init plans the draft repo as -hf plans the target's
    (common_download_get_hf_plan: the :quant tag, else find_best_model's pick), and common_models_handler_apply points
    the draft's path at the downloaded file. Read as -hf is: the catalog model and file type the file or repo names."""
    from ..sources import model_names as mn

    spec_, _, hf_file = ref[3:].partition("::")
    base, ftype = mn.gguf_name(hf_file) if hf_file else mn.hf_repo(spec_)
    if base is None:
        base = mn.hf_repo(spec_)[0]
    what = f"-hfd {spec_}" + (f" -md {hf_file}" if hf_file else "")
    said = None
    if ":" not in spec_ and not hf_file:  # common/download.cpp find_best_model, without a tag
        dtype, dfile, where = mn.hf_default(spec_)
        ftype = dtype
        said = (f"without :quant llama.cpp takes {dfile} ({dtype}), the first file matching Q4_K_M, else Q8_0, else "
                f"the first model file ({where})" if dfile else
                f"without :quant llama.cpp takes the first file matching Q4_K_M, else Q8_0, else the first model file "
                f"(common/download.cpp find_best_model); this repo's files are not known here, so {dtype} is assumed")
    if base is None or ftype is None:
        raise InputError(f"{what}: the draft repo names no catalog model and file type (`vramcalc models` lists them; "
                         "-hfd REPO:QUANT, such as -hfd bartowski/Qwen2.5-1.5B-GGUF:Q8_0): give the downloaded file "
                         "with -md")
    return _predicted_draft(ref, base, ftype, said)
