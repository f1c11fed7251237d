"""The prefetch weight offloader (--offload-group-size, --offload-num-in-group, --offload-prefetch-step,
--offload-params, --offload-backend) run through vLLM's own code on a CPU machine:
tests/data/vllm_prefetch_offload_oracle_v0.33.0.json.

    for tp in 1 2; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_prefetch_offload_oracle.py \
        --tp $tp --out tests/data/vllm_prefetch_offload_oracle_v0.33.0.json; done
    for i in 0 1 2 3 4; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python \
        tools/vllm_prefetch_offload_oracle.py --pp-case $i --out tests/data/vllm_prefetch_offload_oracle_v0.33.0.json; done

Per case: the config as `vllm serve` builds it (EngineArgs.create_engine_config with the case's fields; its
ValueErrors are recorded as refusals), the offloader the model runner installs before it loads the model
(vllm/model_executor/offloader/base.py create_offloader / set_offloader), the model class built on the meta device
under a TP group of fake ranks (tools/vllm_oracle.py), its decoder layers passed through make_layers as vLLM passes
them (PrefetchOffloader.wrap_modules choosing the last num_in_group layers of every group_size by their index, and
the parameters of each by --offload-params' segments), then PrefetchOffloader.post_init as load_model calls it
(vllm/v1/worker/gpu_model_runner.py): the static buffer pool, prefetch_step slots of every distinct offloaded
(parameter name, shape, stride, dtype). On the meta device the host copy of a parameter is a meta tensor of its shape
(nothing pinned), and the first prefetches (host-to-device copies on a CUDA stream) are not started: the choice, the
offloaded bytes (`total_offloaded_bytes`) and the pool's bytes (`StaticBufferPool.total_bytes`) are vLLM's own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_cpu_offload_oracle as co  # noqa: E402
import vllm_oracle as vo  # noqa: E402

# (catalog file stem, TP, EngineArgs fields)
CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 4}),
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 8, "offload_num_in_group": 2}),
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 8, "offload_num_in_group": 2, "offload_prefetch_step": 2}),
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 1, "offload_prefetch_step": 3}),
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 5, "offload_num_in_group": 3}),  # 36 layers: a partial last group
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 4, "offload_params": ["mlp"]}),
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 4, "offload_params": ["experts"]}),  # no layer matches
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 4, "offload_backend": "uva"}),  # prefetch ignored
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 4, "offload_backend": "prefetch", "cpu_offload_gb": 2}),
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 4, "cpu_offload_gb": 2}),  # auto: prefetch wins
    ("Qwen__Qwen3-8B", 1, {"offload_backend": "prefetch"}),  # refused: num_in_group 1 > group_size 0
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 2, "offload_num_in_group": 3}),  # refused
    ("Qwen__Qwen3-8B", 1, {"offload_group_size": 2, "offload_prefetch_step": 0}),  # refused
    ("Qwen__Qwen3-8B", 1, {"offload_num_in_group": 3, "offload_prefetch_step": 0}),  # prefetch off: accepted
    ("Qwen__Qwen3-8B", 2, {"offload_group_size": 4, "offload_num_in_group": 2, "offload_prefetch_step": 2}),
    ("Qwen__Qwen3-30B-A3B", 1, {"offload_group_size": 2}),
    ("Qwen__Qwen3-30B-A3B", 1, {"offload_group_size": 2, "offload_params": ["experts"]}),
    ("Qwen__Qwen3-30B-A3B", 2, {"offload_group_size": 3, "offload_params": ["experts"], "offload_prefetch_step": 2}),
    ("Qwen__Qwen3-30B-A3B", 2, {"offload_group_size": 4, "offload_num_in_group": 3}),
    ("mistralai__Mixtral-8x7B-Instruct-v0.1", 2, {"offload_group_size": 4, "offload_params": ["experts"]}),
    # heterogeneous layers: a dense first layer before the MoE ones (first_k_dense_replace)
    ("deepseek-ai__DeepSeek-V2-Lite", 1, {"offload_group_size": 1}),
    ("deepseek-ai__DeepSeek-V2-Lite", 1, {"offload_group_size": 3, "offload_num_in_group": 3, "offload_prefetch_step": 2}),
    ("deepseek-ai__DeepSeek-V2-Lite", 1, {"offload_group_size": 1, "offload_params": ["experts"]}),
    ("deepseek-ai__DeepSeek-V2-Lite", 2, {"offload_group_size": 2}),
]


# pipeline stages: (catalog file stem, PP, the rank whose stage is built, EngineArgs fields); TP 1
PP_CASES: list[tuple[str, int, int, dict[str, Any]]] = [
    ("Qwen__Qwen3-8B", 2, 0, {"offload_group_size": 4}),
    ("Qwen__Qwen3-8B", 2, 1, {"offload_group_size": 4}),
    ("Qwen__Qwen3-8B", 3, 2, {"offload_group_size": 5, "offload_num_in_group": 2}),
    ("deepseek-ai__DeepSeek-V2-Lite", 2, 0, {"offload_group_size": 2, "offload_params": ["experts"]}),
    ("deepseek-ai__DeepSeek-V2-Lite", 2, 1, {"offload_group_size": 2, "offload_params": ["experts"]}),
]


def _init_stage(pp: int, rank: int, cfg: Any) -> None:
    """One process as rank `rank` of a TP 1 x PP `pp` world of fake ranks (tools/vllm_oracle.py _init_group, with
    the pipeline group): make_layers builds that rank's stage (get_pp_group().rank_in_group)."""
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore
    from vllm.distributed import parallel_state as ps
    from vllm.distributed.device_communicators.shm_broadcast import MessageQueue

    MessageQueue.create_from_process_group = staticmethod(lambda *a, **k: None)  # type: ignore[method-assign]
    orig_new_group = dist.new_group

    def new_group(*args: Any, **kwargs: Any) -> Any:
        kwargs["backend"] = "fake"
        return orig_new_group(*args, **kwargs)

    dist.new_group = new_group  # type: ignore[assignment]
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=pp)
    with vo._vllm_config("set_current_vllm_config")(cfg):
        ps.init_distributed_environment(world_size=pp, rank=rank, distributed_init_method="env://", local_rank=0,
                                        backend="fake")
        ps.ensure_model_parallel_initialized(1, pp)


class _NoStream:
    """torch.cuda.Stream / Event on a machine without CUDA: the copies they order are never started here."""

    def __init__(self, *a: Any, **k: Any) -> None:
        pass


def _meta_host_copies() -> None:
    """The offloader's host copy of a meta parameter is a meta tensor of its layout; nothing pinned; no H2D copy."""
    import torch
    from vllm.model_executor.offloader import prefetch

    empty_strided = torch.empty_strided

    def meta_empty_strided(*a: Any, **k: Any) -> Any:
        if str(k.get("device")) == "cpu":
            k = {**k, "device": "meta"}
            k.pop("pin_memory", None)
        return empty_strided(*a, **k)

    prefetch.torch.empty_strided = meta_empty_strided  # type: ignore[assignment]
    prefetch.should_pin_memory = lambda: False
    torch.cuda.Stream = _NoStream  # type: ignore[assignment, misc]
    torch.cuda.Event = _NoStream  # type: ignore[assignment, misc]
    prefetch._ModuleOffloader.start_onload_to_static = lambda self: None  # type: ignore[method-assign]


def _one(stem: str, tp: int, args: dict[str, Any], pp: int = 1, rank: int = 0) -> dict[str, Any]:
    entry, config = vo.flag_case_config(stem, args)
    if pp > 1:
        # (the CPU build runs Model Runner V1, which takes PP only without async scheduling; the layers are the same)
        vo.EXTRA_ARGS.update(pipeline_parallel_size=pp, distributed_executor_backend="mp", async_scheduling=False)
    with co.offloaded_model(config, tp, (lambda c: _init_stage(pp, rank, c)) if pp > 1 else None) as (cfg, off, model):
        seen: set[int] = set()
        weights = 0
        for _, p in model.named_parameters(remove_duplicate=False):
            if id(p) not in seen:
                seen.add(id(p))
                weights += p.numel() * p.element_size()
        names = {id(m): n for n, m in model.named_modules()}
        off.post_init()
    mods = getattr(off, "module_offloaders", [])
    pool = getattr(off, "buffer_pool", None)
    row = {"pp": pp, "rank": rank} if pp > 1 else {}
    return {**row, "model": entry["repo_id"], "tp": tp, "engine_args": args, "dtype": str(cfg.model_config.dtype),
            "offloader": type(off).__name__,
            "offloaded_layers": [names.get(id(m.module), "?") for m in mods],
            "offloaded_bytes": int(getattr(off, "total_offloaded_bytes", 0)),
            "uva_offloaded_bytes": int(getattr(off, "cpu_offload_bytes", 0)),
            "buffer_pool_bytes": int(pool.total_bytes) if pool is not None else 0,
            "weights_bytes_rank0": int(weights)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tp", type=int, default=1, help="the cases at this TP (the fake group is made once a process)")
    ap.add_argument("--out", required=True, help="JSON file to write (merged with what it holds)")
    ap.add_argument("--pp-case", type=int, default=None, help="one PP_CASES entry, by index (a process each)")
    a = ap.parse_args()
    vo.setup()
    _meta_host_copies()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "refused": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: EngineArgs.create_engine_config with each case's fields as `vllm serve` "
        "parses the --offload-* flags (OffloadConfig.validate_offload_config's ValueErrors recorded as refused), "
        "create_offloader / set_offloader as the model runner calls them, the model built on the meta device under "
        "a TP group of fake ranks (tools/vllm_oracle.py), PrefetchOffloader.wrap_modules from make_layers and "
        "PrefetchOffloader.post_init as load_model calls it, their own counts; PP cases: one rank of a TP 1 x PP world "
        "of fake ranks, its stage built; run on CPU: VLLM_TARGET_DEVICE=cpu python "
        "tools/vllm_prefetch_offload_oracle.py --tp N (or --pp-case I)")}
    if os.path.exists(a.out):
        old = json.load(open(a.out))
        doc["cases"], doc["refused"] = old["cases"], old["refused"]
    if a.pp_case is not None:
        stem, pp, rank, args = PP_CASES[a.pp_case]
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            c = _one(stem, 1, args, pp, rank)
        doc["cases"] = [x for x in doc["cases"] if [x.get("pp"), x.get("rank"), x["model"], x["engine_args"]]
                        != [pp, rank, c["model"], args]] + [c]
        print(stem, pp, rank, args, c["offloaded_layers"], c["offloaded_bytes"], c["buffer_pool_bytes"],
              file=sys.stderr)
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        return
    vo.run_flag_cases(doc, a.out, CASES, a.tp, _one, refused="refused", skip_refused=True)


if __name__ == "__main__":
    main()
