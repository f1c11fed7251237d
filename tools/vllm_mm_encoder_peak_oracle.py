"""vLLM's own vision encoder run on the meta device over the dummy item its profile run encodes, under a live-bytes
tracker that rounds each allocation as the CUDA caching allocator does: the oracle for vramcalc's encoder profiling
peak (vramcalc/vllm/mm_profile.py), written to tests/data/vllm_mm_encoder_peak_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_mm_encoder_peak_oracle.py \
        --out tests/data/vllm_mm_encoder_peak_oracle_v0.34.0.json

What vLLM 0.34.0 does at start-up (vllm/v1/worker/gpu/model_runner.py GPUModelRunner.profile_run): it builds a
MultiModalBudget (vllm/multimodal/encoder_budget.py), takes the modality with the most tokens per item
(get_modality_with_max_tokens), repeats that modality's dummy item mm_max_items_per_batch times
(get_dummy_encoder_profile_inputs) and encodes the batch (vllm/v1/worker/gpu/mm/encoder_runner.py
EncoderRunner.profile_encoder_cache -> execute_mm_encoder -> model.embed_multimodal); the outputs go into the encoder
cache and stay there while the language model's dummy run (_dummy_run(max_num_tokens)) and the sampler run; the cache
is emptied after (reset_encoder_cache). The KV budget loses the allocator's peak over the whole profile run
(vllm/utils/mem_utils.py memory_profiling: allocated_bytes.all.peak less what stays allocated), so the encoder costs
KV where max(encoder forward peak, encoder outputs + LM peak) exceeds the LM peak.

Here: the model class built on the meta device (tools/vllm_mm_oracle.py _build, TP ranks faked), every CustomOp of
the tower switched to its forward_cuda (the CUDA build's path: fused RMSNorm / residual add in place, activation
kernels writing into a preallocated output), the vision attention backend set to FLASH_ATTN (what
vllm/platforms/cuda.py CudaPlatform.get_vit_attn_backend picks first on sm80+ and on sm86, the logs' A100 and RTX
3090; its varlen op's registered fake allocates the output only, like flash_attn_varlen_func with out= given; the
kernel's float32 softmax_lse, heads x tokens x 4 bytes, is added analytically to the attention op's live bytes), the
tensor-parallel all-reduce answered with a new output of the input's size (out of place, as on CUDA:
vllm/distributed/parallel_state.py GroupCoordinator.all_reduce), then model.embed_multimodal on the dummy pixel values. A
TorchDispatchMode sees every op; each output on the meta device whose storage is new is an allocation, freed when its
last tensor dies. Each allocation is rounded as c10/cuda/CUDACachingAllocator.cpp counts allocated_bytes: up to a
multiple of 512 bytes (round_size), and a request of max_split_size or more (20 MiB, the limit
vllm/v1/worker/gpu_worker.py Worker.determine_available_memory sets for the profile run) takes its whole segment,
rounded up to 2 MiB (get_allocation_size kRoundLarge; should_split false). Written per case: the peak live bytes of
the forward (forward_peak_bytes; pixel values included, as group_and_batch_mm_kwargs holds them on the device), what
is still live after it (live_after_bytes: the outputs the encoder cache holds, encoder_output_bytes, and what the model
keeps, e.g. Qwen2.5-VL's LRU cache of rotary tables), the grid and which CUDA paths were taken (cuda_paths).
--backend runs the towers' attention through another backend's CUDA path (TRITON_ATTN: its op's registered fake,
the output, as triton_attn_wrapper allocates, and its int32 sequence lengths added to the op's live bytes;
TORCH_SDPA: _sdpa_cuda_path), written as attn_backend; for TORCH_SDPA also the most live at torch_sdpa_wrapper's
torch.cat (sdpa_join_live_bytes).
ORACLE_DEBUG=1 prints the live set at the peak.

The dummy image: Qwen2VLProcessingInfo.get_image_size_with_most_features (vllm/model_executor/models/qwen2_vl.py) at
the processor's max_pixels; the catalog's processor limits give grid (1, 256, 256) patches for both cases here
(Qwen2.5-VL: max_pixels 12845056 at patch 14; Qwen3.6: 65536 patches of 16, the log's 16384 tokens after the 2x2
merge). The processor itself is not run (this machine has no checkpoint's preprocessor_config.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import weakref
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from vllm_oracle import setup  # noqa: E402

BACKENDS = ("FLASH_ATTN", "TRITON_ATTN", "TORCH_SDPA")
MIB = 2**20
MAX_SPLIT = 20 * MIB  # gpu_worker.py _scoped_allocator_max_split(max_split_size_mb=20) during the profile run
# (stem, tp, grid (t, h, w) in patches, number of items); a stem "STEM+key=value" is that catalog config with
# vision_config's key set (a constructed tower, so that each tower's other phase peaks: Qwen2.5-VL's attention under
# a narrow MLP, Qwen3.5's MLP under a wide one)
CASES: list[tuple[str, int, tuple[int, int, int], int]] = [
    ("Qwen__Qwen2.5-VL-3B-Instruct+intermediate_size=512", 1, (1, 128, 128), 1),
    ("Qwen__Qwen2.5-VL-3B-Instruct+intermediate_size=512", 2, (1, 128, 128), 1),
    ("Qwen__Qwen3.6-27B+intermediate_size=12288", 1, (1, 128, 128), 1),
    ("Qwen__Qwen3.6-27B+intermediate_size=12288", 2, (1, 128, 128), 1),
    ("Qwen__Qwen2.5-VL-3B-Instruct", 1, (1, 256, 256), 1),
    ("Qwen__Qwen2.5-VL-3B-Instruct", 1, (1, 128, 128), 1),
    ("Qwen__Qwen2.5-VL-3B-Instruct", 1, (1, 64, 64), 2),
    ("Qwen__Qwen2.5-VL-3B-Instruct", 1, (7, 256, 256), 1),
    ("Qwen__Qwen2.5-VL-3B-Instruct", 2, (1, 256, 256), 1),
    ("Qwen__Qwen3.6-27B", 2, (1, 256, 256), 1),
    ("Qwen__Qwen3.6-27B", 1, (1, 256, 256), 1),
    ("Qwen__Qwen3.6-27B", 2, (1, 128, 128), 1),
]


def cuda_allocated(nbytes: int) -> int:
    """allocated_bytes the CUDA caching allocator counts for one request (module docstring)."""
    r = max(512, -(-nbytes // 512) * 512)
    return -(-r // (2 * MIB)) * (2 * MIB) if r >= MAX_SPLIT else r


def tracker():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Live(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.refs: dict[int, int] = {}
            self.size: dict[int, int] = {}
            self.live = 0
            self.peak = 0
            self.desc: dict[int, Any] = {}
            self.op = ""
            self.in_sdpa = False  # inside torch_sdpa_wrapper (_sdpa_cuda_path)
            self.join_peak = 0  # the most live at its torch.cat

        def _drop(self, key: int) -> None:
            self.refs[key] -= 1
            if self.refs[key] == 0:
                self.live -= self.size.pop(key)
                self.desc.pop(key, None)
                del self.refs[key]

        def track(self, t: Any) -> None:
            if not isinstance(t, torch.Tensor) or t.device.type != "meta":
                return
            st = t.untyped_storage()
            key = st._cdata
            if key not in self.refs:
                self.refs[key] = 0
                self.size[key] = cuda_allocated(st.nbytes())
                self.desc[key] = (tuple(t.shape), str(t.dtype).replace("torch.", ""), self.op)
                self.live += self.size[key]
            self.refs[key] += 1
            weakref.finalize(t, self._drop, key)

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = func.name() if hasattr(func, "name") else str(func)
            self.op = name
            if name.startswith("_C::"):  # the CUDA build's kernels: in place or into a preallocated out=
                return None
            out = func(*args, **kwargs)
            extra = 0
            if name.startswith("vllm::flash_attn_maxseqlen_wrapper"):
                q = args[0]
                extra = cuda_allocated(q.shape[0] * q.shape[1] * q.shape[2] * 4)  # softmax_lse, float32
            elif name.startswith("vllm::triton_attn_wrapper"):
                # vit_attn_wrappers.py triton_attn_wrapper: b_seq_len = cu_seqlens[1:] - cu_seqlens[:-1] (int32),
                # live while context_attention_fwd (a Triton kernel, no allocation) writes the output
                extra = cuda_allocated((args[5].shape[0] - 1) * 4)
            flat, _ = tree_flatten(out)
            for t in flat:
                self.track(t)
            if self.in_sdpa and name == "aten::cat":
                self.join_peak = max(self.join_peak, self.live)
            if self.live + extra > self.peak:
                self.peak = self.live + extra
                if os.environ.get("ORACLE_DEBUG"):
                    self.at_peak = (name, extra, sorted(((self.size[k], self.desc[k]) for k in self.size),
                                                        reverse=True)[:40])
            return out

    return Live()


def _override(stem: str) -> tuple[str, dict[str, int]]:
    base, _, rest = stem.partition("+")
    return base, {k: int(v) for k, v in (kv.split("=") for kv in rest.split(",") if kv)}


def _build(stem: str, tp: int) -> Any:
    """tools/vllm_mm_oracle.py _build; for a constructed stem, on the catalog config with vision_config changed."""
    import tempfile

    import vllm_mm_oracle as mm

    base, over = _override(stem)
    if not over:
        return mm._build(stem, tp, {})
    entry = json.load(open(os.path.join(mm.MODELS, base + ".json")))
    entry["config"]["vision_config"].update(over)
    orig = mm.MODELS
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, stem + ".json"), "w") as f:
            json.dump(entry, f)
        mm.MODELS = d
        try:
            return mm._build(stem, tp, {})
        finally:
            mm.MODELS = orig


def _rotary_stub() -> None:
    """vllm/vllm_flash_attn/layers/rotary.py apply_rotary_emb, as the CUDA build runs it: its Triton apply_rotary
    (vllm_flash_attn/ops/triton/rotary.py) writes into torch.empty_like(x) unless inplace. The package's __init__
    needs the CUDA flash-attention extensions, so the module is stood in for with that allocation only."""
    import types

    import torch

    def apply_rotary_emb(x: Any, cos: Any, sin: Any, interleaved: bool = False, inplace: bool = False,
                         *args: Any, **kwargs: Any) -> Any:
        return x if inplace else torch.empty_like(x)

    for name in ("vllm.vllm_flash_attn", "vllm.vllm_flash_attn.layers"):
        sys.modules.setdefault(name, types.ModuleType(name))
    rot = types.ModuleType("vllm.vllm_flash_attn.layers.rotary")
    rot.apply_rotary_emb = apply_rotary_emb  # type: ignore[attr-defined]
    sys.modules["vllm.vllm_flash_attn.layers.rotary"] = rot


def _out_of_place_all_reduce() -> None:
    """The TP all-reduce as the CUDA build runs it: out of place, into a new tensor of the input's size
    (vllm/distributed/parallel_state.py GroupCoordinator.all_reduce -> torch.ops.vllm.all_reduce on CUDA;
    device_communicators/cuda_communicator.py CudaCommunicator.all_reduce: custom all-reduce or pynccl, each
    returning a new output). The CPU communicator here reduces in place, so the call is answered with that output."""
    import torch
    from vllm.distributed.parallel_state import GroupCoordinator

    GroupCoordinator.all_reduce = lambda self, x: x if self.world_size == 1 else torch.empty_like(x)  # type: ignore


def _sdpa_cuda_path() -> None:
    """TORCH_SDPA as the CUDA build runs it: vllm/v1/attention/ops/vit_attn_wrappers.py torch_sdpa_wrapper's own code
    (not its registered fake, which allocates the output only): per sequence of cu_seqlens a split view of q / k / v,
    apply_sdpa's b s h d -> b h s d rearrange (a view) and F.scaled_dot_product_attention, then torch.cat of the
    outputs. torch's SDPA on CUDA takes its first usable kernel in the priority order flash, memory-efficient, math,
    cuDNN (torch._C._get_sdp_priority_order() -> [1, 2, 0, 3], aten/src/ATen/native/transformers/sdp_utils_cpp.h
    SDPBackend), and for these inputs (fp16 / bf16, no mask, last-dim stride 1, head size a multiple of 8 up to 256)
    FlashAttention on SM 8.0 and up, memory-efficient attention below: neither materializes the attention matrix,
    each allocates its output in (b, s, h, d) order plus float32 log-sum-exp statistics. Here F.scaled_dot_product_attention
    is answered by aten::_scaled_dot_product_flash_attention's meta kernel (torch/_meta_registrations.py: the output
    empty_like the query, logsumexp b x h x s float32, the RNG seed and offset), the op the composite calls on CUDA
    for the flash kernel. The lengths the wrapper reads with .tolist() are taken from the host copy of cu_seqlens
    (the meta tensor has no values); current_platform.is_rocm / is_zen_cpu answered as on CUDA (False)."""
    import torch
    import vllm.model_executor.layers.attention.mm_encoder_attention as mea
    import vllm.v1.attention.ops.vit_attn_wrappers as vw
    from vllm.platforms import current_platform

    host: dict[int, Any] = {}
    h2d = mea.async_tensor_h2d

    def async_tensor_h2d(data: Any, *a: Any, **k: Any) -> Any:
        out = h2d(data, *a, **k)
        host[out.untyped_storage()._cdata] = torch.as_tensor(data)
        return out

    mea.async_tensor_h2d = async_tensor_h2d  # type: ignore[assignment]
    type(current_platform).is_zen_cpu = classmethod(lambda cls: False)  # type: ignore[method-assign,assignment]
    type(current_platform).is_rocm = classmethod(lambda cls: False)  # type: ignore[method-assign,assignment]

    def sdpa(q: Any, k: Any, v: Any, dropout_p: float = 0.0, scale: Any = None, enable_gqa: bool = False,
             **kw: Any) -> Any:
        return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, dropout_p, False, scale=scale)[0]

    vw.F = type(sys)("F_cuda")  # type: ignore[attr-defined]
    vw.F.scaled_dot_product_attention = sdpa  # type: ignore[attr-defined]

    def vit_torch_sdpa_wrapper(q: Any, k: Any, v: Any, scale: Any = None, cu_seqlens: Any = None,
                               enable_gqa: bool = False) -> Any:
        cu = host.get(cu_seqlens.untyped_storage()._cdata) if cu_seqlens is not None else None
        mode = torch.utils._python_dispatch._get_current_dispatch_mode()
        mode.in_sdpa = True
        try:
            return vw.torch_sdpa_wrapper(q, k, v, scale, cu if cu is not None else cu_seqlens, enable_gqa)
        finally:
            mode.in_sdpa = False

    mea.vit_torch_sdpa_wrapper = vit_torch_sdpa_wrapper  # type: ignore[assignment]


def _cuda_paths(model: Any, backend: str = "FLASH_ATTN") -> list[str]:
    """Make the tower take the CUDA build's paths under the same config (module docstring); returns what changed.

    A CustomOp the config enables (its forward bound to forward_cpu here) runs forward_cuda; one it disables runs
    forward_native on CUDA too, eagerly, unless it was built with compile_native (custom_op.py dispatch_forward ->
    maybe_compile, e.g. get_act_and_mul_fn(compile_native=True)): Inductor fuses that elementwise op into one kernel
    writing its output, whose allocation forward_cuda's preallocated out= has too, so forward_cuda stands in for
    it. Linear layers take cuda_unquantized_gemm (layers/utils.py dispatch_unquantized_gemm on CUDA); the vision
    attention FLASH_ATTN."""
    from vllm.model_executor.custom_op import CustomOp
    from vllm.model_executor.layers.utils import cuda_unquantized_gemm
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    changed = set()
    for _, m in model.visual.named_modules():
        qm = getattr(m, "quant_method", None)
        if qm is not None and hasattr(qm, "_gemm_impl"):
            qm._gemm_impl = cuda_unquantized_gemm
            changed.add("linear: cuda_unquantized_gemm")
        if isinstance(m, CustomOp):
            fm = m._forward_method
            bound = getattr(fm, "__func__", None)
            if bound is type(m).forward_native:
                changed.add(f"{type(m).__name__}: forward_native (disabled, eager)")
            elif bound is not None and getattr(fm, "__name__", "") == "forward_cpu":
                m._forward_method = m.forward_cuda
                changed.add(f"{type(m).__name__}: forward_cuda (enabled)")
            else:
                m._forward_method = m.forward_cuda
                changed.add(f"{type(m).__name__}: compiled forward_native, forward_cuda's allocation")
            if not hasattr(m, "op") and "op" in getattr(type(m).forward_cuda, "__code__").co_names:
                m.op = lambda *a, **k: None  # the CUDA kernel it takes at __init__ on CUDA (writes into out=)
        if hasattr(m, "attn_backend"):
            m.attn_backend = AttentionBackendEnum[backend]
            if hasattr(m, "is_flash_attn_backend"):
                m.is_flash_attn_backend = backend == "FLASH_ATTN"
            if hasattr(m, "_fa_version"):
                m._fa_version = 2 if backend == "FLASH_ATTN" else None
            changed.add(type(m).__name__ + ": " + backend)
    return sorted(changed)


def run_case(stem: str, tp: int, grid: tuple[int, int, int], items: int, backend: str = "FLASH_ATTN"
             ) -> dict[str, Any]:
    import torch
    from vllm.config import set_current_vllm_config

    _rotary_stub()
    _out_of_place_all_reduce()
    if backend == "TORCH_SDPA":
        _sdpa_cuda_path()
    cfg, model = _build(stem, tp)
    changed = _cuda_paths(model, backend)
    vc = model.config.vision_config
    t, h, w = grid
    in_ch = getattr(vc, "in_channels", None) or getattr(vc, "in_chans", 3)
    patch_dim = in_ch * vc.temporal_patch_size * vc.patch_size**2
    n = t * h * w * items
    mode = tracker()
    with set_current_vllm_config(cfg), torch.inference_mode(), mode:
        pixel_values = torch.empty(n, patch_dim, dtype=torch.float32, device="meta")  # the processor's float32 patches
        grid_thw = torch.tensor([list(grid)] * items, dtype=torch.int64)
        # a grid of more than one temporal patch is the video dummy (the image's is t = 1)
        kw = ({"pixel_values_videos": pixel_values, "video_grid_thw": grid_thw} if t > 1 else
              {"pixel_values": pixel_values, "image_grid_thw": grid_thw})
        outs = model.embed_multimodal(**kw)
        del pixel_values, kw
        kept = mode.live
        outputs = sum(cuda_allocated(o.untyped_storage().nbytes()) for o in {o.untyped_storage()._cdata: o
                                                                              for o in outs}.values())
        out_shapes = [list(o.shape) for o in outs]
        out_dtype = str(outs[0].dtype)
        if os.environ.get("ORACLE_DEBUG"):
            print("peak at", mode.at_peak[:2], file=sys.stderr)
            for x in mode.at_peak[2]:
                print("   ", x, file=sys.stderr)
    base, over = _override(stem)
    return {"model": json.load(open(os.path.join(os.path.dirname(__file__), "..", "data", "models",
                                                    base + ".json")))["repo_id"], "vision_config_override": over,
            "architecture": type(model).__name__, "tower": type(model.visual).__name__, "tp": tp,
            "attn_backend": backend,
            "modality": "video" if t > 1 else "image", "grid_thw": list(grid), "items": items, "patches": n, "pixel_values_dtype": "torch.float32",
            "forward_peak_bytes": mode.peak,
            **({"sdpa_join_live_bytes": mode.join_peak} if backend == "TORCH_SDPA" else {}), "live_after_bytes": kept, "encoder_output_bytes": outputs, "encoder_output_shapes": out_shapes,
            "encoder_output_dtype": out_dtype, "cuda_paths": changed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="JSON file to write (merged with the cases it holds)")
    ap.add_argument("--backend", default="FLASH_ATTN", choices=BACKENDS,
                    help="the vision attention backend (--mm-encoder-attn-backend) the towers run")
    ap.add_argument("--tp", type=int, required=True, help="the TP degree of this process (one per process: the "
                    "fake TP group is set up once)")
    a = ap.parse_args()
    setup()
    import vllm

    cases = []
    for c in CASES:
        if c[1] != a.tp:
            continue
        r = run_case(*c, backend=a.backend)
        print(json.dumps(r), flush=True)
        cases.append(r)
    old = json.load(open(a.out))["cases"] if os.path.exists(a.out) else []
    key = lambda r: (r["model"], json.dumps(r["vision_config_override"]), r["tp"], tuple(r["grid_thw"]),  # noqa: E731
                     r["items"], r.get("attn_backend", "FLASH_ATTN"))
    mine = {key(r) for r in cases}
    doc = {"release": vllm.__version__,
           "produced_by": "VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_mm_encoder_peak_oracle.py"
                          " --tp N --backend B --out tests/data/vllm_mm_encoder_peak_oracle_v0.34.0.json (N = 1, 2; B = FLASH_ATTN,"
                          " TRITON_ATTN, TORCH_SDPA)",
           "method": " ".join(__doc__.split("\n\n")[2].split()),
           "cases": sorted([r for r in old if key(r) not in mine] + cases, key=lambda r: (r["model"], json.dumps(r["vision_config_override"]),
                                                                          r["tp"], -r["patches"], r.get("attn_backend", "FLASH_ATTN")))}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
