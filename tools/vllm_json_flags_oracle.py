"""The JSON-object serve flags --additional-config, --model-loader-extra-config, --model-class-overrides,
--weight-transfer-config, --engram-config, --diffusion-config, --ec-transfer-config and --ec-manager-config, read by
vLLM's own code on a CPU machine: tests/data/vllm_json_flags_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_json_flags_oracle.py \
        --out tests/data/vllm_json_flags_oracle_v0.33.0.json

Each case is a catalog model and the serve arguments after it. They are parsed by vLLM's own parser
(EngineArgs.add_cli_args on a FlexibleArgumentParser: the JSON is read and the config class built as `vllm serve`
does, its refusal kept as argparse words it), turned into the VllmConfig (EngineArgs.from_cli_args,
create_engine_config), and then taken through what the engine builds from each setting before the KV cache is
sized or when it starts:
  the loader: vllm/model_executor/model_loader/__init__.py get_model_loader(load_config) (its __init__ checks
      model_loader_extra_config's keys and values);
  the weight-transfer engine: vllm/distributed/weight_transfer/factory.py WeightTransferEngineFactory.create_engine,
      as vllm/v1/worker/gpu_worker.py load_model calls it (the device tensors it holds then are counted);
  the EC connector class: vllm/distributed/ec_transfer/ec_connector/factory.py get_connector_class, which the
      scheduler calls whenever ec_transfer_config is set (vllm/v1/core/sched/scheduler.py Scheduler.__init__);
  the model class: the registry's resolution of the model's architecture after model_class_overrides are
      registered (vllm/config/model.py ModelConfig.registry).
The row records what each yields (vLLM's error, as its type and message, or the facts read back).

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_json_flags_oracle.py \
        --registry vramcalc/data/vllm_model_classes.json

writes the class vLLM registers for each architecture (vllm/model_executor/models/registry.py _VLLM_MODELS, the
module resolved as ModelRegistry does, _resolve_module_name), the "module:class" an override must name to leave the
model as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

J = json.dumps
Q3 = "Qwen/Qwen3-0.6B"
VL = "Qwen/Qwen3-VL-2B-Instruct"
NEXT = "Qwen/Qwen3.5-0.8B"
CASES: list[tuple[str, list[str]]] = [
    # --additional-config: a free dict (VllmConfig.additional_config); the GDN flag written into it
    (Q3, ["--additional-config", J({"foo": 1, "bar": {"x": 2}})]),
    (Q3, ["--additional-config", J({})]),
    (NEXT, ["--additional-config", J({"gdn_prefill_backend": "triton"})]),
    (NEXT, ["--additional-config", J({"gdn_prefill_backend": "triton"}), "--gdn-prefill-backend", "flashinfer"]),
    (NEXT, ["--gdn-prefill-backend", "triton", "--additional-config", J({"gdn_prefill_backend": "flashinfer"})]),
    (Q3, ["--additional-config", J({"decode_backend": "auto", "kda_prefill_backend": "triton"})]),
    (Q3, ["--additional-config", "[1, 2]"]),
    (Q3, ["--additional-config", "not json"]),
    # --model-loader-extra-config: each loader's own keys (model_loader/*.py __init__)
    (Q3, ["--model-loader-extra-config", J({})]),
    (Q3, ["--load-format", "auto", "--model-loader-extra-config", J({"enable_multithread_load": True,
                                                                     "num_threads": 4})]),
    (Q3, ["--load-format", "safetensors", "--model-loader-extra-config", J({"enable_weights_track": False})]),
    (Q3, ["--model-loader-extra-config", J({"num_threads": 0})]),
    (Q3, ["--model-loader-extra-config", J({"enable_multithread_load": "yes"})]),
    (Q3, ["--model-loader-extra-config", J({"pattern": "x"})]),
    (Q3, ["--load-format", "pt", "--model-loader-extra-config", J({"foo": 1})]),
    (Q3, ["--model-loader-extra-config", J({"enable_multithread_load": True}), "--safetensors-load-strategy",
          "eager"]),
    (Q3, ["--model-loader-extra-config", J({"enable_multithread_load": True}), "--safetensors-load-strategy",
          "lazy"]),
    (Q3, ["--load-format", "dummy", "--model-loader-extra-config", J({})]),
    (Q3, ["--load-format", "dummy", "--model-loader-extra-config", J({"num_threads": 2})]),
    (Q3, ["--load-format", "sharded_state", "--model-loader-extra-config", J({"pattern": "m-{rank}-{part}.st"})]),
    (Q3, ["--load-format", "sharded_state", "--model-loader-extra-config", J({"num_threads": 2})]),
    (Q3, ["--load-format", "runai_streamer_sharded", "--model-loader-extra-config", J({"foo": 1})]),
    (Q3, ["--load-format", "runai_streamer", "--model-loader-extra-config", J({"concurrency": 8,
                                                                               "memory_limit": -1})]),
    (Q3, ["--load-format", "runai_streamer", "--model-loader-extra-config", J({"distributed": True})]),
    (Q3, ["--load-format", "runai_streamer", "--model-loader-extra-config", J({"distributed": 1})]),
    (Q3, ["--load-format", "runai_streamer", "--model-loader-extra-config", J({"concurrency": 0})]),
    (Q3, ["--load-format", "runai_streamer", "--model-loader-extra-config", J({"memory_limit": -2})]),
    (Q3, ["--load-format", "runai_streamer", "--model-loader-extra-config", J({"pattern": "x"})]),
    # --model-class-overrides: architecture -> "module:class" (ModelConfig.model_class_overrides)
    (Q3, ["--model-class-overrides", J({"LlamaForCausalLM": "vllm.model_executor.models.llama:LlamaForCausalLM"})]),
    (Q3, ["--model-class-overrides", J({"Qwen3ForCausalLM": "vllm.model_executor.models.qwen3:Qwen3ForCausalLM"})]),
    (Q3, ["--model-class-overrides", J({"Qwen3ForCausalLM": "vllm.model_executor.models.qwen2:Qwen2ForCausalLM"})]),
    (Q3, ["--model-class-overrides", J({"Qwen3ForCausalLM": "no_colon"})]),
    (Q3, ["--model-class-overrides", J({"Qwen3ForCausalLM": 1})]),
    (Q3, ["--model-class-overrides", J({})]),
    # --weight-transfer-config: WeightTransferConfig(backend), the engine built after the weights load
    (Q3, ["--weight-transfer-config", J({})]),
    (Q3, ["--weight-transfer-config", J({"backend": "nccl"})]),
    (Q3, ["--weight-transfer-config", J({"backend": "ipc"})]),
    (Q3, ["--weight-transfer-config", J({"backend": "sparse_nccl"})]),
    (Q3, ["--weight-transfer-config", J({"backend": "nccl_m2n"})]),
    (Q3, ["--weight-transfer-config", J({"backend": "sharded_rdt"})]),
    (Q3, ["--weight-transfer-config", J({"backend": "sharded_rdt"}), "--distributed-executor-backend", "ray"]),
    (Q3, ["--weight-transfer-config", J({"backend": "nonexistent"})]),
    (Q3, ["--weight-transfer-config", J({"bad": 1})]),
    # --engram-config: EngramConfig; only models with n-gram embedding layers take it
    (Q3, ["--engram-config", J({})]),
    (Q3, ["--engram-config", J({"cpu_offload": False})]),
    (Q3, ["--engram-config", J({"dp_shared_memory": True, "cpu_offload": False})]),
    (Q3, ["--engram-config", J({"use_thp": True, "dp_shared_memory": True})]),
    (Q3, ["--engram-config", J({"bad": 1})]),
    # --diffusion-config: DiffusionConfig
    (Q3, ["--diffusion-config", J({"canvas_length": 16})]),
    (Q3, ["--diffusion-config", J({})]),
    (Q3, ["--diffusion-config", J({"max_denoising_steps": 8})]),
    (Q3, ["--diffusion-config", J({"canvas_length": 0})]),
    (Q3, ["--diffusion-config", J({"bad": 1})]),
    # --ec-transfer-config: ECTransferConfig, and the connector the scheduler builds
    (Q3, ["--ec-transfer-config", J({})]),
    (Q3, ["--ec-transfer-config", J({"ec_role": "ec_consumer"})]),
    (Q3, ["--ec-transfer-config", J({"ec_role": "bad"})]),
    (Q3, ["--ec-transfer-config", J({"ec_connector": "ECExampleConnector"})]),
    (Q3, ["--ec-transfer-config", J({"ec_connector": "NoSuchConnector", "ec_role": "ec_consumer"})]),
    (Q3, ["--ec-transfer-config", J({"ec_connector": "ECExampleConnector", "ec_role": "ec_consumer"})]),
    (Q3, ["--ec-transfer-config", J({"ec_connector": "ECExampleConnector", "ec_role": "ec_producer"})]),
    (VL, ["--ec-transfer-config", J({"ec_connector": "ECExampleConnector", "ec_role": "ec_producer"})]),
    (VL, ["--ec-transfer-config", J({"ec_connector": "ECCPUConnector", "ec_role": "ec_both"})]),
    (Q3, ["--ec-transfer-config", J({"mm_encoder_output_widths": {}})]),
    (Q3, ["--ec-transfer-config", J({"bad": 1})]),
    # --ec-manager-config: EncoderCacheManagerConfig
    (Q3, ["--ec-manager-config", J({})]),
    (Q3, ["--ec-manager-config", J({"encoder_cache_manager_cls": None})]),
    (Q3, ["--ec-manager-config", J({"manager_config": {"a": 1}})]),
    (Q3, ["--ec-manager-config", J({"encoder_cache_manager_cls": "my.mod.Manager"})]),
    (Q3, ["--ec-manager-config", J({"bad": 1})]),
    # values that are not one JSON object
    *[(Q3, [flag, value]) for flag in ("--model-loader-extra-config", "--model-class-overrides",
                                       "--weight-transfer-config", "--engram-config", "--diffusion-config",
                                       "--ec-transfer-config", "--ec-manager-config") for value in ("2", "not json")],
]


def _err(e: BaseException) -> str:
    return vo.refusal_text(e, 500)


def _facts(cfg: Any) -> dict[str, Any]:
    import torch
    from vllm.distributed.ec_transfer.ec_connector.factory import ECConnectorFactory
    from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory
    from vllm.model_executor.model_loader import get_model_loader

    row: dict[str, Any] = {
        "additional_config": cfg.additional_config if isinstance(cfg.additional_config, dict) else None,
        "model_loader_extra_config": cfg.load_config.model_loader_extra_config,
        "load_format": cfg.load_config.load_format,
        "num_speculative_tokens": cfg.num_speculative_tokens,
        "scheduler_cls": cfg.scheduler_config.scheduler_cls,
        "engram_config": None if cfg.engram_config is None else str(cfg.engram_config),
        "ec_manager_cls": cfg.ec_manager_config.encoder_cache_manager_cls,
        "model_class_overrides": cfg.model_config.model_class_overrides,
    }
    try:
        loader = get_model_loader(cfg.load_config)
        row["loader"] = type(loader).__name__
    except Exception as e:  # noqa: BLE001 - vLLM's refusal, in its words
        row["loader_error"] = _err(e)
    wt = cfg.weight_transfer_config
    if wt is not None:
        row["weight_transfer_backend"] = wt.backend
        try:
            engine = WeightTransferEngineFactory.create_engine(wt, cfg, torch.device("cpu"), torch.nn.Linear(2, 2))
            row["weight_transfer_engine"] = type(engine).__name__
            row["weight_transfer_tensors"] = sorted(k for k, v in vars(engine).items() if isinstance(v, torch.Tensor))
        except Exception as e:  # noqa: BLE001
            row["weight_transfer_error"] = _err(e)
    ec = cfg.ec_transfer_config
    if ec is not None:
        row["ec"] = {"is_ec_transfer_instance": ec.is_ec_transfer_instance, "is_encode_only": ec.is_encode_only,
                     "is_ec_consumer": ec.is_ec_consumer}
        mm = cfg.model_config.multimodal_config
        row["ec"]["mm_encoder_only"] = bool(mm and mm.mm_encoder_only)
        try:
            row["ec"]["connector"] = ECConnectorFactory.get_connector_class(ec).__name__
        except Exception as e:  # noqa: BLE001
            row["ec"]["connector_error"] = _err(e)
    try:
        cls, arch = cfg.model_config.registry.resolve_model_cls(cfg.model_config.architectures,
                                                                model_config=cfg.model_config)
        row["model_class"] = f"{cls.__module__}:{cls.__name__}"
        row["architecture"] = arch
    except Exception as e:  # noqa: BLE001
        row["model_class_error"] = _err(e)
    return row


def run_case(model: str, argv: list[str]) -> dict[str, Any]:
    from vllm.engine.arg_utils import EngineArgs

    config = vo._as_read(vo._catalog_config(model))
    row: dict[str, Any] = {"model": model, "argv": argv}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        p = vo.serve_parser()
        try:
            a = p.parse_args(["--model", d, "--skip-tokenizer-init", "--max-model-len", "4096"] + argv)
            cfg = EngineArgs.from_cli_args(a).create_engine_config()
        except SystemExit as e:
            row["parse_error"] = " ".join(str(e).split())[:500]
            return row
        except Exception as e:  # noqa: BLE001 - vLLM's refusal, in its words
            row["config_error"] = _err(e)
            return row
        row.update(_facts(cfg))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--registry")
    ap.add_argument("--case", type=int)
    a = ap.parse_args()
    vo.setup()
    import importlib.metadata as md

    if a.registry:
        from vllm.model_executor.models import registry as reg

        release = md.version("vllm").split("+")[0]
        classes = {arch: f"{reg._resolve_module_name(mod)}:{cls}" for arch, (mod, cls) in reg._VLLM_MODELS.items()}
        doc = {"_source": f"vLLM v{release} vllm/model_executor/models/registry.py _VLLM_MODELS: the class each "
               "architecture is built with, as ModelRegistry registers it (_resolve_module_name: a relative module is "
               "under vllm.model_executor.models); --model-class-overrides naming the same \"module:class\" for an "
               "architecture leaves it as it is (written by tools/vllm_json_flags_oracle.py --registry)",
               "release": release, "classes": dict(sorted(classes.items()))}
        with open(a.registry, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        return

    import vllm.config.model as model_config_mod
    from vllm.model_executor.models.registry import ModelRegistry

    models = dict(ModelRegistry.models)
    rows = []
    for i, (model, argv) in enumerate(CASES if a.case is None else [CASES[a.case]]):
        env = dict(os.environ)
        try:
            row = run_case(model, argv)
        except Exception as e:  # noqa: BLE001 - what vLLM raises past the steps above
            row = {"model": model, "argv": argv, "error": _err(e)}
        # what one case registers or sets stays out of the next: the overrides (ModelRegistry.register_model and
        # its process-local guard) and the runai loader's environment
        ModelRegistry.models.clear()
        ModelRegistry.models.update(models)
        model_config_mod._REGISTERED_MODEL_CLASS_OVERRIDES.clear()
        os.environ.clear()
        os.environ.update(env)
        rows.append(row)
        print(i, json.dumps(row)[:400], file=sys.stderr)
    release = md.version("vllm").split("+")[0]
    doc = {"release": release, "cases": rows, "produced_by": (
        f"vLLM {release} wheel run on CPU (VLLM_TARGET_DEVICE=cpu python tools/vllm_json_flags_oracle.py): each "
        "case's serve arguments parsed by EngineArgs.add_cli_args / from_cli_args, create_engine_config, then "
        "model_loader.get_model_loader, WeightTransferEngineFactory.create_engine, "
        "ECConnectorFactory.get_connector_class and ModelConfig.registry.resolve_model_cls on the result")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
