"""vLLM's own model classes for configs whose model_type vramcalc has no reader for: what vramcalc's generic
(Llama-style) reading of such a config would have to match.

For each config in the input file (model type, where the config is published, the config), it builds vLLM's
VllmConfig (EngineArgs.create_engine_config through tools/vllm_oracle.py _config) at TP 1, the model class on the
meta device (tools/vllm_oracle.py meta_engine) and records the parameters of rank 0 (count and bytes) and each
layer's KV cache spec as GPUModelRunner.get_kv_cache_spec takes it (tools/vllm_oracle.py _specs): kind, page size,
block size, and the bytes per token (page_size_bytes / block_size). A config vLLM refuses, or a class it cannot
build on this CPU machine, is recorded with its error.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_generic_fallback_oracle.py \
        --configs tests/data/vllm_generic_fallback_oracle_v0.34.0.json --out tests/data/vllm_generic_fallback_oracle_v0.34.0.json

(the fixture keeps each case's config and source, so it is its own input; --only NAME... redoes those cases.)
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402


class _NoStream:
    """torch.cuda.Stream / Event on a machine without CUDA (as tools/vllm_prefetch_offload_oracle.py): some model
    classes make side streams at construction (vLLM 0.34.0 vllm/models/kimi_k3/nvidia/model.py, deepseek_v4); they
    hold no memory and nothing runs on them here."""

    def __init__(self, *a: Any, **k: Any) -> None:
        pass


def _one(config: dict[str, Any], engine_args: dict[str, Any]) -> dict[str, Any]:
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(engine_args)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            cfg = vo._config(d, 1, "auto", 4096)
        model, backends = vo.meta_engine(cfg, 1)
        specs = vo._specs(cfg)
        row: dict[str, Any] = {
            "architecture": cfg.model_config.architectures[0],
            "model_class": type(model).__name__,
            "dtype": str(cfg.model_config.dtype).replace("torch.", ""),
            "params_rank0": sum(p.numel() for p in model.parameters()),
            "weights_bytes_rank0": sum(p.numel() * p.element_size() for p in model.parameters()),
            "buffer_bytes_rank0": sum(b.numel() * b.element_size() for b in model.buffers()),
            "attention_backends": backends,
            "kv_layers": {}}
        from vllm.v1.kv_cache_interface import AttentionSpec

        for name, spec in specs.items():
            r = vo._layer_row(spec)
            if isinstance(spec, AttentionSpec):  # a page holds block_size tokens
                r["bytes_per_token"] = spec.page_size_bytes / spec.block_size
            else:  # a recurrent state (MambaSpec): one page per sequence, padded to the attention page
                r["state_page_bytes"] = spec.page_size_bytes
            row["kv_layers"][name] = r
        row["kv_bytes_per_token_all_layers"] = sum(r.get("bytes_per_token", 0) for r in row["kv_layers"].values())
        del model
        return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    vo.setup()
    import torch
    import vllm

    torch.cuda.Stream = _NoStream  # type: ignore[assignment, misc]
    torch.cuda.Event = _NoStream  # type: ignore[assignment, misc]

    inp = json.load(open(a.configs))
    old = json.load(open(a.out)) if os.path.exists(a.out) else {"cases": []}
    done = {c["name"]: c for c in old["cases"]}
    cases = []
    for case in inp["cases"]:
        if a.only and case["name"] not in a.only and case["name"] in done:
            cases.append(done[case["name"]])
            continue
        row = {k: case[k] for k in ("name", "model_type", "source", "config") if k in case}
        if case.get("engine_args"):
            row["engine_args"] = case["engine_args"]
        if case.get("env"):  # vLLM's own switches a case needs on this machine (kept in the row)
            os.environ.update(case["env"])
            row["env"] = case["env"]
        try:
            row["vllm"] = _one(case["config"], case.get("engine_args", {}))
        except Exception as e:  # what vLLM refused or could not build here, in its words
            if os.environ.get("VLLM_ORACLE_DEBUG"):
                traceback.print_exc()
            row["error"] = vo.refusal_text(e, 400)
        cases.append(row)
        print(row["name"], row.get("error") or (row["vllm"]["params_rank0"], row["vllm"]["kv_bytes_per_token_all_layers"]),
              file=sys.stderr)
    doc = {"release": vllm.__version__, "tp": 1, "cases": cases,
           "produced_by": (f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), "
                           "tools/vllm_generic_fallback_oracle.py: EngineArgs(model=<the config>, load_format=dummy, "
                           "tensor_parallel_size=1, max_model_len=4096).create_engine_config(), the model class built "
                           "on the meta device (tools/vllm_oracle.py meta_engine), params_rank0 = the sum of its "
                           "parameters' numel, weights_bytes_rank0 / buffer_bytes_rank0 their bytes and the buffers' (the rotary cache), kv_layers = each layer's KV cache spec (tools/vllm_oracle.py _specs, "
                           "as GPUModelRunner.get_kv_cache_spec), bytes_per_token = page_size_bytes / block_size of "
                           "each attention spec (a recurrent spec's page is its state_page_bytes); a case's engine_args "
                           "(EngineArgs fields) and env (vLLM's own switches) are named in its row; torch.cuda.Stream "
                           "and Event stubbed (the side streams some classes make hold no memory)")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
