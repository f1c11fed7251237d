"""vLLM 0.34.0's own defaults for the GPU buffers of a weight update (--weight-transfer-config), run on a CPU machine:
the oracle for vramcalc/vllm/weight_transfer.py, written to tests/data/vllm_weight_transfer_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_weight_transfer_oracle.py \
        --out tests/data/vllm_weight_transfer_oracle_v0.34.0.json

Read from vLLM's modules, not from vramcalc: the backends WeightTransferEngineFactory registers (factory.py); the
packed defaults of packed_tensor.py (DEFAULT_PACKED_BUFFER_SIZE_BYTES, DEFAULT_PACKED_NUM_BUFFERS); the dataclass
defaults of each backend's trainer-side and worker-side init info (nccl_engine.py NCCLTrainerInitInfo, nccl_common.py
NCCLWeightTransferInitInfo, ipc_engine.py IPCTrainerInitInfo / IPCWeightTransferInitInfo, sharded_rdt_engine.py
ShardedRDTWeightTransferInitInfo); and sharded_rdt_common.py buffer_alloc_bytes called for a one-byte chunk at the
default presize (the smallest ring slot it allocates). `figures` holds each backend's receive buffers on one worker at
those defaults as vLLM's consumers take them: NCCL packed, packed_num_buffers slots of packed_buffer_size_bytes
(packed_tensor.py packed_nccl_broadcast_consumer); IPC at its default packed=False maps the trainer's tensors and
holds none of its own, packed clones one chunk of up to packed_buffer_size_bytes (packed_ipc_consumer); sharded_rdt,
num_rdt_buffers ring slots of buffer_alloc_bytes (sharded_rdt_engine.py _preregister_at_init).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from vllm_oracle import setup  # noqa: E402


def _defaults(cls: Any) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING and isinstance(f.default, (bool, int, float))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    setup()
    import vllm
    from vllm.distributed.weight_transfer import packed_tensor
    from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory
    from vllm.distributed.weight_transfer.ipc_engine import IPCTrainerInitInfo, IPCWeightTransferInitInfo
    from vllm.distributed.weight_transfer.nccl_common import NCCLWeightTransferInitInfo
    from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo
    from vllm.distributed.weight_transfer.sharded_rdt_common import buffer_alloc_bytes
    from vllm.distributed.weight_transfer.sharded_rdt_engine import ShardedRDTWeightTransferInitInfo

    nccl, ipc, rdt = _defaults(NCCLTrainerInitInfo), _defaults(IPCTrainerInitInfo), \
        _defaults(ShardedRDTWeightTransferInitInfo)
    presize = int(rdt["buffer_presize_gb"] * (1 << 30))
    slot = buffer_alloc_bytes(1, presize)
    out = {
        "release": vllm.__version__.split("+")[0],
        "produced_by": "tools/vllm_weight_transfer_oracle.py (vLLM's own module constants and dataclass defaults, "
                       "VLLM_TARGET_DEVICE=cpu)",
        "backends": list(WeightTransferEngineFactory._registry),
        "packed_tensor": {"DEFAULT_PACKED_BUFFER_SIZE_BYTES": packed_tensor.DEFAULT_PACKED_BUFFER_SIZE_BYTES,
                          "DEFAULT_PACKED_NUM_BUFFERS": packed_tensor.DEFAULT_PACKED_NUM_BUFFERS},
        "defaults": {"NCCLTrainerInitInfo": nccl, "NCCLWeightTransferInitInfo": _defaults(NCCLWeightTransferInitInfo),
                     "IPCTrainerInitInfo": ipc, "IPCWeightTransferInitInfo": _defaults(IPCWeightTransferInitInfo),
                     "ShardedRDTWeightTransferInitInfo": rdt},
        "sharded_rdt_min_slot_bytes": slot,
        "figures": {
            "nccl": nccl["packed_buffer_size_bytes"] * nccl["packed_num_buffers"] if nccl["packed"] else None,
            "ipc": ipc["packed_buffer_size_bytes"] if ipc["packed"] else 0,
            "ipc_packed": ipc["packed_buffer_size_bytes"],
            "sharded_rdt": rdt["num_rdt_buffers"] * slot,
        },
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
