"""The extensible KV cache's final sizing (vLLM 0.34.0), run through vLLM's own function on a CPU machine:
tests/data/vllm_extensible_kv_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_extensible_kv_oracle.py \
        --out tests/data/vllm_extensible_kv_oracle_v0.34.0.json

Per case: the memory figures a worker measures after warmup and CUDA-graph capture (free memory at the start-up
snapshot, what stays resident beyond the KV cache, the requested budget = total x gpu_memory_utilization, the
transient peak kept free, torch's reservation growth) handed to vllm/v1/worker/extensible_kv_cache.py
measure_kv_cache_bytes, and the bytes it gives the KV cache. The margin floor is CUDA's (1 GiB, the module's
KV_CACHE_MARGIN_FLOOR_BYTES off ROCm) unless a case passes ROCm's 3 GiB. Also CacheConfig's default utilization with
and without the extensible cache (resolved_gpu_memory_utilization) and its DEFAULT_BLOCK_SIZE, and the advice
kv_cache_planning.py _more_kv_cache_memory_hint gives in a refusal, with and without the cache, before and after
warmup.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

GIB = 1 << 30
TOTAL = 80 * GIB
# (init_free, resident, utilization, transient, torch_reserve_growth, margin floor or None)
CASES = [
    (int(79.2 * GIB), int(40.5 * GIB), 1.0, int(2.1 * GIB), 0, None),  # headroom binds, 0.75 x transient margin
    (int(79.2 * GIB), int(40.5 * GIB), 0.92, int(2.1 * GIB), 0, None),  # the budget binds
    (int(23.2 * GIB), int(19.4 * GIB), 1.0, int(0.8 * GIB), 0, None),  # a 24 GB card: the 1 GiB floor
    (int(23.2 * GIB), int(19.4 * GIB), 0.92, int(0.8 * GIB), 0, None),
    (int(23.2 * GIB), int(22.0 * GIB), 1.0, int(0.8 * GIB), 0, None),  # nothing left: 0
    (int(79.2 * GIB), int(10.0 * GIB), 1.0, int(6.0 * GIB), int(7.5 * GIB), None),  # reservation growth kept
    (int(79.2 * GIB), int(10.0 * GIB), 0.5, int(6.0 * GIB), 0, None),
    (int(191.0 * GIB), int(70.0 * GIB), 1.0, int(1.5 * GIB), 0, 3 * GIB),  # ROCm's floor
    (int(60.0 * GIB), int(30.0 * GIB), 0.9, int(4.0 * GIB), 0, 3 * GIB),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    vo.setup()
    import vllm
    from vllm.v1.worker import extensible_kv_cache as ekv
    out = []
    for init_free, resident, util, transient, growth, floor in CASES:
        requested = math.ceil(TOTAL * util)  # vllm/v1/worker/utils.py request_memory
        kw = dict(init_free_memory=init_free, free_memory=init_free - resident, committed_bytes=0,
                  requested_memory=requested, transient_peak_bytes=transient, torch_reserve_growth_bytes=growth)
        if floor is not None:
            kw["margin_floor_bytes"] = floor
        out.append({"total_bytes": TOTAL, "gpu_memory_utilization": util, "init_free_bytes": init_free,
                    "resident_bytes": resident, "requested_bytes": requested, "transient_peak_bytes": transient,
                    "torch_reserve_growth_bytes": growth,
                    "margin_floor_bytes": floor if floor is not None else ekv.KV_CACHE_MARGIN_FLOOR_BYTES,
                    "kv_cache_bytes": ekv.measure_kv_cache_bytes(**kw)})
    from vllm.config import CacheConfig
    defaults = {"gpu_memory_utilization_extensible": CacheConfig(enable_extensible_kv_cache=True)
                .resolved_gpu_memory_utilization,
                "gpu_memory_utilization_estimate": CacheConfig(enable_extensible_kv_cache=False)
                .resolved_gpu_memory_utilization,
                "block_size": CacheConfig.DEFAULT_BLOCK_SIZE}
    from types import SimpleNamespace
    from vllm.v1.core import kv_cache_planning as kcp
    hints = []
    for ext in (True, False):
        for util in (None, 0.9):
            for after in (False, True):
                cfg = SimpleNamespace(cache_config=CacheConfig(enable_extensible_kv_cache=ext,
                                                               gpu_memory_utilization=util))
                hints.append({"extensible": ext, "gpu_memory_utilization": util, "after_warmup": after,
                              "hint": kcp._more_kv_cache_memory_hint(cfg, after_warmup=after)})
    json.dump({"release": vllm.__version__, "margin_fraction": ekv.KV_CACHE_MARGIN_FRACTION,
               "cache_config_defaults": defaults, "refusal_hints": hints,
               "produced_by": "tools/vllm_extensible_kv_oracle.py: vllm/v1/worker/extensible_kv_cache.py "
                              "measure_kv_cache_bytes of the vllm wheel, run on CPU (VLLM_TARGET_DEVICE=cpu)",
               "cases": out}, open(args.out, "w"), indent=1)
    print(len(out), "cases")


if __name__ == "__main__":
    main()
