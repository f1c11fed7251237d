"""--kv-transfer-config, planned by vLLM's own code on a CPU machine: tests/data/vllm_kv_transfer_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_kv_transfer_oracle.py \
        --out tests/data/vllm_kv_transfer_oracle_v0.33.0.json

`connectors`: for every connector the release registers (vllm/distributed/kv_transfer/kv_connector/factory.py),
whether it supports the hybrid KV cache manager (KVConnectorFactory.supports_hma_config, as VllmConfig asks it
before turning the manager off), or why its class does not load on this machine.
`cases`: the config built as `vllm serve` builds it (EngineArgs.create_engine_config) with the case's fields, and the
KV cache planned at each budget on the model built on the meta device (tools/vllm_oracle.py run_one); `unsupported`:
vLLM's refusal, in its words.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402
from vllm_oracle_fixture import fold  # noqa: E402


def _kt(name: str, **kw: Any) -> dict[str, Any]:
    return {"kv_connector": name, "kv_role": "kv_both", **kw}


# (catalog file stem, EngineArgs fields); TP 1
CASES: list[tuple[str, dict[str, Any]]] = [
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("NixlConnector")}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("OffloadingConnector")}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("LMCacheConnectorV1")}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("MooncakeConnector")}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("ExampleConnector")}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("MultiConnector", kv_connector_extra_config={
        "connectors": [_kt("NixlConnector"), _kt("OffloadingConnector")]})}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("NixlConnector"), "disable_hybrid_kv_cache_manager": False}),
    ("google__gemma-3-1b-it", {}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("LMCacheConnectorV1"), "disable_hybrid_kv_cache_manager": False}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": {"kv_connector": "NixlConnector"}}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("FooConnector")}),
    ("google__gemma-3-1b-it", {"kv_transfer_config": _kt("NixlConnector", kv_buffer_device="cpu")}),
    ("Qwen__Qwen3-0.6B", {"kv_transfer_config": _kt("NixlConnector")}),
    ("Qwen__Qwen3-0.6B", {}),
    ("openai__gpt-oss-20b", {"kv_transfer_config": _kt("NixlConnector")}),
    ("openai__gpt-oss-20b", {}),
    ("openai__gpt-oss-20b", {"kv_transfer_config": _kt("LMCacheConnectorV1")}),
]


def _connectors() -> dict[str, Any]:
    from vllm.config.kv_transfer import KVTransferConfig
    from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory

    out: dict[str, Any] = {}
    for name in sorted(KVConnectorFactory._registry):
        row: dict[str, Any] = {}
        try:
            cfg = KVTransferConfig(kv_connector=name, kv_role="kv_both")
            row["supports_hma"] = bool(KVConnectorFactory.supports_hma_config(cfg))
        except Exception as e:  # the class's imports need what this machine lacks
            row["class_error"] = vo.refusal_text(e, 200)
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory-gib", nargs="*", type=float, default=[2.0, 16.0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "unsupported": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: KVConnectorFactory.supports_hma_config for each registered connector, and "
        "EngineArgs.create_engine_config with each case's fields as `vllm serve` parses the flags, the model built "
        "on the meta device and its KV cache planned (tools/vllm_oracle.py run_one); run on CPU: "
        "VLLM_TARGET_DEVICE=cpu python tools/vllm_kv_transfer_oracle.py")}
    doc["connectors"] = _connectors()
    for stem, args in CASES:
        path = os.path.join(vo.MODELS, stem + ".json")
        repo = json.load(open(path))["repo_id"]
        vo.EXTRA_ARGS.clear()
        vo.EXTRA_ARGS.update(copy.deepcopy(args))
        vo.record_case(doc, a.out, "unsupported", {"model": repo, "tp": 1, "engine_args": args},
                       lambda: fold({**vo.run_one(path, 1, "auto", a.memory_gib, None), "engine_args": args}, set()),
                       f"{repo} {args}")


if __name__ == "__main__":
    main()
