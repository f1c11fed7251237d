"""Where llama.cpp puts each weight tensor (docs/llamacpp.md#model-buffers; src/llama-model.cpp
load_tensors, build 4df29be): -ngl counts n_layer + 1 units, the output layer first (PR #18148),
then the last ngl - 1 blocks; the offloaded units are spread over the GPUs by the cumulative
-ts fractions (default: each GPU's free memory); token_embd always stays on the CPU; a tied head
loads a second copy of token_embd on the output device; -ot / --cpu-moe / --n-cpu-moe move the
matching tensors to the CPU. On unified-memory backends (Metal) the device buffer maps the whole
file: no second copy."""

from __future__ import annotations

import bisect
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..ggml import tensor_bytes
from ..gguf_mix import GGUFTensor
from ..memo import Memo

CPU = -1
# ggml-cpu/repack.cpp ggml_repack_get_optimal_repack_type: matmul weights of these types with a row count
# divisible by 8 are copied into an interleaved layout in a CPU_REPACK buffer (anonymous memory; on by
# default, --no-repack turns it off), by the host CPU's features. token_embd is read by get_rows and is not
# repacked. The types per host CPU are data (llamacpp_backends.json repack_types).
HostCPU = Literal["x86_avx2", "x86_avx512", "arm_neon", "none"]


class ModelBuffers(BaseModel):
    model_config = ConfigDict(frozen=True)

    cpu_bytes: int  # host: token_embd, CPU layers, overridden tensors
    # of cpu_bytes, what --no-mmap puts in the GPU's pinned host buffer type (CUDA_Host, ROCm_Host ...); the rest is the
    # plain CPU buffer. 0 with mmap (the loader swaps the host buffer type for the CPU one: the mapped file)
    pinned_bytes: int = 0
    repack_bytes: int = 0  # host: the CPU_REPACK copies of CPU matmul weights (repack_types of the host CPU)
    # the largest weight of a matmul left in a host buffer (not repacked): what the scheduler copies into the
    # first GPU's compute buffer when that GPU takes the op (ggml-backend.cpp op offload)
    host_matmul_max_bytes: int = 0
    router_on_cpu: bool = False  # an override put a MoE router (ffn_gate_inp) of a GPU layer on the CPU
    gpu_bytes: list[int]  # per GPU (with unified memory the first spans the whole file)
    gpu_mirrored_bytes: int = 0  # of those, what a tensor split keeps whole on every GPU (norms, routers ...)
    unit_device: list[int]  # device of each block, then of the output layer (CPU = -1)
    # the device of the tensors named in model_buffers(record=...) (a LoRA adapter's base tensors); CPU for every host
    # buffer (mapped, host, repacked)
    tensor_device: dict[str, int] = {}
    gpu_layers: int  # offloaded repeating blocks
    unified: bool

    @property
    def output_device(self) -> int:
        return self.unit_device[-1]


GGUF_ALIGNMENT = 32  # general.alignment default: each tensor's data starts on a multiple of it


def gpu_start(n_layer: int, ngl: int) -> int:
    """First unit on a GPU: max(n_layer + 1 - ngl, 0) (the output layer is unit n_layer)."""
    return max(n_layer + 1 - ngl, 0)


def unit_devices(n_layer: int, ngl: int, splits: list[float], output_first: bool = True) -> list[int]:
    """Device of each unit (blocks 0..n_layer-1, then the output layer). load_tensors: unit il,
    if offloaded, goes to upper_bound(cumulative normalised splits, (il - start) / act) where
    act = min(ngl, n_layer + 1). output_first=False is the order before PR #18148: start = max(n_layer - ngl, 0)
    and a unit il is on the CPU where il - start >= act, so the output layer (il = n_layer) is offloaded only
    when ngl > n_layer (src/llama-model.cpp load_tensors get_layer_buft_list, i_gpu_start, before #18148)."""
    if not splits:
        return [CPU] * (n_layer + 1)
    total = sum(splits)
    cum, acc = [], 0.0
    for w in splits:
        acc += w
        cum.append(acc / total)
    act = min(ngl, n_layer + 1)
    start = gpu_start(n_layer, ngl) if output_first else max(n_layer - ngl, 0)
    out = []
    for il in range(n_layer + 1):
        if il < start or il - start >= act:
            out.append(CPU)
        else:
            out.append(min(bisect.bisect_right(cum, (il - start) / act), len(splits) - 1))
    return out


# The expert tensors --cpu-moe keeps on the CPU (common/arg.cpp llm_ffn_exps_block_regex)
EXPERT_TENSORS = r"\.ffn_(up|down|gate)_(ch|)exps"
_BLOCK = re.compile(r"blk\.(\d+)\.")
_EXPERTS = re.compile(EXPERT_TENSORS)

# A check places one tensor list many times (each -ngl, context and split it tries): each tensor's size, block
# and expert flag are worked out once per list. Keyed by identity, holding the list (so the id stays its own);
# weighted by the tensors held.
_PREPARED: Memo[tuple[list[tuple[GGUFTensor, str]], list[tuple[GGUFTensor, str, int, int, bool]]]] = Memo()


def tensors_bytes(tensors: list[tuple[GGUFTensor, str]]) -> int:
    """The bytes of every tensor's data (the file's size less its header and padding)."""
    return sum(r[2] for r in _prepared(tensors))


def _prepared(tensors: list[tuple[GGUFTensor, str]]) -> list[tuple[GGUFTensor, str, int, int, bool]]:
    """(tensor, type, bytes, block index or -1, an expert tensor of that block) in file order."""
    hit = _PREPARED.get(id(tensors))
    if hit is not None and hit[0] is tensors:
        return hit[1]
    rows = []
    for t, ggml in tensors:
        m = _BLOCK.match(t.name)
        rows.append((t, ggml, tensor_bytes(ggml, t.ne), int(m.group(1)) if m else -1,
                     bool(m and _EXPERTS.match(t.name, m.end() - 1))))
    _PREPARED.put(id(tensors), (tensors, rows), len(rows) // 8 + 1)
    return rows


def model_buffers(tensors: list[tuple[GGUFTensor, str]], n_layer: int, ngl: int, splits: list[float] | None = None,
                  cpu_overrides: list[str] | None = None, unified: bool = False, repack: bool = True,
                  mmap: bool = True, split_tensors: list[str] | None = None, cpu_moe_layers: int = 0,
                  repack_types: frozenset[str] = frozenset(), gpu_host_buffer: bool = False,
                  device_overrides: list[tuple[str, int]] | None = None,
                  record: frozenset[str] = frozenset(), output_first: bool = True, pinned_host: bool = False,
                  override_picks_host: bool = True, get_rows_types: frozenset[str] | None = None,
                  override_repack: bool = False, skip_from_block: int | None = None) -> ModelBuffers:
    r"""skip_from_block: the tensors of blocks from this index on are not loaded (llama.cpp's TENSOR_SKIP: the NextN /
    MTP blocks without --spec-type draft-mtp, src/models/qwen3next.cpp load_arch_tensors, 4df29be).
    tensors: (tensor, ggml type) in file order (gguf_mix.plan_gguf or a read header).
    splits: one weight per GPU (-ts, or free memory); None or [] for CPU only.
    With mmap the host model buffer is a window of the file (llama_model_loader::get_mapping_range:
    from the first to the last byte of the CPU tensors), so GPU tensors stored between CPU ones count
    in it too; without mmap it holds the CPU tensors alone. split_tensors: the names a tensor split
    divides (regexes; '#2d' = only when 2-D); the offloaded bytes of the others are gpu_mirrored_bytes.
    cpu_moe_layers: --n-cpu-moe N, the expert tensors (EXPERT_TENSORS) of blocks 0 to N-1 stay on the CPU
    (llama.cpp's one override ^blk\.i\.ffn_..._exps per i, as a single pattern and an index check).
    repack_types: what the host CPU repacks; gpu_host_buffer: a GPU with a host buffer type is present, so the
    CPU weights placed by -ngl take that buffer type (or, with mmap, the CPU one) before CPU_REPACK
    (make_cpu_buft_list, llamacpp_backends.json host_buffer_source) and are never repacked. Weights an
    override sends to the CPU (-ot =CPU, --cpu-moe) take the plain CPU buffer type: never repacked either.
    device_overrides: -ot PATTERN=DEVICE in order, DEVICE a GPU index or CPU; the first pattern that matches
    a tensor's name places it (src/llama-model.cpp create_tensor, tensor_buft_overrides). record: tensor names whose
    device is kept in tensor_device. output_first: -ngl counts the output layer first (PR #18148 on; unit_devices).
    pinned_host: --no-mmap beside a GPU with a host buffer type (llama.cpp 4df29be src/llama-model-loader.cpp
    create_tensor, select_weight_buft): a host weight takes the first buffer type of make_cpu_buft_list whose device
    runs its op, and the GPU's host buffer comes before CPU; with mmap the loader swaps it for the CPU buffer type
    ("avoid using a host buffer when using mmap"), so pinned_bytes is 0. The GPU runs every weight op of a layer; of
    token_embd's GET_ROWS only the get_rows_types (None: every type; data/llamacpp_backends.json get_rows_source), the
    others stay in the plain CPU buffer, and a tied output layer on the host then gets its own copy in the host buffer
    (its op is a matmul; TENSOR_DUPLICATED shares only a buffer type's context). override_picks_host: an -ot =CPU
    override picks from that list too (PR #14990); before, the CPU buffer type itself. override_repack: that list has
    no host buffer type (--no-host), so an -ot =CPU override reaches the extra buffer types and is repacked as the
    weights -ngl leaves on the CPU are (src/llama-model-loader.cpp create_tensor, select_weight_buft on buft_list_cpu)."""
    splits = list(splits or [])
    unit_dev = unit_devices(n_layer, ngl, splits, output_first)
    placed = [(re.compile(p), dev) for p, dev in (device_overrides or [])] + \
        [(re.compile(p), CPU) for p in (cpu_overrides or [])]
    cpu = repacked = host_mm = pinned = 0
    router = False
    repack = repack and not gpu_host_buffer
    gpu = [0] * len(splits)
    tied = not any(t.name == "output.weight" for t, _ in tensors)
    out_dev = unit_dev[-1]
    offset, first, last = 0, None, 0  # the file window of the CPU buffer's tensors
    mirrored = 0
    splitting = [(re.compile(p.removesuffix("#2d")), p.endswith("#2d")) for p in (split_tensors or [])]
    where: dict[str, int] = {}
    for t, ggml, size, block, expert in _prepared(tensors):
        offset = -(-offset // GGUF_ALIGNMENT) * GGUF_ALIGNMENT
        start, offset = offset, offset + size
        if skip_from_block is not None and block >= skip_from_block:
            continue  # TENSOR_SKIP: not created, not loaded (the file's bytes stay unmapped past the window)
        overridden = False
        if t.name == "token_embd.weight":
            dev = CPU
            embd_pinned = pinned_host and (get_rows_types is None or _reads_rows(ggml, t.ne, get_rows_types))
            if tied and out_dev != CPU and not unified:  # the output layer's own copy of the tied matrix
                gpu[out_dev] += size
            elif tied and repack and _repacked(ggml, t.ne, repack_types):  # CPU output layer: its duplicate is a matmul weight
                repacked += size
            elif tied and pinned_host and not embd_pinned:  # the duplicate's matmul takes the host buffer: a second copy
                cpu += size
                pinned += size
                host_mm = max(host_mm, size)
            elif tied:
                host_mm = max(host_mm, size)
            if embd_pinned:
                pinned += size
        elif placed and (hit := next((d for rx, d in placed if rx.search(t.name)), None)) is not None:
            dev = hit if hit == CPU or hit < len(gpu) else CPU  # a GPU outside the list: refused by the caller
            overridden = True
            router = router or (dev == CPU and ".ffn_gate_inp." in t.name)
        elif expert and block < cpu_moe_layers:
            dev = CPU
            overridden = True
        elif block >= 0:
            dev = unit_dev[block] if block < n_layer else out_dev
        else:  # output, output_norm and model-level tensors travel with the output layer
            dev = out_dev
        if t.name in record:
            where[t.name] = dev
        if dev == CPU:
            cpu += size
            if repack and (not overridden or override_repack) and t.name != "token_embd.weight" and \
                    _repacked(ggml, t.ne, repack_types):
                repacked += size  # in the CPU_REPACK buffer
            else:  # in the mapped CPU buffer (or, without mmap, the pinned host buffer or the plain CPU one)
                if pinned_host and t.name != "token_embd.weight" and (override_picks_host or not overridden):
                    pinned += size
                first = start if first is None else first
                last = offset
                if t.name != "token_embd.weight" and len(t.ne) >= 2:
                    host_mm = max(host_mm, size)
        else:
            gpu[dev] += size
            if not any(rx.fullmatch(t.name) and (not only_2d or len(t.ne) == 2) for rx, only_2d in splitting):
                mirrored += size
    if mmap and first is not None and not unified:
        cpu = last - first  # the window, repacked tensors inside it included
    if unified and gpu:  # Metal maps the whole file into one device buffer
        gpu[0] = cpu + sum(gpu)
    if mmap or unified:
        pinned = 0
    return ModelBuffers(cpu_bytes=cpu, pinned_bytes=pinned, repack_bytes=0 if unified else repacked, gpu_bytes=gpu,
                        gpu_mirrored_bytes=mirrored,
                        host_matmul_max_bytes=0 if unified else host_mm, router_on_cpu=router,
                        unit_device=unit_dev, tensor_device=where,
                        gpu_layers=sum(1 for d in unit_dev[:-1] if d != CPU), unified=unified)


def _repacked(ggml: str, ne: tuple[int, ...], types: frozenset[str]) -> bool:
    return ggml.upper() in types and len(ne) >= 2 and ne[1] % 8 == 0


def _reads_rows(ggml: str, ne: tuple[int, ...], types: frozenset[str]) -> bool:
    """The GPU runs GET_ROWS on this weight (ggml-cuda.cu supports_op): its type listed, or listed with '#256' and
    rows a multiple of 256 long."""
    t = ggml.upper()
    return t in types or (f"{t}#256" in types and ne[0] % 256 == 0)
