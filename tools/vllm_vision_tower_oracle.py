"""vLLM's own vision towers per TP rank, run on a CPU machine: the oracle for vramcalc/sources/vision.py's tower
counts and the part vLLM keeps whole on every TP rank (VisionSpec.replicated_params), written to
tests/data/vllm_vision_tower_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_vision_tower_oracle.py \
        --out tests/data/vllm_vision_tower_oracle_v0.34.0.json

For each catalog model (and each config of CONSTRUCTED, written into its cases) and TP degree: EngineArgs(...).create_engine_config, then the model class on the meta device
(tools/vllm_mm_oracle.py _build: initialize_model under set_current_vllm_config, a TP group of fake ranks). Written:
the parameter elements rank 0 holds under the tower modules (SupportsMultiModal._mark_tower_model's names), their
bytes and the tower's buffer bytes (the vision rotary cos_sin_cache), the model's parameter and buffer bytes, and,
at TP 1, transformers' own class for the same config on the meta device, its parameters under model.visual, and
at TP > 1, the tower parameters whose shape is the TP 1 shape (kept whole on every rank): their element count and
their names with the block index written N. The wheel is set up as tools/vllm_oracle.py setup does (torchvision's C
ops declared, the CPU platform told to plan as the CUDA build).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from vllm_oracle import MODELS, setup  # noqa: E402
import vllm_mm_oracle as mm  # noqa: E402

TOWER_MODELS = ["Qwen__Qwen2.5-VL-3B-Instruct", "Qwen__Qwen2.5-VL-7B-Instruct", "qwen2_vl-constructed"]
TPS = [1, 2, 4]
# Towers with no catalog copy: a flat config written here for the oracle alone (recorded in each case as "config"),
# not a published model's. Qwen2-VL: the Qwen2VLVisionConfig class defaults (transformers 5.24) but the merger's
# output (hidden_size) at the small Qwen2 text model's width.
CONSTRUCTED: dict[str, dict[str, Any]] = {
    "qwen2_vl-constructed": {
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
        "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
        "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_sliding_window": False,
        "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
                          "hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
    },
}


def _build(stem: str, tp: int) -> tuple[Any, Any, dict[str, Any] | None]:
    """tools/vllm_mm_oracle.py _build for a catalog stem; the same EngineArgs for a CONSTRUCTED config."""
    if stem not in CONSTRUCTED:
        return (*mm._build(stem, tp, {}), None)
    import tempfile

    orig = mm.MODELS
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, stem + ".json"), "w") as f:
            json.dump({"repo_id": stem, "config": CONSTRUCTED[stem]}, f)
        mm.MODELS = d
        try:
            return (*mm._build(stem, tp, {}), CONSTRUCTED[stem])
        finally:
            mm.MODELS = orig


def _tower(model: Any) -> tuple[list[str], dict[str, tuple[int, ...]], int]:
    towers = list(getattr(model, "_tower_model_names", []) or [])

    def under(name: str) -> bool:
        return any(name == t or name.startswith(t + ".") for t in towers)

    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if under(n)}
    buffers = sum(b.numel() * b.element_size() for n, b in model.named_buffers() if under(n))
    return towers, shapes, buffers


def _transformers_tower(config: dict[str, Any]) -> dict[str, Any]:
    """transformers' own class for the config on the meta device (as tools/param_oracle.py builds it): the parameters
    under its vision tower (model.visual)."""
    import torch
    import transformers
    from transformers import AutoConfig

    c = AutoConfig.for_model(config["model_type"], **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        model = getattr(transformers, config["architectures"][0])._from_config(c)
    n = sum(p.numel() for name, p in model.named_parameters() if name.startswith("model.visual."))
    return {"release": transformers.__version__, "params": n}


def case(stem: str, tp: int) -> tuple[dict[str, Any], Any]:
    cfg, model, constructed = _build(stem, tp)
    repo = stem if constructed else json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
    towers, shapes, tower_buffers = _tower(model)
    params = dict(model.named_parameters())
    out: dict[str, Any] = {
        "model": repo, "architecture": type(model).__name__, "tp": tp,
        "dtype": str(cfg.model_config.dtype).replace("torch.", ""),
        "mm_encoder_tp_mode": cfg.model_config.multimodal_config.mm_encoder_tp_mode,
        "tower_modules": towers,
        "tower_params_rank0": sum(math.prod(s) for s in shapes.values()),
        "tower_param_bytes_rank0": sum(params[n].numel() * params[n].element_size() for n in shapes),
        "tower_buffer_bytes_rank0": tower_buffers,
        "param_bytes_rank0": mm._bytes(model.named_parameters()),
        "buffer_bytes_rank0": mm._bytes(model.named_buffers()),
    }
    if constructed:
        out["config"] = constructed
    if tp == 1:
        out["transformers_tower_params"] = _transformers_tower(
            constructed or json.load(open(os.path.join(MODELS, stem + ".json")))["config"])
    return out, shapes


def _one(stem: str, tp: int) -> None:
    """One build in this process (the fake TP group is sized once per process): the case and the tower shapes."""
    setup()
    c, shapes = case(stem, tp)
    print(json.dumps({"case": c, "shapes": {n: list(s) for n, s in shapes.items()}}))


def main() -> None:
    import subprocess

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=TOWER_MODELS)
    ap.add_argument("--tp", nargs="*", type=int, default=TPS)
    ap.add_argument("--one", nargs=2, metavar=("STEM", "TP"), help=argparse.SUPPRESS)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.one:
        return _one(a.one[0], int(a.one[1]))
    assert a.out, "--out is required"
    setup()
    import vllm

    doc: dict[str, Any] = {"cases": [], "failed": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    doc.update(release=vllm.__version__, produced_by=(
        f"vLLM {vllm.__version__} wheel run on CPU with VLLM_TARGET_DEVICE=cpu (tools/vllm_vision_tower_oracle.py): "
        "EngineArgs(...).create_engine_config, the model class built on the meta device under "
        "set_current_vllm_config (TP group of fake ranks, one process per TP degree); the parameters of rank 0 "
        "under the tower modules (_mark_tower_model), and at TP > 1 those whose shape is the TP 1 shape (kept whole "
        "on every rank); at TP 1 also transformers' own class for the same config on the meta device, its parameters "
        "under model.visual (transformers_tower_params); qwen2_vl-constructed is a config written in the tool "
        "(CONSTRUCTED), not a published model's"))
    for stem in a.models:
        at_tp1: dict[str, list[int]] | None = None
        for tp in sorted(set(a.tp) | {1}):
            run = subprocess.run([sys.executable, __file__, "--one", stem, str(tp)], capture_output=True, text=True)
            if run.returncode:
                err = (run.stderr.strip().splitlines() or ["?"])[-1]
                doc["failed"] = [x for x in doc["failed"] if (x["model"], x["tp"]) != (stem, tp)]
                doc["failed"].append({"model": stem, "tp": tp, "error": err[:300]})
                print(stem, tp, "FAILED", err[:300], flush=True)
                continue
            got = json.loads(run.stdout.strip().splitlines()[-1])
            c, shapes = got["case"], got["shapes"]
            if tp == 1:
                at_tp1 = shapes
            elif at_tp1 is not None:
                whole = [n for n, sh in shapes.items() if at_tp1.get(n) == sh]
                c["tower_whole_params_rank0"] = sum(math.prod(shapes[n]) for n in whole)
                c["tower_whole_names"] = sorted({re.sub(r"\.\d+\.", ".N.", n) for n in whole})
            if tp not in a.tp:
                continue
            doc["cases"] = [x for x in doc["cases"] if (x["model"], x["tp"]) != (c["model"], c["tp"])] + [c]
            print(c["model"], tp, c["tower_params_rank0"], c.get("tower_whole_params_rank0"), flush=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
