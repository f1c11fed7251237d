"""vLLM's own reading of --hf-config-path, run on a CPU machine: the oracle for vramcalc/pasted_command.py, which
sizes a `vllm serve MODEL --hf-config-path PATH` command from PATH's config.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_hf_config_path_oracle.py \
        --out tests/data/vllm_hf_config_path_oracle_v0.33.0.json

For each pair of catalog configs (vramcalc/data/models/*.json) it writes the first as the model's folder and the
second as the config folder, builds vLLM's VllmConfig with EngineArgs(model=MODEL, hf_config_path=CONFIG)
.create_engine_config (vllm/config/model.py ModelConfig.__post_init__: get_config(hf_config_path or model)), builds
the model class on the meta device (tools/vllm_oracle.py meta_models) and records the architecture, layer count,
hidden size and dtype vLLM took and the bytes of the parameters it allocates on rank 0. Only figures are written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from vllm_oracle import MODELS, _init_group, _torchvision_stub, meta_models  # noqa: E402

PAIRS = [  # (the model's own config, the --hf-config-path config)
    ("meta-llama__Llama-3.2-3B-Instruct", "Qwen__Qwen3-8B"),
    ("Qwen__Qwen3-8B", "meta-llama__Llama-3.1-8B-Instruct"),
    ("mistralai__Mistral-7B-Instruct-v0.3", "microsoft__Phi-3-mini-4k-instruct"),
]


def run_one(model_stem: str, config_stem: str) -> dict[str, Any]:
    import torch
    from vllm.engine.arg_utils import EngineArgs
    from vllm.model_executor.model_loader.utils import initialize_model

    entries = [json.load(open(os.path.join(MODELS, s + ".json"))) for s in (model_stem, config_stem)]
    with tempfile.TemporaryDirectory() as model_dir, tempfile.TemporaryDirectory() as config_dir:
        for d, e in zip((model_dir, config_dir), entries):
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(e["config"], f)
        torch.cpu._is_avx512_bf16_supported = lambda: False
        ea = EngineArgs(model=model_dir, hf_config_path=config_dir, skip_tokenizer_init=True, load_format="dummy",
                        max_model_len=4096, max_num_batched_tokens=8192, distributed_executor_backend="uni")
        cfg = ea.create_engine_config()
        _init_group(1, cfg)
        with meta_models(cfg):
            model = initialize_model(vllm_config=cfg)
        mc = cfg.model_config
        return {"model": entries[0]["repo_id"], "hf_config_path": entries[1]["repo_id"],
                "architecture": mc.architecture, "num_layers": mc.get_num_layers(cfg.parallel_config),
                "hidden_size": mc.get_hidden_size(), "dtype": str(mc.dtype).replace("torch.", ""),
                "weights_bytes_rank0": sum(p.numel() * p.element_size() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    _torchvision_stub()
    import vllm

    doc = {"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel run on CPU with VLLM_TARGET_DEVICE=cpu: EngineArgs(model=MODEL_DIR, "
        "hf_config_path=CONFIG_DIR).create_engine_config, the model class built on the meta device; the "
        "architecture, layers, hidden size and dtype of its ModelConfig and its parameter bytes "
        "(tools/vllm_hf_config_path_oracle.py)"), "cases": [run_one(m, c) for m, c in PAIRS]}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
