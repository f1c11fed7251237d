"""--load-format, read by vLLM's own loader registry on a CPU machine: tests/data/vllm_load_format_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_load_format_oracle.py \
        --out tests/data/vllm_load_format_oracle_v0.33.0.json

Per value (the release's LoadFormats, the formats of older releases' commands, and one it has never had):
LoadConfig(load_format=value) as `vllm serve` builds it, the loader vllm/model_executor/model_loader/__init__.py
get_model_loader returns (or its refusal, in its words), and whether that loader's load_model is
BaseModelLoader.load_model (create_model -> initialize_model, the same model class on the device whatever the
format, then load_weights into it: the resident weights do not depend on the format).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

OLDER = ["bitsandbytes", "gguf", "fastsafetensor", "nonexistent_format"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm
    from vllm.config.load import LoadConfig
    from vllm.model_executor import model_loader as ml
    from vllm.model_executor.model_loader.base_loader import BaseModelLoader

    values = list(typing.get_args(ml.LoadFormats)) + OLDER
    rows = {}
    for v in values:
        row: dict[str, typing.Any] = {"in_load_formats": v in typing.get_args(ml.LoadFormats)}
        try:
            loader = ml.get_model_loader(LoadConfig(load_format=v))
            row["loader"] = type(loader).__name__
            row["base_load_model"] = type(loader).load_model is BaseModelLoader.load_model
        except Exception as e:  # the refusal, in vLLM's words
            row["error"] = vo.refusal_text(e, 300)
        rows[v] = row
    doc = {"release": vllm.__version__, "formats": rows, "produced_by": (
        f"vLLM {vllm.__version__} wheel: LoadConfig and model_loader.get_model_loader for each value, and whether the "
        "loader's load_model is BaseModelLoader.load_model; run on CPU: VLLM_TARGET_DEVICE=cpu python "
        "tools/vllm_load_format_oracle.py")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
