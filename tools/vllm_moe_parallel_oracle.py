"""Writes tests/data/vllm_moe_parallel.json from vLLM's own code (run with a vllm wheel installed, e.g.
`pip install vllm==0.33.0 --no-deps` with the CPU torch): how FusedMoEParallelConfig.make splits routed experts
for each (TP, DP, --enable-expert-parallel), and how many experts determine_expert_map gives each EP rank.

    python tools/vllm_moe_parallel_oracle.py > tests/data/vllm_moe_parallel.json

The process groups FusedMoEParallelConfig.make asks for rank numbers are replaced by rank 0 (the sizes do not
depend on them)."""

import json
from types import SimpleNamespace

import vllm
from vllm.model_executor.layers.fused_moe import config as moe_config
from vllm.model_executor.layers.fused_moe.expert_map_manager import determine_expert_map


def main() -> None:
    moe_config.get_dp_group = lambda: SimpleNamespace(rank_in_group=0)
    moe_config.get_pcp_group = lambda: SimpleNamespace(rank_in_group=0)
    moe_config.get_tensor_model_parallel_rank = lambda: 0
    layouts = []
    for tp, dp, ep in [(1, 2, False), (2, 2, False), (8, 2, False), (1, 2, True), (8, 2, True), (2, 1, True),
                       (1, 8, True), (4, 1, False)]:
        pc = SimpleNamespace(enable_expert_parallel=ep, all2all_backend="allgather_reducescatter", enable_eplb=False)
        c = moe_config.FusedMoEParallelConfig.make(tp_size_=tp, pcp_size_=1, dp_size_=dp, sp_size_=1,
                                                   vllm_parallel_config=pc)
        layouts.append({"tp": tp, "dp": dp, "enable_expert_parallel": ep, "moe_tp_size": c.tp_size,
                        "moe_ep_size": c.ep_size, "use_ep": c.use_ep})
    maps = [{"experts": e, "ep_size": n, "local_experts": [determine_expert_map(n, r, e)[0] for r in range(n)]}
            for e, n in [(256, 16), (128, 3), (60, 8), (256, 8), (128, 6)]]
    print(json.dumps({"_source": f"vLLM {vllm.__version__}: vllm/model_executor/layers/fused_moe/config.py "
                      "FusedMoEParallelConfig.make (layouts) and expert_map_manager.py determine_expert_map (maps), "
                      "run by tools/vllm_moe_parallel_oracle.py", "layouts": layouts, "maps": maps}, indent=1))


if __name__ == "__main__":
    main()
