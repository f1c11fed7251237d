"""VLLM_ALLREDUCE_USE_SYMM_MEM: the TP all-reduce buffers with and without PyTorch symmetric memory, from vLLM's own
constants and signatures on a CPU machine: tests/data/vllm_symm_mem_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_symm_mem_oracle.py \
        --out tests/data/vllm_symm_mem_oracle_v0.33.0.json

Read from the wheel (vllm/distributed/device_communicators): SymmMemCommunicator's buffer, SYMM_MEM_ALL_REDUCE_MAX_SIZES
[capability][TP] bytes (symm_mem.py __init__: torch_symm_mem.empty; absent capability or TP: no buffer); and
CustomAllreduce's two IPC buffers (custom_all_reduce.py __init__): the metadata buffer, meta_size() + max_size, where
max_size is the default max_size (8 MiB) or, with symmetric memory on, min(CUSTOM_ALL_REDUCE_MAX_SIZES[capability][TP],
max_size); and the staging buffer, max(max_size, max_all_gather_size, max_reduce_scatter_size), whose defaults are read
from the signature. meta_size() is a CUDA op (not on the CPU wheel) and the same in both cases, so it is left out.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

TPS = (2, 4, 6, 8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm
    from vllm.distributed.device_communicators import all_reduce_utils as aru
    from vllm.distributed.device_communicators.custom_all_reduce import CustomAllreduce

    sig = inspect.signature(CustomAllreduce.__init__).parameters
    ca_default = sig["max_size"].default
    gather = sig["max_all_gather_size"].default
    scatter = sig["max_reduce_scatter_size"].default
    rows: list[dict[str, Any]] = []
    caps = sorted(set(aru.SYMM_MEM_ALL_REDUCE_MAX_SIZES) | set(aru.CUSTOM_ALL_REDUCE_MAX_SIZES) | {"8.0", "8.9", "12.0"})
    for cc in caps:
        for tp in TPS:
            symm = aru.SYMM_MEM_ALL_REDUCE_MAX_SIZES.get(cc, {}).get(tp, 0)
            on = ca_default
            if symm and tp in aru.CUSTOM_ALL_REDUCE_MAX_SIZES.get(cc, {}):
                on = min(aru.CUSTOM_ALL_REDUCE_MAX_SIZES[cc][tp], ca_default)
            stage = {k: max(m, max(gather.values()) if isinstance(gather, dict) else gather, scatter)
                     for k, m in (("on", on), ("off", ca_default))}
            rows.append({"compute_capability": cc, "tp": tp, "symm_mem_buffer_bytes": symm,
                         "custom_allreduce_max_size": {"on": on, "off": ca_default},
                         "custom_allreduce_staging_bytes": stage})
    doc = {"release": vllm.__version__, "cases": rows, "produced_by": (
        f"vLLM {vllm.__version__} wheel: vllm/distributed/device_communicators/all_reduce_utils.py "
        "SYMM_MEM_ALL_REDUCE_MAX_SIZES, CUSTOM_ALL_REDUCE_MAX_SIZES and CustomAllreduce.__init__'s defaults, read "
        "on CPU: VLLM_TARGET_DEVICE=cpu python tools/vllm_symm_mem_oracle.py")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
