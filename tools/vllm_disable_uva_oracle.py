"""VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 with --cpu-offload-gb, run through vLLM's own UVA offloader on a CPU machine:
tests/data/vllm_disable_uva_oracle_v0.33.0.json.

    for tp in 1 2; do VLLM_TARGET_DEVICE=cpu VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 \
        /work/venvs/vllm-0.33.0/bin/python tools/vllm_disable_uva_oracle.py --tp $tp \
        --out tests/data/vllm_disable_uva_oracle_v0.33.0.json; done

Per case: the model built on the meta device as tools/vllm_cpu_offload_oracle.py builds it (the offloader vLLM's model
runner installs, the decoder layers wrapped by make_layers), with the variable set, so UVAOffloader.uva_offloading is
False (vllm/model_executor/offloader/uva.py UVAOffloader.__init__). Without UVA each module that had a parameter
moved gets a forward that copies its whole state_dict to the GPU (the parameters on the host are real copies, the
others no-ops) and runs functional_call on the copy: what one module's forward holds on the GPU beyond the resident
weights is the bytes _maybe_offload_to_cpu moved from that module. Recorded per case: that count for each wrapped
module (the growth of UVAOffloader.cpu_offload_bytes across its _maybe_offload_to_cpu call), whether vLLM replaced
its forward, the largest, and the total.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_cpu_offload_oracle as co  # noqa: E402
import vllm_oracle as vo  # noqa: E402

# (catalog file stem, TP, EngineArgs fields)
CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("Qwen__Qwen3-8B", 1, {"cpu_offload_gb": 4}),
    ("Qwen__Qwen3-8B", 1, {"cpu_offload_gb": 0.1}),  # less than one layer: part of layer 0
    ("Qwen__Qwen3-8B", 1, {"cpu_offload_gb": 1000}),
    ("Qwen__Qwen3-30B-A3B", 1, {"cpu_offload_gb": 2, "cpu_offload_params": ["experts"]}),
    ("Qwen__Qwen3-30B-A3B", 1, {"cpu_offload_gb": 20}),
    ("Qwen__Qwen3-30B-A3B", 2, {"cpu_offload_gb": 1000, "cpu_offload_params": ["experts"]}),
    ("Qwen__Qwen3-30B-A3B", 2, {"cpu_offload_gb": 0.5, "cpu_offload_params": ["experts"]}),
    ("mistralai__Mixtral-8x7B-Instruct-v0.1", 2, {"cpu_offload_gb": 10}),
    ("Qwen__Qwen3-8B", 2, {"cpu_offload_gb": 3}),
]


def _one(stem: str, tp: int, args: dict[str, Any]) -> dict[str, Any]:
    from vllm.model_executor.offloader.uva import UVAOffloader

    entry, config = vo.flag_case_config(stem, args)
    per_module: list[dict[str, Any]] = []
    original = UVAOffloader._maybe_offload_to_cpu

    def counting(self: Any, module: Any, prefix: str = "") -> Any:
        before = self.cpu_offload_bytes
        out = original(self, module, prefix)
        per_module.append({"prefix": prefix, "moved_bytes": int(self.cpu_offload_bytes - before),
                           "forward_replaced": "forward" in vars(module)})  # the instance's own forward
        return out

    UVAOffloader._maybe_offload_to_cpu = counting  # type: ignore[method-assign]
    try:
        with co.offloaded_model(config, tp) as (cfg, off, _):
            pass
    finally:
        UVAOffloader._maybe_offload_to_cpu = original  # type: ignore[method-assign]
    assert isinstance(off, UVAOffloader) and not off.uva_offloading, "run with VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1"
    moved = [m["moved_bytes"] for m in per_module]
    return {"model": entry["repo_id"], "tp": tp, "engine_args": args, "dtype": str(cfg.model_config.dtype),
            "uva_offloading": off.uva_offloading, "cpu_offload_bytes": int(off.cpu_offload_bytes),
            "modules_moved_bytes": moved, "largest_module_copy_bytes": max(moved, default=0),
            "forward_replaced": [m["forward_replaced"] for m in per_module]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tp", type=int, default=1, help="the cases at this TP (the fake group is made once a process)")
    ap.add_argument("--out", required=True, help="JSON file to write (merged with what it holds)")
    a = ap.parse_args()
    assert os.environ.get("VLLM_WEIGHT_OFFLOADING_DISABLE_UVA") == "1", "set VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1"
    vo.setup()
    co._meta_copies()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "unsupported": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: EngineArgs.create_engine_config with each case's --cpu-offload-gb / "
        "--cpu-offload-params, create_offloader / set_offloader as the model runner calls them, the model built on the "
        "meta device under a TP group of fake ranks (tools/vllm_oracle.py), UVAOffloader's own count per wrapped "
        "module; run on CPU: VLLM_TARGET_DEVICE=cpu VLLM_WEIGHT_OFFLOADING_DISABLE_UVA=1 "
        "python tools/vllm_disable_uva_oracle.py --tp N")}
    vo.run_flag_cases(doc, a.out, CASES, a.tp, _one)


if __name__ == "__main__":
    main()
