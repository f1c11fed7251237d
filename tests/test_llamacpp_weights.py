"""llama.cpp model buffers per device against its load logs (tests/data/llamacpp_model_sizes.json)."""

import pytest

from vramcalc.ggml import tensor_bytes
from vramcalc.gguf_mix import plan_gguf
from vramcalc.llamacpp.weights import CPU, gpu_start, model_buffers, unit_devices
from vramcalc.sources.catalog import load

MIB = 2**20


@pytest.mark.parametrize("case,model,ftype,unified,cpu_mib,gpu_mib", [
    # c01: Qwen3-Coder-30B-A3B Q8_0 on CUDA, full offload: token_embd stays in CPU_Mapped
    ("c01", "Qwen/Qwen3-30B-A3B", "Q8_0", False, 315.30, 30658.12),
    # c12: gemma-3-1b Q8_0 on Vulkan: tied embeddings, the output layer loads its own copy
    ("c12", "google/gemma-3-1b-it", "Q8_0", False, 306.00, 1013.54),
    # c02: gpt-oss-20b MXFP4 on Metal: Metal_Mapped spans the whole file (unified memory)
    ("c02", "openai/gpt-oss-20b", "MXFP4_MOE", True, 586.82, 11536.18),
])
def test_full_offload_buffers(case, model, ftype, unified, cpu_mib, gpu_mib):
    b = model_buffers(plan_gguf(load(model), ftype), load(model).num_layers, 999, [1.0], unified=unified)
    # the logs print 2 decimals; llama.cpp aligns each tensor in its buffer (a few KB in all)
    assert abs(b.cpu_bytes / MIB - cpu_mib) <= 0.05 and abs(b.gpu_bytes[0] / MIB - gpu_mib) <= 0.05


def test_ngl_counts_the_output_layer_first():
    # 32 blocks + output = 33 units: -ngl 33 is full, -ngl 32 leaves block 0 on the CPU, -ngl 1 is
    # the output layer alone
    assert gpu_start(32, 33) == 0 and gpu_start(32, 32) == 1 and gpu_start(32, 1) == 32
    spec = load("llama-3.1-8b")
    plan = plan_gguf(spec, "Q4_K_M")
    full, none, out_only = (model_buffers(plan, 32, n, [1.0]) for n in (33, 0, 1))
    assert none.gpu_bytes == [0] and none.cpu_bytes == full.cpu_bytes + full.gpu_bytes[0]
    assert out_only.gpu_layers == 0 and out_only.output_device == 0
    assert 0 < out_only.gpu_bytes[0] < full.gpu_bytes[0] / 10


def test_cpu_moe_override_moves_the_experts():
    spec = load("Qwen/Qwen3-30B-A3B")
    plan = plan_gguf(spec, "Q8_0")
    experts = 48 * 128 * 3 * 2048 * 768 * 34 // 32  # Q8_0 routed experts
    embd = 151936 * 2048 * 34 // 32
    b = model_buffers(plan, spec.num_layers, 999, [1.0], cpu_overrides=[r"ffn_.*_exps"], mmap=False)  # --cpu-moe
    assert b.cpu_bytes == experts + embd
    # mmap'ed, the CPU buffer is the file window from token_embd to the last expert: the attention
    # and norm tensors stored between the experts (on the GPU) count in it too (get_mapping_range)
    mapped = model_buffers(plan, spec.num_layers, 999, [1.0], cpu_overrides=[r"ffn_.*_exps"])
    on_cpu = [i for i, (t, _) in enumerate(plan) if t.name == "token_embd.weight" or "_exps" in t.name]
    between = sum(tensor_bytes(ty, t.ne) for i, (t, ty) in enumerate(plan)
                  if on_cpu[0] < i < on_cpu[-1] and i not in on_cpu)  # sizes here are multiples of 32
    assert between > 0 and mapped.cpu_bytes == experts + embd + between and mapped.gpu_bytes == b.gpu_bytes


def test_layer_split_points_follow_tensor_split_and_put_the_output_last():
    # llama.cpp load_tensors (docs/llamacpp.md#offload-split): -ts 3,1 gives GPU0 75 % of the offloaded units;
    # the output layer is the last unit, on the last GPU
    units = unit_devices(32, 999, [3, 1])
    assert len(units) == 33 and units[-1] == 1
    assert units.count(0) == 25  # units i with i / 33 < 0.75
    even = unit_devices(32, 999, [1, 1])  # equal free memory: halves
    assert even.count(0) == 17 and even.count(1) == 16
    # -ngl 20 over two GPUs: blocks 0-12 on the CPU, the 20 offloaded units split 10 / 10
    part = unit_devices(32, 20, [1, 1])
    assert part.count(CPU) == 13 and part[13:23] == [0] * 10 and part[23:] == [1] * 10


def test_layer_split_holds_the_same_weights_as_one_device():
    import vramcalc
    from vramcalc.gguf_mix import plan_gguf
    from vramcalc.gpus import find_gpu
    from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp

    spec = vramcalc.load_model("llama-3.1-8b")
    tensors = plan_gguf(spec, "Q4_K_M")
    g = find_gpu("rtx3090")
    opts = LlamaOptions(n_ctx=8192, n_parallel=1, ftype="Q4_K_M")
    one = check_llamacpp(spec, g, opts, tensors)
    two = check_llamacpp(spec, [g, g], opts, tensors)
    gpu_two = [d for d in two.devices if d.device != "host RAM"]
    assert sum(d.model_buffer_bytes for d in gpu_two) == one.devices[0].model_buffer_bytes  # token_embd stays on the CPU in both
    assert sum(d.kv_buffer_bytes for d in gpu_two) == one.devices[0].kv_buffer_bytes
    assert "-sm layer" in two.command
