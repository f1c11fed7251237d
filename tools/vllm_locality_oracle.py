"""VLLM_USE_LOCALITY_DOMAINS=1 with vLLM 0.34.0's own stack, run on a CPU machine:
tests/data/vllm_locality_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu VLLM_USE_LOCALITY_DOMAINS=1 /work/venvs/vllm-0.34.0/bin/python tools/vllm_locality_oracle.py \
        > tests/data/vllm_locality_oracle_v0.34.0.json

Records what the wheel pins (its METADATA: torch, flashinfer-python), what vllm/distributed/localization.py
localized_moe_unsupported_reason answers for the installed torch (execute_on_streams) and FlashInfer, and what
maybe_init_localized_resources returns (the worker calls it before the weights load; None: nothing localized, no
pool, the full-width MoE path), with the variable set."""

import json
import os
import sys
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    assert os.environ.get("VLLM_USE_LOCALITY_DOMAINS") == "1", "set VLLM_USE_LOCALITY_DOMAINS=1"
    import vllm_oracle

    vllm_oracle.setup()
    import torch
    import vllm
    from vllm.distributed import localization

    pins = sorted(r.split(";")[0].strip() for r in metadata.requires("vllm") or []
                  if r.startswith(("torch==", "flashinfer-python")) and "extra ==" not in r)
    print(json.dumps({"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu, VLLM_USE_LOCALITY_DOMAINS=1), "
        "tools/vllm_locality_oracle.py: the wheel's pinned torch and FlashInfer (importlib.metadata.requires), "
        "localization.py localized_moe_unsupported_reason and maybe_init_localized_resources"),
        "pins": pins, "torch_here": torch.__version__,
        "localization_enabled": localization.localization_enabled(),
        "torch_has_execute_on_streams": hasattr(torch.cuda, "execute_on_streams"),
        "unsupported_reason": localization.localized_moe_unsupported_reason(),
        "resources": repr(localization.maybe_init_localized_resources(torch.device("cuda", 0)))}, indent=1))


if __name__ == "__main__":
    main()
