"""The recurrent-layer kernel flags (--gdn-prefill-backend, --use-replayssm with --mamba-backend) judged by vLLM's
own code on a CPU machine: tests/data/vllm_mamba_backend_oracle_v0.33.0.json.

    for tp in 1 2; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_mamba_backend_oracle.py \
        --tp $tp --out tests/data/vllm_mamba_backend_oracle_v0.33.0.json; done

Each case is a catalog model, TP degree, the EngineArgs fields the flags set and, for the Gated DeltaNet cases, an
NVIDIA GPU's compute capability. It runs tools/vllm_oracle.py's planning (the model class on the meta device, each
layer's KV cache spec, Platform.update_block_size_for_backend, kv_cache_planning). vLLM 0.33.0 picks the GDN
prefill kernel while it builds each layer (vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py
_resolve_gdn_prefill_backend, which reads current_platform): that module is handed a CUDA platform answering the
case's capability and CUDA runtime 13 (the PyPI wheel's _C_stable_libtorch.abi3.so links libcudart.so.13);
everything else still sees the CPU platform. The layer's chosen kernel, and each Mamba spec's prefill checkpoint
blocks, speculative blocks and state shapes, are recorded beside the plan. The venv needs torchvision
(tools/vllm_oracle_venv.sh): the Qwen3.5 classes import it; where it lacks it, a `pip install --no-deps --target DIR
torchvision==0.28.0` put on PYTHONPATH serves (the fixture ran so).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

GDN = ["Qwen__Qwen3.5-0.8B", "Qwen__Qwen3.5-27B", "Qwen__Qwen3.6-35B-A3B", "Qwen__Qwen3-Next-80B-A3B-Thinking"]
# (engine args, compute capability) for every GDN model at TP 1; the first model at TP 2 too
GDN_CASES: list[tuple[dict[str, Any], tuple[int, int]]] = [
    ({}, (9, 0)), ({}, (8, 0)), ({}, (8, 9)), ({}, (10, 0)), ({}, (12, 0)),
    ({"gdn_prefill_backend": "triton"}, (9, 0)), ({"gdn_prefill_backend": "flashinfer"}, (8, 6)),
    ({"gdn_prefill_backend": "flashinfer"}, (9, 0)), ({"gdn_prefill_backend": "cutedsl"}, (10, 0)),
    ({"enable_prefix_caching": False}, (9, 0)),
    ({"gdn_prefill_backend": "aiter_flydsl"}, (9, 0)), ({"gdn_prefill_backend": "sycl"}, (9, 0)),
]
# Nemotron-3 Nano is left out: its relu2 MoE has no CPU kernel (is_act_and_mul=False)
MAMBA = ["nvidia__Nemotron-H-8B-Base-8K", "nvidia__Nemotron-H-56B-Base-8K", "tiiuae__Falcon-H1-7B-Instruct"]
MAMBA_CASES: list[dict[str, Any]] = [
    {"use_replayssm": True}, {"use_replayssm": True, "enable_prefix_caching": False},
    {"use_replayssm": True, "mamba_backend": "flashinfer", "enable_prefix_caching": False},
    {"use_replayssm": True, "mamba_backend": "flashinfer"},
    {"use_replayssm": True, "replayssm_buffer_len": 32, "enable_prefix_caching": False},
    {"use_replayssm": True, "mamba_backend": "flashinfer", "replayssm_buffer_len": 32, "enable_prefix_caching": False},
    {},
    {"mamba_backend": "flashinfer"}, {"mamba_backend": "flashinfer", "mamba_ssu_algorithm": "horizontal"},
    {"mamba_ssu_algorithm": "simple"},
    {"enable_mamba_shared_prefix_checkpoint": True},
]
# cases run with vLLM's own variables set: Model Runner V2, CUDA's default (VllmConfig.use_v2_model_runner picks it
# where Triton is present, which the CPU build lacks)
ENV_CASES: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"use_replayssm": True}, {"VLLM_USE_V2_MODEL_RUNNER": "1"}),
    ({"use_replayssm": True, "mamba_backend": "flashinfer", "enable_prefix_caching": False},
     {"VLLM_USE_V2_MODEL_RUNNER": "1"}),
]
SEEN: dict[str, Any] = {}


def _cuda_for_gdn(cc: tuple[int, int]) -> None:
    """Give the GDN layer module a CUDA platform of capability `cc` (runtime 13); its other calls go to the CPU
    platform the rest of vLLM runs on."""
    import vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn as gdn
    from vllm.platforms import current_platform

    real = current_platform

    class CudaView:
        device_name = "cuda"  # CudaPlatform.device_name, which the refusals name

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def is_cuda(self) -> bool:
            return True

        def is_rocm(self) -> bool:
            return False

        def is_xpu(self) -> bool:
            return False

        def is_device_capability(self, c: Any, device_id: int = 0) -> bool:
            return (c if isinstance(c, int) else c[0] * 10 + c[1]) == cc[0] * 10 + cc[1]

        def is_device_capability_family(self, c: int, device_id: int = 0) -> bool:
            return (cc[0] * 10 + cc[1]) // 10 == c // 10

        def get_cuda_runtime_major(self) -> int:
            return 13

    gdn.current_platform = CudaView()  # type: ignore[assignment]


def _layer_row(spec: Any) -> dict[str, Any]:
    row = ORIG_LAYER_ROW(spec)
    for f in ("num_prefill_checkpoint_blocks", "prefill_checkpoint_alignment", "num_speculative_blocks"):
        if hasattr(spec, f):
            row[f] = getattr(spec, f)
    if hasattr(spec, "shapes"):
        row["shapes"] = [list(s) for s in spec.shapes]
        row["dtypes"] = [str(d).replace("torch.", "") for d in spec.dtypes]
        row["state_bytes"] = spec.state_content_size_bytes
    return row


def _specs(cfg: Any) -> dict[str, Any]:
    from vllm.config.vllm import get_layers_from_vllm_config
    from vllm.model_executor.layers.mamba.abstract import MambaBase

    SEEN["gdn_prefill_backend"] = sorted({getattr(la, "gdn_prefill_backend", "-") for la in
                                          get_layers_from_vllm_config(cfg, MambaBase).values()})  # type: ignore[type-abstract]
    SEEN["mamba_backend"] = str(cfg.mamba_config.backend.value)
    SEEN["use_v2_model_runner"] = bool(cfg.use_v2_model_runner)
    return ORIG_SPECS(cfg)


ORIG_LAYER_ROW = vo._layer_row
ORIG_SPECS = vo._specs


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """The layers by spec: one row per distinct spec with its layer count."""
    kinds: dict[str, dict[str, Any]] = {}
    for r in row.pop("layers").values():
        k = json.dumps(r, sort_keys=True)
        kinds.setdefault(k, dict(r, layers=0))["layers"] += 1
    row["layer_kinds"] = sorted(kinds.values(), key=lambda r: (r["kind"], -r["layers"]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help="model stems to run (default: all)")
    ap.add_argument("--tp", type=int, default=1, help="the cases of this TP degree (one process per degree: the fake "
                    "TP group is made once)")
    a = ap.parse_args()
    vo.setup()
    import vllm

    vo._layer_row = _layer_row
    vo._specs = _specs
    models = {os.path.basename(p)[:-5]: p for p in glob.glob(os.path.join(vo.MODELS, "*.json"))}
    runs: list[tuple[str, int, dict[str, Any], tuple[int, int] | None, dict[str, str]]] = []
    for m in GDN:
        runs += [(m, 1, ea, cc, {}) for ea, cc in GDN_CASES]
    runs += [(GDN[1], 2, ea, cc, {}) for ea, cc in GDN_CASES[:2]]
    for m in MAMBA:
        runs += [(m, 1, ea, None, {}) for ea in MAMBA_CASES]
    runs += [(MAMBA[0], 2, ea, None, {}) for ea in MAMBA_CASES[:3]]
    runs += [(MAMBA[0], 1, ea, None, env) for ea, env in ENV_CASES]
    doc: dict[str, Any] = {"cases": [], "unsupported": []}
    if os.path.exists(a.out):  # the other TP degrees' cases are kept
        doc = json.load(open(a.out))
        for k in ("cases", "unsupported"):
            doc[k] = [c for c in doc[k] if c["tp"] != a.tp]
    for stem, tp, ea, cc, env in runs:
        if tp != a.tp or (a.only and stem not in a.only):
            continue
        repo = json.load(open(models[stem]))["repo_id"]
        vo.EXTRA_ARGS.clear()
        vo.EXTRA_ARGS.update(ea)
        SEEN.clear()
        if cc:
            _cuda_for_gdn(cc)
        t = time.time()
        base = {"model": repo, "tp": tp, "engine_args": ea, "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
                "env": env}
        for k in ("VLLM_USE_V2_MODEL_RUNNER",):
            os.environ.pop(k, None)
        os.environ.update(env)
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                row = vo.run_one(models[stem], tp, "auto", [2.0, 16.0], 8192)
            row.pop("weights_bytes_rank0", None)
            row.pop("buffer_bytes_rank0", None)
            row["engine_args"] = ea
            row.update(base, **SEEN)
            doc["cases"].append(_summary(row))
            print(f"{repo} tp{tp} {ea} {cc}: {SEEN} {time.time() - t:.1f}s", file=sys.stderr)
        except Exception as e:  # what vLLM itself refuses, in its words
            if os.environ.get("VLLM_ORACLE_DEBUG"):
                raise
            lines = str(e).splitlines()
            first = next((x.strip() for x in lines[1:] if x.strip().startswith("Value error,")), lines[0]) \
                if lines and "validation error" in lines[0] else (lines[0] if lines else "")
            doc["unsupported"].append(dict(base, error=f"{type(e).__name__}: {first.split(' [type=')[0][:400]}"))
            print(f"{repo} tp{tp} {ea} {cc}: {doc['unsupported'][-1]['error']}", file=sys.stderr)
    doc.update(release=vllm.__version__, memory_note="memory_bytes is the KV budget handed to get_kv_cache_configs",
               produced_by=(
                   f"vLLM {vllm.__version__} wheel, tools/vllm_oracle.py's planning (EngineArgs.create_engine_config "
                   "with the case's engine_args, the model class on the meta device, each layer's get_kv_cache_spec, "
                   "Platform.update_block_size_for_backend, kv_cache_planning.get_global_kv_cache_groups / "
                   "get_kv_cache_configs, kv_cache_utils.get_kv_cache_capacity) at --max-model-len 8192, "
                   "max_num_batched_tokens 8192, max_num_seqs 256, KV budgets of 2 and 16 GiB; the GDN layer module "
                   "(qwen_gdn_linear_attn.py _resolve_gdn_prefill_backend) answered a CUDA GPU of the case's compute "
                   "capability and CUDA runtime 13; `env`: vLLM's variables set for the case; run on CPU: VLLM_TARGET_DEVICE=cpu python "
                   "tools/vllm_mamba_backend_oracle.py; unsupported: what vLLM raised"))
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
