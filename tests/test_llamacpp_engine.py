"""llama-server on one device: the estimate errs high, never low, against logged compute buffers;
the exact buckets and the verdict."""

import json

import pytest

from conftest import DATA
from vramcalc.errors import NotModelledError
from vramcalc.cli import main
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources.catalog import load

MIB = 2**20
CASES = json.loads((DATA / "llamacpp_compute_logs.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_compute_estimate_with_its_margin_covers_real_gpu_logs(case):
    """Real CUDA / Metal / Vulkan / CPU logs of full-size models: the estimate is within 40% (within 5% where
    the allocator replay covers the architecture: c12, a Vulkan build from before the separate SWA cache,
    is 4.6% high, the others within 2.7%) and the verdict's margin is never below the logged buffer.
    Every one of these builds predates llama.cpp PR #23861 (none prints n_outputs_max): the context
    reserved n_batch logits rows, as the library default still does."""
    r = check_llamacpp(load(case["model"]), find_gpu("h100-sxm"),
                       LlamaOptions(ftype=case["ftype"], n_outputs_max=case["options"].get("n_batch", 2048),
                                    **case["options"]), solve=False)
    gpu = r.devices[0]
    est = gpu.compute_buffer_bytes / MIB
    assert abs(est / case["compute_mib"] - 1) < (0.05 if gpu.uncertainty_bytes < 0.2 * gpu.compute_buffer_bytes else 0.4)
    assert (gpu.compute_buffer_bytes + gpu.uncertainty_bytes) / MIB >= case["compute_mib"]


def test_buckets_add_up_and_the_margin_is_kept():
    r = check_llamacpp(load("llama-3.1-8b"), find_gpu("rtx4070"), LlamaOptions(ftype="Q4_K_M", n_ctx=32768))
    gpu, host = r.devices
    assert gpu.kv_buffer_bytes == 32768 * 131072  # 128 KiB per token at f16, all layers on the GPU
    assert gpu.total_bytes == gpu.model_buffer_bytes + gpu.kv_buffer_bytes + gpu.compute_buffer_bytes
    assert gpu.available_bytes == find_gpu("rtx4070").usable_bytes - 1024 * MIB
    assert host.model_buffer_bytes == 128256 * 4096 * 144 // 256  # token_embd stays on the CPU: Q4_K in Q4_K_M (untied)


def test_too_long_a_context_does_not_fit_and_partial_offload_moves_kv():
    spec = load("llama-3.1-8b")
    full = check_llamacpp(spec, find_gpu("rtx4070"), LlamaOptions(ftype="Q4_K_M", n_ctx=131072))
    assert not full.fits
    part = check_llamacpp(spec, find_gpu("rtx4070"), LlamaOptions(ftype="Q4_K_M", n_ctx=131072, n_gpu_layers=10))
    assert part.devices[0].kv_buffer_bytes < full.devices[0].kv_buffer_bytes and part.gpu_layers == 9


def test_quantized_v_needs_flash_attention():
    r = check_llamacpp(load("llama-3.1-8b"), find_gpu("rtx4090"),
                       LlamaOptions(ftype="Q4_K_M", n_ctx=8192, type_v="q8_0", flash_attn=False))
    assert not r.fits and r.errors[0].code == "llamacpp.kv.quant_v_needs_fa"
    assert "requires Flash Attention" in r.errors[0].text


def test_cli(capsys):
    code = main(["check", "llama-3.1-8b", "--gpu", "rtx4070", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M",
                 "--ctx", "16384", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["fits"] and r["engine"] == "llamacpp" and r["n_ctx"] == 16384
    assert r["command"].startswith("llama-server -m") and "-c 16384" in r["command"]
    assert main(["check", "llama-3.1-8b", "--gpu", "rtx4070", "--engine", "llamacpp"]) == 2


def test_real_gguf_file_supplies_its_tensors(tmp_path, capsys):
    from test_gguf_reader import write_gguf
    from vramcalc.ggml import tensor_bytes
    from vramcalc.gguf_mix import plan_gguf
    from vramcalc.sources.hf_config import read_config_file
    spec = read_config_file(DATA / "checkpoints" / "llama")
    path = tmp_path / "tiny-Q8_0.gguf"
    write_gguf(spec, "Q8_0", path, "llama")
    code = main(["check", str(path), "--gpu", "rtx4090", "--engine", "llamacpp", "--ctx", "512", "--json"])
    r = json.loads(capsys.readouterr().out)
    plan = plan_gguf(spec, "Q8_0")
    emb = sum(tensor_bytes(ty, t.ne) for t, ty in plan if t.name == "token_embd.weight")
    everything = sum(tensor_bytes(ty, t.ne) for t, ty in plan)
    assert code == 0 and r["devices"][0]["model_buffer_bytes"] == everything - emb  # untied: every tensor but token_embd
    assert r["devices"][1]["model_buffer_bytes"] == emb and r["command"].startswith(f"llama-server -m {path}")


# Flags llama-server accepts (common/arg.cpp at llama.cpp 4df29be, the build of tests/data/llamacpp_runs.json),
# each with the value form we print.
SERVER_FLAGS = {"-m", "-c", "-ngl", "-np", "--kv-unified", "-ctk", "-ctv", "-fa", "-b", "-ub", "--n-cpu-moe",
                "--cpu-moe", "-ot", "--swa-full", "-nkvo", "--no-repack", "-sm", "-ts", "-mg", "--fit"}


def test_printed_command_uses_only_llama_server_flags_and_the_solved_values():
    spec = load("llama-3.3-70b")
    g = find_gpu("rtx3090")
    r = check_llamacpp(spec, [g, g], LlamaOptions(ftype="Q4_K_M", n_ctx=32768, n_parallel=2, kv_unified=False,
                                                  type_k="q8_0", type_v="q8_0", n_batch=1024, n_ubatch=256,
                                                  n_gpu_layers=None, tensor_split=(3, 2), no_kv_offload=False))
    flags = [t for t in r.command.split() if t.startswith("-")]
    assert set(flags) <= SERVER_FLAGS, set(flags) - SERVER_FLAGS
    # -ngl auto was solved: the printed value is the one checked, and it fits
    assert f"-ngl {r.n_gpu_layers}" in r.command and r.fits and r.max_gpu_layers == r.n_gpu_layers
    assert "-ts 3,2" in r.command and "-ctk q8_0 -ctv q8_0" in r.command and "--fit off" in r.command
    bigger = check_llamacpp(spec, [g, g], LlamaOptions(ftype="Q4_K_M", n_ctx=32768, n_parallel=2, kv_unified=False,
                                                       type_k="q8_0", type_v="q8_0", n_batch=1024, n_ubatch=256,
                                                       n_gpu_layers=r.n_gpu_layers + 1, tensor_split=(3, 2)),
                            solve=False)
    assert not bigger.fits  # one more layer does not


def test_auto_context_is_lowered_as_fit_does():
    # -c 0 on a 12 GB card: the 128K training context does not fit; --fit lowers it in steps of 256
    r = check_llamacpp(load("llama-3.1-8b"), find_gpu("rtx4070"), LlamaOptions(ftype="Q4_K_M"))
    assert r.fits and r.n_ctx % 256 == 0 and 4096 <= r.n_ctx < 131072 and "lowered" in r.context_source
    over = check_llamacpp(load("llama-3.1-8b"), find_gpu("rtx4070"), LlamaOptions(ftype="Q4_K_M", n_ctx=r.n_ctx + 256),
                          solve=False)
    assert not over.fits


# ---- split modes and backends (data/llamacpp_backends.json, llama.cpp 4df29be source)

def _two(gpu="rtx4090"):
    return [find_gpu(gpu), find_gpu(gpu)]


@pytest.mark.parametrize("gpu,backend,device", [("rtx4090", "auto", "CUDA0"), ("rx-7900-xtx", "auto", "ROCm0"),
                                                ("rtx4090", "vulkan", "Vulkan0")])
def test_row_split_is_refused_without_split_buffers(gpu, backend, device):
    """make_gpu_buft_list throws when the backend exports no ggml_backend_split_buffer_type; at 4df29be
    only ggml-sycl.cpp does."""
    r = check_llamacpp(load("llama-3.1-8b"), _two(gpu), LlamaOptions(ftype="Q4_K_M", n_ctx=8192, split_mode="row",
                                                                    backend=backend))
    assert not r.fits and r.errors[0].code == "llamacpp.split.unsupported"
    assert r.errors[0].text.startswith(f"device {device} does not support split buffers")
    with pytest.raises(NotModelledError, match="SYCL is not modelled"):
        check_llamacpp(load("llama-3.1-8b"), _two(gpu), LlamaOptions(ftype="Q4_K_M", split_mode="row", backend="sycl"))


def test_tensor_split_segments_weights_and_kv_by_ts_and_needs_flash_attention():
    spec = load("llama-3.1-8b")
    layer = check_llamacpp(spec, _two(), LlamaOptions(ftype="Q4_K_M", n_ctx=8192, n_gpu_layers=10**6), solve=False)
    even = check_llamacpp(spec, _two(), LlamaOptions(ftype="Q4_K_M", n_ctx=8192, split_mode="tensor",
                                                     n_gpu_layers=10**6))
    offloaded = sum(d.model_buffer_bytes for d in layer.devices[:2])
    kv = sum(d.kv_buffer_bytes for d in layer.devices[:2])
    assert even.fits and even.flash_attn and even.split_mode == "tensor"  # -fa auto switched on
    # matrices in halves, norms (mirrored by llama_meta_device_get_split_state) whole on each GPU
    norms = 32 * 2 * 4096 * 4 + 4096 * 4 + 64 * 4  # f32 attn_norm, ffn_norm per layer, output_norm, rope_freqs
    assert [d.model_buffer_bytes for d in even.devices[:2]] == [(offloaded - norms) // 2 + norms] * 2
    assert [d.kv_buffer_bytes for d in even.devices[:2]] == [kv // 2] * 2
    # no pipeline copies of the compute buffer (those are the layer split's, docs/llamacpp.md#pipeline-copies)
    assert even.devices[0].compute_buffer_bytes * 4 == layer.devices[1].compute_buffer_bytes
    skew = check_llamacpp(spec, _two(), LlamaOptions(ftype="Q4_K_M", n_ctx=8192, split_mode="tensor",
                                                     tensor_split=(3, 1), n_gpu_layers=10**6))
    assert [d.model_buffer_bytes for d in skew.devices[:2]] == [int((offloaded - norms) * x) + norms for x in (0.75, 0.25)]
    assert "-sm tensor -ts 3,1 --fit off" in skew.command
    mixed = check_llamacpp(spec, [find_gpu("rtx4090"), find_gpu("rtx3060 12gb")],
                           LlamaOptions(ftype="Q4_K_M", n_ctx=8192, split_mode="tensor", n_gpu_layers=10**6))
    assert mixed.devices[0].model_buffer_bytes == mixed.devices[1].model_buffer_bytes  # no -ts: even segments
    off = check_llamacpp(spec, _two(), LlamaOptions(ftype="Q4_K_M", n_ctx=8192, split_mode="tensor", flash_attn="off"))
    assert not off.fits and off.errors[0].code == "llamacpp.split.tensor_needs_fa"
    assert off.errors[0].text.startswith("SPLIT_MODE_TENSOR requires flash_attn to be enabled")


def test_tensor_split_is_refused_for_the_architectures_llama_cpp_lists():
    r = check_llamacpp(load("deepseek-v2-lite"), _two(), LlamaOptions(ftype="Q4_K_M", n_ctx=8192, split_mode="tensor",
                                                                      n_gpu_layers=None))
    assert r.errors[0].code == "llamacpp.split.tensor_arch"
    assert r.errors[0].text.startswith("LLAMA_SPLIT_MODE_TENSOR not implemented for architecture 'deepseek2'")
    assert any(w.code == "llamacpp.split.tensor_no_fit"
               and "llama_params_fit is not implemented for SPLIT_MODE_TENSOR" in w.text for w in r.warnings)  # -ngl auto


def test_the_backend_follows_the_vendor_and_is_reported():
    spec = load("qwen3-32b")
    assert check_llamacpp(spec, find_gpu("rtx4090"), LlamaOptions(ftype="Q4_K_M", n_ctx=4096)).backend == "cuda"
    halo = find_gpu("strix halo")
    assert halo.id == "ryzen-ai-max-plus-395" and halo.vendor == "amd"
    assert check_llamacpp(spec, halo, LlamaOptions(ftype="Q4_K_M", n_ctx=4096)).backend == "rocm"
    assert check_llamacpp(spec, halo, LlamaOptions(ftype="Q4_K_M", n_ctx=4096, backend="vulkan")).backend == "vulkan"
    assert check_llamacpp(spec, None, LlamaOptions(ftype="Q4_K_M", n_ctx=4096)).backend == "cpu"


def test_other_machines_join_through_rpc_first_and_without_pipeline_copies():
    """llama_prepare_model_devices puts RPC devices at the front; RPC has no async compute or events,
    so the scheduler keeps one copy of the compute buffers (llama_context: pipeline_parallel)."""
    spec = load("llama-3.3-70b")
    gpus = [find_gpu("rtx3090")] * 4
    local = check_llamacpp(spec, gpus, LlamaOptions(ftype="Q4_K_M", n_ctx=8192, n_gpu_layers=10**6), solve=False)
    rpc = check_llamacpp(spec, gpus, LlamaOptions(ftype="Q4_K_M", n_ctx=8192, n_gpu_layers=10**6, rpc_nodes=1),
                         solve=False)
    assert [d.device for d in rpc.devices[:4]] == ["rtx-3090#0 (node 2, RPC)", "rtx-3090#1 (node 2, RPC)",
                                                  "rtx-3090#2 (head node)", "rtx-3090#3 (head node)"]
    assert [d.model_buffer_bytes for d in rpc.devices] == [d.model_buffer_bytes for d in local.devices]
    assert local.devices[1].compute_buffer_bytes == 4 * rpc.devices[1].compute_buffer_bytes  # SCHED_MAX_COPIES
    assert rpc.command.endswith("-sm layer --rpc <node-2>:50052 --fit off")
    assert any(w.code == "llamacpp.rpc.nodes" and "ggml-rpc-server -H 0.0.0.0 -p 50052" in w.text for w in rpc.warnings)


def test_moe_auto_offload_keeps_layers_on_the_gpu_and_the_fewest_experts_on_the_cpu():
    """common/fit.cpp: a MoE model whose dense part fits moves expert tensors to host memory before
    whole layers; vramcalc gives the same bytes as --n-cpu-moe N, the smallest N that fits."""
    spec, gpu = load("qwen3-30b-a3b"), find_gpu("rtx4070")
    r = check_llamacpp(spec, gpu, LlamaOptions(ftype="Q4_K_M", n_ctx=16384, n_gpu_layers=None))
    assert r.fits and r.n_gpu_layers == 49 and 0 < r.n_cpu_moe < 48
    assert f"-ngl all -fa on --n-cpu-moe {r.n_cpu_moe} --fit off" in r.command
    fewer = check_llamacpp(spec, gpu, LlamaOptions(ftype="Q4_K_M", n_ctx=16384, n_cpu_moe=r.n_cpu_moe - 1), solve=False)
    assert not fewer.fits


def test_best_file_type_is_the_first_of_the_ladder_that_fits():
    from vramcalc.plan import best_gguf_ftype, planner_data

    spec, gpus = load("llama-3.3-70b"), [find_gpu("rtx3090")] * 2
    opts = LlamaOptions(n_ctx=8192)
    full, offload = best_gguf_ftype(spec, gpus, opts)
    ladder = planner_data().gguf_ftypes
    assert full in ladder and offload == "Q8_0"  # host RAM not given: offload always fits
    fits = {f: check_llamacpp(spec, gpus, opts.model_copy(update={"ftype": f, "n_gpu_layers": 10**6}),
                              solve=False).fits for f in ladder[:ladder.index(full) + 1]}
    assert fits[full] and not any(fits[f] for f in ladder[:ladder.index(full)])


def test_embedding_mode_output_rows_and_buffer_follow_llama_cpp():
    # tools/server/server-context.cpp server_output_limits (4df29be): params.embedding, or a pooling type other
    # than unspecified / none, returns { params.n_batch, 1 }; otherwise one logits row per slot
    assert LlamaOptions(n_batch=1024, n_parallel=4).outputs_reserved == 4
    assert LlamaOptions(n_batch=1024, n_parallel=4, embedding=True).outputs_reserved == 1024
    assert LlamaOptions(n_batch=1024, n_parallel=4, pooling="mean").outputs_reserved == 1024
    assert LlamaOptions(n_batch=1024, n_parallel=4, pooling="none").outputs_reserved == 4
    # src/llama-context.cpp output_reserve: embd.size = n_embd_out * n_outputs_max beside logits.size, floats,
    # first reserved with n_outputs_max = n_seq_max (the slots); with embeddings every token of a batch is an output
    # (llama_context::decode output_all; src/llama-batch.cpp overrides the batch's flags), so a batch of n_batch
    # prompt tokens grows it to n_batch rows (output_reserve(n_outputs_all))
    spec = load("llama-3.1-8b")
    base = check_llamacpp(spec, find_gpu("h100-sxm"), LlamaOptions(ftype="Q4_K_M", n_ctx=8192, n_parallel=4))
    emb = check_llamacpp(spec, find_gpu("h100-sxm"),
                         LlamaOptions(ftype="Q4_K_M", n_ctx=8192, n_parallel=4, n_batch=1024, embedding=True))
    out = lambda r: sum(d.output_buffer_bytes for d in r.devices)  # noqa: E731
    assert out(base) == spec.vocab_size * 4 * 4
    assert out(emb) == (spec.vocab_size + spec.hidden_size) * 1024 * 4
    with pytest.raises(Exception, match="pooling"):
        LlamaOptions(pooling="max")


def test_fit_target_and_fit_ctx_as_common_arg_cpp_reads_them():
    # common/arg.cpp --fit-target (4df29be): one value fills fit_params_target for every device (std::fill), a
    # list sets the first ones, the rest keep common.h's 1024 MiB; vramcalc never leaves less than its 1024 MiB
    spec, gpu = load("llama-3.1-8b"), find_gpu("rtx4070")
    usable = gpu.usable_bytes or gpu.memory_bytes
    o = dict(ftype="Q4_K_M", n_ctx=None, n_parallel=1)
    r = check_llamacpp(spec, gpu, LlamaOptions(**o, fit_target_mib=(4096,)), solve=True)
    assert r.devices[0].available_bytes == usable - 4096 * 2**20
    base = check_llamacpp(spec, gpu, LlamaOptions(**o), solve=True)
    assert base.devices[0].available_bytes == usable - 1024 * 2**20 and r.n_ctx < base.n_ctx  # --fit lowers -c 0 more
    two = check_llamacpp(spec, [gpu, gpu], LlamaOptions(ftype="Q4_K_M", n_ctx=8192, fit_target_mib=(512, 2048)))
    assert [d.available_bytes for d in two.devices[:2]] == [usable - 1024 * 2**20, usable - 2048 * 2**20]
    assert "llamacpp.fit.target_below_margin" in [w.code for w in two.warnings]
    # common/fit.cpp: with -c 0 the context is lowered, but not below n_ctx_min (--fit-ctx): here the 4096 default
    # lets --fit settle below 65536 cells, a -fitc of 65536 does not (it stops at the minimum and does not fit)
    assert base.fits and base.n_ctx < 65536
    high = check_llamacpp(spec, gpu, LlamaOptions(**o, fit_min_ctx=65536), solve=True)
    assert not high.fits


def test_no_host_leaves_the_pinned_host_buffer_out_as_make_cpu_buft_list_does():
    # src/llama-model.cpp make_cpu_buft_list (4df29be): ACCEL -> the GPU's host buffer type unless no_host -> CPU
    # extra (CPU_REPACK) -> CPU. With the host type there, the CPU layers of a partial offload take CUDA_Host
    # (pinned with --no-mmap) and are never repacked; with --no-host they are repacked as on a machine without a GPU
    spec, gpu = load("llama-3.1-8b"), find_gpu("rtx4070")
    o = dict(ftype="Q4_0", n_ctx=8192, n_gpu_layers=20, no_mmap=True, host_cpu="x86_avx2")
    host = check_llamacpp(spec, gpu, LlamaOptions(**o)).devices[-1]
    assert host.pinned_model_buffer_bytes > 0 and host.repack_buffer_bytes == 0
    nh = check_llamacpp(spec, gpu, LlamaOptions(**o, no_host=True)).devices[-1]
    assert nh.pinned_model_buffer_bytes == 0 and nh.repack_buffer_bytes > 0
    assert nh.model_buffer_bytes == host.model_buffer_bytes
    # the same 13 CPU blocks (-ngl 20: the output layer and the last 19) sent by -ot =CPU (PR #14990 on: an override
    # to the CPU picks from that list too) repack alike
    ot = LlamaOptions(**{**o, "n_gpu_layers": 99}, no_host=True, override_tensor=("blk\\.([0-9]|1[0-2])\\.=CPU",))
    assert check_llamacpp(spec, gpu, ot).devices[-1].repack_buffer_bytes == nh.repack_buffer_bytes
