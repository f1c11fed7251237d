"""VLLM_CONFIDENTIAL_COMPUTE=1 in vLLM 0.34.0's GPU model runner, run on a CPU machine: the device bytes of the
runner's request and M-RoPE states with UVA available (off Confidential Computing) and unavailable (on it), as the
oracle for vramcalc/vllm/engine.py _conf_compute_bytes.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_conf_compute_oracle.py \
        > tests/data/vllm_conf_compute_oracle_v0.34.0.json

Under NVIDIA Confidential Computing vllm/utils/platform_utils.py is_uva_available answers False, so
vllm/v1/worker/gpu/buffer_utils.py builds NonUvaBuffer (a host tensor and a device tensor of the same size) where it
would build UvaBuffer (pinned host memory seen by the GPU), and StagedWriteTensor(uva_instead_of_gpu=True) puts its
tensor on the GPU. vLLM's own RequestState (vllm/v1/worker/gpu/states.py) and RopeState (vllm/v1/worker/gpu/mm/
rope.py), with the sampler's TraceReplayState (--enable-trace-replay, vllm/v1/worker/gpu/sample/trace_replay.py)
and the Sampler itself (vllm/v1/worker/gpu/sample/sampler.py: its sampling, penalty, logit-bias, bad-words and
logprob states; no reasoning config, so no thinking budget) recorded apart, are built here with is_uva_available patched True and then False, under each pool depth
set_default_max_concurrency sets (vllm_config.max_concurrent_batches, at least 2). The runner's device is the meta
device (the platform's device type too, which NonUvaBuffer allocates on); host tensors are allocated empty (never
touched) and unpinned, as the CPU build cannot pin; the UVA view of a host tensor is the tensor itself. Every tensor
torch.zeros makes on the meta device is counted."""

import json
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_oracle  # noqa: E402

# (max_num_seqs, max_model_len, M-RoPE position channels (0: none), dense all_token_ids, pool depth)
CASES = [(256, 4096, 0, False, 2), (1024, 32768, 0, False, 2), (1024, 131072, 0, False, 2), (128, 8192, 3, False, 2),
         (512, 40960, 3, False, 2), (256, 262144, 4, False, 2), (64, 4096, 0, True, 2), (64, 4096, 3, True, 2),
         (256, 8192, 0, False, 3), (100, 10000, 3, False, 5), (1, 1, 0, False, 2), (1, 16, 3, False, 2)]


def main() -> None:
    vllm_oracle.setup()
    import torch
    import vllm
    from vllm.platforms import current_platform
    from vllm.v1.worker.gpu import buffer_utils
    from vllm.v1.worker.gpu.mm.rope import RopeState
    from vllm.v1.worker.gpu.sample.sampler import Sampler
    from vllm.v1.worker.gpu.sample.trace_replay import TraceReplayState
    from vllm.v1.worker.gpu.states import RequestState

    meta = torch.device("meta")
    counted: list[int] = []
    zeros = torch.zeros

    def recording_zeros(*size, dtype=None, device=None, pin_memory=False, **kw):
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if dev.type == "meta":
            t = zeros(*size, dtype=dtype, device=meta, **kw)
            counted.append(t.numel() * t.element_size())
            return t
        return torch.empty(*size, dtype=dtype, device="cpu", **kw)  # a host buffer: untouched, unpinned

    torch.zeros = recording_zeros
    buffer_utils.get_accelerator_view_from_cpu_tensor = lambda t: t
    buffer_utils.is_pin_memory_available = lambda: False
    current_platform.device_type = "meta"  # NonUvaBuffer allocates its device copy on the platform's device type

    # the sampler's vllm_config reads: no reasoning config, so ThinkingBudgetState stays off (thinking_budget.py)
    sampler_config = types.SimpleNamespace(reasoning_config=None)

    def device_bytes(uva: bool, seqs: int, max_len: int, dims: int, dense: bool, depth: int) -> tuple[int, int, int]:
        buffer_utils.is_uva_available = lambda: uva
        buffer_utils.set_default_max_concurrency(depth)
        counted.clear()
        req = RequestState(max_num_reqs=seqs, max_model_len=max_len, max_num_batched_tokens=2048,
                           num_speculative_steps=0, vocab_size=32000, device=meta, use_dense_all_token_ids=dense)
        rope = RopeState(num_dims=dims, max_num_reqs=seqs, max_num_tokens=2048, max_model_len=max_len,
                         device=meta) if dims else None
        states = sum(counted)
        counted.clear()
        replay = TraceReplayState(req)  # the sampler's, with --enable-trace-replay (vllm/v1/worker/gpu/sample/sampler.py)
        replay_bytes = sum(counted)
        counted.clear()
        sampler = Sampler(sampler_config, seqs, 32000, meta, req)  # as GPUModelRunner.load_model builds it
        del req, rope, replay, sampler
        return states, replay_bytes, sum(counted)

    rows = []
    for seqs, max_len, dims, dense, depth in CASES:
        (on, replay_on, sampler_on), (off, replay_off, sampler_off) = (
            device_bytes(True, seqs, max_len, dims, dense, depth), device_bytes(False, seqs, max_len, dims, dense, depth))
        rows.append({"max_num_seqs": seqs, "max_model_len": max_len, "mrope_num_dims": dims,
                     "dense_all_token_ids": dense, "max_concurrency": depth, "device_bytes_uva": on,
                     "device_bytes_no_uva": off, "added_bytes": off - on,
                     "trace_replay_added_bytes": replay_off - replay_on,
                     "sampler_added_bytes": sampler_off - sampler_on})
    json.dump({"release": vllm.__version__.split("+")[0], "produced_by": (
        "vLLM 0.34.0 wheel: vllm/v1/worker/gpu/states.py RequestState and vllm/v1/worker/gpu/mm/rope.py RopeState built "
        "(and, apart, the sampler's TraceReplayState, built with --enable-trace-replay, vllm/v1/worker/gpu/sample/"
        "trace_replay.py, and vllm/v1/worker/gpu/sample/sampler.py Sampler without a reasoning config) with vllm/v1/worker/gpu/buffer_utils.py is_uva_available patched True, then False (what "
        "VLLM_CONFIDENTIAL_COMPUTE=1 makes it answer, vllm/utils/platform_utils.py), under set_default_max_concurrency "
        "of each case's pool depth; every torch.zeros on the runner's device (meta) counted; run on CPU: "
        "VLLM_TARGET_DEVICE=cpu python tools/vllm_conf_compute_oracle.py"), "cases": rows}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
